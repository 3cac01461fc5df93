"""Unit tests of the SQL plugins' parts: table layouts (pmacct's versioning rules and
its refusals), schemas, pre-processing, recovery files."""
from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pypmacct.sql import recovery, schemas
from pypmacct.sql.engines import ConnParams, make_engine
from pypmacct.sql.layout import SqlLayoutError, build_layout
from pypmacct.sql.preprocess import Preprocessor, PreprocessError

ROOT = Path(__file__).resolve().parents[2]


# ---- layouts -------------------------------------------------------------------------
def names(layout):
    return [c.name for c in layout.columns]


def test_v1_writes_every_column_of_the_table_filled_or_not():
    lay = build_layout(["src_host", "dst_host"], "sqlite3", 1)
    assert sorted(names(lay)) == sorted(["mac_src", "mac_dst", "ip_src", "ip_dst", "src_port",
                                         "dst_port", "ip_proto"])
    const = {c.name: c.const for c in lay.columns if c.source is None}
    assert const == {"mac_src": "0:0:0:0:0:0", "mac_dst": "0:0:0:0:0:0", "src_port": 0,
                     "dst_port": 0, "ip_proto": 0}
    assert lay.insert_names[-2:] == ["packets", "bytes"] and not lay.flows
    assert lay.table_default == "acct"


@pytest.mark.parametrize("prim,version,what", [
    ("tos", 2, "IP ToS"), ("vlan", 1, "VLAN"), ("tag", 1, "Tag/ID"),
    ("class", 4, "L7 classification"), ("tcpflags", 6, "TCP flags"),
])
def test_primitive_the_version_lacks_stops_startup(prim, version, what):
    with pytest.raises(SqlLayoutError, match=f"{what} accounting not supported"):
        build_layout(["src_host", prim], "mysql", version)


def test_optimised_clauses_take_any_primitive_in_any_version():
    lay = build_layout(["tos", "vlan", "in_iface"], "mysql", 1, optimize=True)
    assert names(lay) == ["vlan", "iface_in", "tos"]


def test_versions_rename_columns():
    assert "src_port" in names(build_layout(["src_port"], "mysql", 7))
    assert "port_src" in names(build_layout(["src_port"], "mysql", 8))
    assert "port_src" in names(build_layout(["src_port"], "pgsql", 1))
    assert "agent_id" in names(build_layout(["tag"], "sqlite3", 8))
    assert "tag" in names(build_layout(["tag"], "sqlite3", 9))


def test_asn_lives_in_ip_columns_before_v6():
    lay = build_layout(["src_as", "dst_as"], "mysql", 5)
    c = {c.name: c for c in lay.columns}
    assert c["ip_src"].source == "src_as" and c["ip_src"].kind == "int_text"
    with pytest.raises(SqlLayoutError, match="unable to mix IP addresses and AS numbers"):
        build_layout(["src_host", "src_as"], "mysql", 5)
    lay6 = build_layout(["src_host", "src_as"], "mysql", 6)
    assert {"ip_src", "as_src"} <= set(names(lay6))


def test_bgp_primitives_switch_to_the_bgp_table():
    lay = build_layout(["as_path", "peer_src_as"], "sqlite3", 1)
    assert lay.bgp and lay.table_default == "acct_bgp"
    assert {"as_path", "peer_as_src", "comms", "local_pref", "med", "agent_id"} <= set(names(lay))
    with pytest.raises(SqlLayoutError, match="IP host accounting not supported"):
        build_layout(["as_path", "src_host"], "sqlite3", 1)


def test_flows_need_v4_and_tcp_flags_are_no_key():
    with pytest.raises(SqlLayoutError, match="requires SQL table v4"):
        build_layout(["src_host", "flows"], "mysql", 3)
    lay = build_layout(["tcpflags"], "mysql", 7)
    tf = [c for c in lay.columns if c.name == "tcp_flags"][0]
    assert not tf.where and lay.tcp_flags_set and lay.flows


def test_pgsql_default_table_names():
    assert build_layout(["src_as"], "pgsql", 3).table_default == "acct_as_v3"
    assert build_layout(["src_host"], "pgsql", 3, sql_data="unified").table_default == \
        "acct_uni_v3"
    assert build_layout(["src_host"], "pgsql", 9).table_default == "acct_v9"


# ---- schemas -------------------------------------------------------------------------
def test_sql_files_are_the_generated_ones():
    for name, text in schemas.all_files().items():
        assert (ROOT / "sql" / name).read_text() == text, \
            f"sql/{name} is stale: run python -m pypmacct.sql.schemas sql/"


@pytest.mark.parametrize("version", range(1, 10))
def test_sqlite_schema_loads_and_has_pmacct_columns(version, tmp_path):
    db = sqlite3.connect(tmp_path / "x.db")
    db.executescript(schemas.schema_file("sqlite3", version))
    table = schemas.table_names("sqlite3", version)[0][0]
    cols = [r[1] for r in db.execute(f"PRAGMA table_info({table})")]
    keys, flows = schemas.columns(version)
    assert ("flows" in cols) == flows
    assert cols[-2:] == ["stamp_inserted", "stamp_updated"]
    assert ("src_port" in cols) == (version < 8)


# ---- pre-processing --------------------------------------------------------------------
def vals(p, b, f=None):
    p = np.array(p, dtype=np.uint64)
    return {"packets": p, "bytes": np.array(b, dtype=np.uint64),
            "flows": np.array(f if f is not None else [1] * len(p), dtype=np.uint64)}


def test_checks_any_and_all():
    v = vals([1, 10, 100], [100, 500, 200000])
    any_ = Preprocessor.from_config("minp=10, minb=1000", "any").apply(v)
    assert any_.keep.tolist() == [False, True, True]
    all_ = Preprocessor.from_config("minp=10,minb=1000", "all").apply(v)
    assert all_.keep.tolist() == [False, False, True]
    mx = Preprocessor.from_config("maxp=50,maxbpp=100", "all").apply(v)
    assert mx.keep.tolist() == [False, True, False]


def test_qnum_applies_checks_only_to_big_purges():
    v = vals([1, 10], [1, 1])
    assert Preprocessor.from_config("qnum=3,minp=5").apply(v).keep.tolist() == [True, True]
    assert Preprocessor.from_config("qnum=2,minp=5").apply(v).keep.tolist() == [False, True]


def test_actions_renormalise_and_adjust():
    v = vals([10, 4], [1000, 400])
    r = Preprocessor.from_config("usrf=10").apply(v)
    assert r.values["bytes"].tolist() == [10000, 4000]
    assert r.values["packets"].tolist() == [100, 40]
    r = Preprocessor.from_config("adjb=14").apply(v)
    assert r.values["bytes"].tolist() == [1140, 456]


def test_fss_keeps_big_flows_and_samples_small_ones_renormalised():
    # threshold 1000: the big one always; the small ones (0.4 each) one in 2.5
    v = vals([5, 1, 1, 1, 1, 1], [5000, 400, 400, 400, 400, 400])
    r = Preprocessor.from_config("fss=1000").apply(v)
    assert r.keep.tolist() == [True, False, False, True, False, True]
    assert r.values["bytes"][r.keep].tolist() == [5000, 1000, 1000]
    assert r.values["packets"][r.keep].tolist() == [5, 2, 2]


def test_fsrc_keeps_at_most_n_and_the_estimate_is_renormalised():
    rng = np.random.default_rng(1)
    b = rng.integers(100, 100000, 500)
    v = vals(np.maximum(b // 500, 1), b)
    r = Preprocessor.from_config("fsrc=50", seed=3).apply(v)
    assert r.keep.sum() == 50
    assert (r.values["bytes"][r.keep] >= b[r.keep]).all()


def test_recover_sends_dropped_ones_to_recovery():
    r = Preprocessor.from_config("minp=5,recover=1").apply(vals([1, 9], [1, 9]))
    assert r.recover.tolist() == [True, False]


@pytest.mark.parametrize("text", ["minp", "foo=1", "minp=x", "minb=0"])
def test_bad_preprocess_strings_are_refused(text):
    with pytest.raises(PreprocessError):
        Preprocessor.from_config(text)


# ---- recovery files ----------------------------------------------------------------------
def test_recovery_file_round_trip_and_replay(tmp_path):
    lay = build_layout(["src_host", "dst_host"], "sqlite3", 1)
    cols = {c.name: ([c.const] * 2 if c.source is None else ["10.0.0.1", "10.0.0.2"])
            for c in lay.columns}
    cols["ip_dst"] = ["192.0.2.1", "192.0.2.2"]
    cols.update(packets=[3, 4], bytes=[300, 400], flows=[0, 0])
    dbp = tmp_path / "r.db"
    header = {"engine": "sqlite3", "db": str(dbp), "host": None, "port": None,
              "user": "pmacct", "layout": recovery.layout_to_dict(lay),
              "dont_try_update": False}
    path = tmp_path / "rec.log"
    recovery.append(str(path), header, "acct", cols)
    recovery.append(str(path), header, "acct", cols)
    blocks = list(recovery.read(str(path)))
    assert len(blocks) == 2 and blocks[0][2] == cols
    sqlite3.connect(dbp).executescript(schemas.schema_file("sqlite3", 1))
    out = subprocess.run([sys.executable, "-m", "pypmacct.sql.replay", "-f", str(path)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    rows = sqlite3.connect(dbp).execute(
        "SELECT ip_src, ip_dst, packets, bytes FROM acct ORDER BY ip_src").fetchall()
    # replayed twice: UPDATE-then-INSERT adds the second block to the first
    assert rows == [("10.0.0.1", "192.0.2.1", 6, 600), ("10.0.0.2", "192.0.2.2", 8, 800)]


def test_engine_write_is_all_or_nothing_per_table(tmp_path):
    """A statement the table refuses as a whole (no such column) leaves nothing."""
    dbp = tmp_path / "w.db"
    sqlite3.connect(dbp).execute("CREATE TABLE acct (ip_src CHAR(45), packets INT, "
                                 "bytes BIGINT)")
    lay = build_layout(["src_host", "dst_host"], "sqlite3", 1, optimize=True)
    eng = make_engine("sqlite3", ConnParams(db=str(dbp)))
    cols = {"ip_src": ["a", "b"], "ip_dst": ["c", "d"], "packets": [1, 2], "bytes": [3, 4],
            "flows": [0, 0]}
    from pypmacct.sql.engines import SqlWriteError
    with pytest.raises(SqlWriteError):
        eng.write(lay, "acct", cols, dont_try_update=False)
    assert sqlite3.connect(dbp).execute("SELECT COUNT(*) FROM acct").fetchone()[0] == 0


@pytest.mark.parametrize("engine", ["pgsql", "mysql"])
def test_bulk_update_matches_and_inserts(engine, tmp_path, request):
    """The bulk paths (PostgreSQL: UPDATE ... FROM (VALUES) RETURNING; MySQL: INSERT ...
    ON DUPLICATE KEY UPDATE on a table keyed like the UPDATE): a second write of the same
    rows plus new ones updates the first ones and inserts the rest."""
    from tests.sql.conftest import need_server
    from tests.support import sqlrun
    need_server(request, engine)
    db = sqlrun.Database(engine, f"pypm_{sqlrun.unique_tag()}", tmp_path)
    try:
        db.load_default(7)
        lay = build_layout(["src_host", "dst_host", "tcpflags"], engine, 7, history=True)
        n = 300
        def cols(count, offset=0):
            c = {col.name: [col.const] * count for col in lay.columns if col.source is None}
            c["ip_src"] = [f"10.0.{(i + offset) // 250}.{(i + offset) % 250}" for i in range(count)]
            c["ip_dst"] = ["192.0.2.1"] * count
            c["tcp_flags"] = [2] * count
            c.update(packets=[1] * count, bytes=[100] * count, flows=[1] * count,
                     stamp_inserted=[1700000100] * count)
            return c
        p = sqlrun.PGSQL if engine == "pgsql" else sqlrun.MYSQL
        eng = make_engine(engine, ConnParams(db=db.name, host=p["host"], port=p["port"],
                                             user=p["user"], passwd=p.get("passwd", "")),
                          utc=True)
        assert eng.write(lay, "acct_v7", cols(n), dont_try_update=False)[:2] == (0, n)
        upd, ins, rej = eng.write(lay, "acct_v7", cols(n + 100), dont_try_update=False)
        assert (upd, ins, rej) == (n, 100, [])
        eng.close()
        assert db.totals("acct_v7") == (2 * n + 100, 100 * (2 * n + 100))
        _, rows = db.rows("acct_v7")
        assert len(rows) == n + 100
    finally:
        db.drop()
