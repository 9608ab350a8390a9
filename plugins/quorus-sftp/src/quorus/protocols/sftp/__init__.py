"""The ``sftp`` protocol for Quorus, built on asyncssh (asyncio only).

Downloads and uploads keep many SFTP requests in flight, continue partial files at an offset,
and share one SSH login per server and user across transfers. Host keys are verified against
a known_hosts file by default; passwords, private keys (encrypted ones with a passphrase) and
an SSH agent authenticate.
"""

from quorus.protocols.sftp.protocol import SftpProtocol

__all__ = ["SftpProtocol"]
