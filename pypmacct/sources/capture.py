"""Frames for pmacctd: capture files and live interfaces, a chunk of frames at a time.

- ``savefile_chunks(path)``: classic pcap read a large block at a time (the frames stay
  in the buffer they were read into, ``savefile._Reader``), pcapng frame by frame but
  handed out in groups; each yields ``FrameChunk``s.
- ``LiveCapture``: libpcap through pcapy-ng (``open_live`` with ``snaplen``,
  ``promisc``, a read timeout, ``setfilter`` for ``pcap_filter``, ``setdirection`` for
  ``pcap_direction``); ``read()`` gathers the packets that arrived into one chunk.
- ``filtered_savefile_chunks``: a savefile read by libpcap itself when ``pcap_filter`` is
  set, so that the filter is libpcap's.

pcapy-ng's ``next_batch`` hands over many packets per call (one buffer plus a table of
offsets and lengths), so no Python code runs per packet.
"""
from __future__ import annotations

import os
import select
import socket
import time
from typing import Iterator

import numpy as np

from ..decoders.frames import FrameChunk
from ..jhash import jhash
from .savefile import _PCAP_MAGICS, SavefileError, SavefileSource, _Reader, read_frames


def savefile_chunks(path: str) -> Iterator[FrameChunk]:
    with open(path, "rb") as fh:
        head = fh.read(24)
        if head[:4] in _PCAP_MAGICS:
            # read, not mapped: a chunk's buffer goes on whole to the packet parser,
            # which pads (copies) it, and a mapped file is one buffer for all chunks
            chunks = _Reader(fh, head, mapped=False)
        else:
            chunks = SavefileSource._frames_as_chunks(read_frames(path))
        for buf, lt, fo, fl, ts in chunks:
            yield FrameChunk(buf, lt, fo, fl, ts)


def savefile_linktype(path: str):
    """The link type of a capture file (pcapng: of its first interface), or None."""
    with open(path, "rb") as fh:
        head = fh.read(24)
    if head[:4] in _PCAP_MAGICS and len(head) == 24:
        endian = _PCAP_MAGICS[head[:4]][0]
        return int.from_bytes(head[20:24], "little" if endian == "<" else "big") & 0x0FFFFFFF
    for lt, _ts, _frame in read_frames(path):
        return lt
    return None


def _pcapy():
    try:
        import pcapy  # pcapy-ng
    except ImportError as e:                     # pragma: no cover - install problem
        raise OSError(f"live capture needs pcapy-ng ({e})") from e
    return pcapy


def _chunk(data, meta, linktype) -> FrameChunk:
    """A chunk from pcapy-ng's ``next_batch`` result (bytes, packed (sec, usec, offset,
    caplen) uint32 records)."""
    m = np.frombuffer(meta, np.uint32).reshape(-1, 4).astype(np.int64)
    return FrameChunk(data, linktype, m[:, 2], m[:, 3], m[:, 0] * 1_000_000 + m[:, 1])


def filtered_savefile_chunks(path: str, bpf: str, batch: int = 8192) -> Iterator[FrameChunk]:
    """A capture file read by libpcap with ``pcap_filter`` applied (in C, a batch of
    packets per call)."""
    pcapy = _pcapy()
    try:
        p = pcapy.open_offline(path)
        p.setfilter(bpf)
    except Exception as e:
        raise SavefileError(f"{path}: {e}") from e
    lt = p.datalink()
    while True:
        data, meta = p.next_batch(batch)
        if not len(meta):
            return
        yield _chunk(data, meta, lt)


class LiveCapture:
    """One interface through libpcap."""

    def __init__(self, device: str, snaplen: int = 65535, promisc: bool = True,
                 bpf: str | None = None, direction: str | None = None, timeout_ms: int = 100,
                 protocol: int = 0):
        pcapy = _pcapy()
        self.device = device
        self.p = pcapy.open_live(device, snaplen, 1 if promisc else 0, timeout_ms)
        if protocol:
            self._set_protocol(device, protocol)
        if bpf:
            self.p.setfilter(bpf)
        if direction:
            d = {"in": pcapy.PCAP_D_IN, "out": pcapy.PCAP_D_OUT}[direction]
            try:
                self.p.setdirection(d)
            except Exception:                    # not every platform has it
                pass
        self.linktype = self.p.datalink()
        self.received = 0
        # non-blocking: next_batch hands over what is there; we wait on the descriptor
        self.p.setnonblock(1)

    def _set_protocol(self, device: str, protocol: int) -> None:
        """``pcap_protocol``: what libpcap's pcap_set_protocol_linux() does before
        activation (the packet socket hears only that link-layer protocol), done on the
        open socket instead, since pcapy-ng has no call for it: the socket is bound again
        to its interface with the protocol (a packet socket may change its protocol by
        bind). Linux only; frames already queued before the bind may still come."""
        import ctypes
        import struct
        fd = self.fileno()
        if fd < 0:
            raise OSError("pcap_protocol: no capture socket to bind")
        ifindex = 0 if device == "any" else socket.if_nametoindex(device)
        # struct sockaddr_ll: family, protocol (network order), ifindex, hatype, pkttype,
        # halen, addr[8]
        sll = struct.pack("=HHiHBB8s", socket.AF_PACKET, socket.htons(protocol), ifindex,
                          0, 0, 0, b"")
        libc = ctypes.CDLL(None, use_errno=True)
        buf = ctypes.create_string_buffer(sll, len(sll))
        if libc.bind(fd, buf, len(sll)) != 0:
            e = ctypes.get_errno()
            raise OSError(e, f"pcap_protocol 0x{protocol:04x}: bind: {os.strerror(e)}")

    def fileno(self) -> int:
        try:
            return self.p.getfd()
        except Exception:
            return -1

    def set_rcvbuf(self, size, log=None) -> None:
        """``pmacctd_pipe_size``: the capture socket's receive buffer, as pmacct sets it."""
        if not size:
            return
        fd = self.fileno()
        if fd < 0:
            return
        try:
            s = socket.socket(fileno=os.dup(fd))
        except OSError:
            return
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, int(size))
            got = s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
            if log is not None:
                log.info(f"pmacctd_pipe_size: obtained={got} target={size}.")
        except OSError:
            pass
        finally:
            os.close(s.detach())              # our duplicate only; libpcap keeps its own

    def read(self, max_packets: int = 4096, timeout: float = 0.25) -> FrameChunk:
        """What has arrived, up to ``max_packets``; waits up to ``timeout`` seconds for
        the first packets."""
        data, meta = self.p.next_batch(max_packets)
        if not len(meta):
            fd = self.fileno()
            if fd >= 0:
                select.select([fd], [], [], timeout)
            else:
                time.sleep(timeout)
            data, meta = self.p.next_batch(max_packets)
        c = _chunk(data, meta, self.linktype)
        self.received += len(c.offset)
        return c

    def stats(self):
        try:
            return self.p.stats()
        except Exception:
            return None

    def close(self) -> None:
        close = getattr(self.p, "close", None)
        if close is not None:
            close()


__all__ = ["savefile_chunks", "filtered_savefile_chunks", "LiveCapture", "SavefileError"]


def jhash_name(name: str) -> int:
    """pcap_ifindex: hash — the ifIndex pmacct 1.7.7 derives from an interface name:
    the jhash of the name's bytes, seed 0."""
    return jhash(name.encode())
