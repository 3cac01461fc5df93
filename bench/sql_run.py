#!/usr/bin/env python3
"""SQL plugins side by side: pmacct 1.7.7's and ours write the same capture into fresh
databases (MariaDB, PostgreSQL, SQLite) on this machine; rows per second of each.

    .venv/bin/python bench/sql_run.py                 # 100k-record IPFIX capture
    .venv/bin/python bench/sql_run.py --records 20000 --engines sqlite3

Each run: pcap_savefile, one SQL plugin, the default v1 table (5-tuple aggregate), a
refresh time longer than the run (one purge at the end), with UPDATE-then-INSERT and with
sql_dont_try_update. pmacct sleeps about 4 s around a savefile whatever its size; a run on
a one-record capture gives that fixed cost, and the rate is rows / (wall - fixed). Rows
and totals are checked equal between the two; speed is reported, never asserted.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from tests.support import flowgen, oracle, sqlrun  # noqa: E402

AGG = "src_host,dst_host,src_port,dst_port"


def run(binary, engine, capture, extra, workdir):
    workdir.mkdir(parents=True, exist_ok=True)
    db = sqlrun.Database(engine, f"pypm_bench_{sqlrun.unique_tag()}", workdir)
    try:
        db.load_default(1)
        t0 = time.monotonic()
        res = sqlrun.run(binary, engine, db, capture, {"aggregate": AGG, **extra}, workdir,
                         timeout=3600)
        wall = time.monotonic() - t0
        rows = db.rows("acct")[1] if res.returncode == 0 else []
        return wall, len(rows), db.totals("acct"), res.returncode
    finally:
        db.drop()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--engines", default="sqlite3,mysql,pgsql")
    a = ap.parse_args(argv)
    work = HERE / "captures" / "sql"
    work.mkdir(parents=True, exist_ok=True)
    cap = work / f"ipfix-{a.records}.pcap"
    if not cap.exists():
        flowgen.write_capture(cap, version=10, records=a.records, seed=77, exporters=4,
                              duration=60)
    tiny = work / "ipfix-1.pcap"
    if not tiny.exists():
        flowgen.write_capture(tiny, version=10, records=1, seed=77, exporters=1, duration=1)
    sqlrun.ensure_mysql_user()
    print("| engine | mode | rows | pmacct rows/s | ours rows/s | ratio |")
    print("|---|---|---|---|---|---|")
    for engine in a.engines.split(","):
        for mode, extra in (("UPDATE-then-INSERT", {}),
                            ("INSERT only", {"sql_dont_try_update": True})):
            out = {}
            for who, b in (("pmacct", oracle.pmacct_binary()), ("ours", oracle.our_binary())):
                fixed, *_ = run(b, engine, tiny, extra, work / f"{who}-tiny")
                wall, n, totals, rc = run(b, engine, cap, extra, work / who)
                out[who] = (n / max(wall - fixed, 1e-3), n, totals, rc)
            p, o = out["pmacct"], out["ours"]
            same = "" if p[1:3] == o[1:3] else " (rows differ!)"
            print(f"| {engine} | {mode} | {o[1]} | {p[0]:,.0f} | {o[0]:,.0f} | "
                  f"{o[0] / max(p[0], 1e-9):.2f}{same} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
