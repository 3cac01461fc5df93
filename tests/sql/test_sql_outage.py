"""The database goes away while a daemon is collecting, then comes back: no aggregate is
lost. MariaDB and PostgreSQL are taken away through a TCP proxy on 127.0.0.1 that the
test stops (the shared servers are never touched); SQLite by a test that holds the
database file locked. With sql_recovery_backup_host, rows land on the backup instead."""
from __future__ import annotations

import contextlib
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.common import NFACCTD, free_port, send, wait_for
from tests.sql.conftest import need_server
from tests.support import flowgen, sqlrun
from tests.support.tcpproxy import TcpProxy

ROOT = Path(__file__).resolve().parents[2]
# no proto: the default MySQL table's CHAR(6) cannot hold every protocol name
AGG = "src_host,dst_host,src_port,dst_port"


def _export(records: int, seed: int):
    return flowgen.generate(flowgen.GenParams(version=9, records=records, seed=seed,
                                              exporters=2, duration=60))


def _start(tmp: Path, port: int, settings: dict) -> subprocess.Popen:
    # a socket buffer that rides out a loaded machine: the kernel must not drop datagrams
    lines = {"nfacctd_port": port, "nfacctd_ip": "127.0.0.1", "nfacctd_pipe_size": 4194304,
             "plugins": "x",
             "logfile": f"{tmp}/nfacctd.log", "aggregate": AGG, "sql_refresh_time": 1,
             **settings}
    conf = tmp / "nfacctd.conf"
    conf.write_text("".join(f"{k}: {v}\n" for k, v in lines.items() if v is not None))
    proc = subprocess.Popen(NFACCTD + ["-f", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)
    log = tmp / "nfacctd.log"
    wait_for(lambda: log.exists() and "waiting for NetFlow/IPFIX data" in log.read_text(),
             what="the collector to listen")
    return proc


def _send_part(port, datagrams):
    """Paced, so that the kernel's socket buffer never overflows."""
    payloads = [d[2] for d in datagrams]
    for a in range(0, len(payloads), 10):
        send(port, payloads[a:a + 10])
        time.sleep(0.002)


def _run_with_outage(tmp, engine, settings, take_away, bring_back, outage: float,
                     records: int = 6000):
    ex = _export(records, seed=61)
    port = free_port()
    proc = _start(tmp, port, {**settings, "plugins": engine})
    try:
        dg = ex.datagrams
        third = len(dg) // 3
        _send_part(port, dg[:third])
        time.sleep(2.5)                 # a purge or two reach the database
        take_away()
        half = third + third // 2
        _send_part(port, dg[third:half])
        time.sleep(outage / 2)          # purges fail (or wait) while it is away
        _send_part(port, dg[half:2 * third])
        time.sleep(outage / 2)
        bring_back()
        _send_part(port, dg[2 * third:])
        time.sleep(2.5)
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=120)
    log = (tmp / "nfacctd.log").read_text()
    assert rc == 0, log[-3000:]
    return ex, log


def _totals(ex):
    return int(ex.truth["packets"].sum()), int(ex.truth["bytes"].sum())


@contextlib.contextmanager
def _behind_proxy(engine, tmp):
    """A fresh default table on the engine's local server, and the daemon settings that
    reach it through a TCP proxy the test can take away; dropped afterwards."""
    target = 3306 if engine == "mysql" else 5432
    proxy = TcpProxy("127.0.0.1", target).start()
    db = sqlrun.Database(engine, f"pypm_outage_{sqlrun.unique_tag()}", tmp)
    db.load_default(1)
    try:
        s = db.settings()
        s["sql_host"], s["sql_port"] = "127.0.0.1", proxy.port
        yield db, s, proxy, target
    finally:
        proxy.stop()
        db.drop()


@pytest.mark.parametrize("engine", ["mysql", "pgsql"])
def test_server_away_for_seconds_loses_nothing(engine, tmp_path, request):
    need_server(request, engine)
    with _behind_proxy(engine, tmp_path) as (db, s, proxy, target):
        ex, log = _run_with_outage(tmp_path, engine, s, proxy.stop, proxy.start, outage=6)
        assert "retrying them with this purge" in log, log[-3000:]
        assert db.totals("acct") == _totals(ex)
        # one row per aggregate: the retried rows were added, not duplicated
        _, rows = db.rows("acct")
        assert len(rows) == len({r[:7] for r in rows})


@pytest.mark.parametrize("writers", [10, 1])
def test_sqlite_locked_for_seconds_loses_nothing(writers, tmp_path):
    """The file is locked for 4 s (a writer waits on it); with one writer allowed the
    purges meanwhile find it busy and are kept for later."""
    db = sqlrun.Database("sqlite3", "pypm_outage", tmp_path)
    db.load_default(1)
    holder = {}

    def lock():
        c = sqlite3.connect(db.path, isolation_level=None)
        c.execute("BEGIN EXCLUSIVE")
        holder["c"] = c

    def unlock():
        holder["c"].execute("ROLLBACK")
        holder["c"].close()

    ex, log = _run_with_outage(tmp_path, "sqlite3", {**db.settings(), "sql_refresh_time": 1,
                                                     "sql_max_writers": writers},
                               lock, unlock, outage=4)
    assert db.totals("acct") == _totals(ex)
    if writers == 1:
        assert "Maximum number of writer processes reached" in log


@pytest.mark.parametrize("engine", ["mysql", "pgsql"])
def test_backup_host_takes_the_rows_while_primary_is_away(engine, tmp_path, request):
    need_server(request, engine)
    with _behind_proxy(engine, tmp_path) as (db, s, proxy, target):
        s["sql_recovery_backup_host"] = f"127.0.0.1:{target}"
        # the backup is the same server reached directly: the rows all end up in the
        # one database, half through the proxy and half around it
        ex, log = _run_with_outage(tmp_path, engine, s, proxy.stop, proxy.start, outage=4)
        assert "written to the recovery backup host" in log, log[-3000:]
        assert db.totals("acct") == _totals(ex)


def test_sqlite_backup_file_takes_the_rows(tmp_path):
    primary = tmp_path / "missing-dir" / "primary.db"      # cannot be opened
    backup = sqlrun.Database("sqlite3", "backup", tmp_path)
    backup.load_default(1)
    ex = _export(2000, seed=5)
    port = free_port()
    proc = _start(tmp_path, port, {"plugins": "sqlite3", "sql_db": str(primary),
                                    "sql_recovery_backup_host": backup.path})
    _send_part(port, ex.datagrams)
    time.sleep(2.5)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    assert backup.totals("acct") == _totals(ex)


def test_shutdown_with_database_away_keeps_rows_for_replay(tmp_path):
    """No backup, no logfile, database still away at shutdown: the rows go to a recovery
    file that pmsqlplay replays once the database is back."""
    target = tmp_path / "later.db"
    ex = _export(1500, seed=9)
    port = free_port()
    proc = _start(tmp_path, port, {"plugins": "sqlite3", "sql_db": str(target),
                                    "sql_refresh_time": 3600})
    _send_part(port, ex.datagrams)
    time.sleep(1.5)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    log = (tmp_path / "nfacctd.log").read_text()
    import re
    m = re.search(r"replay them with: pmsqlplay -f (\S+)", log)
    assert m, log[-2000:]
    db = sqlrun.Database("sqlite3", "later", tmp_path)
    db.load_default(1)
    out = subprocess.run([str(ROOT / ".venv/bin/pmsqlplay"), "-f", m.group(1)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert db.totals("acct") == _totals(ex)


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["mysql", "pgsql"])
def test_long_outage_loses_nothing(engine, tmp_path, request):
    """The long form: the server is away for 45 s of a larger stream."""
    need_server(request, engine)
    with _behind_proxy(engine, tmp_path) as (db, s, proxy, target):
        ex, log = _run_with_outage(tmp_path, engine, s, proxy.stop, proxy.start, outage=45,
                                   records=30000)
        assert db.totals("acct") == _totals(ex)
