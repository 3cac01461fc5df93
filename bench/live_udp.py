#!/usr/bin/env python3
"""Live NetFlow v9 over loopback: the highest datagram rate at which >= 99.9% of the
records are accounted, for pmacct 1.7.7's nfacctd and ours (memory plugin).

    .venv/bin/python bench/live_udp.py                 # both, prints the search
    .venv/bin/python bench/live_udp.py --smoke         # two low rates, checks accounting

Each side runs one nfacctd on 127.0.0.1 (one memory plugin, 5-tuple aggregate,
``plugin_buffer_size: 102400`` and ``plugin_pipe_size`` 100 times that, the kernel's
default receive buffer for both). bench/udp_sender.py sends pre-built v9 datagrams
(one exporter, templates every 20 datagrams) at a target rate for a few seconds, as a
real-time thread where permitted (see udp_sender: a sender stalled by the collector's
own load would test its stalls, not the collector); the table's packet total before
and after (once it has stopped changing) gives what was accounted, compared with the
packets the sender put on the wire. Records are checked through packets: each record
carries its own packet count, so a lost record shows.
The rate doubles from ``--start`` until a trial accounts less than 99.9%, then a
bisection narrows the gap; a trial where the sender itself fell more than 3% short of
its target ends the search there (the sender's ceiling is reported too). The search runs
``--rounds`` times per side (default 3), alternating which side goes first, and the
median best rate of each side is reported with all of them.
"""
from __future__ import annotations

import argparse
import os
import socket
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import memplugin  # noqa: E402
import udp_sender  # noqa: E402

OUT = Path(os.environ.get("PMACCT_BENCH_OUT", HERE / "out"))
FIVE = ["src_host", "dst_host", "src_port", "dst_port", "proto"]
LIVE_BUFFERS = {"plugin_buffer_size": 102400, "plugin_pipe_size": 10240000}
THRESHOLD = 0.999
# the measuring wrapper's RSS sampling: nothing here reports memory, and sampling every
# 20 ms (as the replay runs do) took ~0.3 CPU-s a second on this 2-core machine
SAMPLE_INTERVAL = float(os.environ.get("PMACCT_BENCH_LIVE_SAMPLE", "1.0"))


def _free_port() -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_daemon(who: str, workdir: Path) -> tuple[memplugin.MeasuredDaemon, int]:
    port = _free_port()
    s = {"nfacctd_ip": "127.0.0.1", "nfacctd_port": port, **LIVE_BUFFERS,
         **memplugin.table_settings(who, FIVE, 70000)}
    d = memplugin.MeasuredDaemon(who, "nfacctd", s, workdir,
                                 sample_interval=SAMPLE_INTERVAL).start()
    d.wait_ready()
    return d, port


def _trial_packets(d: memplugin.MeasuredDaemon) -> int | None:
    """Packets in the table that came from the trials (all but the flush source's)."""
    for _ in range(20):            # a busy plugin may miss a query: ask again
        t, f = d.totals(), d.totals(udp_sender.FLUSH_SRC)
        if t is not None and f is not None:
            return t[0] - f[0]
        time.sleep(0.25)
    return None


def socket_drops(port: int) -> int | None:
    """The kernel's drop count of the UDP socket bound to ``port`` (the last column of
    /proc/net/udp, udp6): datagrams that found its receive buffer full, i.e. that the
    daemon did not take off the socket in time (None if no such socket)."""
    found = None
    for name in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(name) as f:
                lines = f.readlines()[1:]
        except OSError:
            continue
        for ln in lines:
            p = ln.split()
            if len(p) > 4 and int(p[1].rsplit(":", 1)[1], 16) == port:
                found = (found or 0) + int(p[-1])
    return found


def trial(d: memplugin.MeasuredDaemon, sender: udp_sender.Sender, flusher: udp_sender.Sender,
          rate: float, seconds: float) -> dict:
    port = sender.sock.getpeername()[1]
    before = _trial_packets(d)
    drops0 = socket_drops(port)
    r = sender.send(rate, seconds)
    # the daemon hands records to its plugin a full buffer at a time: a few buffers' worth
    # of flush records, sent at a walk, push the trial's last ones through
    flusher.send(2000, datagrams=120)
    d.wait_totals(-1, timeout=60, poll=0.25, settle=1.0)   # until the table stops changing
    after = _trial_packets(d)
    # a plugin starved of CPU (a busy machine) may pause for longer than that: short of
    # the packets sent, look again until two looks 1.5 s apart agree
    while after is not None and before is not None and after - before < r["packets"]:
        time.sleep(1.5)
        again = _trial_packets(d)
        if again == after:
            break
        after = again
    got = (after - before) if after is not None and before is not None else 0
    drops1 = socket_drops(port)
    # where a loss happened: datagrams the kernel dropped at the socket (the daemon not
    # receiving in time) versus records lost further in (its pipes, its plugin)
    r["socket_drops"] = (drops1 - drops0) if drops0 is not None and drops1 is not None else None
    r["accounted_packets"] = got
    r["share"] = got / r["packets"] if r["packets"] else 0.0
    # more than was sent would be a miscount, not a pass
    r["ok"] = THRESHOLD <= r["share"] <= 1.0
    return r


def _drops_word(r: dict) -> str:
    n = r.get("socket_drops")
    out = f"  socket drops {n:,}" if n else ""
    # a paced sender held off the CPU catches up in one burst: beyond a few of its
    # half-millisecond chunks that burst alone may overrun a default receive buffer
    if "chunk" in r and r["max_burst"] > 4 * r["chunk"]:
        out += f"  (sender burst {r['max_burst']} datagrams)"
    return out


def search(who: str, pool: udp_sender.Pool, *, start: float, ceiling: float, seconds: float,
           steps: int, smoke: bool = False, log=print) -> dict:
    d, port = start_daemon(who, OUT / f"live-{who}")
    sender = udp_sender.Sender(pool, port)
    flusher = udp_sender.Sender(udp_sender.flush_pool(), port)
    trials = []
    try:
        sender.send(200, datagrams=40)      # templates first, at a walk
        flusher.send(2000, datagrams=120)
        d.wait_totals(-1, timeout=60, poll=0.25, settle=1.0)
        good, bad = None, None
        rate = start
        plan = [start, start * 2] if smoke else None
        while True:
            if plan is not None:
                if not plan:
                    break
                rate = plan.pop(0)
            r = trial(d, sender, flusher, rate, seconds)
            trials.append(r)
            short = r["rate"] < 0.97 * rate
            log(f"  {who:6s} target {rate:9,.0f}/s sent {r['rate']:9,.0f}/s "
                f"accounted {100 * r['share']:7.3f}%{'' if r['ok'] else '  < 99.9%'}"
                f"{_drops_word(r)}"
                f"{'  (sender short)' if short else ''}"
                f"{'' if r.get('realtime') else '  (sender not real-time)'}")
            if plan is not None:
                continue
            if r["ok"] and not short:
                good = max(good or 0, rate)
            else:
                bad = rate if bad is None else min(bad, rate)
            if bad is None:
                if rate * 2 > ceiling:
                    break
                rate *= 2
                continue
            if good is None:
                if rate <= start / 8:
                    break
                rate /= 2
                continue
            if len(trials) >= steps or bad / good < 1.1:
                break
            rate = (good + bad) / 2
    finally:
        sender.close()
        flusher.close()
        m = d.stop()
        log_text = d.log()
    best = max((t for t in trials if t["ok"] and t["rate"] >= 0.97 * t["target"]),
               key=lambda t: t["target"], default=None)
    return {"who": who, "best": best, "trials": trials, "measure": m,
            "bad_log": memplugin.bad_log_lines(log_text)[:5],
            "records_per_datagram": pool.records_per_datagram}


def median_search(searches: list[dict]) -> dict:
    """Of several searches of one side, the one whose best rate is the median (the lower
    middle for an even count), with every search's best rate in ``bests`` and all the
    trials, each tagged with its search's number, in ``all_trials``."""
    rate = lambda r: (r["best"] or {}).get("target", 0)     # noqa: E731
    order = sorted(range(len(searches)), key=lambda i: rate(searches[i]))
    pick = dict(searches[order[(len(order) - 1) // 2]])
    pick["bests"] = [rate(r) for r in searches]
    pick["all_trials"] = [dict(t, search=i + 1) for i, r in enumerate(searches)
                          for t in r["trials"]]
    return pick


def searches(sides, pool, rounds: int, log=print, **kw) -> dict:
    """``rounds`` searches per side, alternating (pmacct, ours, then ours, pmacct, ...:
    neither side always runs first), the median of each side kept (``median_search``):
    one search moves by a bisection step between runs on a shared machine."""
    got: dict = {who: [] for who in sides}
    for r in range(rounds):
        for who in (sides if r % 2 == 0 else sides[::-1]):
            got[who].append(search(who, pool, log=log, **kw))
    return {who: median_search(res) for who, res in got.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--start", type=float, default=4000)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--only", choices=["pmacct", "ours"])
    ap.add_argument("--rounds", type=int, default=3,
                    help="searches per side, alternating; the median is reported")
    ap.add_argument("--pipe-size", type=int, default=0,
                    help="nfacctd_pipe_size (SO_RCVBUF) for both daemons; default: the "
                         "kernel's default receive buffer")
    a = ap.parse_args(argv)
    if a.pipe_size:
        LIVE_BUFFERS["nfacctd_pipe_size"] = a.pipe_size
    pool = udp_sender.build_pool(20_000 if a.smoke else 200_000)
    ceiling = udp_sender.max_rate(pool)["rate"]
    print(f"sender ceiling: {ceiling:,.0f} datagrams/s ({pool.records_per_datagram:.1f} records each)")
    rc = 0
    sides = [w for w in ("pmacct", "ours") if not a.only or a.only == w]
    res = searches(sides, pool, 1 if a.smoke else max(1, a.rounds),
                   start=500 if a.smoke else a.start, ceiling=ceiling,
                   seconds=0.5 if a.smoke else a.seconds, steps=a.steps, smoke=a.smoke)
    for who in sides:
        r = res[who]
        b = r["best"]
        print(f"{who}: best {b['target'] if b else 0:,.0f} datagrams/s (median of "
              f"{', '.join(f'{x:,.0f}' for x in r['bests'])})")
        if a.smoke and not all(t["ok"] for t in r["trials"]):
            rc = 1
    return rc


if __name__ == "__main__":
    sys.exit(main())
