"""Audit export of 1,000,000 records: lines per second and the process's peak RSS growth,
against the baseline of only building the same records (no JSON lines), in one run.

Usage: python quorus-tenant/benchmarks/audit_export_bench.py [--records 1000000]
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from collections.abc import Iterator

from quorus.tenant.audit import GENESIS_HASH, AuditRecord, export, record_hash


def records(count: int) -> Iterator[AuditRecord]:
    previous = GENESIS_HASH
    for n in range(count):
        body = {"sequence": n + 1, "at": 1000.0 + n, "tenant": "acme", "actor": "alice",
                "action": "jobs.submit", "target": f"job-{n}", "outcome": "applied",
                "detail": None, "previous_hash": previous}
        digest = record_hash(body)
        yield AuditRecord.from_data({**body, "hash": digest})
        previous = digest


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    args = parser.parse_args()
    start_rss = peak_rss_mb()
    t0 = time.perf_counter()
    for _ in records(args.records):
        pass
    build = time.perf_counter() - t0
    t1 = time.perf_counter()
    lines = sum(1 for _ in export(records(args.records)))
    both = time.perf_counter() - t1
    print(json.dumps({
        "records": lines, "build_only_s": round(build, 2), "build_and_export_s": round(both, 2),
        "lines_per_s": round(lines / both), "ratio": round(both / build, 2),
        "peak_rss_growth_mb": round(peak_rss_mb() - start_rss, 1),
    }, indent=2))


if __name__ == "__main__":
    main()
