"""Every SQL example in examples/ runs against the real server it is written for: the
example's own settings, with the connection pointed at a test database and a capture
instead of the UDP socket; the tables end up holding exactly the capture's traffic."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.sql.conftest import need_server
from tests.support import flowgen, oracle, sqlrun

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "examples/data/sample-ipfix.pcap"
EXAMPLES = sorted((ROOT / "examples").glob("nfacctd-sql-*.conf"))


def parse(path: Path) -> dict:
    out = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("!"):
            continue
        k, _, v = line.partition(":")
        out[k.strip()] = v.strip()
    return out


def truth_totals():
    ex = flowgen.generate(flowgen.GenParams(version=10, records=3000, seed=2100, exporters=2,
                                            duration=120))
    return int(ex.truth["packets"].sum()), int(ex.truth["bytes"].sum())


def test_there_are_sql_examples():
    assert len(EXAMPLES) >= 5


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_sql_example_runs_against_the_real_server(path, tmp_path, request):
    conf = parse(path)
    engine = re.match(r"(\w+)", conf["plugins"]).group(1)
    need_server(request, engine)
    names = re.findall(r"\w+\[(\w+)\]", conf["plugins"]) or [None]
    dbs = {}
    settings = {k: v for k, v in conf.items() if not k.startswith(("nfacctd_port",
                                                                    "nfacctd_ip"))}
    for k in list(settings):
        if k.startswith(("sql_db", "sql_host", "sql_user", "sql_passwd", "sql_port")):
            del settings[k]
        if k.startswith("sql_table_schema"):
            settings[k] = str(ROOT / settings[k])
    for n in names:
        db = sqlrun.Database(engine, f"pypm_ex_{sqlrun.unique_tag()}", tmp_path)
        dbs[n] = db
        for k, v in db.settings().items():
            if v is not None:
                settings[f"{k}[{n}]" if n else k] = v
    settings.update({"daemonize": False, "pcap_savefile": str(SAMPLE), "logfile": "daemon.log",
                     **oracle.ORACLE_BUFFERS})
    try:
        # the tables the example expects to exist (dynamic ones are made from the schema)
        for n, db in dbs.items():
            def get(key):
                return conf.get(f"{key}[{n}]", conf.get(key))
            if get("sql_table_schema"):
                continue
            table = get("sql_table")
            version = int(get("sql_table_version") or 1)
            db.load_default(version, False, table)
        res = oracle.run_daemon(oracle.our_binary(), settings, tmp_path / "run",
                                output_glob="none")
        assert res.returncode == 0, res.describe()
        assert "refused" not in res.log, res.describe()
        want = truth_totals()
        for n, db in dbs.items():
            tables = db.tables()
            assert tables, res.describe()
            got = [db.totals(t) for t in tables]
            assert (sum(p for p, _ in got), sum(b for _, b in got)) == want, (n, tables)
    finally:
        for db in dbs.values():
            db.drop()
