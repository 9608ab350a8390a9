"""The local runner: an execution driven in this process, each transfer on quorus-core's
transfer engine.

The loop asks the :class:`~quorus.workflow.execution.Execution` what to do, starts steps as
tasks, aborts them on timeouts or cancellation, and records each end; it sleeps until a step
ends or the next deadline. Steps whose protocol options are equal share one engine, so
connections to the same server are reused. SIGINT/SIGTERM cancel the execution: running
transfers stop (their partial files stay, so a rerun resumes) and the rest is skipped.
After the end, the groups' and then the workflow's ``onSuccess``/``onFailure`` actions run.
"""

from __future__ import annotations

import math
import signal
import time
from collections.abc import Callable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, replace
from typing import Any

import anyio
from quorus.core.engine import TransferEngine, TransferResult, TransferStatus
from quorus.core.errors import QuorusError
from quorus.core.protocol import TransferProtocol
from quorus.workflow.actions import ActionContext
from quorus.workflow.afterrun import run_after
from quorus.workflow.binding import Binder
from quorus.workflow.bound import BoundStep, bind_step
from quorus.workflow.execution import Decision, Execution
from quorus.workflow.planner import Plan
from quorus.workflow.summary import ActionOutcome, ExecutionSummary, StepStatus


@dataclass(frozen=True, slots=True)
class StepEvent:
    """What the runner reports as it goes: a step started, progressed or ended (``status``
    is a :class:`StepStatus` value), or ``execution`` ended (``step`` empty)."""

    step: str
    status: str
    bytes: int = 0
    total: int | None = None
    rate: float = 0.0
    detail: str = ""


EventSink = Callable[[StepEvent], None]
#: The longest the loop sleeps, so that a pause, resume or cancel recorded directly on the
#: execution (not through :meth:`LocalRunner.cancel`) is seen while a long transfer runs.
POLL_INTERVAL = 0.25
_STATUS = {TransferStatus.COMPLETED: StepStatus.COMPLETED,
           TransferStatus.SKIPPED: StepStatus.COMPLETED,
           TransferStatus.CANCELLED: StepStatus.CANCELLED}


@dataclass(frozen=True, slots=True)
class _Ended:
    step: str
    status: StepStatus
    bytes: int = 0
    sha256: str | None = None
    attempts: int = 0
    error: str | None = None
    source: str = ""
    destination: str = ""


class LocalRunner:
    """Runs one execution of ``plan`` here (see the module docstring)."""

    def __init__(self, plan: Plan, binder: Binder, *, execution_id: str,
                 actions: Mapping[str, Any] | None = None,
                 action_context: ActionContext | None = None,
                 on_event: EventSink | None = None, max_engine_concurrency: int = 8,
                 clock: Callable[[], float] = time.time, handle_signals: bool = False,
                 protocols: Mapping[str, TransferProtocol] | None = None) -> None:
        self.plan = plan
        self.binder = binder
        self.execution = Execution(execution_id, plan, binder.judge,
                                   started_at=binder.context.started_at)
        self.actions = actions
        self.action_context = action_context
        self.on_event = on_event or (lambda event: None)
        self.max_engine_concurrency = max_engine_concurrency
        self.clock = clock
        self.handle_signals = handle_signals
        #: Protocol instances by scheme given to every engine (tests inject faults here).
        self.protocols = dict(protocols or {})
        self._wake: Any = None
        self._scopes: dict[str, anyio.CancelScope] = {}
        self._engines: dict[str, TransferEngine] = {}
        self._destinations: dict[str, str] = {}
        self._by_id = plan.by_id()

    async def run(self) -> ExecutionSummary:
        """Run to the end and return the summary (actions included)."""
        send, receive = anyio.create_memory_object_stream[_Ended | None](math.inf)
        async with send, receive, AsyncExitStack() as stack, anyio.create_task_group() as tg:
            stack.push_async_callback(self._close_engines)
            self._wake = send
            if self.handle_signals:
                tg.start_soon(self._watch_signals, send.clone())
            try:
                await self._loop(tg, send, receive)
            finally:
                self._wake = None
            tg.cancel_scope.cancel()
        summary = self.execution.summary(variables={})
        actions = await self._run_actions(summary)
        summary = self.execution.summary(actions)
        self.on_event(StepEvent("", str(summary.status), summary.bytes, detail=summary.error or ""))
        return summary

    async def _loop(self, tg: anyio.abc.TaskGroup, send: Any, receive: Any) -> None:
        execution = self.execution
        while not execution.status.finished:
            now = self.clock()
            decisions = execution.decide(now)
            if decisions:
                for decision in decisions:
                    self._carry_out(decision, now, tg, send)
                continue
            deadline = execution.next_deadline()
            wait = POLL_INTERVAL if deadline is None else min(
                POLL_INTERVAL, max(0.0, deadline - self.clock()))
            with anyio.move_on_after(wait):
                self._record(await receive.receive())
            # Every end already waiting is taken before deciding again, also when the wait
            # was cut short before receive() got to look at the stream.
            while True:
                try:
                    self._record(receive.receive_nowait())
                except anyio.WouldBlock:
                    break

    def cancel(self, reason: str) -> None:
        """Cancel the execution: running transfers are aborted at once, the rest skipped."""
        self.execution.cancel(reason)
        if self._wake is not None:
            self._wake.send_nowait(None)

    def _carry_out(self, decision: Decision, now: float, tg: anyio.abc.TaskGroup,
                   send: Any) -> None:
        self.execution.apply(decision, now)
        if decision.kind == "start":
            scope = anyio.CancelScope()
            self._scopes[decision.target] = scope
            tg.start_soon(self._run_step, decision.target, scope, send.clone())
            self.on_event(StepEvent(decision.target, "running"))
        elif decision.kind == "abort":
            running = self._scopes.get(decision.target)
            if running is not None:
                running.cancel()
        elif decision.kind in ("skip", "fail"):
            outcome = self.execution.outcomes[decision.target]
            self.on_event(StepEvent(decision.target, str(outcome.status),
                                    detail=decision.reason))

    def _record(self, ended: _Ended | None) -> None:
        if ended is None:
            return
        self._scopes.pop(ended.step, None)
        self.execution.finish_step(
            ended.step, ended.status, self.clock(), bytes=ended.bytes, sha256=ended.sha256,
            attempts=ended.attempts, error=ended.error, source=ended.source,
            destination=ended.destination)
        outcome = self.execution.outcomes[ended.step]
        self.on_event(StepEvent(ended.step, str(outcome.status), outcome.bytes,
                                detail=outcome.error or outcome.reason or ""))

    async def _run_step(self, step_id: str, scope: anyio.CancelScope, send: Any) -> None:
        planned = self._by_id[step_id]
        group = self.plan.workflow.group(planned.group)
        ended: _Ended
        async with send:
            with scope:
                try:
                    bound = bind_step(self.binder, planned.step, group, self.execution)
                except QuorusError as exc:
                    await send.send(_Ended(step_id, StepStatus.FAILED,
                                           error=getattr(exc, "message", str(exc))))
                    return
                self._destinations[step_id] = bound.destination
                try:
                    engine = await self._engine(bound)
                    result = await engine.transfer(
                        bound.request(), on_progress=lambda p: self.on_event(StepEvent(
                            step_id, "running", p.bytes_done, p.total, p.rate)))
                except QuorusError as exc:
                    ended = _Ended(step_id, StepStatus.FAILED, error=str(exc),
                                   source=bound.source_display,
                                   destination=bound.destination_display)
                else:
                    ended = _from_result(step_id, result, bound)
                await send.send(ended)
                return
            # The scope was cancelled: a timeout or a cancel aborted the transfer.
            await send.send(_Ended(step_id, StepStatus.CANCELLED))

    async def _engine(self, bound: BoundStep) -> TransferEngine:
        key = bound.options_key
        engine = self._engines.get(key)
        if engine is None:
            engine = TransferEngine(protocol_options=dict(bound.protocol_options),
                                    protocols=self.protocols,
                                    max_concurrent=self.max_engine_concurrency)
            self._engines[key] = engine
        return engine

    async def _close_engines(self) -> None:
        engines, self._engines = list(self._engines.values()), {}
        for engine in engines:
            await engine.aclose()

    async def _watch_signals(self, send: Any) -> None:
        async with send:
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for signum in signals:
                    self.execution.cancel(f"interrupted by {signal.Signals(signum).name}")
                    await send.send(None)

    async def _run_actions(self, summary: ExecutionSummary) -> tuple[ActionOutcome, ...]:
        if self.actions is None or self.action_context is None:
            return ()
        context = replace(self.action_context, destinations=dict(self._destinations))
        return await run_after(self.execution, self.binder, summary, context, self.actions)


def _from_result(step_id: str, result: TransferResult, bound: BoundStep) -> _Ended:
    return _Ended(step_id, _STATUS.get(result.status, StepStatus.FAILED),
                  bytes=result.bytes, sha256=result.sha256, attempts=result.attempts,
                  error=result.error, source=bound.source_display,
                  destination=bound.destination_display)


__all__ = ["EventSink", "LocalRunner", "StepEvent"]
