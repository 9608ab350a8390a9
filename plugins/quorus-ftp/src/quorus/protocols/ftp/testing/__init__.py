"""A real FTP server on loopback for tests and benchmarks of the FTP protocol.

:class:`~quorus.protocols.ftp.testing.vsftpd.VsftpdServer` runs Debian's ``vsftpd`` with a
private configuration (plain or explicit TLS) and a throwaway account. It needs root and the
``test`` extra (``trustme``) for TLS.
"""

from quorus.protocols.ftp.testing.vsftpd import VsftpdServer, vsftpd_available

__all__ = ["VsftpdServer", "vsftpd_available"]
