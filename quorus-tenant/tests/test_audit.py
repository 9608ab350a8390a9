"""The hash-chained audit log: appending, tamper detection, export, retention, snapshots."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from quorus.tenant.audit import (
    GENESIS_HASH,
    AuditChain,
    AuditError,
    AuditRecord,
    export,
    find_break,
    read_lines,
    record_hash,
    verify,
)


def make_chain(count: int, tenant: str = "acme") -> AuditChain:
    chain = AuditChain(tenant)
    for n in range(count):
        chain.append(
            at=1000.0 + n,
            actor="alice" if n % 2 else "controller",
            action="jobs.submit",
            target=f"job-{n}",
            outcome=("allowed", "denied", "applied")[n % 3],
            detail={"n": n, "paths": ["/data/a", "/data/b"]},
        )
    return chain


def test_each_record_hashes_its_predecessor_and_its_own_canonical_body() -> None:
    chain = make_chain(3)
    first, second, third = chain.records
    assert first.sequence == 1 and first.previous_hash == GENESIS_HASH
    assert second.previous_hash == first.hash and third.previous_hash == second.hash
    assert chain.head == third.hash and chain.next_sequence == 4
    body = json.dumps(first.body(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert first.hash == hashlib.sha256(GENESIS_HASH.encode() + body.encode()).hexdigest()
    assert chain.verify() is None


def test_the_same_appends_give_the_same_chain() -> None:
    assert make_chain(20).to_data() == make_chain(20).to_data()


def test_an_edited_record_is_found() -> None:
    records = list(make_chain(10))
    records[4] = dataclasses.replace(records[4], outcome="allowed", actor="mallory")
    assert verify(records) == 5
    assert "altered" in str(find_break(records))


def test_an_edited_record_with_a_recomputed_hash_breaks_the_next_link() -> None:
    records = list(make_chain(10))
    edited = dataclasses.replace(records[4], target="job-999")
    records[4] = dataclasses.replace(edited, hash=edited.computed_hash())
    assert verify(records) == 6


def test_a_removed_record_is_found() -> None:
    records = list(make_chain(10))
    del records[6]
    found = find_break(records)
    assert found is not None and found.sequence == 7 and "missing" in found.reason


def test_removing_the_first_record_is_found() -> None:
    assert verify(list(make_chain(5))[1:]) == 1


def test_removing_records_at_the_end_is_found_against_the_head() -> None:
    chain = make_chain(5)
    assert verify(list(chain)[:-2], head=chain.head) == 4
    assert verify(list(chain), head=chain.head) is None


def test_reordered_records_are_found() -> None:
    records = list(make_chain(10))
    records[2], records[3] = records[3], records[2]
    assert verify(records) == 3


def test_an_inserted_record_is_found_even_renumbered() -> None:
    chain = make_chain(6)
    records = list(chain)
    forged = dataclasses.replace(records[2], sequence=4, target="job-forged")
    forged = dataclasses.replace(forged, hash=forged.computed_hash())
    renumbered = [dataclasses.replace(r, sequence=r.sequence + 1) for r in records[3:]]
    assert verify([*records[:3], forged, *renumbered]) == 4


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_any_change_to_one_field_of_one_record_is_found(data: st.DataObject) -> None:
    records = list(make_chain(8))
    index = data.draw(st.integers(0, 7))
    name = data.draw(st.sampled_from(["at", "tenant", "actor", "action", "target", "detail"]))
    value: Any = {
        "at": data.draw(st.floats(allow_nan=False, allow_infinity=False)),
        "tenant": data.draw(st.text()),
        "actor": data.draw(st.text()),
        "action": data.draw(st.text()),
        "target": data.draw(st.text()),
        "detail": data.draw(st.dictionaries(st.text(), st.integers())),
    }[name]
    if getattr(records[index], name) == value:
        return
    records[index] = dataclasses.replace(records[index], **{name: value})
    assert verify(records) == index + 1


def test_detail_that_is_not_json_is_refused_and_nothing_is_appended() -> None:
    chain = make_chain(2)
    with pytest.raises(AuditError, match=r"'jobs\.submit' on 'job-x' cannot be recorded"):
        chain.append(
            at=1.0,
            actor="a",
            action="jobs.submit",
            target="job-x",
            outcome="applied",
            detail={"when": object()},
        )
    with pytest.raises(AuditError, match="outcome"):
        chain.append(at=1.0, actor="a", action="x", target="y", outcome="maybe")  # type: ignore[arg-type]
    assert len(chain) == 2 and chain.verify() is None


def test_detail_is_stored_as_it_was_hashed() -> None:
    chain = AuditChain("acme")
    record = chain.append(
        at=5, actor="a", action="x", target="t", outcome="applied", detail={"ids": (1, 2)}
    )
    assert record.detail == {"ids": [1, 2]}
    assert chain.verify() is None


def test_export_filters_by_time_and_reads_back_verifiable() -> None:
    chain = make_chain(10)
    lines = list(export(chain, 1003.0, 1007.0))
    assert [json.loads(line)["sequence"] for line in lines] == [4, 5, 6, 7]
    assert all(line.endswith("\n") for line in lines)
    back = list(read_lines(io.StringIO("".join(lines))))
    assert back == list(chain)[3:7]
    assert verify(back, anchor=None, start=None) is None
    assert verify(back) == 1, "a slice does not follow the genesis"
    assert list(read_lines(export(chain))) == list(chain)


def test_reading_a_malformed_export_names_the_line() -> None:
    good = next(export(make_chain(1)))
    with pytest.raises(AuditError, match="line 3 is not JSON"):
        list(read_lines([good, "\n", "{oops"]))
    with pytest.raises(AuditError, match="line 1: an audit record lacks the field"):
        list(read_lines(['{"sequence": 1}']))


def _lazy_records(count: int) -> Iterator[AuditRecord]:
    # Unchained, one shared detail: export neither verifies nor copies, and tracing every
    # allocation makes each one made here count.
    detail = {"bytes": 1024}
    for n in range(count):
        yield AuditRecord(
            sequence=n + 1,
            at=float(n),
            tenant="acme",
            actor="alice",
            action="jobs.submit",
            target=f"job-{n}",
            outcome="applied",
            detail=detail,
            previous_hash=GENESIS_HASH,
            hash=GENESIS_HASH,
        )


def test_exporting_many_records_streams_in_bounded_memory() -> None:
    # 100,000 under tracemalloc (which slows every allocation) keeps the suite fast; the
    # million-record export is measured by quorus-tenant/benchmarks/audit_export_bench.py.
    count = 100_000
    lines = 0
    last = ""
    tracemalloc.start()
    try:
        for line in export(_lazy_records(count), from_at=10.0):
            lines += 1
            last = line
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert lines == count - 10
    assert json.loads(last)["target"] == f"job-{count - 1}"
    # A materialised list of the records would take tens of MB.
    assert peak < 4 * 1024 * 1024, f"peak {peak} bytes"


def test_prune_keeps_the_rest_verifiable_from_the_anchor() -> None:
    chain = make_chain(10)
    dropped_head = chain.records[3].hash
    assert chain.prune(before=1004.0) == 4
    assert chain.anchor == dropped_head and chain.start == 5
    assert [r.sequence for r in chain] == [5, 6, 7, 8, 9, 10]
    assert chain.verify() is None
    assert verify(chain) == 1, "without the anchor and start the kept records are no chain"
    appended = chain.append(at=2000, actor="a", action="x", target="t", outcome="applied")
    assert appended.sequence == 11 and chain.verify() is None


def test_prune_stops_at_the_first_newer_record_and_can_empty_the_chain() -> None:
    chain = make_chain(3)
    assert chain.prune(before=0) == 0
    head = chain.head
    assert chain.prune(before=10_000) == 3
    assert len(chain) == 0 and chain.anchor == head and chain.next_sequence == 4
    record = chain.append(at=1, actor="a", action="x", target="t", outcome="denied")
    assert record.previous_hash == head and chain.verify() is None


def test_a_pruned_chain_detects_tampering_with_what_it_kept() -> None:
    chain = make_chain(10)
    chain.prune(before=1005.0)
    records = list(chain)
    records[0] = dataclasses.replace(records[0], previous_hash=GENESIS_HASH)
    assert verify(records, anchor=chain.anchor, start=chain.start) == 6


def test_snapshot_round_trips_through_json() -> None:
    chain = make_chain(7)
    chain.prune(before=1002.0)
    data = json.loads(json.dumps(chain.to_data()))
    restored = AuditChain.from_data(data)
    assert restored.records == chain.records
    assert (restored.anchor, restored.start, restored.head) == (
        chain.anchor,
        chain.start,
        chain.head,
    )
    assert restored.verify() is None


def test_a_snapshot_missing_a_field_is_a_clear_error() -> None:
    data = make_chain(1).to_data()
    del data["anchor"]
    with pytest.raises(AuditError, match="'anchor'"):
        AuditChain.from_data(data)


def test_record_hash_depends_on_the_previous_hash() -> None:
    record = make_chain(1).records[0]
    body = record.body()
    assert record_hash(body) == record.hash
    body["previous_hash"] = "f" * 64
    assert record_hash(body) != record.hash
