"""The tcpdump/libpcap filter expression syntax, parsed into a small tree.

The subset pmacct's ``aggregate_filter`` and pre_tag_map ``filter=`` users write:

    host, net (a.b.c.d/len, a.b.c.d mask m.m.m.m, short forms like "net 10"), port,
    portrange a-b, each with src / dst / src or dst / src and dst; ip, ip6, tcp, udp,
    icmp, icmp6, sctp, proto N, ip proto N, ip6 proto N (names as \\tcp); ether host/src/
    dst MAC, ether proto N; vlan [N]; mpls [N]; less N; greater N; and/&&, or/||,
    not/!, parentheses, and libpcap's implicit qualifiers ("host a or b", "port 80 or 443").

Like libpcap, ``vlan`` and ``mpls`` move every test that comes after them (in the text)
one header further in: ``vlan 10 and vlan 20`` is outer tag 10, inner tag 20, and
``mpls 100 and mpls 200`` the first two labels. The parser records, for every leaf, how
many vlan and mpls keywords came before it; the compiler uses that. A third ``vlan`` is
refused (records carry two tags), and so is ``vlan`` after ``mpls`` (libpcap too).
"""
from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass, field


class FilterError(ValueError):
    """A filter that cannot be compiled. ``pos`` is the 0-based character offset."""

    def __init__(self, message: str, pos: int | None = None, text: str = ""):
        self.message = message
        self.pos = pos
        self.text = text
        where = f" at position {pos + 1}" if pos is not None else ""
        super().__init__(f"{message}{where}")


# --- tokens -------------------------------------------------------------------
_TOKEN = re.compile(r"\s*(?:(\(|\)|&&|\|\||!=|==|<=|>=|<<|>>|=|!|<|>|\[|\]|&|\||\+|\*|\^|%)|"
                    r"([A-Za-z0-9_.:\-/\\]+))")


@dataclass
class Tok:
    text: str
    pos: int

    @property
    def low(self) -> str:
        return self.text.lower()


def tokenize(text: str) -> list[Tok]:
    toks, i, n = [], 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        m = _TOKEN.match(text, i)
        if not m or m.end() == i:
            raise FilterError(f"unexpected character {text[i]!r}", i, text)
        start = m.start(1) if m.group(1) else m.start(2)
        toks.append(Tok(m.group(1) or m.group(2), start))
        i = m.end()
    return toks


# --- tree ---------------------------------------------------------------------
@dataclass
class And:
    items: list


@dataclass
class Or:
    items: list


@dataclass
class Not:
    item: object


@dataclass
class Leaf:
    """One libpcap primitive.

    kind: 'host4' (value, mask: ints), 'host6' (value, mask: ints of 128 bits),
    'port' (lo, hi), 'l3' (ip | ip6), 'proto' (family: 4 | 6 | None, number),
    'ether' (dir, mac bytes), 'ethertype' (number), 'vlan' (id or None),
    'mpls' (label or None), 'len' (op '<=' or '>=', n).
    ``dir`` is 'src', 'dst', 'or' (either) or 'and' (both). ``l4`` restricts a port
    test to one transport protocol (6, 17, 132) or None for all three. ``level`` is the
    (vlan, mpls) keyword count before the leaf.
    """
    kind: str
    dir: str = "or"
    args: tuple = ()
    l4: int | None = None
    family: int | None = None   # 4 or 6 when the test is for one IP version only
    level: tuple = (0, 0)
    pos: int = 0


@dataclass
class Num:
    value: int


@dataclass
class Load:
    """proto[offset:size]: ``proto`` is ether, ip, ip6, tcp, udp or icmp."""
    proto: str
    offset: int
    size: int
    pos: int = 0


@dataclass
class Len:
    pass


@dataclass
class BinOp:
    op: str
    a: object
    b: object


RELOPS = {">": ">", "<": "<", ">=": ">=", "<=": "<=", "=": "==", "==": "==", "!=": "!="}
ARITH_LEVELS = (("|",), ("&",), ("<<", ">>"), ("+", "-"), ("*", "/", "%"))
ARITH_NAMES = {"tcpflags": 13, "icmptype": 0, "icmpcode": 1, "tcp-fin": 0x01,
               "tcp-syn": 0x02, "tcp-rst": 0x04, "tcp-push": 0x08, "tcp-ack": 0x10,
               "tcp-urg": 0x20, "tcp-ece": 0x40, "tcp-cwr": 0x80, "icmp-echoreply": 0,
               "icmp-unreach": 3, "icmp-sourcequench": 4, "icmp-redirect": 5,
               "icmp-echo": 8, "icmp-routeradvert": 9, "icmp-routersolicit": 10,
               "icmp-timxceed": 11, "icmp-paramprob": 12, "icmp-tstamp": 13,
               "icmp-tstampreply": 14, "icmp-ireq": 15, "icmp-ireqreply": 16,
               "icmp-maskreq": 17, "icmp-maskreply": 18}
LOAD_PROTOS = ("ether", "ip", "ip6", "tcp", "udp", "icmp")
# stacked tags a record can hold: 'vlan' (outer) and 'cvlan' (inner)
MAX_VLAN_TAGS = 2
# bytes a load may reach (the fake frame holds them; further is past pmacct's caplen)
LOAD_LIMIT = {"ether": 14, "ip": 40, "ip6": 60, "tcp": 20, "udp": 20, "icmp": 20}


PROTO_NAMES = {"ip": 0, "icmp": 1, "igmp": 2, "tcp": 6, "udp": 17, "ipv6": 41, "gre": 47,
               "esp": 50, "ah": 51, "icmp6": 58, "pim": 103, "vrrp": 112, "sctp": 132}
ETHER_NAMES = {"ip": 0x0800, "ip6": 0x86DD, "arp": 0x0806, "rarp": 0x8035}
_PROTO_QUALS = {"ip", "ip6", "tcp", "udp", "sctp", "icmp", "icmp6", "ether", "igmp"}
_DIRS = {"src", "dst"}
_TYPES = {"host", "net", "port", "portrange"}
_KEYWORDS = (_PROTO_QUALS | _DIRS | _TYPES |
             {"and", "or", "not", "proto", "vlan", "mpls", "less", "greater", "mask", "len",
              "arp", "rarp", "broadcast", "multicast", "gateway"})


@dataclass
class _Quals:
    proto: str | None = None
    dir: str | None = None
    type: str | None = None
    pos: int = 0


class Parser:
    def __init__(self, text: str):
        self.text = text
        self.toks = tokenize(text)
        self.i = 0
        self.level = [0, 0]
        self.last: _Quals | None = None

    # token helpers
    def peek(self, k: int = 0) -> Tok | None:
        j = self.i + k
        return self.toks[j] if j < len(self.toks) else None

    def next(self) -> Tok:
        t = self.peek()
        if t is None:
            raise FilterError("unexpected end of expression", len(self.text), self.text)
        self.i += 1
        return t

    def error(self, msg: str, tok: Tok | None = None):
        pos = tok.pos if tok is not None else (self.peek().pos if self.peek() else len(self.text))
        raise FilterError(msg, pos, self.text)

    def parse(self):
        if not self.toks:
            raise FilterError("empty filter expression", 0, self.text)
        node = self.expr()
        if self.peek() is not None:
            t = self.peek()
            if t.text in ("==", "!=", "<", ">", "<=", ">=", "=", "[", "]", "&", "|", "+", "*"):
                self.error("this arithmetic expression is not supported", t)
            self.error(f"syntax error near {t.text!r}", t)
        return node

    def expr(self):
        # libpcap gives 'and' and 'or' the same precedence, left to right:
        # "a and b or c and d" is "((a and b) or c) and d"
        node = self.factor()
        while self.peek() and self.peek().low in ("or", "||", "and", "&&"):
            op = self.next().low
            right = self.factor()
            cls = Or if op in ("or", "||") else And
            if isinstance(node, cls):
                node.items.append(right)
            else:
                node = cls([node, right])
        return node

    def factor(self):
        t = self.peek()
        if t is None:
            self.error("unexpected end of expression")
        if t.low in ("not", "!"):
            self.next()
            return Not(self.factor())
        if t.text == "(":
            save = (self.i, list(self.level), self.last)
            try:
                self.next()
                node = self.expr()
                c = self.peek()
                if c is None or c.text != ")":
                    self.error("missing ')'", c)
                self.next()
                if self.peek() is not None and self.peek().text in RELOPS:
                    raise FilterError("a relation", self.peek().pos, self.text)
                return node
            except FilterError as first:
                # maybe "(arithmetic) relop arithmetic": parse it as a relation instead
                self.i, self.level, self.last = save[0], list(save[1]), save[2]
                try:
                    return self.relation()
                except FilterError:
                    raise first from None
        if self._starts_arith():
            return self.relation()
        return self.primitive()

    # --- arithmetic relations ("ip[12:4] >= 0xC0A80001", "tcp[tcpflags] & tcp-syn != 0") ---
    def _starts_arith(self) -> bool:
        t, n = self.peek(), self.peek(1)
        if t is None:
            return False
        if t.low in LOAD_PROTOS and n is not None and n.text == "[":
            return True
        if t.low == "len" or t.low in ARITH_NAMES:
            return True
        if t.text[:1].isdigit() and n is not None and (n.text in RELOPS or n.text in
                                                       ("&", "|", "+", "*", "%", "^", "<<",
                                                        ">>", "-", "/")):
            return True
        return False

    def relation(self):
        start = self.peek()
        a = self.arith()
        op = self.peek()
        if op is None or op.text not in RELOPS:
            self.error("a comparison (=, !=, <, >, <=, >=) is missing", op)
        self.next()
        b = self.arith()
        self.last = None
        return Leaf("rel", args=(RELOPS[op.text], a, b), level=tuple(self.level),
                    pos=start.pos)

    def arith(self, depth: int = 0):
        if depth == len(ARITH_LEVELS):
            return self.aterm()
        node = self.arith(depth + 1)
        while self.peek() is not None and self.peek().text in ARITH_LEVELS[depth] + (
                ("^",) if depth == 0 else ()):
            optok = self.next()
            op = optok.text
            rhs = self.arith(depth + 1)
            if op in ("/", "%") and isinstance(rhs, Num) and rhs.value == 0:
                # libpcap refuses a constant zero divisor when it compiles
                self.error("division by zero" if op == "/" else "modulus by zero", optok)
            node = BinOp(op, node, rhs)
        return node

    def aterm(self):
        t = self.peek()
        if t is None:
            self.error("unexpected end of expression")
        if t.text == "(":
            self.next()
            node = self.arith()
            c = self.peek()
            if c is None or c.text != ")":
                self.error("missing ')'", c)
            self.next()
            return node
        if t.text == "-":
            self.next()
            return BinOp("-", Num(0), self.aterm())
        if t.low == "len":
            self.next()
            return Len()
        if t.low in ARITH_NAMES:
            self.next()
            return Num(ARITH_NAMES[t.low])
        if t.low in LOAD_PROTOS and self.peek(1) is not None and self.peek(1).text == "[":
            self.next()
            self.next()
            inner = self.next()
            if inner.text == "]":
                self.error("an offset is missing", inner)
            off_s, _, size_s = inner.text.partition(":")
            if inner.low in ARITH_NAMES:
                off = ARITH_NAMES[inner.low]
            else:
                off = self.number(Tok(off_s, inner.pos))
            size = 1
            if size_s:
                size = self.number(Tok(size_s, inner.pos + len(off_s) + 1))
            elif self.peek() is not None and self.peek().text.startswith(":"):
                size = self.number(Tok(self.next().text[1:], inner.pos))
            c = self.peek()
            if c is None or c.text != "]":
                self.error("only a constant offset is supported in proto[offset:size]", c)
            self.next()
            if size not in (1, 2, 4):
                self.error(f"data size must be 1, 2, or 4, not {size}", inner)
            if t.low in ("tcp", "udp", "icmp") and self.level[1]:
                self.error(f"'{t.low}[...]' after 'mpls' is not supported", t)
            if off + size > LOAD_LIMIT[t.low]:
                self.error(f"{t.low}[{off}:{size}] reads beyond the fields of the frame "
                           f"pmacct builds for a flow", inner)
            return Load(t.low, off, size, t.pos)
        if t.text[:1].isdigit():
            return Num(self.number(self.next()))
        self.error(f"syntax error near {t.text!r}", t)

    # --- primitives -------------------------------------------------------------
    def primitive(self):
        t = self.peek()
        low = t.low
        if low in ("less", "greater"):
            self.next()
            n = self.number(self.next())
            self.last = None
            return Leaf("len", args=("<=" if low == "less" else ">=", n), pos=t.pos)
        if low == "vlan":
            self.next()
            vid = None
            if self._is_value(self.peek()):
                vid = self.number(self.next())
                if vid > 4095:
                    self.error(f"VLAN tag {vid} greater than maximum 4095", t)
            leaf = Leaf("vlan", args=(vid,), level=tuple(self.level), pos=t.pos)
            if self.level[1]:
                self.error("'vlan' after 'mpls' is not supported", t)
            if self.level[0] >= MAX_VLAN_TAGS:
                self.error("a third 'vlan' is not supported: records carry two VLAN tags at "
                           "most (vlan: the outer one, cvlan: the inner one)", t)
            self.level[0] += 1
            self.last = None
            return leaf
        if low == "mpls":
            self.next()
            label = None
            if self._is_value(self.peek()):
                label = self.number(self.next())
                if label > 0xFFFFF:
                    self.error(f"MPLS label {label} greater than maximum 1048575", t)
            leaf = Leaf("mpls", args=(label,), level=tuple(self.level), pos=t.pos)
            self.level[1] += 1
            self.last = None
            return leaf
        if low in ("arp", "rarp", "broadcast", "multicast", "gateway"):
            self.error(f"'{t.text}' is not supported in pypmacct filters", t)

        q = _Quals(pos=t.pos)
        seen_qual = False
        if low in _PROTO_QUALS:
            q.proto = low
            self.next()
            seen_qual = True
            nt = self.peek()
            if nt is not None and nt.low == "proto":
                return self._proto(q, t)
        elif low == "proto":
            return self._proto(q, t)
        nt = self.peek()
        if nt is not None and nt.low in _DIRS:
            self.next()
            d = nt.low
            nn = self.peek()
            if nn is not None and nn.low in ("or", "and") and self.peek(1) is not None \
                    and self.peek(1).low in _DIRS and self.peek(1).low != d:
                self.next()
                self.next()
                d = nn.low
            q.dir = d
            seen_qual = True
        nt = self.peek()
        if nt is not None and nt.low in _TYPES:
            q.type = nt.low
            self.next()
            seen_qual = True
        if not seen_qual:
            # a bare value inherits the previous primitive's qualifiers (libpcap does so)
            if self._is_value(t):
                if self.last is not None:
                    q = _Quals(self.last.proto, self.last.dir, self.last.type, t.pos)
                return self._value(q, self.next())
            self.error(f"syntax error near {t.text!r}", t)
        v = self.peek()
        if not self._is_value(v):
            if q.type is None and q.dir is None and q.proto is not None:
                self.last = None
                return self._proto_only(q.proto, t)
            self.error("a value is missing" if v is None else f"syntax error near {v.text!r}", v)
        self.last = q
        return self._value(q, self.next())

    @staticmethod
    def _is_value(t: Tok | None) -> bool:
        return t is not None and t.low not in _KEYWORDS and t.text not in \
            ("(", ")", "&&", "||", "!", "==", "!=", "<", ">", "<=", ">=", "=", "[", "]", "&",
             "|", "+", "*", "^", "%", "<<", ">>")

    def number(self, t: Tok) -> int:
        s = t.text
        try:
            if s.lower().startswith("0x"):
                return int(s, 16)
            if len(s) > 1 and s.startswith("0") and s.isdigit():
                return int(s, 8)
            return int(s, 10)
        except ValueError:
            self.error(f"{s!r} is not a number", t)

    def _proto_only(self, proto: str, t: Tok) -> Leaf:
        lv = tuple(self.level)
        if proto == "ip":
            return Leaf("l3", family=4, level=lv, pos=t.pos)
        if proto == "ip6":
            return Leaf("l3", family=6, level=lv, pos=t.pos)
        if proto == "ether":
            self.error("'ether' needs host, src, dst or proto", t)
        num = PROTO_NAMES[proto]
        fam = 6 if proto == "icmp6" else (4 if proto in ("icmp", "igmp") else None)
        return Leaf("proto", args=(num,), family=fam, level=lv, pos=t.pos)

    def _proto(self, q: _Quals, first: Tok) -> Leaf:
        kw = self.next()  # 'proto'
        v = self.peek()
        if v is None:
            self.error("a protocol is missing after 'proto'")
        self.next()
        name = v.text[1:] if v.text.startswith("\\") else v.text
        if q.proto == "ether":
            if name.lower() in ETHER_NAMES:
                num = ETHER_NAMES[name.lower()]
            else:
                num = self.number(v)
            self.last = None
            return Leaf("ethertype", args=(num,), level=tuple(self.level), pos=first.pos)
        if q.proto not in (None, "ip", "ip6"):
            self.error(f"'{q.proto} proto' is not supported", first)
        if name.lower() in PROTO_NAMES and (v.text.startswith("\\") or name[0].isdigit()):
            num = PROTO_NAMES[name.lower()]
        elif name[:1].isdigit():
            num = self.number(v)
        elif name.lower() in PROTO_NAMES:
            num = PROTO_NAMES[name.lower()]
        else:
            self.error(f"unknown protocol {name!r}", v)
        if num > 255:
            self.error(f"protocol {num} greater than 255", v)
        fam = {"ip": 4, "ip6": 6}.get(q.proto)
        self.last = None
        return Leaf("proto", args=(num,), family=fam, level=tuple(self.level), pos=first.pos)

    def _value(self, q: _Quals, v: Tok) -> Leaf:
        d = q.dir or "or"
        lv = tuple(self.level)
        typ = q.type
        if q.proto == "ether":
            if typ not in (None, "host"):
                self.error(f"'ether {typ}' is not supported", v)
            return Leaf("ether", dir=d, args=(_mac(v, self),), level=lv, pos=q.pos)
        if typ in ("port", "portrange"):
            if q.proto not in (None, "tcp", "udp", "sctp"):
                self.error(f"'{q.proto}' modifier applied to {typ}", v)
            l4 = PROTO_NAMES[q.proto] if q.proto in ("tcp", "udp", "sctp") else None
            fam = {"ip": 4, "ip6": 6}.get(q.proto)
            self._only_l4 = None
            if typ == "port":
                p = self._port(v, l4)
                lo = hi = p
            else:
                m = re.fullmatch(r"([^-]+)-([^-]+)", v.text)
                if not m:
                    self.error(f"{v.text!r} is not a port range", v)
                lo = self._port(Tok(m.group(1), v.pos), l4)
                hi = self._port(Tok(m.group(2), v.pos + len(m.group(1)) + 1), l4)
                if lo > hi:
                    lo, hi = hi, lo
            if l4 is None and self._only_l4 is not None:
                l4 = self._only_l4   # a name only tcp (or udp) knows: that protocol only
            return Leaf("port", dir=d, args=(lo, hi), l4=l4, family=fam, level=lv, pos=q.pos)
        # host / net / default
        if q.proto in ("tcp", "udp", "sctp", "icmp", "icmp6", "igmp"):
            self.error(f"'{q.proto}' modifier applied to {typ or 'host'}", v)
        text = v.text
        mask_len = None
        if "/" in text:
            if typ != "net":
                self.error(f"a /prefix length needs 'net': {text!r}", v)
            text, _, ml = text.partition("/")
            if not ml.isdigit():
                self.error(f"bad prefix length in {v.text!r}", v)
            mask_len = int(ml)
        explicit_mask = None
        nt = self.peek()
        if nt is not None and nt.low == "mask":
            if typ != "net":
                self.error("'mask' needs 'net'", nt)
            self.next()
            mt = self.next()
            try:
                explicit_mask = int(ipaddress.IPv4Address(mt.text))
            except ValueError:
                self.error(f"bad mask {mt.text!r}", mt)
        if ":" in text:
            if q.proto == "ip":
                self.error(f"'ip' modifier applied to an IPv6 address", v)
            try:
                addr = int(ipaddress.IPv6Address(text))
            except ValueError:
                self.error(f"{v.text!r} is not an address", v)
            bits = 128 if mask_len is None else mask_len
            if bits > 128:
                self.error(f"mask length must be <= 128: {v.text!r}", v)
            mask = ((1 << 128) - 1) ^ ((1 << (128 - bits)) - 1)
            if explicit_mask is not None:
                self.error("'mask' is for IPv4 networks", v)
            if addr & ~mask:
                self.error(f'non-network bits set in "{v.text}"', v)
            return Leaf("host6", dir=d, args=(addr, mask), level=lv, pos=q.pos)
        if q.proto == "ip6":
            self.error("'ip6' modifier applied to an IPv4 address", v)
        parts = text.split(".")
        if not all(p.isdigit() for p in parts) or not 1 <= len(parts) <= 4:
            self.error(f"{v.text!r} is not an IPv4 address (host names are not resolved)", v)
        octets = [int(p) for p in parts]
        if any(o > 255 for o in octets):
            self.error(f"{v.text!r} is not an IPv4 address", v)
        value = 0
        for o in octets:
            value = (value << 8) | o
        value <<= 8 * (4 - len(octets))
        if explicit_mask is not None:
            mask = explicit_mask
        elif mask_len is not None:
            if mask_len > 32:
                self.error(f"mask length must be <= 32: {v.text!r}", v)
            mask = (0xFFFFFFFF << (32 - mask_len)) & 0xFFFFFFFF
        else:
            mask = (0xFFFFFFFF << (32 - 8 * len(octets))) & 0xFFFFFFFF
        if typ == "net" and value & ~mask & 0xFFFFFFFF:
            self.error(f'non-network bits set in "{v.text}"', v)
        return Leaf("host4", dir=d, args=(value & mask, mask), level=lv, pos=q.pos)

    def _port(self, t: Tok, l4: int | None) -> int:
        s = t.text
        if s[:1].isdigit():
            n = self.number(t)
            if n > 65535:
                self.error(f"port {n} greater than 65535", t)
            return n
        found = {}
        for p in ("tcp", "udp"):
            try:
                found[p] = socket.getservbyname(s, p)
            except OSError:
                pass
        if not found:
            self.error(f"unknown port {s!r}", t)
        want = {6: "tcp", 17: "udp"}.get(l4)
        if want is not None:
            if want not in found:
                self.error(f"port {s!r} is {next(iter(found))}", t)
            return found[want]
        if len(set(found.values())) > 1:
            self.error(f"port name {s!r} means different tcp and udp ports: use a number", t)
        if len(found) == 1:
            self._only_l4 = {"tcp": 6, "udp": 17}[next(iter(found))]
        return next(iter(found.values()))


def _mac(t: Tok, p: Parser) -> bytes:
    s = t.text
    m = re.fullmatch(r"[0-9A-Fa-f]{1,2}([:.\-])?(?:[0-9A-Fa-f]{1,2}\1?){5}", s)
    parts = re.split(r"[:.\-]", s)
    if len(parts) == 6 and all(1 <= len(x) <= 2 for x in parts):
        try:
            return bytes(int(x, 16) for x in parts)
        except ValueError:
            pass
    if len(parts) == 3 and all(len(x) == 4 for x in parts):   # xxxx.xxxx.xxxx
        try:
            return bytes.fromhex("".join(parts))
        except ValueError:
            pass
    if len(s) == 12 and m is None:
        try:
            return bytes.fromhex(s)
        except ValueError:
            pass
    p.error(f"{s!r} is not a MAC address", t)


def parse(text: str):
    return Parser(text).parse()
