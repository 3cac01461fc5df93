"""SQL plugin features checked on our daemon alone (savefile runs into SQLite, exact
rows): triggers and their environment, nfacctd_sql_log, sql_history_since_epoch, the
recovery logfile and its replay, writer processes, timestamp primitives."""
from __future__ import annotations

import re
import sqlite3
import subprocess
import time
from pathlib import Path


import pytest

from pypmacct.sql import schemas
from tests.support import flowgen, oracle

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "examples/data/sample-ipfix.pcap"
AGG = "src_host,dst_host,proto,src_port,dst_port"


def _run(tmp, db_path, extra, capture=SAMPLE):
    settings = {"daemonize": False, "pcap_savefile": str(capture), "plugins": "sqlite3",
                "sql_db": str(db_path), "sql_refresh_time": 86400, "logfile": "daemon.log",
                "aggregate": AGG, **oracle.ORACLE_BUFFERS, **extra}
    res = oracle.run_daemon(oracle.our_binary(), settings, tmp, output_glob="none")
    assert res.returncode == 0, res.describe()
    return res


def _db(tmp, version=1, name="t.db", sql=None):
    p = tmp / name
    c = sqlite3.connect(p)
    c.executescript(sql or schemas.schema_file("sqlite3", version))
    c.close()
    return p


def _truth():
    ex = flowgen.generate(flowgen.GenParams(version=10, records=3000, seed=2100, exporters=2,
                                            duration=120))
    return ex


def test_trigger_runs_after_each_purge_with_pmacct_variables(tmp_path):
    db = _db(tmp_path)
    envfile = tmp_path / "env.txt"
    script = tmp_path / "trigger.sh"
    script.write_text(f"#!/bin/sh\nenv | grep -E '^(SQL_|TOTAL_|EFFECTIVE_|INSERT_|UPDATE_|"
                      f"ELAPSED_)' | sort > {envfile}\n")
    script.chmod(0o755)
    _run(tmp_path, db, {"sql_trigger_exec": str(script)})
    end = time.monotonic() + 10
    while not envfile.exists() and time.monotonic() < end:
        time.sleep(0.05)
    time.sleep(0.2)
    env = dict(line.split("=", 1) for line in envfile.read_text().splitlines())
    assert env["SQL_DB"] == str(db)
    assert env["SQL_TABLE"] == "acct"
    assert env["SQL_REFRESH_TIME"] == "86400"
    assert env["TOTAL_ELEM_NUMBER"] == env["EFFECTIVE_ELEM_NUMBER"] == "2999"
    assert env["INSERT_QUERIES_NUMBER"] == "2999" and env["UPDATE_QUERIES_NUMBER"] == "0"
    assert env["SQL_MAX_WRITERS"] == "10"


def test_sql_log_stamps_each_flow_with_its_own_times(tmp_path):
    # a custom table whose stamps are seconds since the epoch
    db2 = _db(tmp_path, name="log.db", sql="CREATE TABLE flows_log (ip_src CHAR(45), "
              "ip_dst CHAR(45), packets INT, bytes BIGINT, stamp_inserted INT, "
              "stamp_updated INT)")
    _run(tmp_path, db2, {"nfacctd_sql_log": True, "sql_history_since_epoch": True,
                         "sql_optimize_clauses": True, "sql_table": "flows_log",
                         "aggregate": "src_host,dst_host"})
    ex = _truth()
    rows = sqlite3.connect(db2).execute(
        "SELECT stamp_inserted, stamp_updated, packets FROM flows_log").fetchall()
    assert sum(r[2] for r in rows) == int(ex.truth["packets"].sum())
    assert all(1_600_000_000 < a <= b for a, b, _ in rows)
    # several flows per address pair: each distinct (start, end) is its own row
    assert len(rows) > 2999 - 50


def test_history_since_epoch_writes_integer_stamps(tmp_path):
    db = _db(tmp_path, sql="CREATE TABLE acct (mac_src CHAR(17), mac_dst CHAR(17), "
             "ip_src CHAR(45), ip_dst CHAR(45), src_port INT, dst_port INT, ip_proto CHAR(6), "
             "packets INT, bytes BIGINT, stamp_inserted INT, stamp_updated INT)")
    _run(tmp_path, db, {"sql_history": "5m", "sql_history_roundoff": "m",
                        "sql_history_since_epoch": True})
    stamps = {r[0] for r in sqlite3.connect(db).execute("SELECT stamp_inserted FROM acct")}
    assert stamps and all(isinstance(s, int) and s % 300 == 0 for s in stamps)


def test_recovery_logfile_keeps_rows_when_the_database_is_unusable(tmp_path):
    """The table is missing: every row goes to sql_recovery_logfile; once the table is
    there, pmsqlplay puts exactly the capture's totals in it."""
    db = tmp_path / "nothing-yet.db"
    logf = tmp_path / "recovery.log"
    res = _run(tmp_path, db, {"sql_recovery_logfile": str(logf)})
    assert "written to sql_recovery_logfile" in res.log
    _db(tmp_path, name="nothing-yet.db")
    out = subprocess.run([str(ROOT / ".venv/bin/pmsqlplay"), "-f", str(logf)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    ex = _truth()
    c = sqlite3.connect(db)
    assert c.execute("SELECT SUM(packets), SUM(bytes) FROM acct").fetchone() == \
        (int(ex.truth["packets"].sum()), int(ex.truth["bytes"].sum()))
    test = subprocess.run([str(ROOT / ".venv/bin/pmsqlplay"), "-t", "-f", str(logf)],
                          capture_output=True, text=True, timeout=60)
    assert "2999 rows" in test.stdout


def test_timestamp_primitives_get_their_residual_columns(tmp_path):
    db = _db(tmp_path, sql="CREATE TABLE ts (ip_src CHAR(45), timestamp_start DATETIME, "
             "timestamp_start_residual INT, packets INT, bytes BIGINT)")
    _run(tmp_path, db, {"sql_optimize_clauses": True, "sql_table": "ts",
                        "aggregate": "src_host,timestamp_start", "timestamps_utc": True})
    rows = sqlite3.connect(db).execute("SELECT timestamp_start, timestamp_start_residual "
                                       "FROM ts").fetchall()
    assert rows and all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", a) and 0 <= b < 10**6
                        for a, b in rows)


def test_unknown_sql_table_type_and_bad_layout_stop_startup(tmp_path):
    db = _db(tmp_path)
    settings = {"daemonize": False, "pcap_savefile": str(SAMPLE), "plugins": "sqlite3",
                "sql_db": str(db), "aggregate": "src_host,tos", "logfile": "daemon.log"}
    res = oracle.run_daemon(oracle.our_binary(), settings, tmp_path, output_glob="none")
    assert res.returncode != 0
    assert "IP ToS accounting not supported for selected sql_table_version/_type" in \
        res.log + res.stderr


def test_small_cache_purges_early_and_rows_add_up(tmp_path):
    """sql_cache_entries: a full cache purges early; UPDATE-then-INSERT adds the later
    purges to the rows already there, so the table matches a single-purge run."""
    small = _db(tmp_path, name="small.db")
    res = _run(tmp_path / "a", small, {"sql_cache_entries": 10})
    assert "Finished cache entries" in res.log
    big = _db(tmp_path, name="big.db")
    _run(tmp_path / "b", big, {})
    q = "SELECT * FROM acct ORDER BY ip_src, ip_dst, src_port, dst_port, ip_proto"
    assert sqlite3.connect(small).execute(q).fetchall() == \
        sqlite3.connect(big).execute(q).fetchall()


@pytest.mark.parametrize("engine", ["pgsql", "mysql"])
def test_early_purges_update_rows_on_servers(engine, tmp_path, request):
    """The same with the servers (PostgreSQL's UPDATEs go in bulk, RETURNING the rows
    they matched): several purges add up to the single-purge table, history on."""
    from tests.sql.conftest import need_server
    from tests.support import sqlrun
    need_server(request, engine)
    results = []
    # 395 destinations in the sample; early purges of up to 110 aggregates (bulk UPDATEs
    # from 64 rows) that meet the rows of the purges before them
    for entries in (10, 32771):
        db = sqlrun.Database(engine, f"pypm_{sqlrun.unique_tag()}", tmp_path)
        try:
            db.load_default(7)
            extra = {"aggregate": "dst_host,tcpflags",
                     "sql_table_version": 7, "sql_cache_entries": entries,
                     "sql_history": "5m", "sql_history_roundoff": "m"}
            res = sqlrun.run(oracle.our_binary(), engine, db, SAMPLE, extra,
                             tmp_path / f"r{entries}")
            assert res.returncode == 0, res.describe()
            if entries == 10:
                assert "Finished cache entries" in res.log
            results.append(db.rows("acct_v7"))
        finally:
            db.drop()
    assert results[0] == results[1]
