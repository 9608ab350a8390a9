"""A step with its references bound: the concrete source and destination, the protocol options
and the transfer settings, as the local engine (a :class:`TransferRequest`) or the controller
(a job) takes them. :meth:`BoundStep.request` is the one place a step's settings become a
request: the controller's job options are read from it
(:func:`quorus.workflow.controller.jobs.job_options`), so a step checks the same things here
and on the quorum.

The expected size is the transfer's own ``expectedSize``, exactly, when it gives one (the
agents check a job's expected size exactly, and tenant quotas reserve it), else the bounds of
its ``validation.expectedSize`` (defaults merged); the definition refuses an ``expectedSize``
outside those bounds.

``path`` locations are local paths (``protocol`` ``file``, or ``nfs`` for a path on a mounted
export); ``uri`` locations carry their scheme, which must agree with ``protocol`` when both are
given. ``headers``, ``timeout`` and ``authentication`` (``basic``, ``bearer`` or ``none``)
become the protocol's options, beside the free-form ``options`` map.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from quorus.core.engine import OverwritePolicy, RetryPolicy, SizeRange, TransferRequest
from quorus.core.errors import ConfigurationError
from quorus.core.uri import parse_location
from quorus.workflow.model import GLOBAL_RETRY, Endpoint, GroupDefinition, TransferStep

if TYPE_CHECKING:
    from quorus.workflow.binding import Binder
    from quorus.workflow.execution import Execution

_PATH_PROTOCOLS = (None, "file", "nfs")
_AUTH_TYPES = ("basic", "bearer", "none")


@dataclass(frozen=True, slots=True)
class BoundStep:
    """Everything needed to move one step's file."""

    step: TransferStep
    source: str
    destination: str
    protocol_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @property
    def options_key(self) -> str:
        """Steps with equal keys can share one engine (and its connections)."""
        return json.dumps(self.protocol_options, sort_keys=True, default=str)

    @property
    def source_display(self) -> str:
        return parse_location(self.source).redacted()

    @property
    def destination_display(self) -> str:
        return parse_location(self.destination).redacted()

    def retry_policy(self) -> RetryPolicy:
        retry = self.step.retry.over(GLOBAL_RETRY)
        return RetryPolicy(max_attempts=retry.max_attempts or 1,
                           initial_delay=retry.initial_delay or 0.0,
                           max_delay=retry.max_delay or 0.0,
                           backoff=retry.backoff or "exponential")

    def request(self) -> TransferRequest:
        """The request for this step: what the local engine runs, and what the controller's
        job options are read from."""
        step = self.step
        mode = step.destination.permissions
        return TransferRequest.create(
            self.source, self.destination, checksum=step.checksum,
            size=size_range(step),
            retry=self.retry_policy(),
            overwrite=OverwritePolicy.OVERWRITE if step.overwrite in (None, True)
            else OverwritePolicy.FAIL,
            create_directories=step.destination.create_directories is not False,
            mode=int(mode, 8) if mode else None,
            bandwidth_limit=step.bandwidth, streams=step.streams,
            request_id=step.step_id,
        )


def size_range(step: TransferStep) -> SizeRange | None:
    """The size ``step``'s source must have (see the module docstring), or ``None``."""
    if step.expected_size is not None:
        return SizeRange(step.expected_size, step.expected_size)
    if step.size_min is None and step.size_max is None:
        return None
    if step.size_min is not None and step.size_max is not None and step.size_min > step.size_max:
        raise ConfigurationError(
            f"the expected size of {step.step_id}: the minimum ({step.size_min} bytes) "
            f"exceeds the maximum ({step.size_max} bytes)")
    return SizeRange(step.size_min, step.size_max)


def bind_step(binder: Binder, step: TransferStep, group: GroupDefinition,
              execution: Execution | None) -> BoundStep:
    """Bind ``step``; raises :class:`~quorus.workflow.binding.Unbound` or
    :class:`ConfigurationError` saying what is wrong."""
    source = _location(binder, step.source, group, execution, "source")
    destination = _location(binder, step.destination, group, execution, "destination")
    options: dict[str, dict[str, Any]] = {}
    for endpoint, location in ((step.source, source), (step.destination, destination)):
        scheme = parse_location(location).scheme
        bound = binder.render(dict(endpoint.options), group=group, execution=execution)
        converted = _protocol_options(scheme, bound)
        if scheme in options and options[scheme] and converted and options[scheme] != converted:
            raise ConfigurationError(
                    f"source and destination of {step.step_id} both use {scheme} with "
                    f"different options; one engine holds one set of options per protocol")
        if converted or scheme not in options:
            options[scheme] = converted
    return BoundStep(step, source, destination,
                     {k: v for k, v in options.items() if v})


def _location(binder: Binder, endpoint: Endpoint, group: GroupDefinition,
              execution: Execution | None, what: str) -> str:
    text = str(binder.render(endpoint.location, group=group, execution=execution))
    if not text:
        raise ConfigurationError(f"the {what} is empty once bound")
    if endpoint.is_path:
        if endpoint.protocol not in _PATH_PROTOCOLS:
            raise ConfigurationError(
                f"{what} {text!r}: a path is a local file (protocol file, or nfs for a "
                f"mounted export); for protocol {endpoint.protocol!r} write a uri")
        return text
    scheme = parse_location(text).scheme
    if endpoint.protocol and endpoint.protocol != scheme:
        raise ConfigurationError(
            f"{what} {parse_location(text).redacted()!r} is {scheme}, but protocol says "
            f"{endpoint.protocol!r}")
    return text


def _protocol_options(scheme: str, options: Mapping[str, Any]) -> dict[str, Any]:
    converted: dict[str, Any] = {}
    for key, value in options.items():
        if key == "headers":
            if scheme not in ("http", "https"):
                raise ConfigurationError(f"headers apply to http and https, not {scheme}")
            converted["headers"] = {str(k): str(v) for k, v in dict(value).items()}
        elif key == "authentication":
            converted.update(_authentication(scheme, dict(value)))
        elif key == "timeout":
            if value is not None and scheme in ("http", "https"):
                converted["timeout"] = value
        else:
            converted[key] = value
    return converted


def _authentication(scheme: str, block: Mapping[str, Any]) -> dict[str, Any]:
    kind = block.get("type", "none")
    if kind == "none":
        return {}
    if kind == "basic":
        return {"username": block.get("username"), "password": block.get("password")}
    if kind == "bearer":
        if scheme not in ("http", "https"):
            raise ConfigurationError(f"bearer authentication applies to http(s), not {scheme}")
        return {"bearer_token": block.get("token")}
    raise ConfigurationError(
        f"authentication type {kind!r} cannot be used here: Quorus supports "
        f"{', '.join(_AUTH_TYPES)} (or the protocol's own options)")


__all__ = ["BoundStep", "bind_step", "size_range"]
