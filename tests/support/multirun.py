"""One daemon run with several print plugins, for differential tests of sfacctd/pmacctd.

``run_both(daemon, capture, plugins, workdir, cache)`` writes one config with a
``print[NAME]`` plugin per entry of ``plugins`` (NAME -> (aggregate, format, extra)),
runs pmacct 1.7.7's daemon (cached by config and capture) and ours on it, and returns the
two RunResults; ``compare`` gives a readable difference per plugin ('' when equal).
"""
from __future__ import annotations

from pathlib import Path

from . import oracle


def settings(capture, plugins: dict, extra: dict | None = None) -> dict:
    s = {
        "daemonize": False,
        "pcap_savefile": str(capture),
        "plugins": ", ".join(f"print[{n}]" for n in plugins),
        "logfile": "daemon.log",
        **oracle.ORACLE_BUFFERS,
    }
    for name, (aggregate, fmt, more) in plugins.items():
        s[f"aggregate[{name}]"] = aggregate
        s[f"print_output[{name}]"] = fmt
        s[f"print_output_file[{name}]"] = f"out-{name}.txt"
        s[f"print_refresh_time[{name}]"] = 86400
        for k, v in (more or {}).items():
            s[f"{k}[{name}]"] = v
    if extra:
        s.update(extra)
    return s


def run_both(daemon: str, capture, plugins: dict, workdir, cache, extra: dict | None = None):
    s = settings(capture, plugins, extra)
    workdir = Path(workdir)
    theirs = oracle.cached_oracle_run(cache, oracle.pmacct_binary(daemon), s, capture,
                                      workdir / "pmacct", output_glob="out-*.txt")
    ours = oracle.run_daemon(oracle.our_binary(daemon), s, workdir / "ours",
                             output_glob="out-*.txt")
    return theirs, ours


def compare(theirs, ours, plugins: dict) -> str:
    problems = []
    for name, (_agg, fmt, _more) in plugins.items():
        f = f"out-{name}.txt"
        if f not in theirs.outputs:
            problems.append(f"pmacct wrote no {f}")
            continue
        if f not in ours.outputs:
            problems.append(f"we wrote no {f}")
            continue
        d = oracle.diff_message(oracle.normalise(theirs.outputs[f], fmt),
                                oracle.normalise(ours.outputs[f], fmt))
        if d:
            problems.append(f"== {name} ({fmt}) ==\n{d}")
    return "\n".join(problems)
