#!/usr/bin/env python3
"""sfacctd and pmacctd savefile runs: pmacct 1.7.7 and ours on the same captures.

    .venv/bin/python bench/sources.py            # ~100k sFlow samples, ~200k packets
    .venv/bin/python bench/sources.py --smoke    # small: checks it runs and totals match

Captures (built under bench/captures/ and reused): sFlow v5 from tests/support/sflowgen.py
(datagrams repeated to reach the size), packets from tests/support/pktgen.py (802.1Q
frames, repeated). Both daemons run the same config: pcap_savefile, one print plugin with
CSV output (5-tuple aggregate), pmacct's large buffers, and each run goes through
tests/support/measure.py (wall, CPU of the whole process tree, peak PSS). pmacct sleeps
about 2 s before and after a savefile, so the table also gives rates net of a run on a
one-datagram capture. Every run is checked: exit code 0 and the same packet and byte
totals for both. Writes docs/performance-sources.md unless --smoke.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from tests.support import oracle, pcapio, pktgen, sflowgen  # noqa: E402

CAPTURES = HERE / "captures"
OUT = HERE / "out"
DOCS = REPO / "docs" / "performance-sources.md"
AGG = "src_host, dst_host, src_port, dst_port, proto"


def sflow_capture(datagrams: int, repeat: int) -> tuple[Path, int]:
    path = CAPTURES / f"sflow-{datagrams}x{repeat}.pcap"
    side = path.with_suffix(".samples")
    if path.exists() and side.exists():
        return path, int(side.read_text())
    cap = sflowgen.generate(sflowgen.SflowParams(seed=77, datagrams=datagrams,
                                                 samples_per_datagram=(4, 9)))
    CAPTURES.mkdir(parents=True, exist_ok=True)
    with pcapio.PcapWriter(path) as w:
        k = 0
        for _ in range(repeat):
            for src, payload in cap.datagrams:
                dst = sflowgen.COLLECTOR6 if ":" in src else sflowgen.COLLECTOR
                w.write(1_700_000_000_000_000_000 + k * 1000,
                        pcapio.udp_frame(src, dst, 6343, 6343, payload))
                k += 1
    side.write_text(str(len(cap.samples) * repeat))
    return path, len(cap.samples) * repeat


def packet_capture(packets: int, repeat: int) -> tuple[Path, int]:
    path = CAPTURES / f"packets-{packets}x{repeat}.pcap"
    if not path.exists():
        CAPTURES.mkdir(parents=True, exist_ok=True)
        frames = pktgen.frames(pktgen.PktParams(seed=78, link="vlan", packets=packets))
        with pcapio.PcapWriter(path) as w:
            k = 0
            for _ in range(repeat):
                for f in frames:
                    w.write(1_700_000_000_000_000_000 + k * 1000, f)
                    k += 1
    return path, packets * repeat


def tiny(kind: str) -> Path:
    path = CAPTURES / f"{kind}-tiny.pcap"
    if not path.exists():
        CAPTURES.mkdir(parents=True, exist_ok=True)
        if kind == "sflow":
            cap = sflowgen.generate(sflowgen.SflowParams(seed=79, datagrams=1, agents=1,
                                                         ipv6_agent=False,
                                                         samples_per_datagram=(1, 2),
                                                         counter_share=0))
            cap.write_pcap(path)
        else:
            pktgen.write_capture(path, pktgen.PktParams(seed=79, link="vlan", packets=1))
    return path


def run(who, daemon, capture, workdir):
    s = oracle.print_settings(capture, AGG, "csv", output_file="out.csv")
    binary = oracle.pmacct_binary(daemon) if who == "pmacct" else oracle.our_binary(daemon)
    res = oracle.run_daemon(binary, s, workdir, measure=True, timeout=900)
    tot = oracle.column_totals(res.output, "csv") if res.outputs else {}
    m = res.measure
    return {"rc": res.returncode, "wall": m.get("wall", res.wall),
            "cpu": m.get("cpu_user", 0) + m.get("cpu_sys", 0),
            "pss_mb": m.get("peak_pss_kb", 0) / 1024, "totals": tot}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--smoke", action="store_true")
    a = ap.parse_args()
    cases = [("sfacctd", "sflow", *sflow_capture(300 if a.smoke else 1500, 1 if a.smoke else 12)),
             ("pmacctd", "packets", *packet_capture(2000 if a.smoke else 20000, 1 if a.smoke else 10))]
    lines = ["| daemon | records | who | wall s | CPU s | net wall s | records/s (net wall) | "
             "records per CPU s | peak PSS MB |",
             "|---|---|---|---|---|---|---|---|---|"]
    ok = True
    for daemon, kind, cap, records in cases:
        got = {}
        for who in ("pmacct", "ours"):
            base = run(who, daemon, tiny(kind), OUT / f"{daemon}-{who}-tiny")
            r = run(who, daemon, cap, OUT / f"{daemon}-{who}")
            net = r["wall"] - base["wall"]
            got[who] = r
            rate = f"{records / net:,.0f}" if net >= 0.1 else "n/a (below the start-up noise)"
            lines.append(f"| {daemon} | {records} | {who} | {r['wall']:.2f} | {r['cpu']:.2f} | "
                         f"{max(net, 0):.2f} | {rate} | {records / max(r['cpu'], 1e-3):,.0f} | "
                         f"{r['pss_mb']:.0f} |")
            if r["rc"] != 0:
                ok = False
                lines.append(f"| {daemon} | | {who} FAILED rc={r['rc']} | | | | | |")
        if got["pmacct"]["totals"] != got["ours"]["totals"]:
            ok = False
            lines.append(f"| {daemon} | | totals differ: {got['pmacct']['totals']} vs "
                         f"{got['ours']['totals']} | | | | | |")
    table = "\n".join(lines)
    print(table)
    if not a.smoke:
        DOCS.write_text("# sfacctd and pmacctd: savefile runs beside pmacct 1.7.7\n\n"
                        "Made by `bench/sources.py` (see its docstring for the method). "
                        "Net figures subtract a run on a one-record capture (pmacct sleeps "
                        "about 2 s before and after a savefile). Speed is reported, never "
                        "asserted; the totals of both daemons are checked to be equal. CPU seconds "
                        "cover the whole process tree, so ours include the interpreter's "
                        "start-up in the core and in the plugin (about half a second); on "
                        "captures of this size that dominates.\n\n"
                        + table + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
