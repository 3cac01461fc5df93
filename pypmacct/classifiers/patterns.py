"""L7-filter pattern files (``*.pat``) and their regular-expression dialect.

A pattern file, as pmacct 0.10-1.5 read it: lines shorter than two characters (a bare
newline) and lines starting with ``#`` are skipped; the first remaining line is the
protocol name, the next one the pattern; anything after it is ignored (l7-filter's
``userspace pattern=`` lines, for instance). The protocol name is at most 15 characters
(pmacct's 16-byte field with its NUL).

The pattern goes through l7-filter's pre-processing: every ``\\xHH`` becomes the byte it
names and the whole pattern is lowercased (ASCII only). The result is a regular
expression in Henry Spencer's dialect (the one l7-filter's kernel module and pmacct
compiled it with), which :func:`translate` turns into a Python ``re`` pattern over
bytes:

- ``^`` and ``$`` anchor at the start and the end of the payload only;
- ``.`` is any byte; ``[...]`` and ``[^...]`` sets take ranges and no escapes (a
  backslash inside brackets is a backslash; ``]`` first and ``-`` first or last are
  literal);
- ``\\c`` outside brackets is the character c itself (no ``\\d``, ``\\w``...);
- ``*``, ``+``, ``?``, ``|`` and ``(...)``; braces are ordinary characters;
- a byte produced by ``\\xHH`` is a regex character like any other (``\\x2e`` is a
  dot that matches anything, as in l7-filter), and ``\\x00`` ends the pattern (it did
  in C);
- errors where Spencer's compiler gives one: an unmatched ``(``/``)``/``[``, a trailing
  backslash, a repetition that follows nothing, a nested repetition (``a**``, ``a*?``),
  a ``*`` or ``+`` over something that can match empty (``(a*)*``), a bad range.

The payload a pattern is matched against is prepared as pmacct did (see
:func:`prepare_payload`): NUL bytes removed, ASCII lowercased, at most ``snaplen`` bytes
kept; the match may start anywhere (``re.search``).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass

MAX_PROTOCOL_LEN = 15          # pmacct: char protocol[16]
MAX_PATTERN_LEN = 2047         # pmacct: fgets() into a 2048-byte line
_HEX = b"0123456789abcdefABCDEF"


class PatternError(ValueError):
    """A pattern file that cannot be used; the message names the file."""


@dataclass(frozen=True)
class Classifier:
    id: int                    # 1, 2, ... in load order (pmacct's ids)
    protocol: str
    regex: "re.Pattern[bytes]"
    path: str


def pre_process(pattern: bytes) -> bytes:
    """l7-filter's pre-processing: ``\\xHH`` to the byte, then ASCII lowercase; a NUL
    (from ``\\x00``) ends the pattern as it ended the C string."""
    out = bytearray()
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == 0x5C and i + 3 < n and pattern[i + 1] == 0x78 \
                and pattern[i + 2] in _HEX and pattern[i + 3] in _HEX:
            out.append(int(pattern[i + 2:i + 4], 16))
            i += 4
        else:
            out.append(c)
            i += 1
    nul = out.find(0)
    if nul >= 0:
        del out[nul:]
    return bytes(out).lower()


class _Parser:
    """Henry Spencer's regexp grammar (reg/regbranch/regpiece/regatom) emitting a
    Python pattern; each piece knows whether it always consumes a byte (HASWIDTH)."""

    def __init__(self, src: bytes):
        self.s = src
        self.i = 0

    def peek(self) -> int | None:
        return self.s[self.i] if self.i < len(self.s) else None

    def fail(self, msg: str):
        raise PatternError(msg)

    def parse(self) -> str:
        out, _ = self.reg(top=True)
        if self.i < len(self.s):
            self.fail("unmatched ()" if self.s[self.i] == 0x29 else "junk on end")
        return out

    def reg(self, top: bool):
        branches, width = [], True
        while True:
            b, w = self.branch()
            branches.append(b)
            width = width and w
            if self.peek() != 0x7C:        # |
                break
            self.i += 1
        if not top:
            if self.peek() != 0x29:
                self.fail("unmatched ()")
            self.i += 1
        return "|".join(branches), width

    def branch(self):
        parts, width = [], False
        while self.peek() not in (None, 0x7C, 0x29):
            p, w = self.piece()
            parts.append(p)
            width = width or w
        return "".join(parts), width

    def piece(self):
        atom, width = self.atom()
        op = self.peek()
        if op not in (0x2A, 0x2B, 0x3F):    # * + ?
            return atom, width
        if not width and op != 0x3F:
            self.fail("*+ operand could be empty")
        self.i += 1
        if self.peek() in (0x2A, 0x2B, 0x3F):
            self.fail("nested *?+")
        return f"(?:{atom}){chr(op)}", op == 0x2B

    def atom(self):
        c = self.peek()
        self.i += 1
        if c == 0x5E:                        # ^
            return r"\A", False
        if c == 0x24:                        # $
            return r"\Z", False
        if c == 0x2E:                        # .
            return ".", True
        if c == 0x5B:                        # [
            return self.bracket(), True
        if c == 0x28:                        # (
            inner, w = self.reg(top=False)
            return f"(?:{inner})", w
        if c in (0x7C, 0x29):
            self.fail("internal urp")
        if c in (0x2A, 0x2B, 0x3F):
            self.fail("?+* follows nothing")
        if c == 0x5C:                        # backslash: the next character itself
            if self.i >= len(self.s):
                self.fail("trailing \\")
            c = self.s[self.i]
            self.i += 1
        return _lit(c), True

    def bracket(self) -> str:
        neg = False
        if self.peek() == 0x5E:
            neg = True
            self.i += 1
        members: set[int] = set()
        if self.peek() in (0x5D, 0x2D):      # ] or - first: literal
            members.add(self.s[self.i])
            self.i += 1
        while self.peek() not in (None, 0x5D):
            c = self.s[self.i]
            if c == 0x2D:                    # -
                nxt = self.s[self.i + 1] if self.i + 1 < len(self.s) else None
                if nxt in (None, 0x5D):
                    members.add(c)
                    self.i += 1
                    continue
                lo = self.s[self.i - 1] + 1
                hi = nxt
                if lo > hi + 1:
                    self.fail("invalid [] range")
                members.update(range(lo, hi + 1))
                self.i += 2
                continue
            members.add(c)
            self.i += 1
        if self.peek() != 0x5D:
            self.fail("unmatched []")
        self.i += 1
        if neg:
            members = set(range(1, 256)) - members      # Spencer's ANYBUT: never NUL
        if not members:
            return "(?!)"
        return "[" + "".join(_range_text(a, b) for a, b in _runs(sorted(members))) + "]"


def _lit(c: int) -> str:
    return f"\\x{c:02x}"


def _runs(vals):
    start = prev = vals[0]
    for v in vals[1:]:
        if v == prev + 1:
            prev = v
            continue
        yield start, prev
        start = prev = v
    yield start, prev


def _range_text(a: int, b: int) -> str:
    return _lit(a) if a == b else f"{_lit(a)}-{_lit(b)}"


def translate(pattern: bytes) -> str:
    """A Spencer regexp (already pre-processed) as a Python ``re`` pattern over bytes;
    raises PatternError as Spencer's regcomp() would fail."""
    if not pattern:
        return ""                 # (a pattern that was only \\x00): matches anything
    return _Parser(pattern).parse()


def compile_pattern(line: bytes) -> "re.Pattern[bytes]":
    """An l7-filter pattern line (as written in the file) compiled for matching."""
    py = translate(pre_process(line))
    try:
        return re.compile(py.encode("latin-1"), re.DOTALL)
    except re.error as e:                 # should not happen: translate() emits valid re
        raise PatternError(str(e)) from None


def prepare_payload(payload: bytes, snaplen: int) -> bytes:
    """The text pmacct matched: NULs dropped, ASCII lowercased, ``snaplen`` bytes."""
    return payload.replace(b"\0", b"")[:snaplen].lower()


def parse_pattern_file(path: str) -> tuple[str, "re.Pattern[bytes]"]:
    """(protocol, compiled regex) of one ``.pat`` file; PatternError says why not."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as e:
        raise PatternError(f"cannot read {path}: {e.strerror}") from None
    protocol = None
    for no, raw in enumerate(data.split(b"\n"), 1):
        line = raw[:-1] if raw.endswith(b"\r") else raw
        if len(line) < 1 or line.startswith(b"#"):
            continue
        if protocol is None:
            name = line.decode("latin-1")
            if len(name) > MAX_PROTOCOL_LEN:
                raise PatternError(f"{path}:{no}: protocol name too long. A maximum of "
                                   f"{MAX_PROTOCOL_LEN} chars is allowed")
            protocol = name
            continue
        if len(line) > MAX_PATTERN_LEN:
            raise PatternError(f"{path}:{no}: pattern too long. A maximum of "
                               f"{MAX_PATTERN_LEN} chars is allowed")
        try:
            return protocol, compile_pattern(line)
        except PatternError as e:
            raise PatternError(f"{path}:{no}: failed compiling regular expression for "
                               f"protocol '{protocol}': {e}") from None
    raise PatternError(f"failed to get all needed data from {path}")


def load_classifiers(path: str, log=None, table_num: int = 256) -> list[Classifier]:
    """Every regular ``*.pat`` file of directory ``path``, in file-name order, ids from
    1. A file that fails is logged (ERROR) and skipped, as pmacct did; ``*.so`` files
    (pmacct's shared-object classifiers) are skipped with a warning. A directory that
    cannot be read raises OSError."""
    try:
        names = sorted(os.listdir(path))
    except OSError as e:
        raise OSError(f"Unable to open classifiers directory '{path}': {e.strerror}") from None
    out: list[Classifier] = []
    for name in names:
        full = os.path.join(path, name)
        if not (name.endswith(".pat") or name.endswith(".so")) or not os.path.isfile(full):
            continue
        if name.endswith(".so"):
            if log is not None:
                log.warn(f"shared object classifier '{full}' not supported (pattern files "
                         "only). Skipped.")
            continue
        if len(out) >= table_num:
            if log is not None:
                log.warn(f"no more room for classifiers (classifier_table_num: {table_num}); "
                         f"'{full}' and the files after it are not loaded")
            break
        try:
            protocol, regex = parse_pattern_file(full)
        except PatternError as e:
            if log is not None:
                log.error(f"{e}. Skipped.")
            continue
        out.append(Classifier(len(out) + 1, protocol, regex, full))
        if log is not None:
            log.debug(f"reading {full} classifier: '{protocol}'")
    if log is not None:
        log.info(f"{len(out)} classifiers successfully loaded from {path}")
    return out
