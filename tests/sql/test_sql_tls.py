"""sql_conn_ca_file against a real TLS server: the test starts its own PostgreSQL (and
MariaDB) on
127.0.0.1 (free port, own data directory, own CA and server certificate, pg_hba accepting
TLS only; tests/support/pgtls.py) and stops it by PID at the end. The shared server on
5432 is not used.

- the right CA: the plugin connects with TLS and every aggregate lands;
- another CA: the server's certificate fails the check (sslmode=verify-full, as pmacct
  1.7.7 asks libpq), the failure is logged, nothing is written, and the aggregates are
  kept (held for the next purge, then saved at shutdown) so that pmsqlplay with the
  right CA puts exactly the capture's totals in the table;
- a certificate for another host name signed by the right CA is refused too: the host
  name is checked, not only the CA.
"""
from __future__ import annotations

import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from pypmacct.sql import schemas
from tests.e2e.common import NFACCTD, free_port, send, wait_for
from tests.support import flowgen
from tests.support.pgtls import ServerUnavailable, TlsMariadb, TlsPostgres

ROOT = Path(__file__).resolve().parents[2]
AGG = "src_host,dst_host,src_port,dst_port"


# what each driver says when the CA does not match
BAD_CA = {"pgsql": "certificate verify failed", "mysql": "self-signed certificate in certificate chain"}


def _server(**kw) -> TlsPostgres:
    try:
        return TlsPostgres(**kw).start()
    except ServerUnavailable as e:
        pytest.fail(f"could not start a private TLS PostgreSQL server: {e}", pytrace=False)


@pytest.fixture(scope="module", params=["pgsql", "mysql"])
def tls_pg(request):
    if request.param == "pgsql":
        srv = _server()
        c = srv.connect("postgres")
        c.autocommit = True
        c.cursor().execute("CREATE DATABASE pypm_tls")
        c.close()
    else:
        try:
            srv = TlsMariadb().start()
        except ServerUnavailable as e:
            pytest.fail(f"could not start a private TLS MariaDB server: {e}", pytrace=False)
    srv.engine = request.param
    yield srv
    srv.stop()


def _fresh_table(srv) -> None:
    c = srv.connect("pypm_tls")
    cur = c.cursor()
    cur.execute("DROP TABLE IF EXISTS acct")
    for stmt in schemas.ddl(srv.engine, 1).split(";"):
        body = "\n".join(ln for ln in stmt.splitlines() if not ln.strip().startswith("--"))
        if body.strip() and not re.match(r"(?is)\s*(create database|use )", body):
            cur.execute(body)
    c.commit()
    c.close()


def _table_totals(srv: TlsPostgres) -> tuple[int, int, int]:
    c = srv.connect("pypm_tls")
    cur = c.cursor()
    cur.execute("SELECT COUNT(*), COALESCE(SUM(packets),0), COALESCE(SUM(bytes),0) FROM acct")
    n, p, b = cur.fetchone()
    c.close()
    return int(n), int(p), int(b)


def _run(tmp: Path, srv: TlsPostgres, ca: Path, records: int = 1200, seed: int = 5,
         hold: float = 2.5):
    ex = flowgen.generate(flowgen.GenParams(version=9, records=records, seed=seed,
                                            exporters=1, duration=60))
    port = free_port()
    conf = tmp / "nfacctd.conf"
    log = tmp / "nfacctd.log"
    settings = {"nfacctd_port": port, "nfacctd_ip": "127.0.0.1",
                "nfacctd_pipe_size": 4194304, "plugins": getattr(srv, "engine", "pgsql"), "logfile": log,
                "aggregate": AGG, "sql_refresh_time": 1, "sql_db": "pypm_tls",
                "sql_host": "127.0.0.1", "sql_port": srv.port, "sql_user": srv.user,
                "sql_passwd": srv.password, "sql_conn_ca_file": ca}
    conf.write_text("".join(f"{k}: {v}\n" for k, v in settings.items()))
    proc = subprocess.Popen(NFACCTD + ["-f", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        wait_for(lambda: log.exists() and "waiting for NetFlow/IPFIX data" in log.read_text(),
                 what="the collector to listen")
        payloads = [d[2] for d in ex.datagrams]
        for a in range(0, len(payloads), 10):
            send(port, payloads[a:a + 10])
            time.sleep(0.002)
        time.sleep(hold)                    # a purge or two go to the server
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=60)
    text = log.read_text()
    assert rc == 0, text[-3000:]
    return ex, text


def test_right_ca_rows_land_over_tls(tls_pg, tmp_path):
    _fresh_table(tls_pg)
    ex, log = _run(tmp_path, tls_pg, tls_pg.ca[0], hold=1.0)
    assert BAD_CA[tls_pg.engine] not in log, log[-3000:]
    n, p, b = _table_totals(tls_pg)
    assert (p, b) == (int(ex.truth["packets"].sum()), int(ex.truth["bytes"].sum())), log[-3000:]
    assert n > 100
    # the server takes TLS logins only (pg_hba hostssl / REQUIRE SSL): check one is TLS
    c = tls_pg.connect("pypm_tls")
    cur = c.cursor()
    if tls_pg.engine == "pgsql":
        cur.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        assert cur.fetchone() == (True,)
    else:
        cur.execute("SHOW STATUS LIKE 'Ssl_cipher'")
        assert cur.fetchone()[1]
    c.close()


def test_wrong_ca_refused_logged_and_nothing_lost(tls_pg, tmp_path):
    _fresh_table(tls_pg)
    ex, log = _run(tmp_path, tls_pg, tls_pg.other_ca[0])
    assert BAD_CA[tls_pg.engine] in log, log[-3000:]
    # purges failed and were held for the next one, then saved at shutdown
    assert "retrying them with this purge" in log, log[-3000:]
    m = re.search(r"replay them with: pmsqlplay -f (\S+)", log)
    assert m, log[-3000:]
    assert _table_totals(tls_pg) == (0, 0, 0)
    play = [str(ROOT / ".venv/bin/pmsqlplay"), "-f", m.group(1), "-p", tls_pg.password]
    # the file remembers the (wrong) CA: replaying as is is refused the same way
    out = subprocess.run(play, capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and BAD_CA[tls_pg.engine] in out.stderr, out.stderr
    assert _table_totals(tls_pg) == (0, 0, 0)
    out = subprocess.run(play + ["-C", str(tls_pg.ca[0])], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    _, p, b = _table_totals(tls_pg)
    assert (p, b) == (int(ex.truth["packets"].sum()), int(ex.truth["bytes"].sum()))


def test_host_name_is_checked_not_only_the_ca(tmp_path):
    """verify-full: a certificate from the right CA but for another name is refused."""
    srv = _server(cn="db.example.invalid", san="DNS:db.example.invalid")
    try:
        raw = srv.connect("postgres", sslmode="verify-ca")   # no name check here
        raw.autocommit = True
        raw.cursor().execute("CREATE DATABASE pypm_tls")
        raw.close()
        ex, log = _run(tmp_path, srv, srv.ca[0], records=300, hold=1.5)
        assert re.search(r"does not match host name|server certificate for .* does not match",
                         log), log[-3000:]
        assert "replay them with: pmsqlplay -f" in log, log[-3000:]
    finally:
        srv.stop()
