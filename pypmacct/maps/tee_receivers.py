"""tee_receivers: the tee plugin's pools of receivers, in pmacct 1.7.7's map syntax.

One pool per line, ``key=value`` pairs separated by blanks (``!`` or ``#`` starts a
comment line, a line ending in ``\\`` goes on on the next one):

- ``id``: the pool id, an integer > 0 (mandatory);
- ``ip``: a comma-separated list of receivers, ``host:port`` with a host name, an IPv4
  address or an IPv6 address in brackets (``[::1]:2100``) (mandatory);
- ``tag``: which datagrams the pool takes, by the tag a pre_tag_map gave them, in the
  syntax of ``pre_tag_filter`` (values, ranges ``a-b``, negations ``-N``; 0 untagged);
  without it the pool takes every datagram;
- ``balance-alg``: send each datagram to one receiver of the pool instead of all of
  them: ``rr`` (round robin), ``hash-agent`` (by exporter address), ``hash-crc32``
  (1.7.7's hash of the exporter address), ``hash-tag`` (tag modulo the number of
  receivers);
- ``src_port``: the UDP source port of the pool's sockets (non-transparent mode).

As in 1.7.7 a bad line is logged with the file and line and skipped, a receiver that does
not parse is skipped with a warning, and a pool with no valid receiver is skipped. What
1.7.7 can do and pypmacct cannot yet (Kafka or ZeroMQ pools) is a
``TeeMapError``, so start-up stops instead of replicating less than the map asks for.
"""
from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, field

from ..jhash import jhash_3words
from .tagfilter import TagFilter
from . import logical_lines

BALANCE_ALGS = ("rr", "hash-agent", "hash-crc32", "hash-tag")
KNOWN_KEYS = ("id", "ip", "tag", "balance-alg", "src_port")
NOT_IMPLEMENTED_KEYS = ("kafka_broker", "kafka_topic", "zmq_address")


class TeeMapError(ValueError):
    """The map asks for something pypmacct does not do: start-up stops."""


@dataclass
class Receiver:
    family: int            # socket.AF_INET / AF_INET6
    addr: tuple            # a sockaddr for that family (host, port[, flow, scope])
    text: str              # as written in the map

    @property
    def host(self) -> str:
        return self.addr[0]

    @property
    def port(self) -> int:
        return self.addr[1]


@dataclass
class Pool:
    id: int
    receivers: list = field(default_factory=list)
    tag_filter: TagFilter | None = None
    balance: str | None = None          # None: every receiver gets every datagram
    src_port: int = 0
    lineno: int = 0
    next_rr: int = 0                    # round robin: the next receiver


def parse_hostport(text: str) -> Receiver | None:
    """``host:port`` / ``[v6]:port`` resolved to a Receiver, or None when it does not
    parse or resolve (pmacct's Tee_parse_hostport: the last ':' splits the port)."""
    s = text.strip()
    host, sep, port = s.rpartition(":")
    if not sep or not host or not port:
        return None
    family = 0
    if host.startswith("[") and host.endswith("]"):
        host, family = host[1:-1], socket.AF_INET6
    try:
        port_n = int(port)
    except ValueError:
        return None
    if not 0 < port_n <= 65535:
        return None
    try:
        infos = socket.getaddrinfo(host, port_n, family, socket.SOCK_DGRAM)
    except (socket.gaierror, UnicodeError, OSError):
        return None
    if not infos:
        return None
    fam, _, _, _, sa = infos[0]
    return Receiver(fam, sa, s)


def _split(line: str) -> list[str]:
    return line.split()


def read_receivers(path: str, log=None, max_pools: int = 128, max_receivers: int = 32,
                   max_entries: int = 384) -> list[Pool]:
    """The pools of a tee_receivers map. Problems are logged (``log.warn``) with
    ``file:line``; features pypmacct lacks raise TeeMapError."""
    with open(path, encoding="utf-8", errors="replace") as fh:
        lines = fh.read().split("\n")
    pools: list[Pool] = []
    ids = set()

    def warn(msg):
        if log is not None:
            log.warn(msg)

    for lineno, s in logical_lines(lines):
        where = f"[{path}:{lineno}]"
        if len(pools) >= max_entries:
            warn(f"{where} more than maps_entries ({max_entries}) lines: the rest is ignored")
            break
        pool = Pool(0, lineno=lineno)
        ok = True
        for part in _split(s):
            key, sep, value = part.partition("=")
            key = key.strip().lower()
            if not sep:
                warn(f"{where} {part!r} is not key=value. Line ignored.")
                ok = False
                break
            if key in NOT_IMPLEMENTED_KEYS:
                raise TeeMapError(f"{where} '{key}': replicating to Kafka or ZeroMQ is not "
                                  f"implemented in pypmacct (UDP receivers only)")
            if key not in KNOWN_KEYS:
                warn(f"{where} unknown key '{key}'. Ignored.")
                ok = False
                break
            if key == "id":
                try:
                    pid = int(value)
                except ValueError:
                    pid = 0
                if not 0 < pid <= 2**32 - 1:
                    warn(f"{where} Invalid Pool ID specified. Line ignored.")
                    ok = False
                    break
                pool.id = pid
            elif key == "ip":
                for token in value.split(","):
                    if not token.strip():
                        continue
                    if len(pool.receivers) >= max_receivers:
                        warn(f"{where} Maximum amount of receivers per pool reached "
                             f"({max_receivers}): the rest is ignored.")
                        break
                    r = parse_hostport(token)
                    if r is None:
                        warn(f"{where} Invalid receiver {token.strip()}.")
                        continue
                    pool.receivers.append(r)
                if not pool.receivers:
                    warn(f"{where} No valid receivers. Line ignored.")
                    ok = False
                    break
            elif key == "tag":
                try:
                    pool.tag_filter = TagFilter(value, "tag")
                except ValueError as e:
                    warn(f"{where} {e}. Line ignored.")
                    ok = False
                    break
            elif key == "balance-alg":
                alg = value.strip().lower()
                if alg not in BALANCE_ALGS:
                    warn(f"{where} Unknown balance algorithm '{value}'. Ignoring.")
                    pool.balance = None
                else:
                    pool.balance = alg
            elif key == "src_port":
                try:
                    port = int(value)
                except ValueError:
                    port = -1
                if 0 <= port <= 65535:
                    pool.src_port = port
                else:
                    warn(f"{where} Invalid source port specified '{value}'. Ignoring.")
        if not ok:
            continue
        if not pool.receivers:
            warn(f"{where} 'ip' must be specified. Line ignored.")
            continue
        if pool.id == 0:
            warn(f"{where} Invalid pool 'id' specified. Line ignored.")
            continue
        if pool.id in ids:
            # 1.7.7 loads it (its duplicate check never fires): so do we, with a warning
            warn(f"{where} Duplicate Pool ID specified: {pool.id}.")
        if len(pools) >= max_pools:
            warn(f"{where} Maximum amount of receivers pool reached: {max_pools}. "
                 f"Line ignored.")
            continue
        ids.add(pool.id)
        pools.append(pool)
    return pools


def agent_key(family: int, addr16: bytes) -> int:
    """The number hash-agent balances on: the IPv4 address as an integer (IPv6: the
    128-bit address), so agents spread by address modulo the pool size."""
    if family == socket.AF_INET:
        return int.from_bytes(addr16[:4], "big")
    return int(ipaddress.IPv6Address(addr16[:16]))


_M32 = 0xFFFFFFFF


def crc32_agent_hash(family: int, addr16: bytes) -> int:
    """1.7.7's hash-crc32 value for an exporter (before the modulo): for IPv4 its
    ``cache_crc32`` (despite the name, the djb2 string hash: h = h * 33 + byte from 5381)
    over the address bytes; for IPv6 ``sa_hash``: Jenkins' jhash_3words over the last
    12 address bytes read as little-endian words, initval 0."""
    if family == socket.AF_INET:
        h = 5381
        for b in addr16[:4]:
            h = (h * 33 + b) & _M32
        return h
    return jhash_3words(*(int.from_bytes(addr16[i:i + 4], "little") for i in (4, 8, 12)))
