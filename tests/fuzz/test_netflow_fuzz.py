"""Fuzzing the NetFlow/IPFIX decoder: random and mutated datagrams never stop the core.

Hypothesis draws, per example, a seed and a batch shape; a seeded mutation engine then
builds the batch from real datagrams (pmacct's corpus captures, softflowd exports,
generated v5/v9/IPFIX with NEL, padding, options and variable-length fields) and from
plain random bytes: bit flips, truncations, extensions, splices, and header fields
(versions, counts, set ids and lengths, template ids, field counts and lengths) forced
to edge values. Every batch goes through one long-lived decoder, so templates learned
from broken datagrams are used by later ones.

Checked for every batch: decode() returns (never raises) a well-formed batch, no
internal error was caught, the per-exporter counters add up, and every exporter with a
bad datagram got a log line naming it.

The CI form feeds 100k datagrams in well under a minute, always the same ones;
PYPMACCT_FUZZ_EXAMPLES raises the number of batches (of 500 datagrams) for a long run and
PYPMACCT_FUZZ_RANDOM=1 draws new seeds each time.
"""
from __future__ import annotations

import os
import random
import struct
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pypmacct.decoders import CustomField, NetflowDecoder, NetflowOptions
from pypmacct.record import make_record_dtype
from pypmacct.runtime.log import Logger, Sink
from pypmacct.runtime.stats import Stats
from pypmacct.sources import Datagram
from pypmacct.sources.savefile import read_datagrams
from tests.support.flowgen import GenParams, generate
from tests.unit.nfbuild import (data_set, ipfix, options_template_set, record, template_set, v5,
                                v5_record, v9)

BATCH = 500
EXAMPLES = int(os.environ.get("PYPMACCT_FUZZ_EXAMPLES", "200"))     # 200 x 500 = 100k
EXPORTERS = ["192.0.2.1", "192.0.2.2", "2001:db8::1", "198.51.100.7"]
from tests.support.diffcases import CORPUS  # noqa: E402  (../shared/corpus, or PMACCT_CORPUS)
DATA = Path(__file__).resolve().parent.parent / "data"
EDGE16 = (0, 1, 2, 3, 4, 5, 8, 9, 10, 16, 255, 256, 257, 1023, 32767, 32768, 65534, 65535)


def _handmade() -> list[bytes]:
    """Small datagrams exercising vlen fields, options, NEL and enterprise elements."""
    f = [(8, 4), (12, 4), (96, 65535), (1, 4), (2, 3), (77, 4, 9999), (3, 65535, 43874), (70, 3)]
    opt = options_template_set(10, 300, [(144, 4)], [(48, 1), (50, 4), (130, 4), (95, 3), (96, 8)])
    od = data_set(300, [record([(144, 4), (48, 1), (50, 4), (130, 4), (95, 3), (96, 8)],
                               [1, 1, 100, "203.0.113.9", 0x0d0050, b"http"])])
    nel = [(8, 4), (12, 4), (225, 4), (227, 2), (230, 1), (323, 8)]
    out = [
        ipfix([template_set(10, [(256, f)]), opt, od,
               data_set(256, [record(f, ["1.1.1.1", "2.2.2.2", b"x" * 300, 10, 1, 5, b"lbl", 0x641])], pad=3)],
              seq=1, domain=1),
        ipfix([template_set(10, [(257, nel)]), data_set(257, [record(nel, ["10.0.0.1", "8.8.8.8", "198.51.100.1", 4000, 1, 1])] * 3)]),
        v9([template_set(9, [(256, [(8, 4), (1, 4), (22, 4), (21, 4)])]),
            options_template_set(9, 257, [(1, 4)], [(48, 1), (34, 4)]),
            data_set(257, [record([(1, 4), (48, 1), (34, 4)], [0, 1, 10])]),
            data_set(256, [record([(8, 4), (1, 4), (22, 4), (21, 4)], ["1.1.1.1", 5, 100, 200])] * 4)]),
        v5([v5_record()] * 30),
        ipfix([template_set(10, [(258, [(315, 65535), (1, 4)]), (259, [(315, 64)])]),
               data_set(258, [record([(315, 65535), (1, 4)], [bytes.fromhex(
                   "66778899aabb001122334455810060" "2a0800450000a0000100004006f1e80a0101010a020202"
                   "04d200500000000000000000501220000000000078"), 1])]),
               data_set(259, [bytes.fromhex("66778899aabb00112233445586dd6000000000301140") + b"\x20" * 42])]),
        ipfix([struct.pack("!HHHH", 2, 8, 256, 0), struct.pack("!HHHH", 3, 8, 3, 0)]),
    ]
    return out


def _seeds() -> list[bytes]:
    seeds: list[bytes] = []
    for pcap in sorted(CORPUS.glob("1*/traffic-0*.pcap")) + sorted(DATA.glob("softflowd-*.pcap")):
        seeds += [d.payload for d in read_datagrams(str(pcap))]
    for v in (5, 9, 10):
        exp = generate(GenParams(version=v, records=300, exporters=2, nat=True, padding=True,
                                 redefine=True, sampling=4, template_every=3, seed=v))
        seeds += [p for _, _, p in exp.datagrams]
    return seeds + _handmade()


SEEDS = _seeds()


class _Sink(Sink):
    def __init__(self):
        super().__init__()
        self.lines: list[str] = []

    def write(self, level, line):
        if len(self.lines) < 200_000:
            self.lines.append(line)


def _mutate(rnd: random.Random, p: bytes) -> bytes:
    b = bytearray(p)
    for _ in range(rnd.randrange(1, 6)):
        op = rnd.randrange(9)
        n = len(b)
        if op == 0 and n:                                   # flip bits
            for _ in range(rnd.randrange(1, 8)):
                i = rnd.randrange(n)
                b[i] ^= 1 << rnd.randrange(8)
        elif op == 1 and n:                                 # random bytes
            for _ in range(rnd.randrange(1, 8)):
                b[rnd.randrange(n)] = rnd.randrange(256)
        elif op == 2 and n:                                 # truncate
            del b[rnd.randrange(n):]
        elif op == 3:                                       # extend
            b += rnd.randbytes(rnd.randrange(1, 64))
        elif op == 4 and n > 4:                             # a 16-bit field to an edge value
            i = rnd.randrange(0, n - 1)
            struct.pack_into("!H", b, i - i % 2, rnd.choice(EDGE16))
        elif op == 5 and n >= 4:                            # the version
            struct.pack_into("!H", b, 0, rnd.choice((0, 1, 5, 9, 10, 11, 0xFFFF)))
        elif op == 6:                                       # splice another seed in
            q = rnd.choice(SEEDS)
            i, j = rnd.randrange(len(b) + 1), rnd.randrange(len(q) + 1)
            b = b[:i] + bytearray(q[j:])
        elif op == 7 and n > 24:                            # walk the sets, break one
            off = 20 if b[1] == 9 else 16
            sets = []
            while off + 4 <= len(b):
                sets.append(off)
                ln = struct.unpack_from("!H", b, off + 2)[0]
                if ln < 4:
                    break
                off += ln
            if sets:
                s = rnd.choice(sets)
                which = rnd.randrange(4)
                if which == 0:
                    struct.pack_into("!H", b, s, rnd.choice(EDGE16))          # set id
                elif which == 1:
                    struct.pack_into("!H", b, s + 2, rnd.choice(EDGE16))      # set length
                elif s + 8 <= len(b):
                    struct.pack_into("!H", b, s + 4 + 2 * (which - 2), rnd.choice(EDGE16))  # tid/count
        elif op == 8 and n:                                 # duplicate a slice
            i = rnd.randrange(n)
            b[i:i] = b[i:i + rnd.randrange(1, 100)]
    return bytes(b)


def _batch(seed: int, random_share: float) -> list[Datagram]:
    rnd = random.Random(seed)
    out = []
    for i in range(BATCH):
        r = rnd.random()
        if r < random_share:
            p = rnd.choice((b"\x00\x05", b"\x00\x09", b"\x00\x0a", b"")) + rnd.randbytes(rnd.randrange(0, 200))
        elif r < random_share + 0.15:
            p = rnd.choice(SEEDS)                          # intact: templates get learned
        else:
            p = _mutate(rnd, rnd.choice(SEEDS))
        out.append(Datagram(p, EXPORTERS[i % len(EXPORTERS)], 40000 + i % 7, 1_700_000_000_000_000 + i))
    return out


DTYPE = make_record_dtype([("cust_u", "u4"), ("cust_s", "i4"), ("cust_b", "V8")])
SINK = _Sink()
DECODER = NetflowDecoder(
    NetflowOptions(disable_checks=False, renormalize=True, account_options=True,
                   record_dtype=DTYPE, max_templates_per_exporter=512,
                   custom_fields=(CustomField("cust_u", 77, 9999, 4), CustomField("cust_s", 96, semantics="str"),
                                  CustomField("cust_b", 90, 0, 8), CustomField("cust_s", 3, 43874, semantics="raw"))),
    log=Logger("fuzz", "core", SINK), stats=Stats())
FED = {"datagrams": 0, "records": 0}


@settings(max_examples=EXAMPLES, deadline=None, database=None,
          derandomize=not os.environ.get("PYPMACCT_FUZZ_RANDOM"),
          suppress_health_check=list(HealthCheck))
@given(seed=st.integers(0, 2**32 - 1), random_share=st.sampled_from((0.0, 0.1, 0.5)))
def test_decoder_survives_anything(seed, random_share):
    dgs = _batch(seed, random_share)
    before = {k: v.as_dict() for k, v in DECODER.stats.exporters.items()}
    lines_before = len(SINK.lines)
    batch = DECODER.decode(dgs)            # must not raise
    recs = batch.records
    assert recs.dtype == DTYPE
    assert DECODER.errors == 0, DECODER.last_error
    FED["datagrams"] += len(dgs)
    FED["records"] += len(recs)
    # counters add up
    tot = DECODER.stats.totals()
    assert tot.datagrams == FED["datagrams"] and tot.records == FED["records"]
    for src in EXPORTERS:
        now = DECODER.stats.exporter(src).as_dict()
        was = before.get(src, {k: 0 for k in now})
        assert now["datagrams"] - was["datagrams"] == sum(1 for d in dgs if d.src == src)
    # records are well formed
    for col in ("src_host", "dst_host", "peer_src_ip", "peer_dst_ip", "nexthop"):
        assert np.isin(recs[col]["af"], (0, 4, 6)).all()
    assert np.isin(recs["peer_src_ip"]["af"], (4, 6)).all()
    for col in ("label", "class", "cust_s"):
        assert ((recs[col] >= 0) & (recs[col] < len(batch.strings))).all()
    assert np.isin(recs["sample_type"], (1, 2, 3, 4, 5)).all()
    # every exporter that sent something bad has been named in the log at least once
    for src, c in DECODER.stats.exporters.items():
        if c.bad_datagrams:
            assert any(f"agent={src}:" in l for l in SINK.lines), src
    del lines_before


def test_the_fuzz_run_covered_enough():
    """Runs after the fuzz test (file order): the campaign really fed 100k datagrams and
    reached the decoder's interesting paths."""
    if FED["datagrams"] == 0:
        return                                            # the fuzz test was deselected
    tot = DECODER.stats.totals()
    assert FED["datagrams"] >= EXAMPLES * BATCH
    assert tot.records > 0 and tot.templates > 0 and tot.bad_datagrams > 0 and tot.no_template > 0
    assert tot.seq_errors > 0
    assert len(DECODER.templates) <= 512 * len(EXPORTERS)


# --- the batch path against the one-datagram-at-a-time path --------------------------------
# With debug logging the decoder walks datagrams one by one (it logs a line per datagram, as
# pmacct does); otherwise it parses the whole batch together. Both must leave the same
# records, counters, templates and exporter state after every batch of mutated datagrams.

class _DebugSink(Sink):
    def __init__(self):
        super().__init__()
        self.debug = True

    def write(self, level, line):
        pass


def _pair():
    def make(sink):
        return NetflowDecoder(
            NetflowOptions(disable_checks=False, renormalize=True, account_options=True,
                           record_dtype=DTYPE, max_templates_per_exporter=512,
                           custom_fields=DECODER.opts.custom_fields),
            log=Logger("fuzz", "core", sink), stats=Stats())
    return make(Sink()), make(_DebugSink())


PAIR = _pair()


def _state(dec):
    doms = {k: (v.seqno, v.inc, v.good, v.jumps_f, v.jumps_b, v.packets, v.bytes,
                sorted(v.samplers._rates.items()), v.exporter_addr, v.in_rd, v.out_rd, v.apps)
            for k, v in dec.states.domains.items()}
    stats = {k: v.as_dict() for k, v in dec.stats.exporters.items()}
    return doms, stats, sorted((t.key, t.fields) for t in dec.templates)


@settings(max_examples=max(EXAMPLES // 5, 20), deadline=None, database=None,
          derandomize=not os.environ.get("PYPMACCT_FUZZ_RANDOM"),
          suppress_health_check=list(HealthCheck))
@given(seed=st.integers(0, 2**32 - 1), random_share=st.sampled_from((0.0, 0.1, 0.5)))
def test_batch_path_matches_one_by_one(seed, random_share):
    dgs = _batch(seed, random_share)
    fast, slow = PAIR
    a, b = fast.decode(dgs), slow.decode(dgs)
    assert fast.errors == 0 and slow.errors == 0, fast.last_error or slow.last_error
    assert a.records.tobytes() == b.records.tobytes()
    assert a.strings == b.strings
    assert _state(fast) == _state(slow)
