"""geoipv2_file: country, postal code and coordinates of src_host / dst_host from a
MaxMind DB (read with the maxminddb package; geoip2 depends on it).

Like pmacct 1.7.7 (pkt_handlers.c, *_geoipv2_handler): the country is the record's
``country.iso_code`` (at most 3 characters), the postal code ``postal.code`` (at most 11),
the coordinates ``location.latitude`` / ``location.longitude``; an address the database
does not hold gets an empty country and postal code and 0 coordinates.

A core stage. Lookups go through the distinct addresses of a batch (np.unique on the
16-byte keys), each looked up once and remembered across batches (bounded cache), so a
batch costs one reader call per address never seen before, not one per record. The file
is re-opened on SIGUSR2.
"""
from __future__ import annotations

import ipaddress

import numpy as np

CACHE_MAX = 1 << 20
OUT = {"src_host": ("src_host_country", "src_host_pocode", "src_host_lat", "src_host_lon"),
       "dst_host": ("dst_host_country", "dst_host_pocode", "dst_host_lat", "dst_host_lon")}


class GeoIP:
    def __init__(self, path: str, log=None):
        self.path = path
        self.log = log
        self.reader = self._open()
        self.cache: dict[bytes, tuple] = {}
        self.fields = {"src_host", "dst_host"}

    def _open(self):
        import maxminddb
        r = maxminddb.open_database(self.path)
        if self.log is not None:
            self.log.info(f"geoipv2_file database {self.path} loaded")
        return r

    def reload(self, log=None) -> None:
        try:
            reader = self._open()
        except (OSError, ValueError) as e:
            if self.log is not None:
                self.log.warn(f"geoipv2_file: not reloaded, keeping the previous one: {e}")
            return
        self.reader, self.cache = reader, {}

    def _one(self, key: bytes) -> tuple:
        af = key[0]
        try:
            ip = ipaddress.ip_address(key[1:5] if af == 4 else key[1:17])
            rec = self.reader.get(ip) if af in (4, 6) else None
        except (ValueError, TypeError):
            rec = None
        if not isinstance(rec, dict):
            return ("", "", 0.0, 0.0)
        country = rec.get("country") or {}
        postal = rec.get("postal") or {}
        loc = rec.get("location") or {}
        cc = country.get("iso_code") if isinstance(country, dict) else None
        pc = postal.get("code") if isinstance(postal, dict) else None
        lat = loc.get("latitude") if isinstance(loc, dict) else None
        lon = loc.get("longitude") if isinstance(loc, dict) else None
        return (cc[:3] if isinstance(cc, str) else "", pc[:11] if isinstance(pc, str) else "",
                float(lat) if isinstance(lat, float) else 0.0,
                float(lon) if isinstance(lon, float) else 0.0)

    def apply(self, recs: np.ndarray, strings: list[str]) -> list[str]:
        names = recs.dtype.names
        wanted = [side for side, outs in OUT.items()
                  if side in names and any(o in names for o in outs)]
        if not wanted or len(recs) == 0:
            return strings
        table = None
        for side in wanted:
            col = recs[side]
            keys = np.zeros((len(recs), 17), np.uint8)
            keys[:, 0] = col["af"]
            keys[:, 1:] = np.ascontiguousarray(col["addr"]).view(np.uint8).reshape(-1, 16)
            kv = keys.view("V17").ravel()
            uniq, inv = np.unique(kv, return_inverse=True)
            if len(self.cache) > CACHE_MAX:
                self.cache = {}
            vals = []
            for u in uniq.tolist():
                b = bytes(u)
                v = self.cache.get(b)
                if v is None:
                    v = self.cache[b] = self._one(b)
                vals.append(v)
            c_name, p_name, lat_name, lon_name = OUT[side]
            if c_name in names or p_name in names:
                if table is None:
                    table = list(strings)
                    index = {s: i for i, s in enumerate(table)}

                def intern(s):
                    i = index.get(s)
                    if i is None:
                        i = index[s] = len(table)
                        table.append(s)
                    return i
                if c_name in names:
                    recs[c_name] = np.array([intern(v[0]) for v in vals], np.int32)[inv]
                if p_name in names:
                    recs[p_name] = np.array([intern(v[1]) for v in vals], np.int32)[inv]
            if lat_name in names:
                recs[lat_name] = np.array([v[2] for v in vals], np.float64)[inv]
            if lon_name in names:
                recs[lon_name] = np.array([v[3] for v in vals], np.float64)[inv]
        return table if table is not None else strings
