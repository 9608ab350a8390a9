"""Applying a built-in controller command: the dispatch to its rules.

The rules live in :mod:`~quorus.core.controller.agent_rules` and
:mod:`~quorus.core.controller.job_rules` (and the controllers' addresses in
:mod:`~quorus.core.controller.member_rules`); what they share (collecting a command's changes,
taking a job back from its agent) in :mod:`~quorus.core.controller.change`. Every handler is
deterministic: it reads only the state and the command, and whenever it touches several records
it does so in submission order, so every controller produces the same results.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from quorus.core.controller import agent_rules, job_rules, member_rules
from quorus.core.controller.change import HANDLERS
from quorus.core.controller.commands import Command
from quorus.core.controller.results import Result

if TYPE_CHECKING:
    from quorus.core.controller.state import ControllerState

#: Every built-in command has its rule (the modules register them on import).
RULES = (agent_rules, job_rules, member_rules)


def apply(state: ControllerState, index: int, command: Command) -> Result:
    """Apply a built-in command to ``state``."""
    handler = HANDLERS.get(type(command))
    if handler is None:
        raise TypeError(f"no rule applies {command.NAME!r}")
    return handler(state, index, command)


__all__ = ["apply"]
