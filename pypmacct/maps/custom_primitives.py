"""aggregate_primitives: custom primitives read from NetFlow v9/IPFIX elements or from
packet bytes (packet_ptr).

The file (pmacct 1.7.7 syntax, see examples/primitives.lst) has one primitive per line:
``name=NAME field_type=[PEN:]ID len=N semantics=u_int|hex|ip|mac``. The name can then be
used in ``aggregate``. Values are decoded by the NetFlow decoder into a record field of
the same name (``decoders.ie.CustomField``) and printed after every built-in column
(after export_proto_sysid; in JSON after timestamp_export), in ``aggregate`` order, as
pmacct does: the header/key is the name as written; u_int as decimal, hex as ``%x``, ip
as an address (0.0.0.0 / :: when absent), mac as a MAC; in JSON always a string.

``str`` is the element's text up to its first NUL (empty when the template's length
differs), ``raw`` its bytes as upper-case hex joined by '-' (cut at 3 x len characters,
as pmacct's buffer does). ``len=vlen`` (str and raw only) takes the element at whatever
length the template gives, fixed or variable (IPFIX length 65535): str is its text up to
the first NUL, raw its whole hex form. Like every string, the value travels as an id into
the batch's string table.

``packet_ptr=LAYER[:PROTO][+OFFSET]`` (pmacctd, sfacctd's Ethernet sampled headers,
uacctd's l3/l4/payload; up to 8 per primitive, instead of or besides field_type) reads ``len`` bytes from the captured packet, OFFSET bytes past the
start of LAYER: ``packet`` (the frame), ``mac`` (the Ethernet header), ``vlan`` (the
first 802.1Q tag's TCI), ``mpls`` (the first label), ``l3`` (the IP header; PROTO: the
ethertype, 0x800 or 0x86dd), ``l4`` (the header after IP; PROTO: the IP protocol),
``payload`` (after the TCP/UDP header, and a VXLAN header). PROTO is decimal or, with an
``x``, hexadecimal. Every pointer whose layer the packet has, whose protocol matches and
whose bytes end before the last captured byte (pmacct's rule: strictly less than the
captured length) is applied in turn; a later one overwrites an earlier one. ``len=vlen``
takes the text from the pointer to the end of the capture (the last captured byte
excluded, as pmacct), up to the first NUL (semantics str only). The reading is
``pypmacct.decoders.packet_ptr``, vectorised over a batch of packets.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from ..record import ADDR_DTYPE

SEMANTICS = ("u_int", "hex", "ip", "mac", "str", "raw")
_UINT = {1: "u1", 2: "u2", 4: "u4", 8: "u8"}
# formatted widths of pmacct's cps_flen (digits of the largest value of each length)
_FLEN = {1: 3, 2: 5, 4: 10, 8: 20}


@dataclass(frozen=True)
class CustomPrimitive:
    name: str
    field_type: int
    pen: int
    length: int
    semantics: str
    lineno: int = 0
    vlen: bool = False      # len=vlen: length 0 here, any length the template gives
    # packet_ptr: ((layer, proto or 0, offset), ...) in file order; field_type is then
    # -1 unless the line gives one too
    packet_ptrs: tuple = ()

    @property
    def dtype(self):
        if self.semantics in ("u_int", "hex"):
            return np.dtype(_UINT[self.length])
        if self.semantics == "ip":
            return ADDR_DTYPE
        if self.semantics in ("str", "raw"):
            return np.dtype("i4")         # an index into the batch string table
        return np.dtype("V6")

    @property
    def fmt_width(self) -> int:
        if self.semantics in ("u_int", "hex"):
            base = _FLEN[self.length]
        elif self.semantics == "ip":
            base = 46            # INET6_ADDRSTRLEN
        elif self.semantics in ("str", "raw"):
            # pmacct pads to the declared length (raw's hex is longer); 1.7.7 refuses
            # formatted output with vlen primitives, we pad to the name
            base = 0 if self.vlen else self.length
        else:
            base = 18            # ETHER_ADDRSTRLEN
        return max(base, len(self.name))


def read_primitives(path: str, builtin_names) -> list[CustomPrimitive]:
    """The file's primitives; a bad line raises ValueError('line N: ...')."""
    out, seen = [], set()
    with open(path, encoding="utf-8", errors="replace") as f:
        for lineno, raw in enumerate(f, 1):
            s = raw.strip()
            if not s or s.startswith("!") or s.startswith("#"):
                continue
            kv, ptrs = {}, []
            for part in s.split():
                k, sep, v = part.partition("=")
                if not sep:
                    raise ValueError(f"line {lineno}: {part!r} is not key=value")
                if k.lower() == "packet_ptr":
                    ptrs.append(parse_packet_ptr(v, lineno))
                    continue
                kv[k.lower()] = v
            if len(ptrs) > MAX_PACKET_PTRS:
                raise ValueError(f"line {lineno}: more than {MAX_PACKET_PTRS} 'packet_ptr' "
                                 f"in one primitive")
            if ptrs and "field_type" not in kv:
                kv["field_type"] = "-1"
            for need in ("name", "field_type", "len", "semantics"):
                if need not in kv:
                    raise ValueError(f"line {lineno}: '{need}' is missing")
            name = kv["name"].lower()
            if not re.fullmatch(r"[a-z0-9_]+", name):
                raise ValueError(f"line {lineno}: bad primitive name {kv['name']!r}")
            if name in builtin_names:
                raise ValueError(f"line {lineno}: '{name}' is a built-in primitive")
            if name in seen:
                raise ValueError(f"line {lineno}: '{name}' defined twice")
            seen.add(name)
            ft = kv["field_type"]
            pen, _, num = ft.rpartition(":")
            try:
                field_type, pen_v = int(num), int(pen) if pen else 0
            except ValueError:
                raise ValueError(f"line {lineno}: bad field_type {ft!r}") from None
            sem = kv["semantics"].lower()
            if sem not in SEMANTICS:
                raise ValueError(f"line {lineno}: semantics {sem!r} is not supported by "
                                 f"pypmacct yet (supported: {', '.join(SEMANTICS)})")
            vlen = kv["len"].lower() == "vlen"
            if vlen:
                if sem not in ("str", "raw"):
                    raise ValueError(f"line {lineno}: len=vlen needs semantics str or raw")
                if ptrs and sem != "str":
                    raise ValueError(f"line {lineno}: with packet_ptr, len=vlen needs "
                                     f"semantics str (as pmacct)")
                out.append(CustomPrimitive(name, field_type, pen_v, 0, sem, lineno, True,
                                           tuple(ptrs)))
                continue
            if not kv["len"].isdigit():
                raise ValueError(f"line {lineno}: len {kv['len']!r} is not a number or vlen")
            length = int(kv["len"])
            ok = {"u_int": (1, 2, 4, 8), "hex": (1, 2, 4, 8), "ip": (4, 16), "mac": (6,)}.get(sem)
            if length < 1 or (ok is not None and length not in ok):
                raise ValueError(f"line {lineno}: len {length} does not fit semantics {sem}")
            out.append(CustomPrimitive(name, field_type, pen_v, length, sem, lineno,
                                       packet_ptrs=tuple(ptrs)))
    return out


# packet_ptr layers, in pmacct's order of its packet pointers
LAYERS = ("packet", "mac", "vlan", "mpls", "l3", "l4", "payload")
MAX_PACKET_PTRS = 8


def parse_packet_ptr(value: str, lineno: int = 0) -> tuple[str, int, int]:
    """``LAYER[:PROTO][+OFFSET]`` -> (layer, proto (0: any), offset)."""
    rest, plus, off_s = value.partition("+")
    layer, colon, proto_s = rest.partition(":")
    layer = layer.lower()
    if layer not in LAYERS:
        raise ValueError(f"line {lineno}: invalid packet_ptr layer {layer!r} (one of "
                         f"{', '.join(LAYERS)})")
    proto = 0
    if colon:
        try:
            proto = int(proto_s, 16) if "x" in proto_s.lower() else int(proto_s, 10)
        except ValueError:
            raise ValueError(f"line {lineno}: bad packet_ptr protocol {proto_s!r}") from None
        if proto and layer not in ("l3", "l4"):
            raise ValueError(f"line {lineno}: packet_ptr layer '{layer}' takes no protocol "
                             f"(only l3 and l4 do)")
        if not 0 <= proto <= 0xFFFF:
            raise ValueError(f"line {lineno}: bad packet_ptr protocol {proto_s!r}")
    offset = 0
    if plus:
        if not off_s.isdigit() or int(off_s) > 0xFFFF:
            raise ValueError(f"line {lineno}: bad packet_ptr offset {off_s!r}")
        offset = int(off_s)
    return layer, proto, offset


def columns_for(prims):
    """Output columns (pypmacct.output.columns.Column) for the custom primitives."""
    from ..output.columns import STR, Column
    kind = {"u_int": "uint", "hex": "cp_hex", "mac": "mac", "str": "string", "raw": "string"}
    cols = []
    for p in prims:
        k = kind.get(p.semantics) or ("cp_ip4" if p.length == 4 else "cp_ip6")
        w = p.fmt_width
        cols.append(Column(p.name, (p.name,), p.name, k, p.name.ljust(w + 2), w, "  ",
                           p.name, p.name, STR))
    return cols


VLEN = 65535     # pmacct's PM_VARIABLE_LENGTH, as `pmacct -U` shows it


def registry_table(prims, aggregate) -> list[dict]:
    """`pmacct -U`: the custom primitives a plugin aggregates, in its aggregate order,
    with pmacct's LEN (65535 for vlen) and OFF (the offset in its fixed-size buffer,
    where raw takes 3 x len + 1 bytes; 65535 for vlen). ``semantics`` and ``vlen`` let
    the client print their columns (:func:`from_registry`)."""
    by_name = {p.name: p for p in prims}
    out, off = [], 0
    for name in aggregate:
        p = by_name.get(name)
        if p is None:
            continue
        if p.vlen:
            out.append({"name": p.name, "len": VLEN, "off": VLEN,
                        "semantics": p.semantics, "vlen": True})
            continue
        out.append({"name": p.name, "len": p.length, "off": off,
                    "semantics": p.semantics, "vlen": False})
        off += 3 * p.length + 1 if p.semantics == "raw" else p.length
    return out


def from_registry(entries) -> list[CustomPrimitive]:
    """The primitives of a `registry_table` (as the ``pmacct`` client receives it);
    entries without semantics (an older server) are left out."""
    out = []
    for e in entries:
        sem = e.get("semantics")
        if sem not in SEMANTICS:
            continue
        vlen = bool(e.get("vlen"))
        out.append(CustomPrimitive(str(e["name"]), 0, 0, 0 if vlen else int(e["len"]),
                                   sem, 0, vlen))
    return out
