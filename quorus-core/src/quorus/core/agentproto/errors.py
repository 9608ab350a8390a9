"""The errors of the agent protocol: what to send the peer before closing the connection.

Each carries the :class:`~quorus.core.agentproto.messages.Error` to send (:attr:`reply`):
the runtime sends it, then closes the connection. They are
:class:`~quorus.core.wire.WireError`\\ s, so a runtime that already handles bad frames handles
these the same way.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

from quorus.core.errors import QuorusError
from quorus.core.wire import WireError

if TYPE_CHECKING:
    from quorus.core.agentproto.messages import Error


class ErrorCode(enum.StrEnum):
    """Why a side closes the connection, as carried by an ``Error`` message."""

    #: A frame is not a valid agent-protocol message (unknown type, missing or mistyped field).
    MALFORMED = "malformed"
    #: A valid message arrived where the protocol does not allow it.
    PROTOCOL = "protocol"
    #: The hello's credentials were refused.
    UNAUTHORIZED = "unauthorized"
    #: The two sides share no protocol version.
    VERSION = "version"
    #: The handshake did not finish in time, or the peer went silent.
    TIMEOUT = "timeout"
    #: The controller failed while handling a request; the agent reconnects.
    INTERNAL = "internal"


class AgentProtocolError(WireError):
    """The connection must close; send :attr:`reply` first."""

    code: ErrorCode = ErrorCode.PROTOCOL

    @property
    def reply(self) -> Error:
        """The ``Error`` message telling the peer why."""
        from quorus.core.agentproto.messages import Error  # messages imports this module

        return Error(self.code, str(self))


class MessageDecodeError(AgentProtocolError):
    """A received value is not an agent-protocol message: unknown type, a missing, unknown or
    mistyped field, or a value out of range. The text names the message and field."""

    code = ErrorCode.MALFORMED


class ProtocolError(AgentProtocolError):
    """A well-formed message arrived out of order or was not expected in this state."""

    code = ErrorCode.PROTOCOL


class AuthenticationRefused(AgentProtocolError):
    """The agent's hello carried credentials the controller does not accept."""

    code = ErrorCode.UNAUTHORIZED


class VersionMismatch(AgentProtocolError):
    """The peer speaks another protocol, or no version this side speaks."""

    code = ErrorCode.VERSION


class SessionStateError(QuorusError, RuntimeError):
    """The runtime called a session method its state does not allow (e.g. ``assign`` before
    the agent registered): a bug in the runtime, not in the peer."""


__all__ = [
    "AgentProtocolError",
    "AuthenticationRefused",
    "ErrorCode",
    "MessageDecodeError",
    "ProtocolError",
    "SessionStateError",
    "VersionMismatch",
]
