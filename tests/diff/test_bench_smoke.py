"""bench/run.py works end to end: the CI form (--smoke) and, with --slow, the full run.

The smoke run builds 20k-record v5/v9/IPFIX captures, runs pmacct 1.7.7 and our nfacctd
on each with the 5-tuple and src_host aggregates, and fails unless every run exits cleanly
with output totals equal to the capture's. It prints figures; it asserts no speed.
"""
from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support import oracle

pytestmark = pytest.mark.bench


def _run(args, timeout):
    p = subprocess.run([sys.executable, str(oracle.REPO / "bench" / "run.py"), *args],
                       cwd=oracle.REPO, capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout + p.stderr


@pytest.mark.timeout(900)
def test_bench_smoke(pmacct_nfacctd, our_nfacctd, tmp_path):
    rc, out = _run(["--smoke", "--docs", str(tmp_path / "perf.md")], 880)
    assert rc == 0, f"bench/run.py --smoke failed (rc={rc}):\n{out[-6000:]}"
    table = [ln for ln in out.splitlines() if ln.startswith("| ")]
    for case in ("v5 5-tuple", "v9 5-tuple", "IPFIX 5-tuple", "v5 src_host", "IPFIX src_host"):
        assert any(ln.startswith(f"| {case} | records/s (wall) |") for ln in table), case
    assert "FAILED" not in out
    doc = (tmp_path / "perf.md").read_text()
    assert "Machine:" in doc and "| case | metric | pmacct 1.7.7 | ours | ours / pmacct |" in doc


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_bench_full(pmacct_nfacctd, our_nfacctd, tmp_path):
    rc, out = _run(["--docs", str(tmp_path / "perf.md")], 3500)
    assert rc == 0, f"bench/run.py failed (rc={rc}):\n{out[-6000:]}"
