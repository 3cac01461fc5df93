"""Decoded records carry their arrival index even though the decoder emits them grouped
by template: plugins rely on it for first-seen order and last-record-wins values."""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.support.flowgen import GenParams, generate  # noqa: E402

from pypmacct.decoders import NetflowDecoder  # noqa: E402
from pypmacct.sources import Datagram  # noqa: E402


def test_arrival_seq_is_wire_order_across_templates():
    exp = generate(GenParams(version=10, records=3000, seed=11, nat=True, ipv6_share=0.3))
    dgs = [Datagram(p, exp.exporters[e].address, exp.exporters[e].port, ts // 1000)
           for ts, e, p in exp.datagrams]
    rec = NetflowDecoder().decode(dgs).records
    seq = rec["arrival_seq"]
    assert sorted(seq.tolist()) == list(range(len(rec)))
    # several templates are interleaved on the wire, so emission order is not arrival order
    assert not np.array_equal(seq, np.arange(len(rec)))
    # in arrival order the records follow the wire: datagram by datagram, set by set
    # (the generator writes one set per template kind, in kind order)
    got = rec[np.argsort(seq)]
    t = exp.truth
    want = t[np.lexsort((t["kind"], t["packet"]))]
    assert got["packets"].tolist() == want["packets"].tolist()
    assert got["src_port"].tolist() == want["src_port"].tolist()
