"""sampling_map: a sampling rate per exporter (ip) and interface (in, out).

Rules are pre_tag_map rules restricted to ``id`` (the rate) and the match keys ``ip``,
``in`` and ``out`` (negations allowed on in/out); the first full match wins. As in
pmacct 1.7.7 (NF_sampling_rate_handler, NF_counters_map_renormalize_handler):

- the sampling_rate primitive is the map's rate where a rule matches, else the rate the
  exporter advertised (0: unknown);
- with nfacctd_renormalize, counters are multiplied by that rate (the map's first) and
  the primitive reads 1 (0 where no rate is known); nfacctd_ext_sampling_rate, when set,
  still drives renormalisation (the decoder applies it) and the map only sets the
  primitive.

The decoder is told not to renormalise when a map is set without an external rate
(daemons/nfacctd.py), so that this stage sees the advertised rates and counts.
"""
from __future__ import annotations

import numpy as np

from .pretag import PreTagMap, read_map

ALLOWED = {"ip", "in", "out"}


class SamplingMap:
    def __init__(self, path: str, daemon: str, log=None, renormalize=False, ext_rate=0,
                 max_entries=384, row_len=256):
        self.path, self.daemon, self.log = path, daemon, log
        self.renormalize, self.ext_rate = renormalize, ext_rate
        self.max_entries, self.row_len = max_entries, row_len
        self._map = self._load(startup=True)
        self.fields = {"peer_src_ip", "in_iface", "out_iface", "sampling_rate"}
        if renormalize and not ext_rate:
            self.fields |= {"packets", "bytes"}

    def _load(self, startup=False) -> PreTagMap:
        m = PreTagMap(self.path, self.daemon, None, self.max_entries, self.row_len,
                      key="sampling_map")
        keep = []
        for r in m.rules:
            bad = {x.key for x in r.matches} - ALLOWED
            if bad or r.tag is None or r.tag2 is not None or r.label_value is not None \
                    or r.jeq or r.stack or r.tag_inc or r.tos is not None:
                if self.log is not None:
                    self.log.warn(f"sampling_map: {self.path}:{r.lineno}: only id, ip, in and "
                                  f"out are valid here: line skipped")
                continue
            keep.append(r)
        _, problems = read_map(self.path, self.daemon, None, self.max_entries, self.row_len)
        for p in problems:
            if self.log is not None:
                self.log.warn(f"sampling_map: {p}")
        m._install(keep)
        if self.log is not None:
            self.log.info(f"sampling_map: {len(keep)} rules loaded from {self.path}")
        return m

    def reload(self, log=None) -> None:
        try:
            self._map = self._load()
        except OSError as e:
            if self.log is not None:
                self.log.warn(f"sampling_map: not reloaded, keeping the previous map: {e}")

    def apply(self, recs: np.ndarray) -> None:
        n = len(recs)
        names = recs.dtype.names
        tmp = np.zeros(n, dtype=[("tag", "u8"), ("tag2", "u8"), ("label", "i4"),
                                 ("peer_src_ip", recs.dtype["peer_src_ip"]),
                                 ("in_iface", "u4"), ("out_iface", "u4")])
        for f in ("peer_src_ip", "in_iface", "out_iface"):
            if f in names:
                tmp[f] = recs[f]
        self._map.apply(tmp, [""])
        st = tmp["tag"]
        hit = st > 0
        if "sampling_rate" not in names:
            return
        rate = np.where(hit, st, recs["sampling_rate"].astype(np.uint64))
        if self.renormalize and not self.ext_rate:
            mult = np.where(rate > 0, rate, 1).astype(np.uint64)
            for f in ("packets", "bytes"):
                if f in names:
                    recs[f] = recs[f] * mult
            recs["sampling_rate"] = np.where(rate > 0, 1, 0)
        elif self.renormalize:
            recs["sampling_rate"] = np.where(hit, 1, recs["sampling_rate"])
        else:
            recs["sampling_rate"] = rate
