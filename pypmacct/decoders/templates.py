"""NetFlow v9 / IPFIX templates: the template object, the per-exporter cache and its
persistence in ``nfacctd_templates_file``.

A template is keyed by exporter address + source id (v9) or observation domain (IPFIX)
+ template id. A (re)definition replaces the object; an identical resend keeps the old
one, so compiled decoding plans stay cached. IPFIX withdrawals (field count 0; template
id 2 or 3 for "all") remove entries.

The file format is pmacct 1.7.7's: one JSON object per line, with pmacct's quirks (the
template id is written in network byte order as read by a little-endian host; options
templates list only element numbers below 384, ordered by number, with offsets). Lines
written by pmacct load here and the other way round.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass

from .ie import LEGACY_LIMIT, VARIABLE_LENGTH

MAX_FIELDS = 256                 # pmacct's TPL_LIST_ENTRIES
DEFAULT_MAX_PER_EXPORTER = 4096
DEFAULT_MAX_TOTAL = 1 << 18


@dataclass(frozen=True)
class Field:
    type: int
    length: int
    pen: int = 0

    @property
    def vlen(self) -> bool:
        return self.length == VARIABLE_LENGTH


@dataclass(frozen=True)
class Slot:
    """Where a field sits in a (projected) fixed-length record."""
    type: int
    pen: int
    offset: int
    length: int        # bytes in the record; 4 for a variable-length field's index
    vlen: bool = False


def _swap16(v: int) -> int:
    return ((v & 0xFF) << 8) | ((v >> 8) & 0xFF)


class Template:
    """One data or options template.

    For templates with variable-length fields the records are walked one by one and
    re-laid out into a fixed "projected" record in which each variable-length field is
    replaced by a 4-byte index into a side list of values; ``slots`` describes that
    layout, ``reclen`` its size. For fixed templates the projection is the identity.
    """

    __slots__ = ("exporter", "domain", "tid", "options", "fields", "scope_count",
                 "version", "vlen", "reclen", "wire_len", "min_len", "slots", "_index",
                 "segments", "plan", "wire", "__weakref__")

    def __init__(self, exporter: str, domain: int, tid: int, fields, options: bool = False,
                 scope_count: int = 0, version: int = 10):
        self.exporter, self.domain, self.tid = exporter, domain, tid
        self.options, self.scope_count, self.version = options, scope_count, version
        self.fields = tuple(fields)
        self.vlen = any(f.vlen for f in self.fields)
        self.plan = None
        self.wire = b""          # the definition as received, to spot identical resends
        slots, index = [], {}
        off = 0
        segments: list = []          # ("fixed", n) / ("vlen",) runs over the wire record
        for f in self.fields:
            if f.vlen:
                slots.append(Slot(f.type, f.pen, off, 4, True))
                off += 4
                segments.append(("vlen",))
            else:
                slots.append(Slot(f.type, f.pen, off, f.length))
                off += f.length
                if segments and segments[-1][0] == "fixed":
                    segments[-1] = ("fixed", segments[-1][1] + f.length)
                else:
                    segments.append(("fixed", f.length))
        self.slots = tuple(slots)
        self.reclen = off
        self.segments = tuple(segments)
        self.wire_len = None if self.vlen else off
        # shortest possible wire record: fixed parts plus a 1-byte length per vlen field
        self.min_len = sum(f.length for f in self.fields if not f.vlen) + \
            sum(1 for f in self.fields if f.vlen)
        for s in slots:
            key = (s.pen, s.type)
            index.setdefault(key, []).append(s)
        self._index = index

    def find(self, ie: int, pen: int = 0, repeat: int | None = None) -> Slot | None:
        """The slot of element ``ie``; for a repeated element pmacct's rule applies
        (the last definition for IANA numbers below 384, else the first) unless
        ``repeat`` picks one."""
        lst = self._index.get((pen, ie))
        if not lst:
            return None
        if repeat is not None:
            return lst[repeat] if repeat < len(lst) else None
        if pen == 0 and ie < LEGACY_LIMIT:
            return lst[-1]
        return lst[0]

    def has(self, ie: int, pen: int = 0) -> bool:
        return (pen, ie) in self._index

    def length_of(self, ie: int, pen: int = 0) -> int:
        s = self.find(ie, pen)
        return s.length if s is not None else 0

    def same_layout(self, other: "Template") -> bool:
        return (self.fields == other.fields and self.options == other.options
                and self.scope_count == other.scope_count)

    @property
    def key(self):
        return (self.exporter, self.domain, self.tid)

    def __repr__(self):
        kind = "options " if self.options else ""
        return (f"<{kind}template {self.tid} {self.exporter}/{self.domain} "
                f"{len(self.fields)} fields len={'var' if self.vlen else self.reclen}>")

    # --- pmacct's templates file ---
    def to_pmacct_json(self) -> dict:
        if self.options:
            # pmacct sizes options records by adding up the announced lengths, 65535 for
            # a variable-length field included, in 16 bits (so such records never match)
            rlen = sum(f.length for f in self.fields) & 0xFFFF
        else:
            rlen = 0 if self.vlen else self.reclen
        obj = {"agent": self.exporter, "source_id": self.domain,
               "template_id": _swap16(self.tid), "template_type": 1 if self.options else 0,
               "num": len(self.fields), "len": rlen}
        if not self.options:
            obj["vlen"] = 1 if self.vlen else 0
            lst = []
            off = 0
            ext_slots: dict[int, int] = {}
            for i, f in enumerate(self.fields):
                flen = 0 if f.vlen else f.length
                if f.pen == 0 and f.type < LEGACY_LIMIT:
                    lst.append({"type": 0, "otpl": {"off": off, "len": flen,
                                                    "tpl_len": f.length, "tpl_index": f.type}})
                else:
                    bucket = f.type % 8
                    idx = ext_slots.get(bucket, 0)
                    ext_slots[bucket] = idx + 1
                    repeat = sum(1 for g in self.fields[:i] if (g.pen, g.type) == (f.pen, f.type))
                    lst.append({"type": 1, "utpl": {"pen": f.pen, "type": f.type, "off": off,
                                                    "len": flen, "tpl_len": f.length,
                                                    "repeat_id": repeat, "ie_idx": idx}})
                if not self.vlen:
                    off += f.length
            obj["list"] = lst
        else:
            entries = {}
            off = 0
            for f in self.fields:
                if f.pen == 0 and f.type < LEGACY_LIMIT:
                    entries[f.type] = {"type": f.type, "off": off, "len": f.length}
                off = (off + f.length) & 0xFFFF
            obj["tpl"] = [entries[k] for k in sorted(entries)
                          if entries[k]["off"] or entries[k]["len"]]
        return obj

    @classmethod
    def from_pmacct_json(cls, obj: dict) -> "Template":
        if not isinstance(obj, dict):
            raise ValueError("not a JSON object")
        try:
            agent = obj["agent"]
            sid = int(obj["source_id"])
            tid = _swap16(int(obj["template_id"]) & 0xFFFF)
            ttype = int(obj["template_type"])
            int(obj["num"]), int(obj["len"])
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"missing or bad key: {e}") from None
        if not isinstance(agent, str):
            raise ValueError("bad agent")
        fields = []
        if ttype == 0:
            lst = obj.get("list")
            if not isinstance(lst, list):
                raise ValueError("error parsing template fields list")
            for item in lst:
                if not isinstance(item, dict):
                    raise ValueError("bad field entry")
                if item.get("type") == 0 and isinstance(item.get("otpl"), dict):
                    o = item["otpl"]
                    fields.append(Field(int(o["tpl_index"]), int(o["tpl_len"])))
                elif item.get("type") == 1 and isinstance(item.get("utpl"), dict):
                    u = item["utpl"]
                    fields.append(Field(int(u["type"]), int(u["tpl_len"]), int(u["pen"])))
                else:
                    raise ValueError("incorrect field type")
            if len(fields) > MAX_FIELDS:
                raise ValueError("too many fields")
            return cls(agent, sid, tid, fields, options=False)
        tpl = obj.get("tpl")
        if not isinstance(tpl, list):
            raise ValueError("error parsing template fields list")
        total = int(obj["len"])
        pos = 0
        for item in sorted(tpl, key=lambda d: int(d["off"])):
            off, ln, typ = int(item["off"]), int(item["len"]), int(item["type"])
            if off < pos:
                continue
            if off > pos:           # bytes of elements pmacct did not save
                fields.append(Field(0xFFFF, off - pos, 0))
            fields.append(Field(typ, ln))
            pos = off + ln
        if total > pos:
            fields.append(Field(0xFFFF, total - pos, 0))
        if len(fields) > MAX_FIELDS:
            raise ValueError("too many fields")
        return cls(agent, sid, tid, fields, options=True)


class TemplateCache:
    """Templates per (exporter, domain, template id), bounded per exporter and overall."""

    def __init__(self, max_per_exporter: int = DEFAULT_MAX_PER_EXPORTER,
                 max_total: int = DEFAULT_MAX_TOTAL):
        self.max_per_exporter = max_per_exporter
        self.max_total = max_total
        self._t: dict[tuple, Template] = {}
        self._per_exporter: dict[str, int] = {}
        self.dirty = False
        # when a list: (key, previous template or None) is appended before every change,
        # so that the decoder can tell what data sets queued before the change saw
        self.journal: list | None = None
        self.generation = 0         # bumped on every change (a template's wire included)

    def __len__(self):
        return len(self._t)

    def __iter__(self):
        return iter(list(self._t.values()))

    def get(self, exporter: str, domain: int, tid: int) -> Template | None:
        return self._t.get((exporter, domain, tid))

    def put(self, tpl: Template) -> str:
        """Store ``tpl``: returns 'new', 'same', 'changed' or 'full'."""
        key = tpl.key
        old = self._t.get(key)
        if old is not None:
            if old.same_layout(tpl):
                return "same"
            if old.fields == tpl.fields and old.options == tpl.options:
                # same layout, details the templates file does not keep (scope count)
                old.scope_count = tpl.scope_count
                old.wire = tpl.wire
                self.generation += 1
                return "same"
            self.generation += 1
            if self.journal is not None:
                self.journal.append((key, old))
            self._t[key] = tpl
            self.dirty = True
            return "changed"
        n = self._per_exporter.get(tpl.exporter, 0)
        if n >= self.max_per_exporter or len(self._t) >= self.max_total:
            return "full"
        self.generation += 1
        if self.journal is not None:
            self.journal.append((key, None))
        self._t[key] = tpl
        self._per_exporter[tpl.exporter] = n + 1
        self.dirty = True
        return "new"

    def withdraw(self, exporter: str, domain: int, tid: int) -> bool:
        old = self._t.pop((exporter, domain, tid), None)
        if old is None:
            return False
        self.generation += 1
        if self.journal is not None:
            self.journal.append(((exporter, domain, tid), old))
        self._per_exporter[exporter] -= 1
        self.dirty = True
        return True

    def withdraw_all(self, exporter: str, domain: int, options: bool) -> int:
        keys = [k for k, t in self._t.items()
                if k[0] == exporter and k[1] == domain and t.options == options]
        for k in keys:
            self.withdraw(*k)
        return len(keys)

    def clear(self):
        self.generation += 1
        self._t.clear()
        self._per_exporter.clear()
        self.dirty = True

    # --- persistence ---
    def save(self, path: str) -> None:
        """Write every template to ``path`` (atomically), one JSON line each."""
        d = os.path.dirname(os.path.abspath(path))
        import tempfile     # here: only needed with a templates file (start-up CPU)
        fd, tmp = tempfile.mkstemp(prefix=".templates.", dir=d)
        try:
            with os.fdopen(fd, "w") as fh:
                for t in self._t.values():
                    fh.write(json.dumps(t.to_pmacct_json()) + "\n")
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        self.dirty = False

    def load(self, path: str, log=None) -> int:
        """Read templates written by pmacct or by us; bad lines are skipped with a
        warning, as pmacct does. Returns how many were loaded."""
        loaded = 0
        try:
            fh = open(path)
        except OSError:
            if log:
                log.error(f"[{path}] load_templates_from_file(): unable to fopen(). File skipped.")
            return 0
        with fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    tpl = Template.from_pmacct_json(json.loads(line))
                except (ValueError, KeyError, TypeError) as e:
                    if log:
                        log.warn(f"[{path}:{lineno}] load_templates_from_file(): {e}. Line skipped.")
                    continue
                if self.get(*tpl.key) is not None:
                    if log:
                        log.warn(f"load_templates_from_file(): template {tpl.tid} already cached. Skipping.")
                    continue
                if self.put(tpl) == "new":
                    loaded += 1
        self.dirty = False
        return loaded
