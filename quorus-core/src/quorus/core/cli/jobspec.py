"""The body of a job submission (``POST /v1/jobs``) from ``quorus jobs submit``'s options,
checked here so that a bad option is named as the user wrote it, before any request."""

from __future__ import annotations

import uuid
from typing import Any

from quorus.core.errors import ConfigurationError
from quorus.core.units import parse_rate, parse_size


def submission(
    source: str, destination: str, *, job_id: str | None, checksum: str | None,
    size: str | None, priority: int, labels: tuple[str, ...], avoid: tuple[str, ...],
    require_site: str | None, prefer_site: str | None, max_attempts: int | None,
    overwrite: str | None, bwlimit: str | None, options: tuple[str, ...], tenant: str | None,
    namespace: str | None,
) -> dict[str, Any]:
    """The body of ``POST /v1/jobs`` for the command's options; :class:`ConfigurationError`
    names a bad one. Without ``--id`` the job gets a fresh id here, so that repeating the
    request on another controller cannot queue it twice."""
    from quorus.core.controller.model import LabelRequirement

    body: dict[str, Any] = {"source": source, "destination": destination,
                            "id": job_id or f"job-{uuid.uuid4().hex}", "priority": priority}
    if checksum is not None:
        algorithm, _, digest = checksum.partition(":")
        if algorithm.lower() != "sha256" or len(digest) != 64 or any(
                c not in "0123456789abcdefABCDEF" for c in digest):
            raise ConfigurationError(
                f"invalid --checksum {checksum!r}: expected sha256: and 64 hex digits")
        body["checksum"] = f"sha256:{digest.lower()}"
    if size is not None:
        body["expected_size"] = parse_size(size, what="--size")
    for flag, texts, key in (("--label", labels, "affinity"), ("--avoid-label", avoid,
                                                                "anti_affinity")):
        for selector in texts:
            try:
                LabelRequirement.parse(selector)
            except ValueError as exc:
                raise ConfigurationError(f"{flag}: {exc}") from None
        if texts:
            body[key] = list(texts)
    for flag, site, key in (("--require-site", require_site, "required_site"),
                            ("--prefer-site", prefer_site, "preferred_site")):
        if site is not None:
            body[key] = _site(flag, site)
    if max_attempts is not None:
        body["max_attempts"] = max_attempts
    if overwrite is not None:
        body["overwrite"] = overwrite
    if bwlimit is not None:
        body["bandwidth_mbps"] = parse_rate(bwlimit, what="--bwlimit") * 8 / 1_000_000
    if options:
        body["protocol_options"] = _protocol_options(options)
    if tenant is not None:
        body["tenant"] = tenant
    if namespace is not None:
        body["namespace"] = namespace
    return body


def _site(flag: str, text: str) -> dict[str, str]:
    site: dict[str, str] = {}
    for item in (i.strip() for i in text.split(",") if i.strip()):
        key, sep, value = item.partition("=")
        if not sep or key not in ("region", "datacenter", "zone") or not value:
            raise ConfigurationError(
                f"invalid {flag} {text!r}: expected region=R,datacenter=D,zone=Z "
                "(any of the three)")
        site[key] = value
    if not site:
        raise ConfigurationError(f"invalid {flag} {text!r}: name a region, datacenter or zone")
    return site


def _protocol_options(items: tuple[str, ...]) -> dict[str, str]:
    """``-o SCHEME.KEY=VALUE`` as the API takes them: ``{"SCHEME.KEY": "VALUE"}``; values
    stay as written (``env:``/``file:`` references are resolved by the agent)."""
    options: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        scheme, dot, name = key.partition(".")
        if not (sep and dot and scheme and name):
            raise ConfigurationError(
                f"invalid option {key!r}: expected SCHEME.KEY=VALUE, "
                "e.g. -o sftp.password=env:SFTP_PASSWORD")
        options[f"{scheme.lower()}.{name}"] = value
    return options


__all__ = ["submission"]
