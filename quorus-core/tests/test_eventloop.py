"""Which event loop a Quorus process runs on."""

from __future__ import annotations

import importlib.util

import pytest
from quorus.core import eventloop


def test_the_standard_asyncio_loop_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(eventloop.BACKEND_ENV, raising=False)
    monkeypatch.delenv(eventloop.UVLOOP_ENV, raising=False)
    assert eventloop.backend() == ("asyncio", {})


@pytest.mark.skipif(importlib.util.find_spec("uvloop") is None, reason="uvloop not installed")
def test_uvloop_on_request_and_trio(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(eventloop.UVLOOP_ENV, "1")
    assert eventloop.backend() == ("asyncio", {"use_uvloop": True})
    monkeypatch.setenv(eventloop.BACKEND_ENV, "trio")
    assert eventloop.backend() == ("trio", {})


def test_run_returns_the_result() -> None:
    async def answer(x: int) -> int:
        return x * 2

    assert eventloop.run(answer, 21) == 42
