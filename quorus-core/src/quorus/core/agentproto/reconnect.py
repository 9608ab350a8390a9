"""Which controller an agent connects to next, and when: every controller in turn, the leader
first when one is named, with exponential backoff once every controller has failed.

Nothing here sleeps: each decision is a :class:`~quorus.core.agentproto.actions.Reconnect`
carrying the time to connect at, computed from the caller's clock and a seedable random
source (the jitter), so tests replay exactly.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from quorus.core.agentproto.actions import Reconnect
from quorus.core.agentproto.records import ControllerAddress


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delay before the ``n``-th retry: ``initial * multiplier ** (n - 1)``, at most ``maximum``,
    less a random part of up to ``jitter`` of it so a fleet does not reconnect in lockstep."""

    initial: float = 0.1
    maximum: float = 10.0
    multiplier: float = 2.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if not (0 < self.initial <= self.maximum and self.multiplier >= 1 and 0 <= self.jitter < 1):
            raise ValueError(
                "backoff needs 0 < initial <= maximum, multiplier >= 1 and 0 <= jitter < 1"
            )

    def delay(self, retry: int, rng: random.Random) -> float:
        """Seconds to wait before retry number ``retry`` (1 for the first)."""
        exponent = min(max(retry - 1, 0), 64)
        base = min(self.maximum, self.initial * self.multiplier**exponent)
        return base * (1.0 - self.jitter * rng.random())


class ControllerDirectory:
    """The controllers an agent knows, the one it is trying, and how many tries in a row have
    not ended in a registration.

    The first try of each controller in a round is immediate (a dead leader is replaced by
    trying the next one at once); once as many tries as there are controllers have failed,
    each further try waits :meth:`Backoff.delay`. A redirect to a named leader is followed at
    once: a controller answered, so the failed connections before it no longer count (after a
    partition heals or the quorum restarts, the agent reaches the leader without sitting out
    a long backoff). Redirects in a row do count, so two controllers pointing at each other
    cannot make the agent spin.
    """

    def __init__(
        self,
        controllers: Iterable[ControllerAddress],
        backoff: Backoff | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.controllers: list[ControllerAddress] = list(dict.fromkeys(controllers))
        if not self.controllers:
            raise ValueError("an agent needs the address of at least one controller")
        self.backoff = backoff or Backoff()
        self.rng = rng or random.Random()
        self.index = 0
        self.failures = 0
        self.redirects = 0

    @property
    def current(self) -> ControllerAddress:
        return self.controllers[self.index]

    def start(self, now: float) -> Reconnect:
        return Reconnect(self.current, now, "starting")

    def failed(self, now: float, reason: str) -> Reconnect:
        """The try of :attr:`current` failed: the next controller, after a backoff if due."""
        self.failures += 1
        self.index = (self.index + 1) % len(self.controllers)
        return Reconnect(self.current, now + self._delay(), reason)

    def redirected(
        self, now: float, leader: ControllerAddress | None, controllers: Sequence[ControllerAddress]
    ) -> Reconnect:
        """:attr:`current` is not the leader; it named ``leader`` (or none) and the quorum."""
        self.learn(controllers)
        if leader is None:
            return self.failed(now, "the controller knows no leader yet")
        self.learn([leader], keep=True)
        self.redirects += 1
        self.failures = self.redirects
        self.index = self._position(leader)
        return Reconnect(self.current, now + self._delay(), f"redirected to the leader {leader.controller_id}")

    def registered(self, controllers: Sequence[ControllerAddress]) -> None:
        """The agent registered with :attr:`current`: reset the count, learn the quorum."""
        self.failures = self.redirects = 0
        self.learn(controllers, keep=True)

    def learn(self, controllers: Sequence[ControllerAddress], *, keep: bool = False) -> None:
        """Adopt the quorum's list (``keep``: only add to what is known), staying on the same
        controller when it is still listed."""
        if not controllers:
            return
        current = self.current
        known = [*self.controllers, *controllers] if keep else [*controllers]
        if current not in known:
            known.append(current)
        # One entry per address: a configured address (whose id is only a placeholder) and
        # the same controller announced under its name are one controller, known by the name
        # the quorum announced.
        announced = {c.address: c for c in controllers}
        by_address: dict[str, ControllerAddress] = {}
        for controller in known:
            by_address.setdefault(controller.address, announced.get(controller.address, controller))
        self.controllers = list(by_address.values())
        self.index = next(
            (i for i, c in enumerate(self.controllers) if c.address == current.address), 0
        )

    def _position(self, controller: ControllerAddress) -> int:
        return self.controllers.index(controller)

    def _delay(self) -> float:
        late = self.failures - len(self.controllers) + 1
        return 0.0 if late <= 0 else self.backoff.delay(late, self.rng)


__all__ = ["Backoff", "ControllerDirectory"]
