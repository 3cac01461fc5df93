#!/usr/bin/env python3
"""Replay the same NetFlow v5, v9 and IPFIX captures through pmacct 1.7.7 and ours.

    .venv/bin/python bench/run.py            # 1M records per capture, writes docs/performance.md
    .venv/bin/python bench/run.py --smoke    # 20k records: checks it runs and totals match

For every capture (v5, v9, IPFIX; built once by tests/support/flowgen.py under
bench/captures/, reused while its parameters are unchanged) and every aggregate (5-tuple,
src_host), both nfacctd binaries run the same config: pcap_savefile, one print plugin with
CSV output, a refresh time longer than the run (only the final purge writes), and
``plugin_buffer_size: 204800`` / ``plugin_pipe_size: 20480000`` (without them pmacct's core
sleeps 1 ms per 10 kB buffer handed to a plugin and manages a few tens of thousands of
records per second).

Each run goes through tests/support/measure.py, which accounts for the whole process tree:
wall seconds, CPU seconds (user+sys of every process, via RUSAGE_CHILDREN after reaping
all of them), the peak of the summed RSS and PSS of the live tree (sampled every 20 ms),
and the largest single-process ru_maxrss.

pmacct sleeps about 2 s before reading a savefile and about 2 s after its end, whatever the
capture. Every daemon is therefore also run on a one-record capture of the same version
with the same config; its wall time is the fixed cost, and "net" rates subtract it.

Every run is checked: exit code 0, a clean log, and the packets and bytes summed over the
output equal to what the capture holds. A failed check is shown in the table and makes the
exit code non-zero. Speed is reported, never asserted.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
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
OUT = HERE / "out"
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


def _next_prime(n: int) -> int:
    def prime(k):
        return k > 1 and all(k % d for d in range(2, int(k ** 0.5) + 1))
    while not prime(n):
        n += 1
    return n


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
    s["print_cache_entries"] = max(16411, _next_prime(keys // 4))
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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--smoke", action="store_true", help="20k-record captures; check totals")
    ap.add_argument("--records", type=int, default=None, help="records per capture (default 1M)")
    ap.add_argument("--versions", default="v5,v9,IPFIX")
    ap.add_argument("--aggregates", default="5-tuple,src_host")
    ap.add_argument("--only", choices=["pmacct", "ours"], help="run one side only")
    ap.add_argument("--pmacct-default-buffers", choices=["auto", "yes", "no"], default="auto",
                    help="also time pmacct with its default buffers on v5 5-tuple "
                         "(auto: in full runs only)")
    ap.add_argument("--docs", default=None, help="write the report here "
                    "(default: docs/performance.md for full runs, nowhere for --smoke)")
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--repeat", type=int, default=1,
                    help="run each case this many times and keep the run with the least CPU "
                         "(and the fastest one-record run); for a machine shared with other work")
    a = ap.parse_args(argv)
    records = a.records or (20_000 if a.smoke else 1_000_000)
    versions = [v.strip() for v in a.versions.split(",") if v.strip()]
    aggs = [x.strip() for x in a.aggregates.split(",") if x.strip()]
    pmacct_bin, our_bin = oracle.pmacct_binary(), oracle.our_binary()
    sides = [s for s in ("pmacct", "ours") if a.only in (None, s)]
    if "pmacct" in sides and not pmacct_bin.exists():
        print(f"pmacct's nfacctd not found at {pmacct_bin}: apt-get install -y pmacct", file=sys.stderr)
        return 2
    if "ours" in sides and not our_bin.exists():
        print(f"our nfacctd not found at {our_bin}: .venv/bin/pip install -e .", file=sys.stderr)
        return 2
    binaries = {"pmacct": pmacct_bin, "ours": our_bin}
    if "ours" in sides:
        compile_ours()
    mach = machine()
    print(f"machine: {mach['nproc']} CPUs ({mach['cpu']}), {mach['mem_mib']} MiB; {mach['pmacct']}")
    failures = []
    partial = []      # cases where some repeats failed (e.g. lost records) but not all
    first_detail: dict = {}
    rows = []
    extra_rows = []
    for vname in versions:
        v = VERSIONS[vname]
        cap, meta = build_capture(v, records, a.smoke)
        print(f"\n{vname}: {cap.name}: {meta['records']:,} records in {meta['datagrams']:,} datagrams "
              f"({meta['size'] / 1e6:.1f} MB; generated in {meta['build_seconds']} s)")
        tiny = tiny_capture(v)
        for aname in aggs:
            agg = AGGREGATES[aname]
            res = {}
            for who in sides:
                s = settings_for(cap, agg, meta["keys"][aname], buffers=BENCH_BUFFERS)
                fixed_m = m = None
                walls = []
                bad_runs = []
                for _ in range(max(1, a.repeat)):
                    f1 = run_one(who, binaries[who], settings_for(tiny, agg, 1, buffers=BENCH_BUFFERS),
                                 OUT / f"{who}-{vname}-{aname}-fixed", a.timeout)
                    m1 = run_one(who, binaries[who], s, OUT / f"{who}-{vname}-{aname}", a.timeout)
                    _check_totals(m1, meta)
                    if not m1["ok"]:
                        bad_runs.append(m1["problem"])
                    fixed_m = _better(fixed_m, f1, "wall")
                    m = _better(m, m1, "cpu")
                    if m1.get("ok") and m1.get("wall"):
                        walls.append(m1["wall"])
                if m.get("ok") and walls:
                    m = dict(m, wall=min(walls))   # the least disturbed wall time
                if m["ok"] and bad_runs:
                    partial.append(f"{who} {vname} {aname}: {len(bad_runs)} of {a.repeat} runs "
                                   f"failed ({bad_runs[0]}); the figures are the best good run's")
                if not m["ok"]:
                    failures.append(f"{who} {vname} {aname}: {m['problem']}")
                    first_detail.setdefault(who, m.get("detail", m["problem"]))
                fixed = fixed_m["wall"] if fixed_m.get("ok") else None
                res[who] = metrics(m, meta["records"], fixed)
                state = "ok" if m["ok"] else f"FAILED: {m['problem']}"
                print(f"  {aname:9s} {who:6s} wall {m['wall']:7.2f}s (fixed {fmt_num(fixed, 2)}s) "
                      f"cpu {m.get('cpu', 0):7.2f}s  peak rss {m.get('peak_rss_kb', 0) / 1024:8.1f} MiB  {state}")
            rows.append((f"{vname} {aname}", res.get("pmacct", {}), res.get("ours", {})))
        want_default = (a.pmacct_default_buffers == "yes" or
                        (a.pmacct_default_buffers == "auto" and not a.smoke))
        if vname == "v5" and "pmacct" in sides and "5-tuple" in aggs and want_default:
            s = settings_for(cap, AGGREGATES["5-tuple"], meta["keys"]["5-tuple"], buffers=None)
            m = run_one("pmacct", pmacct_bin, s, OUT / "pmacct-v5-5-tuple-default-buffers", a.timeout)
            fixed_m = run_one("pmacct", pmacct_bin, settings_for(tiny, AGGREGATES["5-tuple"], 1, buffers=None),
                              OUT / "pmacct-v5-5-tuple-default-buffers-fixed", a.timeout)
            ok = m["ok"] and (m["totals"].get("PACKETS"), m["totals"].get("BYTES")) == (meta["packets"], meta["bytes"])
            extra_rows.append(("v5 5-tuple, pmacct default buffers",
                               metrics(m, meta["records"], fixed_m["wall"] if fixed_m.get("ok") else None), ok))
            print(f"  5-tuple  pmacct default buffers: wall {m['wall']:.2f}s {'ok' if ok else 'FAILED ' + m['problem']}")
    table = render_table(rows)
    print("\n" + table)
    for name, mm, ok in extra_rows:
        print(f"\n{name}: " + ", ".join(f"{k} {fmt_num(v, DIGITS.get(k, 0))}" for k, v in mm.items())
              + ("" if ok else "  (totals did NOT match)"))
    if partial:
        print("\nrepeats that failed their checks:\n  " + "\n  ".join(partial))
    if failures:
        print("\nFAILED checks:\n  " + "\n  ".join(failures))
        for who, detail in first_detail.items():
            print(f"\nfirst failed {who} run:\n{detail[-3000:]}")
    docs = a.docs if a.docs is not None else (None if a.smoke else str(DOCS))
    if docs:
        write_docs(Path(docs), mach, records, versions, aggs, rows, extra_rows, failures, a,
                   partial)
        print(f"\nwrote {docs}")
    return 1 if failures else 0


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


def write_docs(path: Path, mach: dict, records: int, versions, aggs, rows, extra_rows, failures, a,
               partial=()):
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Performance: our nfacctd next to pmacct 1.7.7",
        "",
        f"Measured {now} by `bench/run.py`"
        + (f" with `--records {records}`" if records != 1_000_000 else "") + ".",
        "",
        f"Machine: {mach['nproc']} CPUs ({mach['cpu']}), {mach['mem_mib']:,} MiB RAM, "
        f"Linux {mach['kernel']}, Python {mach['python']}; oracle: {mach['pmacct']}.",
        "",
        "## Method",
        "",
        f"- Captures: {records:,} flow records each, NetFlow v5, v9 and IPFIX, generated by "
        "`tests/support/flowgen.py` (4 exporters, 20% IPv6 in v9/IPFIX, 5-tuples drawn from "
        "65,536 flows, ten minutes of export time) into `bench/captures/`.",
        "- Both daemons get the same config: `pcap_savefile`, one `print` plugin with CSV "
        "output, `print_refresh_time` longer than the run, `plugin_buffer_size: 204800`, "
        "`plugin_pipe_size: 20480000`, `print_cache_entries` sized above the distinct keys.",
        "- Wall, CPU (user+sys over the whole process tree) and memory come from "
        "`tests/support/measure.py`: CPU from `RUSAGE_CHILDREN` after reaping every process "
        "of the tree; peak RSS/PSS are the largest sums over the live tree, sampled every "
        "20 ms (RSS counts shared pages once per process, PSS splits them); 'max RSS (one "
        "process)' is `ru_maxrss`.",
        "- Our packages are byte-compiled first (`compileall`), as a wheel install does; an "
        "editable install with `PYTHONDONTWRITEBYTECODE` set would compile them at every "
        "start.",
        "- pmacct sleeps about 2 s before reading a savefile and about 2 s after its end. "
        "'fixed s' is each daemon's wall time on a one-record capture of the same version "
        "with the same config; 'records/s (net of fixed)' divides by wall minus that.",
        f"- Each case ran {a.repeat} time(s): CPU and memory are those of the run with the "
        "least CPU time, wall times the lowest of the runs (and of the one-record runs). "
        "CPU seconds are the figure to compare: other work on the machine (other "
        "developers' test suites on the same 2 cores) disturbs them much less than wall "
        "time.",
        "- Every run is checked: exit code 0, clean log, packets and bytes summed over the "
        "output equal to the capture's. Ratio is ours / pmacct (higher is better for rates, "
        "lower for CPU and memory).",
        "",
        "## Results",
        "",
    ]
    lines += summarise(rows)
    if a.only:
        other = "ours" if a.only == "pmacct" else "pmacct"
        lines += [f"**Only {a.only} was run (`--only {a.only}`); the {other} column is empty.**", ""]
    if failures:
        lines += ["**Failed checks in this run** (their figures are left out):", ""]
        lines += [f"- {f}" for f in failures] + [""]
    if partial:
        lines += ["**Repeats that failed their checks** (not used for the figures):", ""]
        lines += [f"- {p}" for p in partial] + [""]
    lines += [render_table(rows), ""]
    for name, mm, ok in extra_rows:
        lines += [f"{name}: " + ", ".join(f"{k} {fmt_num(v, DIGITS.get(k, 0))}" for k, v in mm.items())
                  + ("" if ok else " (totals did NOT match)") + ".", ""]
    lines += [
        "For comparison, the figures stated for this machine in issue 2: pmacct 1.7.7 with "
        "`plugin_buffer_size: 204800` does about 500k records per wall-second on a 2M-record "
        "v5 capture net of its fixed sleeps (about 0.5M records per CPU-second, 5-tuple), and "
        "about 26k records/s with its default buffers, because in savefile mode its core "
        "sleeps 1 ms after every buffer handed to a plugin.",
        "",
        "Reproduce: `.venv/bin/python bench/run.py` (captures are reused while their "
        "parameters are unchanged; `--smoke` runs 20k records and only checks).",
        "",
    ]
    lines += where_the_cpu_goes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
