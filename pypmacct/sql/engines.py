"""The three SQL back-ends: how to connect, how a statement is spelt, how a table is
locked, and how a purge's rows are written (UPDATE-then-INSERT, INSERT only, multi-row
INSERT, PostgreSQL COPY).

A write is one transaction per table: either every aggregate of the table is written or
none is (the caller then recovers or retries all of them), so a database that fails in
the middle of a purge never leaves counters half added.
"""
from __future__ import annotations

import io
import os
import time
from dataclasses import dataclass

import numpy as np

from .layout import Layout

ENGINES = ("mysql", "pgsql", "sqlite3")


class SqlWriteError(Exception):
    """A write failed (connection refused or lost, statement refused...)."""


@dataclass
class ConnParams:
    db: str
    host: str | None = None
    port: int | None = None
    user: str = "pmacct"
    passwd: str = "arealsmartpwd"
    ca_file: str | None = None
    connect_timeout: int = 10


class Engine:
    name = ""
    ph = "%s"                 # placeholder
    module_errors: tuple = ()

    def __init__(self, params: ConnParams, *, utc: bool = False, since_epoch: bool = False,
                 locking_style: str = "table", use_copy: bool = False,
                 delimiter: str = ",", log=None):
        self.params = params
        self.utc = utc
        self.since_epoch = since_epoch
        self.locking_style = locking_style or "table"
        self.use_copy = use_copy
        self.delimiter = delimiter or ","
        self.log = log
        self.conn = None

    # --- dialect ------------------------------------------------------------------
    def qt(self, table: str) -> str:
        return table

    def ts(self, expr: str) -> str:
        """Seconds since the epoch -> a timestamp value (local time unless utc)."""
        raise NotImplementedError

    def now_expr(self) -> str:
        raise NotImplementedError

    def value_expr(self, col) -> str:
        ph = self.ph
        if col.kind == "addr_aton":          # sql_num_hosts (MySQL, SQLite)
            return f"INET6_ATON({ph})"
        if col.wrap == "ts" and not self.since_epoch:
            return self.ts(ph)
        return ph

    # --- connections ----------------------------------------------------------------
    def connect(self):
        raise NotImplementedError

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:
                pass
        self.conn = None

    def table_exists(self, cur, table: str) -> bool:
        raise NotImplementedError

    def begin(self, cur, table: str) -> None:
        cur.execute("BEGIN")

    def commit(self, cur, table: str) -> None:
        self.conn.commit()

    def rollback(self) -> None:
        try:
            self.conn.rollback()
        except Exception:
            pass

    # --- statements -----------------------------------------------------------------
    def statements(self, layout: Layout, table: str):
        t = self.qt(table)
        ph = self.ph
        sets = []
        if layout.counters:
            sets = [f"packets=packets+{ph}", f"bytes=bytes+{ph}"]
            if layout.flows:
                sets.append(f"flows=flows+{ph}")
            if layout.tcp_flags_set:
                sets.append(f"tcp_flags=tcp_flags|{ph}")
        if layout.log_times:
            sets.append(f"stamp_updated={self.value_expr_stamp()}")
        elif layout.history:
            sets.append(f"stamp_updated={self.now_expr()}")
        where = [f"{c.name}={self.value_expr(c)}" for c in layout.key_columns]
        if layout.history:
            where.append(f"stamp_inserted={self.value_expr_stamp()}")
        # events (no counters, no history): nothing to update, pmacct inserts them
        update = None if not sets else f"UPDATE {t} SET {', '.join(sets)}" + (
            f" WHERE {' AND '.join(where)}" if where else "")
        vals = [self.value_expr(c) for c in layout.columns]
        if layout.history:
            vals += [self.value_expr_stamp(), self.value_expr_stamp()]
        if layout.counters:
            vals += [ph, ph] + ([ph] if layout.flows else [])
        insert_head = f"INSERT INTO {t} ({', '.join(layout.insert_names)}) VALUES "
        row = "(" + ", ".join(vals) + ")"
        return update, insert_head, row

    def value_expr_stamp(self) -> str:
        return self.ph if self.since_epoch else self.ts(self.ph)

    # --- writing --------------------------------------------------------------------
    row_errors: tuple = ()       # errors that only concern the row (bad value, duplicate)

    def write(self, layout: Layout, table: str, cols: dict, *, dont_try_update: bool,
              multi_values: int = 0, now: int | None = None, schema: str | None = None):
        """Write one table's rows in one transaction. Returns (updated, inserted,
        rejected): ``rejected`` are the indices of rows the database refused one by one
        (a value too long for its column...), which the caller keeps elsewhere; any
        other failure rolls the whole table back and raises SqlWriteError."""
        now = int(time.time()) if now is None else now
        n = len(cols["packets"])
        if n == 0:
            return 0, 0, []
        if self.conn is None:
            self.connect()
        try:
            try:
                return self._write(layout, table, cols, dont_try_update, multi_values, now,
                                   schema, careful=False)
            except self.row_errors:
                # some row is refused: redo the table a row at a time, keeping the rest
                self.rollback()
                self.unlock_quietly()
                return self._write(layout, table, cols, dont_try_update, 0, now, schema,
                                   careful=True)
        except self.module_errors as e:
            self.rollback()
            self.unlock_quietly()
            self.close()
            raise SqlWriteError(str(e)) from None

    def unlock_quietly(self) -> None:
        try:
            cur = self.conn.cursor()
            self.unlock(cur)
            cur.close()
        except Exception:
            pass

    def _write(self, layout, table, cols, dont_try_update, multi_values, now, schema,
               careful: bool):
        n = len(cols["packets"])
        cur = self.conn.cursor()
        rejected = []
        try:
            if schema is not None and not self.table_exists(cur, table):
                self.create_table(cur, schema)
            update, insert_head, row = self.statements(layout, table)
            key_names = [c.name for c in layout.key_columns]
            col_names = [c.name for c in layout.columns]
            ins_rows = _rows(cols, col_names, layout, now)
            self.begin(cur, table)
            updated = 0
            todo = list(range(n))
            if not careful and not dont_try_update and update is not None:
                done = self.upsert(cur, layout, table, insert_head, row, ins_rows)
                if done is not None:
                    self.commit(cur, table)
                    return done, n - done, []
            if not dont_try_update and update is not None:
                set_rows = _set_rows(cols, layout)
                where_rows = _where_rows(cols, key_names, layout)
                todo = []
                bulk = None if careful else self.bulk_update(cur, layout, table, set_rows,
                                                             where_rows)
                if bulk is not None:
                    todo = bulk
                    updated = n - len(bulk)
                for i in (range(n) if bulk is None else ()):
                    if careful:
                        ok, count = self._guarded(cur, update, set_rows[i] + where_rows[i])
                        if not ok:
                            rejected.append(i)
                            continue
                    else:
                        cur.execute(update, set_rows[i] + where_rows[i])
                        count = cur.rowcount
                    if count == 0:
                        todo.append(i)
                    else:
                        updated += 1
            inserted = 0
            if careful:
                for i in todo:
                    ok, _ = self._guarded(cur, insert_head + row, ins_rows[i])
                    if ok:
                        inserted += 1
                    else:
                        rejected.append(i)
            elif todo:
                rows = ins_rows if len(todo) == n else [ins_rows[i] for i in todo]
                self.insert(cur, layout, table, insert_head, row, rows, multi_values, now)
                inserted = len(rows)
            self.commit(cur, table)
            return updated, inserted, sorted(rejected)
        finally:
            try:
                cur.close()
            except Exception:
                pass

    def bulk_update(self, cur, layout, table, set_rows, where_rows):
        """UPDATE many rows in one statement and return the indices of those that
        matched no row, or None where the engine cannot (one UPDATE per row then)."""
        return None

    def upsert(self, cur, layout, table, insert_head, row, ins_rows):
        """UPDATE-then-INSERT of all rows as one statement where the engine can do it
        with the same result; returns how many rows were updated, or None."""
        return None

    def _guarded(self, cur, sql, params):
        """One statement that may be refused on its own: (ok, rowcount)."""
        try:
            cur.execute(sql, params)
            return True, cur.rowcount
        except self.row_errors as e:
            if self.log:
                self.log.limited("sql-row", f"row refused by the database: {e}")
            return False, 0

    def unlock(self, cur) -> None:
        pass

    def insert(self, cur, layout, table, insert_head, row, rows, multi_values, now):
        if multi_values:
            per = max(1, multi_values // max(1, _row_len(rows[0])))
            for a in range(0, len(rows), per):
                chunk = rows[a:a + per]
                sql = insert_head + ", ".join([row] * len(chunk))
                cur.execute(sql, [v for r in chunk for v in r])
        else:
            cur.executemany(insert_head + row, rows)

    def create_table(self, cur, schema: str) -> None:
        for stmt in _split_statements(schema):
            cur.execute(stmt)
        self.conn.commit()


def _multi_row(cur, head: str, row: str, rows, tail: str = "", per: int = 500) -> int:
    """Multi-row statements of ``per`` rows each; returns the summed rowcount."""
    total = 0
    for a in range(0, len(rows), per):
        chunk = rows[a:a + per]
        cur.execute(head + ", ".join([row] * len(chunk)) + tail,
                    [v for r in chunk for v in r])
        total += max(0, int(cur.rowcount))
    return total


def _row_len(r) -> int:
    return sum(len(str(v)) + 3 for v in r) + 2


def _split_statements(text: str) -> list[str]:
    out = []
    for part in text.split(";"):
        lines = [ln for ln in part.splitlines() if not ln.strip().startswith("--")]
        s = "\n".join(lines).strip()
        if s:
            out.append(s)
    return out


def _set_rows(cols, layout):
    parts = []
    if layout.counters:
        parts = [cols["packets"], cols["bytes"]]
        if layout.flows:
            parts.append(cols["flows"])
        if layout.tcp_flags_set:
            parts.append(cols["tcp_flags"])
    if layout.log_times:
        parts.append(cols["stamp_updated"])
    if not parts:
        return [[] for _ in cols["packets"]]
    return [list(t) for t in zip(*parts)]


def _where_rows(cols, key_names, layout):
    parts = [cols[k] for k in key_names]
    if layout.history:
        parts.append(cols["stamp_inserted"])
    if not parts:
        return [[] for _ in cols["packets"]]
    return [list(t) for t in zip(*parts)]


def _rows(cols, col_names, layout, now):
    parts = [cols[k] for k in col_names]
    n = len(cols["packets"])
    if layout.history:
        parts += [cols.get("stamp_updated") or [now] * n, cols["stamp_inserted"]]
    if layout.counters:
        parts += [cols["packets"], cols["bytes"]]
        if layout.flows:
            parts.append(cols["flows"])
    return [tuple(t) for t in zip(*parts)]


# ------------------------------------------------------------------------------------
class SQLiteEngine(Engine):
    name = "sqlite3"
    ph = "?"

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        import sqlite3
        self.module_errors = (sqlite3.Error,)
        self.row_errors = (sqlite3.IntegrityError, sqlite3.DataError)
        self._sqlite3 = sqlite3

    def ts(self, expr):
        return f"DATETIME({expr}, 'unixepoch')" if self.utc else \
            f"DATETIME({expr}, 'unixepoch', 'localtime')"

    def now_expr(self):
        if self.since_epoch:
            return "STRFTIME('%s', 'now')"
        return "DATETIME('now')" if self.utc else "DATETIME('now', 'localtime')"

    def connect(self):
        try:
            self.conn = self._sqlite3.connect(self.params.db, timeout=self.params.connect_timeout,
                                              isolation_level=None)
            # pmacct's sql_num_hosts statements call INET6_ATON, which SQLite lacks
            self.conn.create_function("INET6_ATON", 1, _inet6_aton, deterministic=True)
        except self._sqlite3.Error as e:
            raise SqlWriteError(str(e)) from None
        return self.conn

    def table_exists(self, cur, table):
        cur.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (table,))
        return cur.fetchone() is not None

    def begin(self, cur, table):
        # take the write lock up front: two writers of one file then queue up instead
        # of deadlocking on a lock upgrade
        cur.execute("BEGIN IMMEDIATE")

    def commit(self, cur, table):
        cur.execute("COMMIT")

    def rollback(self):
        try:
            self.conn.execute("ROLLBACK")
        except Exception:
            pass

    def create_table(self, cur, schema):
        for stmt in _split_statements(schema):
            cur.execute(stmt)


def _found_rows() -> int:
    from MySQLdb.constants import CLIENT
    return CLIENT.FOUND_ROWS


class MySQLEngine(Engine):
    name = "mysql"
    ph = "%s"

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        import MySQLdb
        self._db = MySQLdb
        self.module_errors = (MySQLdb.Error,)
        self.row_errors = (MySQLdb.DataError, MySQLdb.IntegrityError)
        self._locked = False

    def qt(self, table):
        return f"`{table}`"

    def ts(self, expr):
        return f"FROM_UNIXTIME({expr})"

    def now_expr(self):
        return "UNIX_TIMESTAMP(NOW())" if self.since_epoch else "NOW()"

    def connect(self):
        p = self.params
        kw = dict(user=p.user, passwd=p.passwd, db=p.db, connect_timeout=p.connect_timeout,
                  client_flag=_found_rows(), charset="utf8mb4")
        host = p.host or "localhost"
        if host.startswith("unix:"):
            kw["unix_socket"] = host[5:]
            kw["host"] = "localhost"
        else:
            kw["host"] = host
            if p.port:
                kw["port"] = int(p.port)
        if p.ca_file:
            kw["ssl"] = {"ca": p.ca_file}
        try:
            self.conn = self._db.connect(**kw)
            self.conn.autocommit(False)
        except self._db.Error as e:
            raise SqlWriteError(str(e)) from None
        return self.conn

    def table_exists(self, cur, table):
        cur.execute("SHOW TABLES LIKE %s", (table,))
        return cur.fetchone() is not None

    UPSERT_MIN = 64

    def upsert(self, cur, layout, table, insert_head, row, ins_rows):
        """INSERT ... ON DUPLICATE KEY UPDATE adds to an existing row exactly what the
        UPDATE would have when the primary key is the UPDATE's key columns (pmacct's
        default tables; stamp_inserted is part of it and constant without history)."""
        if len(ins_rows) < self.UPSERT_MIN or not layout.counters:
            return None
        cur.execute(f"SHOW KEYS FROM {self.qt(table)} WHERE Key_name = 'PRIMARY'")
        pk = {r[4] for r in cur.fetchall()}
        want = {c.name for c in layout.key_columns}
        if not pk or pk - {"stamp_inserted"} != want or (layout.history and
                                                           "stamp_inserted" not in pk):
            return None
        sets = ["packets=packets+VALUES(packets)", "bytes=bytes+VALUES(bytes)"]
        if layout.flows:
            sets.append("flows=flows+VALUES(flows)")
        if layout.tcp_flags_set:
            sets.append("tcp_flags=tcp_flags|VALUES(tcp_flags)")
        if layout.log_times:
            sets.append("stamp_updated=VALUES(stamp_updated)")
        elif layout.history:
            sets.append(f"stamp_updated={self.now_expr()}")
        affected = _multi_row(cur, insert_head, row, ins_rows,
                              " ON DUPLICATE KEY UPDATE " + ", ".join(sets))
        # affected rows: 1 per inserted row, 2 per updated one
        return max(0, affected - len(ins_rows))

    def insert(self, cur, layout, table, insert_head, row, rows, multi_values, now):
        if multi_values:
            return super().insert(cur, layout, table, insert_head, row, rows, multi_values,
                                  now)
        # (MySQLdb's executemany only joins rows whose VALUES hold nothing but %s)
        _multi_row(cur, insert_head, row, rows)

    def begin(self, cur, table):
        if self.locking_style == "table":
            cur.execute(f"LOCK TABLES {self.qt(table)} WRITE")
            self._locked = True
        else:
            cur.execute("START TRANSACTION")

    def commit(self, cur, table):
        self.conn.commit()
        self.unlock(cur)

    def unlock(self, cur):
        if self._locked:
            self._locked = False
            try:
                cur.execute("UNLOCK TABLES")
            except Exception:
                pass


class PgSQLEngine(Engine):
    name = "pgsql"
    ph = "%s"

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        import psycopg2
        self._db = psycopg2
        self.module_errors = (psycopg2.Error,)
        self.row_errors = (psycopg2.DataError, psycopg2.IntegrityError)

    def ts(self, expr):
        return f"to_timestamp({expr})::Timestamp without time zone"

    def now_expr(self):
        return "DATE_PART('epoch',NOW())::BIGINT" if self.since_epoch else "CURRENT_TIMESTAMP(0)"

    def connect(self):
        p = self.params
        kw = dict(dbname=p.db, user=p.user, password=p.passwd, connect_timeout=p.connect_timeout)
        if p.host:
            kw["host"] = p.host
        if p.port:
            kw["port"] = int(p.port)
        if p.ca_file:
            kw["sslrootcert"] = p.ca_file
            kw["sslmode"] = "verify-full"
        try:
            self.conn = self._db.connect(**kw)
        except self._db.Error as e:
            raise SqlWriteError(str(e)) from None
        return self.conn

    def table_exists(self, cur, table):
        cur.execute("SELECT to_regclass(%s)", (table,))
        r = cur.fetchone()
        self.conn.commit()
        return r is not None and r[0] is not None

    def begin(self, cur, table):
        # psycopg2 opens the transaction itself on the first statement
        if self.locking_style == "table":
            cur.execute(f"LOCK {self.qt(table)} IN EXCLUSIVE MODE")

    BULK_MIN = 64

    def _column_types(self, cur, table):
        cur.execute("SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
                    "WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped",
                    (table,))
        return dict(cur.fetchall())

    def bulk_update(self, cur, layout, table, set_rows, where_rows):
        """One UPDATE ... FROM (VALUES ...) RETURNING per 1000 rows: the rows it returns
        matched, the others are inserted. Two aggregates with the same columns in one
        purge make the INSERT hit the primary key; the table is then written again a row
        at a time (careful mode), which gives the per-row result."""
        n = len(set_rows)
        if n < self.BULK_MIN:
            return None
        from psycopg2.extras import execute_values
        types = self._column_types(cur, table)
        keys = layout.key_columns
        if any(c.name not in types for c in keys):
            return None
        sets, names, tmpl = [], ["pypm_i"], ["%s::bigint"]
        if layout.counters:
            for name in ["packets", "bytes"] + (["flows"] if layout.flows else []):
                sets.append(f"{name}=t.{name}+v.pypm_{name}")
                names.append(f"pypm_{name}")
                tmpl.append("%s::bigint")
            if layout.tcp_flags_set:
                sets.append("tcp_flags=t.tcp_flags|v.pypm_tcp_flags")
                names.append("pypm_tcp_flags")
                tmpl.append(f"%s::{types.get('tcp_flags', 'integer')}")
        if layout.log_times:
            sets.append("stamp_updated=v.pypm_su")
            names.append("pypm_su")
            tmpl.append(self.value_expr_stamp())
        elif layout.history:
            sets.append(f"stamp_updated={self.now_expr()}")
        where = []
        for j, c in enumerate(keys):
            names.append(f"pypm_k{j}")
            tmpl.append(self.value_expr(c) if c.wrap == "ts" and not self.since_epoch
                        else f"%s::{types[c.name]}")
            where.append(f"t.{c.name}=v.pypm_k{j}")
        if layout.history:
            names.append("pypm_si")
            tmpl.append(f"({self.value_expr_stamp()})::{types.get('stamp_inserted', 'timestamp')}")
            where.append("t.stamp_inserted=v.pypm_si")
        if not sets:
            return None
        sql = (f"UPDATE {self.qt(table)} AS t SET {', '.join(sets)} FROM (VALUES %s) AS "
               f"v({', '.join(names)})" + (f" WHERE {' AND '.join(where)}" if where else "") +
               " RETURNING v.pypm_i")
        rows = [[i] + set_rows[i] + where_rows[i] for i in range(n)]
        matched = execute_values(cur, sql, rows, template="(" + ", ".join(tmpl) + ")",
                                 page_size=1000, fetch=True)
        hit = np.zeros(n, dtype=bool)
        if matched:
            hit[np.fromiter((r[0] for r in matched), dtype=np.int64, count=len(matched))] = True
        return np.flatnonzero(~hit).tolist()

    def _guarded(self, cur, sql, params):
        # a refused statement aborts a PostgreSQL transaction: fence it with a savepoint
        cur.execute("SAVEPOINT pypm_row")
        try:
            cur.execute(sql, params)
            count = cur.rowcount
            cur.execute("RELEASE SAVEPOINT pypm_row")
            return True, count
        except self.row_errors as e:
            cur.execute("ROLLBACK TO SAVEPOINT pypm_row")
            if self.log:
                self.log.limited("sql-row", f"row refused by the database: {e}")
            return False, 0

    def insert(self, cur, layout, table, insert_head, row, rows, multi_values, now):
        if self.use_copy:
            self._copy(cur, layout, table, rows)
            return
        if multi_values:
            return super().insert(cur, layout, table, insert_head, row, rows, multi_values, now)
        from psycopg2.extras import execute_values
        # multi-row VALUES, 1000 rows a statement: one round trip instead of 1000
        execute_values(cur, insert_head + "%s", rows, template=row, page_size=1000)

    def _copy(self, cur, layout, table, rows):
        d = self.delimiter
        ts_cols = {i for i, c in enumerate(layout.columns) if c.wrap == "ts"}
        nc = len(layout.columns)
        if layout.history:
            ts_cols |= {nc, nc + 1}
        buf = io.StringIO()
        for r in rows:
            out = []
            for i, v in enumerate(r):
                if i in ts_cols and not self.since_epoch:
                    v = _localtime_text(int(v), self.utc)
                out.append(_copy_escape(str(v), d))
            buf.write(d.join(out))
            buf.write("\n")
        buf.seek(0)
        names = ", ".join(layout.insert_names)
        cur.copy_expert(f"COPY {table} ({names}) FROM STDIN WITH DELIMITER '{d}'", buf)


def _inet6_aton(text):
    import ipaddress
    try:
        return ipaddress.ip_address(text).packed
    except ValueError:
        return None


def _localtime_text(t: int, utc: bool) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t) if utc else time.localtime(t))


def _copy_escape(s: str, d: str) -> str:
    return s.replace("\\", "\\\\").replace(d, "\\" + d).replace("\n", "\\n")


def make_engine(name: str, params: ConnParams, **kw) -> Engine:
    cls = {"sqlite3": SQLiteEngine, "mysql": MySQLEngine, "pgsql": PgSQLEngine}[name]
    return cls(params, **kw)


def default_db(engine: str) -> str:
    return "/tmp/pmacct.db" if engine == "sqlite3" else "pmacct"


def default_port(engine: str) -> int | None:
    return {"mysql": 3306, "pgsql": 5432}.get(engine)


__all__ = ["ENGINES", "ConnParams", "Engine", "SqlWriteError", "make_engine", "default_db",
           "default_port", "os"]
