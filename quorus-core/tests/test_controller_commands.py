"""Controller records and commands: conversion to and from plain data in one place, JSON
without credentials, label selectors, and clear errors for malformed command bytes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import msgpack
import pytest
from quorus.core.controller import (
    AgentCapabilities,
    AgentLocation,
    AgentRecord,
    AgentState,
    AssignJob,
    AttemptRef,
    Command,
    CommandRegistry,
    CompleteAttempt,
    ForgetController,
    JobOptions,
    JobPlacement,
    JobRecord,
    LabelRequirement,
    MalformedCommandError,
    RecordController,
    RegisterAgent,
    Site,
    SubmitJob,
    decode,
)
from quorus.core.controller.codec import RecordFormatError, from_plain, to_plain
from quorus.core.controller.model import AgentResources, LabelOperator
from quorus.core.errors import InvalidURIError


def packed(value: Any) -> bytes:
    data: bytes = msgpack.packb(value, use_bin_type=True)
    return data


def full_agent() -> AgentRecord:
    return AgentRecord(
        id="agent-001", hostname="transfer-agent-001.corp.example", version="1.0.0",
        capabilities=AgentCapabilities(("http", "sftp"), 10, 1000.0, ("resume",)),
        resources=AgentResources(cpu_cores=4, cpu_architecture="x86_64", memory_total_mb=8192,
                                 network_interfaces=("eth0", "eth1")),
        location=AgentLocation("dc-east-1", "zone-a", "us-east", ("production",)),
        labels={"gpu": "true"}, state=AgentState.WORKING, registered_at=1.5,
        drain_deadline=None, tenant="acme", namespace="finance",
    )


def test_agent_record_round_trips_through_plain_data_and_msgpack() -> None:
    agent = full_agent()
    plain = agent.as_plain()
    assert plain["state"] == "working" and plain["capabilities"]["protocols"] == ["http", "sftp"]
    assert AgentRecord.from_plain(msgpack.unpackb(packed(plain))) == agent


def test_job_json_hides_real_uris_and_secret_options() -> None:
    command = SubmitJob.new(
        "sftp://bob:hunter2@files.example/in.bin", "/data/out.bin", job_id="j1", at=1.0,
        options=JobOptions(protocol_options={"sftp.password": "hunter2", "sftp.port": "2222"}),
    )
    job = JobRecord(
        id=command.job_id, source=command.source, destination=command.destination,
        source_display=command.source_display, destination_display=command.destination_display,
        source_scheme="sftp", destination_scheme="file", sequence=1, submitted_at=1.0,
        options=command.options,
    )
    shown = job.as_json()
    assert "hunter2" not in repr(shown)
    assert "source" not in shown and shown["source_display"] == "sftp://bob:***@files.example/in.bin"
    assert shown["options"]["protocol_options"] == {"sftp.password": "***", "sftp.port": "2222"}
    # The replicated form keeps what the agent needs.
    assert JobRecord.from_plain(job.as_plain()).source == "sftp://bob:hunter2@files.example/in.bin"


@pytest.mark.parametrize(("data", "message"), [
    ({"id": "a"}, None),
    ("nope", "AgentRecord: expected a map, got str"),
    ({"id": 5}, "AgentRecord.id: expected a string, got int"),
    ({"id": "a", "colour": "red"}, "unknown field(s) colour"),
    ({"id": "a", "state": "sleepy"}, "AgentRecord.state: 'sleepy' is not one of registering"),
    ({"id": "a", "registered_at": float("nan")}, "expected a finite number"),
    ({"id": "a", "registrations": True}, "expected an integer, got bool"),
    ({"id": "a", "capabilities": {"max_concurrent": 0}},
     "AgentRecord.capabilities: max_concurrent must be at least 1"),
    ({"id": "a", "labels": {"k": 1}}, "AgentRecord.labels['k']: expected a string"),
    ({"hostname": "h"}, "missing field id"),
])
def test_malformed_records_are_refused_with_the_field_named(data: Any, message: str | None) -> None:
    if message is None:
        assert from_plain(AgentRecord, data) == AgentRecord("a")
        return
    with pytest.raises(RecordFormatError) as caught:
        from_plain(AgentRecord, data)
    assert message in str(caught.value)


def test_to_plain_refuses_what_it_cannot_convert() -> None:
    with pytest.raises(TypeError):
        to_plain(object())


@pytest.mark.parametrize(("text", "operator", "matching", "not_matching"), [
    ("gpu=true", LabelOperator.EQUALS, {"gpu": "true"}, {"gpu": "false"}),
    ("gpu!=true", LabelOperator.NOT_EQUALS, {}, {"gpu": "true"}),
    ("gpu", LabelOperator.EXISTS, {"gpu": ""}, {}),
    ("!gpu", LabelOperator.ABSENT, {"x": "1"}, {"gpu": "1"}),
])
def test_label_selectors(text: str, operator: LabelOperator, matching: dict[str, str],
                         not_matching: dict[str, str]) -> None:
    requirement = LabelRequirement.parse(text)
    assert requirement.operator is operator and str(requirement) == text
    assert requirement.matches(matching) and not requirement.matches(not_matching)


@pytest.mark.parametrize("text", ["", "=x", "!", "bad key=1"])
def test_bad_label_selectors_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="invalid label selector"):
        LabelRequirement.parse(text)


def test_site_containment() -> None:
    agent_site = Site("eu", "dc1", "z1")
    assert Site(zone="z1").contains(agent_site)
    assert Site("eu").contains(agent_site)
    assert not Site(datacenter="dc2").contains(agent_site)
    assert str(Site("eu", None, "z1")) == "eu/z1" and str(Site()) == "anywhere"


def test_every_builtin_command_round_trips() -> None:
    commands: list[Command] = [
        RegisterAgent("a1", 1.0, capabilities=AgentCapabilities(("file",), 3),
                      location=AgentLocation(zone="z"), labels={"a": "b"},
                      holding=(AttemptRef("j", 2),)),
        SubmitJob.new("/a", "sftp://h/b", job_id="j", at=2.0, priority=5,
                      placement=JobPlacement(affinity=(LabelRequirement.parse("gpu"),),
                                             preferred_site=Site(zone="z"))),
        AssignJob("j", "a1", 1, 3.0),
        CompleteAttempt("j", "a1", 1, 4.0, 12, "0f" * 32),
        RecordController("c4", "10.0.0.4:7070", "ctl-4.example:7080"),
        RecordController("c5", http="10.0.0.5:7080"),
        ForgetController("c4"),
    ]
    for command in commands:
        data = command.encode()
        assert msgpack.unpackb(data)[0] == command.NAME
        assert decode(data) == command


@pytest.mark.parametrize(("fields", "message"), [
    ({"agents": "no-port"}, "invalid agents address 'no-port'"),
    ({"http": "host name:80"}, "invalid http address"),
    ({"http": "[::1]:80"}, "invalid http address"),
    ({"agents": "h:0"}, "invalid agents address 'h:0'"),
    ({"agents": "h:65536"}, "invalid agents address"),
    ({"agents": "h" * 300 + ":1"}, "invalid agents address"),
    ({}, "give its agents or http address"),
    ({"node_id": "", "agents": "h:1"}, "invalid controller id"),
])
def test_a_recorded_controller_needs_host_port_addresses(fields: dict[str, str],
                                                          message: str) -> None:
    values = {"node_id": "c4", **fields}
    with pytest.raises(ValueError, match=message.replace("[", r"\[")):
        RecordController(**values)
    # Bytes carrying one are refused as malformed, naming the field.
    data = msgpack.packb(["record-controller", values], use_bin_type=True)
    with pytest.raises(MalformedCommandError, match="malformed record-controller"):
        decode(data)


def test_submit_new_parses_and_redacts() -> None:
    command = SubmitJob.new("https://user:pw@host/x?sig=abc", "file:///srv/y", job_id="j", at=1.0)
    assert (command.source_scheme, command.destination_scheme) == ("https", "file")
    assert command.source == "https://user:pw@host/x?sig=abc"
    assert "pw" not in command.source_display and "abc" not in command.source_display
    assert command.destination == command.destination_display == "/srv/y"
    with pytest.raises(InvalidURIError, match="relative"):
        SubmitJob.new("data/in", "/out", job_id="j", at=1.0)
    with pytest.raises(InvalidURIError):
        SubmitJob.new("sftp://", "/out", job_id="j", at=1.0)


@pytest.mark.parametrize(("data", "message"), [
    (b"", "not valid msgpack"),
    (b"\xc1", "not valid msgpack"),
    (packed(["assign-job", {}]) + b"\x00", "more than one msgpack value"),
    (packed({"assign-job": {}}), "a command is [name, {fields}]"),
    (packed(["assign-job"]), "a command is [name, {fields}]"),
    (packed(["reboot", {}]), "unknown command 'reboot'"),
    (packed(["assign-job", []]), "malformed assign-job command: assign-job: expected a map"),
    (packed(["assign-job", {"job_id": "j", "agent_id": "a", "attempt": 1}]), "missing field at"),
    (packed(["assign-job", {"job_id": "j", "agent_id": "a", "attempt": "1", "at": 1.0}]),
     "assign-job.attempt: expected an integer, got str"),
    (packed(["assign-job", {"job_id": "j", "agent_id": "a", "attempt": 0, "at": 1.0}]),
     "attempt numbers start at 1"),
    (packed(["assign-job", {"job_id": "j", "agent_id": "a", "attempt": 1, "at": 1.0, "x": 1}]),
     "unknown field(s) x"),
    (packed(["complete-attempt", {"job_id": "j", "agent_id": "a", "attempt": 1, "at": 1.0,
                                  "bytes_transferred": 1, "sha256": "XYZ"}]),
     "sha256 must be 64 lower-case hex digits"),
    (packed(["register-agent", {"agent_id": "", "at": 1.0}]), "invalid agent id ''"),
    (packed(["register-agent", {1: "x"}]), "not valid msgpack"),
])
def test_malformed_command_bytes_are_refused_clearly(data: bytes, message: str) -> None:
    with pytest.raises(MalformedCommandError) as caught:
        decode(data)
    assert message in str(caught.value)


def test_registry_takes_extra_commands_and_refuses_name_clashes() -> None:
    @dataclass(frozen=True, slots=True)
    class CreateTenant(Command):
        NAME: ClassVar[str] = "create-tenant"
        tenant_id: str

    @dataclass(frozen=True, slots=True)
    class Impostor(Command):
        NAME: ClassVar[str] = "assign-job"

    registry = CommandRegistry([CreateTenant])
    assert registry.decode(CreateTenant("acme").encode()) == CreateTenant("acme")
    with pytest.raises(MalformedCommandError, match="unknown command 'create-tenant'"):
        decode(CreateTenant("acme").encode())
    with pytest.raises(ValueError, match="'assign-job' is taken"):
        CommandRegistry([Impostor])
