"""Storage isolation at admission: a job's destination, and a local source, must lie inside
its tenant's ``allowedDestinations`` (or its nearest ancestor's); traversal and hostile paths
are refused inside the state machine, and nothing is applied."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from quorus.core.controller import Applied, ControllerState, Rejected, SubmitJob
from quorus.core.controller.results import RejectCode
from quorus.tenant.commands import ApplyTenants
from quorus.tenant.state import TenantStateModule

T0 = 1_800_000_000.0
TENANTS = """\
apiVersion: quorus.dev/v1
kind: TenantConfiguration
metadata: {name: acme}
spec:
  hierarchy: {parent: null}
  security:
    networking:
      allowedDestinations: ["/data/acme", "sftp://files.acme.internal/in/*"]
---
apiVersion: quorus.dev/v1
kind: TenantConfiguration
metadata: {name: acme-hr}
spec:
  hierarchy: {parent: acme}
---
apiVersion: quorus.dev/v1
kind: TenantConfiguration
metadata: {name: globex}
spec:
  hierarchy: {parent: null}
  security:
    networking:
      allowedDestinations: ["/data/globex/*"]
---
apiVersion: quorus.dev/v1
kind: TenantConfiguration
metadata: {name: muller}
spec:
  hierarchy: {parent: null}
  security:
    networking:
      allowedDestinations: ["/data/m\u00fcller"]
"""


class Controller:
    def __init__(self) -> None:
        self.state = ControllerState([TenantStateModule()])
        self.index = itertools.count(1)
        self.ids = itertools.count(1)
        assert isinstance(self.apply(ApplyTenants(T0, TENANTS)), Applied)

    def apply(self, command: Any) -> Any:
        return self.state.apply(next(self.index), command.encode())

    def submit(self, source: str, destination: str, tenant: str) -> Applied | Rejected:
        job_id = f"j{next(self.ids)}"
        result = self.apply(SubmitJob.new(source, destination, job_id=job_id, at=T0,
                                          tenant=tenant))
        assert isinstance(result, Applied | Rejected)
        if isinstance(result, Rejected):
            assert self.state.job(job_id) is None  # nothing applied
        return result


@pytest.fixture
def controller() -> Controller:
    return Controller()


@pytest.mark.parametrize(("source", "destination", "tenant"), [
    ("/data/acme/in/a.csv", "/data/acme/out/a.csv", "acme"),
    ("https://api.acme.internal/export", "/data/acme/out/b.json", "acme"),
    ("/data/acme/x", "sftp://files.acme.internal/in/x.csv", "acme"),
    ("/data/acme/hr/in", "/data/acme/hr/out", "acme-hr"),  # the parent's storage
    ("https://x.internal/a", "/data/globex/a", "globex"),
    # Scheme and host compare without case; paths are NFC: a decomposed ü is the same name.
    ("/data/acme/x", "SFTP://Files.Acme.Internal/in/x.csv", "acme"),
    ("https://x/a", "/data/mu\u0308ller/a", "muller"),
    ("https://x/a", "/data/m\u00fcller/caf\u0065\u0301.csv", "muller"),
])
def test_inside_the_tenants_storage_is_admitted(controller: Controller, source: str,
                                                destination: str, tenant: str) -> None:
    assert isinstance(controller.submit(source, destination, tenant), Applied)


@pytest.mark.parametrize(("source", "destination", "tenant", "why"), [
    ("https://x/a", "/data/globex/a", "acme", "outside the storage of tenant acme"),
    # A job's locations are normalised when the command is built: the escape lands outside.
    ("https://x/a", "/data/acme/../globex/a", "acme", "outside"),
    ("https://x/a", "/data/acme/%2e%2e/globex/a", "acme", "refused"),
    ("https://x/a", "/data/acmeevil/a", "acme", "outside"),
    ("https://x/a", "sftp://files.acme.internal/out/a", "acme", "outside"),
    ("https://x/a", "sftp://evil.internal/in/a", "acme", "outside"),
    ("/data/globex/secret", "/data/acme/stolen", "acme", "source"),
    ("https://x/a", "/data/acme/a", "globex", "outside the storage of tenant globex"),
    ("https://x/a", "/data/acme/hr/../../globex/a", "acme-hr", "outside"),
    # Hostile names: double percent-encoding, backslashes, and look-alikes that fold to
    # separators or dots (fullwidth solidus and full stop, the two-dot leader).
    ("https://x/a", "/data/acme/%252e%252e/globex/a", "acme", "refused"),
    ("https://x/a", "/data/acme/..\\..\\globex\\a", "acme", "refused"),
    ("https://x/a", "/data/acme/\uff0e\uff0e\uff0fglobex/a", "acme", "refused"),
    ("https://x/a", "/data/acme/\u2025/globex/a", "acme", "refused"),
    # A path's case is its own: /data/ACME is not acme's /data/acme on a POSIX disk.
    ("https://x/a", "/data/ACME/a", "acme", "outside"),
    # Normalising Unicode never takes a path out of the root it names, nor into another's.
    ("https://x/a", "/data/mu\u0308ller/../acme/a", "muller", "outside"),
    ("https://x/a", "/data/m\u00fcllerx/a", "muller", "outside"),
])
def test_escapes_and_other_tenants_storage_are_refused(
    controller: Controller, source: str, destination: str, tenant: str, why: str,
) -> None:
    result = controller.submit(source, destination, tenant)
    assert isinstance(result, Rejected), result
    assert result.code is RejectCode.ADMISSION_DENIED
    assert why in result.message
