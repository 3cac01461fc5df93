#!/usr/bin/env python3
"""The bench of issue 7: every comparison with pmacct 1.7.7 in one run, one table.

    make bench                                   # everything; writes docs/performance.md + plot
    .venv/bin/python bench/run.py --smoke        # CI form: tiny sizes, checks totals, ~1 min
    .venv/bin/python bench/run.py --parts replay --cases "v9 print"   # pieces
    .venv/bin/python bench/run.py --only ours    # one side

Parts (``--parts``):

- ``replay``: savefile replay of the same captures through both daemons: NetFlow v5, v9,
  IPFIX and sFlow v5 into the print plugin (5-tuple and src_host) and the memory plugin
  (5-tuple), and pmacctd on a packet capture (print, 5-tuple).
- ``rss``: peak RSS of the process tree with 1M cached 5-tuple aggregates, memory plugin
  and print plugin.
- ``live``: live NetFlow v9 over loopback (bench/live_udp.py, bench/udp_sender.py): the
  highest datagram rate at which >= 99.9% of the records are accounted, memory plugin.
- ``scaling``: CPU per record from 100k to 10M records and from 1k to 1M distinct
  aggregates (print, 5-tuple, v5), drawn into docs/performance-scaling.png.

pmacct runs with its best lossless setting (``plugin_buffer_size: 204800``,
``plugin_pipe_size`` 100x; for live UDP 102400 as the issue says); ours with the same
config. pmacct sleeps about 2 s before reading a savefile and about 2 s after its end, so
every case is also run on a one-record capture with the same config: its wall time is
the fixed cost, and "net" rates subtract it. CPU (user+sys) and memory cover the whole
process tree (tests/support/measure.py). Every run is checked: clean exit and log, and
output (or table) totals equal to the packets and bytes the capture holds; a failed
check is shown in the table and makes the exit code non-zero. Speed is reported, never
asserted. The targets of the issue are evaluated in a table of their own (met/missed).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import statistics
import sys
import time
from dataclasses import asdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from tests.support import flowgen, oracle  # noqa: E402

CAPTURES = HERE / "captures"
OUT = Path(os.environ.get("PMACCT_BENCH_OUT", HERE / "out"))   # daemon work directories
DOCS = REPO / "docs" / "performance.md"

AGGREGATES = {
    "5-tuple": ["src_host", "dst_host", "src_port", "dst_port", "proto"],
    "src_host": ["src_host"],
}
VERSIONS = {"v5": 5, "v9": 9, "IPFIX": 10}
BENCH_BUFFERS = {"plugin_buffer_size": 204800, "plugin_pipe_size": 20480000}


def gen_params(version: int, records: int, smoke: bool) -> flowgen.GenParams:
    return flowgen.GenParams(
        version=version, records=records, seed=1000 + version, exporters=4,
        hosts=4096, ports=1000, flow_pool=2000 if smoke else 65536, ipv6_share=0.2,
        groups=("tos", "tcpflags", "ifaces", "as", "masks", "nexthop"),
        duration=60 if smoke else 600)


def build_capture(version: int, records: int, smoke: bool) -> tuple[Path, dict]:
    """The capture and its sidecar (params, totals, distinct keys), built or reused."""
    CAPTURES.mkdir(parents=True, exist_ok=True)
    p = gen_params(version, records, smoke)
    name = f"v{version}-{records}"
    pcap, side = CAPTURES / f"{name}.pcap", CAPTURES / f"{name}.json"
    want = json.loads(json.dumps(asdict(p)))
    if pcap.exists() and side.exists():
        meta = json.loads(side.read_text())
        if meta.get("params") == want:
            return pcap, meta
    t0 = time.monotonic()
    exp = flowgen.generate(p)
    exp.write_pcap(pcap.with_suffix(".tmp"))
    os.replace(pcap.with_suffix(".tmp"), pcap)
    t = exp.truth
    src = t["src_ip"]
    keys5 = np.unique(np.concatenate([t["src_ip"], t["dst_ip"],
                                      t["src_port"].astype(">u2").view(np.uint8).reshape(-1, 2),
                                      t["dst_port"].astype(">u2").view(np.uint8).reshape(-1, 2),
                                      t["proto"][:, None]], axis=1), axis=0)
    meta = {"params": want, "records": len(t), "datagrams": len(exp.datagrams),
            "packets": int(t["packets"].sum()), "bytes": int(t["bytes"].sum()),
            "keys": {"5-tuple": int(len(keys5)), "src_host": int(len(np.unique(src, axis=0)))},
            "build_seconds": round(time.monotonic() - t0, 2), "size": pcap.stat().st_size}
    side.write_text(json.dumps(meta, indent=1))
    return pcap, meta


def tiny_capture(version: int) -> Path:
    p = flowgen.GenParams(version=version, records=1, seed=1, exporters=1)
    path = CAPTURES / f"v{version}-1.pcap"
    if not path.exists():
        CAPTURES.mkdir(parents=True, exist_ok=True)
        flowgen.generate(p).write_pcap(path)
    return path


def settings_for(capture: Path, agg: list[str], keys: int, *, buffers: dict | None) -> dict:
    s = oracle.print_settings(capture, agg, "csv", output_file="out.csv")
    for k in oracle.ORACLE_BUFFERS:
        s.pop(k, None)
    if buffers:
        s.update(buffers)
    # pmacct's print cache holds ~11 entries per bucket; a full cache purges early and
    # overwrites its own file. Size it well above the capture's distinct keys.
    s["print_cache_entries"] = max(16411, memplugin.next_prime(keys // 4))
    return s


def run_one(who: str, binary: Path, settings: dict, workdir: Path, timeout: float) -> dict:
    if workdir.exists():
        shutil.rmtree(workdir)
    res = oracle.run_daemon(binary, settings, workdir, measure=True, timeout=timeout)
    m = dict(res.measure)
    m["ok"] = True
    m["problem"] = ""
    try:
        oracle.check_run(res, who)
        m["totals"] = oracle.column_totals(res.output, "csv")
    except AssertionError as e:
        m["ok"] = False
        m["problem"] = str(e).splitlines()[0][:200]
        m["detail"] = str(e)
        try:
            m["totals"] = oracle.column_totals(res.output, "csv")
        except Exception:
            m["totals"] = {}
    if not m.get("wall"):
        m["wall"] = res.wall
    return m


def _check_totals(m: dict, meta: dict) -> None:
    """A run whose output does not sum to the capture's packets and bytes failed."""
    if not m["ok"]:
        return
    tot = m["totals"]
    if (tot.get("PACKETS"), tot.get("BYTES")) != (meta["packets"], meta["bytes"]):
        m["ok"] = False
        m["problem"] = (f"totals {tot.get('PACKETS')}/{tot.get('BYTES')} != capture "
                        f"{meta['packets']}/{meta['bytes']}")


def _better(old: dict | None, new: dict, key: str) -> dict:
    """Of two runs of the same case, the one with the lower ``key`` (a failed run only
    when both failed)."""
    if old is None:
        return new
    if old.get("ok") != new.get("ok"):
        return old if old.get("ok") else new
    return new if new.get(key, 0) < old.get(key, 0) else old


def compile_ours() -> None:
    """Byte-compile our packages, as installing them from a wheel does. An editable
    install does not, and with PYTHONDONTWRITEBYTECODE set (as on the development
    machines) every start of our daemon would compile its ~60 modules again: some
    60 ms of CPU that no installed copy pays."""
    import compileall
    for d in ("pypmacct", "daemons", "plugins"):
        compileall.compile_dir(str(REPO / d), quiet=1)


def fmt_num(x, digits=0):
    if x is None:
        return "-"
    if isinstance(x, str):
        return x
    return f"{x:,.{digits}f}"


def machine() -> dict:
    cpu = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = 0
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                mem = int(line.split()[1]) // 1024
    except OSError:
        pass
    pm = subprocess.run([str(oracle.pmacct_binary()), "-V"], capture_output=True, text=True)
    return {"nproc": os.cpu_count(), "cpu": cpu, "mem_mib": mem, "kernel": platform.release(),
            "python": platform.python_version(),
            "pmacct": (pm.stdout or pm.stderr).splitlines()[0] if (pm.stdout or pm.stderr) else "?"}


def metrics(m: dict, records: int, fixed: float | None) -> dict:
    if not m or not m.get("ok"):
        return {}
    wall = m["wall"]
    net = wall - fixed if fixed is not None else None
    return {
        "wall s": wall,
        "fixed s": fixed,
        "records/s (wall)": records / wall if wall > 0 else None,
        "records/s (net of fixed)": records / net if net and net > 0.05 else None,
        "CPU s (user+sys)": m["cpu"],
        "records per CPU-s": records / m["cpu"] if m["cpu"] > 0 else None,
        "peak RSS MiB (tree sum)": m["peak_rss_kb"] / 1024,
        "peak PSS MiB (tree sum)": m["peak_pss_kb"] / 1024,
        "max RSS MiB (one process)": m["maxrss_kb"] / 1024,
        "processes": m.get("processes"),
    }


DIGITS = {"wall s": 2, "fixed s": 2, "CPU s (user+sys)": 2, "peak RSS MiB (tree sum)": 1,
          "peak PSS MiB (tree sum)": 1, "max RSS MiB (one process)": 1}


def summarise(rows) -> list[str]:
    """A few sentences with the ranges of the main ratios, computed from this run."""
    def span(metric):
        vals = [b[metric] / a[metric] for _, a, b in rows
                if isinstance(a.get(metric), (int, float)) and a.get(metric)
                and isinstance(b.get(metric), (int, float))]
        return (min(vals), max(vals)) if vals else None

    out = []
    parts = [("records/s (wall)", "records per wall-second, pmacct's fixed sleeps included"),
             ("records/s (net of fixed)", "records per wall-second net of each daemon's fixed cost"),
             ("CPU s (user+sys)", "CPU seconds for the same work"),
             ("peak PSS MiB (tree sum)", "peak memory (PSS over the process tree)")]
    for metric, words in parts:
        sp = span(metric)
        if sp:
            out.append(f"- Ours / pmacct, {words}: {sp[0]:.2f}x to {sp[1]:.2f}x.")
    if out:
        out = ["In short (ratios over the cases below; higher is better for rates, lower for "
               "CPU and memory):", ""] + out + [""]
    return out


def render_table(rows: list[tuple[str, dict, dict]]) -> str:
    """Markdown table: case, metric, pmacct, ours, ratio (ours / pmacct)."""
    out = ["| case | metric | pmacct 1.7.7 | ours | ours / pmacct |", "|---|---|---:|---:|---:|"]
    for case, a, b in rows:
        keys = list(a or b)
        if not keys:
            continue
        for k in keys:
            va, vb = a.get(k), b.get(k)
            ratio = (vb / va) if isinstance(va, (int, float)) and isinstance(vb, (int, float)) and va else None
            out.append(f"| {case} | {k} | {fmt_num(va, DIGITS.get(k, 0))} | "
                       f"{fmt_num(vb, DIGITS.get(k, 0))} | {fmt_num(ratio, 2) if ratio is not None else '-'} |")
    return "\n".join(out)


# ---------------------------------------------------------------------------------------
# The whole bench of issue 7: every comparison, one command
# ---------------------------------------------------------------------------------------
sys.path.insert(0, str(HERE))
import captures as capgen  # noqa: E402
import live_udp  # noqa: E402

LIVE_ROUNDS = 3     # live UDP searches per side (alternating); the median is reported
import memplugin  # noqa: E402

PLOT = REPO / "docs" / "performance-scaling.png"
FIVE = AGGREGATES["5-tuple"]


def _tiny_meta_capture(kind: str) -> Path:
    if kind == "sFlow":
        return capgen.sflow_tiny()
    if kind == "pmacctd":
        return capgen.packets_tiny()
    return tiny_capture(VERSIONS[kind])


def _totals_problem(tot: dict, meta: dict) -> str:
    got = (tot.get("PACKETS"), tot.get("BYTES"))
    want = (meta["packets"], meta["bytes"])
    if got == want:
        return ""
    return f"totals {got[0]}/{got[1]} != capture {want[0]}/{want[1]}"


def print_repeat(who, daemon, cap, tiny, agg, keys, meta, tag, timeout):
    """One repeat of a savefile replay into the print plugin: a one-record run of the
    same config (the fixed cost), then the run itself, its totals checked. Returns
    (run, one-record run)."""
    binary = oracle.pmacct_binary(daemon) if who == "pmacct" else oracle.our_binary(daemon)
    f1 = run_one(who, binary, settings_for(tiny, agg, 1, buffers=BENCH_BUFFERS),
                 OUT / f"{tag}-{who}-fixed", timeout)
    m = run_one(who, binary, settings_for(cap, agg, keys, buffers=BENCH_BUFFERS),
                OUT / f"{tag}-{who}", timeout)
    lost = _totals_problem(m["totals"], meta)
    if m["ok"] or lost:
        m["problem"] = "; ".join(x for x in (lost, m["problem"] if not m["ok"] else "") if x)
        m["ok"] = not m["problem"]
    return m, f1


def memory_repeat(who, daemon, cap, tiny, agg, keys, meta, tag, timeout):
    """One repeat of a savefile replay into the memory plugin (pcap_savefile_wait): the
    wall time is when the table first holds all of the capture's packets (asked every
    0.2 s with the daemon's own client once the log says the file was read); CPU and
    memory are the whole tree's until it is stopped. Returns (run, one-record run)."""
    one = {}
    for kind, capture, want in (("fixed", tiny, None), ("run", cap, meta["packets"])):
        s = {"pcap_savefile": str(capture), "pcap_savefile_wait": True, **BENCH_BUFFERS,
             **memplugin.table_settings(who, agg, keys if kind == "run" else 1)}
        d = memplugin.MeasuredDaemon(who, daemon, s, OUT / f"{tag}-{who}-{kind}").start()
        try:
            wall, tot = d.wait_totals(want, timeout=timeout, poll=0.2,
                                      log_first="finished reading")
        finally:
            m = d.stop()
        problems = memplugin.bad_log_lines(d.log())
        if wall is None:
            problems.insert(0, f"table holds {tot[0] if tot else '?'}/{tot[1] if tot else '?'}"
                               + (f" != capture {meta['packets']}/{meta['bytes']}" if want else ""))
        elif want is not None and tot[1] != meta["bytes"]:
            problems.insert(0, f"bytes {tot[1]} != capture {meta['bytes']}")
        one[kind] = dict(m, wall=wall if wall is not None else d.last_change,
                         ok=not problems, problem="; ".join(problems)[:200])
    return one["run"], one["fixed"]


def interleaved(sides, repeat, one_repeat, meta) -> dict:
    """``repeat`` repeats of a case on every side, one repeat of each side in turn (the
    side that goes first alternates), summarized per side. ``one_repeat(who)`` runs
    one. This machine's speed drifts by tens of percent over minutes: one side's
    repeats all in a row could fall in a slow stretch that the other side's missed."""
    reps = {who: [] for who in sides}
    for i in range(max(1, repeat)):
        for who in (sides if i % 2 == 0 else list(reversed(sides))):
            reps[who].append(one_repeat(who))
    return {who: summarize(r, meta) for who, r in reps.items()}


def case_print(sides, daemon, cap, tiny, agg, keys, meta, tag, repeat, timeout) -> dict:
    """Print-plugin replays of one case on every side, interleaved: {side: summary}."""
    return interleaved(sides, repeat, lambda who: print_repeat(
        who, daemon, cap, tiny, agg, keys, meta, tag, timeout), meta)


def case_memory(sides, daemon, cap, tiny, agg, keys, meta, tag, repeat, timeout) -> dict:
    """Memory-plugin replays of one case on every side, interleaved: {side: summary}."""
    return interleaved(sides, repeat, lambda who: memory_repeat(
        who, daemon, cap, tiny, agg, keys, meta, tag, timeout), meta)


def _after_fork(m: dict):
    """A run's CPU from its first fork on (``tests.support.measure``'s ``cpu_at_fork``):
    the daemon's start-up before its plugins exist left out, or None if not seen."""
    at = m.get("cpu_at_fork")
    return m["cpu"] - at if m.get("cpu") and at is not None else None


def _pair(run: dict, fixed: dict):
    """(run CPU, one-record run CPU) of one repeat, or None when either failed. Both
    count from the first fork when both were seen forking (else the whole tree's): the
    start-up before it is the same work in both, but its CPU varies by tens of ms from
    run to run here, as much as a small run's whole net figure."""
    if run.get("ok") and run.get("cpu") and fixed.get("ok") and fixed.get("cpu"):
        a, b = _after_fork(run), _after_fork(fixed)
        if a is not None and b is not None:
            return a, b
        return run["cpu"], fixed["cpu"]
    return None


def net_cpu(pairs, best_cpu, fixed_cpu):
    """CPU seconds of a run net of start-up.

    With three or more good repeats: the median of each repeat's run CPU minus the
    one-record run made just before it. This machine's speed drifts by tens of percent
    over minutes, and a pair made seconds apart drifts together, so the difference
    cancels most of it; the least run minus the least one-record run (what fewer
    repeats fall back to) can pair a fast moment with a slow one, which for a small
    run is as large as the figure itself."""
    good = [r - f for r, f in (p for p in pairs if p)]
    if len(good) >= 3:
        return statistics.median(good)
    if best_cpu is None or fixed_cpu is None:
        return None
    return best_cpu - fixed_cpu


def summarize(repeats, meta) -> dict:
    """A case's figures from its repeats, each a (run, one-record run) pair: the best
    run (least CPU; lowest wall of the good runs), the fixed cost and the net CPU."""
    best = fixed = None
    for m, f1 in repeats:
        best = _better(best, m, "cpu")
        fixed = _better(fixed, f1, "wall")
    ok = bool(best and best.get("ok"))
    # a failed run (lost records, as pmacct's memory plugin does under load) keeps its
    # figures, flagged as failed in the table: they are what that daemon did
    fig = bool(best and best.get("cpu"))
    walls = [m["wall"] for m, _ in repeats if m["ok"]]
    wall = min(walls) if walls else best.get("wall", 0.0)
    fw = fixed["wall"] if fixed and fixed.get("ok") else None
    # the start-up's CPU: the least of the one-record runs (the noise of a loaded machine
    # only ever adds), as the run's own CPU is the least of its repeats
    fc = min((f1["cpu"] for _, f1 in repeats if f1.get("ok") and f1.get("cpu")), default=None)
    pairs = [_pair(m, f1) for m, f1 in repeats]
    rec = meta["records"]
    net = wall - fw if fw is not None else None
    # the fallback (fewer than three good pairs) from the first fork on too, when seen
    fc_fork = min((x for x in (_after_fork(f1) for _, f1 in repeats if f1.get("ok"))
                   if x is not None), default=None)
    best_fork = _after_fork(best) if best else None
    if best_fork is not None and fc_fork is not None:
        net_c = net_cpu(pairs, best_fork, fc_fork) if fig else None
    else:
        net_c = net_cpu(pairs, best["cpu"], fc) if fig else None
    return {
        "ok": ok, "problem": best.get("problem", "") if not ok else "",
        "failed_repeats": [m["problem"] for m, _ in repeats if not m["ok"]],
        "repeat": len(repeats), "records": rec,
        "wall": wall, "fixed": fw, "cpu": best.get("cpu"), "fixed_cpu": fc,
        "rate_net": rec / net if fig and net and net > 0.05 else None,
        "cpu_per_M": best["cpu"] / rec * 1e6 if fig else None,
        "cpu_net_per_M": net_c / rec * 1e6 if net_c is not None else None,
        "net_pairs": sum(1 for p in pairs if p),
        "peak_rss": best.get("peak_rss_kb", 0) / 1024 if fig else None,
        "peak_pss": best.get("peak_pss_kb", 0) / 1024 if fig else None,
    }


def _check_word(r: dict) -> str:
    if not r:
        return "not run"
    if not r["ok"]:
        return f"FAILED: {r['problem']}"
    word = f"exact ({r['records']:,} records)"
    if r["failed_repeats"]:
        word += f"; {len(r['failed_repeats'])} of {r['repeat']} repeats failed: {r['failed_repeats'][0]}"
    return word


# ------------------------------------------------------------------ the run
SMOKE_CASES = ("v5 print 5-tuple", "v9 print src_host", "IPFIX memory 5-tuple",
               "sFlow print 5-tuple", "sFlow memory 5-tuple", "pmacctd print 5-tuple")
# pmacct sleeps ~4 s per savefile run: the smoke form runs it on one case only
SMOKE_PMACCT = ("v5 print 5-tuple",)


def replay_cases(smoke: bool):
    """(name, kind, daemon, plugin, aggregate name) of every savefile comparison (a
    subset, one per daemon and plugin, for --smoke)."""
    if smoke:
        return [c for c in replay_cases(False) if c[0] in SMOKE_CASES]
    out = []
    for kind in ("v5", "v9", "IPFIX", "sFlow"):
        daemon = "sfacctd" if kind == "sFlow" else "nfacctd"
        out += [(f"{kind} print 5-tuple", kind, daemon, "print", "5-tuple"),
                (f"{kind} print src_host", kind, daemon, "print", "src_host"),
                (f"{kind} memory 5-tuple", kind, daemon, "memory", "5-tuple")]
    out.append(("pmacctd print 5-tuple", "pmacctd", "pmacctd", "print", "5-tuple"))
    return out


def capture_for(kind: str, records: int, smoke: bool):
    if kind == "sFlow":
        return capgen.sflow(records, smoke)
    if kind == "pmacctd":
        return capgen.packets(records, smoke)
    return build_capture(VERSIONS[kind], records, smoke)


def scaling_series(smoke: bool):
    if smoke:
        return [20_000, 60_000], [200, 2000]
    return [100_000, 300_000, 1_000_000, 3_000_000, 10_000_000], [1000, 10_000, 100_000, 0]


def run_scaling(sides, smoke, timeout, log=print, sizes=None, pools=None) -> dict:
    """Print plugin, 5-tuple, NetFlow v5: CPU per record over capture size (a 100k-record
    base repeated; ~50k distinct aggregates) and over distinct aggregates (1M records
    drawn from pools of 1k..1M flows; 0 = every record its own draw). ``sizes`` and
    ``pools`` pick points of the series (default: all of them)."""
    all_sizes, all_pools = scaling_series(smoke)
    sizes = all_sizes if sizes is None else sizes
    pools = all_pools if pools is None else pools
    base = 10_000 if smoke else 100_000
    keys_records = 20_000 if smoke else 1_000_000
    out = {"records": [], "keys": []}
    tiny = tiny_capture(5)
    for n in sizes:
        cap, meta = capgen.netflow(5, n, flow_pool=2000 if smoke else 65536, repeat=n // base)
        # small runs are a few tenths of a CPU-second over start-up: repeat them and
        # take the median of the paired differences (net_cpu)
        reps = 1 if smoke else (9 if n <= 100_000 else 5 if n <= 300_000 else 3 if n <= 3_000_000 else 1)
        res = case_print(sides, "nfacctd", cap, tiny, FIVE, meta["keys"]["5-tuple"], meta,
                         f"scale-n{n}", reps, timeout)
        for who in sides:
            r = res[who]
            r.update(who=who, x=n, keys=meta["keys"]["5-tuple"])
            out["records"].append(r)
            log(f"  scaling {who:6s} {n:>10,} records: cpu {r['cpu'] or 0:7.2f}s "
                f"net/1M {r['cpu_net_per_M'] or 0:6.3f}  {_check_word(r)}")
    for pool in pools:
        cap, meta = capgen.netflow(5, keys_records, flow_pool=pool, hosts=60000, ports=60000,
                                   seed=600)
        k = meta["keys"]["5-tuple"]
        res = case_print(sides, "nfacctd", cap, tiny, FIVE, k, meta, f"scale-k{pool}", 1, timeout)
        for who in sides:
            r = res[who]
            r.update(who=who, x=k, keys=k)
            out["keys"].append(r)
            log(f"  scaling {who:6s} {k:>10,} aggregates: cpu {r['cpu'] or 0:7.2f}s "
                f"net/1M {r['cpu_net_per_M'] or 0:6.3f}  {_check_word(r)}")
    return out


def draw_plot(scaling: dict, path: Path) -> bool:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError:
        print("matplotlib not installed (pip install -e '.[bench]'): no plot")
        return False
    fig, axes = plt.subplots(1, 2, figsize=(8, 3), dpi=80)
    for ax, series, label in ((axes[0], scaling["records"], "records in the capture"),
                              (axes[1], scaling["keys"], "distinct 5-tuple aggregates")):
        for who, style in (("ours", "o-"), ("pmacct", "s--")):
            pts = sorted((r["x"], r["cpu_net_per_M"]) for r in series
                         if r["who"] == who and r.get("cpu_net_per_M") is not None)
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], style,
                        label="pypmacct" if who == "ours" else "pmacct 1.7.7")
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel(label)
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("CPU-s per 1M records\n(net of start-up)")
    axes[0].legend(fontsize=8)
    fig.suptitle("nfacctd -> print, NetFlow v5 savefile, 5-tuple", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return True


def loadavg() -> str:
    try:
        return " ".join(open("/proc/loadavg").read().split()[:3])
    except OSError:
        return "?"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: runs everything, checks totals")
    ap.add_argument("--records", type=int, default=None, help="records per replay capture (default 1M)")
    ap.add_argument("--rss-aggregates", type=int, default=None,
                    help="distinct aggregates for the peak-RSS rows (default 1M)")
    ap.add_argument("--parts", default="replay,rss,live,scaling",
                    help="which parts to run (comma list of replay, rss, live, scaling)")
    ap.add_argument("--cases", default="", help="only replay cases whose name contains one of these (comma list)")
    ap.add_argument("--only", choices=["pmacct", "ours"], help="run one side only")
    ap.add_argument("--docs", default=None, help="write the report here "
                    "(default: docs/performance.md for full runs, nowhere for --smoke)")
    ap.add_argument("--plot", default=None, help="write the scaling plot here "
                    "(default: docs/performance-scaling.png for full runs)")
    ap.add_argument("--sizes", default=None,
                    help="scaling: only these capture sizes (comma list of records; '' for none)")
    ap.add_argument("--pools", default=None,
                    help="scaling: only these flow pools of the aggregates series "
                         "(comma list; 0 = every record drawn afresh; '' for none)")
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--repeat", type=int, default=None,
                    help="runs per replay case, best kept (default 2; 1 with --smoke)")
    a = ap.parse_args(argv)
    repeat = a.repeat or (1 if a.smoke else 2)
    records = a.records or (20_000 if a.smoke else 1_000_000)
    rss_n = a.rss_aggregates or (20_000 if a.smoke else 1_000_000)
    parts = {p.strip() for p in a.parts.split(",") if p.strip()}
    sides = [s for s in ("pmacct", "ours") if a.only in (None, s)]
    for who in sides:
        for d in ("nfacctd", "sfacctd", "pmacctd"):
            b = oracle.pmacct_binary(d) if who == "pmacct" else oracle.our_binary(d)
            if not b.exists():
                print(f"{who}'s {d} not found at {b}", file=sys.stderr)
                return 2
    if "ours" in sides:
        compile_ours()
    mach = machine()
    mach["load_start"] = loadavg()
    t_start = time.monotonic()
    print(f"machine: {mach['nproc']} CPUs ({mach['cpu']}), Linux {mach['kernel']}; "
          f"load {mach['load_start']}; {mach['pmacct']}")
    rows = []          # (case, metric, pmacct, ours, check pmacct, check ours)
    results = {}       # case -> {who: summary}
    failures = []

    def record(case, res):
        results[case] = res
        for who, r in res.items():
            if r and not r["ok"]:
                failures.append(f"{who} {case}: {r['problem']}")

    if "replay" in parts:
        wanted = [c.strip() for c in a.cases.split(",") if c.strip()]
        caps = {}
        for case, kind, daemon, plugin, aname in replay_cases(a.smoke):
            if wanted and not any(w in case for w in wanted):
                continue
            if kind not in caps:
                caps[kind] = capture_for(kind, records, a.smoke)
                print(f"\n{kind}: {caps[kind][0].name}: {caps[kind][1]['records']:,} records")
            cap, meta = caps[kind]
            tiny = _tiny_meta_capture(kind)
            keys = meta["keys"].get(aname) or meta["records"]
            fn = case_print if plugin == "print" else case_memory
            who_runs = [w for w in sides
                        if not (a.smoke and w == "pmacct" and case not in SMOKE_PMACCT)]
            res = fn(who_runs, daemon, cap, tiny, AGGREGATES[aname], keys, meta,
                     case.replace(" ", "-"), repeat, a.timeout)
            for who, r in res.items():
                print(f"  {case:24s} {who:6s} wall {r['wall'] or 0:6.2f}s fixed {fmt_num(r['fixed'], 2)}s "
                      f"cpu {r['cpu'] or 0:6.2f}s  {_check_word(r)}")
            record(case, res)

    if "rss" in parts:
        cap, meta = capgen.netflow(10, rss_n, flow_pool=0, hosts=60000, ports=60000, seed=21,
                                   name=f"rss-ipfix-{rss_n}.pcap")
        tiny = tiny_capture(10)
        k = meta["keys"]["5-tuple"]
        print(f"\nRSS capture: {meta['records']:,} records, {k:,} distinct 5-tuples")
        for plugin, fn in (("memory", case_memory), ("print", case_print)):
            case = f"{k:,} aggregates, {plugin}"
            res = fn([w for w in sides if not (a.smoke and w == "pmacct")], "nfacctd", cap, tiny,
                     FIVE, k, meta, f"rss-{plugin}", 1, a.timeout)
            for who, r in res.items():
                r["keys"] = k
                print(f"  RSS {plugin:6s} {who:6s} peak RSS {r['peak_rss'] or 0:8.1f} MiB  "
                      f"{_check_word(r)}")
            record("rss " + case, res)

    live = {}
    if "live" in parts:
        pool = live_udp.udp_sender.build_pool(20_000 if a.smoke else 200_000)
        ceiling = live_udp.udp_sender.max_rate(pool)
        live["ceiling"] = ceiling["rate"]
        live["rpd"] = pool.records_per_datagram
        print(f"\nlive UDP: sender ceiling {ceiling['rate']:,.0f} datagrams/s")
        live.update(live_udp.searches(list(sides), pool, 1 if a.smoke else LIVE_ROUNDS,
                                      start=500 if a.smoke else 4000, ceiling=ceiling["rate"],
                                      seconds=0.5 if a.smoke else 2.0, steps=12, smoke=a.smoke))
        for who in sides:
            if not live[who]["best"]:
                failures.append(f"{who} live UDP: no rate accounted >= 99.9% of the records")

    scaling = None
    if "scaling" in parts:
        print("\nscaling:")
        pick = (lambda v: None if v is None else [int(x) for x in v.split(",") if x.strip()])
        scaling = run_scaling([s for s in sides if not (a.smoke and s == "pmacct")],
                              a.smoke, a.timeout, sizes=pick(a.sizes), pools=pick(a.pools))
        for r in scaling["records"] + scaling["keys"]:
            if not r["ok"]:
                failures.append(f"{r['who']} scaling {r['x']:,}: {r['problem']}")

    mach["load_end"] = loadavg()
    mach["minutes"] = (time.monotonic() - t_start) / 60
    main_table = render_results(results, live)
    print("\n" + main_table)
    targets = render_targets(results, live, scaling)
    print("\n" + targets)
    partial = a.smoke or a.sizes is not None or a.pools is not None
    plot = Path(a.plot) if a.plot else (None if partial else PLOT)
    if scaling and plot:
        draw_plot(scaling, plot)
        print(f"wrote {plot} ({plot.stat().st_size // 1024} kB)")
    if failures:
        print("\nFAILED checks:\n  " + "\n  ".join(failures))
    docs = a.docs if a.docs is not None else (None if partial else str(DOCS))
    if docs:
        write_report(Path(docs), mach, a, records, repeat, main_table, targets, live, scaling,
                     plot, failures, results)
        print(f"\nwrote {docs}")
    return 1 if any(f.startswith("ours ") for f in failures) else 0


PROFILE = REPO / "docs" / "profile.md"


def where_the_cpu_goes() -> list[str]:
    """The section that breaks our CPU time down by stage: docs/profile.md (written by
    bench/stages.py, which this run does not repeat) included under its own heading,
    so that rewriting this file keeps it."""
    out = ["## Where the CPU goes", ""]
    if not PROFILE.exists():
        return out + ["Run `.venv/bin/python bench/stages.py` for the breakdown "
                      "(docs/profile.md).", ""]
    body = PROFILE.read_text().splitlines()
    if body and body[0].startswith("# "):
        body = body[1:]
    out.append("From [profile.md](profile.md) (`bench/stages.py`; its own date below):")
    for line in body:
        out.append("#" + line if line.startswith("## ") else line)
    return out + [""]


# ------------------------------------------------------------------ tables
def _ratio(a, b):
    return b / a if isinstance(a, (int, float)) and isinstance(b, (int, float)) and a else None


def render_results(results: dict, live: dict) -> str:
    out = ["| case | metric | pmacct 1.7.7 | ours | ours / pmacct | totals checked |",
           "|---|---|---:|---:|---:|---|"]
    metrics_of = [("records/s (net of fixed)", "rate_net", 0), ("CPU-s per 1M records", "cpu_per_M", 3),
                  ("CPU-s per 1M records, net of start-up", "cpu_net_per_M", 3),
                  ("peak RSS MiB (tree sum)", "peak_rss", 1), ("peak PSS MiB (tree sum)", "peak_pss", 1)]
    for case, res in results.items():
        p, o = res.get("pmacct") or {}, res.get("ours") or {}
        check = f"pmacct: {_check_word(p)}; ours: {_check_word(o)}"
        picks = metrics_of if not case.startswith("rss ") else [metrics_of[3], metrics_of[4], metrics_of[1]]
        for i, (label, key, dig) in enumerate(picks):
            va, vb = p.get(key), o.get(key)
            out.append(f"| {case[4:] if case.startswith('rss ') else case} | {label} | {fmt_num(va, dig)} | "
                       f"{fmt_num(vb, dig)} | {fmt_num(_ratio(va, vb), 2)} | {check if i == 0 else ''} |")
    if live:
        p, o = live.get("pmacct") or {}, live.get("ours") or {}
        bp, bo = (p.get("best") or {}), (o.get("best") or {})
        vp, vo = bp.get("target"), bo.get("target")
        words = []
        for who, r in (("pmacct", p), ("ours", o)):
            if r:
                b = r.get("best")
                words.append(f"{who}: {100 * b['share']:.2f}% of {b['records']:,} records at that rate"
                             if b else f"{who}: no rate reached 99.9%")
                if len(r.get("bests", ())) > 1:
                    words[-1] += (" (median of searches: "
                                  + ", ".join(f"{x:,.0f}" for x in r["bests"]) + ")")
        out.append(f"| live UDP NetFlow v9, memory | datagrams/s with >= 99.9% accounted | {fmt_num(vp)} | "
                   f"{fmt_num(vo)} | {fmt_num(_ratio(vp, vo), 2)} | {'; '.join(words)} |")
        rpd = live.get("rpd", 0)
        out.append(f"| live UDP NetFlow v9, memory | records/s at that rate | {fmt_num(vp and vp * rpd)} | "
                   f"{fmt_num(vo and vo * rpd)} | {fmt_num(_ratio(vp, vo), 2)} | sender ceiling "
                   f"{fmt_num(live.get('ceiling'))} datagrams/s |")
    return "\n".join(out)


def _flatness(series, who):
    vals = [r["cpu_net_per_M"] for r in series if r["who"] == who and r.get("cpu_net_per_M")]
    return (max(vals) / min(vals)) if len(vals) >= 2 and min(vals) > 0 else None


def render_targets(results: dict, live: dict, scaling) -> str:
    out = ["| target | case | pmacct 1.7.7 | ours | ours / pmacct | met? |", "|---|---|---:|---:|---:|---|"]

    def row(target, case, va, vb, ok, dig=0, p=None, o=None):
        ratio = _ratio(va, vb)
        state = "-" if ok is None else ("met" if ok else "**missed**")
        if o is not None and o and not o.get("ok"):
            state = "**missed** (ours lost records)"
        elif p is not None and p and not p.get("ok") and ok is not None:
            state += " (pmacct lost records at this setting: its figure is for a lossy run)"
        out.append(f"| {target} | {case} | {fmt_num(va, dig)} | {fmt_num(vb, dig)} | "
                   f"{fmt_num(ratio, 2)} | {state} |")

    for case, res in results.items():
        if case.startswith("rss "):
            continue
        p, o = res.get("pmacct") or {}, res.get("ours") or {}
        want = 1.0 if case.startswith("pmacctd") else 2.0
        r = _ratio(p.get("rate_net"), o.get("rate_net"))
        row(f"1. throughput >= {want:g}x (records/s net of fixed)", case, p.get("rate_net"),
            o.get("rate_net"), None if r is None else r >= want, p=p, o=o)
    for case, res in results.items():
        if case.startswith("rss "):
            continue
        p, o = res.get("pmacct") or {}, res.get("ours") or {}
        r = _ratio(p.get("cpu_per_M"), o.get("cpu_per_M"))
        row("2. CPU-s per 1M records <= pmacct's", case, p.get("cpu_per_M"), o.get("cpu_per_M"),
            None if r is None else r <= 1.0, 3, p=p, o=o)
    if live:
        vp = (live.get("pmacct", {}).get("best") or {}).get("target")
        vo = (live.get("ours", {}).get("best") or {}).get("target")
        r = _ratio(vp, vo)
        row("3. live UDP v9 rate (>= 99.9% accounted) >= pmacct's", "datagrams/s", vp, vo,
            None if r is None else r >= 1.0)
    for case, res in results.items():
        if not case.startswith("rss "):
            continue
        p, o = res.get("pmacct") or {}, res.get("ours") or {}
        r = _ratio(p.get("peak_rss"), o.get("peak_rss"))
        row("4. peak RSS <= 1.5x pmacct's", case[4:], p.get("peak_rss"), o.get("peak_rss"),
            None if r is None else r <= 1.5, 1, p=p, o=o)
    if scaling:
        for name, series in (("capture size", scaling["records"]), ("distinct aggregates", scaling["keys"])):
            fo, fp = _flatness(series, "ours"), _flatness(series, "pmacct")
            row(f"5. flat cost over {name} (largest / smallest CPU-s per 1M, net; <= 1.5)", name,
                fp, fo, None if fo is None else fo <= 1.5, 2)
    return "\n".join(out)


def _scaling_table(scaling) -> list[str]:
    out = ["| series | records | distinct aggregates | who | CPU s | CPU-s per 1M (net of start-up) | "
           "records/s (net of fixed) | peak RSS MiB | totals |", "|---|---:|---:|---|---:|---:|---:|---:|---|"]
    for name, series in (("size", scaling["records"]), ("aggregates", scaling["keys"])):
        for r in series:
            out.append(f"| {name} | {r['records']:,} | {r['keys']:,} | {r['who']} | {fmt_num(r['cpu'], 2)} | "
                       f"{fmt_num(r['cpu_net_per_M'], 3)} | {fmt_num(r['rate_net'])} | "
                       f"{fmt_num(r['peak_rss'], 1)} | {'exact' if r['ok'] else 'FAILED: ' + r['problem']} |")
    return out


def _live_trials(live) -> list[str]:
    out = ["| who | search | target datagrams/s | sent datagrams/s | records sent | accounted |",
           "|---|---:|---:|---:|---:|---:|"]
    for who in ("pmacct", "ours"):
        r = live.get(who) or {}
        for t in r.get("all_trials", r.get("trials", [])):
            out.append(f"| {who} | {t.get('search', 1)} | {t['target']:,.0f} | {t['rate']:,.0f} | "
                       f"{t['records']:,} | {100 * t['share']:.3f}% |")
    return out


def startup_cpu(results: dict) -> dict:
    """Per side, the median over the replay cases of the one-record run's CPU seconds."""
    out = {}
    for who in ("pmacct", "ours"):
        v = [r[who]["fixed_cpu"] for case, r in results.items()
             if not case.startswith("rss ") and (r.get(who) or {}).get("fixed_cpu")]
        if v:
            out[who] = statistics.median(v)
    return out


def write_report(path: Path, mach, a, records, repeat, main_table, targets, live, scaling, plot,
                 failures, results=None):
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    start = startup_cpu(results or {})
    start_words = ", ".join(f"{w} {start[w]:.2f}" for w in ("ours", "pmacct") if w in start)
    L = ["# Performance: pypmacct next to pmacct 1.7.7", "",
         f"Measured {now} by `make bench` (`bench/run.py`"
         + (f" {' '.join(sys.argv[1:])}" if sys.argv[1:] else "") + f"), {mach['minutes']:.0f} minutes.", "",
         f"Machine: {mach['nproc']} cores ({mach['cpu']}), {mach['mem_mib']:,} MiB RAM, Linux "
         f"{mach['kernel']}, Python {mach['python']}; oracle: {mach['pmacct']}.", "",
         f"**Contention**: the machine may be shared with other test suites on the same "
         f"2 cores; load average {mach['load_start']} at the start of the run, {mach['load_end']} at "
         "the end. Wall times and rates suffer from it much more than CPU seconds, so CPU seconds "
         f"are the figures to trust most; every replay case ran {repeat} time(s) per side, the "
         "two sides taking turns (which goes first alternates), and the best run is kept (least "
         "CPU; lowest wall of the good runs).", ""]
    if failures:
        L += ["**Failed checks in this run** (figures of a failed run are still shown, flagged "
              "in the totals column; a lost record on our side fails the bench):", ""]
        L += [f"- {f}" for f in failures] + [""]
    missed = [ln.split(" | ")[:2] for ln in targets.splitlines() if "| **missed**" in ln]
    met = [ln for ln in targets.splitlines() if "| met" in ln]
    L += ["## Targets of issue 7", "",
          f"In this run {len(met)} target rows were met and {len(missed)} missed"
          + (": " + "; ".join(f"{t[2:] if t.startswith('| ') else t} ({c})" for t, c in missed)
             if missed else "") + ".", "",
          targets, "",
          "Ratios are ours / pmacct: higher is better for rates, lower for CPU and memory. "
          "'-' where a figure is missing: a failed check, or a net wall time below 0.05 s "
          "(start-up noise).", "",
          "## All comparisons", "", main_table, ""]
    if scaling:
        L += ["## Scaling", ""]
        if plot and Path(plot).exists():
            L += [f"![CPU-s per 1M records over capture size and distinct aggregates]({Path(plot).name})", ""]
        L += _scaling_table(scaling) + [""]
    if live:
        L += ["## Live UDP search", "",
              f"Sender ceiling (unpaced, bench/udp_sender.py, one process with sendmmsg batches): "
              f"{live['ceiling']:,.0f} datagrams/s, {live['rpd']:.1f} records per datagram.", ""]
        L += _live_trials(live) + [""]
    L += ["## Method", "",
          f"- Replay captures: {records:,} records each. NetFlow v5/v9/IPFIX from "
          "`tests/support/flowgen.py` (4 exporters, 20% IPv6 in v9/IPFIX, 5-tuples drawn from "
          "65,536 flows); sFlow v5 from `tests/support/sflowgen.py` (1,500 datagrams repeated); "
          "802.1Q packets for pmacctd from `tests/support/pktgen.py` (20,000 frames repeated). "
          "Built into `bench/captures/` and `$PMACCT_BENCH_CACHE` (default /tmp/pypmacct-bench), "
          "never committed.",
          "- pmacct gets its best lossless setting from the issue, `plugin_buffer_size: 204800` and "
          "`plugin_pipe_size` 100 times that; ours the same config. Print: CSV, refresh longer "
          "than the run, `print_cache_entries` above the distinct keys. Memory: "
          "`pcap_savefile_wait: true`; pmacct's table gets enough 1 MB pools and buckets near the "
          "key count.",
          "- pmacct sleeps about 2 s before reading a savefile and about 2 s after its end (and "
          "1 ms per buffer handed over with default buffers). These fixed costs are netted out: "
          "'fixed' is each daemon's wall time on a one-record capture with the same config, and "
          "'records/s (net of fixed)' divides by wall minus that. For the memory plugin the wall "
          "time is when the table first holds all of the capture's packets, asked every 0.2 s with "
          "the daemon's own client once its log says it finished reading the file (queries "
          "while it loads would slow the plugin down: pmacct's core then drops buffers).",
          "- CPU is user+sys of the whole process tree (`tests/support/measure.py`); 'CPU-s per "
          "1M records' includes start-up (the one-record run's CPU; the median over the replay "
          f"cases in this run: {start_words or '-'} CPU-s), "
          "'net of start-up' counts both the run and the one-record run from the moment the "
          "daemon's tree first has a second process (its first plugin; neither daemon reads a "
          "record before that), which leaves out the start-up before it (for ours the "
          "interpreter and imports, whose CPU varies by tens of ms between identical runs), "
          "and subtracts the one-record run's: with three or more "
          "repeats (the scaling series' smaller sizes) the median over repeats of the run's CPU "
          "minus that of the one-record run made just before it, otherwise the least run minus "
          "the least one-record run. Peak RSS/PSS are the largest sums over the live tree, "
          "sampled every 20 ms.",
          "- Totals: every run must exit cleanly with a clean log, and its output (or its table) "
          "must sum to exactly the packets and bytes the capture holds; the 'totals checked' "
          "column says so per side. A failed run's figures are left out.",
          "- Peak RSS rows: one IPFIX capture with (nearly) every record its own 5-tuple, into "
          "the memory plugin and into the print plugin.",
          "- Live UDP: `bench/live_udp.py`: pmacct's and our nfacctd on 127.0.0.1 with one memory "
          "plugin (5-tuple), `plugin_buffer_size: 102400`, pipe 100 times that, default receive "
          "buffer; `bench/udp_sender.py` sends pre-built v9 datagrams paced at a target rate for "
          "2 s, its thread under SCHED_FIFO while it sends (where permitted: an exporter's pace "
          "does not depend on the collector's load, and without it a busy collector stalled the "
          "sender into catch-up bursts larger than the receive buffer); a burst of marker "
          "records (their own source address) pushes the last partly filled buffer through, "
          "and the table's packets minus the marker's are compared with what was sent. The "
          "rate doubles from 4,000/s until a trial accounts less than 99.9%, then bisects; the "
          "search runs 3 times per side, alternating which side goes first, and the median is "
          "reported.",
          "- Scaling: print plugin, 5-tuple, NetFlow v5; sizes from a 100k-record base repeated, "
          "aggregates from 1M records drawn from 1k..1M flows (the last: every record drawn "
          "afresh).",
          "",
          "Reproduce: `make bench` (or `.venv/bin/python bench/run.py`; `--smoke` for the CI form, "
          "`--parts`, `--cases`, `--only` for pieces).", ""]
    L += READING
    L += where_the_cpu_goes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(L))


READING = [
    "## Reading the figures", "",
    "- **Fixed costs.** pmacct's ~4 s of savefile sleeps are netted out of its rates; our own "
    "fixed cost (interpreter, numpy and our imports in the core and in the plugin, ~0.3 CPU-s "
    "and 0.5-1 s of wall on a quiet machine) is netted out of ours the same way. 'CPU-s per 1M "
    "records' keeps both start-ups in, so on 1M-record captures it counts ours against us.",
    "- **pmacct at its best setting is not always lossless.** With `plugin_buffer_size: 204800` "
    "its core drops whole buffers when its plugin falls behind (the log says 'Missing data "
    "detected'); on a busy machine this happens to the print plugin with many distinct keys and "
    "to the memory plugin. Such runs are shown as FAILED in the totals column with their "
    "figures kept, and the targets say where pmacct's figure comes from a lossy run.",
    "- **Contention.** Other test suites may run on the same two cores during a run (see the "
    "load averages above); the repeats keep the best run, but wall-clock rates, the live "
    "UDP search and the net rates of short runs can be off by a factor, in either direction "
    "between the two daemons (whichever ran while the machine was busier). CPU seconds move "
    "much less.",
    "- **Live UDP** depends on the receive buffer (kernel default here, 208 kB, for both) and "
    "on bursts: on schedule the sender sends half a millisecond's worth of datagrams at a "
    "time, but after a stall of its own it catches up in one burst of up to 256 (the largest "
    "is logged per trial as 'sender burst'), and a default buffer holds about 90 of these "
    "datagrams: such a burst is lost in part unless the daemon drains the socket while it "
    "arrives. The sender runs real-time while it sends so that such stalls are rare; the "
    "log says '(sender not real-time)' where the system did not allow it. A rate is "
    "'accounted' when the table's packets equal at least 99.9% of the packets sent.",
    "",
]


if __name__ == "__main__":
    sys.exit(main())
