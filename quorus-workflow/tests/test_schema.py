"""The shipped JSON Schemas: valid 2020-12 schemas, self-contained for editors, consistent with
each other, and accepting or refusing the value shapes the definitions use."""

from __future__ import annotations

import json
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator
from quorus.workflow.schema import (
    KINDS,
    UnknownKindError,
    canonical_kind,
    schema_for,
    validator_for,
)

DESIGN = Path(__file__).parent / "data" / "design"
EXAMPLES = {
    "Transfer": "transfer-internal-data.yaml",
    "TransferGroup": "backup-workflow.yaml",
    "TransferWorkflow": "multi-tenant-workflow.yaml",
    "TenantConfiguration": "tenant-config.yaml",
}


def _refs(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "$ref":
                yield item
            else:
                yield from _refs(item)
    elif isinstance(value, list):
        for item in value:
            yield from _refs(item)


def test_kinds() -> None:
    assert KINDS == ("Transfer", "TransferGroup", "TransferWorkflow", "TenantConfiguration")


@pytest.mark.parametrize(("given", "kind"), [
    ("TransferGroup", "TransferGroup"), ("transfer-group", "TransferGroup"),
    ("transfergroup", "TransferGroup"), ("TRANSFER_WORKFLOW", "TransferWorkflow"),
    ("tenant-configuration", "TenantConfiguration"), ("transfer", "Transfer")])
def test_kind_names_accepted(given: str, kind: str) -> None:
    assert canonical_kind(given) == kind
    assert schema_for(given)["properties"]["kind"] == {"const": kind}


def test_unknown_kind_is_a_key_error_listing_the_kinds() -> None:
    with pytest.raises(KeyError) as caught:
        schema_for("TransferPlan")
    assert isinstance(caught.value, UnknownKindError)
    assert str(caught.value) == (
        "unknown kind 'TransferPlan': use one of Transfer, TransferGroup, TransferWorkflow, "
        "TenantConfiguration (or a hyphenated form such as transfer-group)")
    with pytest.raises(UnknownKindError):
        validator_for("plan")


def test_schema_for_returns_a_copy() -> None:
    schema_for("Transfer")["properties"].clear()
    assert "spec" in schema_for("Transfer")["properties"]


def test_validator_is_compiled_once() -> None:
    assert validator_for("transfer-group") is validator_for("TransferGroup")


@pytest.mark.parametrize("kind", KINDS)
def test_schema_file_is_a_self_contained_2020_12_schema(kind: str) -> None:
    schema = schema_for(kind)
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"].startswith("https://quorus.dev/schemas/v1/")
    refs = set(_refs(schema))
    assert refs, "the schema shares its definitions through $defs"
    for ref in refs:
        assert ref.startswith("#/$defs/"), ref
        assert ref.removeprefix("#/$defs/") in schema["$defs"], ref


@pytest.mark.parametrize("kind", KINDS)
def test_exported_schema_validates_the_design_example_on_its_own(kind: str) -> None:
    # As an editor would use it: the file alone, references resolved inside it.
    body = yaml.safe_load((DESIGN / EXAMPLES[kind]).read_text())
    assert list(Draft202012Validator(schema_for(kind)).iter_errors(body)) == []
    assert list(validator_for(kind).iter_errors(body)) == []


def test_definitions_shared_between_files_are_identical() -> None:
    files = resources.files("quorus.workflow").joinpath("schemas")
    defs: dict[str, tuple[str, Any]] = {}
    names = sorted(p.name for p in files.iterdir() if p.name.endswith(".json"))
    assert names == ["tenant-configuration.json", "transfer-group.json",
                     "transfer-workflow.json", "transfer.json"]
    for name in names:
        for key, value in json.loads(files.joinpath(name).read_text("utf-8"))["$defs"].items():
            first = defs.setdefault(key, (name, value))
            assert first[1] == value, f"$defs/{key} differs between {first[0]} and {name}"


def _accepts(kind: str, spec_path: list[str], value: Any) -> bool:
    """Whether ``value`` placed at ``spec_path`` of the design example is valid."""
    body = yaml.safe_load((DESIGN / EXAMPLES[kind]).read_text())
    holder = body["spec"]
    for key in spec_path[:-1]:
        holder = holder[key]
    holder[spec_path[-1]] = value
    return validator_for(kind).is_valid(body)


@pytest.mark.parametrize(("value", "ok"), [
    ("300s", True), ("500ms", True), ("10m", True), ("2h", True), ("1h30m", True),
    ("1.5s", True), (30, True), (2.5, True), ("30", False), ("3x", False), ("-1s", False),
    (-1, False), (True, False), ("", False)])
def test_durations(value: Any, ok: bool) -> None:
    assert _accepts("Transfer", ["retry", "initialDelay"], value) is ok


@pytest.mark.parametrize(("value", "ok"), [
    ("10MB", True), ("5GB", True), ("10TB", True), ("1.5GiB", True), ("512B", True),
    (1024, True), ("10 MB", True), ("10", False), ("10XB", False), (1.5, False),
    (-1, False)])
def test_sizes(value: Any, ok: bool) -> None:
    assert _accepts("Transfer", ["validation", "expectedSize", "min"], value) is ok


@pytest.mark.parametrize(("value", "ok"), [
    ("5%", True), ("80.5%", True), (5, True), ("5", False), ("150", False), (101, False)])
def test_percentages(value: Any, ok: bool) -> None:
    assert _accepts("TenantConfiguration", ["monitoring", "alerting", "thresholds", "errorRate"],
                    value) is ok


@pytest.mark.parametrize(("value", "ok"), [
    ("100Mbps", True), ("50MB/s", True), ("1Gbps", True), (1_000_000, True), ("fast", False),
    (0, False)])
def test_bandwidth(value: Any, ok: bool) -> None:
    assert _accepts("Transfer", ["bandwidth"], value) is ok


@pytest.mark.parametrize(("value", "ok"), [
    ("user-data", True), ("a", True), ("A_1", True), ("x" * 63, True), ("x" * 64, False),
    ("-lead", False), ("trail-", False), ("has.dot", False), ("group/step", False),
    ("", False)])
def test_names(value: Any, ok: bool) -> None:
    body = yaml.safe_load((DESIGN / "backup-workflow.yaml").read_text())
    body["metadata"]["name"] = value
    assert validator_for("TransferGroup").is_valid(body) is ok


@pytest.mark.parametrize(("field", "value", "ok"), [
    ("permissions", "640", True), ("permissions", "0750", True), ("permissions", 640, False),
    ("permissions", "680", False), ("protocol", "sftp", True), ("protocol", "SFTP", False)])
def test_endpoint_fields(field: str, value: Any, ok: bool) -> None:
    assert _accepts("Transfer", ["destination", field], value) is ok


@pytest.mark.parametrize(("checksum", "ok"), [
    ({"algorithm": "SHA-256", "value": "ab" * 32}, True),
    ({"algorithm": "MD5"}, False), ({"value": "ab" * 31}, False)])
def test_checksum(checksum: dict[str, Any], ok: bool) -> None:
    assert _accepts("Transfer", ["validation", "checksum"], checksum) is ok


@pytest.mark.parametrize(("trigger", "ok"), [
    ({"name": "t", "type": "cron", "schedule": "*/5 * * * *", "missedFires": "all"}, True),
    ({"name": "t", "type": "cron", "schedule": "0 2 * *"}, False),
    ({"name": "t", "type": "cron"}, False),
    ({"name": "t", "type": "fileSystem", "path": "/in/flag", "action": "create"}, True),
    ({"name": "t", "type": "fileSystem"}, False),
    ({"name": "t", "type": "webhook"}, False)])
def test_triggers(trigger: dict[str, Any], ok: bool) -> None:
    assert _accepts("TransferWorkflow", ["triggers"], [trigger]) is ok


@pytest.mark.parametrize(("holder", "ok"), [
    ({"ref": "daily-backup-workflow"}, True), ({"spec": {"transfers": []}}, False),
    ({}, False), ({"ref": "a", "spec": {"transfers": [{"name": "x", "source": {"path": "/a"},
                                                      "destination": {"path": "/b"}}]}}, False)])
def test_workflow_group_holds_a_spec_or_a_ref(holder: dict[str, Any], ok: bool) -> None:
    body = yaml.safe_load((DESIGN / "multi-tenant-workflow.yaml").read_text())
    body["spec"]["groups"][0]["transferGroup"] = holder
    assert validator_for("TransferWorkflow").is_valid(body) is ok


@pytest.mark.parametrize(("action", "ok"), [
    ({"action": "notify", "target": "slack://ops"}, True),
    ({"action": "pagerduty-alert", "options": {"severity": 2}}, True),
    ({"action": "Notify"}, False), ({"action": "cleanup", "retentionDays": -1}, False),
    ({"action": "rollback", "strategy": "deleteSome"}, False), ({"target": "x"}, False),
    ({"action": "notify", "channel": "x"}, False)])
def test_actions(action: dict[str, Any], ok: bool) -> None:
    assert _accepts("TransferGroup", ["onFailure"], [action]) is ok


def test_tenant_variables_may_nest() -> None:
    variables = {"storage": {"root": "/data/acme", "quota": {"soft": 5}}, "region": "us"}
    assert _accepts("TenantConfiguration", ["variables"], variables)
    assert not _accepts("TenantConfiguration", ["variables"], {"storage": {"roots": ["/a"]}})


def test_user_keyed_maps_take_any_names() -> None:
    assert _accepts("Transfer", ["source", "headers"], {"X-Anything": "v", "Retry-After": 5})
    assert _accepts("Transfer", ["monitoring", "tags"], {"any": "thing", "n": 1})
    assert not _accepts("Transfer", ["monitoring", "tags"], {"nested": {"no": 1}})
    assert _accepts("TransferWorkflow", ["environments"], {"dev": {"ROOT": "/tmp", "N": 2}})
