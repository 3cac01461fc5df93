"""A small IPFIX capture with the elements the maps2 differential test needs: three data
templates (one with a one-octet forwardingStatus, one bi-flow template with
initiatorOctets/responderOctets, one with variable-length elements, standard and
enterprise) and seeded records. Written with tests.unit.nfbuild and tests.support.pcapio."""
from __future__ import annotations

import numpy as np

from tests.support import pcapio
from tests.unit import nfbuild as nb

PEN = 9999
EXPORTER, COLLECTOR = "203.0.113.7", "198.51.100.1"

# (type, length[, pen]); 65535 is variable length
T_FWD = (256, [(8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (10, 4), (14, 4), (2, 4), (1, 4),
               (89, 1)])
T_BI = (257, [(8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (10, 4), (14, 4), (231, 4),
              (232, 4), (2, 4)])
T_VLEN = (258, [(8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (10, 4), (14, 4), (2, 4), (1, 4),
                (82, 65535), (83, 65535), (1, 65535, PEN), (2, 65535, PEN), (89, 4)])

NAMES = [b"ge-0/0/0", b"xe-1/2/3.100", b"lo0", b"eth0\x00junk", b""]
BLOBS = [b"\x01\x02", b"\xde\xad\xbe\xef\x00", b"", b"\x7f" * 9]


def records(seed: int, n: int):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        tpl = (T_FWD, T_BI, T_VLEN)[int(rng.integers(0, 3))]
        src = f"10.{int(rng.integers(0, 3))}.0.{int(rng.integers(1, 9))}"
        dst = f"192.168.{int(rng.integers(0, 2))}.{int(rng.integers(1, 5))}"
        sport, dport = int(rng.choice([53, 80, 443, 1234])), int(rng.choice([53, 80, 8080]))
        proto = int(rng.choice([6, 17]))
        inp, outp = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        pk, by = int(rng.integers(1, 50)), int(rng.integers(40, 9000))
        fwd = int(rng.choice([0, 1, 64, 66, 128, 130, 192, 194]))
        base = [src, dst, sport, dport, proto, inp, outp]
        if tpl is T_FWD:
            vals = base + [pk, by, fwd]
        elif tpl is T_BI:
            vals = base + [by, int(rng.integers(0, 5000)), pk]
        else:
            vals = base + [pk, by, NAMES[int(rng.integers(0, len(NAMES)))],
                           BLOBS[int(rng.integers(0, len(BLOBS)))],
                           NAMES[int(rng.integers(0, len(NAMES)))],
                           BLOBS[int(rng.integers(0, len(BLOBS)))], fwd]
        out.append((tpl, vals))
    return out


def write(path, seed: int = 5, n: int = 600, per_datagram: int = 10) -> int:
    """The capture at ``path``: templates first, then data; returns the record count."""
    recs = records(seed, n)
    t0 = 1_700_000_000
    with pcapio.open_writer(path) as w:
        tset = nb.template_set(10, [T_FWD, T_BI, T_VLEN])
        w.write(t0 * 10**9, pcapio.udp_frame(EXPORTER, COLLECTOR, 40000, 2100,
                                            nb.ipfix([tset], seq=0, export=t0)))
        seq = 0
        for k in range(0, n, per_datagram):
            chunk = recs[k:k + per_datagram]
            sets = []
            for tpl, vals in chunk:     # one set per record keeps template order simple
                sets.append(nb.data_set(tpl[0], [nb.record(tpl[1], vals)]))
            w.write((t0 + 1) * 10**9 + k,
                    pcapio.udp_frame(EXPORTER, COLLECTOR, 40000, 2100,
                                     nb.ipfix(sets, seq=seq, export=t0 + 1)))
            seq += len(chunk)
    return n
