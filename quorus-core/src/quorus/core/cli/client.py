"""A small synchronous client of the controller's REST API, for the fleet commands.

It knows several controllers and tries them in turn: one that cannot be reached, or that
answers ``503`` (no leader yet, no quorum), is skipped for the next. A request that may have
reached a controller before its connection broke is repeated elsewhere only when repeating
it is harmless (reads, and submissions that carry their job id). The token travels in the
``Authorization`` header and appears in no message, error or ``repr``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Self

import httpx
from quorus.core.errors import ConfigurationError, QuorusError
from quorus.core.secrets import Secret

DEFAULT_CONTROLLER = "http://127.0.0.1:7080"
#: Rounds over all controllers while some answer 503 (a quorum electing its leader).
ELECTION_ROUNDS = 4
ELECTION_PAUSE = 0.5


class ControllerError(QuorusError):
    """A controller refused a request or none could be reached. ``status`` is the HTTP status
    (``None`` when no controller answered) and ``code`` the API's error code."""

    def __init__(self, message: str, *, status: int | None = None, code: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class TokenRejected(ControllerError):
    """The controller answered 401: the token is missing or wrong."""


class ControllerUnreachable(ControllerError):
    """No controller answered."""


def controller_urls(specs: Sequence[str]) -> list[str]:
    """Base URLs from ``--controller`` values (each may hold several, comma-separated;
    ``host:port`` means ``http://host:port``). :class:`ConfigurationError` names a bad one."""
    urls: list[str] = []
    for spec in specs:
        for item in (part.strip() for part in spec.split(",")):
            if not item:
                continue
            text = item if "://" in item else f"http://{item}"
            try:
                url = httpx.URL(text)
                port = url.port
            except (httpx.InvalidURL, ValueError):
                url, port = None, None
            if url is None or url.scheme not in ("http", "https") or not url.host:
                raise ConfigurationError(
                    f"invalid controller {item!r}: expected http://HOST:PORT or HOST:PORT"
                )
            if url.userinfo:
                raise ConfigurationError(
                    f"invalid controller {shown(url)!r}: put credentials in --token, not the URL"
                )
            base = f"{url.scheme}://{url.host}" + (f":{port}" if port else "")
            urls.append(base + url.path.rstrip("/"))
    if not urls:
        raise ConfigurationError("no controller given: --controller http://HOST:PORT")
    return list(dict.fromkeys(urls))


def shown(url: httpx.URL | str) -> str:
    """``url`` without user information, for messages."""
    parsed = httpx.URL(str(url))
    return str(parsed.copy_with(username=None, password=None))


class ControllerClient:
    """The REST API of a controller quorum (see the module docstring)."""

    def __init__(
        self,
        controllers: Sequence[str],
        token: Secret,
        *,
        timeout: float = 10.0,
    ) -> None:
        if not controllers:
            raise ConfigurationError("no controller given: --controller http://HOST:PORT")
        self.controllers = list(controllers)
        self._token = token
        self._preferred = 0
        self._http = httpx.Client(timeout=timeout,
                                  headers={"Accept": "application/json"})

    def __repr__(self) -> str:
        return f"ControllerClient(controllers={self.controllers!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    @property
    def current(self) -> str:
        """The controller that answered last (or will be asked first)."""
        return self.controllers[self._preferred]

    # -- the API --------------------------------------------------------------------------------

    def cluster_status(self) -> dict[str, Any]:
        return self._object("GET", "/v1/cluster")

    def add_member(self, node_id: str, address: str, *, agents: str | None = None,
                   http: str | None = None) -> dict[str, Any]:
        body = {"node_id": node_id, "address": address}
        if agents:
            body["agents"] = agents
        if http:
            body["http"] = http
        return self._object("POST", "/v1/cluster/members", json=body)

    def remove_member(self, node_id: str) -> dict[str, Any]:
        return self._object("DELETE", f"/v1/cluster/members/{_segment(node_id)}")

    def transfer_leadership(self, node_id: str) -> dict[str, Any]:
        return self._object("POST", "/v1/cluster/leader", json={"node_id": node_id})

    def list_agents(self) -> list[dict[str, Any]]:
        agents = self._object("GET", "/v1/agents").get("agents", [])
        return [a for a in agents if isinstance(a, dict)]

    def get_agent(self, agent_id: str) -> dict[str, Any]:
        return self._object("GET", f"/v1/agents/{_segment(agent_id)}")

    def drain_agent(self, agent_id: str, timeout: float | None = None) -> dict[str, Any]:
        body = {"timeout": timeout} if timeout is not None else {}
        return self._object("POST", f"/v1/agents/{_segment(agent_id)}/drain", json=body)

    def submit_job(self, submission: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /v1/jobs``; repeated on another controller only when it names its ``id``
        (the controller then treats the repeat as the same job)."""
        return self._object("POST", "/v1/jobs", json=dict(submission),
                            repeatable="id" in submission)

    def submit_jobs(self, submissions: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """``POST /v1/jobs/batch`` (at most 1,000 jobs): ``{results, submitted, refused}``,
        one result per job in order. Repeated on another controller only when every job
        names its ``id``."""
        return self._object("POST", "/v1/jobs/batch",
                            json={"jobs": [dict(s) for s in submissions]},
                            repeatable=all("id" in s for s in submissions))

    def get_job(self, job_id: str) -> dict[str, Any]:
        return self._object("GET", f"/v1/jobs/{_segment(job_id)}")

    def cancel_job(self, job_id: str, reason: str | None = None) -> dict[str, Any]:
        body = {"reason": reason} if reason else {}
        return self._object("POST", f"/v1/jobs/{_segment(job_id)}/cancel", json=body)

    def list_jobs(
        self, *, limit: int | None = 100, cursor: str | None = None, page_size: int = 1000,
        **filters: str | None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Up to ``limit`` jobs (``None``: all) from ``cursor`` on, following the API's
        cursors page by page; also the cursor to continue from (``None`` at the end)."""
        jobs: list[dict[str, Any]] = []
        params = {k: v for k, v in filters.items() if v is not None}
        while limit is None or len(jobs) < limit:
            size = page_size if limit is None else min(page_size, limit - len(jobs))
            page = self._object("GET", "/v1/jobs",
                                params={**params, "limit": str(size),
                                        **({"cursor": cursor} if cursor else {})})
            found = [j for j in page.get("jobs", []) if isinstance(j, dict)]
            jobs.extend(found)
            cursor = page.get("next_cursor") or None
            if cursor is None or not found:
                return jobs, None
        return jobs, cursor

    # -- transport ------------------------------------------------------------------------------

    def _object(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        answer = self.request(method, path, **kwargs)
        if not isinstance(answer, dict):
            raise ControllerError(f"{shown(self.current)}{path} answered {type(answer).__name__},"
                                  " not a JSON object")
        return answer

    def request(
        self, method: str, path: str, *, params: Mapping[str, str] | None = None,
        json: Any = None, repeatable: bool | None = None,
    ) -> Any:
        """Send the request to the controllers in turn and return the decoded JSON answer."""
        if repeatable is None:
            repeatable = method == "GET"
        headers = {"Authorization": f"Bearer {self._token.reveal()}"}
        failures: dict[str, str] = {}
        busy: ControllerError | None = None
        for round_ in range(ELECTION_ROUNDS):
            busy = None
            order = self.controllers[self._preferred:] + self.controllers[:self._preferred]
            for base in order:
                try:
                    response = self._http.request(method, base + path, params=params,
                                                  json=json, headers=headers)
                except httpx.TransportError as exc:
                    failures[base] = _transport_reason(exc)
                    if not (repeatable or isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)):
                        raise ControllerUnreachable(
                            f"{shown(base)} did not answer {method} {path} ({failures[base]});"
                            " the request may or may not have taken effect"
                        ) from None
                    continue
                self._preferred = self.controllers.index(base)
                if response.status_code == 503:
                    busy = _error_of(response, base)
                    continue
                if response.is_success:
                    try:
                        return response.json()
                    except ValueError:
                        raise ControllerError(
                            f"{shown(base)} answered {method} {path} with something other "
                            "than JSON", status=response.status_code) from None
                raise _error_of(response, base)
            if busy is None:
                break
            if round_ + 1 < ELECTION_ROUNDS:
                time.sleep(ELECTION_PAUSE * (round_ + 1))
        if busy is not None:
            raise busy
        tried = "; ".join(f"{shown(url)}: {reason}" for url, reason in failures.items())
        raise ControllerUnreachable(f"no controller answered ({tried})")


def _segment(text: str) -> str:
    """``text`` as one path segment (ids cannot smuggle ``/`` or ``?`` into the path)."""
    from urllib.parse import quote

    return quote(text, safe="")


def _transport_reason(exc: httpx.TransportError) -> str:
    if isinstance(exc, httpx.ConnectError):
        return "connection refused or host unreachable"
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    return type(exc).__name__


def _error_of(response: httpx.Response, base: str) -> ControllerError:
    """The controller's ``{"error", "message"}`` answer as an exception."""
    code, message = "", ""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        code = str(body.get("error", ""))
        message = str(body.get("message", ""))
    if not message:
        message = response.reason_phrase or "error"
    text = f"{message} ({response.status_code} from {shown(base)})"
    cls = TokenRejected if response.status_code == 401 else ControllerError
    return cls(text, status=response.status_code, code=code)


__all__ = [
    "DEFAULT_CONTROLLER",
    "ControllerClient",
    "ControllerError",
    "ControllerUnreachable",
    "TokenRejected",
    "controller_urls",
    "shown",
]
