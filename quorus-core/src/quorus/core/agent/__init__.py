"""The agent process: joins the controller quorum, runs the transfers the leader assigns it.

:class:`AgentRuntime` drives the agent protocol's sans-IO session over TCP (wire frames),
following redirects to the leader and reconnecting after failover; each assigned attempt runs
with the transfer engine under an attempt-scoped staging name (:mod:`.attempt`), so two
attempts of one job never clash on a destination. :class:`AgentConfig` holds its settings
(:mod:`.config` has the defaults), :mod:`.inventory` measures what it reports, and
:mod:`.main` is the ``quorus-agent`` console script.
"""

from quorus.core.agent.attempt import (
    AttemptFailedWith,
    AttemptOutcome,
    AttemptSucceeded,
    run_attempt,
    staging_location,
)
from quorus.core.agent.config import (
    DEFAULT_CONTROLLER_PORT,
    DEFAULT_DRAIN_TIMEOUT,
    DEFAULT_MAX_CONCURRENT,
    DEFAULT_TOKEN_FILE,
    DEFAULT_WORK_DIR,
    AgentConfig,
    parse_controllers,
    parse_labels,
    resolve_token,
    stable_agent_id,
)
from quorus.core.agent.runtime import AgentRuntime, registration

__all__ = [
    "DEFAULT_CONTROLLER_PORT",
    "DEFAULT_DRAIN_TIMEOUT",
    "DEFAULT_MAX_CONCURRENT",
    "DEFAULT_TOKEN_FILE",
    "DEFAULT_WORK_DIR",
    "AgentConfig",
    "AgentRuntime",
    "AttemptFailedWith",
    "AttemptOutcome",
    "AttemptSucceeded",
    "parse_controllers",
    "parse_labels",
    "registration",
    "resolve_token",
    "run_attempt",
    "stable_agent_id",
    "staging_location",
]
