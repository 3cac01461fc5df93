"""uacctd: accounting of packets that Linux netfilter logs to an NFLOG group.

Packets come from ``pypmacct.sources.nflog`` (``uacctd_group``, ``snaplen`` as the copy
range, ``uacctd_nl_size``, ``uacctd_threshold``) and are decoded like pmacctd's, with the
input/output interfaces netfilter reports (physical ones first, as pmacct) and the MAC
addresses of the hardware header on Ethernet interfaces.
"""
from __future__ import annotations

import time

from pypmacct.classifiers import drop_class_without
from pypmacct.decoders.frames import FrameDecoder
from pypmacct.record import RECORD_DTYPE
from pypmacct.runtime.process import console_script
from pypmacct.sources.nflog import NflogSource

from .common import Collector, run_daemon
from .pmacctd import frame_options

DAEMON = "uacctd"


class NflogCollector(Collector):
    def __init__(self, cfg, log, record_dtype=RECORD_DTYPE):
        super().__init__(cfg, log, record_dtype)
        self.decoder = FrameDecoder(frame_options(cfg, record_dtype, log))
        self.decoder.log, self.decoder.progname = log, "uacctd"
        self.source = None

    @classmethod
    def adjust_config(cls, cfg, log) -> None:
        drop_class_without(cfg, log)

    def open(self) -> None:
        cfg = self.cfg
        group = int(cfg.get("uacctd_group") or 0)
        self.source = NflogSource(group, copy_range=int(cfg.get("snaplen")),
                                  nl_size=int(cfg.get("uacctd_nl_size")),
                                  threshold=int(cfg.get("uacctd_threshold")))
        self.log.info(f"Successfully connected Netlink NFLOG socket (group {group})")

    def fds(self):
        return [self.source.fileno()] if self.source is not None else []

    def batches(self, core):
        seen = 0
        while not core.stopping:
            batch = self.decoder.decode(self.source.read())
            if self.source.overruns != seen:
                seen = self.source.overruns
                self.log.limited(("enobufs",), "NFLOG: the kernel dropped packets for us "
                                 f"(ENOBUFS, {seen} times so far); raise uacctd_nl_size or "
                                 "uacctd_threshold", level="WARN")
            yield batch, False

    def drain(self) -> list:
        return [self.decoder.flush()]

    def log_stats(self, log) -> None:
        s = self.source
        log.notice(f"stats time={int(time.time())} packets={s.received} messages={s.messages} "
                   f"bad={s.bad} overruns={s.overruns} skipped={self.decoder.skipped}")

    def close(self) -> None:
        if self.source is not None:
            self.source.sock.close()


def main(argv=None) -> int:
    return run_daemon(DAEMON, NflogCollector, argv)


# the console script (setup.py): no interpreter teardown at exit
run = console_script(main)

if __name__ == "__main__":
    run()
