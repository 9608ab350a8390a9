"""Real-server helpers for the SMB plugin's tests and benchmarks: a private Samba ``smbd``."""

from quorus.protocols.smb.testing.samba import (
    ENCRYPTED_SHARE,
    READ_ONLY_SHARE,
    SHARE,
    SambaServer,
    running_samba,
    samba_available,
)

__all__ = [
    "ENCRYPTED_SHARE",
    "READ_ONLY_SHARE",
    "SHARE",
    "SambaServer",
    "running_samba",
    "samba_available",
]
