"""The SQL plugins: mysql, pgsql and sqlite3 (see docs/sql.md).

A purge turns the drained aggregates into one column list per SQL column (vectorised,
``pypmacct.sql.values``), splits them by table (dynamic ``sql_table`` names) and hands
them to a forked writer process, at most ``sql_max_writers`` at a time, so that a slow
or dead database never stops the plugin from reading its ring. A writer writes each
table in one transaction (UPDATE-then-INSERT, or INSERT only with
``sql_dont_try_update``). When the database refuses a table's rows the writer tries
``sql_recovery_backup_host``; failing that it hands the rows back to the plugin through
a spool file, and the plugin puts them back into its cache so that the next purge
retries them: nothing is dropped while the database is away. The shutdown purge is
written in-process; if the database is still unavailable then, the rows go to the
backup host or, failing that, to a recovery file that ``pmsqlplay`` replays.
"""
from __future__ import annotations

import dataclasses
import glob
import os
import pickle
import re
import shutil
import signal
import sys
import tempfile
import time

import numpy as np

from pypmacct.output.filenames import FileNamer
from pypmacct.cache import AggregationCache
from pypmacct.record import SAMPLE_EVENT, SAMPLE_OPTION, StringTable
from pypmacct.runtime.process import set_title
from pypmacct.runtime.writers import Writers
from pypmacct.sql import recovery
from pypmacct.sql.engines import (ConnParams, SqlWriteError, default_db, default_port,
                                  make_engine)
from pypmacct.sql.layout import SqlLayoutError, build_layout
from pypmacct.sql.preprocess import Preprocessor, PreprocessError
from pypmacct.sql.values import purge_columns
from pypmacct.timebins import UNIT_SECONDS

from .base import AggregatingPlugin, setting as _get

DEFAULT_CACHE_ENTRIES = 32771      # pmacct's sql_cache_entries default
DEFAULT_MAX_WRITERS = 10
EXIT_OK, EXIT_SPOOLED = 0, 3


class SqlConfigError(ValueError):
    """An SQL plugin configuration that cannot work (stops start-up)."""


class SqlPlugin(AggregatingPlugin):
    engine_name = ""
    refresh_key = "sql_refresh_time"
    history_key = "sql_history"
    roundoff_key = "sql_history_roundoff"
    offset_key = "sql_history_offset"
    startup_delay_key = "sql_startup_delay"
    cache_entries_key = "sql_cache_entries"

    def __init__(self, pcfg, ctx):
        super().__init__(pcfg, ctx)
        g = lambda k, d=None: _get(pcfg, k, d)   # noqa: E731
        self.version = int(g("sql_table_version", 1))
        self.optimize = bool(g("sql_optimize_clauses", False))
        self.num_protos = bool(g("sql_num_protos", False))
        self.sql_data = str(g("sql_data", "typed"))
        try:
            self.layout = build_layout(self.primitives, self.engine_name, self.version,
                                       g("sql_table_type"), self.optimize, self.num_protos,
                                       bool(g("sql_num_hosts", False)), self.sql_data,
                                       history=self.time_bins is not None)
        except SqlLayoutError as e:
            raise SqlConfigError(f"{self.name}/{self.type_name}: {e}") from None
        self.sql_log = bool(g("nfacctd_sql_log", False))
        if self.sql_log:
            self.layout.history = True
            self.layout.log_times = True
        self.count_flows = "flows" in self.primitives
        self.table = g("sql_table") or self.layout.table_default
        self.schema_path = g("sql_table_schema")
        self.schema_text = None
        if self.schema_path:
            try:
                with open(self.schema_path) as f:
                    self.schema_text = f.read()
            except OSError as e:
                raise SqlConfigError(f"{self.name}/{self.type_name}: sql_table_schema "
                                     f"'{self.schema_path}': {e.strerror}") from None
        self.dont_try_update = bool(g("sql_dont_try_update", False))
        self.multi_values = int(g("sql_multi_values", 0) or 0)
        if self.engine_name == "pgsql":
            self.multi_values = 0       # pmacct: MySQL and SQLite only
        self.use_copy = bool(g("sql_use_copy", False)) and self.engine_name == "pgsql" \
            and self.dont_try_update
        self.backup_host = g("sql_recovery_backup_host")
        self.logfile = g("sql_recovery_logfile")
        self.trigger = g("sql_trigger_exec")
        self.trigger_time = g("sql_trigger_time")
        entries = int(g("sql_cache_entries", DEFAULT_CACHE_ENTRIES) or DEFAULT_CACHE_ENTRIES)
        self.cache_limit = 0 if entries <= 0 else entries * 11
        self.max_writers = int(g("sql_max_writers", DEFAULT_MAX_WRITERS) or DEFAULT_MAX_WRITERS)
        history_secs = 0
        if self.time_bins is not None:
            tb = self.time_bins
            history_secs = tb.count * (86400 * 30 if tb.monthly else UNIT_SECONDS[tb.unit])
        self.namer = FileNamer(self.table, utc=self.utc, refresh_time=self.refresh_time,
                               history_secs=history_secs,
                               post_tag=int(g("post_tag", 0) or 0),
                               post_tag2=int(g("post_tag2", 0) or 0))
        self.schema_namer = FileNamer(self.schema_text, utc=self.utc,
                                      refresh_time=self.refresh_time,
                                      history_secs=history_secs) if self.schema_text else None
        try:
            self.preprocess = Preprocessor.from_config(g("sql_preprocess"),
                                                       g("sql_preprocess_type", "any"),
                                                       self.engine_name)
        except PreprocessError as e:
            raise SqlConfigError(f"{self.name}/{self.type_name}: {e}") from None
        self.conn_params = ConnParams(
            db=str(g("sql_db") or default_db(self.engine_name)),
            host=g("sql_host") or ("localhost" if self.engine_name != "sqlite3" else None),
            port=g("sql_port") or default_port(self.engine_name),
            user=str(g("sql_user") or "pmacct"),
            passwd=str(g("sql_passwd") if g("sql_passwd") is not None else "arealsmartpwd"),
            ca_file=g("sql_conn_ca_file"))
        since_epoch = bool(g("timestamps_since_epoch", False)) or \
            bool(g("sql_history_since_epoch", False))
        self.engine_kw = dict(utc=self.utc, since_epoch=since_epoch,
                              locking_style=str(g("sql_locking_style", "table")),
                              use_copy=self.use_copy, delimiter=str(g("sql_delimiter", ",")))
        self.writers = Writers(self.max_writers)
        self._retry: list = []
        self.spool_dir = None
        self._purges = 0

    def extra_key_fields(self) -> tuple:
        # nfacctd_sql_log: every flow's own start and end times go to the stamps
        if _get(self.cfg, "nfacctd_sql_log", False):
            return ("ts_start", "ts_end")
        return ()

    # ---- set-up --------------------------------------------------------------------
    def start(self) -> None:
        super().start()
        self.spool_dir = tempfile.mkdtemp(prefix=f"pypmacct-{self.name}-")
        self.log.info(f"cache entries={self.cfg.get('sql_cache_entries')}; table "
                      f"'{self.table}' (version {self.version}"
                      f"{', bgp' if self.layout.bgp else ''}"
                      f"{', optimised' if self.optimize else ''})")
        self._next_trigger = None
        if self.trigger and self.trigger_time:
            from pypmacct.timebins import TimeBins
            tb = TimeBins.from_config(self.trigger_time, None, 0, self.utc)
            tb.init(int(time.time()))
            self._trigger_bins = tb
            self._next_trigger = tb.bin_end(tb.base)

    def next_deadline(self):
        d = self._deadline
        if self._next_trigger is not None and (d is None or self._next_trigger < d):
            return self._next_trigger
        return d

    def on_deadline(self, now: float) -> None:
        if self._next_trigger is not None and now >= self._next_trigger:
            while self._next_trigger <= now:
                self._next_trigger = self._trigger_bins.bin_end(self._next_trigger)
            self._run_trigger()
        if self._deadline is not None and now >= self._deadline:
            super().on_deadline(now)

    def ingest(self, batch) -> None:
        super().ingest(batch)
        if self.writers:
            self.writers.reap()

    def on_cache_full(self) -> None:
        self.log.info("Finished cache entries (ie. sql_cache_entries). Purging.")
        self._purge(final=False)

    def finish(self) -> None:
        self.writers.wait_all()
        self._absorb_spool()
        self._purge(final=True)
        if self.spool_dir:
            self._absorb_spool()     # nothing should be left; keep what is
            left = glob.glob(os.path.join(self.spool_dir, "*.spool"))
            if not left:
                shutil.rmtree(self.spool_dir, ignore_errors=True)

    def _absorb_spool(self) -> int:
        """Collect the aggregates failed writers handed back. They were pre-processed
        already, so they skip sql_preprocess and join the next purge after it."""
        if not self.spool_dir:
            return 0
        total = 0
        for path in sorted(glob.glob(os.path.join(self.spool_dir, "*.spool"))):
            try:
                with open(path, "rb") as f:
                    keys, values, strings = pickle.load(f)
            except Exception as e:    # noqa: BLE001
                self.log.error(f"cannot read spool file {path}: {e!r}")
                continue
            self._retry.append((keys, values, strings))
            os.unlink(path)
            total += len(keys)
        if total:
            self.log.warn(f"holding {total} aggregates the database did not take; "
                          f"retrying them with this purge")
        return total

    def _merge_retry(self, keys, values, strings):
        """The purge's aggregates plus the held-back ones, equal keys summed."""
        if not self._retry:
            return keys, values, strings
        table = StringTable()
        for s_ in strings[1:]:
            table.intern(s_)
        cache = AggregationCache(self.keys.key_dtype, self.cache.ops)
        parts = [(keys, values, None)] + [(k, v, st) for k, v, st in self._retry]
        self._retry = []
        for k, v, st in parts:
            if len(k) == 0:
                continue
            if st is not None and self.keys.string_key_fields:
                k = k.copy()
                for f in self.keys.string_key_fields:
                    ids = np.unique(k[f])
                    lut = np.zeros(int(ids.max()) + 1, dtype=np.int32)
                    lut[ids] = [table.intern(st[i]) for i in ids.tolist()]
                    k[f] = lut[k[f]]
            cache.add(k, {c: a for c, a in v.items() if c in self.cache.ops})
        k, v = cache.drain()
        return k, v, table.strings

    def _requeue_with_strings(self, keys, values, strings) -> None:
        if len(keys) == 0:
            return
        if self.keys.string_key_fields:
            keys = keys.copy()
            for f in self.keys.string_key_fields:
                ids = np.unique(keys[f])
                lut = np.zeros(int(ids.max()) + 1, dtype=np.int32)
                lut[ids] = [self.strings.intern(strings[i]) for i in ids.tolist()]
                keys[f] = lut[keys[f]]
        self.cache.add(keys, values)

    # ---- purging -------------------------------------------------------------------
    def _purge(self, final: bool) -> None:
        self.writers.reap()
        self._absorb_spool()
        now = int(time.time())
        keys, values = self.cache.drain()
        strings = self.take_strings()
        pid = os.getpid()
        if len(keys) == 0 and not self._retry:
            self.log.info(f"*** Purging cache - START (PID: {pid}) ***")
            self.log.info(f"*** Purging cache - END (PID: {pid}, QN: 0/0, ET: 0) ***")
            if self.trigger and not self.trigger_time:
                self._run_trigger(None, {"total": 0, "effective": 0, "inserted": 0,
                                         "updated": 0, "elapsed": 0, "table": None})
            return
        recovered = None
        if self.preprocess is not None:
            r = self.preprocess.apply(values)
            values = r.values
            dropped = int(len(keys) - r.keep.sum())
            if r.recover.any():
                idx = np.flatnonzero(r.recover)
                recovered = (np.take(keys, idx), {k: np.take(v, idx) for k, v in values.items()})
            if dropped:
                self.log.info(f"sql_preprocess: {dropped} of {len(keys)} aggregates left out"
                              f"{' (to the recovery path)' if recovered else ''}")
                idx = np.flatnonzero(r.keep)
                keys = np.take(keys, idx)
                values = {k: np.take(v, idx) for k, v in values.items()}
        keys, values, strings = self._merge_retry(keys, values, strings)
        job = (keys, values, strings, now, recovered)
        self._purges += 1
        if final:
            self._write_job(job, in_process=True)
            return
        if self.writers.full():
            self.log.warn(f"Maximum number of writer processes reached ({len(self.writers)}); "
                          f"keeping {len(keys)} aggregates for the next purge")
            self._retry.append((keys, values, strings))
            if recovered is not None:
                self._recover_only(*recovered, strings, now)
            return
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            child = os.fork()
        except OSError as e:
            self.log.warn(f"Unable to fork writer: {e}; writing in the plugin process")
            self._write_job(job, in_process=True)
            return
        if child == 0:
            code = EXIT_OK
            try:
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
                set_title(f"{self.ctx.daemon}: {self.type_name} Plugin -- DB Writer [{self.name}]")
                code = self._write_job(job, in_process=False)
            except BaseException as e:   # noqa: BLE001 - a writer must always exit
                try:
                    self.log.error(f"writer failed: {e!r}")
                    self._spool(*job[:3])
                except Exception:
                    pass
                code = EXIT_SPOOLED
            finally:
                os._exit(code)
        self.writers.add(child, ())
        self._retry = []

    def _table_parts(self, keys, values, now: int):
        """(table, rows, layout) of a purge: by table, then flow aggregates apart from
        event and option ones, which pmacct writes without counters."""
        ft = values.get("flow_type")
        for table, rows in self._tables(keys, now):
            if ft is None:
                yield table, rows, self.layout
                continue
            sel = ft if rows is None else np.take(ft, rows)
            ev = (sel == SAMPLE_EVENT) | (sel == SAMPLE_OPTION)
            if not ev.any():
                yield table, rows, self.layout
                continue
            base = np.arange(len(keys)) if rows is None else np.asarray(rows)
            if (~ev).any():
                yield table, base[~ev], self.layout
            yield table, base[ev], dataclasses.replace(self.layout, counters=False)

    def _tables(self, keys, now: int):
        n = len(keys)
        if not self.namer.dynamic:
            return [(self.table, None)]
        if self.time_bins is not None:
            stamps = keys["stamp_inserted"].astype(np.int64)
            stamps = np.where(stamps == 0, now, stamps)
        else:
            stamps = np.full(n, now, dtype=np.int64)
        return self.namer.group(keys, stamps)

    def _schema_for(self, keys, rows, now: int):
        if self.schema_namer is None:
            return None
        i = int(rows[0]) if rows is not None and len(rows) else 0
        if self.time_bins is not None and len(keys):
            stamp = int(keys["stamp_inserted"][i]) or now
        else:
            stamp = now
        return self.schema_namer.name_for(keys, i, stamp)

    def _write_job(self, job, in_process: bool) -> int:
        keys, values, strings, now, recovered = job
        if recovered is not None:
            self._recover_only(*recovered, strings, now)
        pid = os.getpid()
        t0 = time.time()
        self.log.info(f"*** Purging cache - START (PID: {pid}) ***")
        if not self.count_flows:
            values = dict(values)
            values["flows"] = np.zeros(len(keys), dtype=np.uint64)
        failed_rows = []
        written = 0
        stats = {"total": len(keys) + (len(recovered[0]) if recovered is not None else 0),
                 "effective": len(keys), "inserted": 0, "updated": 0, "table": None}
        engine = make_engine(self.engine_name, self.conn_params, log=self.log, **self.engine_kw)
        backup = None
        for table, rows, layout in self._table_parts(keys, values, now):
            k, v = (keys, values) if rows is None else (
                np.take(keys, rows), {c: np.take(a, rows) for c, a in values.items()})
            cols = purge_columns(layout, k, v, strings, self.num_protos)
            schema = self._schema_for(keys, rows, now)
            try:
                upd, ins, rejected = engine.write(layout, table, cols,
                                                  dont_try_update=self.dont_try_update,
                                                  multi_values=self.multi_values, now=now,
                                                  schema=schema)
                stats["updated"] += upd
                stats["inserted"] += ins
                stats["table"] = stats["table"] or table
                written += len(k) - len(rejected)
                if rejected:
                    self._keep_rejected(table, cols, rejected, layout)
                continue
            except SqlWriteError as e:
                self.log.error(f"{self.engine_name} write to '{table}' failed: {e}")
            if self.backup_host:
                if backup is None:
                    backup = make_engine(self.engine_name, self._backup_params(), log=self.log,
                                         **self.engine_kw)
                try:
                    _, _, rejected = backup.write(layout, table, cols,
                                                  dont_try_update=self.dont_try_update,
                                                  multi_values=self.multi_values, now=now,
                                                  schema=schema)
                    if rejected:
                        self._keep_rejected(table, cols, rejected, layout)
                    self.log.warn(f"{len(k)} aggregates written to the recovery backup host "
                                  f"'{self.backup_host}' (table '{table}')")
                    written += len(k)
                    continue
                except SqlWriteError as e:
                    self.log.error(f"recovery backup host '{self.backup_host}': {e}")
            if self.logfile:
                try:
                    recovery.append(self.logfile, self._recovery_header(layout), table, cols)
                    self.log.warn(f"{len(k)} aggregates written to sql_recovery_logfile "
                                  f"'{self.logfile}' (table '{table}')")
                    written += len(k)
                    continue
                except OSError as e:
                    self.log.error(f"sql_recovery_logfile '{self.logfile}': {e.strerror}")
            failed_rows.append(np.arange(len(keys)) if rows is None else rows)
        engine.close()
        if backup is not None:
            backup.close()
        code = EXIT_OK
        if failed_rows:
            rows = np.sort(np.concatenate(failed_rows))
            fk = np.take(keys, rows)
            fv = {c: np.take(a, rows) for c, a in job[1].items()}
            if in_process:
                self._last_resort(fk, fv, strings, now)
            else:
                self._spool(fk, fv, strings)
                self.log.warn(f"{len(rows)} aggregates not written: handed back to the "
                              f"plugin, retried with the next purge")
            code = EXIT_SPOOLED
        et = int(time.time() - t0)
        self.log.info(f"*** Purging cache - END (PID: {pid}, QN: {written}/{len(keys)}, "
                      f"ET: {et}) ***")
        if self.trigger and not self.trigger_time:
            stats["elapsed"] = et
            self._run_trigger(now, stats)
        return code

    def _recover_only(self, keys, values, strings, now: int) -> None:
        """Aggregates sql_preprocess left out with 'recover': to the backup host or the
        recovery logfile (without either, they are dropped, as in pmacct)."""
        if not (self.backup_host or self.logfile):
            return
        if not self.count_flows:
            values = dict(values)
            values["flows"] = np.zeros(len(keys), dtype=np.uint64)
        for table, rows in self._tables(keys, now):
            k, v = (keys, values) if rows is None else (
                np.take(keys, rows), {c: np.take(a, rows) for c, a in values.items()})
            cols = purge_columns(self.layout, k, v, strings, self.num_protos)
            if self.backup_host:
                backup = make_engine(self.engine_name, self._backup_params(), log=self.log,
                                     **self.engine_kw)
                try:
                    backup.write(self.layout, table, cols, dont_try_update=self.dont_try_update,
                                 now=now, schema=self._schema_for(keys, rows, now))
                    continue
                except SqlWriteError as e:
                    self.log.error(f"recovery backup host '{self.backup_host}': {e}")
                finally:
                    backup.close()
            if self.logfile:
                recovery.append(self.logfile, self._recovery_header(), table, cols)

    def _keep_rejected(self, table: str, cols: dict, rejected, layout=None) -> None:
        """Rows the database refused one by one (a value its column cannot hold): they
        cannot be retried as they are, so they go to a recovery file for later replay."""
        path = self.logfile or os.path.join(tempfile.gettempdir(),
                                            f"pypmacct-{self.name}-rejected.recovery")
        sub = {c: [v[i] for i in rejected] for c, v in cols.items()}
        try:
            recovery.append(path, self._recovery_header(layout), table, sub)
            self.log.error(f"{len(rejected)} aggregates refused by table '{table}' saved "
                           f"to '{path}' (fix the table, then: pmsqlplay -f {path})")
        except OSError as e:
            self.log.error(f"{len(rejected)} aggregates refused by table '{table}' and "
                           f"not saved: {path}: {e.strerror}")

    def _spool(self, keys, values, strings) -> None:
        path = os.path.join(self.spool_dir, f"{time.time():.6f}-{os.getpid()}.spool")
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            pickle.dump((keys, values, strings), f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)

    def _last_resort(self, keys, values, strings, now: int) -> None:
        """Shutdown with the database (and any backup) unavailable: keep the rows in a
        recovery file that pmsqlplay can replay."""
        path = os.path.join(tempfile.gettempdir(),
                            f"pypmacct-{self.name}-{os.getpid()}-{now}.recovery")
        v = dict(values)
        if not self.count_flows:
            v["flows"] = np.zeros(len(keys), dtype=np.uint64)
        for table, rows, layout in self._table_parts(keys, v, now):
            k, vv = (keys, v) if rows is None else (
                np.take(keys, rows), {c: np.take(a, rows) for c, a in v.items()})
            recovery.append(path, self._recovery_header(layout), table,
                            purge_columns(layout, k, vv, strings, self.num_protos))
        self.log.error(f"database unavailable at shutdown: {len(keys)} aggregates saved to "
                       f"'{path}'; replay them with: pmsqlplay -f {path}")

    def _recovery_header(self, layout=None) -> dict:
        p = self.conn_params
        return {"engine": self.engine_name, "db": p.db, "host": p.host, "port": p.port,
                "user": p.user, "ca_file": p.ca_file,
                "layout": recovery.layout_to_dict(layout or self.layout),
                "dont_try_update": self.dont_try_update, "utc": self.utc,
                "since_epoch": self.engine_kw["since_epoch"]}

    def _backup_params(self) -> ConnParams:
        """The backup server: same database, user and port as the primary, on another
        host; 'host:port' (or '[v6]:port') also picks another port (our extension).
        For SQLite the value is the path of another database file, as in pmacct."""
        p = self.conn_params
        if self.engine_name == "sqlite3":
            return ConnParams(db=self.backup_host)
        host, port = split_host_port(self.backup_host, p.port)
        return ConnParams(db=p.db, host=host, port=port, user=p.user, passwd=p.passwd,
                          ca_file=p.ca_file)

    # ---- triggers --------------------------------------------------------------------
    def _run_trigger(self, now: int | None = None, stats: dict | None = None) -> None:
        """Run sql_trigger_exec with the environment docs/TRIGGER_VARS describes."""
        if not self.trigger:
            return
        now = int(time.time()) if now is None else now
        env = dict(os.environ)
        p = self.conn_params
        env.update({"SQL_DB": p.db, "SQL_TABLE": self.table, "SQL_USER": p.user,
                    "SQL_REFRESH_TIME": str(self.refresh_time),
                    "SQL_MAX_WRITERS": str(self.max_writers),
                    "SQL_ACTIVE_WRITERS": str(len(self.writers))})
        if p.host:
            env["SQL_HOST"] = p.host
        if self.namer.dynamic:
            env["EFFECTIVE_SQL_TABLE"] = (stats or {}).get("table") or \
                self.namer.name_for(np.zeros(0), None, now)
        if self.backup_host:
            env["SQL_RECOVERY_BACKUP_HOST"] = self.backup_host
        sr = _get(self.cfg, "sampling_rate")
        if sr:
            env["SAMPLING_RATE"] = str(sr)
        if self.time_bins is not None:
            env["SQL_HISTORY_BASETIME"] = str(int(self.time_bins.bin(np.array([now]))[0]))
            env["SQL_HISTORY_TIMESLOT"] = str(int(self.time_bins.timeslot or 0))
        if stats is not None and not self.trigger_time:
            env.update({"TOTAL_ELEM_NUMBER": str(stats["total"]),
                        "EFFECTIVE_ELEM_NUMBER": str(stats["effective"]),
                        "INSERT_QUERIES_NUMBER": str(stats["inserted"]),
                        "UPDATE_QUERIES_NUMBER": str(stats["updated"]),
                        "ELAPSED_TIME": str(stats["elapsed"])})
        try:
            pid = os.fork()
        except OSError as e:
            self.log.warn(f"cannot run sql_trigger_exec '{self.trigger}': {e}")
            return
        if pid == 0:
            try:
                if os.fork() == 0:
                    try:
                        os.execve(self.trigger, [self.trigger], env)
                    finally:
                        os._exit(127)
            finally:
                os._exit(0)
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass


class MySQLPlugin(SqlPlugin):
    type_name = "mysql"
    title = "MySQL Plugin"
    engine_name = "mysql"


class PgSQLPlugin(SqlPlugin):
    type_name = "pgsql"
    title = "PostgreSQL Plugin"
    engine_name = "pgsql"


class SQLite3Plugin(SqlPlugin):
    type_name = "sqlite3"
    title = "SQLite3 Plugin"
    engine_name = "sqlite3"

    def __init__(self, pcfg, ctx):
        super().__init__(pcfg, ctx)
        if self.engine_kw["locking_style"] not in ("table", None) and _get(pcfg,
                                                                            "sql_locking_style"):
            self.log.warn("sql_locking_style is not supported. Ignored.")


def split_host_port(value: str, default_port):
    m = re.fullmatch(r"\[([^\]]+)\]:(\d+)", value) or re.fullmatch(r"([^:]+):(\d+)", value)
    if m:
        return m.group(1), int(m.group(2))
    return value, default_port
