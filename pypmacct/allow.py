"""``nfacctd_allow_file`` (and sfacctd's, pmbmpd's...): which exporters are accepted.

One address or prefix per line (``192.0.2.1``, ``10.0.0.0/8``, ``2001:db8::/32``); blank
lines and lines starting with ``!`` (or ``#``) are skipped, spaces anywhere are ignored,
a bad line is logged and skipped. As in pmacct, a file without any valid entry refuses
every exporter, a file missing at start-up is an error, and one missing at reload
(SIGUSR2) keeps the previous list. IPv4-mapped IPv6 sources are checked as IPv4.

Checks are set lookups on the exporter address text with a per-address memo, so a batch
from a few exporters costs a handful of dictionary hits.
"""
from __future__ import annotations

import ipaddress
import os

import numpy as np

_MEMO_MAX = 65536


class AllowFileError(OSError):
    pass


def _parse_entry(text: str):
    if "/" in text:
        return ipaddress.ip_network(text, strict=False)
    return ipaddress.ip_address(text)


class AllowList:
    def __init__(self, path: str | None = None, log=None):
        self.path = path
        self.log = log
        self.exact: set = set()
        self.networks4: list = []
        self.networks6: list = []
        self.entries = 0
        self.mtime = None
        self._memo: dict[str, bool] = {}

    @classmethod
    def load(cls, path: str, log=None) -> "AllowList":
        """Read ``path``; raises ``AllowFileError`` if it cannot be read."""
        al = cls(path, log)
        if not al._read(path):
            raise AllowFileError(f"[{path}] file not found.")
        return al

    def _warn(self, msg: str) -> None:
        if self.log is not None:
            self.log.warn(msg)

    def _read(self, path: str) -> bool:
        try:
            with open(path) as fh:
                lines = fh.readlines()
            mtime = os.stat(path).st_mtime
        except OSError:
            return False
        exact, nets4, nets6, n = set(), [], [], 0
        for raw in lines:
            line = "".join(raw.split())
            if not line or line[0] in "!#":
                continue
            try:
                entry = _parse_entry(line)
            except ValueError:
                self._warn(f"[{path}] Bad IP address '{line}'. Ignored.")
                continue
            n += 1
            if isinstance(entry, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
                exact.add(entry)
            elif entry.prefixlen == entry.max_prefixlen:
                exact.add(entry.network_address)
            elif entry.version == 4:
                nets4.append(entry)
            else:
                nets6.append(entry)
        self.exact, self.networks4, self.networks6, self.entries = exact, nets4, nets6, n
        self.mtime = mtime
        self._memo = {}
        return True

    def reload(self) -> bool:
        """Re-read the file (SIGUSR2); on failure keep the current list."""
        if self.path is None:
            return False
        if self._read(self.path):
            return True
        self._warn(f"[{self.path}] file not found.")
        self._warn(f"[{self.path}] Rolling back old map.")
        return False

    def _check(self, src: str) -> bool:
        try:
            a = ipaddress.ip_address(src.split("%", 1)[0])
        except ValueError:
            return False
        if a.version == 6 and a.ipv4_mapped is not None:
            a = a.ipv4_mapped
        if a in self.exact:
            return True
        for net in (self.networks4 if a.version == 4 else self.networks6):
            if a in net:
                return True
        return False

    def allows(self, src: str) -> bool:
        got = self._memo.get(src)
        if got is None:
            got = self._check(src)
            if len(self._memo) >= _MEMO_MAX:
                self._memo.clear()
            self._memo[src] = got
        return got

    def allows_many(self, srcs) -> np.ndarray:
        """One boolean per exporter address in ``srcs``."""
        memo = self._memo
        out = np.empty(len(srcs), dtype=np.bool_)
        for i, s in enumerate(srcs):
            got = memo.get(s)
            out[i] = got if got is not None else self.allows(s)
        return out

    def __len__(self) -> int:
        return self.entries
