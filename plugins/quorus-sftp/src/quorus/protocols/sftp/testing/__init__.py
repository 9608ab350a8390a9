"""Real SSH servers on loopback for tests and benchmarks of the SFTP protocol.

:class:`OpenSshServer` runs a private OpenSSH ``sshd`` (Debian ``openssh-server``) on a free
port of 127.0.0.1 with its configuration, keys and served directory under one directory;
:class:`SystemUser` makes a throwaway account for password and permission tests (root only).
"""

from quorus.protocols.sftp.testing.sshd import OpenSshServer, SystemUser, sshd_available

__all__ = ["OpenSshServer", "SystemUser", "sshd_available"]
