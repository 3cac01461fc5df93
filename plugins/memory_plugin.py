"""The memory plugin (pmacct's IMT plugin): an in-memory table of aggregates that the
``pmacct`` client queries over a UNIX socket (see docs/memory.md).

The plugin process keeps reading its ring in its main thread and adds every batch to
its table (an :class:`AggregationCache` that is never purged). Client connections are
served by threads: a query takes the table lock only to copy what it needs (a snapshot
of the rows, or the counters of its matches) and does the rest (encoding, sending)
without it, each connection with its own timeouts, so a slow or hung client never holds
up the ring.

The table is bounded as pmacct's is (``imt_buckets``, ``imt_mem_pools_number``,
``imt_mem_pools_size``): when it is full, records of aggregates already in it keep
counting, new aggregates are dropped, counted and warned about.
"""
from __future__ import annotations

import errno
import ipaddress
import os
import socket
import threading
import time

import numpy as np

from pypmacct.cache import hash_keys
from pypmacct.client import protocol as P
from pypmacct.primitives import PRIMITIVES
from pypmacct.record import ADDR_DTYPE, STRING_FIELDS

from .base import AggregatingPlugin, setting as _get

DEFAULT_PATH = "/tmp/collect.pipe"
DEFAULT_BUCKETS = 32771            # pmacct's MAX_HOSTS
DEFAULT_POOLS = 16                 # pmacct's NUM_MEMORY_POOLS
DEFAULT_POOL_SIZE = 8192           # pmacct's MEMORY_POOL_SIZE
PMACCT_ACC_SIZE = 352              # sizeof(struct acc) in Debian's 1.7.7 (amd64)
MAX_CLIENTS = 64                   # connections served at once; more get a busy reply
HEAVY_AT_ONCE = 2                  # queries copying and matching the table at once (CPU)
READ_TIMEOUT = 10.0                # seconds for a client to send its request
SEND_TIMEOUT = 30.0                # seconds a blocked send may last before we give up
_SUN_PATH_MAX = 107                # bytes of an AF_UNIX socket path (sun_path, NUL excluded)

_ADDR_FIELDS = {"src_host", "dst_host", "src_net", "dst_net", "peer_src_ip", "peer_dst_ip",
                "post_nat_src_host", "post_nat_dst_host", "tunnel_src_host", "tunnel_dst_host"}
_MAC_FIELDS = {"src_mac", "dst_mac", "tunnel_src_mac", "tunnel_dst_mac"}


class QueryError(ValueError):
    """A query the plugin cannot run (reported to the client)."""


def capacity(buckets: int, pools: int, pool_size: int) -> int:
    """Aggregates the table holds at most; 0 for unbounded (``imt_mem_pools_number: 0``).

    pmacct's table is an array of ``buckets`` entries plus ``pools - 1`` pools of
    ``pool_size`` bytes for chained entries of ``PMACCT_ACC_SIZE`` bytes each."""
    if pools <= 0:
        return 0
    return buckets + (pools - 1) * (pool_size // PMACCT_ACC_SIZE)


def primitive_key_field(name: str) -> str:
    """The key field a -c primitive compares (``sum_port`` -> ``src_port``)."""
    p = PRIMITIVES.get(name)
    if p is None:
        return name
    if p.kind == "net":
        return name
    if p.kind == "sum":
        return "src_net" if name == "sum_net" else p.fields[0]
    if p.kind == "copy":
        return p.fields[0]
    raise QueryError(f"primitive '{name}' cannot be matched")


class MemoryTable:
    """The table and its lock. ``add``, ``snapshot`` and ``erase`` take the lock;
    ``remove`` expects the caller to hold it."""

    def __init__(self, plugin: "MemoryPlugin", limit: int):
        self.plugin = plugin
        self.cache = plugin.cache
        self.limit = limit
        self.lock = threading.Lock()
        self.reset_stamp = 0.0
        self.refused_aggregates = 0
        self.refused_packets = 0
        self.refused_bytes = 0
        self._full_warned = 0.0

    # ---- data path (main thread) -------------------------------------------------------
    def add(self, keys, values, seq) -> None:
        with self.lock:
            self.cache.add(keys, values, seq)
            if self.limit and self.cache.upper_bound() > self.limit:
                n = len(self.cache)
                if n > self.limit:
                    self._refuse(n)

    def _refuse(self, n: int) -> None:
        """Drop the aggregates beyond the limit: they are the newest (ids follow first
        arrival), so the ones already in the table keep counting."""
        keys, values = self.cache.drain()
        keep = self.limit
        self.refused_aggregates += n - keep
        self.refused_packets += int(values["packets"][keep:].sum())
        self.refused_bytes += int(values["bytes"][keep:].sum())
        self.cache.add(keys[:keep], {k: v[:keep] for k, v in values.items()},
                       np.arange(keep, dtype=np.int64))
        now = time.monotonic()
        if now - self._full_warned >= 60.0:
            self._full_warned = now
            self.plugin.log.warn(
                f"memory table full ({self.limit} aggregates; imt_buckets, "
                f"imt_mem_pools_number, imt_mem_pools_size): new aggregates dropped "
                f"(so far {self.refused_aggregates} aggregates, {self.refused_packets} "
                f"packets, {self.refused_bytes} bytes); existing ones keep counting. "
                f"Clear the table (pmacct -e) or make it larger.")

    # ---- queries (server threads) ------------------------------------------------------
    def snapshot(self):
        """Copies of every row, in table order, and of the string table."""
        with self.lock:
            keys, values = self.cache.snapshot()
            strings = list(self.plugin.strings.strings)
        return keys, values, strings

    def erase(self) -> None:
        with self.lock:
            self.cache.drain()
            self.reset_stamp = time.time()

    def remove(self, rows: np.ndarray) -> None:
        """Remove rows (indices into the current table order) from the table: what
        pmacct's reset of an entry amounts to (it is hidden until new traffic for it
        arrives, which then counts from zero)."""
        if len(rows) == 0:
            return
        keys, values = self.cache.drain()
        keep = np.ones(len(keys), dtype=bool)
        keep[rows] = False
        idx = np.flatnonzero(keep)
        # re-added in table order with small sequence numbers: records still to come
        # are newer (their arrival sequence numbers are larger)
        self.cache.add(np.take(keys, idx), {k: np.take(v, idx) for k, v in values.items()},
                       np.arange(len(idx), dtype=np.int64))


class Matcher:
    """Runs -M/-N queries over a snapshot: each query is a set of (key field, value)
    constraints; a field the table does not aggregate counts as zero, as in pmacct."""

    def __init__(self, keys: np.ndarray, values: dict, strings: list[str]):
        self.keys = keys
        self.values = values
        self.ids = {s: i for i, s in enumerate(strings)}
        self.names = set(keys.dtype.names or ())
        self._groups = {}

    def _constraint(self, prim: str, raw):
        field = primitive_key_field(prim)
        value = self._convert(field, raw)
        if field not in self.names:
            # pmacct compares the table's zeroed field
            return None if _is_zero(value) else False
        return field, value

    def _convert(self, field: str, raw):
        try:
            if field in _ADDR_FIELDS:
                v = np.zeros((), dtype=ADDR_DTYPE)
                if raw is None:
                    return v
                ip = ipaddress.ip_address(str(raw))
                v["af"] = ip.version
                v["addr"] = ip.packed.ljust(16, b"\0")
                return v
            if field in _MAC_FIELDS:
                return bytes.fromhex(str(raw).replace(":", "")).ljust(6, b"\0")[:6]
            if field in STRING_FIELDS:
                return self.ids.get(str(raw), -1)
            if field == "sampling_direction":
                return ord(str(raw)[0]) if raw else 0
            if field == "mpls_vpn_rd":
                return bytes.fromhex(str(raw)).ljust(8, b"\0")[:8]
            return int(raw)
        except (ValueError, TypeError) as e:
            raise QueryError(f"bad value {raw!r} for {field}: {e}") from None

    def _constraints(self, query: dict):
        """(fields, values) of a query, or None when it cannot match anything."""
        cons = []
        for prim, raw in sorted(query.items()):
            c = self._constraint(prim, raw)
            if c is False:
                return None
            if c is not None:
                if isinstance(c[1], int) and c[1] < 0:
                    return None       # a string the table has never seen
                cons.append(c)
        return tuple(f for f, _ in cons), [v for _, v in cons]

    def bounds(self, queries):
        """For every query, (left, right, order): its matches are ``order[left:right]``
        (``order`` sorts the table on the query's fields); None when nothing can match.
        Queries on the same fields share one sort and one vectorised search."""
        out = [None] * len(queries)
        groups: dict[tuple, list] = {}
        for i, q in enumerate(queries):
            c = self._constraints(q)
            if c is not None:
                groups.setdefault(c[0], []).append((i, c[1]))
        for fields, members in groups.items():
            (dt, sv), order, sorted_keys = self._group(fields)
            probes = np.zeros(len(members), dtype=dt)
            ok = np.ones(len(members), dtype=bool)
            for j, (_, vals) in enumerate(members):
                for f, v in zip(fields, vals):
                    try:
                        probes[j][f] = v
                    except (OverflowError, ValueError, TypeError):
                        ok[j] = False     # out of the field's range: cannot match
            pv = _sortable(probes)
            left = np.searchsorted(sorted_keys, pv, "left")
            right = np.searchsorted(sorted_keys, pv, "right")
            for j, (i, _) in enumerate(members):
                if ok[j]:
                    out[i] = (int(left[j]), int(right[j]), order)
        return out

    def _group(self, fields):
        g = self._groups.get(fields)
        if g is None:
            n = len(self.keys)
            if fields:
                dt = np.dtype([(f, self.keys.dtype.fields[f][0]) for f in fields])
                sub = np.zeros(n, dtype=dt)
                for f in fields:
                    sub[f] = self.keys[f]
                flat = _sortable(sub)
                order = np.argsort(flat, kind="stable")
                g = ((dt, None), order, flat[order])
            else:
                dt = np.dtype([("_", "u1")])
                g = ((dt, None), np.arange(n), _sortable(np.zeros(n, dtype=dt)))
            self._groups[fields] = g
        return g

    def counters(self, queries, want_rows: bool = False) -> tuple[list, np.ndarray]:
        """[packets, bytes, flows, entries] per query; with ``want_rows`` also the rows
        any query matched (for a reset)."""
        out = []
        hit = np.zeros(len(self.keys), dtype=bool) if want_rows else None
        sums = {}
        for r in self.bounds(queries):
            if r is None:
                out.append([0, 0, 0, 0])
                continue
            left, right, order = r
            key = id(order)
            if key not in sums:
                sums[key] = {k: np.concatenate([[0], np.cumsum(
                    self.values[k][order], dtype=np.uint64)])
                    for k in ("packets", "bytes", "flows")}
            cs = sums[key]
            out.append([int(cs["packets"][right] - cs["packets"][left]),
                        int(cs["bytes"][right] - cs["bytes"][left]),
                        int(cs["flows"][right] - cs["flows"][left]), right - left])
            if hit is not None and right > left:
                hit[order[left:right]] = True
        rows = np.flatnonzero(hit) if hit is not None else np.zeros(0, dtype=np.intp)
        return out, rows

    def matches(self, queries) -> np.ndarray:
        """Row indices, query after query, each query's in table order (a row matched
        by two queries is listed twice, as pmacct lists it)."""
        parts = []
        for r in self.bounds(queries):
            if r is None:
                continue
            left, right, order = r
            parts.append(np.sort(order[left:right]))
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.intp)


def _sortable(rows: np.ndarray) -> np.ndarray:
    """Rows of a structured array as one sortable column with the same equalities: an
    integer when they fit in 8 bytes (sorting integers is far faster), else bytes."""
    size = rows.dtype.itemsize
    raw = np.ascontiguousarray(rows).view(np.uint8).reshape(len(rows), size)
    if size <= 8:
        buf = np.zeros((len(rows), 8), dtype=np.uint8)
        buf[:, :size] = raw
        return buf.view(np.uint64).reshape(-1)
    return np.ascontiguousarray(rows).view(f"S{size}").reshape(-1)


def _is_zero(v) -> bool:
    if isinstance(v, (bytes, bytearray)):
        return not any(v)
    if isinstance(v, np.ndarray):
        return int(v["af"]) == 0
    return v == 0


class MemoryPlugin(AggregatingPlugin):
    type_name = "memory"
    title = "IMT Plugin"
    refresh_key = "print_refresh_time"
    roundoff_key = "print_history_roundoff"   # rounds its refresh deadlines only

    def __init__(self, pcfg, ctx):
        super().__init__(pcfg, ctx)
        self.path = str(_get(pcfg, "imt_path", DEFAULT_PATH))
        self.buckets = int(_get(pcfg, "imt_buckets", DEFAULT_BUCKETS) or DEFAULT_BUCKETS)
        self.pools = int(_get(pcfg, "imt_mem_pools_number", DEFAULT_POOLS))
        self.pool_size = int(_get(pcfg, "imt_mem_pools_size", DEFAULT_POOL_SIZE)
                             or DEFAULT_POOL_SIZE)
        self.limit = capacity(self.buckets, self.pools, self.pool_size)
        self.table = MemoryTable(self, self.limit)
        self._sock = None
        self._stop = threading.Event()
        self._slots = threading.BoundedSemaphore(MAX_CLIENTS)
        # copying, matching and encoding the table is CPU work that competes with the
        # ring reader: a few queries do it at a time, the others wait their turn (sending
        # happens outside, so a client that does not read holds up nobody)
        self._heavy = threading.BoundedSemaphore(HEAVY_AT_ONCE)
        self.served = 0
        self.errors = 0

    # ---- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        if self.pool_size < PMACCT_ACC_SIZE:
            self.log.warn(f"enforcing memory pool's minimum size, {PMACCT_ACC_SIZE} bytes.")
            self.pool_size = DEFAULT_POOL_SIZE
            self.limit = capacity(self.buckets, self.pools, self.pool_size)
            self.table.limit = self.limit
        if self.limit:
            self.log.info(f"memory table: up to {self.limit} aggregates")
        else:
            self.log.info("memory table: unbounded (imt_mem_pools_number: 0)")
        self._sock = self._listen()
        t = threading.Thread(target=self._accept_loop, name="imt-accept", daemon=True)
        t.start()

    def _listen(self) -> socket.socket:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        except OSError as e:
            self.log.warn(f"cannot remove old socket {self.path}: {e.strerror}")
        # bound and listening under a temporary name, then renamed into place: a client
        # that sees the path (one waiting for it to appear, say) can always connect,
        # never meeting a bound socket that does not listen yet (ECONNREFUSED)
        # (A path with no room left for the suffix is bound in place.)
        tmp = f"{self.path}.{os.getpid()}"
        if len(os.fsencode(tmp)) > _SUN_PATH_MAX:
            tmp = self.path
        try:
            s.bind(tmp)
            # as pmacct: the socket is open to all; the directory holding it decides who
            # may reach it
            os.chmod(tmp, 0o777)
            s.listen(128)
            if tmp != self.path:
                os.replace(tmp, self.path)
        except OSError:
            s.close()
            if tmp != self.path:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
            self.log.error(f"cannot bind to file {self.path} .")
            raise
        s.settimeout(0.5)
        self.log.ok(f"waiting for data on: '{self.path}'")   # as pmacct words it
        return s

    def finish(self) -> None:
        self._stop.set()
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
            try:
                os.unlink(self.path)
            except OSError:
                pass
        t = self.table
        if t.refused_aggregates:
            self.log.warn(f"memory table was full: {t.refused_aggregates} new aggregates "
                          f"({t.refused_packets} packets, {t.refused_bytes} bytes) dropped")

    # ---- data path -----------------------------------------------------------------------
    def next_deadline(self):
        return None

    def on_deadline(self, now):
        pass

    def ingest(self, batch) -> None:
        with self.table.lock:
            lut = self._string_lut(batch.strings)
        keys, values, seq = self.keys.build(batch.records, lut)
        if not self.keys.count_flows:
            values["flows"] = np.zeros(len(keys), dtype=np.uint64)
        self.table.add(keys, values, seq)

    # ---- serving -------------------------------------------------------------------------
    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except socket.timeout:
                continue
            except OSError as e:
                if self._stop.is_set():
                    return
                if e.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    time.sleep(0.1)
                    continue
                if e.errno in (errno.EBADF, errno.EINVAL):
                    return
                continue
            if not self._slots.acquire(blocking=False):
                self._busy(conn)
                continue
            t = threading.Thread(target=self._serve, args=(conn,), name="imt-client",
                                 daemon=True)
            t.start()

    def _busy(self, conn) -> None:
        try:
            conn.settimeout(1.0)
            P.send_reply(conn, {"ok": False, "error": "too many clients; try again"})
        except OSError:
            pass
        finally:
            conn.close()

    def _serve(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(READ_TIMEOUT)
            try:
                line, _ = P.read_line(conn, P.MAX_REQUEST)
                req = P.parse_request(line)
            except P.ProtocolError as e:
                self.errors += 1
                conn.settimeout(SEND_TIMEOUT)
                P.send_reply(conn, {"ok": False, "error": str(e)})
                return
            with self._heavy:
                header, blobs = self.handle(req)
            conn.settimeout(SEND_TIMEOUT)
            P.send_reply(conn, header, blobs)
            self.served += 1
        except (OSError, socket.timeout):
            pass         # the client went away or stopped reading: nothing to do
        except Exception as e:  # noqa: BLE001 - a query must never take the plugin down
            self.errors += 1
            self.log.warn(f"query failed: {e!r}")
            try:
                P.send_reply(conn, {"ok": False, "error": f"internal error: {e}"})
            except OSError:
                pass
        finally:
            try:
                conn.close()
            finally:
                self._slots.release()

    def _classes(self) -> list[dict]:
        """``pmacct -C``: the classifiers the core loaded (pmacctd, uacctd)."""
        if self.ctx.daemon not in ("pmacctd", "uacctd"):
            return []
        from pypmacct.classifiers import class_table
        try:
            path = self.cfg.get("classifiers")
            num = int(self.cfg.get("classifier_table_num") or 256)
            return [{"id": c.id, "name": c.protocol} for c in class_table(path, None, num)]
        except (KeyError, OSError):
            return []

    def handle(self, req: dict):
        """Run one request; returns (reply header, blobs)."""
        op = req["op"]
        queries = req.get("queries") or []
        try:
            if op == "custom_primitives":
                from pypmacct.maps.custom_primitives import registry_table
                from pypmacct.primitives import CUSTOM_PRIMITIVES
                return {"ok": True, "primitives":
                        registry_table(CUSTOM_PRIMITIVES.values(), self.primitives)}, []
            if op == "class_table":
                return {"ok": True, "classes": self._classes()}, []
            if op == "erase_stamp":
                return {"ok": True, "stamp": self.table.reset_stamp}, []
            if op == "erase":
                self.table.erase()
                return {"ok": True}, []
            if op == "status":
                return self._status(), []
            keys, values, strings = self.table.snapshot()
            base = {"ok": True, "primitives": list(self.primitives),
                    "key_dtype": P.dtype_to_wire(keys.dtype), "strings": strings}
            if op == "stats":
                out = self._table_reply(base, keys, values)
            elif op == "match":
                rows = Matcher(keys, values, strings).matches(queries)
                if req.get("reset"):
                    self._reset(keys, np.unique(rows))
                out = self._table_reply(base, np.take(keys, rows),
                                        {k: np.take(v, rows) for k, v in values.items()})
            else:   # counter
                counters, rows = Matcher(keys, values, strings).counters(
                    queries, want_rows=bool(req.get("reset")))
                if req.get("reset"):
                    self._reset(keys, rows)
                out = {"ok": True, "counters": counters}, []
            if req.get("erase"):
                self.table.erase()
            return out
        except QueryError as e:
            return {"ok": False, "error": str(e)}, []

    def _reset(self, snap_keys, rows) -> None:
        """Remove the matched rows; rows are indices into a snapshot, which may be stale
        by now: find them again by key under the lock."""
        if len(rows) == 0:
            return
        with self.table.lock:
            keys, values = self.cache.snapshot()
            want = np.ascontiguousarray(np.take(snap_keys, rows))
            sv = f"S{max(1, keys.dtype.itemsize)}"
            if keys.dtype.itemsize == 0:
                hit = np.ones(len(keys), dtype=bool)
            else:
                hit = np.isin(np.ascontiguousarray(keys).view(sv), want.view(sv))
            self.table.remove(np.flatnonzero(hit))

    def _table_reply(self, base, keys, values):
        names, blobs = P.table_blobs(keys, values)
        hdr = dict(base, rows=len(keys), values=names)
        return hdr, blobs

    def _status(self) -> dict:
        """How many aggregates fall in each of imt_buckets buckets (by our hash)."""
        keys, _, _ = self.table.snapshot()
        if len(keys):
            h = hash_keys(keys) % np.uint64(self.buckets)
            counts = np.bincount(h.astype(np.int64), minlength=self.buckets)
        else:
            counts = np.zeros(self.buckets, dtype=np.int64)
        nz = np.flatnonzero(counts)
        return {"ok": True, "buckets": self.buckets,
                "chains": [[int(i), int(counts[i])] for i in nz]}
