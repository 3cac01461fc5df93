"""Recovery files (sql_recovery_logfile, and the file a shutdown purge writes when the
database is unavailable) and their replay (pmsqlplay)."""
from __future__ import annotations

import json
import os

from .layout import Layout, SqlColumn

MAGIC = "pypmacct-sql-recovery 1"


def layout_to_dict(layout: Layout) -> dict:
    return {"table_default": layout.table_default, "flows": layout.flows,
            "tcp_flags_set": layout.tcp_flags_set, "history": layout.history,
            "bgp": layout.bgp, "version": layout.version, "log_times": layout.log_times,
            "counters": layout.counters,
            "columns": [[c.name, c.source, c.kind, c.const, c.where, c.wrap]
                        for c in layout.columns]}


def layout_from_dict(d: dict) -> Layout:
    cols = [SqlColumn(*c) for c in d["columns"]]
    return Layout(d["table_default"], cols, d["flows"], d["tcp_flags_set"], d["history"],
                  d["bgp"], d["version"], d.get("log_times", False), d.get("counters", True))


def append(path: str, header: dict, table: str, cols: dict) -> None:
    """Append one table's rows: a JSON header line per block, then one JSON array of
    column lists. The file is created with the magic line first."""
    new = not os.path.exists(path) or os.path.getsize(path) == 0
    with open(path, "a") as f:
        if new:
            f.write(MAGIC + "\n")
        f.write(json.dumps({"header": header, "table": table}) + "\n")
        f.write(json.dumps(cols) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read(path: str):
    """Yield (header, table, cols) blocks of a recovery file."""
    with open(path) as f:
        first = f.readline().rstrip("\n")
        if first != MAGIC:
            raise ValueError(f"{path}: not a pypmacct SQL recovery file")
        while True:
            h = f.readline()
            if not h:
                return
            body = f.readline()
            if not body:
                raise ValueError(f"{path}: truncated block")
            hd = json.loads(h)
            yield hd["header"], hd["table"], json.loads(body)
