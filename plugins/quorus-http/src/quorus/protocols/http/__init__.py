"""The ``http`` and ``https`` protocols for Quorus, built on httpx.

Downloads are streamed with ranged GETs (so interrupted transfers resume), uploads are
streamed PUTs (or POSTs) with bounded memory, and with the ``webdav`` option the protocol
also renames (MOVE), deletes (DELETE), creates directories (MKCOL) and lists (PROPFIND).
"""

from quorus.protocols.http.protocol import HttpProtocol

__all__ = ["HttpProtocol"]
