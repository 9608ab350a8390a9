"""Agent-protocol messages: every message survives the wire, and nothing a peer can send makes
decoding raise anything but MessageDecodeError, which names the message and field."""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import types
import typing
from collections.abc import Mapping
from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st
from quorus.core.agentproto import (
    AgentCapabilities,
    Assign,
    Completed,
    ControllerAddress,
    Error,
    ErrorCode,
    Heartbeat,
    Message,
    MessageDecodeError,
    ProtocolError,
    Redirect,
    Register,
    TransferOptions,
    codec,
    from_wire,
    to_wire,
)
from quorus.core.agentproto.codec import field_types
from quorus.core.agentproto.messages import TAGS
from quorus.core.wire import FrameDecoder, Hello, WireError, encode_frame

SHA = "ab" * 32

names = st.text(min_size=1, max_size=12)
sha256s = st.from_regex(r"\A[0-9a-f]{64}\Z")
addresses = st.builds(
    lambda host, port: f"{host}:{port}",
    st.sampled_from(["127.0.0.1", "ctl-1.corp", "[::1]"]),
    st.integers(1, 65535),
)
positive_floats = st.floats(min_value=0.001, max_value=1e9, allow_nan=False)

#: Field names whose values obey a rule beyond their type.
OVERRIDES: dict[str, st.SearchStrategy[Any]] = {
    "job_id": names,
    "agent_id": names,
    "controller_id": names,
    "address": addresses,
    "sha256": sha256s,
    "checksum": st.none() | sha256s,
    "attempt": st.integers(1, 2**31),
    "sequence": st.integers(1, 2**53),
    "max_concurrent_transfers": st.integers(1, 10_000),
    "max_bandwidth_mbps": st.none() | positive_floats,
    "bandwidth_limit": st.none() | st.integers(1, 2**40),
    "heartbeat_interval": positive_floats,
    "mode": st.none() | st.integers(0, 0o7777),
    "streams": st.none() | st.integers(1, 64),
    "size_min": st.none() | st.integers(0, 2**50),
    "size_max": st.none() | st.integers(0, 2**50),
}


def strategy(tp: Any) -> st.SearchStrategy[Any]:
    """Values of ``tp`` as the protocol's dataclasses declare it."""
    if tp is str:
        return st.text(max_size=20)
    if tp is bool:
        return st.booleans()
    if tp is int:
        return st.integers(0, 2**53)
    if tp is float:
        return st.floats(min_value=0, max_value=1e12, allow_nan=False)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return st.sampled_from(list(tp))
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return dataclass_strategy(tp)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (types.UnionType, typing.Union):
        (inner,) = [a for a in args if a is not type(None)]
        return st.none() | strategy(inner)
    if origin is tuple:
        return st.lists(strategy(args[0]), max_size=3).map(tuple)
    if origin in (Mapping, dict):
        return st.dictionaries(strategy(args[0]), strategy(args[1]), max_size=3)
    raise AssertionError(f"no strategy for {tp!r}")


def dataclass_strategy(cls: type[Any]) -> st.SearchStrategy[Any]:
    if cls is Redirect:
        return st.builds(
            lambda leader, controllers: Redirect(
                leader.controller_id if leader else None, leader.address if leader else None,
                controllers,
            ),
            st.none() | strategy(ControllerAddress),
            strategy(tuple[ControllerAddress, ...]),
        )
    fields = {
        name: OVERRIDES[name] if name in OVERRIDES else strategy(tp)
        for name, tp in field_types(cls)
    }
    return st.fixed_dictionaries(fields).map(lambda kwargs: cls(**kwargs))


hellos = st.builds(
    lambda protocol, versions, node, token: Hello(
        protocol, tuple(versions), node, "token" if token is not None else None,
        {"token": token} if token is not None else {},
    ),
    st.sampled_from(["quorus-agent", "other"]),
    st.lists(st.integers(1, 5), min_size=1, max_size=3),
    names,
    st.none() | st.text(max_size=20),
)
messages: st.SearchStrategy[Any] = st.one_of(hellos, *(dataclass_strategy(cls) for cls in TAGS))

msgpack_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats()
    | st.text(max_size=20) | st.binary(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=12) | st.integers(), children, max_size=4),
    max_leaves=25,
)


@given(message=messages)
def test_every_message_round_trips(message: Message) -> None:
    assert from_wire(to_wire(message)) == message


@given(message=messages)
def test_every_message_round_trips_through_frames(message: Message) -> None:
    (received,) = FrameDecoder().feed(encode_frame(to_wire(message)))
    assert from_wire(received) == message


def encode_by_inspection(value: Any) -> Any:
    """The encoding rule, spelled out: what each value becomes, looked at one by one."""
    if isinstance(value, enum.Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: encode_by_inspection(getattr(value, f.name))
                for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [encode_by_inspection(item) for item in value]
    if isinstance(value, Mapping):
        return {encode_by_inspection(k): encode_by_inspection(v) for k, v in value.items()}
    return value


@given(message=messages)
def test_encoding_chosen_once_per_class_is_the_rule_applied_to_each_value(
    message: Message,
) -> None:
    if isinstance(message, Hello):
        return
    encoded = codec.encode(message)
    assert encoded == encode_by_inspection(message)
    assert msgpack.packb(encoded) == msgpack.packb(encode_by_inspection(message))


def test_encoding_of_values_outside_messages_follows_the_same_rule() -> None:
    values: list[Any] = [
        None, True, 3, 2.5, "text", b"raw", (1, "a"), [ErrorCode.MALFORMED], {"k": (1, 2)},
        types.MappingProxyType({"x": ErrorCode.MALFORMED}), ControllerAddress("c1", "h:1"),
        ControllerAddress,
    ]
    for value in values:
        assert codec.encode(value) == encode_by_inspection(value), value


def test_every_message_type_is_covered() -> None:
    assert set(TAGS.values()) == {
        "register", "registered", "heartbeat", "heartbeat-ack", "assign", "abort", "progress",
        "completed", "failed", "result-ack", "redirect", "drain", "deregister", "error",
    }


def _decodes_or_refuses(value: object) -> None:
    with contextlib.suppress(MessageDecodeError):
        from_wire(value)


@given(value=msgpack_values)
def test_garbage_values_raise_only_the_decode_error(value: object) -> None:
    _decodes_or_refuses(value)


@given(value=msgpack_values, tag=st.sampled_from([*TAGS.values(), "hello"]))
def test_garbage_under_a_known_type_raises_only_the_decode_error(value: object, tag: str) -> None:
    _decodes_or_refuses({"type": tag, "x": value})
    if isinstance(value, dict):
        _decodes_or_refuses({**value, "type": tag})


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


def _replaced(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: _replaced(value[head], rest, new)}
    copy = list(value)
    copy[head] = _replaced(copy[head], rest, new)
    return copy


@given(message=messages, data=st.data(), garbage=msgpack_values)
def test_any_field_replaced_by_garbage_raises_only_the_decode_error(
    message: Message, data: st.DataObject, garbage: object
) -> None:
    wire = to_wire(message)
    path = data.draw(st.sampled_from(_paths(wire)))
    _decodes_or_refuses(_replaced(wire, path, garbage))


@given(garbage=st.binary(max_size=300))
def test_random_bytes_never_raise_more_than_wire_errors(garbage: bytes) -> None:
    try:
        values = FrameDecoder(max_size=1024).feed(garbage)
    except WireError:
        return
    for value in values:
        _decodes_or_refuses(value)


def _heartbeat_wire() -> dict[str, Any]:
    return to_wire(Heartbeat("a1", 1.5, 7, "active", (), 3))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        (lambda w: w.pop("sequence"), "Heartbeat: missing field 'sequence'"),
        (lambda w: w.update(extra=1), "Heartbeat: unknown field 'extra'"),
        (lambda w: w.update(sequence="7"), "Heartbeat.sequence: expected an integer, got '7'"),
        (lambda w: w.update(sequence=True), "Heartbeat.sequence: expected an integer, got True"),
        (lambda w: w.update(sequence=0), "Heartbeat: sequence must be 1 or more, got 0"),
        (lambda w: w.update(status="asleep"), "Heartbeat.status: expected one of 'active'"),
        (lambda w: w.update(current_jobs={}), "Heartbeat.current_jobs: expected a list, got dict"),
        (
            lambda w: w.update(current_jobs=[{"job_id": "j", "attempt": 0}]),
            "Heartbeat.current_jobs[0]: attempt must be 1 or more",
        ),
        (lambda w: w["metrics"]["cpu"].update(usage_percent="hot"),
         "Heartbeat.metrics.cpu.usage_percent: expected a number, got 'hot'"),
        (lambda w: w.update(timestamp=None), "Heartbeat.timestamp: expected a number, got None"),
        (lambda w: w.update(type="heartbeet"), "unknown message type 'heartbeet'"),
        (lambda w: w.pop("type"), "unknown message type None"),
    ],
)
def test_decode_errors_name_the_message_and_field(mutate: Any, fragment: str) -> None:
    wire = _heartbeat_wire()
    mutate(wire)
    with pytest.raises(MessageDecodeError) as caught:
        from_wire(wire)
    assert fragment in str(caught.value)


def test_an_int_is_accepted_for_a_float_field() -> None:
    wire = _heartbeat_wire()
    wire["timestamp"] = 2
    decoded = from_wire(wire)
    assert isinstance(decoded, Heartbeat)
    assert decoded.timestamp == 2.0 and isinstance(decoded.timestamp, float)


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ([], "a message is a map with a 'type', got list"),
        ({"type": "hello"}, "hello: 'protocol' must be a non-empty string"),
        ({"type": "completed", "job_id": "j", "attempt": 1, "bytes_transferred": 1,
          "sha256": "XYZ", "duration": 0.1}, "sha256 must be 64 lowercase hex digits"),
        ({"type": "redirect", "leader_id": "c1", "leader_address": None, "controllers": []},
         "leader_id and leader_address come together"),
        ({"type": "redirect", "leader_id": None, "leader_address": None,
          "controllers": [{"controller_id": "c1", "address": "nowhere"}]},
         "controller address must be host:port, got 'nowhere'"),
        ({"type": "error", "code": "teapot", "message": "x"}, "Error.code: expected one of"),
    ],
)
def test_more_decode_errors(value: object, fragment: str) -> None:
    with pytest.raises(MessageDecodeError) as caught:
        from_wire(value)
    assert fragment in str(caught.value)


def test_decode_errors_carry_the_error_to_send() -> None:
    with pytest.raises(MessageDecodeError) as caught:
        from_wire({"type": "nope"})
    assert caught.value.reply == Error(ErrorCode.MALFORMED, "unknown message type 'nope'")
    assert ProtocolError("out of order").reply == Error(ErrorCode.PROTOCOL, "out of order")


def test_long_garbage_is_shortened_in_errors() -> None:
    with pytest.raises(MessageDecodeError) as caught:
        from_wire({**_heartbeat_wire(), "agent_id": 5, "sequence": "x" * 10_000})
    assert len(str(caught.value)) < 200


def test_local_construction_obeys_the_same_rules() -> None:
    with pytest.raises(ValueError, match="attempt must be 1 or more"):
        Completed("j", 0, 1, SHA, 1.0)
    with pytest.raises(ValueError, match="max_concurrent_transfers must be 1 or more"):
        AgentCapabilities(("file",), 0)
    with pytest.raises(ValueError, match="retries must not be negative"):
        TransferOptions(retries=-1)


def test_passwords_in_assigned_uris_stay_out_of_repr() -> None:
    assign = Assign("j", 1, "sftp://alice:s3cret@host/in.bin", "https://h/o?sig=abcd&x=1")
    shown = repr(assign)
    assert "s3cret" not in shown and "abcd" not in shown
    assert "sftp://alice:***@host/in.bin" in shown
    assert to_wire(assign)["source"] == "sftp://alice:s3cret@host/in.bin"


def test_tokens_stay_out_of_the_hello_repr() -> None:
    hello = Hello("quorus-agent", (1,), "a1", "token", {"token": "t0ps3cret"})
    assert "t0ps3cret" not in repr(hello)
    assert from_wire(to_wire(hello)) == hello


def test_register_carries_every_field_of_the_design() -> None:
    fields = {name for name, _ in field_types(Register)}
    assert {"agent_id", "hostname", "version", "capabilities", "resources", "location",
            "labels", "security"} <= fields
    nested = {name: {n for n, _ in field_types(tp)} for name, tp in field_types(Register)
              if dataclasses.is_dataclass(tp)}
    assert nested["capabilities"] == {"protocols", "max_concurrent_transfers",
                                      "max_bandwidth_mbps", "supported_features"}
    assert nested["resources"] == {"cpu", "memory", "storage", "network"}
    assert nested["location"] == {"datacenter", "zone", "region", "tags"}
    assert nested["security"] == {"certificate_fingerprint", "supported_auth_methods"}
    heartbeat = {name for name, _ in field_types(Heartbeat)}
    assert heartbeat == {"agent_id", "timestamp", "sequence", "status", "current_jobs",
                         "available_capacity", "metrics", "health", "last_job_completion",
                         "next_maintenance_window"}


def test_a_configured_address_and_the_announced_controller_are_one_entry() -> None:
    from quorus.core.agentproto.reconnect import ControllerDirectory
    from quorus.core.agentproto.records import ControllerAddress

    directory = ControllerDirectory([ControllerAddress("127.0.0.1:7070", "127.0.0.1:7070")])
    directory.learn([
        ControllerAddress("controller-1", "127.0.0.1:7070"),
        ControllerAddress("controller-2", "127.0.0.1:7071"),
    ])
    assert directory.controllers == [
        ControllerAddress("controller-1", "127.0.0.1:7070"),
        ControllerAddress("controller-2", "127.0.0.1:7071"),
    ]
    assert directory.current == ControllerAddress("controller-1", "127.0.0.1:7070")
