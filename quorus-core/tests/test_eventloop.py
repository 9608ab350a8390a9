"""Which event loop a Quorus process runs on."""

from __future__ import annotations

import importlib.util

import pytest
from quorus.core import eventloop
from quorus.core.errors import ConfigurationError

HAVE_UVLOOP = importlib.util.find_spec("uvloop") is not None


def test_asyncio_by_default_with_uvloop_when_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(eventloop.BACKEND_ENV, raising=False)
    monkeypatch.delenv(eventloop.UVLOOP_ENV, raising=False)
    assert eventloop.backend() == ("asyncio", {"use_uvloop": True} if HAVE_UVLOOP else {})
    monkeypatch.setenv(eventloop.UVLOOP_ENV, "0")
    assert eventloop.backend() == ("asyncio", {})
    monkeypatch.setenv(eventloop.BACKEND_ENV, "trio")
    assert eventloop.backend() == ("trio", {})


def test_insisting_on_uvloop_without_it_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(eventloop.BACKEND_ENV, raising=False)
    monkeypatch.setenv(eventloop.UVLOOP_ENV, "1")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigurationError, match="uvloop is not installed"):
        eventloop.backend()


def test_run_returns_the_result() -> None:
    async def answer(x: int) -> int:
        return x * 2

    assert eventloop.run(answer, 21) == 42
