"""`make demo`: Quorus's main job on one machine.

Starts an HTTP server on loopback serving a few generated files, moves them with
`quorus transfer` (progress shown), checks each against its published SHA-256, shows that a
wrong checksum is refused without leaving a file behind, and prints the verified results.
Then the fleet (scripts/demo_fleet.py): a 3-controller Raft quorum and 3 agents move the same
files, submitted to the REST API, with their progress, the cluster and the agents shown, and
run an example YAML workflow (quorus-workflow-examples/basic/mixed-with-conditions.yaml) with
`quorus workflow submit --wait`.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from demo_fleet import run_fleet
from rich.console import Console
from rich.table import Table

QUORUS = str(Path(sys.executable).with_name("quorus"))
FILES = {"reports/daily.csv": 8 * 1024 * 1024, "images/scan.tiff": 48 * 1024 * 1024,
         "backup/db.dump": 96 * 1024 * 1024}


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> int:
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 110)
    work = Path(tempfile.mkdtemp(prefix="quorus-demo-"))
    served, received = work / "served", work / "received"
    checksums: dict[str, str] = {}
    for name, size in FILES.items():
        path = served / name
        path.parent.mkdir(parents=True, exist_ok=True)
        data = os.urandom(size)
        path.write_bytes(data)
        checksums[name] = hashlib.sha256(data).hexdigest()

    handler = functools.partial(QuietHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    console.rule("[bold]Quorus demo")
    console.print(f"HTTP server on {base} serving {len(FILES)} files from {served}\n")

    progress = "bar" if sys.stderr.isatty() else "plain"
    rows = []
    try:
        for name in FILES:
            console.print(f"[bold]quorus transfer[/] {base}/{name} {received / name}")
            proc = subprocess.run(
                [QUORUS, "transfer", f"{base}/{name}", str(received / name), "--json",
                 "--checksum", f"sha256:{checksums[name]}", "--bwlimit", "200MB/s",
                 "--progress", progress],
                stdout=subprocess.PIPE, text=True, check=False,
            )
            rows.append(json.loads(proc.stdout))

        console.print("\n[bold]A wrong checksum is refused and leaves nothing behind:[/]")
        bad = received / "reports" / "tampered.csv"
        proc = subprocess.run(
            [QUORUS, "transfer", f"{base}/reports/daily.csv", str(bad),
             "--checksum", "sha256:" + "0" * 64, "--progress", "none"],
            capture_output=True, text=True, check=False,
        )
        console.print(f"  exit code {proc.returncode}: {proc.stderr.strip()}", markup=False,
                      soft_wrap=True)
        console.print(f"  {bad.name} exists: {bad.exists()}")
        fleet_ok = run_fleet(console, base, checksums, work / "fleet", served)
    finally:
        server.shutdown()

    table = Table(title="Verified transfers")
    for column in ("file", "status", "bytes", "seconds", "attempts", "sha256 verified"):
        table.add_column(column)
    ok = True
    for name, row in zip(FILES, rows, strict=True):
        on_disk = hashlib.sha256((received / name).read_bytes()).hexdigest()
        verified = row["status"] == "completed" and row["sha256"] == on_disk == checksums[name]
        ok &= verified
        table.add_row(name, row["status"], f"{row['bytes']:,}", f"{row['seconds']:.2f}",
                      str(row["attempts"]), "yes" if verified else "NO")
    console.print()
    console.print(table)
    console.print(f"fleet transfers all completed and verified: {'yes' if fleet_ok else 'NO'}")
    shutil.rmtree(work)
    return 0 if ok and fleet_ok and proc.returncode == 1 else 1


if __name__ == "__main__":
    sys.exit(main())
