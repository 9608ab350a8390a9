"""What every post-execution action shares: the context it runs in, the interface it
implements, its error, how it opens a transfer protocol, and how it reads and redacts the
values of its spec."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol, runtime_checkable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from quorus.core.engine import TransferEngine
from quorus.core.errors import InvalidURIError, QuorusError
from quorus.core.plugins import PROTOCOLS, PluginRegistry, registry
from quorus.core.protocol import ProtocolOptions, TransferProtocol
from quorus.core.uri import SECRET_QUERY_PARAMETERS, Location, parse_location
from quorus.workflow.actions.settings import ActionSettings
from quorus.workflow.summary import ActionOutcome, ExecutionSummary

#: Opens the protocol serving a URI scheme for the length of an ``async with``.
ProtocolOpener = Callable[[str], AbstractAsyncContextManager[TransferProtocol]]


class ActionError(QuorusError):
    """An action's spec is wrong or the action failed; the message says which and what to do.
    The runner turns it into a failed :class:`ActionOutcome`."""


def default_protocol_opener(
    options: Mapping[str, ProtocolOptions] | None = None,
    plugin_registry: PluginRegistry | None = None,
) -> ProtocolOpener:
    """An opener that loads a scheme's protocol plugin, creates an instance with
    ``options[scheme]`` and closes it when the ``async with`` ends."""
    by_scheme = {scheme: dict(opts) for scheme, opts in (options or {}).items()}

    @contextlib.asynccontextmanager
    async def open_protocol(scheme: str) -> AsyncIterator[TransferProtocol]:
        try:
            factory = (plugin_registry or registry()).load(PROTOCOLS, scheme)
        except QuorusError as exc:
            raise ActionError(str(exc)) from None
        if not (isinstance(factory, type) and issubclass(factory, TransferProtocol)):
            raise ActionError(f"protocol plugin {scheme!r} is {factory!r}, not a TransferProtocol")
        async with factory(by_scheme.get(scheme, {})) as protocol:
            yield protocol

    return open_protocol


def engine_protocol_opener(engine: TransferEngine) -> ProtocolOpener:
    """An opener lending ``engine``'s protocol instances, with the options (credentials,
    CA bundles) the engine was given; the engine keeps ownership and closes them."""

    @contextlib.asynccontextmanager
    async def open_protocol(scheme: str) -> AsyncIterator[TransferProtocol]:
        try:
            protocol = engine.protocol(Location(scheme=scheme, host=None, port=None, path="/"))
        except QuorusError as exc:
            raise ActionError(str(exc)) from None
        yield protocol

    return open_protocol


@dataclass(frozen=True, slots=True)
class ActionContext:
    """Where and how actions run.

    ``dry_run``: report what each action would do and do nothing. ``now``: the time (epoch
    seconds) cleanup measures ages from. ``destinations``: step name → real destination, for
    steps whose :attr:`StepOutcome.destination` is redacted (credentials in a URI); rollback
    prefers it. ``open_protocol`` opens a scheme's protocol; by default its plugin is loaded
    with no options.
    """

    settings: ActionSettings = field(default_factory=ActionSettings)
    dry_run: bool = False
    open_protocol: ProtocolOpener | None = None
    now: float = field(default_factory=time.time)
    destinations: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def protocol(self, scheme: str) -> AbstractAsyncContextManager[TransferProtocol]:
        """The protocol for ``scheme`` for the length of an ``async with``."""
        opener = self.open_protocol or default_protocol_opener()
        return opener(scheme)


class WorkflowAction(Protocol):
    """A named ``onSuccess``/``onFailure`` action. It may raise :class:`ActionError` (or any
    exception): the runner records it as a failed outcome and goes on with the next action."""

    async def __call__(
        self, spec: Mapping[str, Any], summary: ExecutionSummary, context: ActionContext
    ) -> ActionOutcome: ...


@runtime_checkable
class ValidatingAction(Protocol):
    """An action that can also find problems in its spec before anything runs."""

    def validate(self, spec: Mapping[str, Any]) -> list[str]: ...


def is_template(value: object) -> bool:
    """True for a value still holding ``${...}`` references: it is checked once bound."""
    return isinstance(value, str) and "${" in value


def spec_text(spec: Mapping[str, Any], key: str, action: str, *, default: str | None = None
              ) -> str:
    """The string ``spec[key]``; missing or not a string is an :class:`ActionError`."""
    value = spec.get(key, default)
    if value is None:
        raise ActionError(f"{action}: {key!r} is required")
    if not isinstance(value, str):
        raise ActionError(f"{action}: {key!r} must be a string, not {type(value).__name__}")
    return value


def spec_number(value: object, key: str, action: str) -> float:
    """A number given as a number or as text (bound templates are text)."""
    if isinstance(value, bool):
        raise ActionError(f"{action}: {key!r} must be a number, not {value!r}")
    number = None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        with contextlib.suppress(ValueError):
            number = float(value)
    if number is None or not math.isfinite(number):
        raise ActionError(f"{action}: {key!r} must be a number, not {value!r}")
    return number


def redact_url(url: str) -> str:
    """``url`` safe to show: any user information replaced by ``***`` and the values of
    query parameters that carry credentials (tokens, signatures) masked."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "<unparseable URL>"
    netloc = parts.hostname or ""
    if ":" in netloc:
        netloc = f"[{netloc}]"
    if port is not None:
        netloc = f"{netloc}:{port}"
    if parts.username is not None or parts.password is not None:
        netloc = f"***@{netloc}"
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    query = urlencode(
        [(k, "***" if k.lower() in SECRET_QUERY_PARAMETERS else v) for k, v in pairs], safe="*"
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def parse_target(text: str, action: str) -> Location:
    """A path or URI naming where an action works, as a :class:`Location`."""
    try:
        return parse_location(text)
    except InvalidURIError as exc:
        raise ActionError(f"{action}: {exc}") from None


def show_location(location: Location) -> str:
    """A location for people: the local path, or the URI without any credentials."""
    return location.path if location.scheme == "file" else redact_url(location.url())


__all__ = [
    "ActionContext",
    "ActionError",
    "ProtocolOpener",
    "ValidatingAction",
    "WorkflowAction",
    "default_protocol_opener",
    "engine_protocol_opener",
    "is_template",
    "parse_target",
    "redact_url",
    "show_location",
    "spec_number",
    "spec_text",
]
