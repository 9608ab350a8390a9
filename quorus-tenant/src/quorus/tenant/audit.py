"""The per-tenant audit log: records hash-chained so that editing, removing, reordering or
inserting one is detectable, exported as JSON lines in bounded memory, pruned for retention
without losing verifiability.

Each record's ``hash`` is ``sha256(previous_hash ‖ canonical JSON of the record without its
hash)``; the first record follows :data:`GENESIS_HASH`, or after pruning the chain's
``anchor`` (the hash of the last record pruned). Nothing here reads a clock: callers pass
``at`` (seconds since the epoch) so that every controller applying the same commands builds
the same chain.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from quorus.core.errors import QuorusError

Outcome = Literal["allowed", "denied", "applied"]
OUTCOMES: tuple[Outcome, ...] = ("allowed", "denied", "applied")
#: What the first record of a chain follows.
GENESIS_HASH = "0" * 64


class AuditError(QuorusError):
    """An audit record cannot be made or read (not JSON-able detail, a malformed line)."""


# Sorted keys and fixed separators: the same record gives the same bytes on every node and in
# every export, which is what makes the hash reproducible. One encoder for all calls: building
# one per record dominates the cost of exporting millions.
_ENCODER = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


def _canonical(body: Mapping[str, Any]) -> bytes:
    return _ENCODER.encode(body).encode("utf-8")


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One audited action: who (``actor``) did what (``action``) to what (``target``) in
    ``tenant`` at ``at``, and with which ``outcome``."""

    sequence: int
    at: float
    tenant: str
    actor: str
    action: str
    target: str
    outcome: Outcome
    detail: Mapping[str, Any]
    previous_hash: str
    hash: str

    def body(self) -> dict[str, Any]:
        """The hashed part: everything but ``hash``."""
        return {
            "sequence": self.sequence,
            "at": self.at,
            "tenant": self.tenant,
            "actor": self.actor,
            "action": self.action,
            "target": self.target,
            "outcome": self.outcome,
            "detail": dict(self.detail),
            "previous_hash": self.previous_hash,
        }

    def computed_hash(self) -> str:
        return record_hash(self.body())

    def to_data(self) -> dict[str, Any]:
        return {
            "sequence": self.sequence,
            "at": self.at,
            "tenant": self.tenant,
            "actor": self.actor,
            "action": self.action,
            "target": self.target,
            "outcome": self.outcome,
            "detail": self.detail,
            "previous_hash": self.previous_hash,
            "hash": self.hash,
        }

    def to_json(self) -> str:
        return _ENCODER.encode(self.to_data())

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> AuditRecord:
        try:
            outcome = str(data["outcome"])
            if outcome not in OUTCOMES:
                raise AuditError(f"unknown audit outcome {outcome!r}: expected one of {OUTCOMES}")
            detail = data.get("detail") or {}
            if not isinstance(detail, Mapping):
                raise AuditError(f"an audit record's detail must be an object, not {detail!r}")
            return cls(
                sequence=int(data["sequence"]),
                at=float(data["at"]),
                tenant=str(data["tenant"]),
                actor=str(data["actor"]),
                action=str(data["action"]),
                target=str(data["target"]),
                outcome=outcome,
                detail=dict(detail),
                previous_hash=str(data["previous_hash"]),
                hash=str(data["hash"]),
            )
        except KeyError as exc:
            raise AuditError(f"an audit record lacks the field {exc.args[0]!r}") from None
        except (TypeError, ValueError) as exc:
            raise AuditError(f"an audit record has a field of the wrong type: {exc}") from None


def record_hash(body: Mapping[str, Any]) -> str:
    """``sha256(previous_hash ‖ canonical JSON of body)`` as hex."""
    digest = hashlib.sha256(str(body["previous_hash"]).encode("ascii"))
    digest.update(_canonical(body))
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class ChainBreak:
    """Where a chain stops being trustworthy, and why."""

    sequence: int
    reason: str


def find_break(
    records: Iterable[AuditRecord],
    *,
    anchor: str | None = GENESIS_HASH,
    start: int | None = 1,
    head: str | None = None,
) -> ChainBreak | None:
    """The first place ``records`` (in order) are not an intact chain, or ``None``.

    ``anchor``/``start``: the hash the first record must follow and its sequence (``None``
    trusts whatever the first record says, to check the links inside an exported slice).
    ``head``: the hash the last record must have, which also catches records removed from
    the end. Streams: holds one record at a time.
    """
    expected_previous = anchor
    expected_sequence = start
    last_hash = anchor
    for record in records:
        if expected_sequence is not None and record.sequence != expected_sequence:
            return ChainBreak(
                expected_sequence,
                f"record {expected_sequence} is missing or out of place "
                f"(found record {record.sequence} in its place)",
            )
        if expected_previous is not None and record.previous_hash != expected_previous:
            return ChainBreak(
                record.sequence,
                f"record {record.sequence} does not follow the record before it "
                "(its previous_hash differs): a record was removed, inserted or altered",
            )
        try:
            computed = record.computed_hash()
        except (TypeError, ValueError):
            computed = None
        if computed != record.hash:
            return ChainBreak(
                record.sequence,
                f"record {record.sequence} was altered: its hash does not match its contents",
            )
        expected_previous = last_hash = record.hash
        expected_sequence = record.sequence + 1
    if head is not None and last_hash != head:
        missing = expected_sequence if expected_sequence is not None else 0
        return ChainBreak(
            missing,
            f"the chain ends before record {missing} but the recorded head differs: "
            "records at the end were removed",
        )
    return None


def verify(
    records: Iterable[AuditRecord],
    *,
    anchor: str | None = GENESIS_HASH,
    start: int | None = 1,
    head: str | None = None,
) -> int | None:
    """The sequence of the first broken record (see :func:`find_break`), or ``None``."""
    found = find_break(records, anchor=anchor, start=start, head=head)
    return None if found is None else found.sequence


def export(
    records: Iterable[AuditRecord], from_at: float | None = None, to_at: float | None = None
) -> Iterator[str]:
    """JSON lines (each ending in ``\\n``) of the records with ``from_at <= at < to_at``.

    A generator over ``records``: memory stays bounded however many there are.
    """
    for record in records:
        if from_at is not None and record.at < from_at:
            continue
        if to_at is not None and record.at >= to_at:
            continue
        yield record.to_json() + "\n"


def read_lines(lines: Iterable[str]) -> Iterator[AuditRecord]:
    """Records from exported JSON lines (blank lines skipped), lazily; a malformed line is an
    :class:`AuditError` naming its line number."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except ValueError as exc:
            raise AuditError(f"line {number} is not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise AuditError(f"line {number} is not an audit record object")
        try:
            yield AuditRecord.from_data(data)
        except AuditError as exc:
            raise AuditError(f"line {number}: {exc}") from None


@dataclass
class AuditChain:
    """One tenant's audit records, appended in order.

    ``anchor`` is the hash the first kept record follows and ``start`` its sequence: the
    genesis and 1 until :meth:`prune` drops old records.
    """

    tenant: str
    anchor: str = GENESIS_HASH
    start: int = 1
    _records: list[AuditRecord] = field(default_factory=list, repr=False)

    @property
    def records(self) -> tuple[AuditRecord, ...]:
        return tuple(self._records)

    def __iter__(self) -> Iterator[AuditRecord]:
        return iter(self._records)

    def __len__(self) -> int:
        return len(self._records)

    @property
    def head(self) -> str:
        """The hash the next record will follow."""
        return self._records[-1].hash if self._records else self.anchor

    @property
    def next_sequence(self) -> int:
        return self.start + len(self._records)

    def append(
        self,
        *,
        at: float,
        actor: str,
        action: str,
        target: str,
        outcome: Outcome,
        detail: Mapping[str, Any] | None = None,
    ) -> AuditRecord:
        """Record one action; ``detail`` must be JSON-able (an :class:`AuditError` says why
        not)."""
        if outcome not in OUTCOMES:
            raise AuditError(f"unknown audit outcome {outcome!r}: expected one of {OUTCOMES}")
        body: dict[str, Any] = {
            "sequence": self.next_sequence,
            "at": float(at),
            "tenant": self.tenant,
            "actor": actor,
            "action": action,
            "target": target,
            "outcome": outcome,
            "detail": dict(detail or {}),
            "previous_hash": self.head,
        }
        try:
            digest = record_hash(body)
        except (TypeError, ValueError) as exc:
            raise AuditError(
                f"the detail of audit record {action!r} on {target!r} cannot be recorded: {exc}"
            ) from None
        # Detail goes through JSON so the stored record is exactly what was hashed.
        body["detail"] = json.loads(_canonical(body["detail"]))
        record = AuditRecord(hash=digest, **body)
        self._records.append(record)
        return record

    def find_break(self) -> ChainBreak | None:
        return find_break(self._records, anchor=self.anchor, start=self.start)

    def verify(self) -> int | None:
        found = self.find_break()
        return None if found is None else found.sequence

    def prune(self, before: float) -> int:
        """Drop the oldest records with ``at < before`` (stopping at the first newer one) and
        keep the hash they end on as the anchor. Returns how many were dropped."""
        count = 0
        while count < len(self._records) and self._records[count].at < before:
            count += 1
        if count:
            self.anchor = self._records[count - 1].hash
            self.start += count
            del self._records[:count]
        return count

    def to_data(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "anchor": self.anchor,
            "start": self.start,
            "records": [record.to_data() for record in self._records],
        }

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> AuditChain:
        try:
            return cls(
                tenant=str(data["tenant"]),
                anchor=str(data["anchor"]),
                start=int(data["start"]),
                _records=[AuditRecord.from_data(item) for item in data["records"]],
            )
        except KeyError as exc:
            raise AuditError(f"an audit chain snapshot lacks {exc.args[0]!r}") from None


__all__ = [
    "GENESIS_HASH",
    "OUTCOMES",
    "AuditChain",
    "AuditError",
    "AuditRecord",
    "ChainBreak",
    "Outcome",
    "export",
    "find_break",
    "read_lines",
    "record_hash",
    "verify",
]
