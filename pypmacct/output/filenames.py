"""Dynamic output file names (``print_output_file``, ``print_latest_file``).

A name may hold variables, replaced per aggregate first:

- ``$peer_src_ip``: the aggregate's exporter address, with dots and colons turned into
  underscores (``null`` if peer_src_ip is not aggregated);
- ``$tag`` / ``$tag2``: the aggregate's tags (0 if not aggregated);
- ``$post_tag`` / ``$post_tag2``: the configured post_tag values;
- ``$ref``: the refresh time in seconds; ``$hst``: the history period in seconds (a
  month counts as 30 days, as pmacct counts it);

and then strftime conversions, on the aggregate's time bin when history is configured
and on the purge time otherwise, in local time or UTC (``timestamps_utc``). ``$tzone``
becomes the zone offset of that time (``Z`` or ``+hh:mm``).

A variable name is ``$`` followed by letters, digits and underscores; one trailing
underscore is not part of it (``$tag_`` is ``$tag`` then ``_``). Unknown variables are
left as they are.
"""
from __future__ import annotations

import re
import socket
import time

import numpy as np

_VAR = re.compile(r"\$[A-Za-z0-9_]*")

TIME_VARIABLES = ("$tzone",)


def is_dynamic(template: str | None) -> bool:
    return bool(template) and ("%" in template or "$" in template)


def has_non_time_variables(template: str) -> bool:
    """True if ``template`` holds a ``$`` variable other than ``$tzone``."""
    for m in _VAR.finditer(template):
        if not m.group(0).startswith("$tzone"):
            return True
    return False


def variables_in(template: str) -> list[str]:
    out = []
    for m in _VAR.finditer(template):
        name = m.group(0)
        if len(name) > 2 and name.endswith("_"):
            name = name[:-1]
        out.append(name)
    return out


def _addr_for_name(af: int, raw: bytes) -> str:
    if af == 4:
        s = socket.inet_ntop(socket.AF_INET, raw[:4])
    elif af == 6:
        s = socket.inet_ntop(socket.AF_INET6, raw[:16])
    else:
        s = ""
    return s.replace(".", "_").replace(":", "_")


def tzone_text(t: int, utc: bool) -> str:
    off = time.gmtime(t).tm_gmtoff if utc else time.localtime(t).tm_gmtoff
    if off == 0:
        return "Z"
    sign = "-" if off < 0 else "+"
    off = abs(off)
    return f"{sign}{off // 3600:02d}:{(off % 3600) // 60:02d}"


def strftime_name(name: str, t: int, utc: bool) -> str:
    """strftime on ``name`` at time ``t``, then the first ``$tzone`` replaced."""
    tm = time.gmtime(t) if utc else time.localtime(t)
    out = time.strftime(name, tm) if "%" in name else name
    if "$tzone" in out:
        out = out.replace("$tzone", tzone_text(t, utc), 1)
    return out


class FileNamer:
    """Computes the file name of every aggregate of a purge."""

    def __init__(self, template: str, *, utc: bool = False, refresh_time: int = 60,
                 history_secs: int = 0, post_tag: int = 0, post_tag2: int = 0):
        self.template = template
        self.utc = utc
        self.dynamic = is_dynamic(template)
        self.time_only = self.dynamic and not has_non_time_variables(template)
        self.fixed = {"$ref": str(refresh_time), "$hst": str(history_secs),
                      "$post_tag": str(post_tag), "$post_tag2": str(post_tag2)}

    def substitute(self, text: str, peer_src_ip: str | None, tag: int, tag2: int) -> str:
        """Replace the ``$`` variables of ``text`` (no strftime)."""
        def repl(m):
            var = m.group(0)
            tail = ""
            if len(var) > 2 and var.endswith("_"):
                var, tail = var[:-1], "_"
            if var == "$peer_src_ip":
                val = "null" if peer_src_ip is None else peer_src_ip
            elif var == "$tag":
                val = str(tag)
            elif var == "$tag2":
                val = str(tag2)
            elif var in self.fixed:
                val = self.fixed[var]
            else:
                return m.group(0)
            return val + tail
        return _VAR.sub(repl, text)

    def _row_vars(self, keys, i):
        names = keys.dtype.names or ()
        psi = None
        if "peer_src_ip" in names:
            a = keys["peer_src_ip"][i]
            psi = _addr_for_name(int(a["af"]), bytes(a["addr"]))
        tag = int(keys["tag"][i]) if "tag" in names else 0
        tag2 = int(keys["tag2"][i]) if "tag2" in names else 0
        return psi, tag, tag2

    def name_for(self, keys, i: int | None, stamp: int) -> str:
        """The name for row ``i`` of ``keys`` (``None``: no aggregate, as for an empty
        purge) at time ``stamp``."""
        if not self.dynamic:
            return self.template
        if i is None:
            psi, tag, tag2 = None, 0, 0
        else:
            psi, tag, tag2 = self._row_vars(keys, i)
        return strftime_name(self.substitute(self.template, psi, tag, tag2), stamp, self.utc)

    def group(self, keys, stamps: np.ndarray, single: bool = False):
        """Split a purge by file name. ``stamps``: each row's time (its time bin, or the
        purge time). Returns ``[(name, row_indices)]`` in order of first appearance;
        with ``single`` every row goes to the first row's file."""
        n = len(keys)
        if n == 0:
            return []
        if not self.dynamic or single:
            name = self.name_for(keys, 0, int(stamps[0]))
            return [(name, np.arange(n))]
        fields = [f for f in ("peer_src_ip", "tag", "tag2") if f in (keys.dtype.names or ())
                  and ("$" + f) in variables_in(self.template)]
        uses_time = "%" in self.template or "$tzone" in self.template
        combo = np.zeros(n, dtype=[("s", "i8")] + [(f, keys.dtype[f]) for f in fields])
        combo["s"] = stamps if uses_time else 0
        for f in fields:
            combo[f] = keys[f]
        raw = np.ascontiguousarray(combo).view(f"V{combo.dtype.itemsize}").reshape(-1)
        _, first, inv = np.unique(raw, return_index=True, return_inverse=True)
        inv = inv.reshape(-1)
        names = [self.name_for(keys, int(i), int(stamps[i])) for i in first]
        # distinct combinations can still give the same name: merge by name
        by_name: dict[str, int] = {}
        code = np.empty(len(names), dtype=np.int64)
        for j, nm in enumerate(names):
            code[j] = by_name.setdefault(nm, len(by_name))
        row_code = code[inv]
        order = np.argsort(row_code, kind="stable")
        counts = np.bincount(row_code, minlength=len(by_name))
        bounds = np.concatenate([[0], np.cumsum(counts)])
        groups = [(nm, order[bounds[c]:bounds[c + 1]]) for nm, c in by_name.items()]
        groups.sort(key=lambda g: int(g[1][0]))
        return groups
