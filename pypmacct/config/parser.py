"""The configuration file syntax: turns a file into ``Line`` entries (key, plugin name,
value, where it came from). What the keys mean is the loader's business.

The rules follow pmacct 1.7.7 (checked by running it, see docs/config.md):

- a line whose first non-blank character is ``!`` or ``#`` is a comment; blank lines are
  skipped; there are no comments after a value (``aggregate: src_host ! x`` has the value
  ``src_host ! x``);
- ``key: value`` splits at the first ``:``, so values may hold colons (``nfacctd_ip: ::1``);
- white space in the key is dropped (``Aggregate [a] :`` is ``aggregate[a]``), the key is
  lower-cased, the text inside ``[...]`` is kept as it is (so ``[ a ]`` names the plugin
  " a "), and the value is trimmed at both ends;
- a line with no ``:``, with no key before it, with unbalanced or nested brackets, or with
  a ``:`` inside brackets before the first ``:`` is a syntax error.

pypmacct adds one thing: a line ending in ``\\`` continues on the next line (the backslash
is removed, the next line's leading white space too). Comment lines inside a continued
line are skipped; a blank line or the end of the file ends it. pmacct 1.7.7 has no
continuation and would reject the second line as having no ``:``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from .errors import ConfigError

# pmacct 1.7.7 reads at most 8224 lines (and drops the rest with an error line); we refuse.
MAX_LINES = 8224


@dataclass(frozen=True)
class Line:
    key: str                 # lower-cased, no white space
    name: str | None         # plugin name inside [...], or None
    value: str               # trimmed
    where: str               # "file:line" or "cmdline -X"
    switch: str | None = None


def is_comment(text: str) -> bool:
    s = text.lstrip()
    return s[:1] in ("!", "#")


def split_line(text: str, where: str) -> Line:
    """Split one logical line ``key[name]: value`` with pmacct's checks."""
    colon = text.find(":")
    if colon < 0:
        raise ConfigError("syntax error: missing ':'", where=where)
    head, value = text[:colon], text[colon + 1:].strip()
    depth = 0
    key_chars, name_chars = [], []
    seen_name = False
    for c in head:
        if c == "[":
            if depth or seen_name:
                raise ConfigError("syntax error: nested or repeated brackets", where=where)
            if not "".join(key_chars).strip():
                raise ConfigError("syntax error: plugin name not attached to a key",
                                  where=where)
            depth = 1
            continue
        if c == "]":
            if not depth:
                raise ConfigError("syntax error: unbalanced brackets", where=where)
            depth, seen_name = 0, True
            continue
        if depth:
            name_chars.append(c)
        elif seen_name:
            if not c.isspace():
                raise ConfigError(f"syntax error: unexpected text after ']' in '{head.strip()}'",
                                  where=where)
        elif not c.isspace():
            key_chars.append(c)
    if depth:
        # the first ':' sits inside brackets, or the brackets are never closed
        raise ConfigError("syntax error: illegal or unbalanced brackets", where=where)
    key = "".join(key_chars).lower()
    if not key:
        raise ConfigError("syntax error: missing key", where=where)
    return Line(key, "".join(name_chars) if seen_name else None, value, where)


def read_lines(path: str) -> list[Line]:
    """Read a configuration file into Lines; ``ConfigError`` on any syntax error."""
    if not os.path.exists(path):
        raise ConfigError("file not found", where=path)
    if not os.path.isfile(path):
        raise ConfigError("path is not a regular file", where=path)
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as fh:
            physical = fh.read().splitlines()
    except OSError as e:
        raise ConfigError(f"cannot read the file: {e.strerror}", where=path) from None
    if len(physical) > MAX_LINES:
        raise ConfigError(f"more than {MAX_LINES} lines", where=path)

    out: list[Line] = []
    pending: list[str] = []      # parts of a continued line
    start = 0                    # its first line number
    for number, text in enumerate(physical, 1):
        if pending:
            if not text.strip():
                out.append(split_line("".join(pending), f"{path}:{start}"))
                pending = []
                continue
            if is_comment(text):
                continue
            text = text.lstrip()
        elif not text.strip() or is_comment(text):
            continue
        else:
            start = number
        stripped = text.rstrip()
        if stripped.endswith("\\"):
            pending.append(stripped[:-1])
            continue
        pending.append(text)
        out.append(split_line("".join(pending), f"{path}:{start}"))
        pending = []
    if pending:
        out.append(split_line("".join(pending), f"{path}:{start}"))
    return out
