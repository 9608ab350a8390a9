"""The WebDAV pieces of the protocol: PROPFIND requests and their multistatus answers.

Only the properties Quorus needs are asked for (resource type, length, modification date,
ETag). Parsing uses the standard library's expat-based ElementTree, which refuses external
entities and, with expat 2.4 or later, bounds entity expansion.
"""

from __future__ import annotations

import posixpath
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from quorus.core.errors import TransferError
from quorus.core.protocol import FileInfo
from quorus.core.uri import Location
from quorus.protocols.http.reading import parse_http_date

PROPFIND_BODY = (
    b'<?xml version="1.0" encoding="utf-8"?>\n'
    b'<D:propfind xmlns:D="DAV:"><D:prop>'
    b"<D:resourcetype/><D:getcontentlength/><D:getlastmodified/><D:getetag/>"
    b"</D:prop></D:propfind>"
)
PROPFIND_HEADERS = {"Content-Type": 'application/xml; charset="utf-8"'}

_DAV = "{DAV:}"


@dataclass(frozen=True)
class DavEntry:
    """One ``<response>`` of a multistatus: a decoded path and its properties."""

    path: str
    is_dir: bool
    size: int | None
    mtime: float | None
    etag: str | None

    def info(self, base: Location) -> FileInfo:
        return FileInfo(
            location=base.with_path(self.path),
            size=None if self.is_dir else self.size,
            is_dir=self.is_dir,
            mtime=self.mtime,
            etag=self.etag,
        )


def parse_multistatus(body: bytes, what: str) -> list[DavEntry]:
    """The entries of a ``207 Multi-Status`` body; :class:`TransferError` if it is not one."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise TransferError(
            f"cannot list {what}: the server's PROPFIND answer is not XML ({exc})"
        ) from None
    if root.tag != f"{_DAV}multistatus":
        raise TransferError(f"cannot list {what}: the server's PROPFIND answer is not a multistatus")
    entries = []
    for response in root.iter(f"{_DAV}response"):
        href = response.findtext(f"{_DAV}href")
        if not href:
            continue
        props = _ok_props(response)
        if props is None:
            continue
        length = props.findtext(f"{_DAV}getcontentlength")
        resource_type = props.find(f"{_DAV}resourcetype")
        entries.append(DavEntry(
            path=_href_path(href),
            is_dir=resource_type is not None and resource_type.find(f"{_DAV}collection") is not None,
            size=int(length) if length and length.strip().isdigit() else None,
            mtime=parse_http_date(props.findtext(f"{_DAV}getlastmodified")),
            etag=(props.findtext(f"{_DAV}getetag") or "").strip() or None,
        ))
    return entries


def children(entries: list[DavEntry], directory: str) -> list[DavEntry]:
    """The entries directly inside ``directory`` (a depth-1 answer also names the directory)."""
    parent = directory.rstrip("/") or "/"
    found = {}
    for entry in entries:
        path = entry.path.rstrip("/") or "/"
        if path != parent and posixpath.dirname(path) == parent:
            found[path] = DavEntry(path, entry.is_dir, entry.size, entry.mtime, entry.etag)
    return [found[path] for path in sorted(found)]


def _ok_props(response: ET.Element) -> ET.Element | None:
    """The ``<prop>`` of the propstat whose status is 200 (others list missing properties)."""
    for propstat in response.iter(f"{_DAV}propstat"):
        status = propstat.findtext(f"{_DAV}status") or ""
        if " 200 " in f"{status} ":
            return propstat.find(f"{_DAV}prop")
    return None


def _href_path(href: str) -> str:
    """The decoded path of an ``href``, which may be a full URL or an absolute path."""
    return unquote(urlsplit(href.strip()).path)


__all__ = ["PROPFIND_BODY", "PROPFIND_HEADERS", "DavEntry", "children", "parse_multistatus"]
