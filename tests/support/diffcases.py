"""The differential matrix: captures x aggregate sets x print formats.

One daemon run serves many cases: every (aggregate set, format) of a capture becomes its
own ``print[NAME]`` plugin instance with its own output file, so pmacct's fixed ~4 s per
savefile run is paid twice per capture (group "csv" and group "other"), not once per case.
Set ``PYPMACCT_DIFF_ONE_PLUGIN=1`` to run our daemon with one plugin per run instead (for
a daemon that does not do several plugins yet, or to isolate a failure).

Captures come from three places:
- ``gen-*``: flowgen, fixed seeds, small (a few thousand records), written per session;
- ``corpus-*``: pmacct's own test captures in ../shared/corpus;
- ``sfd-*``: softflowd 1.1.0 exporting a scapy-built packet capture (v5, v9, IPFIX).
"""
from __future__ import annotations

import hashlib
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from . import flowgen, oracle, softflowd

REPO = oracle.REPO
CORPUS = Path(os.environ.get("PMACCT_CORPUS", REPO.parent / "shared" / "corpus")) / "pmacct-tests"

FIVE_TUPLE = ["src_host", "dst_host", "src_port", "dst_port", "proto"]


@dataclass(frozen=True)
class AggSet:
    id: str
    primitives: tuple
    needs: str = ""            # capture tag required ("" = any capture)
    formats: tuple = ("csv",)
    extra: tuple = ()          # extra per-plugin settings ((key, value), ...)


AGGREGATES = [
    AggSet("src_host", ("src_host",), formats=("csv", "formatted", "json")),
    AggSet("5tuple", tuple(FIVE_TUPLE),
           formats=("csv", "formatted", "json", "event_csv", "event_formatted")),
    AggSet("l34", tuple(FIVE_TUPLE) + ("tos", "tcpflags"), formats=("csv", "formatted", "json")),
    AggSet("routing", ("peer_src_ip", "in_iface", "out_iface", "src_as", "dst_as", "src_mask",
                       "dst_mask", "src_net", "dst_net", "peer_dst_ip"),
           formats=("csv", "formatted", "json")),
    # alone, so that flows of both families without a BGP next hop meet in one row
    AggSet("peer_dst_ip", ("peer_dst_ip",), formats=("csv",)),
    AggSet("l2", ("src_mac", "dst_mac", "vlan"), formats=("csv", "json")),
    AggSet("times", ("peer_src_ip", "timestamp_start", "timestamp_end"),
           formats=("csv", "formatted", "json")),
    AggSet("times_epoch", ("timestamp_start", "timestamp_end", "proto"),
           extra=(("timestamps_since_epoch", "true"),)),
    AggSet("export", ("peer_src_ip", "export_proto_version", "export_proto_seqno",
                      "export_proto_sysid"), formats=("csv", "json")),
    AggSet("sum_host", ("sum_host",), formats=("csv", "json")),
    AggSet("sum_port", ("sum_port",)),
    AggSet("none", ("none",), formats=("csv", "formatted", "json")),
    AggSet("flows", ("peer_src_ip", "proto", "flows"), formats=("csv", "json")),
    AggSet("mpls", ("mpls_label_top", "mpls_label_bottom", "mpls_stack_depth"),
           formats=("csv", "json")),
    AggSet("sampling", ("peer_src_ip", "sampling_rate"), formats=("csv", "json")),
    AggSet("nat", ("src_host", "post_nat_src_host", "post_nat_dst_host", "post_nat_src_port",
                   "post_nat_dst_port", "nat_event"), needs="nat", formats=("csv", "json")),
    # one-minute bins, one file per bin (the file name carries the bin)
    AggSet("history", ("peer_src_ip", "proto"), formats=("csv",),
           extra=(("print_history", "1m"), ("print_history_roundoff", "m"),
                  ("print_output_file", "out-history-csv-%Y%m%d-%H%M.txt"))),
    AggSet("history_ts", ("timestamp_start", "proto"), formats=("json",),
           extra=(("print_history", "1m"), ("print_history_roundoff", "m"),
                  ("timestamps_since_epoch", "true"), ("timestamps_secs", "true"),
                  ("print_output_file", "out-history_ts-json-%Y%m%d-%H%M.txt"))),
]
AGG_BY_ID = {a.id: a for a in AGGREGATES}


@dataclass(frozen=True)
class Capture:
    id: str
    source: str                # "gen", "corpus", "softflowd"
    tags: frozenset = frozenset()
    params: flowgen.GenParams | None = None
    path: str = ""             # corpus: relative to CORPUS
    version: int = 0           # softflowd export version
    fmt: str = "pcap"
    only: frozenset = frozenset()   # when set, only these aggregate sets run on it


_COMMON = dict(records=3000, exporters=3, hosts=60, ports=20)
_AGED_MS = 25 * 86_400_000


def _aged_capture(cap_id: str, **kw) -> Capture:
    """Flows 25 days old at export, past 2^31 ms of sysUpTime: pmacct's (uptime - switched)
    is unsigned, so they are 25 days back, not ~24.7 days ahead. Only the time sets run."""
    params = flowgen.GenParams(boot_age=40 * 86_400, min_age_ms=_AGED_MS,
                               max_age_ms=_AGED_MS + 20_000, **kw, **_COMMON)
    return Capture(cap_id, "gen", params=params,
                   only=frozenset({"times", "times_epoch", "history", "history_ts"}))


CAPTURES = [
    Capture("gen-v5", "gen", params=flowgen.GenParams(version=5, seed=11, **_COMMON)),
    Capture("gen-v9", "gen", frozenset({"mpls"}), flowgen.GenParams(version=9, seed=12, **_COMMON)),
    Capture("gen-ipfix", "gen", frozenset({"mpls"}), flowgen.GenParams(version=10, seed=13, **_COMMON)),
    Capture("gen-v5-sampled", "gen", frozenset({"sampling"}),
            flowgen.GenParams(version=5, seed=14, sampling=64, **_COMMON)),
    Capture("gen-v9-edges", "gen", frozenset({"sampling", "mpls"}),
            flowgen.GenParams(version=9, seed=15, sampling=100, padding=True, redefine=True,
                              domains=2, exporter_family="mix", template_every=5, **_COMMON)),
    Capture("gen-ipfix-nat", "gen", frozenset({"nat", "sampling"}),
            flowgen.GenParams(version=10, seed=16, nat=True, sampling=1000, padding=True,
                              redefine=True, domains=2, exporter_family="6", **_COMMON)),
    _aged_capture("gen-v5-aged", version=5, seed=18),
    _aged_capture("gen-v9-aged", version=9, seed=19),
    Capture("gen-ipfix-pcapng", "gen", frozenset(),
            flowgen.GenParams(version=10, seed=17, records=1500, groups=("tos", "tcpflags", "ifaces")),
            fmt="pcapng"),
    Capture("corpus-100", "corpus", frozenset({"mpls"}), path="100-IPFIXv10-CISCO/traffic-00.pcap"),
    Capture("corpus-101", "corpus", path="101-NFv9-CISCO-cust_primitives/traffic-00.pcap"),
    Capture("corpus-102", "corpus", frozenset({"sampling"}),
            path="102-NFv9-CISCO-f2rd-pretag-sampling-reload/traffic-00.pcap"),
    Capture("corpus-104", "corpus", frozenset({"sampling"}),
            path="104-IPFIXv10-IPv6-CISCO-sampling_option/traffic-00.pcap"),
    Capture("corpus-106", "corpus", path="106-IPFIXv10-HUAWEI-vrf_name/traffic-00.pcap"),
    Capture("corpus-110-00", "corpus", path="110-IPFIXv10-NFv9-multiple-sources/traffic-00.pcap"),
    Capture("corpus-110-01", "corpus", path="110-IPFIXv10-NFv9-multiple-sources/traffic-01.pcap"),
    Capture("corpus-110-02", "corpus", path="110-IPFIXv10-NFv9-multiple-sources/traffic-02.pcap"),
    Capture("corpus-111-00", "corpus", path="111-IPFIXv10-NFv9-IPv6-IPv4-mix_sources/traffic-00.pcap"),
    Capture("corpus-111-01", "corpus", path="111-IPFIXv10-NFv9-IPv6-IPv4-mix_sources/traffic-01.pcap"),
    Capture("corpus-112", "corpus", frozenset({"sampling"}),
            path="112-IPFIXv10-CISCO-options-map-reassignment/traffic-00.pcap"),
    Capture("corpus-401-00", "corpus", frozenset({"mpls"}),
            path="401-IPFIXv10-BMP-IPv6-CISCO-MPLS-multiple-sources/traffic-00.pcap"),
    Capture("corpus-403", "corpus", path="403-IPFIXv10-BMP-IPv6-CISCO-locrib-peerdown-vrf/traffic-00.pcap"),
    Capture("corpus-500", "corpus", path="500-IPFIXv10-BGP-CISCO-SRv6/traffic-00.pcap"),
    Capture("sfd-v5", "softflowd", version=5),
    Capture("sfd-v9", "softflowd", version=9),
    Capture("sfd-ipfix", "softflowd", version=10),
]
CAPTURE_BY_ID = {c.id: c for c in CAPTURES}

GENERIC = {"src_host", "5tuple", "l34", "routing", "peer_dst_ip", "l2", "times", "times_epoch", "export",
           "sum_host", "sum_port", "none", "flows", "history", "history_ts"}


def aggsets_for(cap: Capture) -> list[AggSet]:
    out = []
    for a in AGGREGATES:
        if cap.only and a.id not in cap.only:
            continue
        if a.needs and a.needs not in cap.tags:
            continue
        if a.id == "mpls" and "mpls" not in cap.tags:
            continue
        if a.id == "sampling" and "sampling" not in cap.tags:
            continue
        out.append(a)
    return out


def plugin_name(agg: AggSet, fmt: str) -> str:
    return f"{agg.id}-{fmt}"


def group_of(fmt: str) -> str:
    return "csv" if fmt == "csv" else "other"


@dataclass(frozen=True)
class Case:
    capture: Capture
    agg: AggSet
    fmt: str

    @property
    def id(self) -> str:
        return f"{self.capture.id}:{self.agg.id}:{self.fmt}"

    @property
    def group(self) -> tuple[str, str]:
        return (self.capture.id, group_of(self.fmt))

    @property
    def plugin(self) -> str:
        return plugin_name(self.agg, self.fmt)


def all_cases() -> list[Case]:
    return [Case(c, a, f) for c in CAPTURES for a in aggsets_for(c) for f in a.formats]


# --------------------------------------------------------------------------------------
# Building captures
# --------------------------------------------------------------------------------------
# softflowd stamps its headers with the wall clock and its flows with the packets' times, so
# a flow's age in the export is (now - packet time) modulo 2^32 ms: with a fixed packet date
# it drifts through the whole 49.7-day cycle of the counter. Packets from the start of
# yesterday (UTC) keep it at one to two days, and the capture the same all day (cache hits).
TRAFFIC_PARAMS = dict(seed=7, flows=300, max_packets=50,
                      base_time=float((int(time.time()) // 86_400 - 1) * 86_400))


def build_capture(cap: Capture, capdir: Path, cache_dir: Path) -> Path:
    """Path of the capture, creating it under ``capdir`` (softflowd's under ``cache_dir``)."""
    capdir.mkdir(parents=True, exist_ok=True)
    if cap.source == "corpus":
        p = CORPUS / cap.path
        if not p.exists():
            raise FileNotFoundError(f"corpus capture missing: {p} (set PMACCT_CORPUS)")
        return p
    if cap.source == "gen":
        p = capdir / f"{cap.id}.{cap.fmt}"
        if not p.exists():
            exp = flowgen.generate(cap.params)
            exp.write_pcap(p.with_suffix(".tmp"), cap.fmt)
            os.replace(p.with_suffix(".tmp"), p)
        return p
    if cap.source == "softflowd":
        # softflowd stamps wall-clock time into its headers, so its output differs per run;
        # keep one export per (traffic, version) in the cache so oracle results are reused.
        traffic = capdir / "traffic.pcap"
        if not traffic.exists():
            flowgen.write_traffic_pcap(traffic.with_suffix(".tmp"), **TRAFFIC_PARAMS)
            os.replace(traffic.with_suffix(".tmp"), traffic)
        h = hashlib.sha256(traffic.read_bytes() + softflowd.version().encode()).hexdigest()[:16]
        cached = cache_dir / "softflowd" / f"{h}-v{cap.version}.pcap"
        if not cached.exists():
            cached.parent.mkdir(parents=True, exist_ok=True)
            softflowd.export_capture(traffic, cached.with_suffix(".tmp"), cap.version)
            os.replace(cached.with_suffix(".tmp"), cached)
        p = capdir / f"{cap.id}.pcap"
        if not p.exists():
            shutil.copy(cached, p)
        return p
    raise ValueError(cap.source)


# --------------------------------------------------------------------------------------
# Group configs and runs
# --------------------------------------------------------------------------------------
def group_settings(capture_path: Path, cases: list[Case]) -> dict:
    """One config with a print plugin per case."""
    names = [c.plugin for c in cases]
    s = {
        "daemonize": False,
        "pcap_savefile": str(capture_path),
        "plugins": ", ".join(f"print[{n}]" for n in names),
        "logfile": "daemon.log",
        "print_refresh_time": 86400,
        # ~22k entries per plugin (buckets x 11): far above any test capture's keys, and
        # small enough that two dozen pmacct plugins do not each zero 66 MB at start-up
        "print_cache_entries": 2003,
        **oracle.ORACLE_BUFFERS,
    }
    for c in cases:
        n = c.plugin
        s[f"aggregate[{n}]"] = ", ".join(c.agg.primitives)
        s[f"print_output[{n}]"] = c.fmt
        s[f"print_output_file[{n}]"] = f"out-{n}.txt"
        for k, v in c.agg.extra:
            s[f"{k}[{n}]"] = v
    return s


def outputs_of(res: oracle.RunResult, plugin: str) -> dict[str, str]:
    """The output files of one plugin instance of a group run."""
    return {k: v for k, v in res.outputs.items()
            if k.startswith(f"out-{plugin}.") or k.startswith(f"out-{plugin}-")}


@dataclass
class GroupRuns:
    """Runs every group a test session needs once, in parallel, and remembers the results."""
    workroot: Path
    cache_dir: Path
    pmacct: Path
    ours: Path
    jobs: int = 4
    results: dict = field(default_factory=dict)       # (who, group) -> RunResult | Exception
    captures: dict = field(default_factory=dict)      # capture id -> Path

    def capture(self, cap: Capture) -> Path:
        if cap.id not in self.captures:
            self.captures[cap.id] = build_capture(cap, self.workroot / "captures", self.cache_dir)
        return self.captures[cap.id]

    our_timeouts: int = 0
    max_our_timeouts: int = 3          # then stop trying: a hanging daemon must not eat the suite
    our_timeout: float = 60.0

    def _run(self, who: str, group: tuple, cases: list[Case]):
        if who == "ours" and self.our_timeouts >= self.max_our_timeouts:
            return RuntimeError(f"not run: our nfacctd timed out on {self.our_timeouts} earlier "
                                f"groups ({self.our_timeout:.0f} s each)")
        res = self._run_inner(who, group, cases)
        if who == "ours" and isinstance(res, oracle.RunResult) and res.timed_out:
            self.our_timeouts += 1
        return res

    def _run_inner(self, who: str, group: tuple, cases: list[Case]):
        cap = CAPTURE_BY_ID[group[0]]
        path = self.capture(cap)
        settings = group_settings(path, cases)
        wd = self.workroot / who / f"{group[0]}-{group[1]}"
        try:
            if who == "pmacct":
                return oracle.cached_oracle_run(self.cache_dir / "pmacct", self.pmacct, settings,
                                                path, wd, timeout=120, output_glob="out-*")
            if os.environ.get("PYPMACCT_DIFF_ONE_PLUGIN"):
                merged = None
                for c in cases:
                    r = oracle.run_daemon(self.ours, group_settings(path, [c]), wd / c.plugin,
                                          timeout=self.our_timeout, output_glob="out-*")
                    if merged is None:
                        merged = r
                        merged.outputs = dict(r.outputs)
                        continue
                    merged.outputs.update(r.outputs)
                    merged.log += r.log
                    merged.stderr += r.stderr
                    merged.timed_out |= r.timed_out
                    if r.returncode != 0:
                        merged.returncode = r.returncode
                return merged
            return oracle.run_daemon(self.ours, settings, wd, timeout=self.our_timeout,
                                     output_glob="out-*")
        except Exception as e:      # reported by each case of the group
            return e

    def prefetch(self, cases: list[Case], who=("pmacct", "ours")) -> None:
        groups: dict = {}
        for c in cases:
            groups.setdefault(c.group, []).append(c)
        # build captures first, serially (softflowd runs want the CPU to themselves)
        for g in groups:
            self.capture(CAPTURE_BY_ID[g[0]])
        todo = [(w, g, cs) for w in who for g, cs in groups.items() if (w, g) not in self.results]
        # pmacct mostly sleeps (its savefile mode waits 2 s at both ends): overlap its runs;
        # ours compete for the two cores, so fewer at a time
        for w in who:
            mine = [t for t in todo if t[0] == w]
            n = self.jobs if w == "pmacct" else max(1, min(2, self.jobs))
            with ThreadPoolExecutor(n) as ex:
                for (w_, g, _), r in zip(mine, ex.map(lambda t: self._run(*t), mine)):
                    self.results[(w_, g)] = r

    def get(self, who: str, case: Case, all_cases: list[Case]) -> oracle.RunResult:
        key = (who, case.group)
        if key not in self.results:
            self.prefetch([c for c in all_cases if c.group == case.group], who=(who,))
        r = self.results[key]
        if isinstance(r, Exception):
            raise r
        return r
