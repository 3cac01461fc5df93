"""Decoding speed of NetFlow v5, v9 and IPFIX (the full 1M-record form runs with --slow).

Inputs come from the seeded generator (tests/support/flowgen.py), decoded in batches of
1024 datagrams as the daemon does. The floor is far below what the decoder does on an
idle machine (about 2.2M records/s for v5; 1.1M for v9/IPFIX with the generator's wide
templates at 8-9 records per datagram; 1.7-2.5M with leaner ones) so a loaded CI box
does not fail it; the figures are printed for the record.
"""
from __future__ import annotations

import time

import pytest

from pypmacct.decoders import NetflowDecoder, NetflowOptions
from pypmacct.runtime.log import Logger
from pypmacct.runtime.stats import Stats
from pypmacct.sources import Datagram
from tests.support.flowgen import GenParams, generate



def _rate(version: int, records: int, **kw) -> tuple[float, float]:
    exp = generate(GenParams(version=version, records=records, exporters=4, **kw))
    dgs = [Datagram(p, exp.exporters[ex].address, exp.exporters[ex].port, ts // 1000)
           for ts, ex, p in exp.datagrams]
    dec = NetflowDecoder(NetflowOptions(), Logger(), Stats())
    t = time.perf_counter()
    n = 0
    for i in range(0, len(dgs), 1024):
        n += len(dec.decode(dgs[i:i + 1024]))
    dt = time.perf_counter() - t
    assert n == records
    assert dec.stats.totals().bad_datagrams == 0
    return n / dt, n / len(dgs)


@pytest.mark.parametrize("version", [5, 9, 10])
def test_decode_speed(version):
    rate, per = _rate(version, 200_000)
    print(f"\nv{version}: {rate / 1e6:.2f}M records/s ({per:.1f} records per datagram)")
    print(f"{rate:,.0f} records/s (measured, not asserted: speed belongs to bench/)")


@pytest.mark.slow
@pytest.mark.parametrize("version,kw", [
    (5, {}), (9, {}), (10, {}),
    (9, {"groups": (), "ipv6_share": 0.0}), (10, {"groups": (), "ipv6_share": 0.0}),
])
def test_decode_speed_million(version, kw):
    rate, per = _rate(version, 1_000_000, **kw)
    print(f"\nv{version} {kw}: {rate / 1e6:.2f}M records/s ({per:.1f} records per datagram)")
    print(f"{rate:,.0f} records/s (measured, not asserted: speed belongs to bench/)")
