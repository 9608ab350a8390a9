"""The workflow examples in ``quorus-workflow-examples/`` as an operator uses them: through the
``quorus`` console script, in a process of its own.

Every YAML file validates and dry-runs offline (with the ``--set`` values and credentials it
needs); where an example cannot run here, the dry run must name exactly why, never show a
traceback. The basic examples and a template run for real against a private nginx and local
files; two feeds of the cross-protocol example run for real against private OpenSSH, Samba,
vsftpd and nginx servers. Every destination is checked byte for byte by SHA-256.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from quorus.core.testing.fixtures import missing_server, payload_bytes

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "quorus-workflow-examples"
QUORUS = str(Path(sys.executable).with_name("quorus"))
#: Seconds one ``quorus`` command may take: every example here moves a few kilobytes.
COMMAND_SECONDS = 60
#: Variables the examples read from the environment; cleared so this machine's own values
#: never change an outcome.
EXAMPLE_ENVIRONMENT = (
    "REPORTS_API_CREDENTIALS", "WAREHOUSE_TOKEN", "ERP_PASSWORD", "BI_DROP_PASSWORD",
    "FILESERVER_PASSWORD", "LEGACY_FTP_PASSWORD", "INTRANET_PASSWORD", "VENDOR_API_KEY",
    "QUORUS_SLACK_WEBHOOK", "QUORUS_SMTP_HOST",
)


def quorus(*args: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``quorus workflow ARGS`` run from the examples' directory."""
    environ = {k: v for k, v in os.environ.items() if k not in EXAMPLE_ENVIRONMENT}
    environ.update(env or {})
    done = subprocess.run([QUORUS, "workflow", *args], capture_output=True, text=True,
                          timeout=COMMAND_SECONDS, env=environ, cwd=EXAMPLES, check=False)
    assert "Traceback" not in done.stderr, done.stderr
    return done


def run_json(*args: str, env: Mapping[str, str] | None = None,
             expect: int = 0) -> dict[str, Any]:
    """Run a workflow with ``--json``; its summary, after checking the exit code."""
    done = quorus("run", "--json", *args, env=env)
    assert done.returncode == expect, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    summary: dict[str, Any] = json.loads(done.stdout)
    return summary


def sets(values: Mapping[str, str | Path]) -> list[str]:
    return [arg for name, value in values.items() for arg in ("--set", f"{name}={value}")]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def steps(summary: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["step"].split("/", 1)[1]: s for s in summary["steps"]}


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def seed(root: Path) -> dict[str, Path]:
    """The local sources of the basic examples and templates, with distinct content."""
    files = {
        "ledger": root / "data/ledger/ledger-export.csv",
        "dump": root / "data/dumps/orders.sql.gz",
        "config": root / "data/etc/orders.toml",
        "audit": root / "data/logs/audit.log",
        "last-prices": root / "shop/catalog/prices.csv",
        "first": root / "outgoing/first-file.csv",
        "second": root / "outgoing/second-file.csv",
    }
    for i, path in enumerate(files.values()):
        write(path, payload_bytes(3000 + 257 * i, seed=i))
    return files


# -- every file validates and dry-runs ------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """How to check one example offline: the files, ``--set`` values (``{tmp}`` is the test's
    directory), environment, other options; ``tolerated``: error findings (regexes) expected
    here besides sources that earlier steps of the same run produce."""

    files: tuple[str, ...]
    values: Mapping[str, str] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    options: tuple[str, ...] = ()
    tolerated: tuple[str, ...] = ()


CASES = {
    "copy-with-checksum": Case(("basic/copy-with-checksum.yaml",),
                               {"DATA_ROOT": "{tmp}/data", "OUT_ROOT": "{tmp}/out"}),
    "nightly-backup": Case(("basic/nightly-backup.yaml",),
                           {"DATA_ROOT": "{tmp}/data", "OUT_ROOT": "{tmp}/out"}),
    "http-downloads": Case(("basic/http-downloads.yaml",), {"OUT_ROOT": "{tmp}/out"},
                           {"REPORTS_API_CREDENTIALS": "c3ZjOnB3"}),
    "mixed-with-conditions": Case(("basic/mixed-with-conditions.yaml",),
                                  {"STAGING": "{tmp}/staging", "SHOP_ROOT": "{tmp}/shop"}),
    "department-fanout": Case(
        ("enterprise/department-fanout.yaml", "enterprise/tenants.yaml"),
        {"EXTRACT_ROOT": "{tmp}/extracts"}, {"WAREHOUSE_TOKEN": "t0ken"},
        ("--env", "staging"), tolerated=(r"^extract-space: .* free, .* required$",)),
    "etl-staging": Case(("enterprise/etl-staging.yaml",),
                        {"WORK_ROOT": "{tmp}/etl", "WAREHOUSE_LANDING": "{tmp}/landing"},
                        {"ERP_PASSWORD": "pw", "BI_DROP_PASSWORD": "pw"}),
    "cross-protocol-sync": Case(
        ("enterprise/cross-protocol-sync.yaml",),
        {"PARTNER_SFTP_KEY": "{tmp}/keys/partner_ed25519", "WAREHOUSE_NFS": "{tmp}/nfs"},
        {"FILESERVER_PASSWORD": "pw", "LEGACY_FTP_PASSWORD": "pw", "INTRANET_PASSWORD": "pw",
         "VENDOR_API_KEY": "k3y"}),
    "tenants": Case(("enterprise/tenants.yaml",)),
    "copy-with-verification": Case(
        ("templates/copy-with-verification.yaml",),
        {"SOURCE": "{tmp}/outgoing/first-file.csv", "DESTINATION": "{tmp}/out/first.csv"}),
    "group-with-retry-and-notify": Case(
        ("templates/group-with-retry-and-notify.yaml",),
        {"SOURCE_ROOT": "{tmp}/outgoing", "TARGET_ROOT": "{tmp}/archive"},
        {"QUORUS_SLACK_WEBHOOK": "https://hooks.slack.invalid/T/B/x"}),
    "workflow-with-environments": Case(("templates/workflow-with-environments.yaml",),
                                       {"TARGET_ROOT": "{tmp}/target"},
                                       options=("--env", "development")),
}


def unexplained(report: Mapping[str, Any], errors: list[str],
                tolerated: tuple[str, ...]) -> list[str]:
    """The errors of a dry run other than ``tolerated`` ones and sources not there yet because
    an earlier step of the same run writes them (the dry run moves nothing)."""
    produced = {s["destination"] for s in report["steps"]}
    left = []
    for message in errors:
        missing = re.fullmatch(r"source (.+) does not exist", message)
        if missing and missing.group(1) in produced:
            continue
        if not any(re.match(pattern, message) for pattern in tolerated):
            left.append(message)
    return left


def test_every_example_is_checked_here_and_says_how_to_run_it() -> None:
    found = {str(p.relative_to(EXAMPLES)) for p in EXAMPLES.rglob("*.y*ml")}
    assert found == {f for case in CASES.values() for f in case.files}
    for name in found:
        header = (EXAMPLES / name).read_text().split("apiVersion:", 1)[0]
        assert header.startswith("# ") and "quorus workflow " in header, name


@pytest.mark.parametrize("name", sorted(CASES))
def test_example_validates_and_dry_runs(name: str, tmp_path: Path) -> None:
    case = CASES[name]
    seed(tmp_path)
    if name == "cross-protocol-sync":
        import asyncssh

        key = asyncssh.generate_private_key("ssh-ed25519")
        (tmp_path / "keys").mkdir()
        key.write_private_key(str(tmp_path / "keys/partner_ed25519"))
    values = sets({k: v.format(tmp=tmp_path) for k, v in case.values.items()})
    valid = quorus("validate", *case.files, *values, env=case.env)
    assert valid.returncode == 0 and valid.stdout.startswith("ok: "), valid.stderr

    dry = quorus("run", "--dry-run", "--offline", "--json", *case.files, *values,
                 *case.options, env=case.env)
    if name == "tenants":  # nothing to run: only tenants are defined
        assert dry.returncode == 2
        assert "define no Transfer, TransferGroup or TransferWorkflow" in dry.stderr
        return
    report = json.loads(dry.stdout)
    errors = [f["message"] for f in report["findings"] if f["level"] == "error"]
    assert unexplained(report, errors, case.tolerated) == [], report["findings"]
    assert dry.returncode == (1 if errors else 0), dry.stderr
    planned = [step for level in report["plan"]["levels"] for step in level]
    assert [s["step"] for s in report["steps"]] == planned and planned


def test_tenant_variables_bind_per_department(tmp_path: Path) -> None:
    dry = quorus("run", "--dry-run", "--offline", "--json", "--env", "production",
                 "enterprise/department-fanout.yaml", "enterprise/tenants.yaml",
                 env={"WAREHOUSE_TOKEN": "t0ken"})
    destinations = {s["step"]: s["destination"] for s in json.loads(dry.stdout)["steps"]}
    for step, tenant in (("finance/finance-ledger", "acme-finance"),
                         ("hr/hr-headcount", "acme-hr"), ("sales/sales-orders", "acme-sales")):
        assert destinations[step].startswith(f"/srv/tenants/{tenant}/inbound/"), destinations
    assert destinations["extract/hr-extract"].startswith("/srv/extracts/production/")


PRECISE = [
    (("validate", "basic/copy-with-checksum.yaml"), {}, 2,
     ["copy-with-checksum.yaml:", "undefined variable ${DATA_ROOT}", "--set DATA_ROOT=VALUE",
      "undefined variable ${OUT_ROOT}"]),
    (("run", "--dry-run", "--offline", "basic/http-downloads.yaml"), {}, 1,
     ["unresolvable: environment variable REPORTS_API_CREDENTIALS is not set",
      "sales-report source options.headers.Authorization"]),
    (("run", "--dry-run", "--offline", "enterprise/department-fanout.yaml",
      "enterprise/tenants.yaml"), {"WAREHOUSE_TOKEN": "t"}, 1,
     ["variable WAREHOUSE_API is defined only in the environments production, staging: "
      "choose one with --env"]),
    (("run", "--dry-run", "--offline", "--env", "staging", "enterprise/department-fanout.yaml"),
     {"WAREHOUSE_TOKEN": "t"}, 1,
     ["${tenant.storage.root}", "TenantConfiguration spec.variables"]),
    (("run", "--dry-run", "--offline", "--env", "staging", "enterprise/department-fanout.yaml",
      "enterprise/tenants.yaml"), {}, 1,
     ["credential environment variable 'WAREHOUSE_TOKEN' is not set"]),
    (("run", "--dry-run", "--offline", "enterprise/etl-staging.yaml"), {"ERP_PASSWORD": "p"}, 1,
     ["reporting/bi-drop: destination: credential environment variable 'BI_DROP_PASSWORD'"]),
    (("run", "--dry-run", "--offline", "enterprise/cross-protocol-sync.yaml",
      "--set", "PARTNER_SFTP_KEY=/nonexistent/partner_ed25519"), {}, 1,
     ["sftp option private_key='/nonexistent/partner_ed25519': no such file",
      "environment variable VENDOR_API_KEY is not set",
      "legacy-catalog/catalog: source: credential environment variable 'LEGACY_FTP_PASSWORD'"]),
    (("run", "--dry-run", "--offline", "templates/workflow-with-environments.yaml"), {}, 1,
     ["variable TARGET_ROOT is defined only in the environments development, production, "
      "staging: choose one with --env"]),
]


@pytest.mark.parametrize(("args", "env", "code", "expected"), PRECISE)
def test_what_cannot_run_here_is_named_precisely(args: tuple[str, ...], env: dict[str, str],
                                                 code: int, expected: list[str]) -> None:
    done = quorus(*args, env=env)
    assert done.returncode == code, done.stdout + done.stderr
    for text in expected:
        assert text in done.stdout + done.stderr, done.stdout + done.stderr


# -- the basic examples and a template run for real -----------------------------------------------


@pytest.fixture(scope="module")
def nginx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    http_testing = pytest.importorskip("quorus.protocols.http.testing")
    if (why := http_testing.nginx_available()) is not None:
        missing_server(why)
    with http_testing.running_nginx(tmp_path_factory.mktemp("nginx")) as server:
        yield server


@dataclass(frozen=True)
class Webhook:
    """A real HTTP server taking the notify action's POSTs: its URL and the JSON received."""

    url: str
    received: list[dict[str, Any]]


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    from quorus.protocols.http.testing import scripted_server

    received: list[dict[str, Any]] = []

    def respond(handler: Any) -> None:
        received.append(json.loads(handler.body))
        handler.reply(204)

    with scripted_server(respond) as server:
        yield Webhook(server.url("/hooks/backups"), received)


def test_copy_with_checksum_runs(tmp_path: Path) -> None:
    files = seed(tmp_path)
    summary = run_json("basic/copy-with-checksum.yaml",
                       *sets({"DATA_ROOT": tmp_path / "data", "OUT_ROOT": tmp_path / "out"}))
    step = steps(summary)["ledger-archive-copy"]
    copy = Path(step["destination"])
    assert copy.is_relative_to(tmp_path / "out/ledger") and copy.stat().st_mode & 0o777 == 0o640
    assert sha256(copy) == sha256(files["ledger"]) == step["sha256"]


def test_nightly_backup_runs_cleans_up_and_notifies(tmp_path: Path, webhook: Webhook) -> None:
    files = seed(tmp_path)
    expired = write(tmp_path / "out/orders/2020-01-01/orders.sql.gz", b"old")
    os.utime(expired, (time.time() - 40 * 86400,) * 2)
    values = sets({"DATA_ROOT": tmp_path / "data", "OUT_ROOT": tmp_path / "out",
                   "NOTIFY_URL": webhook.url})
    summary = run_json("basic/nightly-backup.yaml", *values)
    done = steps(summary)
    for name, source in (("database-dump", "dump"), ("configuration", "config"),
                         ("audit-log", "audit")):
        assert sha256(Path(done[name]["destination"])) == sha256(files[source])
    assert not expired.exists()
    assert [a["ok"] for a in summary["actions"]] == [True, True]
    [posted] = webhook.received
    assert posted["status"] == "completed" and posted["bytes"] == summary["bytes"]
    assert re.fullmatch(r"Nightly backup \d{4}-\d\d-\d\d of the order service completed",
                        posted["message"])

    files["audit"].unlink()
    failed = run_json("basic/nightly-backup.yaml", *values, expect=1)
    assert [s["status"] for s in failed["steps"]] == ["completed", "completed", "failed"]
    assert webhook.received[1]["status"] == "failed"
    assert "failed: " in webhook.received[1]["message"]
    assert "audit.log" in webhook.received[1]["message"]


def test_http_downloads_run_with_credentials_from_the_environment(tmp_path: Path,
                                                                  nginx: Any) -> None:
    from quorus.protocols.http.testing.nginx import PASSWORD, USERNAME

    base = f"{tmp_path.name}-{uuid.uuid4().hex[:6]}"
    reports = {n: write(nginx.www / f"dav/{base}/reports/{n}.csv",
                        payload_bytes(4000 + i, seed=10 + i))
               for i, n in enumerate(("sales", "returns"))}
    prices = write(nginx.www / f"public/{base}/pricing/price-list.json", b'{"sku": 1}')
    values = sets({"REPORTS_API": nginx.url(f"/dav/{base}", tls=True),
                   "MIRROR": nginx.url(f"/public/{base}"), "OUT_ROOT": tmp_path,
                   "CA_BUNDLE": nginx.ca_bundle})
    credentials = base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()
    summary = run_json("basic/http-downloads.yaml", *values,
                       env={"REPORTS_API_CREDENTIALS": credentials})
    done = steps(summary)
    assert sha256(Path(done["price-list"]["destination"])) == sha256(prices)
    for name, source in reports.items():
        assert sha256(Path(done[f"{name}-report"]["destination"])) == sha256(source)

    wrong = base64.b64encode(f"{USERNAME}:wrong".encode()).decode()
    refused = steps(run_json("basic/http-downloads.yaml", *values,
                             env={"REPORTS_API_CREDENTIALS": wrong}, expect=1))
    assert "401" in refused["sales-report"]["error"]
    assert refused["price-list"]["status"] == "completed"


def test_mixed_group_publishes_and_falls_back_by_condition(tmp_path: Path, nginx: Any) -> None:
    files = seed(tmp_path)
    base = f"{tmp_path.name}-{uuid.uuid4().hex[:6]}"
    products = write(nginx.www / f"public/{base}/products.json", payload_bytes(5000, seed=20))
    prices = write(nginx.www / f"public/{base}/prices.csv", payload_bytes(1500, seed=21))
    last_good = files["last-prices"].read_bytes()
    values = sets({"CATALOG_API": nginx.url(f"/public/{base}"), "STAGING": tmp_path / "staging",
                   "SHOP_ROOT": tmp_path / "shop"})
    published = tmp_path / "shop/catalog"

    summary = run_json("basic/mixed-with-conditions.yaml", *values)
    done = steps(summary)
    assert done["prices-fallback"]["status"] == "skipped"
    assert "prices.success=true" in done["prices-fallback"]["reason"]
    assert sha256(published / "products.json") == sha256(products)
    assert sha256(published / "prices.csv") == sha256(prices)

    # The feed is gone: yesterday's published list is put back in staging and published.
    prices.unlink()
    files["last-prices"].write_bytes(last_good)
    summary = run_json("basic/mixed-with-conditions.yaml", *values)
    done = steps(summary)
    assert (done["prices"]["status"], done["prices-fallback"]["status"]) == ("failed",
                                                                             "completed")
    assert done["publish-prices"]["status"] == "completed"
    assert (published / "prices.csv").read_bytes() == last_good
    assert summary["status"] == "completed"  # continueOnError: the conditions decided


def test_copy_template_runs(tmp_path: Path) -> None:
    files = seed(tmp_path)
    target = tmp_path / "out/nested/first.csv"
    summary = run_json("templates/copy-with-verification.yaml",
                       *sets({"SOURCE": files["first"], "DESTINATION": target}))
    assert sha256(target) == sha256(files["first"]) == summary["steps"][0]["sha256"]


# -- cross-protocol feeds run for real ------------------------------------------------------------


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    testing = pytest.importorskip("quorus.protocols.sftp.testing")
    if (why := testing.sshd_available()) is not None:
        missing_server(why)
    with testing.OpenSshServer(tmp_path_factory.mktemp("sshd")) as server:
        yield server


@pytest.fixture(scope="module")
def samba(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    testing = pytest.importorskip("quorus.protocols.smb.testing")
    if (why := testing.samba_available()) is not None:
        missing_server(why)
    with testing.SambaServer(tmp_path_factory.mktemp("samba")) as server:
        yield server


@pytest.fixture(scope="module")
def vsftpd() -> Iterator[Any]:
    testing = pytest.importorskip("quorus.protocols.ftp.testing")
    if (why := testing.vsftpd_available()) is not None:
        missing_server(why)
    # Below /tmp, not pytest's directory: the server's account must be able to reach it.
    home = Path(tempfile.mkdtemp(prefix="quorus-workflow-ftp-"))
    home.chmod(0o755)
    try:
        with testing.VsftpdServer(home / "server") as server:
            yield server
    finally:
        shutil.rmtree(home, ignore_errors=True)


def test_partner_invoices_move_from_sftp_to_smb(tmp_path: Path, sshd: Any, samba: Any) -> None:
    outbox = sshd.files / f"outbound-{uuid.uuid4().hex[:8]}"
    batch = "20250131"
    sources = {kind: write(outbox / f"{kind}-{batch}.csv", payload_bytes(70_000 + i, seed=30 + i))
               for i, kind in enumerate(("invoices", "credit-notes"))}
    values = sets({
        "PARTNER_SFTP_HOST": f"{sshd.host}:{sshd.port}", "PARTNER_SFTP_USER": sshd.username,
        "PARTNER_SFTP_KEY": sshd.client_key, "KNOWN_HOSTS": sshd.known_hosts,
        "PARTNER_OUTBOX": outbox, "FILESERVER": f"{samba.host}:{samba.port}",
        "FINANCE_SHARE": "data", "FILESERVER_USER": samba.username, "BATCH_DATE": batch})
    summary = run_json("enterprise/cross-protocol-sync.yaml", "--name", "partner-invoices",
                       *values, env={"FILESERVER_PASSWORD": samba.password})
    assert summary["status"] == "completed"
    inbound = samba.share_path("data") / "inbound/partner"
    for kind, source in sources.items():
        assert sha256(inbound / f"{kind}-{batch}.csv") == sha256(source)
    assert {s["destination"] for s in summary["steps"]} == {
        f"smb://{samba.host}:{samba.port}/data/inbound/partner/{k}-{batch}.csv" for k in sources}


def test_legacy_catalog_moves_from_ftp_to_https_upload(vsftpd: Any, nginx: Any) -> None:
    from quorus.protocols.http.testing.nginx import PASSWORD, USERNAME

    export = vsftpd.files / f"catalog-{uuid.uuid4().hex[:8]}"
    catalog = write(export / "catalog.xml", payload_bytes(50_000, seed=40))
    os.chown(export, vsftpd.uid, vsftpd.uid)
    drop = f"catalog-{uuid.uuid4().hex[:8]}"
    values = sets({
        "LEGACY_FTP_HOST": f"{vsftpd.host}:{vsftpd.port}", "LEGACY_FTP_USER": vsftpd.username,
        "LEGACY_EXPORT_DIR": f"/files/{export.name}", "INTRANET": nginx.url(f"/dav/{drop}",
                                                                             tls=True),
        "INTRANET_USER": USERNAME, "CA_BUNDLE": nginx.ca_bundle, "RUN_DATE": "2025-01-31"})
    summary = run_json("enterprise/cross-protocol-sync.yaml", "--name", "legacy-catalog",
                       *values, env={"LEGACY_FTP_PASSWORD": vsftpd.password,
                                     "INTRANET_PASSWORD": PASSWORD})
    assert summary["status"] == "completed"
    assert sha256(nginx.www / f"dav/{drop}/2025-01-31/catalog.xml") == sha256(catalog)


def test_etl_staging_publishes_and_reporting_may_fail(tmp_path: Path, nginx: Any) -> None:
    from quorus.protocols.http.testing.nginx import PASSWORD, USERNAME

    erp = f"erp-{uuid.uuid4().hex[:8]}"
    export = write(nginx.www / f"dav/{erp}/exports/orders.csv", payload_bytes(20_000, seed=50))

    def run(work: Path, bi_password: str) -> dict[str, dict[str, Any]]:
        values = sets({"ERP_API": nginx.url(f"/dav/{erp}", tls=True), "ERP_USER": USERNAME,
                       "BI_DROP": nginx.url(f"/dav/{erp}-bi", tls=True), "BI_USER": USERNAME,
                       "CA_BUNDLE": nginx.ca_bundle, "WORK_ROOT": work,
                       "WAREHOUSE_LANDING": work / "landing"})
        summary = run_json("enterprise/etl-staging.yaml", *values,
                           env={"ERP_PASSWORD": PASSWORD, "BI_DROP_PASSWORD": bi_password})
        assert summary["status"] == "completed"  # reporting has continueOnError
        return steps(summary)

    done = run(tmp_path / "first", "wrong")
    assert [done[s]["status"] for s in ("stage", "validate", "publish", "bi-drop")] == [
        "completed", "completed", "completed", "failed"]
    assert "401" in done["bi-drop"]["error"]
    assert sha256(Path(done["publish"]["destination"])) == sha256(export)

    export.write_bytes(b"")  # the ERP exported nothing: nothing is validated or published
    done = run(tmp_path / "second", PASSWORD)
    assert done["stage"]["status"] == "completed" and done["stage"]["bytes"] == 0
    assert done["validate"]["status"] == "skipped" and "stage.bytes=0" in done["validate"]["reason"]
    assert done["publish"]["status"] == done["bi-drop"]["status"] == "skipped"
    assert not (tmp_path / "second/landing").exists()
