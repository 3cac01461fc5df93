"""The classic-pcap record walk of ``SavefileSource`` (its own loop, tuned for speed):
records cut by the end of a read, a cut last record, and a bogus record length, at
read sizes from tiny to the default, agree with the frame-by-frame reader."""
from __future__ import annotations

import struct

import pytest

import pypmacct.sources.savefile as sf
from pypmacct.sources.savefile import SavefileError, SavefileSource, read_datagrams


def _udp_frame(i: int) -> bytes:
    """Ethernet + IPv4 + UDP with a payload whose length varies with ``i``."""
    payload = bytes([i & 0xFF]) * (3 + (i * 37) % 300)
    udp = struct.pack("!HHHH", 2000 + i, 2100, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), i & 0xFFFF, 0, 64, 17, 0,
                     bytes([192, 0, 2, 1 + i % 200]), bytes([192, 0, 2, 254])) + udp
    return b"\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb\x08\x00" + ip


def _pcap(path, frames, bogus_at=None):
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i, fr in enumerate(frames):
            incl = 0x4000001 if i == bogus_at else len(fr)
            f.write(struct.pack("<IIII", 1000 + i, i, incl, len(fr)) + fr)
    return str(path)


def _read(path, size=64):
    out, err = [], None
    try:
        for b in SavefileSource(path, arrival="capture").batches(size):
            out += [(d.src, d.port, bytes(d.payload), d.ts_us) for d in b]
    except SavefileError as e:
        err = str(e)
    return out, err


CHUNKS = [17, 100, 999, 4096, 1 << 22]


@pytest.fixture(autouse=True, params=["mapped", "read"])
def walk(request, monkeypatch):
    """Every walk test runs on both paths: the mapped file and the reads (pipes)."""
    monkeypatch.setattr(sf, "_MAP", request.param == "mapped")
    return request.param


def test_regular_file_is_walked_in_place(tmp_path, walk):
    """A regular file is mapped: every batch's buffer is a span of the mapping (no read
    copy, no join), and a datagram's payload is still plain bytes."""
    p = _pcap(tmp_path / "a.pcap", [_udp_frame(i) for i in range(300)])
    batches = list(SavefileSource(p, arrival="capture").batches(64))
    assert [len(b) for b in batches] == [64, 64, 64, 64, 44]
    kinds = {type(b.buf) for b in batches}
    assert kinds == ({memoryview} if walk == "mapped" else {bytes})
    assert type(batches[1][0].payload) is bytes
    assert batches[1][0].payload == _udp_frame(64)[42:]


def test_a_pipe_is_read_not_mapped(tmp_path, walk):
    """A savefile stream that is not a regular file (a pipe here) takes the read path,
    records cut by its reads put together."""
    import os
    import threading
    data = open(_pcap(tmp_path / "a.pcap", [_udp_frame(i) for i in range(120)]), "rb").read()
    r, w = os.pipe()
    writer = threading.Thread(target=lambda: (os.write(w, data), os.close(w)))
    writer.start()
    with os.fdopen(r, "rb", buffering=0) as fh:
        reader = sf._Reader(fh, fh.read(24))
        assert reader._map() is None
        got = [(bytes(buf[o:o + n])) for buf, _lt, fo, fl, _ts in reader
               for o, n in zip(fo.tolist(), fl.tolist())]
    writer.join(10)
    assert got == [_udp_frame(i) for i in range(120)]


@pytest.mark.parametrize("chunk", CHUNKS)
def test_walk_matches_frame_reader(tmp_path, monkeypatch, chunk):
    monkeypatch.setattr(sf, "_READ_CHUNK", chunk)
    p = _pcap(tmp_path / "a.pcap", [_udp_frame(i) for i in range(300)])
    got, err = _read(p)
    want = [(d.src, d.port, bytes(d.payload), d.ts_us) for d in read_datagrams(p, arrival="capture")]
    assert err is None and len(got) == 300 and got == want
    assert got[7] == ("192.0.2.8", 2007, _udp_frame(7)[42:], 1007 * 1_000_000 + 7)


@pytest.mark.parametrize("chunk", CHUNKS)
@pytest.mark.parametrize("cut", [1, 10, 16, 17, 60])
def test_cut_last_record_is_dropped(tmp_path, monkeypatch, chunk, cut):
    monkeypatch.setattr(sf, "_READ_CHUNK", chunk)
    p = _pcap(tmp_path / "a.pcap", [_udp_frame(i) for i in range(50)])
    data = open(p, "rb").read()
    open(p, "wb").write(data[:-cut])
    got, err = _read(p)
    assert err is None
    assert [g[1] for g in got] == [2000 + i for i in range(49)]


@pytest.mark.parametrize("chunk", CHUNKS)
@pytest.mark.parametrize("at", [0, 1, 40, 99])
def test_bogus_length_stops_after_the_good_records(tmp_path, monkeypatch, chunk, at):
    monkeypatch.setattr(sf, "_READ_CHUNK", chunk)
    p = _pcap(tmp_path / "a.pcap", [_udp_frame(i) for i in range(100)], bogus_at=at)
    got, err = _read(p, size=1)
    assert err == f"bogus record length {0x4000001}"
    assert [g[1] for g in got] == [2000 + i for i in range(at)]


def test_reads_are_sized_to_about_three_batches(tmp_path):
    """The first read's frame sizes set the read size to three batches' worth, between
    the 4 MiB floor and the 16 MiB cap (a batch spanning two reads is copied)."""
    path = tmp_path / "h.pcap"
    path.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    with open(path, "rb") as fh:
        r = sf._Reader(fh, fh.read(24))
    assert r.chunk == sf._READ_CHUNK
    r.fit(0, 0, 4096)                         # nothing read yet: unchanged
    assert r.chunk == sf._READ_CHUNK
    r.fit(1000, 1000 * 1500, 4096)            # 1.5 kB frames: 18 MB wanted, capped
    assert r.chunk == sf._MAX_READ_CHUNK
    r.fit(1000, 1000 * 500, 4096)             # 500 B frames: 6,144,000 bytes
    assert r.chunk == 3 * 4096 * 500
    r.fit(1000, 1000 * 100, 4096)             # small frames: never below the floor
    assert r.chunk == sf._READ_CHUNK


def test_pmacctd_chunks_are_reads_not_the_mapped_file(tmp_path, monkeypatch, walk):
    """pmacctd's savefile_chunks hands each chunk's buffer on whole to the packet parser
    (which pads it with a copy): every buffer is one read of at most ``_READ_CHUNK``
    bytes, never the whole mapped file (which made the parser copy all of it per chunk),
    and the frames are the file's."""
    from pypmacct.sources.capture import savefile_chunks
    monkeypatch.setattr(sf, "_READ_CHUNK", 4096)
    frames = [_udp_frame(i) for i in range(400)]
    p = _pcap(tmp_path / "a.pcap", frames)
    chunks = list(savefile_chunks(p))
    assert len(chunks) > 10
    assert all(type(c.buf) is bytes and len(c.buf) <= 4096 for c in chunks)
    got = [bytes(c.buf[o:o + n]) for c in chunks for o, n in zip(c.offset.tolist(),
                                                                   c.length.tolist())]
    assert got == frames


@pytest.mark.parametrize("cut", [False, True])
def test_records_appended_during_the_replay_are_read(tmp_path, walk, cut):
    """A savefile still being written (tcpdump -w, a growing file) is read to the end it
    has when the replay gets there, as libpcap's reads do; the mapped path looks past
    its mapping then. ``cut``: the file ended in the middle of a record at first."""
    frames = [_udp_frame(i) for i in range(400)]
    p = _pcap(tmp_path / "a.pcap", frames[:300])
    with open(p, "ab") as f:
        f.write(struct.pack("<IIII", 2000, 0, len(frames[300]), len(frames[300])))
        if cut:
            f.write(frames[300][:10])
    got = []
    it = iter(SavefileSource(p, arrival="capture").batches(64))
    got += [bytes(d.payload) for d in next(it)]
    with open(p, "ab") as f:                 # the writer goes on
        f.write(frames[300][10:] if cut else frames[300])
        for i, fr in enumerate(frames[301:], 301):
            f.write(struct.pack("<IIII", 1000 + i, i, len(fr), len(fr)) + fr)
    for b in it:
        got += [bytes(d.payload) for d in b]
    want = [d.payload for d in read_datagrams(p)]
    assert len(want) == 400
    assert got == want
