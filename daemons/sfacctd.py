"""sfacctd: the sFlow v2/v4/v5 collector.

The same source handling as nfacctd (UDP on ``sfacctd_ip``/``sfacctd_port``, default
6343, or ``pcap_savefile``; ``sfacctd_allow_file``, ``sfacctd_pipe_size``), with the
sFlow decoder (``pypmacct.decoders.sflow``) in place of the NetFlow one. Counter samples
go to ``sfacctd_counter_file`` when it is set (``pypmacct.decoders.sflow_counters``).
"""
from __future__ import annotations

import time

from pypmacct.decoders.sflow import SflowDecoder, SflowOptions
from pypmacct.record import RECORD_DTYPE
from pypmacct.runtime.process import console_script

from .common import run_daemon
from .nfacctd import NetflowCollector

DAEMON = "sfacctd"


class SflowCollector(NetflowCollector):
    PROTO = "sFlow"
    # an sFlow datagram carries a few samples where a NetFlow one carries ~30 records:
    # 4096 datagrams (~22k samples) make a batch closer to a NetFlow one, so the
    # decoder's per-batch work is spread over as many records
    SAVEFILE_BATCH = 4096

    def __init__(self, cfg, log, record_dtype=RECORD_DTYPE):
        super().__init__(cfg, log, record_dtype)
        self.counters = None
        if cfg.get("sfacctd_counter_file"):
            from pypmacct.decoders.sflow_counters import CounterWriter
            self.counters = CounterWriter(cfg.get("sfacctd_counter_file"),
                                          cfg.get("sfacctd_counter_output") or "json", log)
            self.decoder.opts.counters = True

    def _make_decoder(self, cfg, log, record_dtype):
        return SflowDecoder(sflow_options(cfg, record_dtype), log=log, stats=self.stats)

    def _decode(self, dgrams):
        batch = super()._decode(dgrams)
        if self.counters is not None and self.decoder.counter_samples:
            self.counters.write(self.decoder, dgrams)
        return batch

    def log_stats(self, log) -> None:
        """SIGUSR1: 1.7.7's status table, one line per (agent, sub-agent id) that sent
        datagrams (count, bytes, sequence numbers in order / jumping forward / back),
        then the datagrams discarded as malformed."""
        port = 0 if self.cfg.get("pcap_savefile") else self.cfg.get("nfacctd_port")
        collector = f"{self.cfg.get('nfacctd_ip') or '0.0.0.0'}:{port}"
        now = int(time.time())
        for (agent, sub), (n, nbytes, good, fwd, bck) in sorted(
                self.decoder.agent_status.items()):
            if n and nbytes:
                log.notice(f"stats [{collector}] agent={agent}:{sub} time={now} packets={n} "
                           f"bytes={nbytes} seq_good={good} seq_jmp_fwd={fwd} "
                           f"seq_jmp_bck={bck}")
        t = self.stats.totals()
        log.notice(f"stats [{collector}] time={now} discarded_packets={t.bad_datagrams}")

    def close(self) -> None:
        try:
            if self.counters is not None:
                self.counters.close()
        finally:
            close = getattr(self.source, "close", None)
            if close is not None:
                close()


def sflow_options(cfg, record_dtype=RECORD_DTYPE) -> SflowOptions:
    return SflowOptions(
        record_dtype=record_dtype,
        renormalize=bool(cfg.get("nfacctd_renormalize")),
        disable_checks=bool(cfg.get("nfacctd_disable_checks")),
        use_ip_next_hop=bool(cfg.get("use_ip_next_hop")),
        ext_sampling_rate=int(cfg.get("nfacctd_ext_sampling_rate") or 0),
        collector_ip=cfg.get("nfacctd_ip") or "0.0.0.0",
        collector_port=0 if cfg.get("pcap_savefile") else int(cfg.get("nfacctd_port")),
        packet_ptrs=tuple(cp for cp in getattr(cfg, "custom_primitives", ())
                          if cp.packet_ptrs),
    )


def main(argv=None) -> int:
    return run_daemon(DAEMON, SflowCollector, argv)


# the console script (setup.py): no interpreter teardown at exit
run = console_script(main)

if __name__ == "__main__":
    run()
