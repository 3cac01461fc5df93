"""The core process: one ring and one forked process per plugin instance.

The daemon module owns the source and the decoder; it hands every decoded batch to
``Core.dispatch``, which applies each plugin's channel selection, projects the records
onto the fields that plugin needs and writes them into its ring. The core never waits
on a plugin when reading live traffic: a full ring drops and counts (and warns, rate
limited). ``Core.service`` acts on signals between batches; ``Core.shutdown`` ends the
streams, waits for the plugins to purge, and removes pid files.
"""
from __future__ import annotations

import os
import time

import numpy as np

from ..record import Batch, RECORD_DTYPE, STRING_FIELDS, project, subset_dtype
from ..ring import DatagramRing, Ring
from .log import SINK, Logger
from .plugin_host import run_plugin
from .process import plugin_pidfile, remove_pidfile, set_title, write_pidfile
from .signals import SignalFlags

DEFAULT_PIPE_SIZE = 4 * 1024 * 1024
DEFAULT_BUFFER_SIZE = 64 * 1024
SHUTDOWN_TIMEOUT = 300.0  # plugins purging big caches to slow backends may need a while
STOP_WAIT = 10.0          # after a stop signal, how long a savefile replay waits for ring space


class Channel:
    """The core's view of one plugin instance."""

    def __init__(self, plugin, ring: Ring, wire_dtype: np.dtype, stages=None):
        self.plugin = plugin
        self.stages = stages       # runtime.stages.ChannelStages: filters, own tags
        self.ring = ring
        self.wire_dtype = wire_dtype
        self.pid = 0
        self.alive = False
        self.sent_records = 0

    @property
    def label(self) -> str:
        return f"{self.plugin.name}/{self.plugin.type_name}"

    def select(self, batch: Batch) -> Batch:
        """Records this plugin takes (aggregate_filter, tag filters) with its own tags."""
        if self.stages is None:
            return batch
        return self.stages.select(batch)


class Core:
    def __init__(self, daemon: str, cfg, record_dtype: np.dtype = RECORD_DTYPE,
                 log: Logger | None = None, extra_fds=()):
        self.daemon = daemon
        self.cfg = cfg
        self.record_dtype = record_dtype
        self.log = log or Logger(cfg.get("core_proc_name") or "default", "core")
        self.flags = SignalFlags()
        self.channels: list[Channel] = []
        self.extra_fds = list(extra_fds)  # sockets etc. the children must not keep
        self.pidfile = cfg.get("pidfile")
        self.on_stats = None   # callable(log) the daemon sets to print its own counters
        self.on_reload = None  # callable() for SIGUSR2
        self._arrival_base = 0  # records dispatched so far: makes arrival_seq absolute
        self._stop_seen = None
        self.stages = None      # runtime.stages.CoreStages: core-wide stages (pre_tag_map)

    # ---- set-up -------------------------------------------------------------
    def add_plugin(self, plugin, stages=None) -> None:
        pcfg = plugin.cfg
        fields = plugin.wire_fields()
        wire = subset_dtype(self.record_dtype, fields)
        pipe = int(pcfg.get("plugin_pipe_size") or DEFAULT_PIPE_SIZE)
        buf = int(pcfg.get("plugin_buffer_size") or DEFAULT_BUFFER_SIZE)
        if buf > pipe:
            self.log.warn(f"plugin_buffer_size ({buf}) > plugin_pipe_size ({pipe}) for "
                          f"'{plugin.name}': using plugin_pipe_size for both")
            buf = pipe
        if getattr(plugin, "datagrams", False):     # tee: whole datagrams, not records
            if not pcfg.get("plugin_buffer_size"):
                buf = DatagramRing.FITS_ANY         # any UDP payload fits a slot
                pipe = max(pipe, 4 * buf)
            ring = DatagramRing(pipe, buf, name=plugin.name)
        else:
            ring = Ring(pipe, buf, wire, [f for f in fields if f in STRING_FIELDS],
                        name=plugin.name)
        self.log.debug(f"{plugin.name}/{plugin.type_name}: ring of {ring.nslots} slots x "
                       f"{ring.slot_size} bytes, {wire.itemsize} bytes per record")
        self.channels.append(Channel(plugin, ring, wire, stages))

    def start(self) -> None:
        """Fork the plugins, then become the core process."""
        core_name = self.log.name
        set_title(f"{self.daemon}: Core Process [{core_name}]")
        # handlers first: a signal sent as soon as the pid file exists must not kill us
        self.flags.install(child=True)
        if self.pidfile:
            write_pidfile(self.pidfile)
        for ch in self.channels:
            pid = os.fork()
            if pid == 0:  # plugin process
                self._become_plugin(ch)
            ch.pid = pid
            ch.alive = True
        for ch in self.channels:
            ch.ring.writer_side()

    def _become_plugin(self, ch: Channel) -> None:
        code = 1
        try:
            import signal
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            for other in self.channels:
                if other is ch:
                    other.ring.reader_side()
                else:
                    other.ring.close_fds()
            for fd in self.extra_fds:
                try:
                    os.close(fd)
                except OSError:
                    pass
            p = ch.plugin
            set_title(f"{self.daemon}: {p.title} [{p.name}]")
            pidfile = None
            if self.pidfile:
                pidfile = plugin_pidfile(self.pidfile, p.type_name, p.name)
                write_pidfile(pidfile)
            try:
                code = run_plugin(p, ch.ring, os.getppid())
            finally:
                remove_pidfile(pidfile)
        finally:
            os._exit(code)

    # ---- running ------------------------------------------------------------
    def dispatch(self, batch: Batch, wait: bool = False) -> None:
        if len(batch) == 0:
            return
        if "arrival_seq" in batch.records.dtype.names:
            batch.records["arrival_seq"] += np.uint64(self._arrival_base)
            self._arrival_base += len(batch)
        if self.stages is not None:
            batch = self.stages.apply(batch)
        for ch in self.channels:
            if not ch.alive:
                continue
            sel = ch.select(batch)
            if len(sel) == 0:
                continue
            wire = Batch(project(sel.records, ch.wire_dtype), sel.strings)
            dropped = ch.ring.write(wire, wait=(lambda ch=ch: self._still_alive(ch)) if wait
                                    else False)
            ch.sent_records += len(wire) - dropped
            if dropped:
                self.log.limited(
                    ("ring", ch.plugin.name),
                    f"plugin '{ch.label}' is not keeping up: {ch.ring.dropped_records} records "
                    f"dropped so far (plugin_buffer_size={ch.ring.slot_size}, plugin_pipe_size="
                    f"{ch.ring.slot_size * ch.ring.nslots}); consider raising plugin_pipe_size")

    def service(self) -> None:
        """Act on signals that arrived since the last call."""
        if self.flags.take("child"):
            self.reap()
        if self.flags.take("reopen_logs"):
            SINK.reopen()
        if self.flags.take("stats"):
            self.log_stats()
        if self.flags.take("reload") and self.on_reload:
            self.on_reload()

    @property
    def stopping(self) -> bool:
        return self.flags.stop

    def _still_alive(self, ch: Channel) -> bool:
        """While waiting for ring space: is the plugin still there to read it? After a
        stop signal the wait is bounded, so a plugin that stopped reading cannot keep
        the daemon from exiting (what is then dropped is counted)."""
        if ch.alive and self.flags.child:
            self.flags.child = False
            self.reap()
        if self.flags.stop:
            if self._stop_seen is None:
                self._stop_seen = time.monotonic()
            elif time.monotonic() - self._stop_seen > STOP_WAIT:
                return False
        return ch.alive

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            for ch in self.channels:
                if ch.pid == pid and ch.alive:
                    ch.alive = False
                    ch.ring.close_fds()
                    self.log.error(f"plugin '{ch.label}' (PID {pid}) exited unexpectedly "
                                   f"({_describe_status(status)}); its data is no longer collected")
        if self.channels and not any(ch.alive for ch in self.channels):
            self.log.error("all plugins are gone; exiting")
            self.flags.stop = True

    def log_stats(self) -> None:
        self.log.notice("+++")
        if self.on_stats:
            self.on_stats(self.log)
        for ch in self.channels:
            r = ch.ring
            self.log.notice(
                f"stats plugin={ch.label} pid={ch.pid} alive={str(ch.alive).lower()} "
                f"records_sent={ch.sent_records} records_dropped={r.dropped_records} "
                f"buffers_dropped={r.dropped_chunks} backlog={r.backlog()}")
        self.log.notice("---")

    def any_alive(self) -> bool:
        return any(ch.alive for ch in self.channels)

    # ---- shutdown -------------------------------------------------------------
    def shutdown(self, timeout: float = SHUTDOWN_TIMEOUT) -> int:
        """End every ring, wait for the plugins to purge and exit. Returns an exit code."""
        for ch in self.channels:
            ch.ring.close()
        deadline = time.monotonic() + timeout
        code = 0
        for ch in self.channels:
            if not ch.pid:
                continue
            status = _wait_pid(ch.pid, deadline)
            if status is None:
                self.log.error(f"plugin '{ch.label}' did not finish in {timeout:.0f}s; killing it")
                try:
                    os.kill(ch.pid, 9)
                    os.waitpid(ch.pid, 0)
                except OSError:
                    pass
                code = 1
            elif status != 0 and ch.alive:
                self.log.error(f"plugin '{ch.label}' exited with {_describe_status(status)}")
                code = 1
            ch.alive = False
        for ch in self.channels:
            if ch.ring.dropped_records:
                self.log.warn(f"plugin '{ch.label}': {ch.ring.dropped_records} records were "
                              f"dropped because its ring was full")
        remove_pidfile(self.pidfile)
        self.log.info("OK, Exiting ...")
        # nothing left to reload or report: a late SIGUSR1/SIGUSR2/SIGHUP must not turn a
        # clean exit into a kill (the interpreter drops its handlers while exiting)
        import signal
        for sig in (signal.SIGUSR1, signal.SIGUSR2, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        return code


def _wait_pid(pid: int, deadline: float):
    while True:
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return 0  # already reaped by the SIGCHLD path
        if done:
            return status
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.02)


def _describe_status(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by signal {os.WTERMSIG(status)}"
    if os.WIFEXITED(status):
        return f"exit code {os.WEXITSTATUS(status)}"
    return f"status {status}"
