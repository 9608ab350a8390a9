"""What the admission benchmarks share: a tenant hierarchy whose every quota is set.

``company`` → ``department`` → ``team``, with every quota the design names set on the way
down, each far too high to refuse anything: a job submitted to ``team`` is checked against,
and reserves on, every one of them, up the whole hierarchy, without ever being refused. Both
``quorus-tenant/benchmarks/admission_bench.py`` (one controller) and the fleet benchmark's
``--tenant-quotas`` (a Raft quorum and simulated agents) submit into it.
"""

from __future__ import annotations

#: The tenant jobs are submitted to, and its storage root (admission checks paths too).
QUOTA_TENANT = "team"
QUOTA_ROOT = f"/data/tenants/{QUOTA_TENANT}"
_BIG = 10**12

#: The hierarchy as ``TenantConfiguration`` YAML (``quorus tenant apply``, ``PUT /v1/tenants``).
QUOTA_TENANTS = f"""\
apiVersion: quorus.dev/v1
kind: TenantConfiguration
metadata: {{name: company}}
spec:
  resources:
    quotas: {{maxConcurrentTransfers: {_BIG}, maxDailyTransfers: {_BIG},
              maxMonthlyDataTransfer: {_BIG * 1000}, maxFileSize: {_BIG},
              maxStorageUsage: {_BIG * 1000}, maxBandwidthMbps: 10000}}
---
apiVersion: quorus.dev/v1
kind: TenantConfiguration
metadata: {{name: department}}
spec:
  hierarchy: {{parent: company}}
  resources:
    quotas: {{maxConcurrentTransfers: {_BIG}, maxDailyTransfers: {_BIG}}}
---
apiVersion: quorus.dev/v1
kind: TenantConfiguration
metadata: {{name: {QUOTA_TENANT}}}
spec:
  hierarchy: {{parent: department}}
  resources:
    quotas: {{maxConcurrentTransfers: {_BIG}, maxFileSize: {_BIG}}}
"""

__all__ = ["QUOTA_ROOT", "QUOTA_TENANT", "QUOTA_TENANTS"]
