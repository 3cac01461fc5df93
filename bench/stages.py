#!/usr/bin/env python3
"""Where the CPU goes: nfacctd -> print, stage by stage, on the bench captures.

    .venv/bin/python bench/stages.py                 # 1M records, v5/v9/IPFIX, writes docs/profile.md
    .venv/bin/python bench/stages.py --versions v5 --aggregates 5-tuple --no-docs
    .venv/bin/python bench/stages.py --cprofile v5   # plus the top functions (cProfile) of one run
    .venv/bin/python bench/stages.py --versions sFlow,pmacctd   # sfacctd and pmacctd (own section)

Two parts:

1. Start-up and shutdown, from real processes (CPU of the whole tree through
   ``tests/support/measure.py``): a bare interpreter, ``import numpy`` as pypmacct does
   it (one OpenBLAS thread), importing the daemon, and the daemon on a one-record
   capture (core and plugin processes, fork, set-up, the final purge of one aggregate,
   exit).
2. The per-record work, in one process: the same objects the daemon builds (config,
   ``NetflowCollector``, ``Core`` channels and rings, the print plugin) run stage by
   stage on the 1M-record capture, each stage timed with ``time.process_time``: savefile
   read, decode, core dispatch (arrival numbers + projection onto the plugin's wire
   dtype), ring write, ring read, key building, aggregation cache, output (drain, render,
   write). No fork: what the two processes would do is done one after the other, so the
   sum is the CPU of the work itself without start-up or waiting.

Captures and configs are bench/run.py's (built there if missing). Figures are CPU
seconds, which a busy machine disturbs less than wall time; each case is run ``--repeat``
times and the lowest figure of each stage is kept.
"""
from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import io
import json
import os
import pstats
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

import run as bench  # noqa: E402  (bench/run.py)
from tests.support import oracle  # noqa: E402

DOCS = REPO / "docs" / "profile.md"
STAGES = ["savefile read", "decode", "core dispatch (seq + projection)", "ring write",
          "ring read", "key building", "aggregation cache", "output (drain, render, write)"]


def _cpu_of(cmd: list[str], cwd=None, repeat: int = 3) -> float:
    """Lowest CPU seconds (user+sys of the whole tree) of ``cmd`` over ``repeat`` runs."""
    best = None
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "m.json"
        env = dict(os.environ, TZ="UTC", PYTHONPATH=str(REPO))
        for _ in range(repeat):
            subprocess.run([sys.executable, "-m", "tests.support.measure", "--out", str(out), "--"]
                           + cmd, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
            m = json.loads(out.read_text())
            best = m["cpu"] if best is None else min(best, m["cpu"])
    return best


def _startup_rows(daemon: str, tiny, agg: list[str], imports: dict, repeat: int) -> dict:
    """CPU seconds of a bare interpreter, of numpy imported as the daemons import it
    (``import pypmacct``: one OpenBLAS thread; a bare ``import numpy`` starts a thread
    pool no daemon pays for), of each of ``imports`` (row name: code), and of ours' and
    pmacct's ``daemon`` on the one-record capture ``tiny``."""
    py = str(REPO / ".venv" / "bin" / "python")
    if not os.path.exists(py):
        py = sys.executable
    res = {"python": _cpu_of([py, "-c", "pass"], repeat=repeat),
           "import numpy (as pypmacct does)": _cpu_of([py, "-c", "import pypmacct"],
                                                      repeat=repeat)}
    res.update({name: _cpu_of([py, "-c", code], repeat=repeat) for name, code in imports.items()})
    with tempfile.TemporaryDirectory() as tmp:
        s = bench.settings_for(tiny, agg, 1, buffers=bench.BENCH_BUFFERS)
        conf = Path(tmp) / "daemon.conf"
        conf.write_text(oracle.render_config(s))
        res["one-record run"] = _cpu_of([str(oracle.our_binary(daemon)), "-f", str(conf)],
                                        cwd=tmp, repeat=repeat)
        if oracle.pmacct_binary(daemon).exists():
            res["pmacct one-record run"] = _cpu_of([str(oracle.pmacct_binary(daemon)), "-f",
                                                    str(conf)], cwd=tmp, repeat=repeat)
    return res


def startup(version: int, agg: list[str], repeat: int) -> dict:
    return _startup_rows("nfacctd", bench.tiny_capture(version), agg, {
        "import daemon": "import pypmacct.daemons.nfacctd",
        "import daemon + print plugin": "import pypmacct.daemons.nfacctd, "
                                        "pypmacct.plugins.print_plugin, pypmacct.output",
    }, repeat)


class _Laps:
    """CPU seconds and minor page faults booked to named stages, lap by lap."""

    def __init__(self):
        self.cpu = {k: 0.0 for k in STAGES}
        self.faults = {k: 0 for k in STAGES}

    @staticmethod
    def _now():
        return time.process_time(), resource.getrusage(resource.RUSAGE_SELF).ru_minflt

    def start(self):
        self._c, self._f = self._now()

    def lap(self, stage: str):
        c, f = self._now()
        self.cpu[stage] += c - self._c
        self.faults[stage] += f - self._f
        self._c, self._f = self._now()


def _reader_decoder(daemon, cfg, log, dtype):
    """(collector, iterator of raw reads, decode function) of a daemon's savefile path."""
    from pypmacct.daemons.nfacctd import NetflowCollector, SAVEFILE_DATAGRAMS
    if daemon == "pmacctd":
        from pypmacct.daemons.pmacctd import PcapCollector
        from pypmacct.sources.capture import savefile_chunks
        coll = PcapCollector(cfg, log, dtype)
        return coll, iter(savefile_chunks(cfg.get("pcap_savefile"))), coll.decoder.decode
    if daemon == "sfacctd":
        from pypmacct.daemons.sfacctd import SflowCollector as cls
    else:
        cls = NetflowCollector
    coll = cls(cfg, log, dtype)
    coll.open()
    coll.source.delay = 0
    size = getattr(coll, "SAVEFILE_BATCH", SAVEFILE_DATAGRAMS)
    return coll, iter(coll.source.batches(size)), coll._decode


def stages(capture: Path, agg: list[str], keys: int, profile: cProfile.Profile | None = None,
           daemon: str = "nfacctd") -> dict:
    """CPU seconds per stage for one capture, in one process (see the module doc)."""
    from pypmacct.config import load_config
    from pypmacct.daemons.common import CORE_FIELDS, build_plugins
    from pypmacct.plugins.base import PluginContext
    from pypmacct.record import Batch, project, subset_dtype
    from pypmacct.runtime.core import Core
    from pypmacct.runtime.log import SINK, Logger
    import numpy as np

    from pypmacct.runtime.memory import tune_malloc
    tune_malloc()           # as run_daemon does
    tm = _Laps()
    with tempfile.TemporaryDirectory() as tmp:
        s = bench.settings_for(capture, agg, keys, buffers=bench.BENCH_BUFFERS)
        s["logfile"] = str(Path(tmp) / "daemon.log")
        s["print_output_file"] = str(Path(tmp) / "out.csv")
        conf = Path(tmp) / "daemon.conf"
        conf.write_text(oracle.render_config(s))
        cfg = load_config(daemon, ["-f", str(conf)])
        SINK.configure(logfile=cfg.get("logfile"), syslog_facility=None, debug=False,
                       ident=daemon, utc=True)
        log = Logger("default", "core")
        ctx = PluginContext(daemon=daemon)
        plugins = build_plugins(cfg, ctx, log)
        fields = set(CORE_FIELDS).union(*(p.wire_fields() for p in plugins))
        coll, it, decode = _reader_decoder(daemon, cfg, log,
                                           subset_dtype(ctx.record_dtype, fields))
        core = Core(daemon, cfg, coll.record_dtype, log)
        for p in plugins:
            core.add_plugin(p)
        (ch,) = core.channels
        plugin, ring = ch.plugin, ch.ring
        plugin.start()
        records = 0
        if profile:
            profile.enable()
        tm.start()
        while True:
            dgrams = next(it, None)
            tm.lap("savefile read")
            if dgrams is None:
                break
            batch = decode(dgrams)
            tm.lap("decode")
            if len(batch) == 0:
                continue
            records += len(batch)
            # Core.dispatch, cut in its two parts
            if "arrival_seq" in batch.records.dtype.names:
                batch.records["arrival_seq"] += np.uint64(core._arrival_base)
                core._arrival_base += len(batch)
            sel = ch.select(batch)
            wire = Batch(project(sel.records, ch.wire_dtype), sel.strings)
            tm.lap("core dispatch (seq + projection)")
            dropped = ring.write(wire, wait=False)
            assert dropped == 0, "ring too small for one batch"
            del batch, sel, wire
            tm.lap("ring write")
            while True:
                rb = ring.read()
                tm.lap("ring read")
                if rb is None:
                    break
                # AggregatingPlugin.ingest, cut in its two parts
                k, v, q = plugin.keys.build(rb.records, plugin._string_lut(rb.strings))
                tm.lap("key building")
                plugin.cache.add(k, v, q)
                if plugin.cache_limit and plugin.cache.upper_bound() >= plugin.cache_limit:
                    if len(plugin.cache) >= plugin.cache_limit:
                        plugin.on_cache_full()
                del k, v, q, rb
                tm.lap("aggregation cache")
            # empty the wake-up pipe as the plugin's wait() would
            try:
                os.read(ring.rfd, 1 << 16)
            except BlockingIOError:
                pass
            tm.lap("ring read")
        plugin.cache.compact()
        tm.lap("aggregation cache")
        plugin.finish()
        tm.lap("output (drain, render, write)")
        if profile:
            profile.disable()
        coll.close()
        ring.close_fds()
        out_lines = sum(1 for _ in open(s["print_output_file"])) - 1
    t = dict(tm.cpu)
    t.update({f"faults:{k}": v for k, v in tm.faults.items()})
    t["_records"] = records
    t["_aggregates"] = out_lines
    return t


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--versions", default="v5,v9,IPFIX")
    ap.add_argument("--aggregates", default="5-tuple,src_host")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--cprofile", metavar="CASE", help="e.g. 'v5' or 'v9:src_host': print the "
                    "top functions of that case's stages")
    ap.add_argument("--no-docs", action="store_true")
    a = ap.parse_args(argv)
    versions = [v for v in a.versions.split(",") if v]
    aggs = [x for x in a.aggregates.split(",") if x]
    bench.compile_ours()
    rows = []
    for vname in versions:
        daemon = SOURCE_CASES.get(vname, "nfacctd")
        if daemon == "nfacctd":
            cap, meta = bench.build_capture(bench.VERSIONS[vname], a.records, False)
        else:
            cap, n = source_capture(daemon)
            meta = {"keys": {k: n for k in bench.AGGREGATES}}
        for aname in aggs:
            best = None
            prof = None
            for i in range(a.repeat):
                want = a.cprofile and i == 0 and a.cprofile in (vname, f"{vname}:{aname}")
                prof = cProfile.Profile() if want else prof
                r = stages(cap, bench.AGGREGATES[aname], meta["keys"][aname],
                           prof if want else None, daemon)
                best = r if best is None else {k: min(best[k], r[k]) for k in best}
            if prof is not None:
                sio = io.StringIO()
                pstats.Stats(prof, stream=sio).sort_stats("tottime").print_stats(30)
                print(sio.getvalue())
            total = sum(best[k] for k in STAGES)
            print(f"{vname} {aname}: {best['_records']:,} records, {best['_aggregates']:,} aggregates, "
                  f"{total:.3f} CPU-s of work")
            for k in STAGES:
                print(f"  {k:36s} {best[k]:7.3f}  {best['faults:' + k]:7d} page faults")
            rows.append((vname, aname, best))
    st = {}
    for vname in versions:
        daemon = SOURCE_CASES.get(vname, "nfacctd")
        st[vname] = (startup(bench.VERSIONS[vname], bench.AGGREGATES[aggs[0]], a.repeat + 1)
                     if daemon == "nfacctd" else
                     source_startup(daemon, bench.AGGREGATES[aggs[0]], a.repeat + 1))
        print(f"{vname} start-up: " + ", ".join(f"{k} {v:.3f}" for k, v in st[vname].items()))
    if not a.no_docs:
        if all(v in SOURCE_CASES for v in versions):
            write_source_docs(rows, st)
        else:
            write_docs(rows, st, a.records)
        print(f"wrote {DOCS}")
    return 0


# cases that are not nfacctd's: the captures of bench/sources.py (large size)
SOURCE_CASES = {"sFlow": "sfacctd", "pmacctd": "pmacctd"}


def source_capture(daemon: str):
    import sources
    kind = "sflow" if daemon == "sfacctd" else "packets"
    maker = sources.sflow_capture if kind == "sflow" else sources.packet_capture
    return maker(*sources.SIZES["large"][kind])


def source_startup(daemon: str, agg: list[str], repeat: int) -> dict:
    import sources
    tiny = sources.tiny("sflow" if daemon == "sfacctd" else "packets")
    return _startup_rows(daemon, tiny, agg, {"import daemon": f"import pypmacct.daemons.{daemon}"},
                         repeat)


SOURCE_BEGIN = "<!-- sfacctd/pmacctd stages: written by bench/stages.py --versions sFlow,pmacctd -->"
SOURCE_END = "<!-- end of sfacctd/pmacctd stages -->"
SOURCE_NOTES_FILE = HERE / "stages-sources-notes.md"


def write_source_docs(rows, st) -> None:
    """The sfacctd/pmacctd section of docs/profile.md (the nfacctd part is left alone)."""
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    L = [SOURCE_BEGIN, "", "# Where the CPU goes (sfacctd and pmacctd -> print)", "",
         f"Measured {now} by `bench/stages.py --versions sFlow,pmacctd` on the large captures "
         "of `bench/sources.py` (sFlow v5: 1,002,625 flow samples; packets: 1,000,000 "
         "802.1Q frames), same method as above: the daemon's objects stage by stage in one "
         "process, CPU seconds, lowest of repeated runs.", ""]
    head = "| stage | " + " | ".join(f"{v} {a}" for v, a, _ in rows) + " |"
    L += [head, "|---|" + "---:|" * len(rows)]
    for k in STAGES:
        L.append(f"| {k} | " + " | ".join(f"{r[k]:.3f}" for _, _, r in rows) + " |")
    L.append("| **total** | " + " | ".join(f"**{sum(r[k] for k in STAGES):.3f}**"
                                          for _, _, r in rows) + " |")
    L.append("| aggregates written | " + " | ".join(f"{r['_aggregates']:,}" for _, _, r in rows)
             + " |")
    names = list(next(iter(st.values())).keys())
    L += ["", "Fixed cost (CPU seconds of real processes, the whole tree, lowest of a few "
          "runs; the one-record run is the daemon on `bench/captures/<kind>-tiny.pcap`):", "",
          "| what | " + " | ".join(SOURCE_CASES[v] for v in st) + " |", "|---|" + "---:|" * len(st)]
    for n in names:
        L.append(f"| {n} | " + " | ".join(f"{st[v].get(n, 0):.3f}" for v in st) + " |")
    if SOURCE_NOTES_FILE.exists():
        L += ["", SOURCE_NOTES_FILE.read_text().rstrip()]
    L += ["", SOURCE_END]
    section = "\n".join(L)
    text = DOCS.read_text() if DOCS.exists() else ""
    if SOURCE_BEGIN in text and SOURCE_END in text:
        a, b = text.index(SOURCE_BEGIN), text.index(SOURCE_END) + len(SOURCE_END)
        text = text[:a] + section + text[b:]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    DOCS.write_text(text)


NOTES = """## Reading it, and what issue 7 changed

- **The fixed cost dominates small and medium runs.** pmacct starts in well under
  0.1 CPU-s; we pay for the interpreter (~0.02), `import numpy` and our own modules,
  then the core's and the plugin's set-up. Before issue 7 a one-record run cost
  0.32-0.41 CPU-s on this machine: with `PYTHONDONTWRITEBYTECODE` set and an editable
  install, every start compiled ~60 modules (~60 ms; `bench/run.py` now byte-compiles
  first, as a wheel install does); numpy's OpenBLAS started a thread pool and
  allocated its buffers at import (~60 ms; `pypmacct/__init__.py` now imports numpy
  with `OPENBLAS_NUM_THREADS=1` unless the user set it: nothing here does float
  linear algebra); `numpy.random` (only for the cache's hash multipliers),
  `importlib.metadata` (only for `-V`) and `tempfile` were imported on every start
  (~45 ms); and numpy 2's plain `np.unique` imports `numpy.ma` on first use (~20 ms).
  All of these are gone from the daemon's path; `import numpy` alone is now ~0.08.
- **Page faults were a tenth of a CPU-second.** glibc returned every multi-MB batch
  array to the kernel and faulted the next one in afresh (20-30k faults per million
  records in the core, ~10k in the plugin); `pypmacct/runtime/memory.py` keeps such
  blocks in the heap (`mallopt`), set once before the plugins fork. What is left is
  mostly the ring's first lap (5,000 faults: 20 MB written once) and the cache's
  columns growing.
- **The ring goes back to slot 0** (2026-12-03) whenever its reader has caught up, so
  a reader that keeps up works in the first few slots and the rest of the pipe is never
  touched. In this one-process breakdown the reader always catches up between
  batches: the ring write of 1M v5 records went from 5,001 page faults and 0.038 CPU-s
  to ~1,100 and ~0.014. In real processes it depends on the reader keeping up with
  the core. The same day the cache's slot table began to grow fourfold instead of
  twofold (the cache with 1M new keys: ~0.35 to ~0.28 CPU-s).
- **Exit without teardown** (2026-12-03). The core process ended through the
  interpreter's normal exit, which frees every module, function and array one by one;
  after the fork, each page that writes to is copied first. That was ~25 ms of CPU and
  ~3,000 page faults per run: a one-record nfacctd run went from 0.187 to 0.160 CPU-s
  (least of 10, quiet machine). The console scripts now end through
  `pypmacct.runtime.process.exit_now` (threads joined, atexit handlers run, stdio
  flushed, then `os._exit`), as the plugin processes already did. `gc.freeze()` before
  the fork, tried with it, made no measurable difference and was left out.
- **LAST values** (the flow type) were kept with `maximum.at` over (sequence, value)
  pairs; a block whose rows all carry one value (nearly always) now takes it with one
  assignment (15 -> 4 ms per million rows).
- **Projection was a copy of a copy.** The decoder already fills only the fields the
  plugins need, so with one plugin the core's projection onto the wire dtype produced
  an identical array; it now passes the decoded records straight to the ring.
- **No CPU is burnt waiting.** An idle nfacctd (UDP, no traffic) uses no measurable
  CPU over 20 s (both processes sleep in select/poll with timeouts of 0.5-1 s); during
  a savefile replay a core that finds the ring full sleeps until the plugin has freed a
  quarter of it (the plugin says so on a pipe back): a few wake-ups per lap of the ring,
  where polling every 0.5 ms woke it 470-990 times per million records on a busy machine
  (~30 us of CPU each).
- **What remains, per million records**: the aggregation cache for many distinct keys
  (5-tuple: 65k aggregates; the probe's gather of the stored keys to compare them is
  most of it), decoding v9/IPFIX (gathering each template's records out of the
  datagrams, ~35 ns per record, and walking the sets), and reading the savefile (the
  pcap record walk is a Python loop, ~0.3 us per datagram, plus the read copies).
- **Live UDP: a decode's fixed cost** (measured 2026-12-08 with `bench/live_takes.py`, not
  part of this breakdown).
  Decoding one batch costs the core about a millisecond whatever its size (some 900
  interpreter-level steps of the vectorised path: headers, domains, template groups,
  assembly), where a replay batch of 2048 datagrams spreads it thin. Live, the reader
  hands over what came since the last take, a few datagrams at moderate rates, so the
  core spent 1.4-1.9 CPU-s per 2 s trial from 4k to 32k datagrams/s. A take of fewer
  than 64 datagrams now waits 2 ms once for more (`pypmacct/sources/udp.py`): 0.5-0.9
  CPU-s per trial. Waits of 5 and 10 ms cut the CPU further but failed more of the
  six-trial rounds at 32k/s run in turn with it (2 ms: 2 and 4 of 6; 5 ms: 2 and 5;
  10 ms: 4 and 6), so 2 ms was kept.
- **Why the small runs cost more per record** (the scaling series). This machine is a
  Firecracker microVM with nested virtualisation (`nested_pvm=1` on its kernel command
  line), where the first touch of a page costs about 3 us: 3.0-3.3 us per 4 kB page
  written into a fresh 200 MB mapping, and the same after unmapping it and mapping it
  again, about ten times bare metal. A run faults its working set in once. The 100k-record
  run of the capture-size series faults ~7,900 pages more than its one-record run, the
  300k run ~12,600, the 1M run ~14,100, and larger runs hardly more (perf stat over the
  process tree). At 3 us that is ~24 ms, ~0.24 us per record at 100k and ~0.04 at 1M:
  most of the gap between the small and the large points. The series' ~50k aggregates
  (a 100k-record base repeated) are each inserted and printed once per run, which adds
  ~0.17 us per record at 100k and ~0.02 at 1M. Transparent huge pages were tried for the
  cache's columns and slot tables (`MADV_HUGEPAGE`, mappings rounded to 2 MB). They halved
  the page faults of the run with 1M distinct aggregates (55k to 27k) and did not lower
  its CPU (+60 ms, median of 10 paired runs; 4 kB faults cost the same here whether or
  not the guest maps huge pages), so they were not kept. Only touching less new memory
  would help.
- **What a flat curve would take** (target 5: the dearest point of each series within
  1.5x of the cheapest). This was measured on the session's machine, with perf samples at
  4 kHz split by process title, three runs a size, over the 100k-1M points of the
  capture-size series:
  - **Beyond the one-record run, the 100k run costs ~49 ms in the plugin and ~27 ms in
    the core.**
  - **Between 300k and 1M, each further record costs ~0.18 us in the plugin and ~0.14 us
    in the core.** So ~31 ms of the plugin's time and ~13 ms of the core's are work the
    100k run does once:
    - its ~51k aggregates, each inserted and printed once, at ~0.55 us each (~28 ms);
    - its first-touch page faults.
  - **The allowance is ~16 ms.** At 0.32 us per record, a 100k point within 1.5x of the
    large ones allows 0.5 x 0.32 us x 100k = ~16 ms of such work. The run does ~44 ms.
  - **The distinct-aggregates series is missed for the same reason.** A new aggregate may
    add at most half the 1k-aggregate cost per record (0.5 x 0.24 = ~0.12 us). It adds
    ~0.5 us:
    - the 1M-aggregate run faults ~36k pages (~146 MB) more than the 1k run, and its
      system time is 0.12 s higher (the median of 7 runs each);
    - in-process, inserting 1M distinct 5-tuple keys into `AggregationCache` takes
      0.24-0.31 s;
    - rendering 1M CSV rows takes 0.20-0.28 s, of which ~83 ns a row is the
      `bytes.translate` that deletes the NUL padding.
  - **Ways to speed these up, measured:**
    - gathering key rows as one void item each is 2x faster on its own (8.4 to 4.9 ns a
      row), but it saves ~15 ms per 1M aggregates, below the run-to-run noise;
    - an IPv4 text from one 512-entry octet table was no faster than the pair tables
      (8.9 against 9.8 ns an address);
    - `bytes.replace` (229 ns a row) and a boolean mask (110 ns) are slower than
      `translate` (83 ns);
    - savefile decode batches of 512 datagrams instead of 2048 took ~1,800 page faults
      off the 100k run and ~4,500 off the 1M v9 replay, but cost more CPU: +23 ms at
      100k, +150 ms (v9) and +190 ms (IPFIX) per 1M records (medians of 8 paired runs
      of two worktrees).
  - **pmacct's capture-size series is flatter (1.31) because it is slower.** It spends
    ~0.93-0.96 us on each record, so the same fixed work weighs about a quarter as much.
    By the same arithmetic, every saving on our per-record path makes our ratio worse:
    at half today's per-record cost, the 100k point would stand ~2.7x above the 10M
    point of the 16:53 bench.
  - **Meeting 1.5 here would need per-aggregate work three to four times cheaper.** That
    means a compiled kernel for the insert and the render, a design change not made
    here. It would also need the run's memory touched before the run starts, which only
    moves that cost into the start-up the bench subtracts, so it was not done.
  - **The bench now counts CPU from the daemon's first fork.** The start-up before the
    core and plugin take their titles (interpreter, imports, config) varied from ~130 to
    ~230 ms of CPU between identical runs, more than a 100k run's whole net work. The
    bench now reads each task's CPU at the moment the daemon first forks and nets both the
    run and its one-record partner from there: the one-record run then costs ~20 ms
    after the fork instead of ~150-180 ms in all. The 100k point is steadier for it, and
    no cheaper: ~0.7-0.8 CPU-s per 1M, still two to three times the 3M and 10M points.
"""


def write_docs(rows, st, records: int) -> None:
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    L = ["# Where the CPU goes (nfacctd -> print)", "",
         f"Measured {now} by `bench/stages.py` on the `bench/run.py` captures "
         f"({records:,} records each) and configs. CPU seconds (`time.process_time`, "
         "or user+sys of the process tree), lowest of repeated runs: the machine is shared, "
         "and CPU time is what contention disturbs least.", "",
         "## Per-record work", "",
         "The daemon's own objects run stage by stage in one process, without the fork "
         "(so no start-up, no waiting): what the core and the plugin process do for the "
         "capture, one stage after the other.", ""]
    head = "| stage | " + " | ".join(f"{v} {a}" for v, a, _ in rows) + " |"
    L += [head, "|---|" + "---:|" * len(rows)]
    for k in STAGES:
        L.append(f"| {k} | " + " | ".join(f"{r[k]:.3f}" for _, _, r in rows) + " |")
    L.append("| **total** | " + " | ".join(f"**{sum(r[k] for k in STAGES):.3f}**"
                                          for _, _, r in rows) + " |")
    L.append("| aggregates written | " + " | ".join(f"{r['_aggregates']:,}" for _, _, r in rows)
             + " |")
    L += ["", "## Fixed cost: start-up and shutdown", "",
          "CPU seconds of real processes (the whole tree), lowest of a few runs. The "
          "one-record run is the daemon on `bench/captures/v<N>-1.pcap` with the bench "
          "config: both processes' start-up (interpreter, imports, configuration, fork, "
          "plugin set-up) and shutdown (final purge, exit); it is paid once per run, "
          "whatever the capture holds.", ""]
    names = list(next(iter(st.values())).keys())
    L += ["| what | " + " | ".join(st) + " |", "|---|" + "---:|" * len(st)]
    for n in names:
        L.append(f"| {n} | " + " | ".join(f"{st[v].get(n, 0):.3f}" for v in st) + " |")
    L += ["", NOTES, "", "Reproduce: `.venv/bin/python bench/stages.py` (`--cprofile v5` adds the "
          "functions that cost most; `--help` for the options).", ""]
    DOCS.write_text("\n".join(L))


if __name__ == "__main__":
    sys.exit(main())
