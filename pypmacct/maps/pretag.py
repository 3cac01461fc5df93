"""pre_tag_map: pmacct 1.7.7's map syntax, evaluated on whole record batches.

A map is a list of rules, one per line (``key=value`` pairs separated by blanks; ``!``
starts a comment line; a line ending in ``\\`` goes on on the next one; ``filter='...'``
is quoted). Rules are tried in order and the first one whose every match key matches
sets the tags and ends the evaluation, unless it carries ``jeq=LABEL``: then evaluation
goes on at the first rule marked ``label=LABEL`` after it (``jeq=next``: the next rule),
and ``stack=sum|or`` combines its tag with the one set so far. Matching labels are joined
with ','.

Evaluation is vectorised: each rule is one set of column comparisons over the records
still being evaluated at that rule; jumps are forward only, so one pass over the rules in
order gives every record its result. Runs of plain rules (exact values only: no filter,
no prefix, no negation, no flow control) are matched with one sorted-key join per
combination of keys instead of rule by rule, which is what makes maps of 100k entries
match at batch speed (see docs/maps.md).

A bad line is logged with file:line and skipped (the rest of the map loads), as pmacct
does; ``maps_entries`` bounds the number of rules and ``maps_row_len`` the line length.
"""
from __future__ import annotations

import ipaddress
import os
import re
import shlex
from dataclasses import dataclass, field

import numpy as np

from ..filters import FilterError, compile_filter
from ..record import SAMPLE_EVENT, SAMPLE_FLOW, SAMPLE_FLOW_MPLS, SAMPLE_OPTION
from . import logical_lines

DEFAULT_MAPS_ENTRIES = 384
DEFAULT_ROW_LEN = 256

# match key -> (record field, kind)
INT_KEYS = {
    "in": "in_iface", "out": "out_iface", "engine_type": "engine_type",
    "engine_id": "@engine_id", "source_id": "@engine_id", "agent_id": "export_proto_sysid",
    "direction": "direction", "nat_event": "nat_event", "vlan": "vlan", "cvlan": "cvlan",
    "src_as": "src_as", "dst_as": "dst_as", "peer_src_as": "peer_src_as",
    "peer_dst_as": "peer_dst_as", "mpls_pw_id": "mpls_pw_id",
    "mpls_label_top": "mpls_label_top", "mpls_label_bottom": "mpls_label_bottom",
    "local_pref": "local_pref", "src_local_pref": "src_local_pref",
}
ADDR_KEYS = {"ip": "peer_src_ip", "nexthop": "nexthop", "bgp_nexthop": "peer_dst_ip",
             "src_net": "src_host", "dst_net": "dst_host"}
MAC_KEYS = {"src_mac": "src_mac", "dst_mac": "dst_mac"}
SET_KEYS = ("set_tag", "set_tag2", "set_label", "set_tos", "id", "id2")
FLOW_KEYS = ("label", "jeq", "stack", "return")
# keys that only a BGP daemon's RIB can answer: refused until BGP lands
BGP_KEYS = ("src_comms", "comms", "src_roa", "dst_roa")
# keys pmacct 1.7.7 reads from NetFlow v9/IPFIX only (other daemons ignore them)
NF_ONLY_KEYS = ("flowset_id", "is_bi_flow", "fwdstatus")
SAMPLE_TYPES = ("flow", "flow-ipv4", "flow-ipv6", "flow-mpls-ipv4", "flow-mpls-ipv6",
                "event", "option")
# keys 1.7.7's sfacctd reads (checks the value) and then ignores: the rule matches as if
# they were absent (pretag_handlers.c sets no handler for sFlow)
SF_IGNORED_KEYS = ("engine_type", "engine_id", "source_id", "nat_event", "cvlan")
NEGATABLE = set(INT_KEYS) | {"src_net", "dst_net", "nexthop", "bgp_nexthop", "src_mac",
                             "dst_mac", "mpls_vpn_rd", "flowset_id", "is_bi_flow",
                             "fwdstatus", "sample_type", "is_multicast"}


class MapLineError(ValueError):
    pass


# A tee plugin's pre_tag_map is read with 1.7.7's tee dictionary (pretag-data.h): these
# keys only; the DISSECT_KEYS there need the datagram split into flows.
TEE_MAP_KEYS = ("id", "id2", "set_tag", "set_tag2", "ip", "engine_type", "engine_id",
                "source_id", "agent_id", "label", "jeq", "return", "stack")
DISSECT_KEYS = ("in", "out", "src_mac", "dst_mac", "vlan", "src_net", "dst_net",
                "bgp_nexthop")


@dataclass
class Match:
    key: str
    kind: str          # int | addr | mac | filter | sample_type | is_multicast
    field: str = ""
    value: object = None
    neg: bool = False
    exact: bool = True  # an exact value (indexable)


@dataclass
class Rule:
    lineno: int
    matches: list = field(default_factory=list)
    tag: int | None = None
    tag_inc: bool = False
    tag2: int | None = None
    tag2_inc: bool = False
    label_value: str | None = None
    tos: int | None = None
    mark: str | None = None       # label=
    jeq: str | None = None
    stack: str | None = None
    ret: bool = False             # return=true (with jeq): emit, clear the tags, go on
    dissect: str | None = None    # tee maps: a key that needs flows split out (DISSECT_KEYS)
    ignored_set: bool = False     # set_tos outside nfacctd: read, then not applied

    @property
    def plain(self) -> bool:
        return (self.jeq is None and self.stack is None and not self.ret and not self.tag_inc
                and not self.tag2_inc and all(m.exact and not m.neg and m.kind in
                                              ("int", "addr", "mac") for m in self.matches)
                and bool(self.matches))   # mpls_vpn_rd rules run rule by rule


def _split_line(line: str) -> list[str]:
    if "'" not in line and '"' not in line:
        return line.split()          # the common case, without shlex's per-character loop
    lex = shlex.shlex(line, posix=True)
    lex.whitespace_split = True
    lex.commenters = ""
    lex.quotes = "'\""
    return list(lex)


def _int(v: str, key: str) -> int:
    try:
        return int(v, 0) if v.lower().startswith("0x") else int(v)
    except ValueError:
        raise MapLineError(f"'{key}': {v!r} is not a number") from None


def _addr(v: str, key: str):
    try:
        net = ipaddress.ip_network(v, strict=False)
    except ValueError:
        raise MapLineError(f"'{key}': {v!r} is not an IP address or prefix") from None
    return net


def _rd(v: str) -> int:
    """A route distinguisher 'type:admin:assigned' (RFC 4364 types 0, 1, 2) as the 8
    bytes the record holds (2 bytes type, 6 bytes value), read as one big-endian int."""
    parts = v.split(":")
    try:
        if len(parts) != 3:
            raise ValueError
        t = int(parts[0])
        if t == 0:
            admin, num = int(parts[1]), int(parts[2])
            if admin > 0xFFFF or num > 0xFFFFFFFF:
                raise ValueError
            value = (admin << 32) | num
        elif t == 1:
            admin = int(ipaddress.IPv4Address(parts[1]))
            num = int(parts[2])
            if num > 0xFFFF:
                raise ValueError
            value = (admin << 16) | num
        elif t == 2:
            admin, num = int(parts[1]), int(parts[2])
            if admin > 0xFFFFFFFF or num > 0xFFFF:
                raise ValueError
            value = (admin << 16) | num
        else:
            raise ValueError
    except ValueError:
        raise MapLineError(f"'mpls_vpn_rd': {v!r} is not a route distinguisher "
                           f"(0:asn16:n, 1:ipv4:n or 2:asn32:n)") from None
    return (t << 48) | value


def _sf_sample_type(v: str) -> int:
    """sfacctd's sample_type, '<Enterprise>:<Format>' (20 and 12 bits), as the sample's
    type word: enterprise << 12 | format."""
    parts = v.split(":")
    if len(parts) != 2 or not all(p.isdigit() for p in parts) or \
            int(parts[0]) > 1048575 or int(parts[1]) > 4095:
        raise MapLineError(f"'sample_type': {v!r} is not <Enterprise>:<Format> (sfacctd: "
                           f"0:1 flow samples, 0:3 expanded flow samples, ...)")
    return int(parts[0]) << 12 | int(parts[1])


def parse_rule(text: str, lineno: int, daemon: str, tee: bool = False) -> Rule:
    rule = Rule(lineno)
    try:
        parts = _split_line(text)
    except ValueError as e:
        raise MapLineError(f"unbalanced quotes ({e})") from None
    seen = set()
    for part in parts:
        key, sep, value = part.partition("=")
        key = key.strip().lower()
        if not sep or not key:
            raise MapLineError(f"{part!r} is not key=value")
        if key in seen:
            raise MapLineError(f"'{key}' given twice")
        seen.add(key)
        if tee and key in DISSECT_KEYS:
            rule.dissect = key          # the map splits datagrams into flows ("complex")
        if tee and key not in TEE_MAP_KEYS and key not in DISSECT_KEYS:
            raise MapLineError(f"unknown key '{key}' (a tee plugin's pre_tag_map reads "
                               f"{', '.join(TEE_MAP_KEYS + DISSECT_KEYS)})")
        neg = False
        if value.startswith("-") and key in NEGATABLE:
            neg, value = True, value[1:]
        if key in ("set_tag", "id", "set_tag2", "id2"):
            inc = value.endswith("++")
            n = _int(value[:-2] if inc else value, key)
            if not 1 <= n <= 2**64 - 1:
                raise MapLineError(f"'{key}': {n} is out of range 1..2^64-1")
            if key in ("set_tag", "id"):
                rule.tag, rule.tag_inc = n, inc
            else:
                rule.tag2, rule.tag2_inc = n, inc
        elif key == "set_label":
            if not value:
                raise MapLineError("'set_label' needs a value")
            rule.label_value = value
        elif key == "set_tos":
            rule.tos = _int(value, key)
            if not 0 <= rule.tos <= 255:
                raise MapLineError(f"'set_tos': {rule.tos} is out of range 0..255")
            if daemon == "sfacctd":
                # 1.7.7 applies set_tos in nfacctd only; elsewhere the rule still
                # matches and ends the evaluation, setting nothing
                rule.tos, rule.ignored_set = None, True
        elif key == "label":
            if value == "next":
                raise MapLineError("label 'next' is reserved")
            rule.mark = value
        elif key == "jeq":
            rule.jeq = value
        elif key == "return":
            if value.lower() not in ("true", "false"):
                raise MapLineError("'return' is true or false")
            rule.ret = value.lower() == "true"
        elif key in NF_ONLY_KEYS:
            if daemon != "nfacctd":
                continue            # 1.7.7 ignores them outside nfacctd: the rule matches
            if key == "flowset_id":
                rule.matches.append(Match(key, "flowset_id", "flowset_id", _int(value, key),
                                          neg, exact=False))
            elif key == "is_bi_flow":
                if value.lower() not in ("true", "false"):
                    raise MapLineError("'is_bi_flow' is true or false")
                rule.matches.append(Match(key, "int", "bi_flow", int(value.lower() == "true"),
                                          neg))
            else:
                n = _int(value, key)
                if not 0 <= n <= 255:
                    raise MapLineError(f"'fwdstatus': {n} is out of range 0..255")
                rule.matches.append(Match(key, "fwdstatus", "fwd_status", n, neg, exact=False))
        elif key in BGP_KEYS:
            raise MapLineError(f"'{key}' needs a BGP daemon's RIB; BGP is not part of "
                               f"pypmacct yet")
        elif key == "stack":
            if value not in ("sum", "or"):
                raise MapLineError(f"'stack': {value!r} is not 'sum' or 'or'")
            rule.stack = value
        elif key in INT_KEYS:
            n = _int(value, key)
            if key in ("vlan", "cvlan") and not 0 <= n <= 4096:
                raise MapLineError(f"'{key}': {n} is out of range 0..4096")
            if daemon == "sfacctd" and key in SF_IGNORED_KEYS:
                continue
            if daemon == "sfacctd" and key == "direction":
                # 1.7.7: 0 matches when the data source is the input interface, 1 when
                # it is the output interface; other values never match
                rule.matches.append(Match(key, "sf_direction", "", n, neg, exact=False))
            elif daemon == "sfacctd" and key == "vlan":
                # 1.7.7: the sample's in VLAN or its out VLAN
                rule.matches.append(Match(key, "sf_vlan", "", n, neg, exact=False))
            else:
                rule.matches.append(Match(key, "int", INT_KEYS[key], n, neg))
        elif key in ADDR_KEYS:
            net = _addr(value, key)
            full = net.prefixlen == net.max_prefixlen
            if daemon == "sfacctd" and key in ("nexthop", "bgp_nexthop"):
                # 1.7.7 compares the address bytes whatever the sample's family (an IPv4
                # value: the first four), so 0.0.0.0 matches samples without a next hop
                # (bgp_nexthop: the gateway record's next hop only, as 1.7.7's)
                fld = "sf_bgp_nexthop" if key == "bgp_nexthop" else ADDR_KEYS[key]
                rule.matches.append(Match(key, "addr_bytes", fld, net, neg, exact=False))
            else:
                rule.matches.append(Match(key, "addr", ADDR_KEYS[key], net, neg, exact=full))
        elif key in MAC_KEYS:
            m = re.fullmatch(r"([0-9A-Fa-f]{1,2}[:\-]){5}[0-9A-Fa-f]{1,2}", value)
            if not m:
                raise MapLineError(f"'{key}': {value!r} is not a MAC address")
            mac = bytes(int(x, 16) for x in re.split(r"[:\-]", value))
            rule.matches.append(Match(key, "mac", MAC_KEYS[key], mac, neg))
        elif key == "mpls_vpn_rd":
            rule.matches.append(Match(key, "rd", "mpls_vpn_rd", _rd(value), neg))
        elif key == "filter":
            try:
                flt = compile_filter(value, daemon)
            except FilterError as e:
                raise MapLineError(f"'filter': {e}") from None
            rule.matches.append(Match(key, "filter", "", flt, exact=False))
        elif key == "sample_type":
            if daemon == "sfacctd":
                rule.matches.append(Match(key, "int", "sf_sample_type",
                                          _sf_sample_type(value), neg))
                continue
            if value not in SAMPLE_TYPES:
                raise MapLineError(f"'sample_type': {value!r} is not one of "
                                   f"{', '.join(SAMPLE_TYPES)}")
            rule.matches.append(Match(key, "sample_type", "", value, neg, exact=False))
        elif key == "is_multicast":
            if value not in ("true", "false"):
                raise MapLineError("'is_multicast' is true or false")
            rule.matches.append(Match(key, "is_multicast", "dst_mac", value == "true",
                                      neg, exact=False))
        else:
            raise MapLineError(f"unknown or unsupported key '{key}'")
    if rule.tag is None and rule.tag2 is None and rule.label_value is None and \
            rule.tos is None and rule.jeq is None and not rule.ignored_set:
        raise MapLineError("the rule sets nothing (set_tag, set_tag2, set_label, set_tos)")
    return rule


def read_map(path: str, daemon: str, log=None, max_entries: int = DEFAULT_MAPS_ENTRIES,
             row_len: int = DEFAULT_ROW_LEN, tee: bool = False,
             dissect: list | None = None) -> tuple[list[Rule], list[str]]:
    """(rules, problems): every bad line is reported as 'file:line: message' and skipped."""
    rules, problems = [], []
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = f.read().split("\n")
    for lineno, s in logical_lines(lines):
        where = f"{path}:{lineno}"
        if len(s) > row_len:
            problems.append(f"{where}: line longer than maps_row_len ({row_len}): skipped")
            continue
        if len(rules) >= max_entries:
            problems.append(f"{where}: more than maps_entries ({max_entries}) rules: "
                            f"the rest of the map is ignored")
            break
        try:
            rules.append(parse_rule(s, lineno, daemon, tee))
            if rules[-1].dissect and dissect is not None:
                dissect.append(f"{where}: '{rules[-1].dissect}'")
        except MapLineError as e:
            problems.append(f"{where}: {e}: line skipped")
    # jeq targets must exist further down (jumps are forward only)
    for idx, r in enumerate(rules):
        if r.jeq and r.jeq != "next" and not any(x.mark == r.jeq for x in rules[idx + 1:]):
            problems.append(f"{path}:{r.lineno}: jeq target '{r.jeq}' not found after this "
                            f"rule: the jump ends the evaluation")
    return rules, problems


# ---- evaluation -----------------------------------------------------------------
class _Cols:
    """The batch's columns as the rule matchers compare them, each view built once per
    batch; a field the records do not carry reads as zeros."""

    def __init__(self, recs):
        self.r = recs
        self.n = len(recs)
        self.c = {}

    def _memo(self, key, name, build, absent):
        c = self.c.get(key)
        if c is None:
            c = self.c[key] = build(self.r[name]) if name in self.r.dtype.names else absent()
        return c

    def _zeros(self):
        return np.zeros(self.n, np.uint64)

    def int(self, name):
        if name == "@engine_id":
            if name not in self.c:
                ver = self.int("export_proto_version")
                self.c[name] = np.where(ver >= 9, self.int("export_proto_sysid"),
                                        self.int("engine_id"))
            return self.c[name]
        return self._memo(name, name, lambda col: col.astype(np.uint64), self._zeros)

    def addr(self, name):
        """(af, hi, lo): the address as two big-endian u64 halves."""
        def build(a):
            raw = np.ascontiguousarray(a["addr"]).view(">u8").reshape(self.n, 2)
            return (a["af"].astype(np.uint8), raw[:, 0].astype(np.uint64),
                    raw[:, 1].astype(np.uint64))
        return self._memo("A" + name, name, build,
                          lambda: (np.zeros(self.n, np.uint8), self._zeros(), self._zeros()))

    def rd(self, name):
        return self._memo("R" + name, name, lambda col: np.ascontiguousarray(col).view(">u8")
                          .reshape(self.n).astype(np.uint64), self._zeros)

    def mac(self, name):
        def build(col):
            pad = np.zeros((self.n, 8), np.uint8)
            pad[:, 2:] = np.ascontiguousarray(col).view(np.uint8).reshape(self.n, 6)
            return pad.view(">u8").reshape(self.n).astype(np.uint64)
        return self._memo("M" + name, name, build, self._zeros)


def _net_parts(net):
    af = 4 if net.version == 4 else 6
    value = int(net.network_address) << (96 if af == 4 else 0)
    mask = ((1 << 128) - 1) ^ ((1 << (128 - net.prefixlen)) - 1)
    return af, value >> 64, value & (2**64 - 1), mask >> 64, mask & (2**64 - 1)


def _match(cols: _Cols, m: Match) -> np.ndarray:
    if m.kind == "int":
        out = cols.int(m.field) == np.uint64(m.value)
    elif m.kind == "addr":
        af, hi, lo = cols.addr(m.field)
        want_af, vh, vl, mh, ml = _net_parts(m.value)
        out = (af == want_af) & ((hi & np.uint64(mh)) == np.uint64(vh)) & \
            ((lo & np.uint64(ml)) == np.uint64(vl))
    elif m.kind == "mac":
        out = cols.mac(m.field) == np.uint64(int.from_bytes(m.value, "big"))
    elif m.kind == "addr_bytes":
        _, hi, lo = cols.addr(m.field)
        _, vh, vl, mh, ml = _net_parts(m.value)
        out = ((hi & np.uint64(mh)) == np.uint64(vh)) & ((lo & np.uint64(ml)) == np.uint64(vl))
    elif m.kind == "sf_direction":
        port = {0: "in_iface", 1: "out_iface"}.get(m.value)
        out = np.zeros(cols.n, bool) if port is None else \
            cols.int(port) == cols.int("sf_ds_index")
    elif m.kind == "sf_vlan":
        v = np.uint64(m.value)
        out = (cols.int("sf_in_vlan") == v) | (cols.int("sf_out_vlan") == v)
    elif m.kind == "net_as":
        asn, table = m.value
        found, _, got, *_ = table.lookup(cols.r[m.field])
        out = np.where(found, got, 0).astype(np.uint64) == np.uint64(asn)
    elif m.kind == "rd":
        out = cols.rd(m.field) == np.uint64(m.value)
    elif m.kind == "filter":
        out = m.value(cols.r)
    elif m.kind == "flowset_id":
        # v5 has no flowset: pmacct's check passes
        out = (cols.int(m.field) == np.uint64(m.value)) | (cols.int("export_proto_version") < 9)
    elif m.kind == "fwdstatus":
        # pmacct: one-octet IE 89 only (else, and on v5, no match whatever the negation);
        # a value with only the two status bits (0, 64, 128, 192) matches that class
        fs = cols.int(m.field)
        present = (fs <= np.uint64(255)) & (cols.int("export_proto_version") >= 9)
        if m.value & 0xC0 == m.value:
            eq = (fs & np.uint64(0xC0)) == np.uint64(m.value)
        else:
            eq = fs == np.uint64(m.value)
        return present & (~eq if m.neg else eq)
    elif m.kind == "sample_type":
        # as pmacct 1.7.7: "flow" is any traffic; flow-ipv4/-ipv6 only v9/IPFIX traffic of
        # that family whose template has neither an MPLS label nor a packet section (never
        # NetFlow v5). flow-mpls-ipv4/-ipv6 match MPLS-labelled traffic of that family, as
        # documented (1.7.7 reads them as "flow": docs/differences.md). VLANs are not looked
        # at (1.7.7 reads one octet of the VLAN id: docs/differences.md).
        st = cols.int("sample_type")
        v = m.value
        if v == "option":
            out = st == SAMPLE_OPTION
        elif v == "event":
            out = st == SAMPLE_EVENT
        elif v == "flow":
            out = (st != SAMPLE_OPTION) & (st != SAMPLE_EVENT)
        else:
            out = st == (SAMPLE_FLOW_MPLS if "mpls" in v else SAMPLE_FLOW)
            af = cols.addr("src_host")[0]
            out &= af == (4 if v.endswith("ipv4") else 6)
    elif m.kind == "is_multicast":
        mc = (cols.mac(m.field) >> np.uint64(40)) & np.uint64(1) == 1
        out = mc if m.value else ~mc
    else:
        raise ValueError(m.kind)
    return ~out if m.neg else out


def _key_columns(cols: _Cols, matches) -> np.ndarray:
    """One row of uint64 words per record for an exact-match signature."""
    words = []
    for m in matches:
        if m.kind == "int":
            words.append(cols.int(m.field))
        elif m.kind == "mac":
            words.append(cols.mac(m.field))
        else:
            af, hi, lo = cols.addr(m.field)
            words += [af.astype(np.uint64), hi, lo]
    return np.stack(words, axis=1) if words else np.zeros((cols.n, 0), np.uint64)


def _rule_key(matches) -> tuple:
    words = []
    for m in matches:
        if m.kind == "int":
            words.append(m.value)
        elif m.kind == "mac":
            words.append(int.from_bytes(m.value, "big"))
        else:
            af, vh, vl, _, _ = _net_parts(m.value)
            words += [af, vh, vl]
    return tuple(words)


class _Index:
    """Plain rules of one run, grouped by key signature: one sorted join per group."""

    def __init__(self, rules: list[tuple[int, Rule]]):
        groups: dict[tuple, list] = {}
        for idx, r in rules:
            sig = tuple(sorted((m.key for m in r.matches)))
            groups.setdefault(sig, []).append((idx, r))
        self.groups = []
        for sig, items in groups.items():
            ordered = [sorted(r.matches, key=lambda m: m.key) for _, r in items]
            keys = np.array([_rule_key(ms) for ms in ordered], dtype=np.uint64)
            if keys.ndim == 1:
                keys = keys.reshape(len(items), -1)
            idxs = np.array([i for i, _ in items], dtype=np.int64)
            kv = np.ascontiguousarray(keys).view(np.dtype((np.void, keys.shape[1] * 8))).ravel()
            # first rule wins among duplicates: stable sort by key, keep first
            order = np.argsort(kv, kind="stable")
            kv, idxs = kv[order], idxs[order]
            first = np.ones(len(kv), bool)
            first[1:] = kv[1:] != kv[:-1]
            self.groups.append((ordered[0], kv[first], idxs[first]))

    def lookup(self, cols: _Cols, n: int) -> np.ndarray:
        """Index of the first matching rule per record (large when none)."""
        best = np.full(n, np.iinfo(np.int64).max, np.int64)
        for matches, kv, idxs in self.groups:
            rk = _key_columns(cols, matches)
            rv = np.ascontiguousarray(rk).view(np.dtype((np.void, rk.shape[1] * 8))).ravel()
            pos = np.searchsorted(kv, rv)
            pos = np.minimum(pos, len(kv) - 1)
            hit = kv[pos] == rv
            best = np.where(hit, np.minimum(best, idxs[pos]), best)
        return best


class PreTagMap:
    def __init__(self, path: str, daemon: str, log=None, max_entries=DEFAULT_MAPS_ENTRIES,
                 row_len=DEFAULT_ROW_LEN, key="pre_tag_map", tee: bool = False,
                 as_table=None):
        self.path = path
        self.tee = tee
        self.dissect_lines: list[str] = []   # tee maps: lines with keys that split flows
        self.daemon = daemon
        # a networks_file (NetworksTable) that src_as/dst_as are looked up in, as 1.7.7
        # does with nfacctd_as/sfacctd_as 'file' (and in pmacctd)
        self.as_table = as_table
        self.key = key
        self.max_entries = max_entries
        self.row_len = row_len
        self._inc = {}
        self._emitted = []
        self._load(log, startup=True)

    def _load(self, log, startup=False):
        self.dissect_lines = []
        rules, problems = read_map(self.path, self.daemon, log, self.max_entries, self.row_len,
                                   self.tee, self.dissect_lines)
        for p in problems:
            if log is not None:
                log.warn(f"{self.key}: {p}")
        self._install(rules)
        self.mtime = _mtime(self.path)
        if log is not None:
            log.info(f"{self.key}: {len(rules)} rules loaded from {self.path}")

    def _install(self, rules):
        self.rules = rules
        if self.as_table is not None:
            for r in rules:
                for m in r.matches:
                    if m.key in ("src_as", "dst_as"):
                        m.kind, m.field, m.exact = "net_as", m.key[:3] + "_host", False
                        m.value = (m.value, self.as_table)
        fields = {"tag", "tag2", "label"}
        for r in rules:
            if r.tos is not None:
                fields.add("tos")
            for m in r.matches:
                if m.kind == "filter":
                    fields |= m.value.fields
                elif m.field == "@engine_id":
                    fields |= {"engine_id", "export_proto_sysid", "export_proto_version"}
                elif m.field:
                    fields.add(m.field)
                if m.kind in ("flowset_id", "fwdstatus"):
                    fields.add("export_proto_version")
                if m.kind == "sample_type":
                    fields |= {"sample_type", "src_host"}
                elif m.kind == "sf_direction":
                    fields |= {"in_iface", "out_iface", "sf_ds_index"}
                elif m.kind == "sf_vlan":
                    fields |= {"sf_in_vlan", "sf_out_vlan"}
        from ..record import RECORD_DTYPE
        self.fields = {f for f in fields if f in RECORD_DTYPE.names}
        # steps: ('rules', [idx...]) one by one, or ('index', _Index, [idx...])
        steps, run = [], []
        for idx, r in enumerate(rules):
            if r.plain and r.mark is None:
                run.append((idx, r))
                continue
            if run:
                steps.append(self._run_step(run))
                run = []
            steps.append(("rules", [idx]))
        if run:
            steps.append(self._run_step(run))
        self.steps = steps
        # what each rule sets, as arrays for the indexed runs (one of tag > tag2 > label)
        nr = len(rules)
        self._plain_tag = np.zeros(nr, np.uint64)
        self._plain_tag2 = np.zeros(nr, np.uint64)
        self._plain_label = np.full(nr, -1, np.int64)
        self._plain_tos = np.full(nr, -1, np.int64)
        self._label_values = []
        lab_ids = {}
        for idx, r in enumerate(rules):
            if r.tag is not None:
                self._plain_tag[idx] = r.tag
            elif r.tag2 is not None:
                self._plain_tag2[idx] = r.tag2
            elif r.label_value is not None:
                if r.label_value not in lab_ids:
                    lab_ids[r.label_value] = len(self._label_values)
                    self._label_values.append(r.label_value)
                self._plain_label[idx] = lab_ids[r.label_value]
            if r.tos is not None:
                self._plain_tos[idx] = r.tos
        self.targets = {}
        for idx, r in enumerate(rules):
            if r.jeq and r.jeq != "next":
                tgt = next((j for j in range(idx + 1, len(rules)) if rules[j].mark == r.jeq),
                           None)
                self.targets[idx] = tgt

    @staticmethod
    def _run_step(run):
        if len(run) < 8:
            return ("rules", [i for i, _ in run])
        return ("index", _Index(run), [i for i, _ in run])

    def reload(self, log=None) -> None:
        """Re-read the map (SIGUSR2 / maps_refresh). A map that fails to read keeps the
        old rules; the swap happens between batches, so no batch sees half of each."""
        try:
            self._load(log)
        except OSError as e:
            if log is not None:
                log.warn(f"{self.key}: not reloaded, keeping the previous map: {e}")

    @property
    def complex(self) -> bool:
        """A tee plugin's map with keys that need each flow split out (1.7.7: complex)."""
        return bool(self.dissect_lines)

    def changed(self) -> bool:
        return _mtime(self.path) != self.mtime

    # ---- apply --------------------------------------------------------------
    def apply(self, recs: np.ndarray, strings: list[str]) -> list[str]:
        """Tag ``recs`` in place; returns the (possibly extended) string table."""
        n = len(recs)
        if n == 0 or not self.rules:
            return strings
        cols = _Cols(recs)
        active = np.ones(n, bool)     # still being evaluated
        start = np.zeros(n, np.int64)  # records only see rules from this index on
        tag = recs["tag"].astype(np.uint64) if "tag" in recs.dtype.names else None
        tag2 = recs["tag2"].astype(np.uint64) if "tag2" in recs.dtype.names else None
        have_tag = np.zeros(n, bool)
        have_tag2 = np.zeros(n, bool)
        labels = None                  # per record: label string id (into new table)
        table = None
        emitted = self._emitted = []   # copies sent on by return=true rules

        def set_label(m, value):
            nonlocal labels, table
            if table is None:
                table = _Strings(strings)
                labels = recs["label"].copy() if "label" in recs.dtype.names else \
                    np.zeros(n, np.int32)
                labels[:] = 0
            cur = labels[m]
            uniq, inv = np.unique(cur, return_inverse=True)
            new = np.array([table.intern(value if u == 0 else table.get(u) + "," + value)
                            for u in uniq.tolist()], dtype=np.int32)
            labels[m] = new[inv]

        def apply_rule(idx, m):
            r = self.rules[idx]
            # pmacct (pretag_entry_process): a rule sets one thing, tag before tag2
            # before label
            if r.tag is not None and tag is not None:
                t = self._values(("tag", idx), r.tag, r.tag_inc, m)
                tag[m] = _stack(tag[m], t, r.stack) if r.stack else t
                have_tag[m] = True
            elif r.tag2 is not None and r.tag is None and tag2 is not None:
                t = self._values(("tag2", idx), r.tag2, r.tag2_inc, m)
                tag2[m] = _stack(tag2[m], t, r.stack) if r.stack else t
                have_tag2[m] = True
            elif r.label_value is not None and r.tag is None and r.tag2 is None \
                    and "label" in recs.dtype.names:
                set_label(m, r.label_value)
            if r.tos is not None and "tos" in recs.dtype.names:
                recs["tos"][m] = r.tos
            if r.ret and r.jeq is not None and (r.jeq == "next" or
                                                self.targets.get(idx) is not None):
                # return=true: the record goes to the plugins with what it has so far,
                # then evaluation goes on from cleared tags (pmacct's exec_plugins call
                # in pretag_entry_process)
                c = recs[m].copy()
                if tag is not None:
                    c["tag"] = tag[m]
                    tag[m] = 0
                if tag2 is not None:
                    c["tag2"] = tag2[m]
                    tag2[m] = 0
                if labels is not None:
                    c["label"] = labels[m]
                    labels[m] = 0
                emitted.append(c)
            if r.jeq is None:
                active[m] = False
            elif r.jeq == "next":
                start[m] = idx + 1
            else:
                tgt = self.targets.get(idx)
                if tgt is None:
                    active[m] = False
                else:
                    start[m] = tgt

        # every evaluation starts from zero tags (NF_find_id): the map's result replaces
        # whatever tags the records carried in
        if tag is not None:
            tag[:] = 0
        if tag2 is not None:
            tag2[:] = 0
        if "label" in recs.dtype.names:
            recs["label"] = 0
        for step in self.steps:
            if not active.any():
                break
            if step[0] == "rules":
                for idx in step[1]:
                    cand = active & (start <= idx)
                    if not cand.any():
                        continue
                    m = cand.copy()
                    for mt in self.rules[idx].matches:
                        m &= _match(cols, mt)
                        if not m.any():
                            break
                    if m.any():
                        apply_rule(idx, m)
            else:
                _, index, members = step
                best = index.lookup(cols, n)
                hit = active & (best != np.iinfo(np.int64).max) & (start <= best)
                if hit.any():
                    # plain rules set one value and end the evaluation: gather per record
                    b = best[hit]
                    if tag is not None:
                        mt = self._plain_tag[b] != 0
                        tag[np.flatnonzero(hit)[mt]] = self._plain_tag[b][mt]
                    if tag2 is not None:
                        mt = self._plain_tag2[b] != 0
                        tag2[np.flatnonzero(hit)[mt]] = self._plain_tag2[b][mt]
                    lab = self._plain_label[b]
                    if (lab >= 0).any() and "label" in recs.dtype.names:
                        for li in np.unique(lab[lab >= 0]).tolist():
                            sel = np.zeros(n, bool)
                            sel[np.flatnonzero(hit)[lab == li]] = True
                            set_label(sel, self._label_values[li])
                    tos = self._plain_tos[b]
                    if (tos >= 0).any() and "tos" in recs.dtype.names:
                        w = np.flatnonzero(hit)[tos >= 0]
                        recs["tos"][w] = tos[tos >= 0]
                    active[hit] = False
        if tag is not None:
            recs["tag"] = tag
        if tag2 is not None:
            recs["tag2"] = tag2
        if table is not None:
            touched = labels != 0
            recs["label"][touched] = labels[touched]
            return table.strings
        return strings

    def tag_batch(self, recs: np.ndarray, strings: list[str]):
        """(records, strings): ``recs`` tagged in place, preceded by the copies that
        ``return=true`` rules emitted (a new array only when there are some)."""
        strings = self.apply(recs, strings)
        extra = self._emitted
        self._emitted = []
        if extra:
            recs = np.concatenate(extra + [recs])
        return recs, strings

    def _values(self, key, base, inc, m):
        if not inc:
            return np.uint64(base)
        k = int(m.sum())
        start = self._inc.get(key, base)
        self._inc[key] = start + k
        return np.arange(start, start + k, dtype=np.uint64)


def _stack(prev, new, how):
    if how == "sum":
        return prev + new
    return prev | new


class _Strings:
    def __init__(self, strings):
        self.strings = list(strings)
        self.index = {s: i for i, s in enumerate(self.strings)}

    def intern(self, s):
        i = self.index.get(s)
        if i is None:
            i = self.index[s] = len(self.strings)
            self.strings.append(s)
        return i

    def get(self, i):
        return self.strings[i]


def _mtime(path):
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


def _open_map(cfg_like, daemon, log):
    path = cfg_like.get("pre_tag_map")
    if not path:
        return None
    from pypmacct.config import ConfigError
    entries = int(cfg_like.get("maps_entries") or DEFAULT_MAPS_ENTRIES)
    row_len = int(cfg_like.get("maps_row_len") or DEFAULT_ROW_LEN)
    tee = _tee_mode(cfg_like)
    as_table = _as_table(cfg_like, daemon, log)
    try:
        m = PreTagMap(path, daemon, log, entries, row_len, tee=tee, as_table=as_table)
    except OSError as e:
        raise ConfigError(f"cannot read pre_tag_map '{path}': {e.strerror}",
                          where=cfg_like.where("pre_tag_map"), key="pre_tag_map") from None
    return m


def _tee_mode(cfg_like) -> bool:
    """Is the map read for tee plugins? (A plugin's own map: its type; the global map:
    every plugin is a tee, since 1.7.7 does not mix tee and data plugins.)"""
    plugins = getattr(cfg_like, "plugins", None)
    if plugins is None:
        return getattr(cfg_like, "type", None) == "tee"
    return bool(plugins) and all(getattr(p, "type", "") == "tee" for p in plugins)


def _as_table(cfg_like, daemon, log):
    """The networks_file src_as/dst_as match against (as 1.7.7's pretag_handlers.c: with
    nfacctd_as/sfacctd_as 'file', or in pmacctd/uacctd, when a networks_file is set),
    else None: then they match what the exporter sent (also with 'longest', checked)."""
    nets = cfg_like.get("networks_file")
    if not nets:
        return None
    from .networks import AS_METHODS, NF_NEW, NetworksTable
    asm = cfg_like.get("nfacctd_as")
    if daemon in ("nfacctd", "sfacctd") and not (asm and AS_METHODS[asm] & NF_NEW):
        return None
    try:
        return NetworksTable(nets, None)
    except OSError:
        return None         # the networks stage reports it


def load_global_map(cfg, daemon: str, log):
    """The map every plugin shares (pre_tag_map set globally), or None."""
    return _open_map(cfg, daemon, log)


def load_plugin_map(pcfg, daemon: str, log, shared_map):
    """A plugin's own pre_tag_map (set as pre_tag_map[name]), or None when it uses the
    shared one (or none)."""
    path = pcfg.get("pre_tag_map")
    if not path:
        return None
    if shared_map is not None and path == shared_map.path:
        return None
    return _open_map(pcfg, daemon, log)
