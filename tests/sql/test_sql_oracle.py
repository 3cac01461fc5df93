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

CASES = [(e, v, m) for e in ("sqlite3", "mysql", "pgsql") for v in (1, 4, 7, 9) for m in MODES]


def _schema(engine: str, version: int) -> str:
    variant = "typed"
    return schemas.ddl(engine, version, False, schemas.table_names(engine, version)[0][0],
                       variant)


def _check(engine, extra, schema_sql, tmp_path, oracle_cache, capture=SAMPLE,
           exclude=("stamp_updated",), oracle_extra=None):
    expected, actual, ours = sqlrun.compare(engine, capture, extra, tmp_path, oracle_cache,
                                            schema_sql, exclude, oracle_extra)
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
    # (history bins always rounded off here: unrounded bins start at the daemon's start
    # time, which differs between two runs)
    extra = {"aggregate": AGGREGATES[4], "sql_table_version": 4, "sql_history": "1m",
             "sql_history_roundoff": "m"}
    _check("sqlite3", extra, _schema("sqlite3", 4), tmp_path, oracle_cache, capture=V5)


@pytest.mark.diff
@pytest.mark.parametrize("engine,extra", [
    ("sqlite3", {"sql_dont_try_update": True, "sql_multi_values": 65536}),
    # numeric protocols: a name longer than CHAR(6) makes 1.7.7 drop a whole multi-row
    # INSERT, where we keep the other rows of it
    ("mysql", {"sql_dont_try_update": True, "sql_multi_values": 65536, "sql_num_protos": True}),
    ("mysql", {"sql_multi_values": 4096, "sql_num_protos": True}),
    ("pgsql", {"sql_dont_try_update": True, "sql_use_copy": True}),
    ("pgsql", {"sql_dont_try_update": True, "sql_use_copy": True, "sql_history": "5m",
               "sql_history_roundoff": "m"}),
    ("pgsql", {"sql_dont_try_update": True, "sql_use_copy": True, "sql_delimiter": "|",
               "sql_history": "5m", "sql_history_roundoff": "m"}),
    ("pgsql", {"sql_locking_style": "row", "sql_history": "5m",
               "sql_history_roundoff": "m"}),
], ids=["sqlite3-mv", "mysql-mv", "mysql-mv-update", "pgsql-copy", "pgsql-copy-history",
        "pgsql-copy-delimiter",
        "pgsql-row-lock"])
def test_insert_variants_match_pmacct(engine, extra, tmp_path, oracle_cache, request):
    need_server(request, engine)
    e = {"aggregate": AGGREGATES[7], "sql_table_version": 7, **extra}
    oe = None
    if engine == "sqlite3":
        # 1.7.7's SQLite plugin writes nothing with sql_multi_values in a savefile run
        # (its writer is cut off at exit); the rows must be those of a plain run
        oe = {k: v for k, v in e.items() if k != "sql_multi_values"}
    _check(engine, e, _schema(engine, 7), tmp_path, oracle_cache, oracle_extra=oe)


@pytest.mark.diff
@pytest.mark.parametrize("engine", ["sqlite3", "mysql", "pgsql"])
def test_dynamic_tables_from_schema_match_pmacct(engine, tmp_path, oracle_cache, request):
    """sql_table with strftime variables; tables made from sql_table_schema on demand."""
    need_server(request, engine)
    schema = tmp_path / "acct.schema"
    schema.write_text(schemas.ddl(engine, 4, False, "acct_v4_%Y%m%d_%H%M"))
    e = {"aggregate": AGGREGATES[4], "sql_table_version": 4, "sql_history": "5m",
         "sql_history_roundoff": "m", "sql_table": "acct_v4_%Y%m%d_%H%M",
         "sql_table_schema": str(schema), "sql_refresh_time": 300}
    if engine != "pgsql":
        _check(engine, e, "", tmp_path, oracle_cache)
        return
    # 1.7.7's PostgreSQL plugin names the table of a whole purge after its first
    # aggregate's time bin (it looks up the wrong queue element), so its rows of other
    # bins land in that one table; ours go to their own bin's table. Same rows otherwise.
    expected, actual, ours = sqlrun.compare(engine, SAMPLE, e, tmp_path, oracle_cache, "")
    assert ours.returncode == 0, ours.describe()

    def flat(tables):
        return sorted(r for _, (_, rows) in tables.items() for r in rows)
    assert len(actual) > 1
    assert flat(expected) == flat(actual)
    for name, (_, rows) in actual.items():
        stamp = name.rsplit("_", 2)
        assert {r[-1] for r in rows} == {f"{stamp[1][:4]}-{stamp[1][4:6]}-{stamp[1][6:]} "
                                         f"{stamp[2][:2]}:{stamp[2][2:]}:00"}


@pytest.mark.diff
@pytest.mark.parametrize("prep,ptype", [
    ("minp=20, minb=15000", "any"),
    ("minp=20, minb=15000", "all"),
    ("maxbpp=800, minbpp=100", "all"),
    ("qnum=100, minb=20000, adjb=14", "any"),
    ("usrf=10", "any"),
], ids=["any", "all", "bpp", "qnum-adjb", "usrf"])
def test_preprocess_matches_pmacct(prep, ptype, tmp_path, oracle_cache):
    extra = {"aggregate": AGGREGATES[4], "sql_table_version": 4, "sql_preprocess": prep,
             "sql_preprocess_type": ptype}
    _check("sqlite3", extra, _schema("sqlite3", 4), tmp_path, oracle_cache)


@pytest.mark.diff
def test_num_hosts_matches_pmacct(tmp_path, oracle_cache, request):
    """sql_num_hosts (MySQL): addresses as INET6_ATON() binaries."""
    need_server(request, "mysql")
    schema = ("CREATE TABLE nh (ip_src VARBINARY(16) NOT NULL, ip_dst VARBINARY(16) NOT NULL, "
              "packets INT UNSIGNED NOT NULL, bytes BIGINT UNSIGNED NOT NULL, "
              "stamp_inserted DATETIME NOT NULL, stamp_updated DATETIME)")
    extra = {"aggregate": "src_host,dst_host", "sql_num_hosts": True,
             "sql_optimize_clauses": True, "sql_table": "nh", "sql_history": "5m",
             "sql_history_roundoff": "m"}
    _check("mysql", extra, schema, tmp_path, oracle_cache)


@pytest.mark.diff
@pytest.mark.parametrize("engine", ["sqlite3", "mysql", "pgsql"])
def test_bgp_table_matches_pmacct(engine, tmp_path, oracle_cache, request):
    """peer_src_ip switches to the BGP table (acct_bgp) by itself."""
    need_server(request, engine)
    extra = {"aggregate": "peer_src_ip,src_as,dst_as", "sql_history": "5m",
             "sql_history_roundoff": "m"}
    _check(engine, extra, schemas.ddl(engine, 1, True), tmp_path, oracle_cache)


@pytest.mark.diff
def test_history_offset_matches_pmacct(tmp_path, oracle_cache):
    extra = {"aggregate": "src_host,dst_host", "sql_table_version": 4, "sql_history": "5m",
             "sql_history_roundoff": "m", "sql_history_offset": 60}
    _check("sqlite3", extra, _schema("sqlite3", 4), tmp_path, oracle_cache)


@pytest.mark.diff
@pytest.mark.parametrize("engine", ["sqlite3", "mysql"])
def test_tables_per_exporter_match_pmacct(engine, tmp_path, oracle_cache, request):
    """$peer_src_ip in sql_table: one table per exporter, made from the schema."""
    need_server(request, engine)
    schema = tmp_path / "acct.schema"
    e = {"aggregate": "peer_src_ip,src_host,dst_host", "sql_optimize_clauses": True,
         "sql_table": "acct_$peer_src_ip", "sql_table_schema": str(schema),
         "sql_history": "5m", "sql_history_roundoff": "m"}
    if engine == "sqlite3":
        schema.write_text("CREATE TABLE acct_$peer_src_ip (peer_ip_src CHAR(45), "
                          "ip_src CHAR(45), ip_dst CHAR(45), packets INT, bytes BIGINT, "
                          "stamp_inserted DATETIME, stamp_updated DATETIME);\n")
    else:
        schema.write_text("CREATE TABLE acct_$peer_src_ip (peer_ip_src CHAR(45) NOT NULL, "
                          "ip_src CHAR(45) NOT NULL, ip_dst CHAR(45) NOT NULL, "
                          "packets INT UNSIGNED NOT NULL, bytes BIGINT UNSIGNED NOT NULL, "
                          "stamp_inserted DATETIME NOT NULL, stamp_updated DATETIME);\n")
    expected, actual, ours = sqlrun.compare(engine, SAMPLE, e, tmp_path, oracle_cache, "")
    assert ours.returncode == 0, ours.describe()
    assert len(actual) == 2, actual.keys()
    d = sqlrun.diff_tables(expected, actual)
    assert not d, d


@pytest.mark.diff
@pytest.mark.parametrize("engine", ["sqlite3", "mysql"])
def test_nat_events_without_counters_match_pmacct(engine, tmp_path, oracle_cache, request):
    """NEL-like event records are written without counters (NULL in this table)."""
    need_server(request, engine)
    from tests.support import flowgen
    cap = tmp_path / "nat.pcap"
    flowgen.write_capture(cap, version=10, records=3000, seed=5, exporters=1, duration=60,
                          nat=True, nat_share=0.5)
    schema = ("CREATE TABLE nel (ip_src CHAR(45) NOT NULL, post_nat_ip_src CHAR(45) NOT NULL, "
              "nat_event INT NOT NULL, packets INT, bytes BIGINT, stamp_inserted DATETIME, "
              "stamp_updated DATETIME)")
    extra = {"aggregate": "src_host,post_nat_src_host,nat_event", "sql_optimize_clauses": True,
             "sql_table": "nel", "sql_history": "5m", "sql_history_roundoff": "m"}
    expected, actual, ours = sqlrun.compare(engine, cap, extra, tmp_path, oracle_cache, schema)
    assert ours.returncode == 0, ours.describe()
    rows = expected["nel"][1]
    assert any(r[3] == "" for r in rows) and any(r[3] != "" for r in rows)
    d = sqlrun.diff_tables(expected, actual)
    assert not d, d
