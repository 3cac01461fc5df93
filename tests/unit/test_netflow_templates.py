"""``nfacctd_templates_file``: pmacct 1.7.7's JSON-lines format, both ways.

pmacct writes a template when it learns it and rewrites its line when it changes, and
reads the file at start-up. We write the whole file (atomically) after a decode() that
changed templates and read it when the decoder is built. The checks:
- our own round trip (templates survive a restart: data-only datagrams decode);
- a file written by nfacctd loads here and decodes the capture's data;
- a file written here loads in nfacctd, which then decodes a data-only capture exactly
  as we do.
"""
from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from pypmacct.decoders import NetflowOptions
from pypmacct.decoders.templates import Field, Template, TemplateCache
from pypmacct.runtime.log import Logger
from pypmacct.sources.savefile import read_datagrams
from tests.support import pcapio
from tests.unit import netflow_oracle as O
from tests.unit.nfbuild import (CaptureSink, data_set, decoder, dg, ipfix, options_template_set,
                                record, template_set)

from tests.support.diffcases import CORPUS  # noqa: E402  (../shared/corpus, or PMACCT_CORPUS)
DATA = Path(__file__).resolve().parent.parent / "data"
# 106 is left out: its template repeats element 210 with different lengths, which
# 1.7.7's file keeps one length for, and 1.7.7 drops one of its variable-length records
CAPTURES = [next(CORPUS.glob("100-*/traffic-00.pcap")), next(CORPUS.glob("112-*/traffic-00.pcap")),
            next(CORPUS.glob("104-*/traffic-00.pcap")), DATA / "softflowd-v9.pcap"]


def strip_templates(pcap, out) -> int:
    """Rewrite ``pcap`` keeping only data sets (ids >= 256); returns datagrams written."""
    n = 0
    with pcapio.PcapWriter(out) as w:
        for d in read_datagrams(str(pcap), arrival="capture"):
            p = d.payload
            ver = struct.unpack_from("!H", p)[0]
            hlen = 20 if ver == 9 else 16
            off, keep = hlen, []
            while off + 4 <= len(p):
                fid, flen = struct.unpack_from("!HH", p, off)
                if flen < 4:
                    break
                if fid >= 256:
                    keep.append(p[off:off + flen])
                off += flen
            if not keep:
                continue
            body = b"".join(keep)
            hdr = bytearray(p[:hlen])
            if ver == 10:
                struct.pack_into("!H", hdr, 2, hlen + len(body))
            dst = "2001:db8::1" if ":" in d.src else "192.0.2.1"
            w.write(d.ts_us * 1000, pcapio.udp_frame(d.src, dst, d.port, 2100, bytes(hdr) + body))
            n += 1
    return n


def rows(records):
    return O.our_rows(records, O.ALL_PRIMITIVES)


def test_round_trip_survives_a_restart(tmp_path):
    path = tmp_path / "templates.json"
    f = [(8, 4), (12, 4), (1, 4), (2, 4), (96, 65535), (77, 4, 9999)]
    opt_scope, opt_fields = [(144, 4)], [(48, 1), (50, 4)]
    first = [dg(ipfix([template_set(10, [(256, f)]),
                       options_template_set(10, 300, opt_scope, opt_fields)], domain=3))]
    data = dg(ipfix([data_set(256, [record(f, ["1.1.1.1", "2.2.2.2", 10, 1, b"abc", 5])])], domain=3))
    dec, _ = decoder(templates_file=str(path))
    dec.decode(first)
    lines = path.read_text().splitlines()
    assert len(lines) == 2
    objs = [json.loads(l) for l in lines]
    assert {o["template_type"] for o in objs} == {0, 1}
    dec2, _ = decoder(templates_file=str(path))
    assert len(dec2.templates) == 2
    b = dec2.decode([data])
    assert len(b) == 1 and b.records[0]["bytes"] == 10
    # templates learned later are added, unchanged resends do not rewrite the file
    mtime = path.stat().st_mtime_ns
    dec2.decode(first)
    assert path.stat().st_mtime_ns == mtime


def test_pmacct_quirks_in_the_format():
    t = Template("192.0.2.1", 7, 260, [Field(8, 4), Field(1, 8), Field(3, 4, 9)])
    o = t.to_pmacct_json()
    assert o["template_id"] == 1025                 # 260 in network byte order, read on LE
    assert list(o)[:7] == ["agent", "source_id", "template_id", "template_type", "num", "len", "vlen"]
    assert o["list"][0] == {"type": 0, "otpl": {"off": 0, "len": 4, "tpl_len": 4, "tpl_index": 8}}
    assert o["list"][2]["utpl"]["pen"] == 9
    back = Template.from_pmacct_json(json.loads(json.dumps(o)))
    assert back.tid == 260 and back.fields == t.fields


def test_bad_lines_are_skipped_with_a_warning(tmp_path):
    path = tmp_path / "t.json"
    good = json.dumps(Template("192.0.2.1", 0, 256, [Field(8, 4)]).to_pmacct_json())
    path.write_text("not json\n" + '{"agent": "x"}\n' + good + "\n[1, 2]\n\n")
    sink = CaptureSink()
    cache = TemplateCache()
    assert cache.load(str(path), Logger("default", "core", sink)) == 1
    assert sum("Line skipped" in l for l in sink.lines) == 3


def test_missing_file_is_not_fatal(tmp_path):
    dec, sink = decoder(templates_file=str(tmp_path / "nope.json"))
    assert len(dec.templates) == 0
    assert any("unable to fopen" in l for l in sink.lines)


@pytest.mark.oracle
@pytest.mark.parametrize("pcap", CAPTURES, ids=[p.parent.name[:3] if "pmacct" in str(p) else p.stem for p in CAPTURES])
def test_file_written_by_pmacct_loads_here(pmacct_nfacctd, tmp_path, pcap):
    tfile = tmp_path / "pm-templates.json"
    O.run_nfacctd(str(pcap), ("src_host",), {"nfacctd_templates_file": str(tfile)},
                  binary=str(pmacct_nfacctd))
    assert tfile.exists() and tfile.read_text().strip()
    data_only = tmp_path / "data-only.pcap"
    assert strip_templates(pcap, data_only) > 0
    full, fdec = O.decode_pcap(str(pcap))
    mine, dec = O.decode_pcap(str(data_only), NetflowOptions(templates_file=str(tfile),
                                                               save_templates_on_change=False))
    assert dec.stats.totals().no_template == fdec.stats.totals().no_template
    assert rows(mine) == rows(full)


@pytest.mark.oracle
@pytest.mark.parametrize("pcap", CAPTURES, ids=[p.parent.name[:3] if "pmacct" in str(p) else p.stem for p in CAPTURES])
def test_file_written_here_loads_in_pmacct(pmacct_nfacctd, tmp_path, pcap):
    tfile = tmp_path / "our-templates.json"
    full, _ = O.decode_pcap(str(pcap), NetflowOptions(templates_file=str(tfile)))
    assert tfile.exists()
    data_only = tmp_path / "data-only.pcap"
    strip_templates(pcap, data_only)
    prims = tuple(p for p in O.ALL_PRIMITIVES if p not in ("mpls_vpn_rd", "sampling_rate", "tcpflags"))
    # pmacct rewrites the file it loaded when it sees templates again: give it a copy
    theirs = O.their_rows(O.run_nfacctd(str(data_only), prims,
                                        {"nfacctd_templates_file": str(tfile)},
                                        binary=str(pmacct_nfacctd)), prims)
    mine, _ = O.decode_pcap(str(data_only), NetflowOptions(templates_file=str(tfile),
                                                           save_templates_on_change=False))
    assert O.our_rows(mine, prims) == theirs, O.diff_report(O.our_rows(mine, prims), theirs, prims)
