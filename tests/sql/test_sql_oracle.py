"""Differential tests of the SQL plugins: pmacct 1.7.7's mysql/pgsql/sqlite3 plugins and
ours read the same capture with the same config into two databases made from the same
schema (ours, sql/); every row (stamp_updated aside: it is the wall-clock time of the
UPDATE) must be identical."""
from __future__ import annotations

from pathlib import Path

import pytest

from pypmacct.sql import schemas
from tests.sql.conftest import need_server
from tests.support import sqlrun

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "examples/data/sample-ipfix.pcap"
V5 = ROOT / "tests/data/softflowd-v5.pcap"

# every primitive each default table version has a column for
AGGREGATES = {
    1: "src_mac,dst_mac,src_host,dst_host,proto,src_port,dst_port",
    4: "src_mac,dst_mac,vlan,src_host,dst_host,proto,tos,src_port,dst_port",
    7: "src_mac,dst_mac,vlan,src_host,dst_host,src_as,dst_as,proto,tos,src_port,dst_port,"
       "tcpflags",
    9: "src_mac,dst_mac,vlan,src_host,dst_host,src_as,dst_as,proto,tos,src_port,dst_port,"
       "tcpflags",
}
MODES = {
    "update": {},
    "insert_only": {"sql_dont_try_update": True},
    "history": {"sql_history": "5m", "sql_history_roundoff": "m"},
}

CASES = [("sqlite3", v, m) for v in (1, 4, 7, 9) for m in MODES] + \
        [(e, v, m) for e in ("mysql", "pgsql") for v, m in
         ((1, "history"), (4, "update"), (7, "insert_only"), (9, "history"), (9, "update"))]


def _schema(engine: str, version: int) -> str:
    variant = "typed"
    return schemas.ddl(engine, version, False, schemas.table_names(engine, version)[0][0],
                       variant)


def _check(engine, extra, schema_sql, tmp_path, oracle_cache, capture=SAMPLE,
           exclude=("stamp_updated",)):
    expected, actual, ours = sqlrun.compare(engine, capture, extra, tmp_path, oracle_cache,
                                            schema_sql, exclude)
    assert ours.returncode == 0, ours.describe()
    assert any(rows for _, rows in expected.values()), f"pmacct wrote nothing: {expected}"
    d = sqlrun.diff_tables(expected, actual)
    assert not d, d + "\n" + ours.describe()


@pytest.mark.diff
@pytest.mark.parametrize("engine,version,mode", CASES, ids=lambda x: str(x))
def test_default_tables_match_pmacct(engine, version, mode, tmp_path, oracle_cache, request):
    need_server(request, engine)
    extra = {"aggregate": AGGREGATES[version], "sql_table_version": version, **MODES[mode]}
    if version == 9:
        extra["sql_table"] = "acct_v9"     # 1.7.7's default for v9 is 'acct' (a bug)
    exclude = ("stamp_updated",)
    if engine == "pgsql" and version == 1 and mode != "history":
        exclude += ("stamp_inserted",)      # v1's default is CURRENT_TIMESTAMP
    _check(engine, extra, _schema(engine, version), tmp_path, oracle_cache,
           exclude=exclude)


CUSTOM = {
    "sqlite3": "CREATE TABLE traffic (ip_src CHAR(45) NOT NULL, ip_dst CHAR(45) NOT NULL, "
               "iface_in INT NOT NULL, iface_out INT NOT NULL, packets INT NOT NULL, "
               "bytes BIGINT NOT NULL, flows INT NOT NULL, stamp_inserted DATETIME NOT NULL, "
               "stamp_updated DATETIME)",
    "mysql": "CREATE TABLE traffic (ip_src CHAR(45) NOT NULL, ip_dst CHAR(45) NOT NULL, "
             "iface_in INT UNSIGNED NOT NULL, iface_out INT UNSIGNED NOT NULL, "
             "packets INT UNSIGNED NOT NULL, bytes BIGINT UNSIGNED NOT NULL, "
             "flows INT UNSIGNED NOT NULL, stamp_inserted DATETIME NOT NULL, "
             "stamp_updated DATETIME)",
    "pgsql": "CREATE TABLE traffic (ip_src inet NOT NULL, ip_dst inet NOT NULL, "
             "iface_in BIGINT NOT NULL, iface_out BIGINT NOT NULL, packets INT NOT NULL, "
             "bytes BIGINT NOT NULL, flows INT NOT NULL, "
             "stamp_inserted timestamp without time zone NOT NULL, "
             "stamp_updated timestamp without time zone)",
}


@pytest.mark.diff
@pytest.mark.parametrize("engine", ["sqlite3", "mysql", "pgsql"])
def test_optimised_custom_table_matches_pmacct(engine, tmp_path, oracle_cache, request):
    """sql_optimize_clauses: only the aggregate's columns, into a custom table."""
    need_server(request, engine)
    extra = {"aggregate": "src_host,dst_host,in_iface,out_iface,flows",
             "sql_optimize_clauses": True, "sql_table": "traffic",
             "sql_history": "1h", "sql_history_roundoff": "h"}
    _check(engine, extra, CUSTOM[engine], tmp_path, oracle_cache)


@pytest.mark.diff
def test_netflow_v5_capture_matches_pmacct(tmp_path, oracle_cache):
    extra = {"aggregate": AGGREGATES[4], "sql_table_version": 4, "sql_history": "1m"}
    _check("sqlite3", extra, _schema("sqlite3", 4), tmp_path, oracle_cache, capture=V5)
