#!/usr/bin/env python3
"""Memory of a memory-plugin table per aggregate: pmacct 1.7.7's and ours, side by side.

    .venv/bin/python bench/memory_footprint.py              # 1M records, ~1M 5-tuples
    .venv/bin/python bench/memory_footprint.py --records 100000

Both nfacctd binaries replay the same IPFIX capture (nearly every record a new 5-tuple)
into one memory plugin (aggregate: src_host, dst_host, src_port, dst_port, proto) with
``pcap_savefile_wait: true``; once the table has stopped growing, the resident memory
(VmRSS) of the plugin process is read, and again for a run on a one-record capture of
the same kind. The difference over the number of aggregates is the table's cost per
aggregate; the ring from the core (one big shared mapping) is left out. pmacct's table is made big enough to hold them all (imt_mem_pools_number and
imt_mem_pools_size). Reported, never asserted.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from tests.support import flowgen  # noqa: E402
from tests.support.memory import C_CLIENT, MemoryDaemon, our_client  # noqa: E402
from tests.support.oracle import our_binary, pmacct_binary  # noqa: E402

FIVE = ("src_host", "dst_host", "src_port", "dst_port", "proto")
# a ring big enough that pmacct's core does not drop records for a busy plugin; its
# pages are left out of the plugin's memory (see plugin_rss)
PIPE = 400_000_000
RING = {"plugin_buffer_size": 204800, "plugin_pipe_size": PIPE}


def plugin_rss(daemon: MemoryDaemon) -> int:
    """VmRSS (bytes) of the daemon's memory plugin process (a child of the core)."""
    core = daemon.proc.pid
    best = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        fields = dict(ln.split(":", 1) for ln in status.splitlines() if ":" in ln)
        if int(fields.get("PPid", "0").strip()) != core:
            continue
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        if b"IMT" not in cmd and b"memory" not in cmd.lower():
            continue
        best = max(best, _rss_without_ring(pid))
    return best


def _rss_without_ring(pid: str) -> int:
    """Resident bytes of a process, leaving out the mapping of the core's ring (the one
    mapping of plugin_pipe_size bytes, give or take a megabyte)."""
    total = 0
    size = 0
    with open(f"/proc/{pid}/smaps") as fh:
        for line in fh:
            first = line.split(" ", 1)[0]
            if "-" in first and ":" not in first:
                a, b = first.split("-")
                size = int(b, 16) - int(a, 16)
            elif line.startswith("Rss:"):
                if not (PIPE <= size <= PIPE + (1 << 20)):
                    total += int(line.split()[1]) * 1024
    return total


def measure(binary, client, capture: Path, work: Path, per_table: dict):
    d = MemoryDaemon(binary, {"t": FIVE}, capture, work, per_table={"t": per_table},
                     extra=RING)
    d.start()
    try:
        totals = d.wait_loaded(client, timeout=1800)
        time.sleep(1.0)
        rss = plugin_rss(d)
    finally:
        d.stop()
    log = d.log()
    warnings = [ln for ln in log.splitlines() if "WARN" in ln or "ERROR" in ln]
    return rss, totals["t"][3], warnings


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=1_000_000)
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        big, tiny = tmp / "big.pcap", tmp / "tiny.pcap"
        params = dict(version=10, seed=21, exporters=1, hosts=60000, ports=60000,
                      ipv6_share=0.0)
        flowgen.write_capture(big, records=a.records, **params)
        flowgen.write_capture(tiny, records=1, **params)
        pools = a.records * 352 // (1 << 20) + 2
        theirs_keys = {"imt_mem_pools_number": pools, "imt_mem_pools_size": 1 << 20}
        rows = []
        for who, binary, client, keys in (
                ("pmacct 1.7.7", pmacct_binary("nfacctd"), C_CLIENT, theirs_keys),
                ("pypmacct", our_binary("nfacctd"), our_client(), {"imt_mem_pools_number": 0})):
            base, _, _ = measure(binary, client, tiny, tmp / f"{who}-tiny", keys)
            rss, n, warnings = measure(binary, client, big, tmp / f"{who}-big", keys)
            rows.append((who, n, rss, base))
            for w in warnings[:5]:
                print(f"{who}: {w}")
            if len(warnings) > 5:
                print(f"{who}: ... {len(warnings) - 5} more warnings")
    print("| | aggregates | plugin RSS, empty table | plugin RSS, full table | "
          "bytes per aggregate |")
    print("|---|---|---|---|---|")
    for who, n, rss, base in rows:
        per = (rss - base) / n if n else 0
        print(f"| {who} | {n} | {base / 2**20:.1f} MiB | {rss / 2**20:.1f} MiB | {per:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
