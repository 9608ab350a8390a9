"""Bound steps: locations as paths or URIs, protocols that must agree with schemes, headers
and authentication turned into protocol options, and the engine request's settings."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from quorus.core.engine import OverwritePolicy
from quorus.core.errors import ConfigurationError
from quorus.workflow.binding import Binder, RunContext
from quorus.workflow.bound import BoundStep, bind_step
from quorus.workflow.controller.jobs import job_options
from quorus.workflow.documents import DefinitionError, load_text
from quorus.workflow.model import WorkflowDefinition, build_definitions

CHECKSUM = "AB" * 32


def definition(transfer: dict[str, Any], defaults: dict[str, Any] | None = None,
               group_defaults: dict[str, Any] | None = None) -> WorkflowDefinition:
    group_spec: dict[str, Any] = {"transfers": [{"name": "t", **transfer}]}
    if group_defaults:
        group_spec["defaults"] = group_defaults
    spec: dict[str, Any] = {"variables": {"HOST": "files.example", "TOKEN": "tok"},
                            "groups": [{"name": "g", "transferGroup": {"spec": group_spec}}]}
    if defaults:
        spec["defaults"] = defaults
    text = yaml.safe_dump({"apiVersion": "quorus.dev/v1", "kind": "TransferWorkflow",
                           "metadata": {"name": "wf"}, "spec": spec}, sort_keys=False)
    return build_definitions(load_text(text, "wf.yaml")).select()


def bound(transfer: dict[str, Any], **kw: Any) -> BoundStep:
    wf = definition(transfer, **kw)
    binder = Binder(wf, RunContext(started_at=0.0))
    group = wf.group("g")
    return bind_step(binder, group.transfers[0], group, None)


def test_paths_and_uris_are_bound() -> None:
    b = bound({"source": {"uri": "https://${HOST}/export?x=1"},
               "destination": {"path": "/data/${HOST}/out.json"}})
    assert (b.source, b.destination) == ("https://files.example/export?x=1",
                                         "/data/files.example/out.json")
    assert b.protocol_options == {}


def test_credentials_are_redacted_for_display() -> None:
    b = bound({"source": {"uri": "sftp://alice:pw@${HOST}/in.bin"},
               "destination": {"path": "/data/in.bin"}})
    assert "pw" not in b.source_display and "alice" in b.source_display
    assert b.source == "sftp://alice:pw@files.example/in.bin"


def test_a_path_with_a_remote_protocol_asks_for_a_uri() -> None:
    with pytest.raises(ConfigurationError, match="for protocol 'sftp' write a uri"):
        bound({"source": {"path": "/in", "protocol": "sftp"}, "destination": {"path": "/o"}})
    nfs = bound({"source": {"path": "/mnt/in", "protocol": "nfs"},
                 "destination": {"path": "/o"}})
    assert nfs.source == "/mnt/in"


def test_a_uri_whose_scheme_disagrees_with_the_protocol_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="is https, but protocol says 'sftp'"):
        bound({"source": {"uri": "https://h/x", "protocol": "sftp"},
               "destination": {"path": "/o"}})
    ok = bound({"source": {"uri": "https://h/x", "protocol": "https"},
                "destination": {"path": "/o"}})
    assert ok.source == "https://h/x"


def test_headers_and_timeout_become_http_options() -> None:
    b = bound({"source": {"uri": "https://h/x", "headers": {"Authorization": "Bearer ${TOKEN}",
                                                           "X-Count": 3},
                          "timeout": "30s"},
               "destination": {"path": "/o"}})
    assert b.protocol_options == {"https": {"headers": {"Authorization": "Bearer tok",
                                                        "X-Count": "3"}, "timeout": 30.0}}


def test_headers_on_a_protocol_without_headers_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="headers apply to http and https, not sftp"):
        bound({"source": {"uri": "sftp://h/x", "headers": {"A": "b"}},
               "destination": {"path": "/o"}})


@pytest.mark.parametrize(("auth", "expected"), [
    ({"type": "basic", "username": "u", "password": "${TOKEN}"},
     {"username": "u", "password": "tok"}),
    ({"type": "bearer", "token": "${TOKEN}"}, {"bearer_token": "tok"}),
    ({"type": "none"}, {}),
])
def test_authentication_types(auth: dict[str, Any], expected: dict[str, Any]) -> None:
    b = bound({"source": {"uri": "https://h/x", "authentication": auth},
               "destination": {"path": "/o"}})
    assert dict(b.protocol_options.get("https", {})) == expected


def test_unsupported_authentication_names_the_supported_types() -> None:
    with pytest.raises(ConfigurationError, match="authentication type 'tenant-oauth2' cannot be "
                                                 "used here: Quorus supports basic, bearer, "
                                                 "none"):
        bound({"source": {"uri": "https://h/x", "authentication": {"type": "tenant-oauth2"}},
               "destination": {"path": "/o"}})
    with pytest.raises(ConfigurationError, match="bearer authentication applies to http"):
        bound({"source": {"uri": "sftp://h/x", "authentication": {"type": "bearer",
                                                                  "token": "t"}},
               "destination": {"path": "/o"}})


def test_source_and_destination_with_different_options_on_one_protocol_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="both use https with different options"):
        bound({"source": {"uri": "https://a/x", "headers": {"A": "1"}},
               "destination": {"uri": "https://b/y", "headers": {"A": "2"}}})


def test_request_carries_the_transfer_settings() -> None:
    b = bound({"source": {"path": "/in"},
               "destination": {"path": "/out", "permissions": "640",
                               "createDirectories": False},
               "validation": {"checksum": {"algorithm": "SHA-256", "value": CHECKSUM},
                              "expectedSize": {"min": "1KB", "max": "2KB"}},
               "overwrite": False, "bandwidth": "10MB/s", "streams": 4})
    request = b.request()
    assert request.checksum is not None
    assert (request.checksum.algorithm, request.checksum.hexdigest) == ("sha256",
                                                                        CHECKSUM.lower())
    assert request.size is not None
    assert (request.size.min, request.size.max) == (1000, 2000)
    assert request.overwrite is OverwritePolicy.FAIL
    assert request.create_directories is False
    assert request.mode == 0o640
    assert request.bandwidth_limit == 10_000_000
    assert request.streams == 4
    assert request.request_id == "g/t"


def test_request_defaults_overwrite_and_create_directories() -> None:
    request = bound({"source": {"path": "/in"}, "destination": {"path": "/out"}}).request()
    assert request.overwrite is OverwritePolicy.OVERWRITE
    assert request.create_directories is True
    assert (request.checksum, request.size, request.mode) == (None, None, None)


def test_an_open_ended_size_range() -> None:
    request = bound({"source": {"path": "/in"}, "destination": {"path": "/out"},
                     "validation": {"expectedSize": {"min": "1MB"}}}).request()
    assert request.size is not None and (request.size.min, request.size.max) == (
        1_000_000, None)


def test_retry_is_merged_key_by_key_from_global_to_transfer() -> None:
    b = bound({"source": {"path": "/in"}, "destination": {"path": "/out"},
               "retry": {"initialDelay": "500ms"}},
              defaults={"retry": {"maxAttempts": 7, "maxDelay": "1m"}},
              group_defaults={"retry": {"backoff": "linear"}})
    policy = b.request().retry
    assert (policy.max_attempts, policy.backoff, policy.initial_delay, policy.max_delay) == (
        7, "linear", 0.5, 60.0)


def test_retry_defaults_are_the_global_ones() -> None:
    policy = bound({"source": {"path": "/in"}, "destination": {"path": "/out"}}).retry_policy()
    assert (policy.max_attempts, policy.backoff, policy.initial_delay, policy.max_delay) == (
        3, "exponential", 1.0, 30.0)


def test_validation_defaults_merge_key_by_key_and_the_transfer_wins() -> None:
    other = "cd" * 32
    b = bound({"source": {"path": "/in"}, "destination": {"path": "/out"},
               "validation": {"expectedSize": {"max": "2MB"}}},
              defaults={"validation": {"expectedSize": {"min": "1KB", "max": "1GB"},
                                       "checksum": {"algorithm": "SHA-256",
                                                    "value": CHECKSUM}}},
              group_defaults={"validation": {"expectedSize": {"max": "10MB"},
                                             "checksum": {"value": other}}})
    request = b.request()
    assert request.size is not None and (request.size.min, request.size.max) == (
        1000, 2_000_000)
    assert request.checksum is not None and request.checksum.hexdigest == other
    # Without a value of its own at any level below, the workflow's default applies.
    only_workflow = bound({"source": {"path": "/in"}, "destination": {"path": "/out"}},
                          defaults={"validation": {"expectedSize": {"max": "10B"},
                                                   "checksum": {"value": CHECKSUM}}})
    request = only_workflow.request()
    assert request.size is not None and (request.size.min, request.size.max) == (None, 10)
    assert request.checksum is not None and request.checksum.hexdigest == CHECKSUM.lower()


def test_size_bounds_that_contradict_once_merged_are_a_definition_error() -> None:
    with pytest.raises(DefinitionError, match=r"minimum size \(5000 bytes\) exceeds the "
                                              r"maximum \(10 bytes\), defaults included"):
        definition({"source": {"path": "/in"}, "destination": {"path": "/out"},
                    "validation": {"expectedSize": {"min": "5KB"}}},
                   group_defaults={"validation": {"expectedSize": {"max": "10B"}}})


def test_data_quality_in_defaults_is_refused_like_the_transfers_own() -> None:
    wf = definition({"source": {"path": "/in"}, "destination": {"path": "/out"}},
                    defaults={"validation": {"dataQuality": {"validateSchema": True}}})
    assert [n.level for _, n in wf.all_notices() if "dataQuality" in n.message] == ["error"]


@pytest.mark.parametrize(("transfer", "size", "job"), [
    ({"expectedSize": "5KB"}, (5000, 5000), (5000, None, None)),
    ({"expectedSize": "5KB", "validation": {"expectedSize": {"min": "1KB", "max": "1MB"}}},
     (5000, 5000), (5000, None, None)),
    ({"validation": {"expectedSize": {"min": "1KB"}}}, (1000, None), (None, 1000, None)),
    ({"validation": {"expectedSize": {"min": "1KB", "max": "1KB"}}}, (1000, 1000),
     (1000, None, None)),
    ({}, None, (None, None, None)),
])
def test_the_job_checks_what_the_local_request_checks(
        transfer: dict[str, Any], size: tuple[int | None, int | None] | None,
        job: tuple[int | None, int | None, int | None]) -> None:
    b = bound({"source": {"path": "/in"}, "destination": {"path": "/out", "permissions": "640"},
               "overwrite": False, "bandwidth": "10MB/s", "streams": 2, **transfer},
              defaults={"validation": {"checksum": {"value": CHECKSUM}}})
    request = b.request()
    assert (None if request.size is None else (request.size.min, request.size.max)) == size
    options = job_options(b)
    assert (options.expected_size, options.size_min, options.size_max) == job
    assert options.checksum == str(request.checksum) == f"sha256:{CHECKSUM.lower()}"
    assert (options.overwrite, options.mode, options.create_directories, options.streams,
            options.bandwidth_mbps) == ("fail", 0o640, True, 2, 80.0)


def test_an_expected_size_outside_the_validation_bounds_is_a_definition_error() -> None:
    with pytest.raises(DefinitionError, match=r"expectedSize \(5000 bytes\) is outside "
                                              r"validation.expectedSize \(..10 bytes\)"):
        definition({"source": {"path": "/in"}, "destination": {"path": "/out"},
                    "expectedSize": "5KB"},
                   defaults={"validation": {"expectedSize": {"max": "10B"}}})


def test_an_empty_location_once_bound_is_refused() -> None:
    wf = definition({"source": {"path": "${EMPTY}"}, "destination": {"path": "/o"}})
    binder = Binder(wf, RunContext(started_at=0.0, sets={"EMPTY": ""}))
    group = wf.group("g")
    with pytest.raises(ConfigurationError, match="the source is empty once bound"):
        bind_step(binder, group.transfers[0], group, None)
