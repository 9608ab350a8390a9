"""Parsing and validation of transfer locations: URIs and local paths.

A :class:`Location` is what every protocol receives. It keeps the caller's text for messages
but never shows a password: :meth:`Location.redacted` is what logs, errors and JSON output use.
"""

from __future__ import annotations

import os
import posixpath
import re
from dataclasses import dataclass, field, replace
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from quorus.core.errors import InvalidURIError

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*$")
_HAS_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
# Schemes whose locations name a host; the others (file, memory, ...) are host-less or optional.
_NETWORK_SCHEMES = frozenset({"http", "https", "sftp", "ftp", "ftps", "smb", "nfs"})


@dataclass(frozen=True)
class Location:
    """A parsed transfer location.

    ``path`` is the decoded path component (for ``file`` an absolute local path).
    ``password`` is kept out of ``repr`` and out of :meth:`redacted`.
    """

    scheme: str
    host: str | None
    port: int | None
    path: str
    query: str = ""
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        """The last path segment (the file name)."""
        return posixpath.basename(self.path.rstrip("/"))

    @property
    def netloc(self) -> str:
        """``host[:port]`` without credentials."""
        if self.host is None:
            return ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}" if self.port is not None else host

    def with_path(self, path: str) -> Location:
        """The same endpoint with another path."""
        return replace(self, path=path)

    def sibling(self, name: str) -> Location:
        """A location in the same directory with another file name."""
        parent = posixpath.dirname(self.path.rstrip("/")) or "/"
        return self.with_path(posixpath.join(parent, name))

    @property
    def parent(self) -> Location:
        """The directory that holds this location."""
        return self.with_path(posixpath.dirname(self.path.rstrip("/")) or "/")

    def url(self, *, include_password: bool = False) -> str:
        """The location as a URI string; the password only when explicitly asked for."""
        userinfo = ""
        if self.username is not None:
            userinfo = quote(self.username, safe="")
            if self.password is not None:
                userinfo += ":" + (quote(self.password, safe="") if include_password else "***")
            userinfo += "@"
        netloc = userinfo + self.netloc
        path = quote(self.path, safe="/~:@!$&'()*+,;=")
        if netloc and path and not path.startswith("/"):
            path = "/" + path
        # Always ``scheme://``: urlunsplit drops the empty authority of a host-less URI
        # (``mem:///a`` would come out as ``mem:/a``, which reads back as a local path).
        text = f"{self.scheme}://{netloc}{path}"
        return f"{text}?{self.query}" if self.query else text

    def redacted(self) -> str:
        """The text to show a person: the URI with any password masked, and the values of
        query parameters that carry secrets (presigned-URL signatures, tokens) too."""
        if self.scheme == "file":
            return self.path
        if not self.query:
            return self.url()
        return replace(self, query=_redact_query(self.query)).url()

    def __str__(self) -> str:
        return self.redacted()


def parse_location(text: str, *, cwd: str | None = None) -> Location:
    """Parse a URI (``scheme://...``) or a local path into a :class:`Location`.

    A text without a scheme is a local path, made absolute against ``cwd``.
    Raises :class:`InvalidURIError` naming the input when it cannot be used.
    """
    if not isinstance(text, str) or not text.strip():
        raise InvalidURIError("empty location: give a path or a URI such as https://host/file")
    if "\x00" in text:
        raise InvalidURIError(f"invalid location {text!r}: contains a NUL character")
    if not _HAS_SCHEME.match(text):
        if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", text) and not text.startswith(("./", "/")):
            scheme = text.split(":", 1)[0]
            if scheme.lower() in _NETWORK_SCHEMES | {"file", "memory"}:
                raise InvalidURIError(
                    f"malformed URI {_mask(text)!r}: expected '{scheme}://' after the scheme"
                )
        path = os.path.abspath(os.path.join(cwd or os.getcwd(), os.path.expanduser(text)))
        return Location(scheme="file", host=None, port=None, path=path)

    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise InvalidURIError(f"malformed URI {_mask(text)!r}: {exc}") from None
    scheme = parts.scheme.lower()
    if not _SCHEME.match(scheme):
        raise InvalidURIError(f"malformed URI {_mask(text)!r}: invalid scheme {scheme!r}")
    if parts.fragment:
        raise InvalidURIError(f"malformed URI {_mask(text)!r}: fragments ('#...') are not allowed")
    host = parts.hostname
    path = unquote(parts.path)
    if scheme in _NETWORK_SCHEMES and not host:
        raise InvalidURIError(f"malformed URI {_mask(text)!r}: {scheme} needs a host")
    if scheme == "file":
        if host not in (None, "", "localhost"):
            raise InvalidURIError(
                f"malformed URI {_mask(text)!r}: file URIs name a local path (file:///path)"
            )
        host = None
        if not path.startswith("/"):
            raise InvalidURIError(f"malformed URI {_mask(text)!r}: file URIs need an absolute path")
        path = os.path.normpath(path)
    elif not path:
        path = "/"
    return Location(
        scheme=scheme,
        host=host,
        port=port,
        path=path,
        query=parts.query,
        username=unquote(parts.username) if parts.username is not None else None,
        password=unquote(parts.password) if parts.password is not None else None,
    )


#: Query parameter names (lower case) whose values are credentials: signed URLs of the common
#: object stores and the usual token parameters.
SECRET_QUERY_PARAMETERS = frozenset({
    "access_token", "api_key", "apikey", "auth", "code", "credential", "key", "password",
    "secret", "sig", "signature", "token", "x-amz-credential", "x-amz-security-token",
    "x-amz-signature", "x-goog-credential", "x-goog-signature",
})


def _redact_query(query: str) -> str:
    pairs = parse_qsl(query, keep_blank_values=True)
    masked = [(k, "***" if k.lower() in SECRET_QUERY_PARAMETERS else v) for k, v in pairs]
    return urlencode(masked, safe="*")


def _mask(text: str) -> str:
    """Mask a password in the userinfo part of a URI-like text."""
    return re.sub(r"(//[^/:@]*:)[^/@]*@", r"\1***@", text)


__all__ = ["Location", "parse_location"]
