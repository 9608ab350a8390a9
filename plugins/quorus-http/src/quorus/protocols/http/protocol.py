"""The ``http``/``https`` transfer protocol: one pooled httpx client per instance.

Reads are streamed GETs, ranged (``Range`` plus ``If-Range``) when the engine resumes; writes
are streamed PUTs (or POSTs). With the ``webdav`` option the server is also a file system:
MOVE renames, DELETE deletes, MKCOL creates directories and PROPFIND lists and recognises
collections. Options are described in :class:`HttpProtocol`.
"""

from __future__ import annotations

import logging
import posixpath
from collections import OrderedDict
from urllib.parse import quote, urlunsplit

import httpx
from quorus.core.errors import (
    ConfigurationError,
    DestinationExistsError,
    NotAFileError,
    NotFoundError,
    SourceChangedError,
    TransferError,
    UnsupportedOperationError,
)
from quorus.core.protocol import (
    Capabilities,
    FileInfo,
    ProtocolOptions,
    ReadStream,
    TransferProtocol,
    WriteStream,
)
from quorus.core.uri import Location
from quorus.protocols.http import webdav
from quorus.protocols.http.errors import status_error, transport_error
from quorus.protocols.http.reading import (
    EmptyReadStream,
    HttpReadStream,
    content_length,
    is_encoded,
    parse_content_range,
    response_info,
    validator,
)
from quorus.protocols.http.settings import HttpSettings
from quorus.protocols.http.writing import HttpWriteStream

log = logging.getLogger(__name__)

#: Files whose last stat is remembered, for ``If-Range`` on the read that follows it.
_VALIDATOR_CACHE_SIZE = 1024
_PATH_SAFE = "/~:@!$&'()*+,;="


def request_url(location: Location) -> str:
    """The URL to send: never with userinfo (credentials travel in ``Authorization``)."""
    path = quote(location.path or "/", safe=_PATH_SAFE)
    return urlunsplit((location.scheme, location.netloc, path, location.query, ""))


class HttpProtocol(TransferProtocol):
    """HTTP and HTTPS, optionally WebDAV.

    Options: ``bearer_token``, ``username``, ``password`` (credential references: a literal,
    ``env:NAME`` or ``file:PATH``; ``user:password@`` in the URI works too), ``headers`` (a
    mapping; values may be references), ``ca_bundle`` (PEM file of trusted CAs), ``verify``
    (default true), ``timeout`` and ``connect_timeout`` (seconds), ``max_redirects``
    (default 5), ``upload_method`` (PUT or POST), ``webdav`` (rename, delete, makedirs and
    listing through WebDAV methods) and ``chunk_size`` (default 2 MiB).
    """

    schemes = ("http", "https")

    def __init__(self, options: ProtocolOptions | None = None) -> None:
        super().__init__(options)
        self.settings = HttpSettings.from_options(self.options)
        # Keep resolved Secrets, not the texts given, so a printed options mapping shows
        # "<secret from env:NAME>" rather than a literal credential.
        self.options = self.settings.redact(self.options)
        self._client: httpx.AsyncClient | None = None
        self._known: OrderedDict[str, FileInfo] = OrderedDict()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(webdav={self.settings.webdav})"

    @property
    def client(self) -> httpx.AsyncClient:
        """The shared client, created on first use so connections are reused across transfers."""
        if self._client is None:
            self._client = self.settings.client()
        return self._client

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    def capabilities(self, location: Location) -> Capabilities:
        dav = self.settings.webdav
        return Capabilities(
            ranged_read=True,
            write_at_offset=False,
            rename=dav,
            listing=dav,
            delete=dav,
            chunk_size=self.settings.chunk_size,
        )

    # --- reading -------------------------------------------------------------------------

    async def stat(self, location: Location) -> FileInfo:
        what = location.redacted()
        response = await self._send("HEAD", location, action="stat")
        if response.status_code in (405, 501):
            # HEAD refused: ask for the first byte instead and read the size from the answer.
            response = await self._send(
                "GET", location, action="stat", headers={"Range": "bytes=0-0"}, stream=True
            )
            await response.aclose()
        status = response.status_code
        if await self._is_collection(location, response):
            return FileInfo(location, None, is_dir=True)
        if response.is_success:
            if status == 206:
                content_range = parse_content_range(response.headers.get("Content-Range"))
                size = content_range.total if content_range else None
            else:
                size = content_length(response)
            info = response_info(location, response, size)
        elif status == 416:
            content_range = parse_content_range(response.headers.get("Content-Range"))
            if content_range is None or content_range.total != 0:
                raise status_error(response, "stat", what)
            info = response_info(location, response, 0)
        else:
            raise status_error(response, "stat", what)
        self._remember(location, info)
        return info

    async def open_read(
        self, location: Location, offset: int = 0, length: int | None = None
    ) -> ReadStream:
        what = location.redacted()
        if offset < 0 or (length is not None and length < 0):
            raise TransferError(f"cannot read {what}: invalid range {offset}+{length}")
        headers = {}
        if offset or length is not None:
            if length == 0:
                return EmptyReadStream(await self.stat(location))
            last = "" if length is None else str(offset + length - 1)
            headers["Range"] = f"bytes={offset}-{last}"
            known = self._known.get(request_url(location))
            if_range = validator(known) if known is not None else None
            if if_range is not None:
                # A changed file then comes back whole (200) instead of as a wrong slice.
                headers["If-Range"] = if_range
        response = await self._send("GET", location, action="read", headers=headers, stream=True)
        try:
            return await self._read_stream(location, response, offset, length)
        except BaseException:
            await response.aclose()
            raise

    async def _read_stream(
        self, location: Location, response: httpx.Response, offset: int, length: int | None
    ) -> ReadStream:
        what = location.redacted()
        status = response.status_code
        chunk_size = self.settings.chunk_size
        if await self._is_collection(location, response):
            raise NotAFileError(f"cannot read {what}: it is a directory, not a file")
        if status == 206:
            content_range = parse_content_range(response.headers.get("Content-Range"))
            if content_range is None or content_range.start is None or is_encoded(response):
                raise TransferError(
                    f"cannot read {what} from byte {offset}: the server's partial answer "
                    "cannot be used (multipart or content-coded); try again with resume off"
                )
            if content_range.start > offset:
                raise TransferError(
                    f"cannot read {what}: asked for byte {offset}, "
                    f"the server answered from byte {content_range.start}"
                )
            info = response_info(location, response, content_range.total)
            skip = offset - content_range.start
            return HttpReadStream(response, info, chunk_size=chunk_size, skip=skip, length=length)
        if response.is_success:
            if offset and is_encoded(response):
                raise TransferError(
                    f"cannot read {what} from byte {offset}: the server sent it content-coded "
                    "and whole, so byte offsets cannot be honoured"
                )
            # A 200 to a ranged request: the server ignores ranges or the file changed
            # (If-Range). Skipping to the offset is correct, only slower; the identity in
            # `info` tells the engine whether the file is still the one it was reading.
            info = response_info(location, response, content_length(response))
            if offset:
                log.info("%s: the server sent the whole file, not from byte %d (ranges "
                         "unsupported or the file changed); skipping to the offset", what, offset)
            return HttpReadStream(response, info, chunk_size=chunk_size, skip=offset, length=length)
        if status == 416:
            content_range = parse_content_range(response.headers.get("Content-Range"))
            total = content_range.total if content_range is not None else None
            if total is not None and offset == total:
                return HttpReadStream.empty(response, response_info(location, response, total))
            if total is not None and offset > total:
                raise SourceChangedError(
                    f"cannot read {what} from byte {offset}: the file has only {total} bytes"
                )
            raise status_error(response, "read", what)
        raise status_error(response, "read", what)

    # --- writing -------------------------------------------------------------------------

    async def open_write(
        self,
        location: Location,
        offset: int = 0,
        *,
        size_hint: int | None = None,
        mode: int | None = None,
    ) -> WriteStream:
        what = location.redacted()
        if offset:
            raise UnsupportedOperationError(
                f"cannot continue the upload to {what} at byte {offset}: "
                "HTTP uploads always send the whole file"
            )
        if location.path.endswith("/"):
            raise NotAFileError(f"cannot upload to {what}: the URL names a directory")
        return await HttpWriteStream.start(
            self.client,
            self.settings.upload_method,
            request_url(location),
            what=what,
            size_hint=size_hint,
            auth=_uri_auth(location),
        )

    # --- WebDAV --------------------------------------------------------------------------

    async def list(self, location: Location) -> list[FileInfo]:
        what = location.redacted()
        self._require_webdav("list", location)
        directory = location.with_path(location.path.rstrip("/") + "/")
        response = await self._send(
            "PROPFIND", directory, action="list",
            headers={"Depth": "1", **webdav.PROPFIND_HEADERS}, content=webdav.PROPFIND_BODY,
        )
        if response.status_code in (405, 501):
            raise UnsupportedOperationError(
                f"cannot list {what}: the server does not answer PROPFIND "
                "(nginx needs the dav-ext module for it)"
            )
        if response.status_code != 207:
            raise status_error(response, "list", what)
        entries = webdav.parse_multistatus(response.content, what)
        itself = [e for e in entries if e.path.rstrip("/") == location.path.rstrip("/")]
        if itself and not itself[0].is_dir:
            raise NotAFileError(f"cannot list {what}: it is a file, not a directory")
        return [entry.info(location) for entry in webdav.children(entries, location.path)]

    async def rename(self, source: Location, target: Location, *, replace: bool = True) -> None:
        what = source.redacted()
        self._require_webdav("rename", source)
        if (source.scheme, source.netloc) != (target.scheme, target.netloc):
            raise UnsupportedOperationError(
                f"cannot rename {what} to {target.redacted()}: both must be on the same server"
            )
        response = await self._send(
            "MOVE", source, action="rename", follow_redirects=False,
            headers={"Destination": request_url(target), "Overwrite": "T" if replace else "F"},
        )
        status = response.status_code
        if response.is_success:
            self._known.pop(request_url(source), None)
            return
        if status == 412:
            raise DestinationExistsError(f"cannot rename {what}: {target.redacted()} exists")
        if status == 409:
            raise NotFoundError(
                f"cannot rename {what} to {target.redacted()}: the target directory does not exist"
            )
        raise status_error(response, "rename", what)

    async def delete(self, location: Location) -> None:
        self._require_webdav("delete", location)
        response = await self._send("DELETE", location, action="delete", follow_redirects=False)
        if not response.is_success:
            raise status_error(response, "delete", location.redacted())
        self._known.pop(request_url(location), None)

    async def makedirs(self, location: Location) -> None:
        self._require_webdav("create directories", location)
        path = location.path.rstrip("/")
        missing: list[str] = []
        # Walk up until a MKCOL succeeds or finds the directory, then create the rest downward.
        while path:
            status = await self._mkcol(location, path)
            if status == 409:  # the parent is missing too
                missing.append(path)
                path = posixpath.dirname(path).rstrip("/")
                continue
            break
        for path in reversed(missing):
            if await self._mkcol(location, path) == 409:
                raise NotFoundError(f"cannot create directory {location.redacted()}: conflict")

    async def _mkcol(self, location: Location, path: str) -> int:
        """MKCOL ``path``; 201 (created), 409 (parent missing) or an existing directory."""
        target = location.with_path(path + "/")
        response = await self._send("MKCOL", target, action="create directory",
                                    follow_redirects=False)
        status = response.status_code
        if status in (201, 409):
            return status
        if status == 405:  # something exists there already: fine if it is a directory
            if (await self.stat(location.with_path(path))).is_dir:
                return status
            raise NotAFileError(
                f"cannot create directory {target.redacted()}: a file is in the way"
            )
        raise status_error(response, "create directory", target.redacted())

    # --- helpers -------------------------------------------------------------------------

    async def _send(
        self,
        method: str,
        location: Location,
        *,
        action: str,
        headers: dict[str, str] | None = None,
        content: bytes | None = None,
        stream: bool = False,
        follow_redirects: bool = True,
    ) -> httpx.Response:
        if location.scheme not in self.schemes:
            raise ConfigurationError(f"the http protocol cannot serve {location.redacted()}")
        client = self.client
        request = client.build_request(
            method, request_url(location), headers=headers, content=content
        )
        auth = _uri_auth(location)
        try:
            return await client.send(
                request,
                auth=auth if auth is not None else httpx.USE_CLIENT_DEFAULT,
                stream=stream,
                follow_redirects=follow_redirects,
            )
        except httpx.HTTPError as exc:
            raise transport_error(exc, action, location.redacted()) from exc

    async def _is_collection(self, location: Location, response: httpx.Response) -> bool:
        """Whether a HEAD or GET was aimed at a directory rather than a file.

        A redirect to the same path with a trailing slash says so (plain web servers).
        Over WebDAV, PROPFIND decides when the answer leaves doubt: a refusal (403, 405)
        or a URL ending in ``/``; ordinary file answers cost no extra request.
        """
        status = response.status_code
        if _names_collection(location, response) and (response.is_success or status == 403):
            return True
        doubtful = status in (403, 405) or (response.is_success and location.path.endswith("/"))
        if not self.settings.webdav or not doubtful:
            return False
        response = await self._send(
            "PROPFIND", location, action="stat",
            headers={"Depth": "0", **webdav.PROPFIND_HEADERS}, content=webdav.PROPFIND_BODY,
        )
        if response.status_code != 207:
            return False
        entries = webdav.parse_multistatus(response.content, location.redacted())
        return bool(entries) and entries[0].is_dir

    def _remember(self, location: Location, info: FileInfo) -> None:
        key = request_url(location)
        self._known[key] = info
        self._known.move_to_end(key)
        while len(self._known) > _VALIDATOR_CACHE_SIZE:
            self._known.popitem(last=False)

    def _require_webdav(self, action: str, location: Location) -> None:
        if not self.settings.webdav:
            raise UnsupportedOperationError(
                f"cannot {action} {location.redacted()} over plain HTTP; "
                f"enable WebDAV with -o {location.scheme}.webdav=true if the server speaks it"
            )


def _names_collection(location: Location, response: httpx.Response) -> bool:
    """True when the server redirected a path without a trailing slash to the same path
    with one: the way web servers answer a request for a directory.

    A URL that already ends in ``/`` is taken for whatever it serves (download endpoints
    may look like that); WebDAV servers are asked with PROPFIND instead.
    """
    return (
        bool(response.history)
        and response.url.path.endswith("/")
        and not location.path.endswith("/")
    )


def _uri_auth(location: Location) -> httpx.Auth | None:
    """Basic auth from ``user:password@`` in the URI, which wins over the options."""
    if location.username is None:
        return None
    return httpx.BasicAuth(location.username, location.password or "")


__all__ = ["HttpProtocol", "request_url"]
