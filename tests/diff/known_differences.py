"""Where our nfacctd deliberately prints something else than pmacct 1.7.7, and how the
differential tests check that the difference is exactly the documented one.

Each entry names its section in docs/differences.md. Two kinds:

- a *column* difference: 1.7.7 prints 0 in one column where it failed to read the
  value. The test sets that column to 0 in our output and then requires identity with
  pmacct's, and requires that the adjustment was needed (a stale entry fails).
- a *superset* difference: 1.7.7 drops records we keep. Every row pmacct prints must be
  in ours with counters at least as large, and ours must have more somewhere.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass

from tests.support import oracle


@dataclass(frozen=True)
class Known:
    doc: str                        # heading in docs/differences.md
    captures: frozenset
    column: str | None = None       # csv/formatted header of the column 1.7.7 zeroes
    json_key: str | None = None
    superset: bool = False


KNOWN = [
    Known("NetFlow/IPFIX: two-byte TCP flags are read",
          frozenset({"corpus-111-01", "corpus-112", "corpus-401-00", "corpus-403", "corpus-500"}),
          column="TCP_FLAGS", json_key="tcp_flags"),
    Known("NetFlow/IPFIX: sampling rates from selectorId and samplingPacketInterval/Space",
          frozenset({"corpus-104", "corpus-112"}),
          column="SAMPLING_RATE", json_key="sampling_rate"),
    Known("IPFIX: every record of a data set with variable-length fields is kept",
          frozenset({"corpus-106"}), superset=True),
]

DOC = "docs/differences.md"


def known_for(capture_id: str) -> list[Known]:
    return [k for k in KNOWN if capture_id in k.captures]


def zero_column(text: str, fmt: str, k: Known, sep: str = ",") -> str:
    """Our output with ``k``'s column set to what 1.7.7 prints (0)."""
    lines = text.splitlines(keepends=True)
    if fmt in ("json",):
        out = []
        pat = re.compile(r'("' + re.escape(k.json_key) + r'": )("?)[^",}]*("?)')
        for line in lines:
            out.append(pat.sub(lambda m: f"{m.group(1)}{m.group(2)}0{m.group(3)}", line))
        return "".join(out)
    header_idx = next((i for i, l in enumerate(lines) if not l.startswith("--")), None)
    if header_idx is None:
        return text
    header = lines[header_idx]
    if fmt in ("csv", "event_csv"):
        names = header.rstrip("\n").split(sep)
        if k.column not in names:
            return text
        col = names.index(k.column)
        out = lines[:header_idx + 1]
        for line in lines[header_idx + 1:]:
            if line.startswith("--"):
                out.append(line)
                continue
            f = line.rstrip("\n").split(sep)
            f[col] = "0"
            out.append(sep.join(f) + "\n")
        return "".join(out)
    # formatted: fixed-width columns, located by the header
    m = re.search(r"(?<!\S)" + re.escape(k.column) + r"\s+", header)
    if not m:
        return text
    start, width = m.start(), m.end() - m.start()
    out = lines[:header_idx + 1]
    for line in lines[header_idx + 1:]:
        if line.startswith("--") or len(line) < start + width:
            out.append(line)
            continue
        value = line[start:start + width]
        pad = len(value) - len(value.rstrip(" "))
        body = value.rstrip(" ")
        out.append(line[:start] + "0".ljust(len(body) + pad) + line[start + width:])
    return "".join(out)


def _rows(text: str, fmt: str):
    """{key: counters} for a print output; counters are PACKETS/FLOWS/BYTES."""
    head, rows = oracle.split_output(text, fmt)
    out = {}
    counters = ("packets", "flows", "bytes")
    if fmt == "json":
        for r in rows:
            d = json.loads(r)
            c = tuple(int(d.pop(x, 0)) for x in counters)
            d.pop("stamp_updated", None)
            out[json.dumps(d, sort_keys=True)] = c
        return out
    csv = fmt in ("csv", "event_csv")
    names = (head[0].split(",") if csv else head[0].split()) if head else []
    idx = [i for i, n in enumerate(names) if n.lower() in counters]
    starts = [m.start() for m in re.finditer(r"\S+", head[0])] if head and not csv else []
    for r in rows:
        if csv:
            f = r.split(",")
        else:  # formatted: cut at the header's column offsets (values may hold spaces)
            bounds = starts + [None]
            f = [r[a:b].strip() for a, b in zip(bounds, bounds[1:])]
        key = tuple(v for i, v in enumerate(f) if i not in idx)
        c = tuple(int(f[i]) for i in idx)
        prev = out.get(key)
        out[key] = c if prev is None else tuple(a + b for a, b in zip(prev, c))
    return out


def superset_check(theirs: str, ours: str, fmt: str) -> tuple[list[str], bool]:
    """Problems with 'ours holds everything pmacct printed', and whether ours has more."""
    t, o = _rows(theirs, fmt), _rows(ours, fmt)
    problems = [f"row only in pmacct: {k}" for k in t if k not in o]
    problems += [f"row {k}: ours {o[k]} < pmacct {t[k]}" for k in t
                 if k in o and any(a < b for a, b in zip(o[k], t[k]))]
    more = len(o) > len(t) or any(o[k] != t[k] for k in t if k in o)
    return problems, more
