"""Which event loop a Quorus process runs on."""

from __future__ import annotations

import importlib.util

import pytest
from quorus.core import eventloop


def test_asyncio_with_uvloop_when_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(eventloop.BACKEND_ENV, raising=False)
    monkeypatch.delenv(eventloop.UVLOOP_ENV, raising=False)
    installed = importlib.util.find_spec("uvloop") is not None
    assert eventloop.backend() == ("asyncio", {"use_uvloop": installed})


def test_uvloop_can_be_turned_off_and_trio_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(eventloop.UVLOOP_ENV, "0")
    assert eventloop.backend() == ("asyncio", {})
    monkeypatch.setenv(eventloop.BACKEND_ENV, "trio")
    assert eventloop.backend() == ("trio", {})


def test_run_returns_the_result() -> None:
    async def answer(x: int) -> int:
        return x * 2

    assert eventloop.run(answer, 21) == 42
