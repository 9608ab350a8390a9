"""Data-sharing agreements between tenants, replicated in the ``sharing`` state module, which
also refuses cross-tenant workflows that no agreement covers (:mod:`quorus.tenant.sharing.rule`),
and the controller extension serving ``/v1/agreements``."""

from quorus.tenant.sharing.commands import RecordAgreement, RevokeAgreement, SharingResult
from quorus.tenant.sharing.extension import SharingExtension
from quorus.tenant.sharing.rule import refusal
from quorus.tenant.sharing.state import SharingStateModule

__all__ = ["RecordAgreement", "RevokeAgreement", "SharingExtension", "SharingResult",
           "SharingStateModule", "refusal"]
