"""The print plugin: purges aggregates to stdout or to files as formatted text, CSV or
JSON, the way pmacct 1.7.7's print plugin does (see docs/print.md).

Each periodic purge is written by a forked writer process so that the plugin keeps
reading its ring; the shutdown purge is written in-process. A cache that fills up
(print_cache_entries) purges early; unlike 1.7.7, the interval's later writes to the
same file append to it instead of overwriting what the early purge wrote (see
docs/differences.md).
"""
from __future__ import annotations

import errno
import fcntl
import os
import signal
import stat
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from pypmacct.output import FormatterError, OutputOptions, make_formatter
from pypmacct.output.filenames import FileNamer, is_dynamic
from pypmacct.output.json import purge_close, purge_init
from pypmacct.runtime.process import set_title
from pypmacct.runtime.writers import Writers
from pypmacct.timebins import UNIT_SECONDS

from .base import AggregatingPlugin, setting as _get

DEFAULT_CACHE_ENTRIES = 16411      # pmacct's PRINT_CACHE_ENTRIES
CHAIN_DEPTH = 10                   # pmacct's AVERAGE_CHAIN_LEN: chained entries per bucket
DEFAULT_MAX_WRITERS = 10           # pmacct's DEFAULT_PLUGIN_COMMON_WRITERS_NO
TIMESTAMP_FIELDS_SECS = ("ts_start", "ts_end", "ts_arrival")   # timestamps_secs truncates


class PrintConfigError(ValueError):
    """A print plugin configuration that cannot work (stops start-up)."""


@dataclass
class Target:
    """One output of a purge: a file (or stdout when ``path`` is None) and its rows."""
    path: str | None
    rows: np.ndarray
    append: bool            # open for appending (no truncation)
    header: bool            # write the title line (decided at open time for files)
    continuation: bool = False   # appending because an early purge of this interval wrote it


@dataclass
class Purge:
    keys: np.ndarray
    values: dict
    strings: list
    total: int               # aggregates drained (held-back ones included), as QN's y
    urgent: bool             # cache-full purge: no latest-file link, no trigger
    started: float
    targets: list = field(default_factory=list)
    stdout_header: bool = False


class PrintPlugin(AggregatingPlugin):
    type_name = "print"
    title = "Print Plugin"
    refresh_key = "print_refresh_time"
    history_key = "print_history"
    roundoff_key = "print_history_roundoff"
    offset_key = "print_history_offset"
    startup_delay_key = "print_startup_delay"
    cache_entries_key = "print_cache_entries"

    def __init__(self, pcfg, ctx):
        super().__init__(pcfg, ctx)
        g = lambda k, d=None: _get(pcfg, k, d)   # noqa: E731
        self.output = str(g("print_output", "formatted")).lower()
        try:
            self.formatter = make_formatter(self.output, self.primitives, self.keys.key_dtype,
                                            OutputOptions.from_config(pcfg))
        except FormatterError as e:
            raise PrintConfigError(f"{self.name}/{self.type_name}: {e}") from None
        if g("print_preprocess"):
            raise PrintConfigError(f"{self.name}/{self.type_name}: print_preprocess is "
                                   f"implemented for the SQL plugins only so far")
        self.path = g("print_output_file") or None
        self.append = bool(g("print_output_file_append", False))
        self.latest = g("print_latest_file") or None
        self.markers = bool(g("print_markers", False))
        self.write_empty = bool(g("print_write_empty_file", False))
        self.lock_file = g("print_output_lock_file") or None
        self.trigger = g("print_trigger_exec") or None
        self.ts_secs = bool(g("timestamps_secs", False))
        self.files_uid = g("files_uid")
        self.files_gid = g("files_gid")
        self.time_new = bool(g("nfacctd_time_new", False))
        entries = int(g(self.cache_entries_key, 0) or 0) or DEFAULT_CACHE_ENTRIES
        self.cache_entries = entries
        # pmacct's cache is a hash of `entries` buckets with a shared pool of chained
        # entries (10 per bucket on average): that is how many aggregates it holds
        self.cache_limit = entries * (1 + CHAIN_DEPTH)
        if not self.path and g("daemonize", False):
            raise PrintConfigError(
                f"{self.name}/{self.type_name}: no print_output_file defined and "
                f"'daemonize: true'. Output would be lost.")
        history_secs = 0
        if self.time_bins is not None:      # $hst: a month counts as 30 days, as in pmacct
            tb = self.time_bins
            history_secs = tb.count * (86400 * 30 if tb.monthly else UNIT_SECONDS[tb.unit])
        self.namer = FileNamer(self.path, utc=self.utc, refresh_time=self.refresh_time,
                               history_secs=history_secs,
                               post_tag=int(g("post_tag", 0) or 0),
                               post_tag2=int(g("post_tag2", 0) or 0)) if self.path else None
        self.latest_disabled = False
        if self.path and self.latest and not is_dynamic(self.path) and is_dynamic(self.latest):
            self.latest_disabled = True
        self.writers = Writers(int(g("print_max_writers", DEFAULT_MAX_WRITERS)
                                   or DEFAULT_MAX_WRITERS))
        self._stdout_header = True        # stdout: title once per process
        self._interval_files: set = set()   # files early purges wrote since the last purge
        self._basetime = 0                 # pmacct's current time bin, advanced lazily
        self._new_basetime = 0             # the bin before it, after a roll-over

    # ---- set-up ------------------------------------------------------------------
    def start(self) -> None:
        super().start()
        self.log.info(f"cache entries={self.cache_entries} (up to {self.cache_limit} "
                      f"aggregates before an early purge)")
        if self.formatter.json:
            self.log.info("JSON: setting object handlers.")
        if not self.path and not self.lock_file:
            self.log.warn("no print_output_file and no print_output_lock_file defined.")
        if self.latest_disabled:
            self.log.warn("Disabling print_latest_file due to non-dynamic print_output_file.")
        if self.time_bins is not None:
            self._basetime = self.time_bins.base
            self._new_basetime = 0

    # ---- data path -----------------------------------------------------------------
    def ingest(self, batch) -> None:
        if self.ts_secs:
            rec = batch.records
            names = rec.dtype.names or ()
            fields = [f for f in TIMESTAMP_FIELDS_SECS if f in names]
            if fields:
                if not rec.flags.writeable:
                    rec = rec.copy()
                    batch.records = rec
                for f in fields:
                    rec[f] -= rec[f] % 1_000_000
        super().ingest(batch)
        if self.writers.running:
            self.writers.reap()

    def on_cache_full(self) -> None:
        self.log.info("Finished cache entries (ie. print_cache_entries). Purging.")
        self._purge(final=False, urgent=True)

    def finish(self) -> None:
        self._purge(final=True)
        self.writers.wait_all()

    # ---- purging ---------------------------------------------------------------------
    def _advance_time_reference(self, now: int) -> None:
        """pmacct's P_update_time_reference: move the current bin up to ``now``,
        remembering the one before it."""
        tb = self.time_bins
        while now > tb.bin_end(self._basetime):
            self._new_basetime = self._basetime
            self._basetime = tb.bin_end(self._basetime)

    def _hold_back(self, keys, values, now: int):
        """Keep aggregates of time bins newer than the one being committed in the cache
        (pmacct's P_cache_mark_flush): they are written by a later purge."""
        self._advance_time_reference(now)
        commit = self._new_basetime or self._basetime
        delay = 0
        sdelay = int(_get(self.cfg, self.startup_delay_key, 0) or 0)
        if sdelay and self.time_bins.timeslot:
            delay = (sdelay // self.time_bins.timeslot) * self.time_bins.timeslot
        held = keys["stamp_inserted"] + delay > commit
        if held.any():
            self.requeue(*_select(keys, values, np.flatnonzero(held)))
            keys, values = _select(keys, values, np.flatnonzero(~held))
        return keys, values

    def _purge(self, final: bool, urgent: bool = False) -> None:
        self.writers.reap()
        now = time.time()
        keys, values = self.cache.drain()
        strings = self.take_strings()
        total = len(keys)
        if self.time_bins is not None and not final:
            # an early (cache full) purge writes everything: holding aggregates back
            # would leave the cache full
            if total and not urgent:
                keys, values = self._hold_back(keys, values, int(now))
            else:
                self._advance_time_reference(int(now))
        if not urgent:
            self._new_basetime = 0
        job = Purge(keys, values, strings, total, urgent, now)
        try:
            if total == 0 and not self.write_empty:
                pid = os.getpid()
                self.log.info(f"*** Purging cache - START (PID: {pid}) ***")
                self.log.info(f"*** Purging cache - END (PID: {pid}, QN: 0/0, ET: X) ***")
                return
            self._plan(job)
            self._dispatch(job, final)
        finally:
            if total:
                self._stdout_header = False
            if urgent:
                self._interval_files.update(t.path for t in job.targets if t.path)
            else:
                self._interval_files = set()

    def _plan(self, job: Purge) -> None:
        """Split the purge by output and decide how each output is opened."""
        n = len(job.keys)
        job.stdout_header = self._stdout_header
        if not self.path:
            job.targets = [Target(None, np.arange(n), True, self._stdout_header)]
            return
        if n == 0:
            name = self.namer.name_for(job.keys, None, int(job.started))
            groups = [(name, np.arange(0))]
        else:
            if self.time_bins is not None:
                stamps = job.keys["stamp_inserted"].astype(np.int64)
                stamps = np.where(stamps == 0, int(job.started), stamps)
            else:
                stamps = np.full(n, int(job.started), dtype=np.int64)
            single = (self.namer.time_only and self.time_new and self.time_bins is not None
                      and self.refresh_time == self.time_bins.timeslot)
            groups = self.namer.group(job.keys, stamps, single=single)
        for name, rows in groups:
            cont = name in self._interval_files
            job.targets.append(Target(name, rows, self.append or cont, True, cont))

    def _dispatch(self, job: Purge, final: bool) -> None:
        outputs = [t.path or "-" for t in job.targets]
        self.writers.wait_for(outputs)
        if final:
            self._write(job)
            return
        if self.writers.full():
            self.log.warn(f"Maximum number of writer processes reached "
                          f"({len(self.writers.running)}); writing in the plugin process")
            self._write(job)
            return
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            pid = os.fork()
        except OSError as e:
            self.log.warn(f"Unable to fork writer: {e}; writing in the plugin process")
            self._write(job)
            return
        if pid == 0:
            code = 0
            try:
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
                what = "Plugin -- Writer (urgent)" if job.urgent else "Plugin -- Writer"
                set_title(f"{self.ctx.daemon}: {self.type_name} {what} [{self.name}]")
                self._write(job)
            except BaseException as e:   # noqa: BLE001 - a writer must always exit
                try:
                    self.log.error(f"writer failed: {e!r}")
                except Exception:
                    pass
                code = 1
            finally:
                os._exit(code)
        self.writers.add(pid, outputs)

    # ---- writing (in a writer process, or in-process) ---------------------------------
    def _write(self, job: Purge) -> None:
        pid = os.getpid()
        self.log.info(f"*** Purging cache - START (PID: {pid}) ***")
        start = job.started
        qn = 0
        fmt = self.formatter
        for t in job.targets:
            out = self._open(t)
            if out is None:
                continue
            try:
                if self.markers:
                    out.write(self._start_marker(pid))
                if t.header:
                    h = fmt.header_bytes()
                    if h:
                        out.write(h)
                keys, values = _select(job.keys, job.values, t.rows)
                for chunk in fmt.render_chunks(keys, values, job.strings, now=time.time()):
                    out.write(chunk)
                qn += len(t.rows)
                if self.markers:
                    out.write(self._end_marker(pid, qn, job.total, int(time.time() - start)))
            finally:
                out.close()
            if t.path and self.latest and not self.latest_disabled and not job.urgent:
                self._link_latest(job, t)
        duration = int(time.time() - start)
        self.log.info(f"*** Purging cache - END (PID: {pid}, QN: {qn}/{job.total}, "
                      f"ET: {duration}) ***")
        if self.trigger and not job.urgent:
            spawn_detached(self.trigger, self.log)

    def _start_marker(self, pid: int) -> bytes:
        if self.formatter.json:
            return purge_init(self.name, pid)
        return f"--START ({pid})--\n".encode()

    def _end_marker(self, pid: int, qn: int, total: int, duration: int) -> bytes:
        if self.formatter.json:
            return purge_close(self.name, pid, qn, total, duration)
        return f"--END ({pid})--\n".encode()

    def _open(self, t: Target):
        if t.path is None:
            return _StdoutOutput(self.lock_file, self.log, self._fs_owner())
        try:
            _mkdirs_for(t.path, self._fs_owner())
        except OSError as e:
            self.log.error(f"[{t.path}] open_output_file(): cannot create its directory "
                           f"({e.strerror}); {len(t.rows)} aggregates not written")
            return None
        try:
            fh, created = open_output_file(t.path, t.append, self._fs_owner())
        except OSError as e:
            self.log.error(f"[{t.path}] open_output_file(): open() failed ({e.strerror}); "
                           f"{len(t.rows)} aggregates not written")
            return None
        if t.append and not created:
            t.header = False
        return fh

    def _fs_owner(self):
        return (int(self.files_uid) if self.files_uid not in (None, "") else -1,
                int(self.files_gid) if self.files_gid not in (None, "") else -1)

    def _link_latest(self, job: Purge, t: Target) -> None:
        if self.namer.dynamic and len(t.rows):
            psi, tag, tag2 = self.namer._row_vars(job.keys, int(t.rows[0]))
        else:
            psi, tag, tag2 = None, 0, 0
        link = self.namer.substitute(self.latest, psi, tag, tag2)
        try:
            link_latest(link, t.path, self._fs_owner())
        except OSError as e:
            self.log.warn(f"[{link}] cannot update the latest-file link: {e}")


def _select(keys: np.ndarray, values: dict, rows: np.ndarray):
    """Keys and values of ``rows`` (ascending indices); all of them without a copy.
    ``np.take``: fancy indexing copies a structured dtype field by field, far slower."""
    n = len(keys)
    if len(rows) == n and (n == 0 or (rows[0] == 0 and rows[-1] == n - 1)):
        return keys, values
    return np.take(keys, rows), {k: np.take(v, rows) for k, v in values.items()}


# ---- files ----------------------------------------------------------------------------
class _FileOutput:
    def __init__(self, fh):
        self.fh = fh

    def write(self, data: bytes) -> None:
        self.fh.write(data)

    def close(self) -> None:
        self.fh.close()    # flushes, then releases the lock with the descriptor


class _StdoutOutput:
    """stdout, serialised through print_output_lock_file when one is configured."""

    def __init__(self, lock_path, log, owner):
        self.lock_fd = None
        if lock_path:
            try:
                self.lock_fd, _ = _open_locked(lock_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
                                               owner)
            except OSError:
                log.warn(f"Failed locking print_output_lock_file: {lock_path}")
        sys.stdout.flush()

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                n = os.write(1, view)
            except InterruptedError:
                continue
            view = view[n:]

    def close(self) -> None:
        if self.lock_fd is not None:
            os.close(self.lock_fd)
            self.lock_fd = None


def _mkdirs_for(path: str, owner) -> None:
    d = os.path.dirname(path)
    if d and not os.path.isdir(d):
        os.makedirs(d, exist_ok=True)
        if owner != (-1, -1):
            try:
                os.chown(d, *owner)
            except OSError:
                pass


def _open_locked(path: str, flags: int, owner):
    """Open ``path`` (creating its directories), chown it, and take pmacct's exclusive
    lock (lockf) on it. A FIFO is opened read-write so that opening never blocks.
    Returns (fd, created)."""
    _mkdirs_for(path, owner)
    created = not os.path.exists(path)
    try:
        st = os.stat(path)
        is_fifo = stat.S_ISFIFO(st.st_mode)
    except FileNotFoundError:
        is_fifo = False
    if is_fifo:
        fd = os.open(path, os.O_RDWR)
    else:
        fd = os.open(path, flags, 0o666)
    if owner != (-1, -1):
        try:
            os.chown(path, *owner)
        except OSError:
            pass
    if not is_fifo:
        while True:
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX)
                break
            except InterruptedError:
                continue
            except OSError as e:
                if e.errno in (errno.EINTR,):
                    continue
                break
    return fd, created


def open_output_file(path: str, append: bool, owner=(-1, -1)):
    """Open an output file as pmacct does ("w" or "a"); returns (writer, created)."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
    fd, created = _open_locked(path, flags, owner)
    return _FileOutput(os.fdopen(fd, "wb", buffering=1 << 20)), created


def link_latest(link: str, target: str, owner=(-1, -1)) -> None:
    """Point the symlink ``link`` at ``target`` unless it already points at a file
    modified later than ``target`` (pmacct's link_latest_output_file)."""
    _mkdirs_for(link, owner)
    if os.path.exists(link):
        try:
            current = os.readlink(link)
        except OSError:
            current = None
        cur_m = _mtime(current) if current else 0
        if _mtime(target) < cur_m:
            return
    try:
        os.unlink(link)
    except FileNotFoundError:
        pass
    os.symlink(target, link)
    if owner != (-1, -1):
        try:
            os.lchown(link, *owner)
        except OSError:
            pass


def _mtime(path) -> float:
    try:
        return int(os.stat(path).st_mtime)
    except OSError:
        return 0


def spawn_detached(path: str, log=None) -> None:
    """Run ``path`` with no arguments and without waiting for it (the print plugin's
    trigger): a short-lived intermediate child forks it, so no zombie is left."""
    try:
        pid = os.fork()
    except OSError as e:
        if log:
            log.warn(f"cannot run print_trigger_exec '{path}': {e}")
        return
    if pid == 0:
        try:
            if os.fork() == 0:
                try:
                    os.execv(path, [path])
                finally:
                    os._exit(127)
        finally:
            os._exit(0)
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass
