"""The agent protocol: how agents and controllers talk, as messages and sans-IO sessions.

An agent keeps one TCP connection to the controller quorum's leader. Every frame is one
msgpack map (:mod:`quorus.core.wire` framing, with its size limit) holding a ``type`` and one
key per field. :mod:`~quorus.core.agentproto.messages` defines the messages and their one
conversion (:func:`to_wire`, :func:`from_wire`); :mod:`~quorus.core.agentproto.session` the
two ends, :class:`AgentSession` and :class:`ControllerSession`, which take decoded messages and
the time and return what to send and what to do, without any I/O.

Order on a connection::

    agent                                   controller
    hello(quorus-agent, [1], agent id, token) ─►
                                            ◄─ hello(quorus-agent, [1], controller id)
                                               (or error unauthorized/version, then close)
    register(capabilities, resources, location, labels, security, current jobs) ─►
                                            ◄─ registered(accepted, heartbeat interval,
                                               progress interval, attempts to abort, controllers)
                                               or redirect(leader, controllers), then close
    heartbeat(sequence, status, jobs, capacity, metrics, health) ─►  ◄─ heartbeat-ack(sequence)
                                            ◄─ assign(job, attempt, source, destination, options)
                                            ◄─ abort(job, attempt, reason)
    progress(job, attempt, bytes, total, rate) ─►   (at most one per attempt per interval)
    progress(final) ─► completed(job, attempt, bytes, sha256, duration) ─►
    failed(job, attempt, error type, message, retryable) ─►
                                            ◄─ result-ack(job, attempt, accepted, reason)
                                            ◄─ drain(timeout)
    deregister(reason) ─►  then close
    error(code, message) either way, then close

Rules:

- The first message each way is the hello; then the agent sends ``register`` and nothing else
  until ``registered``. A message out of this order, or one a side never receives (e.g. an
  ``assign`` sent to a controller), raises :class:`ProtocolError`; a frame that is no message
  (unknown type, missing, unknown or mistyped field) raises :class:`MessageDecodeError`. Both
  carry the ``error`` to send before closing the connection.
- Heartbeat sequence numbers rise by one per heartbeat over the agent's life; a controller
  refuses a number not above the last one on the connection. An agent that hears nothing
  from the controller for 3 heartbeat intervals closes the connection and reconnects.
- The agent knows every controller (``registered`` and ``redirect`` update the list). It
  tries them in turn; the first try of each is immediate, later ones wait an exponential
  backoff with jitter, computed and returned, never slept. A redirect naming the leader is
  followed at once.
- On each (re)registration the agent lists the attempts it still runs; the controller answers
  with the ones that moved while it was away, which the agent aborts. Results (``completed``,
  ``failed``) are kept and resent after each registration until a ``result-ack``; the
  controller accepts a result for the job's current attempt only.
- Progress is coalesced: at most one ``progress`` per attempt per progress interval, always
  with the latest values, and a final one right before ``completed``.
- ``drain`` (or the agent's own SIGTERM) stops new work; an ``assign`` arriving then is
  answered ``failed`` (retryable). Once idle and every result acknowledged the agent sends
  ``deregister`` and stops; at the deadline it aborts what still runs, reports it failed
  (retryable) and stops.
"""

from quorus.core.agentproto.actions import (
    AbortJob,
    Action,
    AgentDeregistering,
    AgentDisconnected,
    AttemptCompleted,
    AttemptFailed,
    CloseConnection,
    ControllerError,
    DrainRequested,
    HeartbeatReceived,
    ProgressReported,
    Reconnect,
    RegisteredWith,
    RegistrationRejected,
    RegistrationRequested,
    ResultRejected,
    Shutdown,
    StartJob,
    Step,
)
from quorus.core.agentproto.errors import (
    AgentProtocolError,
    AuthenticationRefused,
    ErrorCode,
    MessageDecodeError,
    ProtocolError,
    SessionStateError,
    VersionMismatch,
)
from quorus.core.agentproto.messages import (
    PROTOCOL,
    VERSIONS,
    Abort,
    Assign,
    Completed,
    Deregister,
    Drain,
    Error,
    Failed,
    Heartbeat,
    HeartbeatAck,
    Message,
    Progress,
    Redirect,
    Register,
    Registered,
    ResultAck,
    from_wire,
    to_wire,
)
from quorus.core.agentproto.reconnect import Backoff, ControllerDirectory
from quorus.core.agentproto.records import (
    AgentCapabilities,
    AgentHealth,
    AgentLocation,
    AgentMetrics,
    AgentResources,
    AgentStatus,
    ControllerAddress,
    CpuInfo,
    CpuMetrics,
    HealthState,
    JobAttempt,
    LoadLevel,
    MemoryInfo,
    MemoryMetrics,
    NetworkInfo,
    NetworkMetrics,
    SecurityInfo,
    StorageInfo,
    TransferCounts,
    TransferOptions,
)
from quorus.core.agentproto.session import (
    AgentPhase,
    AgentSession,
    ControllerPhase,
    ControllerSession,
)

__all__ = [
    "PROTOCOL",
    "VERSIONS",
    "Abort",
    "AbortJob",
    "Action",
    "AgentCapabilities",
    "AgentDeregistering",
    "AgentDisconnected",
    "AgentHealth",
    "AgentLocation",
    "AgentMetrics",
    "AgentPhase",
    "AgentProtocolError",
    "AgentResources",
    "AgentSession",
    "AgentStatus",
    "Assign",
    "AttemptCompleted",
    "AttemptFailed",
    "AuthenticationRefused",
    "Backoff",
    "CloseConnection",
    "Completed",
    "ControllerAddress",
    "ControllerDirectory",
    "ControllerError",
    "ControllerPhase",
    "ControllerSession",
    "CpuInfo",
    "CpuMetrics",
    "Deregister",
    "Drain",
    "DrainRequested",
    "Error",
    "ErrorCode",
    "Failed",
    "HealthState",
    "Heartbeat",
    "HeartbeatAck",
    "HeartbeatReceived",
    "JobAttempt",
    "LoadLevel",
    "MemoryInfo",
    "MemoryMetrics",
    "Message",
    "MessageDecodeError",
    "NetworkInfo",
    "NetworkMetrics",
    "Progress",
    "ProgressReported",
    "ProtocolError",
    "Reconnect",
    "Redirect",
    "Register",
    "Registered",
    "RegisteredWith",
    "RegistrationRejected",
    "RegistrationRequested",
    "ResultAck",
    "ResultRejected",
    "SecurityInfo",
    "SessionStateError",
    "Shutdown",
    "StartJob",
    "Step",
    "StorageInfo",
    "TransferCounts",
    "TransferOptions",
    "VersionMismatch",
    "from_wire",
    "to_wire",
]
