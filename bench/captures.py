"""Captures for bench/run.py beyond its NetFlow ones, each with the totals it holds.

Every builder returns ``(path, meta)`` where ``meta`` has ``records`` (flow records,
sFlow flow samples or packets), ``packets`` and ``bytes`` (what a lossless daemon's
output must sum to), ``keys`` (distinct 5-tuple and src_host aggregates where known)
and ``daemon``. Builders reuse a capture while its parameters are unchanged (a
``.json`` sidecar). Big captures (the scaling series, up to 10M records) go to
``$PMACCT_BENCH_CACHE`` (default /tmp/pypmacct-bench), never into the repository.
"""
from __future__ import annotations

import json
import os
import struct
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from tests.support import flowgen, pcapio, pktgen, sflowgen  # noqa: E402

CACHE = Path(os.environ.get("PMACCT_BENCH_CACHE", "/tmp/pypmacct-bench"))


def _reuse(path: Path, params: dict):
    side = path.with_suffix(".json")
    if path.exists() and side.exists():
        meta = json.loads(side.read_text())
        if meta.get("params") == params:
            return meta
    return None


def _save(path: Path, meta: dict) -> dict:
    meta["size"] = path.stat().st_size
    path.with_suffix(".json").write_text(json.dumps(meta, indent=1))
    return meta


def sflow(records: int, smoke: bool = False) -> tuple[Path, dict]:
    """sFlow v5 (tests/support/sflowgen.py), a base of datagrams repeated until it holds
    ``records`` flow samples. Without renormalisation each flow sample counts one
    packet of its frame length."""
    base_n = 200 if smoke else 1500
    CACHE.mkdir(parents=True, exist_ok=True)
    params = {"kind": "sflow", "base": base_n, "records": records, "seed": 77}
    path = CACHE / f"sflow-{records}.pcap"
    meta = _reuse(path, params)
    if meta:
        return path, meta
    cap = sflowgen.generate(sflowgen.SflowParams(seed=77, datagrams=base_n,
                                                 samples_per_datagram=(4, 9)))
    per = len(cap.samples)
    repeat = max(1, -(-records // per))
    frames = [pcapio.udp_frame(src, sflowgen.COLLECTOR6 if ":" in src else sflowgen.COLLECTOR,
                               6343, 6343, payload) for src, payload in cap.datagrams]
    tmp = path.with_suffix(".tmp")
    with pcapio.PcapWriter(tmp) as w:
        k = 0
        for _ in range(repeat):
            for f in frames:
                w.write(1_700_000_000_000_000_000 + k * 1000, f)
                k += 1
    os.replace(tmp, path)
    five = {(s.src, s.dst, s.sport, s.dport, s.proto) for s in cap.samples}
    meta = {"params": params, "daemon": "sfacctd", "records": per * repeat,
            "datagrams": len(frames) * repeat, "packets": per * repeat,
            "bytes": sum(s.frame_len for s in cap.samples) * repeat,
            "keys": {"5-tuple": len(five), "src_host": len({s.src for s in cap.samples})}}
    return path, _save(path, meta)


def sflow_tiny() -> Path:
    path = CACHE / "sflow-tiny.pcap"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        sflowgen.generate(sflowgen.SflowParams(seed=79, datagrams=1, agents=1, ipv6_agent=False,
                                               samples_per_datagram=(1, 2),
                                               counter_share=0)).write_pcap(path)
    return path


def _ip_bytes(frame: bytes) -> int:
    """IP bytes of an Ethernet frame (802.1Q tags skipped), as pmacctd counts them."""
    off, et = 12, struct.unpack_from("!H", frame, 12)[0]
    while et in (0x8100, 0x88A8):
        off += 4
        et = struct.unpack_from("!H", frame, off)[0]
    ip = off + 2
    if et == 0x0800:
        return struct.unpack_from("!H", frame, ip + 2)[0]
    if et == 0x86DD:
        return 40 + struct.unpack_from("!H", frame, ip + 4)[0]
    return 0


def packets(records: int, smoke: bool = False) -> tuple[Path, dict]:
    """802.1Q frames (tests/support/pktgen.py), a base of frames repeated to ``records``."""
    base_n = 2000 if smoke else 20000
    CACHE.mkdir(parents=True, exist_ok=True)
    params = {"kind": "packets", "base": base_n, "records": records, "seed": 78}
    path = CACHE / f"packets-{records}.pcap"
    meta = _reuse(path, params)
    if meta:
        return path, meta
    frames = pktgen.frames(pktgen.PktParams(seed=78, link="vlan", packets=base_n))
    repeat = max(1, -(-records // len(frames)))
    ipb = [_ip_bytes(f) for f in frames]
    tmp = path.with_suffix(".tmp")
    with pcapio.PcapWriter(tmp, linktype=pktgen.LINKTYPES["vlan"]) as w:
        k = 0
        for _ in range(repeat):
            for f in frames:
                w.write(1_700_000_000_000_000_000 + k * 1000, f)
                k += 1
    os.replace(tmp, path)
    n_ip = sum(1 for b in ipb if b)
    meta = {"params": params, "daemon": "pmacctd", "records": len(frames) * repeat,
            "packets": n_ip * repeat, "bytes": sum(ipb) * repeat, "keys": {}}
    return path, _save(path, meta)


def packets_tiny() -> Path:
    path = CACHE / "packets-tiny.pcap"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        pktgen.write_capture(path, pktgen.PktParams(seed=79, link="vlan", packets=1))
    return path


def _keys(t) -> dict:
    k5 = np.unique(np.concatenate([t["src_ip"], t["dst_ip"],
                                   t["src_port"].astype(">u2").view(np.uint8).reshape(-1, 2),
                                   t["dst_port"].astype(">u2").view(np.uint8).reshape(-1, 2),
                                   t["proto"][:, None]], axis=1), axis=0)
    return {"5-tuple": int(len(k5)), "src_host": int(len(np.unique(t["src_ip"], axis=0)))}


def netflow(version: int, records: int, *, flow_pool: int, hosts: int = 4096, ports: int = 1000,
            seed: int = 500, repeat: int = 1, name: str = "") -> tuple[Path, dict]:
    """A flowgen capture of ``records // repeat`` records written ``repeat`` times (so a
    10M-record capture costs the generation of 1M), into the cache directory."""
    CACHE.mkdir(parents=True, exist_ok=True)
    base = records // repeat
    params = {"kind": "netflow", "version": version, "base": base, "repeat": repeat,
              "flow_pool": flow_pool, "hosts": hosts, "ports": ports, "seed": seed}
    path = CACHE / (name or f"nf{version}-{base}x{repeat}-p{flow_pool}-h{hosts}.pcap")
    meta = _reuse(path, params)
    if meta:
        return path, meta
    exp = flowgen.generate(flowgen.GenParams(
        version=version, records=base, seed=seed, exporters=4, hosts=hosts, ports=ports,
        flow_pool=flow_pool, ipv6_share=0.0 if version == 5 else 0.2, duration=600,
        groups=("tos", "tcpflags", "ifaces", "as", "masks", "nexthop")))
    tmp = path.with_suffix(".tmp")
    exp.write_pcap(tmp)
    if repeat > 1:
        frames = list(pcapio.read_frames(tmp))
        with pcapio.PcapWriter(path) as w:
            k = 0
            for _ in range(repeat):
                for _ts, _lt, f in frames:
                    w.write(1_704_067_200_000_000_000 + k * 1000, f)
                    k += 1
        tmp.unlink()
    else:
        os.replace(tmp, path)
    t = exp.truth
    meta = {"params": params, "daemon": "nfacctd", "records": len(t) * repeat,
            "datagrams": len(exp.datagrams) * repeat,
            "packets": int(t["packets"].sum()) * repeat, "bytes": int(t["bytes"].sum()) * repeat,
            "keys": _keys(t)}
    return path, _save(path, meta)
