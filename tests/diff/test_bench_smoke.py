"""bench/run.py works end to end: the CI form (--smoke) and, with --slow, the full run.

The smoke run goes through every part of the bench at tiny sizes: savefile replay of
NetFlow v5/v9/IPFIX, sFlow and packets into the print and memory plugins (pmacct 1.7.7
beside ours on one case: its fixed sleeps cost ~4 s a run), the peak-RSS rows, the live
UDP search over loopback (both daemons, two low rates) and the scaling series with its
plot. It fails unless every run exits cleanly with totals equal to what its capture (or
the sender) holds, and unless the report carries the tables. It asserts no speed.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.support import oracle

pytestmark = pytest.mark.bench


def _run(args, timeout, out_dir):
    env = dict(os.environ, PMACCT_BENCH_OUT=str(out_dir))   # daemon work dirs: not bench/out
    p = subprocess.run([sys.executable, str(oracle.REPO / "bench" / "run.py"), *args],
                       cwd=oracle.REPO, capture_output=True, text=True, timeout=timeout, env=env)
    return p.returncode, p.stdout + p.stderr


@pytest.mark.timeout(900)
def test_bench_smoke(pmacct_nfacctd, our_nfacctd, tmp_path):
    doc, png = tmp_path / "perf.md", tmp_path / "scaling.png"
    rc, out = _run(["--smoke", "--docs", str(doc), "--plot", str(png)], 880, tmp_path / "out")
    assert rc == 0, f"bench/run.py --smoke failed (rc={rc}):\n{out[-6000:]}"
    assert "FAILED" not in out
    text = doc.read_text()
    assert f"Machine: {os.cpu_count()} cores (" in text and "Linux " in text and "Measured 20" in text
    assert "| case | metric | pmacct 1.7.7 | ours | ours / pmacct | totals checked |" in text
    rows = {ln.split(" | ")[0][2:]: ln for ln in text.splitlines()
            if " | records/s (net of fixed) | " in ln}
    # every replay case of the smoke form is in the table, with its totals checked exact
    for case in ("v5 print 5-tuple", "v9 print src_host", "IPFIX memory 5-tuple",
                 "sFlow print 5-tuple", "sFlow memory 5-tuple", "pmacctd print 5-tuple"):
        assert case in rows, case
        assert "ours: exact (" in rows[case], rows[case]
    assert "pmacct: exact (20,000 records); ours: exact (20,000 records)" in rows["v5 print 5-tuple"]
    # peak RSS rows (ours), the live search (both sides found a lossless rate) and targets
    assert any(" aggregates, memory | peak RSS MiB (tree sum) |" in ln and "ours: exact" in ln
               for ln in text.splitlines())
    live = [ln for ln in text.splitlines() if ln.startswith("| live UDP NetFlow v9, memory | datagrams/s")]
    assert live and "pmacct: 100.00% of" in live[0] and "ours: 100.00% of" in live[0], live
    assert "| target | case | pmacct 1.7.7 | ours | ours / pmacct | met? |" in text
    # the scaling table (four points of ours, each exact) and its plot
    scale = [ln for ln in text.splitlines() if ln.startswith(("| size |", "| aggregates |"))]
    assert len(scale) == 4 and all(ln.endswith("| exact |") for ln in scale), scale
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.timeout(120)
def test_live_takes_smoke():
    """bench/live_takes.py decodes every record the sender sent and says what the takes
    cost (a low rate over loopback: nothing may be lost)."""
    import re
    p = subprocess.run([sys.executable, str(oracle.REPO / "bench" / "live_takes.py"),
                        "--rate", "500", "--seconds", "0.5", "--linger", "0.002"],
                       cwd=oracle.REPO, capture_output=True, text=True, timeout=100)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out
    m = re.search(r"rate 500/s linger 2 ms: ([\d,]+) takes, [\d.]+ datagrams each, "
                  r"([\d,]+) records; CPU read [\d.]+ s, decode [\d.]+ s \([\d,]+ us a take\)$",
                  p.stdout.strip())
    assert m, out
    assert int(m[1].replace(",", "")) > 0 and int(m[2].replace(",", "")) > 0
    assert "MISMATCH" not in out


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_bench_full(pmacct_nfacctd, our_nfacctd, tmp_path):
    rc, out = _run(["--docs", str(tmp_path / "perf.md"), "--plot", str(tmp_path / "s.png")], 3500,
                   tmp_path / "out")
    assert rc == 0, f"bench/run.py failed (rc={rc}):\n{out[-6000:]}"
