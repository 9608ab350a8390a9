"""ActionSettings from the environment and from a configuration section."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from quorus.core.errors import ConfigurationError
from quorus.workflow.actions import ActionSettings


def test_defaults() -> None:
    settings = ActionSettings.from_env({})
    assert settings.slack_webhook is None and settings.smtp_host is None
    assert settings.smtp_port == 25 and not settings.smtp_starttls
    assert settings.smtp_from.startswith("quorus@")
    assert settings.smtp_password is None
    assert settings.timeout == 10.0 and settings.allowed_cleanup_roots == ()


def test_from_env_reads_every_variable(tmp_path: Path) -> None:
    password_file = tmp_path / "smtp-password"
    password_file.write_text("from-file\n")
    settings = ActionSettings.from_env({
        "QUORUS_SLACK_WEBHOOK": "https://hooks.example/services/T/B/x",
        "QUORUS_SMTP_HOST": "relay.internal",
        "QUORUS_SMTP_PORT": "587",
        "QUORUS_SMTP_FROM": "transfers@company.test",
        "QUORUS_SMTP_STARTTLS": "yes",
        "QUORUS_SMTP_USERNAME": "quorus",
        "QUORUS_SMTP_PASSWORD": "from-env",
        "QUORUS_SMTP_PASSWORD_FILE": str(password_file),
    })
    assert settings.slack_webhook == "https://hooks.example/services/T/B/x"
    assert (settings.smtp_host, settings.smtp_port) == ("relay.internal", 587)
    assert settings.smtp_from == "transfers@company.test"
    assert settings.smtp_starttls and settings.smtp_username == "quorus"
    assert settings.smtp_password is not None
    assert settings.smtp_password.reveal() == "from-file"  # the file wins over the variable
    assert "from-file" not in repr(settings)


def test_from_env_password_variable() -> None:
    settings = ActionSettings.from_env({"QUORUS_SMTP_PASSWORD": "pw-123"})
    assert settings.smtp_password is not None and settings.smtp_password.reveal() == "pw-123"
    assert "pw-123" not in repr(settings) and "pw-123" not in str(settings.smtp_password)


@pytest.mark.parametrize(("environ", "problem"), [
    ({"QUORUS_SMTP_PORT": "smtp"}, "QUORUS_SMTP_PORT must be a TCP port (1-65535), not 'smtp'"),
    ({"QUORUS_SMTP_PORT": "70000"}, "QUORUS_SMTP_PORT must be a TCP port"),
    ({"QUORUS_SMTP_STARTTLS": "maybe"}, "QUORUS_SMTP_STARTTLS must be true or false"),
    ({"QUORUS_SMTP_PASSWORD_FILE": "/nonexistent/pw"}, "credential file '/nonexistent/pw'"),
])
def test_from_env_errors_name_the_variable(environ: dict[str, str], problem: str) -> None:
    with pytest.raises(ConfigurationError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        ActionSettings.from_env(environ)


def test_from_mapping_reads_the_configuration_section(tmp_path: Path) -> None:
    password_file = tmp_path / "pw"
    password_file.write_text("s3cret")
    settings = ActionSettings.from_mapping({
        "notify": {"slackWebhook": "https://hooks.example/s",
                   "webhooks": {"pagerduty": "https://events.example/v2?token=t"}},
        "smtp": {"host": "relay", "port": 2525, "from": "q@company.test", "starttls": True,
                 "username": "q", "passwordFile": str(password_file)},
        "cleanup": {"allowedRoots": ["/backup", "memory://store/archive"]},
        "timeout": 3,
    })
    assert settings.slack_webhook == "https://hooks.example/s"
    assert dict(settings.webhooks) == {"pagerduty": "https://events.example/v2?token=t"}
    assert (settings.smtp_host, settings.smtp_port, settings.smtp_from) == (
        "relay", 2525, "q@company.test")
    assert settings.smtp_starttls and settings.smtp_username == "q"
    assert settings.smtp_password is not None and settings.smtp_password.reveal() == "s3cret"
    assert settings.allowed_cleanup_roots == ("/backup", "memory://store/archive")
    assert settings.timeout == 3.0


def test_from_mapping_password_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELAY_PW", "pw-from-env")
    settings = ActionSettings.from_mapping({"smtp": {"password": "env:RELAY_PW"}})
    assert settings.smtp_password is not None
    assert settings.smtp_password.reveal() == "pw-from-env"


@pytest.mark.parametrize(("data", "problem"), [
    ({"smtp": {"hots": "relay"}}, "unknown key 'hots' in smtp: did you mean 'host'?"),
    ({"notfy": {}}, "unknown key 'notfy' in actions settings: did you mean 'notify'?"),
    ({"smtp": "relay"}, "smtp must be a mapping, not str"),
    ({"smtp": {"port": "x"}}, "smtp.port must be a TCP port"),
    ({"smtp": {"starttls": "yes"}}, "smtp.starttls must be true or false"),
    ({"smtp": {"host": ""}}, "smtp.host must be a non-empty string"),
    ({"notify": {"webhooks": ["https://x"]}}, "notify.webhooks must map names to URLs"),
    ({"cleanup": {"allowedRoots": "/backup"}}, "cleanup.allowedRoots must be a list"),
    ({"timeout": 0}, "timeout must be a positive number of seconds, not 0"),
])
def test_from_mapping_errors_name_the_key(data: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        ActionSettings.from_mapping(data)
    assert problem in str(info.value)
