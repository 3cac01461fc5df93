#!/usr/bin/env python3
"""What a live take costs the core: our UDP source (its reader process) and NetFlow
decoder in this process, bench/udp_sender.py sending v9 at a fixed rate from another.

    .venv/bin/python bench/live_takes.py                     # 4k/s, linger 0 / 2 / 5 ms
    .venv/bin/python bench/live_takes.py --rate 16000 --linger 0.002 --profile

Prints, per linger, the takes, datagrams per take and the CPU seconds spent reading and
decoding them (``time.process_time``: this process only, the reader process apart);
exits 1 unless the records decoded are the records the sender sent (loopback at a low
rate loses nothing).
With ``--profile`` the decode is run under cProfile and its dearest functions are shown.
Ours only: pmacct decodes datagram by datagram and has no such fixed cost to compare.
"""
from __future__ import annotations

import argparse
import cProfile
import pstats
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from pypmacct.decoders import NetflowDecoder  # noqa: E402
from pypmacct.sources.udp import UdpSource  # noqa: E402

SENDER = """
import sys, time
sys.path.insert(0, {here!r})
import udp_sender
pool = udp_sender.build_pool(20000)
s = udp_sender.Sender(pool, {port})
first = s.send(200, datagrams=40)  # templates first, at a walk
time.sleep(0.5)
rest = s.send({rate}, {seconds})
print(first["records"] + rest["records"], flush=True)
"""


def measure(rate: float, linger: float, seconds: float, profile: bool) -> dict:
    src = UdpSource("127.0.0.1", 0, reader="process", linger=linger)
    dec = NetflowDecoder()
    prof = cProfile.Profile() if profile else None
    sender = subprocess.Popen([sys.executable, "-c", SENDER.format(
        here=str(HERE), port=src.port, rate=rate, seconds=seconds)],
        stdout=subprocess.PIPE, text=True)
    takes = datagrams = records = 0
    cpu_read = cpu_decode = 0.0
    try:
        give_up = time.monotonic() + seconds + 60
        drain_until = None            # once the sender is done: what is still on its way
        while time.monotonic() < give_up:
            if drain_until is None and sender.poll() is not None:
                drain_until = time.monotonic() + 1.0
            if drain_until is not None and time.monotonic() > drain_until:
                break
            a = time.process_time()
            got = src.read(4096, timeout=0.2)
            b = time.process_time()
            cpu_read += b - a
            if not len(got):
                continue
            takes += 1
            datagrams += len(got)
            if prof:
                prof.enable()
            batch = dec.decode(got)
            if prof:
                prof.disable()
            records += len(batch.records)
            cpu_decode += time.process_time() - b
        sent = int(sender.communicate(timeout=30)[0].split()[-1])
    finally:
        if sender.poll() is None:
            sender.kill()
        src.close()
    return {"rate": rate, "linger": linger, "takes": takes, "datagrams": datagrams,
            "records": records, "sent": sent, "cpu_read": cpu_read, "cpu_decode": cpu_decode,
            "profile": prof}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rate", type=float, default=4000, help="datagrams/s")
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--linger", type=float, action="append",
                    help="seconds (repeatable); default 0, 0.002 and 0.005")
    ap.add_argument("--profile", action="store_true")
    a = ap.parse_args(argv)
    rc = 0
    for linger in a.linger or [0.0, 0.002, 0.005]:
        r = measure(a.rate, linger, a.seconds, a.profile)
        per = r["takes"] or 1
        print(f"rate {r['rate']:,.0f}/s linger {1000 * linger:g} ms: {r['takes']:,} takes, "
              f"{r['datagrams'] / per:.1f} datagrams each, {r['records']:,} records; "
              f"CPU read {r['cpu_read']:.3f} s, decode {r['cpu_decode']:.3f} s "
              f"({1e6 * r['cpu_decode'] / per:,.0f} us a take)"
              f"{'' if r['records'] == r['sent'] else '  MISMATCH: sent ' + format(r['sent'], ',')}")
        if r["records"] != r["sent"]:
            rc = 1
        if r["profile"] is not None:
            pstats.Stats(r["profile"]).sort_stats("tottime").print_stats(20)
    return rc


if __name__ == "__main__":
    sys.exit(main())
