"""nfacctd: the NetFlow v5/v9 and IPFIX collector."""
from __future__ import annotations

import time

from pypmacct.allow import AllowList
from pypmacct.record import RECORD_DTYPE, Batch
from pypmacct.runtime.process import console_script
from pypmacct.runtime.stats import Stats
from pypmacct.sources.savefile import SavefileSource
from pypmacct.sources.udp import UdpSource

from .common import Collector, run_daemon, wait_or_stop

DAEMON = "nfacctd"
MAX_DATAGRAMS = 512          # per batch read from a socket
SAVEFILE_DATAGRAMS = 2048    # per batch read from a savefile


class NetflowCollector(Collector):
    PROTO = "NetFlow/IPFIX"        # for log lines
    SAVEFILE_BATCH = SAVEFILE_DATAGRAMS

    def __init__(self, cfg, log, record_dtype=RECORD_DTYPE):
        super().__init__(cfg, log, record_dtype)
        self.stats = Stats()
        self.decoder = self._make_decoder(cfg, log, record_dtype)
        self.allow = None
        path = cfg.get("nfacctd_allow_file")
        if path:
            self.allow = AllowList.load(path, log=log)
        self.source = None
        self.raw = False   # tee plugins: hand over whole datagrams, decode nothing

    def _make_decoder(self, cfg, log, record_dtype):
        # imported here: sfacctd's collector (a subclass) never loads the NetFlow decoder
        from pypmacct.decoders import NetflowDecoder
        return NetflowDecoder(netflow_options(cfg, record_dtype), log=log, stats=self.stats)

    def open(self) -> None:
        cfg = self.cfg
        if cfg.get("pcap_savefile"):
            replay = int(cfg.get("pcap_savefile_replay"))
            self.source = SavefileSource(cfg.get("pcap_savefile"),
                                         wait=bool(cfg.get("pcap_savefile_wait")),
                                         delay=int(cfg.get("pcap_savefile_delay") or 0),
                                         replay=replay if replay > 0 else -1)
            self.log.info(f"reading {self.PROTO} data from: {cfg.get('pcap_savefile')}")
        else:
            ip = cfg.get("nfacctd_ip") or "::"
            port = int(cfg.get("nfacctd_port"))
            self.source = UdpSource(ip, port, rcvbuf=cfg.get("nfacctd_pipe_size"), log=self.log,
                                    ipv6_only=bool(cfg.get("nfacctd_ipv6_only")),
                                    mcast_groups=cfg.get("nfacctd_mcast_groups") or (),
                                    reader="process", title=self._reader_title())
            host, bound = self.source.address
            self.log.info(f"waiting for {self.PROTO} data on {host}:{bound}")

    def _reader_title(self) -> str:
        daemon = "sfacctd" if self.PROTO == "sFlow" else DAEMON
        return f"{daemon}: UDP Reader [{self.cfg.get('core_proc_name') or 'default'}]"

    def fds(self):
        return [self.source.fileno()] if isinstance(self.source, UdpSource) else []

    def _allowed(self, dgrams):
        if self.allow is not None and dgrams:
            ok = self.allow.allows_many([d.src for d in dgrams])
            if not ok.all():
                for d, good in zip(dgrams, ok.tolist()):
                    if not good:
                        self.stats.exporter(d.src).denied += 1
                dgrams = [d for d, good in zip(dgrams, ok.tolist()) if good]
        return dgrams

    def _decode(self, dgrams) -> Batch:
        return self.decoder.decode(self._allowed(dgrams))

    def _next(self, dgrams):
        return self._allowed(dgrams) if self.raw else self._decode(dgrams)

    def batches(self, core):
        if isinstance(self.source, SavefileSource):
            # the delay before each replay should end early on a stop signal
            self.source._sleep = lambda seconds: wait_or_stop(core, seconds)
            for dgrams in self.source.batches(self.SAVEFILE_BATCH):
                yield self._next(dgrams), True
                if core.stopping:
                    return
            if self.cfg.get("pcap_savefile_wait"):
                self.log.info("finished reading the savefile; waiting for a signal to exit")
                while not core.stopping:
                    wait_or_stop(core, 1.0)
            return
        while not core.stopping:
            dgrams = self.source.read(MAX_DATAGRAMS, timeout=0.5)
            yield self._next(dgrams), False

    @staticmethod
    def _extra_stats(c) -> str:
        """Per-exporter counters only this protocol has (NetFlow: data before template)."""
        return f" no_template={c.no_template}"

    def log_stats(self, log) -> None:
        port = 0 if self.cfg.get("pcap_savefile") else self.cfg.get("nfacctd_port")
        collector = f"{self.cfg.get('nfacctd_ip') or '0.0.0.0'}:{port}"
        now = int(time.time())
        for addr, c in sorted(self.stats.exporters.items()):
            log.notice(f"stats [{collector}] agent={addr} time={now} packets={c.datagrams} "
                       f"records={c.records} bad={c.bad_datagrams}{self._extra_stats(c)} "
                       f"seq_errors={c.seq_errors} denied={c.denied}")
        t = self.stats.totals()
        log.notice(f"stats [{collector}] time={now} discarded_packets={t.bad_datagrams}")

    def reload(self) -> None:
        if self.allow is not None:
            try:
                self.allow.reload()
                self.log.info("allow list reloaded")
            except OSError as e:
                self.log.warn(f"allow list not reloaded: {e}")

    def close(self) -> None:
        try:
            self.decoder.save_templates()
        finally:
            close = getattr(self.source, "close", None)
            if close is not None:
                close()


def netflow_options(cfg, record_dtype=RECORD_DTYPE) -> NetflowOptions:
    """The decoder's options from the nfacctd_* keys."""
    from pypmacct.decoders import CustomField, NetflowOptions
    return NetflowOptions(
        record_dtype=record_dtype,
        time_secs=bool(cfg.get("nfacctd_time_secs")),
        time_new=bool(cfg.get("nfacctd_time_new")),
        # with a sampling_map (and no external rate) the core's sampling stage
        # renormalises, by the map's rate first (pypmacct/maps/sampling.py)
        renormalize=bool(cfg.get("nfacctd_renormalize")) and not (
            cfg.get("sampling_map") and not cfg.get("nfacctd_ext_sampling_rate")),
        disable_checks=bool(cfg.get("nfacctd_disable_checks")),
        templates_file=cfg.get("nfacctd_templates_file"),
        ext_sampling_rate=int(cfg.get("nfacctd_ext_sampling_rate") or 0),
        use_ip_next_hop=bool(cfg.get("use_ip_next_hop")),
        account_options=bool(cfg.get("nfacctd_account_options")),
        disable_opt_scope_check=bool(cfg.get("nfacctd_disable_opt_scope_check")),
        collector_ip=cfg.get("nfacctd_ip") or "0.0.0.0",
        # aggregate_primitives some plugin uses (pypmacct/maps/custom_primitives.py)
        custom_fields=tuple(CustomField(cp.name, cp.field_type, cp.pen, cp.length,
                                        cp.semantics)
                            for cp in getattr(cfg, "custom_primitives", ())
                            if cp.name in (record_dtype.names or ())),
        # pmacct logs port 0 for a savefile
        collector_port=0 if cfg.get("pcap_savefile") else int(cfg.get("nfacctd_port")),
    )


def main(argv=None) -> int:
    return run_daemon(DAEMON, NetflowCollector, argv)


# the console script (setup.py): no interpreter teardown at exit
run = console_script(main)

if __name__ == "__main__":
    run()
