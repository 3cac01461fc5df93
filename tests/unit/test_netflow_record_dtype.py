"""Decoding into a narrower record: the daemon asks the decoder only for the fields its
plugins (and core stages) read, and the decoder compiles nothing for the others.

Any dtype whose fields are a subset of RECORD_DTYPE's (same field dtypes), custom fields
included, must give exactly the full decode's values for the fields it holds.
"""
from __future__ import annotations

import numpy as np
import pytest

from pypmacct.decoders import CustomField, NetflowDecoder, NetflowOptions
from pypmacct.decoders.plan import Plan
from pypmacct.record import RECORD_DTYPE, make_record_dtype, project, subset_dtype
from pypmacct.runtime.log import Logger
from pypmacct.runtime.stats import Stats
from pypmacct.sources import Datagram
from tests.support.flowgen import GenParams, generate

ALWAYS = ["arrival_seq", "sample_type", "packets", "bytes", "flows", "time_start"]
FIVE_TUPLE = ALWAYS + ["src_host", "dst_host", "src_port", "dst_port", "proto"]
WIDER = FIVE_TUPLE + ["peer_src_ip", "peer_dst_ip", "nexthop", "sampling_rate", "ts_end",
                      "tcp_flags", "src_mask", "etype", "time_end", "export_proto_seqno",
                      "mpls_label_bottom", "post_nat_src_host", "fw_event", "ts_arrival"]
DTYPES = {
    "counters": subset_dtype(RECORD_DTYPE, ["arrival_seq", "sample_type", "packets", "bytes", "time_start"]),
    "5-tuple": subset_dtype(RECORD_DTYPE, FIVE_TUPLE),
    "wider": subset_dtype(RECORD_DTYPE, WIDER),
}


def _datagrams(version, **kw):
    exp = generate(GenParams(version=version, records=4000, exporters=3, seed=version, **kw))
    return [Datagram(p, exp.exporters[e].address, exp.exporters[e].port, ts // 1000)
            for ts, e, p in exp.datagrams]


def _decode(dgs, batch=300, **opts):
    dec = NetflowDecoder(NetflowOptions(**opts), Logger(), Stats())
    batches = [dec.decode(dgs[i:i + batch]) for i in range(0, len(dgs), batch)]
    assert dec.errors == 0, dec.last_error
    return np.concatenate([b.records for b in batches]), dec


@pytest.mark.parametrize("version", [5, 9, 10])
@pytest.mark.parametrize("opts", [{}, {"renormalize": True, "account_options": True},
                                  {"use_ip_next_hop": True, "time_new": True},
                                  {"time_secs": True, "disable_checks": False}])
def test_narrow_records_hold_the_full_decode_values(version, opts):
    dgs = _datagrams(version, nat=True, sampling=8, redefine=True, template_every=3)
    full, fdec = _decode(dgs, **opts)
    for name, dt in DTYPES.items():
        got, dec = _decode(dgs, record_dtype=dt, **opts)
        assert got.dtype == dt
        assert got.tobytes() == project(full, dt).tobytes(), name
        assert dec.stats.totals() == fdec.stats.totals()


def test_custom_fields_in_a_narrow_record():
    dt = make_record_dtype([("cust_nh", RECORD_DTYPE["nexthop"]), ("cust_proto", "u2")])
    narrow = subset_dtype(dt, ALWAYS + ["cust_proto"])
    custom = (CustomField("cust_nh", 15, length=4), CustomField("cust_proto", 4))
    dgs = _datagrams(9)
    full, _ = _decode(dgs, record_dtype=dt, custom_fields=custom)
    got, _ = _decode(dgs, record_dtype=narrow, custom_fields=custom)
    assert got.tobytes() == project(full, narrow).tobytes()
    assert full["cust_proto"].tolist() == full["proto"].tolist()


def test_nothing_is_compiled_for_absent_fields():
    dgs = _datagrams(10, nat=True)
    _, dec_full = _decode(dgs)
    _, dec_narrow = _decode(dgs, record_dtype=DTYPES["5-tuple"])
    for tf in dec_full.templates:
        tn = dec_narrow.templates.get(*tf.key)
        if tf.plan is None:
            continue
        assert len(tn.plan.steps) * 2 < len(tf.plan.steps)
    # one step per field at most, and none for a field the record lacks
    only = subset_dtype(RECORD_DTYPE, ["packets", "bytes"])
    tpl = next(t for t in dec_full.templates if t.plan is not None)
    assert len(Plan(tpl, NetflowOptions(record_dtype=only), only).steps) == 2
