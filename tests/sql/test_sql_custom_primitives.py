"""Custom primitives (aggregate_primitives) in the SQL plugins against pmacct 1.7.7's:
each goes to a column named after it (u_int as a number, hex/ip/mac/str/raw as text),
in a table the user made with those columns; every row must be identical.

Two tables: an optimised custom one (sql_optimize_clauses, all three engines) and
pmacct's default v9 table with the custom columns added (SQLite), where 1.7.7 writes
every default column and the custom ones after them."""
from __future__ import annotations

import pytest

from pypmacct.sql import schemas
from tests.diff.test_custom_primitives_diff import PRIMITIVES
from tests.sql.conftest import need_server
from tests.support import flowgen, sqlrun

AGG = ("src_port,in_vlan_cp,nh_cp,tos_hex,src6_cp,srcmac_cp,dst_as_cp,src4_raw,src4_raw2,"
       "dst4_str")

# column types per engine for (name, semantics)
_TYPES = {
    "sqlite3": {"uint": "INT", "text": "VARCHAR(64)"},
    "mysql": {"uint": "INT UNSIGNED", "text": "VARCHAR(64)"},
    "pgsql": {"uint": "BIGINT", "text": "VARCHAR(64)"},
}
_CUSTOM_COLS = (("in_vlan_cp", "uint"), ("nh_cp", "text"), ("tos_hex", "text"),
                ("src6_cp", "text"), ("srcmac_cp", "text"), ("dst_as_cp", "uint"),
                ("src4_raw", "text"), ("src4_raw2", "text"), ("dst4_str", "text"))


def _custom_ddl(engine: str, table: str) -> str:
    t = _TYPES[engine]
    cols = ", ".join(f"{n} {t[k]} NOT NULL" for n, k in _CUSTOM_COLS)
    port = "src_port" if engine != "pgsql" else "port_src"
    stamp = "DATETIME" if engine != "pgsql" else "timestamp without time zone"
    return (f"CREATE TABLE {table} ({port} INT NOT NULL, {cols}, packets INT NOT NULL, "
            f"bytes BIGINT NOT NULL, stamp_inserted {stamp} NOT NULL, "
            f"stamp_updated {stamp})")


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    d = tmp_path_factory.mktemp("sqlcp")
    cap = d / "c.pcap"
    flowgen.write_capture(cap, version=10, records=1500, seed=90, ipv6_share=0.3)
    (d / "prims.lst").write_text(PRIMITIVES)
    return cap, d / "prims.lst"


def _check(engine, extra, schema_sql, capture, tmp_path, oracle_cache):
    cap, prims = capture
    extra = dict(extra, aggregate_primitives=str(prims))
    expected, actual, ours = sqlrun.compare(engine, cap, extra, tmp_path, oracle_cache,
                                            schema_sql)
    assert ours.returncode == 0, ours.describe()
    assert any(rows for _, rows in expected.values()), f"pmacct wrote nothing: {expected}"
    d = sqlrun.diff_tables(expected, actual)
    assert not d, d + "\n" + ours.describe()
    return actual


@pytest.mark.diff
@pytest.mark.parametrize("engine", ["sqlite3", "mysql", "pgsql"])
def test_custom_primitive_columns_match_pmacct(engine, capture, tmp_path, oracle_cache,
                                               request):
    need_server(request, engine)
    extra = {"aggregate": AGG, "sql_optimize_clauses": True, "sql_table": "cust",
             "sql_history": "5m", "sql_history_roundoff": "m"}
    actual = _check(engine, extra, _custom_ddl(engine, "cust"), capture, tmp_path,
                    oracle_cache)
    cols, rows = actual["cust"]
    at = {c: i for i, c in enumerate(cols)}
    # every semantics carried real values, not only their empty forms
    assert any(str(r[at["in_vlan_cp"]]) == "4094" for r in rows)
    assert any(str(r[at["src6_cp"]]).startswith("2001:db8:") for r in rows)
    assert any(str(r[at["src4_raw"]]).startswith("0A-") for r in rows)
    assert any(r[at["tos_hex"]] == "b8" for r in rows)
    assert any(r[at["srcmac_cp"]] != "00:00:00:00:00:00" for r in rows)


@pytest.mark.diff
def test_custom_primitives_in_default_table_match_pmacct(capture, tmp_path, oracle_cache):
    """v9 default table plus the custom columns (ALTER TABLE): 1.7.7 writes them after
    every default column, the default ones filled or not."""
    t = _TYPES["sqlite3"]
    ddl = schemas.ddl("sqlite3", 9, False, "acct_v9")
    ddl += ";\n" + ";\n".join(f"ALTER TABLE acct_v9 ADD COLUMN {n} {t[k]} NOT NULL DEFAULT 0"
                              for n, k in _CUSTOM_COLS)
    extra = {"aggregate": "src_host,dst_port," + AGG.replace("src_port,", ""),
             "sql_table_version": 9, "sql_table": "acct_v9"}
    _check("sqlite3", extra, ddl, capture, tmp_path, oracle_cache)


@pytest.mark.diff
def test_vlen_custom_primitive_column_matches_pmacct(tmp_path, oracle_cache):
    """len=vlen raw from an enterprise element (what 1.7.7 fills vlen primitives from),
    into a TEXT column of its name."""
    from tests.support import ipfixgen
    cap = tmp_path / "v.pcap"
    ipfixgen.write(cap, seed=5, n=600)
    prims = tmp_path / "v.lst"
    prims.write_text("name=ent_raw field_type=9999:2 len=vlen semantics=raw\n")
    ddl = ("CREATE TABLE vl (src_port INT NOT NULL, ent_raw TEXT NOT NULL, packets INT NOT "
           "NULL, bytes BIGINT NOT NULL, stamp_inserted DATETIME NOT NULL, "
           "stamp_updated DATETIME)")
    extra = {"aggregate": "src_port,ent_raw", "sql_optimize_clauses": True, "sql_table": "vl",
             "sql_history": "5m", "sql_history_roundoff": "m",
             "aggregate_primitives": str(prims)}
    expected, actual, ours = sqlrun.compare("sqlite3", cap, extra, tmp_path, oracle_cache, ddl)
    assert ours.returncode == 0, ours.describe()
    d = sqlrun.diff_tables(expected, actual)
    assert not d, d + "\n" + ours.describe()
    cols, rows = actual["vl"]
    at = cols.index("ent_raw")
    assert any(str(r[at]).startswith("DE-AD-BE-EF-00") for r in rows)
