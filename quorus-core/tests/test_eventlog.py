"""The built-in ``log`` hook plugin turns lifecycle events into log records, without secrets."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from quorus.core.engine import TransferEngine, TransferRequest
from quorus.core.hooks import new_plugin_manager

pytestmark = pytest.mark.anyio


async def test_lifecycle_is_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    pm = new_plugin_manager()
    assert pm.get_plugin("log") is not None
    (tmp_path / "src").write_bytes(b"payload")
    with caplog.at_level(logging.INFO, logger="quorus.transfer"):
        async with TransferEngine(plugins=pm) as engine:
            await engine.transfer(TransferRequest.create(str(tmp_path / "src"), str(tmp_path / "d")))
            await engine.transfer(TransferRequest.create(
                str(tmp_path / "missing"), "memory://user:hunter2@store/x"))
    text = caplog.text
    assert "attempt 1" in text
    assert "completed: 7 B" in text
    assert "failed after 1 attempt(s)" in text
    assert "hunter2" not in text


def test_log_plugin_can_be_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUORUS_DISABLE_PLUGINS", "log")
    assert new_plugin_manager().get_plugin("log") is None
