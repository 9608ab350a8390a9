"""The linearizability checker: known bad histories rejected, good ones (and any history
generated from a sequential run with overlapping intervals) accepted."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from quorus.raft.linearizability import Operation, OpKind, check_history


def put(key: str, value: int, start: float, end: float | None) -> Operation:
    return Operation(OpKind.PUT, key, start, end, value=value)


def get(key: str, result: int | None, start: float, end: float) -> Operation:
    return Operation(OpKind.GET, key, start, end, result=result)


def cas(key: str, expected: int | None, new: int, ok: bool | None, start: float,
        end: float | None) -> Operation:
    return Operation(OpKind.CAS, key, start, end, value=new, expected=expected, result=ok)


def test_a_stale_read_is_rejected() -> None:
    history = [put("x", 1, 0, 1), put("x", 2, 2, 3), get("x", 1, 4, 5)]
    verdict = check_history(history)
    assert not verdict and verdict.key == "x"


def test_a_read_of_a_value_never_written_is_rejected() -> None:
    assert not check_history([put("x", 1, 0, 1), get("x", 7, 2, 3)])


def test_a_lost_write_is_rejected() -> None:
    history = [put("x", 1, 0, 1), get("x", None, 2, 3)]
    assert not check_history(history)


def test_a_cas_that_claims_success_against_another_value_is_rejected() -> None:
    history = [put("x", 1, 0, 1), cas("x", 5, 6, True, 2, 3)]
    assert not check_history(history)


def test_reads_going_back_in_time_are_rejected() -> None:
    history = [put("x", 1, 0, 10), get("x", 1, 1, 2), get("x", None, 3, 4)]
    assert not check_history(history)


def test_concurrent_operations_may_take_effect_in_either_order() -> None:
    history = [put("x", 1, 0, 10), put("x", 2, 0, 10), get("x", 1, 11, 12)]
    assert check_history(history)
    assert check_history([put("x", 1, 0, 10), get("x", None, 1, 2), get("x", 1, 3, 4)])


def test_an_unknown_outcome_may_or_may_not_take_effect() -> None:
    took = [put("x", 1, 0, 1), put("x", 2, 2, None), get("x", 2, 5, 6)]
    did_not = [put("x", 1, 0, 1), put("x", 2, 2, None), get("x", 1, 5, 6)]
    assert check_history(took) and check_history(did_not)
    flip = [put("x", 1, 0, 1), put("x", 2, 2, None), get("x", 2, 5, 6), get("x", 1, 7, 8)]
    assert not check_history(flip)


def test_keys_are_independent() -> None:
    history = [put("x", 1, 0, 1), put("y", 2, 0, 1), get("x", 1, 2, 3), get("y", 2, 2, 3)]
    assert check_history(history)
    assert not check_history([*history, get("y", 1, 4, 5)])


def test_a_successful_cas_chain_is_accepted() -> None:
    history = [put("x", 1, 0, 1), cas("x", 1, 2, True, 2, 3), cas("x", 1, 3, False, 4, 5),
               get("x", 2, 6, 7)]
    assert check_history(history)


@st.composite
def sequential_histories(draw: st.DrawFn) -> list[Operation]:
    """Run random ops one after another on a register, then stretch each op's interval
    around its real point in time, so intervals overlap at random."""
    count = draw(st.integers(1, 14))
    state: dict[str, int | None] = {}
    ops: list[Operation] = []
    for i in range(count):
        point = 10.0 * i
        start = point - draw(st.floats(0, 25))
        end = point + draw(st.floats(0, 25))
        key = draw(st.sampled_from(["a", "b"]))
        kind = draw(st.sampled_from(list(OpKind)))
        unknown = draw(st.booleans()) and kind is not OpKind.GET
        if kind is OpKind.PUT:
            state[key] = i
            ops.append(put(key, i, start, None if unknown else end))
        elif kind is OpKind.GET:
            ops.append(get(key, state.get(key), start, end))
        else:
            expected = draw(st.sampled_from([None, *range(max(0, i - 3), i)]))
            hit = state.get(key) == expected
            if hit:
                state[key] = i
            ops.append(cas(key, expected, i, hit, start, None if unknown else end))
    return ops


@settings(max_examples=300, deadline=None)
@given(sequential_histories())
def test_histories_from_a_sequential_run_are_accepted(history: list[Operation]) -> None:
    assert check_history(history)


@settings(max_examples=200, deadline=None)
@given(sequential_histories(), st.data())
def test_a_read_of_a_value_never_written_in_a_generated_run_is_rejected(
        history: list[Operation], data: st.DataObject) -> None:
    reads = [i for i, op in enumerate(history) if op.kind is OpKind.GET]
    if not reads:
        return
    i = data.draw(st.sampled_from(reads))
    bogus = Operation(OpKind.GET, history[i].key, history[i].invoke, history[i].ret,
                      result=10_000)
    assert not check_history([*history[:i], bogus, *history[i + 1:]])
