#!/usr/bin/env python3
"""What classifiers cost pmacctd's core: decoding a savefile with and without them.

    .venv/bin/python bench/classifiers.py                 # 20000 flows, 12 packets each
    .venv/bin/python bench/classifiers.py --flows 5000

Builds a capture (bench/captures/l7-<flows>.pcap, reused) of TCP sessions: handshake,
a request, a response, data and ACKs; a third of the sessions HTTP (classified by the
response), a third SMTP (by the greeting), a third unknown (every payload tried until
the tries run out). The frames are read a chunk at a time (sources/capture.py) and
decoded by decoders/frames.py as pmacctd does, once with no classifier and once with
tests/data/classifiers loaded and 'class' decoded; the CPU seconds of each and the
payloads that reached the regular expressions are printed. Reported, never asserted.
"""
from __future__ import annotations

import argparse
import struct
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from pypmacct.classifiers import FlowClassifier, load_classifiers  # noqa: E402
from pypmacct.decoders.frames import FrameDecoder, FrameOptions  # noqa: E402
from pypmacct.record import RECORD_DTYPE, subset_dtype  # noqa: E402
from pypmacct.sources.capture import savefile_chunks  # noqa: E402

PATS = REPO / "tests" / "data" / "classifiers"
FIELDS = ("src_host", "dst_host", "src_port", "dst_port", "proto", "packets", "bytes",
          "arrival_seq", "ts_arrival", "time_start", "class")


def _frame(src, dst, sport, dport, flags, payload):
    tcp = struct.pack(">HHIIBBHHH", sport, dport, 1, 1, 5 << 4, flags, 65535, 0, 0)
    ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp) + len(payload), 0, 0, 64, 6, 0,
                     src, dst)
    return b"\x02\0\0\0\0\x02\x02\0\0\0\0\x01\x08\x00" + ip + tcp + payload


def build(path: Path, flows: int) -> int:
    payloads = [
        (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
         b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n" + b"x" * 200),
        (b"EHLO client\r\n", b"220 mx.example ESMTP\r\n"),
        (b"\x17\x03\x03" + bytes(range(64)), b"\x17\x03\x03" + bytes(range(64, 160))),
    ]
    out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    n = 0
    t = 1700000000
    for f in range(flows):
        c = bytes([10, 1, (f >> 8) & 0xFF, f & 0xFF])
        s = bytes([10, 2, 0, f % 50])
        cp, sp = 10000 + f % 50000, (80, 25, 443)[f % 3]
        req, resp = payloads[f % 3]
        seq = [(c, s, cp, sp, 0x02, b""), (s, c, sp, cp, 0x12, b""), (c, s, cp, sp, 0x10, b""),
               (c, s, cp, sp, 0x18, req), (s, c, sp, cp, 0x18, resp)]
        for i in range(7):
            seq.append((s, c, sp, cp, 0x18, b"data %d " % i * 20) if i % 2 == 0
                       else (c, s, cp, sp, 0x10, b""))
        for a, b, pa, pb, fl, pl in seq:
            fr = _frame(a, b, pa, pb, fl, pl)
            out += struct.pack("<IIII", t + n // 100000, n % 100000 * 10, len(fr), len(fr)) + fr
            n += 1
    path.write_bytes(bytes(out))
    return n


def decode_all(path: Path, classifier) -> tuple[float, int]:
    dtype = subset_dtype(RECORD_DTYPE, FIELDS if classifier is not None else FIELDS[:-1])
    dec = FrameDecoder(FrameOptions(record_dtype=dtype, classifier=classifier))
    t0 = time.process_time()
    rows = 0
    for chunk in savefile_chunks(str(path)):
        rows += len(dec.decode(chunk))
    rows += len(dec.flush())            # what the classifier still held back
    return time.process_time() - t0, rows


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--flows", type=int, default=20000)
    a = ap.parse_args()
    cap = HERE / "captures" / f"l7-{a.flows}.pcap"
    cap.parent.mkdir(exist_ok=True)
    if not cap.exists():
        build(cap, a.flows)
    base, n = decode_all(cap, None)
    fc = FlowClassifier(load_classifiers(str(PATS)))
    with_cls, n2 = decode_all(cap, fc)
    assert n == n2
    print(f"{n} packets, {a.flows} flows ({cap.name})")
    print(f"  without classifiers: {base:6.2f} CPU s  {n / base:>10,.0f} packets/s")
    print(f"  with classifiers:    {with_cls:6.2f} CPU s  {n / with_cls:>10,.0f} packets/s "
          f"({fc.tried} payloads matched against {len(fc.classifiers)} patterns, "
          f"{fc.classified} flows classified; held back and released: "
          f"{fc.held_classified} with a class, {fc.held_unknown} as unknown)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
