"""``-c`` primitives and ``-N``/``-M`` matching data, parsed as 1.7.7's client parses
them (numbers with C's ``atoi``/``strtoul`` leniency, its error messages).

A parsed query is a dict ``{primitive: value}``: an int, an address or MAC string, a
string (BGP attributes, class), or ``None`` for "unset" (an address left zero). A ``*``
leaves the primitive out; a primitive with no data left in the string stays in with its
zero value, as in pmacct (it must then be unset to match).
"""
from __future__ import annotations

import ipaddress
import re
import struct

from pypmacct.output.values import proto_name


class ClientError(Exception):
    """Printed on stdout as is, then exit 1."""


# -c names 1.7.7's client knows ('sum' is sum_host); anything else is a custom primitive
C_PRIMITIVES = (
    "src_host dst_host src_net dst_net sum src_port dst_port proto src_mac dst_mac vlan cos "
    "etype sum_mac in_iface out_iface tos src_host_country dst_host_country src_host_pocode "
    "dst_host_pocode src_host_coords dst_host_coords sampling_rate sampling_direction none "
    "src_as dst_as sum_host sum_net sum_as sum_port src_mask dst_mask tag tag2 class "
    "std_comm src_std_comm ext_comm src_ext_comm lrg_comm src_lrg_comm as_path src_as_path "
    "local_pref src_local_pref med src_med src_roa dst_roa peer_src_as peer_dst_as "
    "peer_src_ip peer_dst_ip mpls_vpn_rd mpls_pw_id post_nat_src_host post_nat_dst_host "
    "post_nat_src_port post_nat_dst_port nat_event mpls_label_top mpls_label_bottom "
    "mpls_stack_depth timestamp_start timestamp_end timestamp_arrival timestamp_export "
    "export_proto_seqno export_proto_version export_proto_sysid label").split()

_ADDR_ERRORS = {
    "src_host": "src_host: Invalid IP address", "sum_host": "src_host: Invalid IP address",
    "src_net": "src_host: Invalid IP network", "sum_net": "src_host: Invalid IP network",
    "dst_host": "dst_host: Invalid IP address", "dst_net": "dst_host: Invalid IP network",
    "peer_src_ip": "peer_src_ip: Invalid IP address",
    "peer_dst_ip": "peer_dst_ip: Invalid IP address",
    "post_nat_src_host": "post_nat_src_host: Invalid IP address",
    "post_nat_dst_host": "post_nat_dst_host: Invalid IP address",
}
_MACS = {"src_mac": "src_mac", "sum_mac": "src_mac", "dst_mac": "dst_mac"}
_BITS = {  # how wide the field a number is stored into is
    "vlan": 16, "cos": 8, "etype": 16, "in_iface": 32, "out_iface": 32, "src_mask": 8,
    "dst_mask": 8, "src_port": 16, "sum_port": 16, "dst_port": 16, "tos": 8,
    "sampling_rate": 32, "src_as": 32, "sum_as": 32, "dst_as": 32, "tag": 32, "tag2": 32,
    "local_pref": 32, "src_local_pref": 32, "med": 32, "src_med": 32, "peer_src_as": 32,
    "peer_dst_as": 32, "mpls_pw_id": 32, "post_nat_src_port": 16, "post_nat_dst_port": 16,
    "nat_event": 8, "mpls_label_top": 32, "mpls_label_bottom": 32, "mpls_stack_depth": 8,
    "export_proto_seqno": 32, "export_proto_version": 16, "export_proto_sysid": 32,
}
_STRTOUL = {"in_iface", "out_iface", "src_mask", "dst_mask", "src_as", "sum_as", "dst_as",
            "tag", "tag2"}
_STRINGS = {"std_comm", "src_std_comm", "ext_comm", "src_ext_comm", "lrg_comm",
            "src_lrg_comm", "as_path", "src_as_path"}
_NUM_RE = re.compile(r"\s*([+-]?)(\d*)")


def c_atoi(s: str) -> int:
    """C's atoi/strtol: leading blanks, a sign, digits; anything else stops it."""
    m = _NUM_RE.match(s)
    digits = m.group(2)
    if not digits:
        return 0
    v = int(digits)
    return -v if m.group(1) == "-" else v


def parse_primitives(text: str) -> tuple[list[str], list[str]]:
    """-c: (primitives in order, unknown names), lower-cased as pmacct does."""
    prims, unknown = [], []
    for tok in text.lower().split(","):
        if tok == "sum":
            tok = "sum_host"
        prims.append(tok)
        if tok not in C_PRIMITIVES:
            unknown.append(tok)
    return prims, unknown


def split_queries(text: str) -> list[str]:
    """A -N/-M string: queries separated by ';', empty ones skipped."""
    return [q for q in text.split(";") if q][:4096]


def read_query_file(path: str) -> list[str]:
    """``file:``: one query per line, blanks removed, empty and ``!`` lines skipped."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read().decode("latin-1")
    except OSError:
        raise ClientError(f"ERROR: file '{path}' not found") from None
    out = []
    for line in raw.splitlines():
        line = "".join(ch for ch in line if not ch.isspace())
        if not line or line.startswith("!"):
            continue
        out.append(line)
        if len(out) >= 4096:
            break
    return out


def _addr(prim: str, tok: str):
    try:
        return str(ipaddress.ip_address(tok))
    except ValueError:
        raise ClientError(f"ERROR: {_ADDR_ERRORS[prim]}: '{tok}'") from None


def _mac(prim: str, tok: str) -> str:
    parts = tok.split(":")
    try:
        if len(parts) != 6 or any(not p or len(p) > 2 for p in parts):
            raise ValueError
        return ":".join(f"{int(p, 16):02x}" for p in parts)
    except ValueError:
        raise ClientError(f"ERROR: {_MACS[prim]}: Invalid MAC address: '{tok}'") from None


def _proto(tok: str, numeric: bool) -> int:
    p = 0
    if not numeric:
        for n in range(256):
            if proto_name(n) == tok and not proto_name(n).isdigit():
                p = n
                break
    if p <= 0:
        p = c_atoi(tok)
        if p <= 0 or p > 255:
            raise ClientError(f"ERROR: invalid protocol: '{tok}'")
    return p


def zero_value(prim: str):
    if prim in _ADDR_ERRORS:
        return None
    if prim in _MACS or prim in ("tunnel_src_mac", "tunnel_dst_mac"):
        return "00:00:00:00:00:00"
    if prim in _STRINGS or prim in ("class", "sampling_direction"):
        return ""
    return 0


def parse_query(prims: list[str], text: str, numeric_protos: bool = False,
                classes=None, custom=()) -> dict:
    """One query: ``{primitive: value}`` for every -c primitive not wildcarded.

    ``custom``: the names of the plugin's custom primitives. As in 1.7.7 they may be
    named in -c but not matched: a value for one is refused, ``*`` or no value leaves
    it out of the query."""
    query = {p: zero_value(p) for p in prims if p not in custom}
    rest, i = text, 0
    while rest and i < len(prims):       # as pmacct walks the string
        tok, _, rest = rest.partition(",")
        prim = prims[i]
        i += 1
        if tok == "*":
            query.pop(prim, None)
            continue
        if prim in custom and prim not in C_PRIMITIVES:
            raise ClientError("ERROR: -M and -N are not supported (yet) against custom "
                              "primitives")
        query[prim] = _value(prim, tok, numeric_protos, classes)
    return query


def _value(prim: str, tok: str, numeric_protos: bool, classes):
    if prim in _ADDR_ERRORS:
        return _addr(prim, tok)
    if prim in _MACS:
        return _mac(prim, tok)
    if prim == "proto":
        return _proto(tok, numeric_protos)
    if prim == "etype":
        try:
            return int(re.match(r"\s*(?:0[xX])?([0-9a-fA-F]+)", tok).group(1), 16) & 0xFFFF
        except (AttributeError, ValueError):
            return 0
    if prim == "none":
        return 0
    if prim == "class":
        if tok == "unknown":
            return ""
        if not classes or tok not in classes:
            raise ClientError(f"ERROR: Server has not loaded any classifier for '{tok}'.")
        return tok
    if prim == "sampling_direction":
        return tok[:1]
    if prim in ("as_path", "src_as_path"):
        return "" if tok == "^$" else tok.replace("_", " ")
    if prim in _STRINGS:
        return "" if tok == "0" else tok.replace("_", " ")
    if prim in ("src_roa", "dst_roa"):
        return {"u": 0, "i": 1, "v": 2, "V": 3, "o": 4}.get(tok, 0)
    if prim == "mpls_vpn_rd":
        return _rd(tok)
    if prim == "label":
        raise ClientError("ERROR: -M and -N are not supported (yet) against variable-length "
                          "primitives (ie. label)")
    if prim in ("timestamp_start", "timestamp_end", "timestamp_arrival"):
        return _timestamp(tok)
    if prim in ("src_host_country", "dst_host_country", "src_host_pocode",
                "dst_host_pocode"):
        return tok
    if prim in ("src_host_coords", "dst_host_coords"):
        raise ClientError(f"ERROR: {prim}: Invalid coordinates: '{tok}'.\n"
                          f"ERROR: Expected format: <latitude>:<longitude>")
    if prim in _BITS:
        return c_atoi(tok) % (1 << _BITS[prim])
    raise ClientError(f"ERROR: unknown primitive '{prim}'")


def _strtoul(tok: str) -> int:
    return c_atoi(tok) % (1 << 32)


def _rd(tok: str) -> str:
    """A route distinguisher ``type:field:field`` as its 8 wire bytes (hex)."""
    parts = (tok.split(":") + ["", "", ""])[:3]
    rtype = _strtoul(parts[0])
    if rtype == 0:
        raw = struct.pack("!HHI", 0, _strtoul(parts[1]) & 0xFFFF, _strtoul(parts[2]))
    elif rtype == 1:
        try:
            ip = ipaddress.ip_address(parts[1])
            ipb = ip.packed if ip.version == 4 else b"\0" * 4
        except ValueError:
            ipb = b"\0" * 4
        raw = struct.pack("!H4sH", 1, ipb, _strtoul(parts[2]) & 0xFFFF)
    elif rtype == 2:
        raw = struct.pack("!HIH", 2, _strtoul(parts[1]), _strtoul(parts[2]) & 0xFFFF)
    else:
        raise ClientError(f"ERROR: Invalid RD type specified\n"
                          f"ERROR: mpls_vpn_rd: Invalid MPLS VPN RD value: "
                          f"'{tok.split(':')[0]}'")   # 1.7.7 has cut it at the ':'
    return raw.hex()


def _timestamp(tok: str) -> int:
    """``YYYY-MM-DDTHH:MM:SS[.usec]`` in local time, as microseconds since the epoch."""
    import time
    secs, _, frac = tok.partition(".")
    try:
        t = time.mktime(time.strptime(secs, "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        t = 0
    return int(t) * 1_000_000 + (c_atoi(frac) if frac else 0)
