"""pmsqlplay (also installed as pmmyplay and pmpgplay): replay a pypmacct SQL recovery
file (sql_recovery_logfile, or the file a shutdown purge leaves when the database is
unavailable) into the database, with the statements the plugin would have sent."""
from __future__ import annotations

import argparse
import sys

from .engines import ConnParams, SqlWriteError, make_engine
from .recovery import layout_from_dict, read


def _parser(prog: str, engine: str | None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0], add_help=False)
    p.add_argument("-f", "--file", required=True, help="recovery file to replay")
    p.add_argument("-e", "--engine", default=engine,
                   help="mysql, pgsql or sqlite3 (default: the one in the file)")
    p.add_argument("-D", "--db", help="database (SQLite: file) instead of the file's")
    p.add_argument("-s", "--host", help="server host instead of the file's")
    p.add_argument("-P", "--port", type=int, help="server port instead of the file's")
    p.add_argument("-u", "--user", help="user instead of the file's")
    p.add_argument("-p", "--passwd", default=None,
                   help="password (default: pmacct's default, 'arealsmartpwd')")
    p.add_argument("-C", "--ca-file", default=None,
                   help="CA certificate that checks the server's TLS certificate "
                        "(as sql_conn_ca_file; default: the file's)")
    p.add_argument("-T", "--table", help="write every block to this table")
    p.add_argument("-t", "--test", action="store_true",
                   help="only read the file and say what it holds")
    p.add_argument("-h", "--help", action="help", help="show this help and exit")
    return p


def main(argv=None, prog: str = "pmsqlplay", engine: str | None = None) -> int:
    args = _parser(prog, engine).parse_args(sys.argv[1:] if argv is None else argv)
    total = ok = refused = 0
    engines = {}
    try:
        blocks = list(read(args.file))
    except (OSError, ValueError) as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return 2
    for header, table, cols in blocks:
        n = len(cols.get("packets", []))
        total += n
        if args.test:
            print(f"{table}: {n} rows ({header.get('engine')} {header.get('db')})")
            continue
        eng = args.engine or header["engine"]
        params = ConnParams(db=args.db or header["db"], host=args.host or header.get("host"),
                            port=args.port or header.get("port"),
                            user=args.user or header.get("user") or "pmacct",
                            passwd=args.passwd if args.passwd is not None else "arealsmartpwd",
                            ca_file=args.ca_file or header.get("ca_file"))
        key = (eng, params.db, params.host, params.port, params.user)
        if key not in engines:
            engines[key] = make_engine(eng, params, utc=header.get("utc", False),
                                       since_epoch=header.get("since_epoch", False))
        layout = layout_from_dict(header["layout"])
        try:
            _, _, rejected = engines[key].write(layout, args.table or table, cols,
                                                dont_try_update=header.get("dont_try_update",
                                                                           False))
        except SqlWriteError as e:
            print(f"{prog}: {table}: {e}", file=sys.stderr)
            for e2 in engines.values():
                e2.close()
            print(f"{prog}: {ok} of {total} rows replayed before the failure", file=sys.stderr)
            return 1
        ok += n - len(rejected)
        refused += len(rejected)
    for e in engines.values():
        e.close()
    if args.test:
        print(f"{total} rows in {len(blocks)} blocks")
        return 0
    print(f"{prog}: {ok} rows replayed, {refused} refused")
    return 0 if refused == 0 else 1


def main_mysql() -> int:
    return main(prog="pmmyplay", engine="mysql")


def main_pgsql() -> int:
    return main(prog="pmpgplay", engine="pgsql")


if __name__ == "__main__":
    raise SystemExit(main())
