"""The protocol between the ``pmacct`` client and the memory plugin (ours; see
docs/memory.md).

One request per connection, over the plugin's UNIX stream socket (``imt_path``):

- the client sends one JSON object on one line (UTF-8, ``\\n``-terminated, at most
  ``MAX_REQUEST`` bytes): ``{"v": 1, "op": ..., ...}``;
- the plugin answers with one JSON object on one line, the *reply header*, followed by
  the binary blobs it announces in ``"blobs"`` (a list of byte lengths), back to back;
  then it closes the connection.

A reply header always has ``"ok"``; when it is false, ``"error"`` says why (malformed
request, too large, unknown operation...). Table rows travel as the plugin's own key
rows (numpy structured array, dtype in ``"key_dtype"``, as ``numpy.lib.format``
describes dtypes) and value columns (little-endian uint64 ``packets``, ``bytes``,
``flows``; uint8 ``flow_type`` and, when tcpflags is aggregated, ``tcp_flags``); string
fields of the keys index ``"strings"``.
"""
from __future__ import annotations

import json
import socket

import numpy as np
from numpy.lib import format as npformat

VERSION = 1
MAX_REQUEST = 1 << 20          # bytes; 4096 queries of a few fields fit easily
MAX_QUERIES = 4096             # as pmacct's client (MAX_QUERIES)
OPS = ("stats", "match", "counter", "status", "erase", "erase_stamp", "class_table",
       "custom_primitives")
VALUE_COLUMNS = (("packets", "<u8"), ("bytes", "<u8"), ("flows", "<u8"),
                 ("flow_type", "u1"), ("tcp_flags", "u1"))


class ProtocolError(Exception):
    """A malformed message (either direction)."""


def encode(obj: dict) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


def read_line(sock: socket.socket, limit: int) -> bytes:
    """Bytes up to the first newline (excluded). Raises ProtocolError when more than
    ``limit`` bytes come without one, or the peer closes first."""
    buf = bytearray()
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            raise ProtocolError("connection closed before the end of the message")
        nl = chunk.find(b"\n")
        if nl >= 0:
            buf += chunk[:nl]
            if len(buf) > limit:
                raise ProtocolError(f"message larger than {limit} bytes")
            return bytes(buf), chunk[nl + 1:]
        buf += chunk
        if len(buf) > limit:
            raise ProtocolError(f"message larger than {limit} bytes")


def read_exact(sock: socket.socket, n: int, head: bytes = b"") -> bytes:
    buf = bytearray(head)
    while len(buf) < n:
        chunk = sock.recv(min(1 << 20, n - len(buf)))
        if not chunk:
            raise ProtocolError("connection closed in the middle of a reply")
        buf += chunk
    return bytes(buf[:n])


def parse_request(line: bytes) -> dict:
    try:
        req = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise ProtocolError(f"request is not JSON: {e}") from None
    if not isinstance(req, dict):
        raise ProtocolError("request is not a JSON object")
    if req.get("v") != VERSION:
        raise ProtocolError(f"unsupported protocol version {req.get('v')!r} (expected {VERSION})")
    op = req.get("op")
    if op not in OPS:
        raise ProtocolError(f"unknown operation {op!r}")
    queries = req.get("queries", [])
    if not isinstance(queries, list) or len(queries) > MAX_QUERIES:
        raise ProtocolError(f"'queries' must be a list of at most {MAX_QUERIES} objects")
    for q in queries:
        if not isinstance(q, dict):
            raise ProtocolError("every query must be a JSON object")
    return req


# ---- dtypes on the wire -------------------------------------------------------------
def dtype_to_wire(dt: np.dtype):
    return npformat.dtype_to_descr(dt)


def _descr(d):
    """A JSON-decoded dtype description back into numpy's (tuples, not lists)."""
    if isinstance(d, str):
        return d
    out = []
    for e in d:
        e = list(e)
        e[1] = _descr(e[1])
        if len(e) == 3:
            e[2] = tuple(e[2])
        out.append(tuple(e))
    return out


def dtype_from_wire(descr) -> np.dtype:
    try:
        return npformat.descr_to_dtype(_descr(descr))
    except Exception as e:  # noqa: BLE001 - any malformed descr
        raise ProtocolError(f"bad key dtype in reply: {e}") from None


# ---- table replies ----------------------------------------------------------------
def _raw(a: np.ndarray) -> memoryview:
    """The bytes of an array, without a copy when it is contiguous."""
    a = np.ascontiguousarray(a)
    return memoryview(a.reshape(-1).view(np.uint8)) if a.dtype.itemsize else memoryview(b"")


def table_blobs(keys: np.ndarray, values: dict) -> tuple[list[str], list]:
    names, blobs = [], [_raw(keys)]
    for name, dt in VALUE_COLUMNS:
        if name in values:
            names.append(name)
            blobs.append(_raw(np.asarray(values[name]).astype(dt, copy=False)))
    return names, blobs


def table_from_blobs(header: dict, blobs: list[bytes]):
    dt = dtype_from_wire(header["key_dtype"])
    n = int(header["rows"])
    if len(blobs) != 1 + len(header["values"]) or len(blobs[0]) != n * dt.itemsize:
        raise ProtocolError("table reply sizes do not match its header")
    keys = np.frombuffer(blobs[0], dtype=dt, count=n) if n else np.zeros(0, dtype=dt)
    types = dict(VALUE_COLUMNS)
    values = {}
    for name, blob in zip(header["values"], blobs[1:]):
        values[name] = np.frombuffer(blob, dtype=types[name], count=n)
    return keys, values


def send_reply(sock: socket.socket, header: dict, blobs: list[bytes] = ()) -> None:
    header = dict(header)
    header["blobs"] = [len(b) for b in blobs]
    sock.sendall(encode(header))
    for b in blobs:
        if b:
            sock.sendall(b)


def recv_reply(sock: socket.socket, limit: int = 64 << 20):
    line, rest = read_line(sock, limit)
    try:
        header = json.loads(line.decode("utf-8"))
    except ValueError as e:
        raise ProtocolError(f"reply is not JSON: {e}") from None
    if not isinstance(header, dict):
        raise ProtocolError("reply is not a JSON object")
    sizes = header.get("blobs", [])
    total = sum(int(s) for s in sizes)
    data = read_exact(sock, total, rest) if total else b""
    blobs, off = [], 0
    for s in sizes:
        blobs.append(data[off:off + int(s)])
        off += int(s)
    return header, blobs
