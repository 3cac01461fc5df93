"""What every collector daemon does around its own source and decoder.

``main()`` of a daemon module calls ``run_daemon`` with a ``Collector``: an object
that opens its source, turns what it reads into record batches and reports its
counters. The shared part handles the configuration (and -h/-V/-a), logging,
daemonizing, building and forking the plugins, the main loop and shutdown.
"""
from __future__ import annotations

import os
import sys
import time

from pypmacct.config import ConfigError, banner as config_banner, load_config
from pypmacct.runtime.core import Core
from pypmacct.runtime.log import SINK, Logger
from pypmacct.runtime.memory import tune_malloc
from pypmacct.runtime.process import daemonize
from pypmacct.runtime.stages import CoreStages
from pypmacct.plugins import PLUGIN_CLASSES
from pypmacct.plugins.base import PluginContext
from pypmacct.record import make_record_dtype, subset_dtype


# Record fields the core itself uses, whatever the plugins ask for.
CORE_FIELDS = ("arrival_seq",)


class Collector:
    """A daemon's source + decoder, built with ``(cfg, log, record_dtype)``:
    ``record_dtype`` holds the fields the plugins and the core need, and is what the
    collector's batches carry. ``batches()`` yields (Batch, wait) pairs until the source
    is exhausted or the core stops; ``wait`` tells the core to wait for ring space
    rather than drop (savefiles)."""

    def __init__(self, cfg, log, record_dtype):
        self.cfg, self.log, self.record_dtype = cfg, log, record_dtype

    def open(self) -> None:
        pass

    def batches(self, core: Core):
        raise NotImplementedError

    def fds(self) -> list[int]:
        return []

    def log_stats(self, log: Logger) -> None:
        pass

    def reload(self) -> None:
        pass

    def drain(self) -> list:
        """Batches still held back when the loop ends (pmacctd/uacctd's classifier
        holds the packets of flows not classified yet): dispatched before shutdown."""
        return []

    def close(self) -> None:
        pass


def build_plugins(cfg, ctx: PluginContext, log: Logger):
    plugins = []
    for pcfg in cfg.plugins:
        cls = PLUGIN_CLASSES.get(pcfg.type)
        if cls is None:
            raise ConfigError(f"plugin type '{pcfg.type}' is not available")
        plugins.append(cls(pcfg, ctx))
    return plugins


def run_daemon(daemon: str, make_collector, argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        cfg = load_config(daemon, argv)
    except ConfigError as e:
        if e.usage:
            sys.stderr.write(e.usage)
        sys.stderr.write(f"ERROR ( default/core ): {e}\n")
        return 1
    if cfg.action != "run":
        sys.stdout.write(cfg.text)
        sys.stdout.flush()
        return 0

    tune_malloc()   # batch-sized arrays reuse heap pages instead of faulting in new ones
    # pmacct creates every file (logs, pid files, outputs) with files_umask, 077 unless set
    os.umask(cfg.get("files_umask"))
    banner = config_banner(daemon)
    core_name = cfg.get("core_proc_name") or "default"
    log = Logger(core_name, "core")
    try:
        SINK.configure(logfile=cfg.get("logfile"), syslog_facility=cfg.get("syslog"),
                       debug=bool(cfg.get("debug")), ident=daemon,
                       utc=bool(cfg.get("timestamps_utc")))
    except (OSError, ValueError) as e:
        sys.stderr.write(f"ERROR ( {core_name}/core ): cannot set up logging: {e}\n")
        return 1
    log.info(banner)
    if cfg.config_file:
        log.info(f"Reading configuration file '{cfg.config_file}'.")
    for w in cfg.warnings:
        log.warn(w)

    # a collector may adjust the configuration to its source before plugins are built
    # (pmacctd drops MAC/VLAN primitives on link types without them, as pmacct does)
    adjust = getattr(make_collector, "adjust_config", None)
    if adjust is not None:
        adjust(cfg, log)
    try:
        ctx = PluginContext(daemon=daemon, pidfile=cfg.get("pidfile"),
                            record_dtype=make_record_dtype(
                                [(cp.name, cp.dtype) for cp in cfg.custom_primitives]))
        plugins = build_plugins(cfg, ctx, log)
        tee = any(getattr(p, "datagrams", False) for p in plugins)
        if tee and not all(getattr(p, "datagrams", False) for p in plugins):
            raise ConfigError("'tee' plugins are not compatible with data (memory/mysql/"
                              "pgsql/etc.) plugins: run two daemons, the replicator feeding "
                              "the collector")
        # filters and maps: compiled now, so a bad one stops start-up
        stages = CoreStages(cfg, plugins, daemon, log)
        if tee:
            from pypmacct.runtime.tee import check_tee_stages
            check_tee_stages(cfg, stages)
            fields = set(CORE_FIELDS)      # nothing is decoded
        else:
            # the core decodes only what some plugin, the core stages or the core need
            fields = set(CORE_FIELDS).union(stages.fields,
                                            *(p.wire_fields() for p in plugins))
        collector = make_collector(cfg, log, subset_dtype(ctx.record_dtype, fields))
        collector.raw = tee
    except (ConfigError, ValueError, KeyError) as e:
        log.error(str(e))
        return 1

    if cfg.get("daemonize"):
        daemonize()
    try:
        collector.open()
    except OSError as e:
        log.error(f"cannot open the source: {e}")
        return 1

    core = Core(daemon, cfg, collector.record_dtype, log, extra_fds=collector.fds())
    for p, ch_stages in zip(plugins, stages.channels):
        core.add_plugin(p, None if ch_stages.passthrough else ch_stages)
    core.stages = stages

    def on_reload():
        collector.reload()
        stages.reload()
    core.on_stats = collector.log_stats
    core.on_reload = on_reload
    teecore = None
    if tee:
        from pypmacct.runtime.tee import TeeCore
        opts = getattr(getattr(collector, "decoder", None), "opts", None)
        teecore = TeeCore(daemon, stages, getattr(collector, "stats", None), log, opts)
    core.start()

    try:
        for batch, wait in collector.batches(core):
            if teecore is not None:
                teecore.dispatch(core, batch, wait=wait)
            else:
                core.dispatch(batch, wait=wait)
            core.service()
            if core.stopping:
                break
        for batch in collector.drain():
            core.dispatch(batch, wait=True)
    finally:
        collector.close()
    return core.shutdown()


def wait_or_stop(core: Core, seconds: float) -> None:
    """Sleep, waking early when a stop signal arrives."""
    end = time.monotonic() + seconds
    while not core.stopping and time.monotonic() < end:
        time.sleep(min(0.1, end - time.monotonic()))
        core.service()
