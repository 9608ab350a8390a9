"""The ``ftp`` and ``ftps`` (explicit FTPS) protocols for Quorus, over aioftp (asyncio only).

Passive data connections (EPSV, then PASV), ``REST`` for ranged reads and for continuing a
partial upload, large reads, and logged-in control connections pooled per server and user.
With ``ftps`` the server's certificate is verified and the data connections are protected
(``PBSZ 0``, ``PROT P``).
"""

from quorus.protocols.ftp.protocol import FtpProtocol
from quorus.protocols.ftp.settings import FtpSettings

__all__ = ["FtpProtocol", "FtpSettings"]
