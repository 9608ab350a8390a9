"""Many job submissions from one file (``quorus jobs submit --from FILE``): entries read and
checked with their line numbers, then sent in chunks to ``POST /v1/jobs/batch``.

A file is JSON lines (one ``POST /v1/jobs`` body per line; blank lines and ``#`` comments
skipped) or, named ``*.yaml``/``*.yml``, a YAML list of such bodies. The command's options
(``--tenant``, ``--priority``, ``--label`` ...) are defaults that an entry's own keys override.
An entry without an ``id`` gets a fresh one here, so that a chunk repeated on another
controller after a broken connection queues nothing twice.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from quorus.core.errors import ConfigurationError

if TYPE_CHECKING:
    from quorus.core.cli.client import ControllerClient, ControllerError

#: Jobs per request by default, and at most (the controller's limit).
DEFAULT_CHUNK = 500
MAX_CHUNK = 1000


@dataclass(frozen=True, slots=True)
class Entry:
    """One job of the file: where it was written (``line``) and its request body."""

    line: int
    body: dict[str, Any]


def read_entries(name: str, stream: TextIO, defaults: Mapping[str, Any]) -> list[Entry]:
    """The entries of the file ``name`` (``-``: standard input) read from ``stream``, each
    ``defaults`` overridden by its own keys and checked as the controller checks a
    submission; :class:`ConfigurationError` names the first bad one by file and line."""
    from pydantic import ValidationError
    from quorus.core.controller.submissions import JobSubmission

    raw = list(_yaml_entries(name, stream) if name.lower().endswith((".yaml", ".yml"))
               else _json_lines(name, stream))
    if not raw:
        raise ConfigurationError(f"{name}: no jobs in it")
    entries = []
    for line, value in raw:
        if not isinstance(value, dict):
            raise ConfigurationError(f"{name}:{line}: expected an object with source and "
                                     f"destination, not {type(value).__name__}")
        body = {**defaults, **value}
        try:
            JobSubmission.model_validate(body)
        except ValidationError as exc:
            problem = exc.errors()[0]
            where = ".".join(str(p) for p in problem.get("loc", ())) or "entry"
            raise ConfigurationError(f"{name}:{line}: {where}: {problem.get('msg')}") from None
        body.setdefault("id", f"job-{uuid.uuid4().hex}")
        entries.append(Entry(line, body))
    return entries


def _json_lines(name: str, stream: TextIO) -> Iterator[tuple[int, Any]]:
    for number, text in enumerate(stream, 1):
        text = text.strip()
        if not text or text.startswith("#"):
            continue
        try:
            yield number, json.loads(text)
        except ValueError as exc:
            raise ConfigurationError(f"{name}:{number}: not a JSON object ({exc}); the file "
                                     "holds one JSON object per line, or is *.yaml") from None


def _yaml_entries(name: str, stream: TextIO) -> Iterator[tuple[int, Any]]:
    import yaml

    try:
        root = yaml.compose(stream, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"{name}: not YAML: {exc}") from None
    if not isinstance(root, yaml.SequenceNode):
        raise ConfigurationError(f"{name}: expected a YAML list of jobs")
    for node in root.value:
        yield node.start_mark.line + 1, yaml.safe_load(yaml.serialize(node))


@dataclass
class Outcome:
    """What became of the file's entries: one result per entry sent, in file order (its
    ``index`` the place in the file, ``line`` where it was written). ``error`` is the
    controller error that stopped the sending, and ``unsent`` the entries not sent (or sent
    without an answer) from then on."""

    results: list[dict[str, Any]] = field(default_factory=list)
    submitted: int = 0
    refused: int = 0
    error: ControllerError | None = None
    unsent: int = 0

    def as_json(self) -> dict[str, Any]:
        return {"results": self.results, "submitted": self.submitted, "refused": self.refused}


def submit_entries(client: ControllerClient, entries: Sequence[Entry], chunk: int,
                   sent: Callable[[Outcome], None] | None = None) -> Outcome:
    """Send ``entries`` ``chunk`` at a time; ``sent`` is told after each chunk. A controller
    error stops the sending: the outcome says which and how many entries were left."""
    from quorus.core.cli.client import ControllerError

    if not 1 <= chunk <= MAX_CHUNK:
        raise ConfigurationError(f"--batch-size must be 1 to {MAX_CHUNK}, not {chunk}")
    outcome = Outcome()
    for start in range(0, len(entries), chunk):
        part = entries[start:start + chunk]
        try:
            answer = client.submit_jobs([e.body for e in part])
        except ControllerError as exc:
            outcome.error = exc
            outcome.unsent = len(entries) - start
            return outcome
        for entry, result in zip(part, answer.get("results", []), strict=True):
            result = {**result, "index": start + int(result.get("index", 0)),
                      "line": entry.line, "id": entry.body["id"]}
            outcome.results.append(result)
            if result.get("status") == 201:
                outcome.submitted += 1
            else:
                outcome.refused += 1
        if sent is not None:
            sent(outcome)
    return outcome


def read_file(name: str, defaults: Mapping[str, Any]) -> list[Entry]:
    """:func:`read_entries` of the file ``name`` (``-``: standard input)."""
    import sys

    if name == "-":
        return read_entries("-", sys.stdin, defaults)
    path = Path(name)
    try:
        with path.open(encoding="utf-8") as stream:
            return read_entries(name, stream, defaults)
    except OSError as exc:
        raise ConfigurationError(f"cannot read {name}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigurationError(f"{name}: not UTF-8 text") from None


__all__ = ["DEFAULT_CHUNK", "MAX_CHUNK", "Entry", "Outcome", "read_entries", "read_file",
           "submit_entries"]
