"""The ``smb`` protocol for Quorus: SMB 2 and 3 file shares over smbprotocol.

Reads and writes keep many requests in flight within the server's credits, resume at any
offset, and are signed or encrypted as configured or as the server demands.
"""

from quorus.protocols.smb.protocol import SessionSecurity, SmbProtocol

__all__ = ["SessionSecurity", "SmbProtocol"]
