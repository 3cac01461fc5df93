"""Test helper: run pmacct's nfacctd on a capture and put our decoder's records in the
same shape, so that the two can be compared row for row.

nfacctd runs with ``pcap_savefile`` and one print plugin writing CSV with the primitives
asked for (numeric protocols, epoch timestamps). Our side decodes the same capture and
formats those primitives the way the print plugin does; both sides are summed by key.

nfacctd runs through ``tests.support.oracle.run_daemon``, with its big plugin buffers and
its watch on the end of the file (a plugin must be seen idle once the file has been read),
and its log is read. A run whose plugin may have been cut off, or whose log reports trouble (lost
buffers: "missing data", a full cache, any WARN or ERROR), is run again; after three such
runs the helper fails with the reason rather than hand back rows that cannot be trusted.
"""
from __future__ import annotations

import collections
import csv
import io
import json
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path

import numpy as np

from pypmacct.decoders import NetflowDecoder, NetflowOptions
from pypmacct.runtime.log import Logger
from pypmacct.runtime.stats import Stats
from pypmacct.sources.savefile import read_datagrams
from tests.support.oracle import ORACLE_BUFFERS, log_trouble, run_daemon

NFACCTD = "/usr/sbin/nfacctd"
ATTEMPTS = 3          # runs of nfacctd before run_nfacctd gives up

# primitive -> CSV column of pmacct's print plugin
COLUMNS = {
    "src_mac": "SRC_MAC", "dst_mac": "DST_MAC", "vlan": "VLAN", "cos": "COS",
    "etype": "ETYPE", "src_as": "SRC_AS", "dst_as": "DST_AS", "peer_src_as": "PEER_SRC_AS",
    "peer_dst_as": "PEER_DST_AS", "peer_src_ip": "PEER_SRC_IP", "peer_dst_ip": "PEER_DST_IP",
    "in_iface": "IN_IFACE", "out_iface": "OUT_IFACE", "mpls_vpn_rd": "MPLS_VPN_RD",
    "mpls_pw_id": "MPLS_PW_ID", "src_host": "SRC_IP", "dst_host": "DST_IP",
    "src_mask": "SRC_MASK", "dst_mask": "DST_MASK", "src_port": "SRC_PORT",
    "dst_port": "DST_PORT", "tcpflags": "TCP_FLAGS", "proto": "PROTOCOL", "tos": "TOS",
    "sampling_rate": "SAMPLING_RATE", "sampling_direction": "SAMPLING_DIRECTION",
    "post_nat_src_host": "POST_NAT_SRC_IP", "post_nat_dst_host": "POST_NAT_DST_IP",
    "post_nat_src_port": "POST_NAT_SRC_PORT", "post_nat_dst_port": "POST_NAT_DST_PORT",
    "nat_event": "NAT_EVENT", "mpls_label_top": "MPLS_LABEL_TOP",
    "mpls_label_bottom": "MPLS_LABEL_BOTTOM", "mpls_stack_depth": "MPLS_STACK_DEPTH",
    "timestamp_start": "TIMESTAMP_START", "timestamp_end": "TIMESTAMP_END",
    "timestamp_export": "TIMESTAMP_EXPORT", "export_proto_seqno": "EXPORT_PROTO_SEQNO",
    "stamp_inserted": "STAMP_INSERTED",
    "export_proto_version": "EXPORT_PROTO_VERSION", "export_proto_sysid": "EXPORT_PROTO_SYSID",
}
ALL_PRIMITIVES = tuple(p for p in COLUMNS if p != "stamp_inserted")
COUNTERS = ("PACKETS", "FLOWS", "BYTES")
# JSON keys of the print plugin for the few primitives the time-bin comparison uses
JSON_KEYS = {"ip_src": "SRC_IP", "ip_dst": "DST_IP", "port_src": "SRC_PORT",
             "port_dst": "DST_PORT", "ip_proto": "PROTOCOL", "stamp_inserted": "STAMP_INSERTED",
             "packets": "PACKETS", "bytes": "BYTES", "flows": "FLOWS"}


def have_nfacctd() -> bool:
    return os.access(NFACCTD, os.X_OK)


def run_nfacctd(pcap: str, primitives, extra: dict | None = None, timeout: int = 120,
                binary: str = NFACCTD) -> list[dict]:
    """nfacctd's print output for ``pcap`` as a list of CSV rows (dicts)."""
    work = Path(tempfile.mkdtemp(prefix="pmoracle."))
    try:
        conf = {
            "daemonize": "false",
            "pcap_savefile": os.path.abspath(pcap),
            "plugins": "print[a]",
            "aggregate[a]": ", ".join(p for p in primitives if p != "stamp_inserted") + ", flows",
            "print_output[a]": "csv",
            "print_output_file[a]": "out.csv",
            "print_num_protos[a]": "true",
            "timestamps_since_epoch[a]": "true",
            "logfile": "nfacctd.log",
            **ORACLE_BUFFERS,
        }
        binned = "stamp_inserted" in primitives
        if binned:
            # time bins: only the JSON output carries stamp_inserted
            conf["print_history[a]"] = "1m"
            conf["print_history_roundoff[a]"] = "m"
            conf["print_output[a]"] = "json"
        conf.update(extra or {})
        for attempt in range(ATTEMPTS):
            # the core reads the file as soon as its delay is over: a plugin that is
            # slow to start (a loaded machine) misses everything, so retry with more
            conf["pcap_savefile_delay"] = str(1 + 3 * attempt)
            res = run_daemon(binary, conf, work, timeout=timeout, output_glob="out.csv")
            problem = _untrusted(res)
            if problem:
                continue
            text = res.outputs["out.csv"]
            if binned:
                rows = [{col: str(obj.get(key, "")) for key, col in JSON_KEYS.items()}
                        for obj in map(json.loads, filter(None, text.splitlines()))]
            else:
                rows = list(csv.DictReader(io.StringIO(text)))
            # no rows at all: most likely a plugin that started after the file was read
            # (it writes just the header); a capture that really gives no rows gives none
            # every time
            if rows or attempt == ATTEMPTS - 1:
                return rows
            problem = "nfacctd printed no rows"
        raise RuntimeError(problem)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _untrusted(res) -> str:
    """Why a run's output cannot be used ('' when it can)."""
    if res.timed_out:
        return f"nfacctd did not end in time:\n{res.log[-2000:]}"
    if res.drained is False:
        return "a plugin was never seen idle after the end of the file"
    bad = log_trouble(res.log)
    if bad:
        # a starved plugin lost buffers or the cache overflowed: run it again
        return "nfacctd's log reports trouble:\n  " + "\n  ".join(bad[:10])
    if "out.csv" not in res.outputs:
        return f"nfacctd wrote no output: {res.log[-2000:]}{res.stderr[-2000:]}"
    return ""


def _addr(a) -> str:
    if a["af"] == 4:
        return socket.inet_ntop(socket.AF_INET, bytes(a["addr"])[:4])
    if a["af"] == 6:
        return socket.inet_ntop(socket.AF_INET6, bytes(a["addr"]))
    return ""


def _mac(v) -> str:
    return ":".join(f"{b:02x}" for b in bytes(v))


def _rd(v) -> str:
    b = bytes(v)
    t = int.from_bytes(b[0:2], "big") & 0x0FFF if b[0] & 0xF0 != 0x10 else 0x1000
    if t == 0:
        return f"0:{int.from_bytes(b[2:4], 'big')}:{int.from_bytes(b[4:8], 'big')}"
    if t == 1:
        return f"1:{socket.inet_ntop(socket.AF_INET, b[2:6])}:{int.from_bytes(b[6:8], 'big')}"
    if t == 2:
        return f"2:{int.from_bytes(b[2:6], 'big')}:{int.from_bytes(b[6:8], 'big')}"
    if t == 0x1000:
        return f"vrfid:{int.from_bytes(b[4:8], 'big')}"
    return "unknown"


def _ts(us) -> str:
    us = int(us)
    if us == 0:
        return "0.000000"
    return f"{us // 1_000_000}.{us % 1_000_000:06d}"


def format_record(r, prim: str) -> str:
    if prim in ("src_host", "dst_host", "peer_src_ip", "peer_dst_ip", "post_nat_src_host",
                "post_nat_dst_host"):
        return _addr(r[prim])
    if prim in ("src_mac", "dst_mac"):
        return _mac(r[prim])
    if prim == "mpls_vpn_rd":
        return _rd(r[prim])
    if prim == "etype":
        return f"{int(r['etype']):x}"
    if prim == "tcpflags":
        return str(int(r["tcp_flags"]))
    if prim == "sampling_direction":
        v = int(r[prim])
        return chr(v) if v else ""
    if prim == "stamp_inserted":
        # the 1-minute bin of time_start as pmacct 1.7.7 computes it: a start time that
        # falls exactly on a bin boundary in the past lands one bin early
        # (P_eval_historical_acct); that is the plugin's business, not the decoder's
        sec = int(r["time_start"]) // 1_000_000
        early = sec % 60 == 0 and sec < time.time() - 60
        return f"{sec // 60 * 60 - (60 if early else 0)}"
    if prim.startswith("timestamp_"):
        return _ts(r["ts_" + prim[len("timestamp_"):]])
    return str(int(r[prim]))


def normalise(prim: str, value: str) -> str:
    """Spellings of "unset" that the print plugin varies by flow family."""
    if prim in ("peer_dst_ip", "post_nat_src_host", "post_nat_dst_host", "peer_src_ip",
                "src_host", "dst_host"):
        if value.startswith("::ffff:") and "." in value:
            value = value[7:]
        if value in ("", "0.0.0.0", "::"):
            return ""
    return value


def decode_pcap(pcap: str, opts: NetflowOptions | None = None, batch: int = 64):
    dec = NetflowDecoder(opts or NetflowOptions(), log=Logger(), stats=Stats())
    dgs = list(read_datagrams(pcap))
    recs = []
    for i in range(0, len(dgs), batch):
        recs.append(dec.decode(dgs[i:i + batch]).records)
    records = np.concatenate(recs) if recs else np.zeros(0, dec.opts.record_dtype)
    return records, dec


def our_rows(records, primitives) -> collections.Counter:
    agg = collections.defaultdict(lambda: [0, 0, 0])
    for r in records:
        key = tuple(normalise(p, format_record(r, p)) for p in primitives)
        a = agg[key]
        a[0] += int(r["packets"])
        a[1] += int(r["flows"])
        a[2] += int(r["bytes"])
    return collections.Counter({k + tuple(v): 1 for k, v in agg.items()})


def their_rows(rows, primitives) -> collections.Counter:
    agg = collections.defaultdict(lambda: [0, 0, 0])
    for row in rows:
        key = tuple(normalise(p, row[COLUMNS[p]].split(".")[0] if p == "stamp_inserted" else row[COLUMNS[p]])
                    for p in primitives)
        a = agg[key]
        for i, c in enumerate(COUNTERS):
            a[i] += int(row[c])
    return collections.Counter({k + tuple(v): 1 for k, v in agg.items()})


def compare(pcap: str, primitives=ALL_PRIMITIVES, opts=None, extra=None, binary: str = NFACCTD):
    """(ours, theirs) Counters of rows; equal when we decode as nfacctd does."""
    records, _ = decode_pcap(pcap, opts)
    mine = our_rows(records, primitives)
    theirs = their_rows(run_nfacctd(pcap, primitives, extra, binary=binary), primitives)
    return mine, theirs


def diff_report(mine, theirs, primitives) -> str:
    only_m = mine - theirs
    only_t = theirs - mine
    lines = [f"ours={len(mine)} theirs={len(theirs)} only-ours={len(only_m)} only-theirs={len(only_t)}"]
    names = list(primitives) + ["packets", "flows", "bytes"]
    for a, b in zip(sorted(only_m), sorted(only_t)):
        d = {n: (x, y) for n, x, y in zip(names, a, b) if x != y}
        lines.append(f"  differs: {d}")
    return "\n".join(lines[:40])
