"""Output formats shared by the print plugin and others (provisional)."""
from __future__ import annotations

import socket

import numpy as np


def _addr(a) -> str:
    af, raw = int(a["af"]), bytes(a["addr"])
    if af == 4:
        return socket.inet_ntop(socket.AF_INET, raw[:4])
    if af == 6:
        return socket.inet_ntop(socket.AF_INET6, raw)
    return ""


class _Csv:
    def __init__(self, primitives, key_dtype, sep=","):
        self.primitives, self.sep = primitives, sep

    def header(self):
        return self.sep.join([p.upper() for p in self.primitives] + ["PACKETS", "BYTES"]) + "\n"

    def render(self, keys, values, strings):
        lines = []
        for i in range(len(keys)):
            row = []
            for p in self.primitives:
                v = keys[p][i] if p in keys.dtype.names else ""
                row.append(_addr(v) if isinstance(v, np.void) and v.dtype.names else str(v))
            row += [str(values["packets"][i]), str(values["bytes"][i])]
            lines.append(self.sep.join(row))
        return "\n".join(lines) + ("\n" if lines else "")


def make_formatter(kind, primitives, key_dtype, pcfg):
    return _Csv(primitives, key_dtype)
