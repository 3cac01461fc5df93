"""Projection of records onto one plugin's aggregate: the key and the values.

A plugin's ``aggregate`` list decides which record fields it needs (``input_fields``,
what the core ships through its ring) and the packed dtype of its keys. ``KeyBuilder``
turns a batch of records into key rows and value columns, vectorised; the cache then
sums rows with equal keys.

Key field names are the record field names for plain primitives, ``src_net``/``dst_net``
for prefixes and ``stamp_inserted`` for the time bin (seconds). With ``peer_dst_ip`` a
``flow_af`` value column keeps the family of the aggregate's last flow, which decides how
pmacct prints the next hop.
"""
from __future__ import annotations

import numpy as np

from .primitives import PRIMITIVES
from .record import ADDR_DTYPE, RECORD_DTYPE, STRING_FIELDS

COUNTER_FIELDS = ("packets", "bytes", "flows")
# Value columns besides the counters: ``flow_type`` is the sample type of the most
# recent record of an aggregate (pmacct keeps the last one; JSON, SQL and the client
# leave counters out for event and option aggregates).
VALUE_FIELDS = COUNTER_FIELDS + ("sample_type", "arrival_seq")

# MASKS[n] is the 16-byte netmask with the n leading bits set.
_MASKS = np.packbits(np.arange(128)[None, :] < np.arange(129)[:, None], axis=1)


def mask_addresses(addrs: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Apply prefix lengths to an array of ``ADDR_DTYPE`` addresses."""
    out = np.zeros(len(addrs), dtype=ADDR_DTYPE)
    out["af"] = addrs["af"]
    raw = np.ascontiguousarray(addrs["addr"]).view(np.uint8).reshape(-1, 16)
    limit = np.where(addrs["af"] == 4, 32, 128)
    m = np.minimum(masks.astype(np.int64), limit)
    out["addr"] = (raw & _MASKS[m]).view("V16").reshape(-1)
    return out


def padded_dtype(dt: np.dtype) -> np.dtype:
    """``dt`` with its size rounded up to a multiple of 8 bytes (zero padding at the
    end), so that key rows are also rows of uint64 words for the cache, without a copy."""
    size = dt.itemsize
    if size % 8 == 0:
        return dt
    return np.dtype({"names": list(dt.names), "formats": [dt.fields[n][0] for n in dt.names],
                     "offsets": [dt.fields[n][1] for n in dt.names],
                     "itemsize": size + (-size) % 8})


class KeyBuilder:
    """Builds key rows and value columns for one plugin's primitive list."""

    def __init__(self, primitives, record_dtype: np.dtype = RECORD_DTYPE, time_bins=None,
                 extra_key_fields=()):
        self.primitives = tuple(primitives)
        self.time_bins = time_bins
        self.sum_primitive = None
        self.or_tcp_flags = False
        self.count_flows = False
        key_fields: list[tuple[str, object]] = []
        inputs: set[str] = set(VALUE_FIELDS)
        self._copy: list[str] = []
        self._nets: list[tuple[str, str, str]] = []
        for name in self.primitives:
            p = PRIMITIVES.get(name)
            if p is None:
                # custom primitive: a record field of the same name
                if name not in record_dtype.names:
                    raise KeyError(f"no record field for primitive {name!r}")
                key_fields.append((name, record_dtype.fields[name][0]))
                self._copy.append(name)
                inputs.add(name)
                continue
            inputs.update(p.fields)
            if p.kind == "copy":
                for f in p.fields:
                    if f not in dict(key_fields):
                        key_fields.append((f, record_dtype.fields[f][0]))
                        self._copy.append(f)
            elif p.kind == "net":
                key_fields.append((name, ADDR_DTYPE))
                self._nets.append((name, p.fields[0], p.fields[1]))
            elif p.kind == "sum":
                self.sum_primitive = name
                if name == "sum_net":
                    key_fields.append(("src_net", ADDR_DTYPE))
                else:
                    f = p.fields[0]
                    key_fields.append((f, record_dtype.fields[f][0]))
            elif p.kind == "or":
                self.or_tcp_flags = True
            elif p.kind == "output":
                self.count_flows = self.count_flows or name == "flows"
        # pmacct prints a BGP next hop in the family of the aggregate's last flow: that
        # family travels as a value kept from the most recent record, not in the key
        self.track_flow_af = "peer_dst_ip" in self.primitives
        if self.track_flow_af:
            inputs.add("src_host")
        for f in extra_key_fields:
            if f not in dict(key_fields):
                key_fields.append((f, record_dtype.fields[f][0]))
                self._copy.append(f)
                inputs.add(f)
        if time_bins is not None:
            key_fields.append(("stamp_inserted", "i8"))
            inputs.add("time_start")
        self.key_dtype = padded_dtype(np.dtype(key_fields))
        self.input_fields = frozenset(inputs)
        self.string_key_fields = tuple(f for f in self._copy if f in STRING_FIELDS)

    def build(self, records: np.ndarray, string_lut: np.ndarray | None = None):
        """Key rows, value columns and arrival sequence numbers for ``records``.

        ``string_lut`` maps the batch's string ids to the plugin's own ids; it is needed
        only when the key holds string fields.
        """
        n = len(records)
        if self.sum_primitive:
            return self._build_sum(records)
        keys = np.zeros(n, dtype=self.key_dtype)
        for f in self._copy:
            col = records[f]
            if f in STRING_FIELDS and string_lut is not None:
                col = string_lut[col]
            keys[f] = col
        for name, host, mask in self._nets:
            keys[name] = mask_addresses(records[host], records[mask])
        if self.time_bins is not None:
            keys["stamp_inserted"] = self.time_bins.bin(records["time_start"] // 1_000_000)
        return keys, self._values(records), self._seq(records)

    @staticmethod
    def _seq(records: np.ndarray) -> np.ndarray:
        return records["arrival_seq"].astype(np.int64)

    def _values(self, records: np.ndarray) -> dict[str, np.ndarray]:
        vals = {f: records[f].astype(np.uint64, copy=False) for f in COUNTER_FIELDS}
        vals["flow_type"] = records["sample_type"].astype(np.uint8, copy=False)
        if self.track_flow_af:
            vals["flow_af"] = records["src_host"]["af"].astype(np.uint8, copy=False)
        if self.or_tcp_flags:
            vals["tcp_flags"] = records["tcp_flags"].astype(np.uint8, copy=False)
        return vals

    def _build_sum(self, records: np.ndarray):
        """Each record twice, source side then destination side, interleaved so that
        the rows stay in arrival order."""
        n = len(records)
        keys = np.zeros(2 * n, dtype=self.key_dtype)
        src_rows, dst_rows = keys[0::2], keys[1::2]
        p = self.sum_primitive
        if p == "sum_net":
            src_rows["src_net"] = mask_addresses(records["src_host"], records["src_mask"])
            dst_rows["src_net"] = mask_addresses(records["dst_host"], records["dst_mask"])
        else:
            src, dst = PRIMITIVES[p].fields
            src_rows[src] = records[src]
            dst_rows[src] = records[dst]
        if self.time_bins is not None:
            b = self.time_bins.bin(records["time_start"] // 1_000_000)
            src_rows["stamp_inserted"] = b
            dst_rows["stamp_inserted"] = b
        vals = {k: np.repeat(v, 2) for k, v in self._values(records).items()}
        return keys, vals, np.repeat(self._seq(records), 2)
