"""pytest-benchmark: the controller codec's compiled decoders and encoders against the codec as
it was before (hint inspection on every value), on real commands and records.

Run with `pytest tests/benchmarks/test_controller_codec_benchmark.py --benchmark-enable`; in
the normal suite these run once each as smoke tests (benchmarking disabled), and the two
implementations are checked to give the same values and the same refusals. In each group the
ratio to read is `baseline` against `compiled`: what every controller pays to decode each
applied log entry (and the leader to encode each proposed command), before and after.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import random
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from quorus.core.controller import codec
from quorus.core.controller.codec import SECRET, SHOWN_AS, RecordFormatError
from quorus.core.controller.commands import (
    AssignJob,
    Command,
    CompleteAttempt,
    JobStarted,
    SubmitJob,
)
from quorus.core.controller.model import (
    AttemptOutcome,
    JobAttempt,
    JobOptions,
    JobPlacement,
    JobRecord,
    JobState,
    LabelOperator,
    LabelRequirement,
    Site,
)

# --- The codec before compiling, kept here only as the baseline -------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class _Field:
    name: str
    hint: Any
    required: bool
    default: Any
    secret: bool
    shown_as: Callable[[Any], Any] | None


_FIELDS: dict[type, tuple[_Field, ...]] = {}


def _fields(cls: type) -> tuple[_Field, ...]:
    cached = _FIELDS.get(cls)
    if cached is not None:
        return cached
    hints = typing.get_type_hints(cls)
    result = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        if f.default is not dataclasses.MISSING:
            required, default = False, f.default
        elif f.default_factory is not dataclasses.MISSING:
            required, default = False, f.default_factory
        else:
            required, default = True, None
        result.append(_Field(
            f.name, hints[f.name], required, default,
            bool(f.metadata.get(SECRET)), f.metadata.get(SHOWN_AS),
        ))
    _FIELDS[cls] = fields = tuple(result)
    return fields


def baseline_to_plain(value: Any, *, json: bool = False) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        if isinstance(value, enum.Enum):
            return value.value
        return value
    if isinstance(value, enum.Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {}
        for f in _fields(type(value)):
            if json and f.secret:
                continue
            plain = baseline_to_plain(getattr(value, f.name), json=json)
            if json and f.shown_as is not None:
                plain = f.shown_as(plain)
            out[f.name] = plain
        return out
    if isinstance(value, (tuple, list)):
        return [baseline_to_plain(v, json=json) for v in value]
    if isinstance(value, Mapping):
        return {str(k): baseline_to_plain(v, json=json) for k, v in value.items()}
    raise TypeError(f"cannot convert {type(value).__name__} to plain data")


def baseline_from_plain(cls: type, data: Any, *, path: str = "") -> Any:
    return _convert(cls, data, path or cls.__name__)


def _describe(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__


def _convert(hint: Any, data: Any, path: str) -> Any:
    origin = typing.get_origin(hint)
    if origin is typing.Union or origin is types.UnionType:
        options = typing.get_args(hint)
        if data is None and type(None) in options:
            return None
        concrete = [o for o in options if o is not type(None)]
        if len(concrete) == 1:
            return _convert(concrete[0], data, path)
        for option in concrete:
            try:
                return _convert(option, data, path)
            except RecordFormatError:
                continue
        raise RecordFormatError(f"{path}: {_describe(data)} is not a valid value")
    if origin is tuple:
        args = typing.get_args(hint)
        if not isinstance(data, (list, tuple)):
            raise RecordFormatError(f"{path}: expected a list, got {_describe(data)}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, f"{path}[{i}]") for i, v in enumerate(data))
        if len(args) != len(data):
            raise RecordFormatError(f"{path}: expected {len(args)} items, got {len(data)}")
        return tuple(_convert(a, v, f"{path}[{i}]")
                     for i, (a, v) in enumerate(zip(args, data, strict=True)))
    if origin in (dict, Mapping):
        key_hint, value_hint = typing.get_args(hint)
        if not isinstance(data, Mapping):
            raise RecordFormatError(f"{path}: expected a map, got {_describe(data)}")
        return {
            _convert(key_hint, k, f"{path} key"): _convert(value_hint, v, f"{path}[{k!r}]")
            for k, v in data.items()
        }
    if isinstance(hint, type):
        if dataclasses.is_dataclass(hint):
            return _dataclass(hint, data, path)
        if issubclass(hint, enum.Enum):
            try:
                return hint(data)
            except ValueError:
                allowed = ", ".join(str(m.value) for m in hint)
                raise RecordFormatError(f"{path}: {data!r} is not one of {allowed}") from None
        if hint is bool:
            if not isinstance(data, bool):
                raise RecordFormatError(f"{path}: expected true or false, got {_describe(data)}")
            return data
        if hint is int:
            if not isinstance(data, int) or isinstance(data, bool):
                raise RecordFormatError(f"{path}: expected an integer, got {_describe(data)}")
            return data
        if hint is float:
            if not isinstance(data, (int, float)) or isinstance(data, bool):
                raise RecordFormatError(f"{path}: expected a number, got {_describe(data)}")
            if not math.isfinite(data):
                raise RecordFormatError(f"{path}: expected a finite number, got {data!r}")
            return float(data)
        if hint is str:
            if not isinstance(data, str):
                raise RecordFormatError(f"{path}: expected a string, got {_describe(data)}")
            return data
    raise TypeError(f"{path}: unsupported type hint {hint!r}")


def _dataclass(cls: type, data: Any, path: str) -> Any:
    if not isinstance(data, Mapping):
        raise RecordFormatError(f"{path}: expected a map, got {_describe(data)}")
    fields = _fields(cls)
    known = {f.name for f in fields}
    unknown = sorted(str(k) for k in data if k not in known)
    if unknown:
        raise RecordFormatError(f"{path}: unknown field(s) {', '.join(unknown)}")
    kwargs: dict[str, Any] = {}
    for f in fields:
        if f.name in data:
            kwargs[f.name] = _convert(f.hint, data[f.name], f"{path}.{f.name}")
        elif f.required:
            raise RecordFormatError(f"{path}: missing field {f.name}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise RecordFormatError(f"{path}: {exc}") from None


# --- Real commands and records ----------------------------------------------------------------

SHA = "3a" * 32


def submit(i: int) -> SubmitJob:
    return SubmitJob.new(
        f"sftp://deploy:hunter2@files.example/srv/out/batch-0042/data-{i:06}.bin",
        f"/data/tenants/acme/in/batch-0042/data-{i:06}.bin", job_id=f"job-{i:06}",
        at=1_764_000_000.0 + i, priority=5, submitted_by="alice", tenant="acme",
        namespace="finance",
        options=JobOptions(checksum=f"sha256:{SHA}", expected_size=1 << 30,
                           protocol_options={"sftp.port": "2222"}, mode=0o640),
        placement=JobPlacement(
            affinity=(LabelRequirement("zone", LabelOperator.EQUALS, "a"),),
            preferred_site=Site("eu", "dc1", None)),
    )


def running_job(i: int) -> JobRecord:
    command = submit(i)
    return JobRecord(
        id=command.job_id, source=command.source, destination=command.destination,
        source_display=command.source_display, destination_display=command.destination_display,
        source_scheme=command.source_scheme, destination_scheme=command.destination_scheme,
        sequence=i, submitted_at=command.at, options=command.options, priority=command.priority,
        placement=command.placement, state=JobState.RUNNING, attempt=2, agent_id="agent-007",
        attempts=(JobAttempt(1, "agent-003", 1.0, 2.0, 3.0, AttemptOutcome.LOST, "gone"),
                  JobAttempt(2, "agent-007", 4.0, 5.0)),
        started_at=5.0, submitted_by="alice", tenant="acme", namespace="finance",
    )


def group_commit(size: int) -> list[Command]:
    """What one batch carries at 1,000 jobs/s: submissions, assignments, starts and
    completions, in equal numbers."""
    commands: list[Command] = []
    for i in range(size // 4):
        commands += [submit(i), AssignJob(f"job-{i:06}", "agent-007", 1, 2.0),
                     JobStarted(f"job-{i:06}", "agent-007", 1, 3.0),
                     CompleteAttempt(f"job-{i:06}", "agent-007", 1, 4.0, 1 << 30, SHA)]
    return commands


#: Each case: the values, decoded from plain data as the controller does (a command with its
#: name as the path, a record with none).
CASES: dict[str, list[Any]] = {
    "submit-job": [submit(1)],
    "assign-job": [AssignJob("job-000001", "agent-007", 1, 2.0)],
    "complete-attempt": [CompleteAttempt("job-000001", "agent-007", 1, 4.0, 1 << 30, SHA)],
    "batch-of-40": group_commit(40),
    "job-record": [running_job(1)],
}

IMPLEMENTATIONS: dict[str, tuple[Callable[..., Any], Callable[..., Any]]] = {
    "baseline": (baseline_from_plain, baseline_to_plain),
    "compiled": (codec.from_plain, codec.to_plain),
}


def _path(value: Any) -> str:
    return value.NAME if isinstance(value, Command) else ""


def _decoder(from_plain: Callable[..., Any], case: str) -> Callable[[], list[Any]]:
    items = [(type(v), codec.to_plain(v), _path(v)) for v in CASES[case]]
    return lambda: [from_plain(cls, data, path=path) for cls, data, path in items]


@pytest.mark.parametrize("implementation", list(IMPLEMENTATIONS))
@pytest.mark.parametrize("case", list(CASES))
def test_decode(benchmark: Any, case: str, implementation: str) -> None:
    benchmark.group = f"decode {case}"
    decoded = benchmark(_decoder(IMPLEMENTATIONS[implementation][0], case))
    assert decoded == CASES[case]


@pytest.mark.parametrize("implementation", list(IMPLEMENTATIONS))
@pytest.mark.parametrize("case", list(CASES))
def test_encode(benchmark: Any, case: str, implementation: str) -> None:
    benchmark.group = f"encode {case}"
    to_plain = IMPLEMENTATIONS[implementation][1]
    values = CASES[case]
    encoded = benchmark(lambda: [to_plain(v) for v in values])
    assert encoded == [baseline_to_plain(v) for v in values]


# --- Both give the same answers ---------------------------------------------------------------

_ODD: list[Any] = [None, True, 0, -1, 2.5, float("nan"), "", "x", "running", [], ["a"], {},
                   {"n": 1}, 10**400]


def _outcome(from_plain: Callable[..., Any], cls: type, data: Any, path: str) -> tuple[str, Any]:
    try:
        return "value", from_plain(cls, data, path=path)
    except (RecordFormatError, TypeError, OverflowError) as exc:
        return type(exc).__name__, str(exc)


def _spoil(data: Any, rng: random.Random) -> Any:
    """``data`` with one value somewhere replaced, removed or added beside."""
    if not isinstance(data, (dict, list)) or not data or rng.random() < 0.3:
        return rng.choice(_ODD)
    if isinstance(data, list):
        i = rng.randrange(len(data))
        return [*data[:i], _spoil(data[i], rng), *data[i + 1:]]
    key = rng.choice(list(data))
    spoiled = dict(data)
    match rng.randrange(4):
        case 0:
            del spoiled[key]
        case 1:
            spoiled[rng.choice(["zeta", "alpha", 7])] = rng.choice(_ODD)
        case _:
            spoiled[key] = _spoil(data[key], rng)
    return spoiled


def test_both_give_the_same_values_and_refusals() -> None:
    rng = random.Random(20261127)
    samples = [(type(v), codec.to_plain(v), _path(v)) for case in CASES.values() for v in case]
    refused = 0
    for _ in range(3000):
        cls, data, path = rng.choice(samples)
        spoiled = _spoil(data, rng)
        before = _outcome(baseline_from_plain, cls, spoiled, path)
        after = _outcome(codec.from_plain, cls, spoiled, path)
        assert after == before, spoiled
        refused += before[0] != "value"
    assert refused > 1000
    for case in CASES.values():
        for value in case:
            for json in (False, True):
                assert codec.to_plain(value, json=json) == baseline_to_plain(value, json=json)
