"""The default SQL tables (versions 1 to 9 and the BGP table) for MySQL/MariaDB,
PostgreSQL and SQLite, as data; ``ddl()`` spells one as CREATE TABLE.

Table names, column names, column types and primary keys are pmacct's (so that tables
made for pmacct work with pypmacct and the other way round); the files under ``sql/``
are generated from here (``python -m pypmacct.sql.schemas sql/``, a test keeps them in
step).
"""
from __future__ import annotations

import sys
from pathlib import Path

ENGINES = ("mysql", "pgsql", "sqlite3")

# logical column -> (mysql type, pgsql typed type, pgsql unified type, sqlite type,
#                    pgsql default, sqlite default)
_TYPES = {
    "agent_id": ("INT(4) UNSIGNED", "BIGINT", "BIGINT", "INT(8)", "0", "0"),
    "tag": ("INT(4) UNSIGNED", "BIGINT", "BIGINT", "INT(8)", "0", "0"),
    "class_id": ("CHAR(16)", "CHAR(16)", "CHAR(16)", "CHAR(16)", "' '", "' '"),
    "mac_src": ("CHAR(17)", "macaddr", "CHAR(17)", "CHAR(17)", "'0:0:0:0:0:0'", "'0:0:0:0:0:0'"),
    "mac_dst": ("CHAR(17)", "macaddr", "CHAR(17)", "CHAR(17)", "'0:0:0:0:0:0'", "'0:0:0:0:0:0'"),
    "vlan": ("INT(2) UNSIGNED", "INT", "INT", "INT(4)", "0", "0"),
    "as_src": ("INT(4) UNSIGNED", "BIGINT", "BIGINT", "INT(8)", "0", "0"),
    "as_dst": ("INT(4) UNSIGNED", "BIGINT", "BIGINT", "INT(8)", "0", "0"),
    "ip_src": ("CHAR(45)", "inet", "CHAR(45)", "CHAR(45)", "'0.0.0.0'", "'0.0.0.0'"),
    "ip_dst": ("CHAR(45)", "inet", "CHAR(45)", "CHAR(45)", "'0.0.0.0'", "'0.0.0.0'"),
    "port_src": ("INT(2) UNSIGNED", "INT", "INT", "INT(4)", "0", "0"),
    "port_dst": ("INT(2) UNSIGNED", "INT", "INT", "INT(4)", "0", "0"),
    "tcp_flags": ("INT(4) UNSIGNED", "SMALLINT", "SMALLINT", "INT(4)", "0", "0"),
    "ip_proto": ("CHAR(6)", "SMALLINT", "SMALLINT", "CHAR(6)", "0", "0"),
    "tos": ("INT(4) UNSIGNED", "INT", "INT", "INT(4)", "0", "0"),
    "peer_as_src": ("INT(4) UNSIGNED", "BIGINT", "BIGINT", "INT(8)", "0", "0"),
    "peer_as_dst": ("INT(4) UNSIGNED", "BIGINT", "BIGINT", "INT(8)", "0", "0"),
    "peer_ip_src": ("CHAR(45)", "inet", "inet", "CHAR(45)", "'0.0.0.0'", "'0.0.0.0'"),
    "peer_ip_dst": ("CHAR(45)", "inet", "inet", "CHAR(45)", "'0.0.0.0'", "'0.0.0.0'"),
    "comms": ("CHAR(24)", "CHAR(24)", "CHAR(24)", "CHAR(24)", "' '", "' '"),
    "as_path": ("CHAR(21)", "CHAR(21)", "CHAR(21)", "CHAR(21)", "' '", "' '"),
    "local_pref": ("INT(4) UNSIGNED", "BIGINT", "BIGINT", "INT(8)", "0", "0"),
    "med": ("INT(4) UNSIGNED", "BIGINT", "BIGINT", "INT(8)", "0", "0"),
}
_COUNTERS = {
    "packets": ("INT UNSIGNED NOT NULL", "INT NOT NULL", "INT NOT NULL"),
    "bytes": ("BIGINT UNSIGNED NOT NULL", "BIGINT NOT NULL", "BIGINT NOT NULL"),
    "flows": ("INT UNSIGNED NOT NULL", "INT NOT NULL DEFAULT 0", "INT NOT NULL DEFAULT 0"),
}


def columns(version: int, bgp: bool = False) -> tuple[list[str], bool]:
    """The key columns of a default table (ports as port_src/port_dst) and whether it
    has a flows column."""
    if bgp:
        return (["agent_id", "as_src", "as_dst", "peer_as_src", "peer_as_dst", "peer_ip_src",
                 "peer_ip_dst", "comms", "as_path", "local_pref", "med"], False)
    v = version
    cols = []
    if v >= 2:
        cols.append("tag" if v >= 9 else "agent_id")
    if v >= 5:
        cols.append("class_id")
    cols += ["mac_src", "mac_dst"]
    if v >= 2:
        cols.append("vlan")
    if v >= 6:
        cols += ["as_src", "as_dst"]
    cols += ["ip_src", "ip_dst", "port_src", "port_dst"]
    if v >= 7:
        cols.append("tcp_flags")
    cols.append("ip_proto")
    if v >= 3:
        cols.append("tos")
    return cols, v >= 4


def _name(engine: str, col: str, version: int) -> str:
    if engine in ("mysql", "sqlite3") and version < 8 and col in ("port_src", "port_dst"):
        return {"port_src": "src_port", "port_dst": "dst_port"}[col]
    return col


def table_names(engine: str, version: int, bgp: bool = False) -> list[tuple[str, str]]:
    """(table name, variant) of the default tables of a version: variant is 'typed',
    'unified' or 'as' (PostgreSQL up to v5 has the three; the others one)."""
    if bgp:
        return [("acct_bgp", "typed")]
    base = "acct" if version == 1 else f"acct_v{version}"
    if engine == "pgsql" and version <= 5:
        suffix = "" if version == 1 else f"_v{version}"
        return [(base, "typed"), (f"acct_uni{suffix}", "unified"), (f"acct_as{suffix}", "as")]
    return [(base, "typed")]


def ddl(engine: str, version: int, bgp: bool = False, table: str | None = None,
        variant: str = "typed") -> str:
    """CREATE TABLE for one default table (named ``table`` if given)."""
    keys, flows = columns(version, bgp)
    name = table or table_names(engine, version, bgp)[0][0]
    lines = []
    for c in keys:
        my, pg, pgu, lite, pgdef, litedef = _TYPES[c]
        if engine == "pgsql" and variant == "as" and c in ("ip_src", "ip_dst"):
            pg, pgdef = "INT", "0"
        cn = _name(engine, c, version)
        if engine == "mysql":
            lines.append(f"    {cn} {my} NOT NULL")
        elif engine == "pgsql":
            t = pgu if variant == "unified" else pg
            d = pgdef
            if variant == "unified" and c.startswith("mac_"):
                d = "'0:0:0:0:0:0'"
            lines.append(f"    {cn} {t} NOT NULL DEFAULT {d}")
        else:
            lines.append(f"    {cn} {lite} NOT NULL DEFAULT {litedef}")
    idx = {"mysql": 0, "pgsql": 1, "sqlite3": 2}[engine]
    counters = ["packets", "bytes"] + (["flows"] if flows or (bgp and engine == "sqlite3")
                                       else [])
    for c in counters:
        lines.append(f"    {c} {_COUNTERS[c][idx]}")
    if engine == "mysql":
        # a zero default, as SQLite's: without sql_history nothing writes stamp_inserted,
        # and MariaDB's strict mode refuses a NOT NULL column without one
        lines += ["    stamp_inserted DATETIME NOT NULL DEFAULT '0000-00-00 00:00:00'",
                  "    stamp_updated DATETIME"]
    elif engine == "pgsql":
        default = "CURRENT_TIMESTAMP(0)" if version == 1 and not bgp else \
            "'0001-01-01 00:00:00'"
        lines += [f"    stamp_inserted timestamp without time zone NOT NULL DEFAULT {default}",
                  "    stamp_updated timestamp without time zone"]
    else:
        lines += ["    stamp_inserted DATETIME NOT NULL DEFAULT '0000-00-00 00:00:00'",
                  "    stamp_updated DATETIME"]
    pk = [_name(engine, c, version) for c in keys if c != "tcp_flags"] + ["stamp_inserted"]
    if engine == "pgsql":
        lines.append(f"    CONSTRAINT {name}_pk PRIMARY KEY ({', '.join(pk)})")
    else:
        lines.append(f"    PRIMARY KEY ({', '.join(pk)})")
    return f"CREATE TABLE {name} (\n" + ",\n".join(lines) + "\n);\n"


def schema_file(engine: str, version: int, bgp: bool = False) -> str:
    """The text of one sql/ file: every default table of the version."""
    what = "BGP table" if bgp else f"table version {version}"
    out = [f"-- pypmacct default {what} for {engine} (pmacct's table and column names and "
           f"types).\n-- Generated by 'python -m pypmacct.sql.schemas sql/'; see "
           f"sql/README.md.\n"]
    if engine == "mysql":
        out.append("CREATE DATABASE IF NOT EXISTS pmacct;\nUSE pmacct;\n")
    for name, variant in table_names(engine, version, bgp):
        out.append(f"DROP TABLE IF EXISTS {name};\n")
        out.append(ddl(engine, version, bgp, name, variant))
    return "\n".join(out)


def file_name(engine: str, version: int, bgp: bool = False) -> str:
    ext = {"mysql": "mysql", "pgsql": "pgsql", "sqlite3": "sqlite3"}[engine]
    return f"pypmacct-{'bgp_v1' if bgp else f'v{version}'}.{ext}"


def all_files() -> dict[str, str]:
    out = {}
    for e in ENGINES:
        for v in range(1, 10):
            out[file_name(e, v)] = schema_file(e, v)
        out[file_name(e, 1, True)] = schema_file(e, 1, True)
    return out


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    target = Path(argv[0] if argv else "sql")
    target.mkdir(parents=True, exist_ok=True)
    for name, text in all_files().items():
        (target / name).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
