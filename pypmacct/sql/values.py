"""Column values of a purge, vectorised: drained keys and counters become one Python
list per SQL column (what the database driver binds), computed a column at a time with
the print plugin's text conversions, never a record at a time."""
from __future__ import annotations

import numpy as np

from pypmacct.output import values as V
from pypmacct.output.columns import BY_NAME, CUSTOM

from .layout import Layout, SqlColumn


def _texts(m: np.ndarray) -> list[str]:
    """Byte matrix (NUL padding anywhere) -> Python strings, one per distinct row."""
    n = len(m)
    if n == 0:
        return []
    if m.ndim == 1:
        m = m.reshape(n, -1)
    width = m.shape[1]
    if width == 0:
        return [""] * n
    rows = np.ascontiguousarray(m).view(f"S{width}").reshape(n)   # trailing NULs drop
    uniq, inv = np.unique(rows, return_inverse=True)
    texts = [bytes(u).replace(b"\0", b"").decode("utf-8", "replace") for u in uniq]
    return [texts[i] for i in inv.tolist()]


def _raw(col: SqlColumn, keys: np.ndarray, values: dict) -> np.ndarray:
    if col.kind in ("cp_uint", "cp_text"):
        return keys[col.source]
    if col.source == "tcp_flags":
        v = values.get("tcp_flags")
        return v if v is not None else np.zeros(len(keys), dtype=np.uint8)
    oc = BY_NAME[col.source]
    f = oc.field
    if f not in keys.dtype.names and col.source == "src_net" and "src_net" in keys.dtype.names:
        f = "src_net"
    return keys[f]


def column_values(col: SqlColumn, keys: np.ndarray, values: dict, strings,
                  num_protos: bool = False) -> list:
    n = len(keys)
    if col.source is None:
        return [col.const] * n
    a = _raw(col, keys, values)
    k = col.kind
    if k == "int":
        return a.astype(np.int64).tolist() if a.dtype != np.uint64 else a.tolist()
    if k == "int_text":
        return [str(x) for x in a.tolist()]
    if k == "float":
        return a.astype(np.float64).tolist()
    if k == "ts_secs":
        return (a.astype(np.int64) // 1_000_000).tolist()
    if k == "ts_usecs":
        return (a.astype(np.int64) % 1_000_000).tolist()
    if k in ("addr", "addr_aton"):
        return _texts(V.addr_text(a, b"", compact=True))
    if k == "proto_name":
        return _texts(V.proto_text(a, num_protos))
    if k == "class":
        return _texts(V.string_text(a, strings, V.class_name))
    if k == "cp_uint":
        return a.tolist()
    if k == "cp_text":
        return _custom_texts(CUSTOM[col.source], a, strings)
    oc = BY_NAME[col.source]
    ok = oc.kind
    if ok == "mac":
        return _texts(V.mac_text(a))
    if ok == "hex":
        return _texts(V.hex_text(a))
    if ok == "rd":
        return _texts(V.rd_text(a))
    if ok == "roa":
        return _texts(V.roa_text(a))
    if ok == "char":
        return _texts(V.char_text(a))
    if ok == "bgp_string":
        return _texts(V.string_text(a, strings, V.bgp_underscores))
    if ok == "string":
        return _texts(V.string_text(a, strings))
    if ok == "uint":
        return a.astype(np.int64).tolist()
    if ok == "addr" or ok == "nexthop":
        return _texts(V.addr_text(a, b"", compact=True))
    raise ValueError(f"no SQL conversion for column {col.name} ({ok})")


def _custom_texts(oc, a: np.ndarray, strings) -> list[str]:
    """A custom primitive's text (hex, ip, mac, str, raw), as the print plugin's CSV."""
    from pypmacct.output.common import _cp_ip4, _cp_ip6
    if oc.kind == "cp_hex":
        return _texts(V.per_unique(np.asarray(a, dtype=np.uint64),
                                   lambda v: b"%x" % int(v)))
    if oc.kind in ("cp_ip4", "cp_ip6"):
        return _texts(V.per_unique(a["addr"], _cp_ip4 if oc.kind == "cp_ip4" else _cp_ip6))
    if oc.kind == "mac":
        return _texts(V.mac_text(a))
    if oc.kind == "string":
        return _texts(V.string_text(a, strings))
    raise ValueError(f"no SQL conversion for custom primitive {oc.name} ({oc.kind})")


def purge_columns(layout: Layout, keys: np.ndarray, values: dict, strings,
                  num_protos: bool = False) -> dict:
    """{column name: list of values} for the layout's columns, the counters and, with
    history, 'stamp_inserted' (seconds)."""
    out = {}
    for c in layout.columns:
        out[c.name] = column_values(c, keys, values, strings, num_protos)
    n = len(keys)
    if layout.log_times:
        out["stamp_inserted"] = (keys["ts_start"].astype(np.int64) // 1_000_000).tolist()
        out["stamp_updated"] = (keys["ts_end"].astype(np.int64) // 1_000_000).tolist()
    elif layout.history:
        out["stamp_inserted"] = keys["stamp_inserted"].astype(np.int64).tolist()
    for f in ("packets", "bytes", "flows"):
        v = values.get(f)
        out[f] = v.astype(np.uint64).tolist() if v is not None else [0] * n
    return out
