"""Maps: pre_tag_map and friends (see docs/maps.md)."""
from __future__ import annotations


def logical_lines(lines):
    """(first line number, text) of each line of a map that is not blank or a comment
    ('!' or '#'), with pmacct's continuations (a line ending in a backslash goes on in
    the next one) joined by a space."""
    i, n = 0, len(lines)
    while i < n:
        start = i
        text = lines[i].rstrip("\r")
        i += 1
        while text.rstrip().endswith("\\") and i < n:
            text = text.rstrip()[:-1] + " " + lines[i].rstrip("\r")
            i += 1
        s = text.strip()
        if s and not s.startswith("!") and not s.startswith("#"):
            yield start + 1, s
