"""Value types of configuration keys: each turns the text after ``key:`` into a typed value
or raises ``ValueError`` with a short reason (the loader adds file, line and key).

The accepted spellings follow pmacct 1.7.7's handlers (``cfg_handlers.c``), except that we
are strict where pmacct reads a number with ``atoi`` and silently drops what follows it
(``plugin_pipe_size: 10M`` is 10 bytes for pmacct, an error here).
"""
from __future__ import annotations

import difflib
import ipaddress
import re

from pypmacct.primitives import AggregateError, parse_aggregate
from pypmacct.timebins import HistoryError, parse_history


def close_match(word: str, choices) -> str | None:
    """The most similar of ``choices`` to ``word``, if any is similar enough."""
    found = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return found[0] if found else None


class ValueType:
    """Base: ``parse(text, daemon)`` returns the typed value; ``values`` says in a few
    words what is accepted (used in messages and documentation)."""

    values = "a string"

    def parse(self, text: str, daemon: str):
        if text == "":
            raise ValueError("a value is required")
        return text


class Text(ValueType):
    values = "a string"


class Path(ValueType):
    values = "a path"


class Bool(ValueType):
    """``true`` or ``false``, in any letter case (pmacct lower-cases the value first)."""

    values = "true | false"

    def parse(self, text, daemon):
        low = text.lower()
        if low == "true":
            return True
        if low == "false":
            return False
        raise ValueError(f"'{text}' is not a boolean: expected true or false")


class Int(ValueType):
    """A decimal integer within ``[lo, hi]`` (either bound may be open)."""

    def __init__(self, lo: int | None = None, hi: int | None = None):
        self.lo, self.hi = lo, hi

    @property
    def values(self):
        if self.lo is not None and self.hi is not None:
            return f"an integer from {self.lo} to {self.hi}"
        if self.lo is not None:
            return f"an integer >= {self.lo}"
        return "an integer"

    def parse(self, text, daemon):
        if not re.fullmatch(r"-?\d+", text):
            raise ValueError(f"'{text}' is not {self.values}")
        n = int(text)
        if (self.lo is not None and n < self.lo) or (self.hi is not None and n > self.hi):
            raise ValueError(f"{n} is out of range: expected {self.values}")
        return n


class IntAnyBase(Int):
    """An integer written as C's strtol(value, NULL, 0) reads it: decimal, 0x hex or
    0 octal, within ``[lo, hi]``."""

    def parse(self, text, daemon):
        try:
            n = int(text, 0) if not re.fullmatch(r"0\d+", text) else int(text, 8)
        except ValueError:
            raise ValueError(f"'{text}' is not {self.values} (decimal or 0x hex)") from None
        if (self.lo is not None and n < self.lo) or (self.hi is not None and n > self.hi):
            raise ValueError(f"{n} is out of range: expected {self.values}")
        return n


class Choice(ValueType):
    """One word out of a fixed set, compared case-insensitively unless ``case=True``.

    ``unsupported`` lists words pmacct accepts but pypmacct does not: they get their own
    message instead of "not a valid value".
    """

    def __init__(self, choices, unsupported=(), case: bool = False):
        self.choices = tuple(choices)
        self.unsupported = tuple(unsupported)
        self.case = case

    @property
    def values(self):
        return " | ".join(self.choices)

    def parse(self, text, daemon):
        word = text if self.case else text.lower()
        if word in self.choices:
            return word
        if word in self.unsupported:
            raise ValueError(f"'{text}' is accepted by pmacct 1.7.7 but not supported by "
                             f"pypmacct (supported: {self.values})")
        hint = close_match(word, self.choices + self.unsupported)
        extra = f"; did you mean '{hint}'?" if hint else ""
        raise ValueError(f"'{text}' is not one of {self.values}{extra}")


class IPAddress(ValueType):
    """A numeric IPv4 or IPv6 address (pmacct binds with inet_pton: no host names)."""

    values = "an IPv4 or IPv6 address"

    def parse(self, text, daemon):
        try:
            return str(ipaddress.ip_address(text))
        except ValueError:
            raise ValueError(f"'{text}' is not an IPv4 or IPv6 address") from None


class AddressList(ValueType):
    """Comma-separated numeric IPv4/IPv6 addresses (multicast groups to join)."""

    values = "comma-separated IPv4 or IPv6 addresses"

    def parse(self, text, daemon):
        out = []
        for part in text.split(","):
            part = part.strip()
            try:
                out.append(str(ipaddress.ip_address(part)))
            except ValueError:
                raise ValueError(f"'{part}' is not an IPv4 or IPv6 address") from None
        if len(out) > 20:
            raise ValueError("at most 20 multicast groups can be joined")
        return tuple(out)


class Aggregate(ValueType):
    """A comma-separated list of primitives, checked against what ``daemon`` offers.
    White space anywhere is dropped and names are lower-cased, as pmacct does."""

    values = "a comma-separated list of primitives (see -a)"

    def parse(self, text, daemon):
        flat = re.sub(r"\s+", "", text).lower()
        try:
            return parse_aggregate(flat, daemon)
        except AggregateError as e:
            raise ValueError(str(e)) from None


class History(ValueType):
    """A time-bin length: a number and a unit (s m h d w M). A bare number is seconds, as
    in pmacct, and seconds must make whole minutes (pmacct's finest bin is a minute).
    Returned normalised, e.g. ``300`` -> ``'5m'``, ``'1h'`` -> ``'1h'``."""

    values = "<n>[s|m|h|d|w|M], e.g. 5m, 1h, 1d (bare number: seconds)"

    def parse(self, text, daemon):
        m = re.fullmatch(r"(\d+)([smhdwM]?)", text)
        if not m or int(m.group(1)) == 0:
            raise ValueError(f"'{text}' is not a time-bin length ({self.values})")
        n, unit = int(m.group(1)), m.group(2) or "s"
        if unit == "s":
            if n % 60:
                raise ValueError(f"'{text}': a time bin must be a whole number of minutes")
            n, unit = n // 60, "m"
        value = f"{n}{unit}"
        try:
            parse_history(value)
        except HistoryError as e:
            raise ValueError(str(e)) from None
        return value


class Roundoff(ValueType):
    """Round-off letters for time bins: any of m h d w M; 'w' cannot be combined with
    'd' or 'M' (pmacct refuses that combination too)."""

    values = "letters out of m, h, d, w, M"

    def parse(self, text, daemon):
        bad = sorted(set(text) - set("mhdwM"))
        if not text or bad:
            raise ValueError(f"'{text}' is not a round-off ({self.values})")
        if "w" in text and ("d" in text or "M" in text):
            raise ValueError("round-off 'w' cannot be combined with 'd' or 'M'")
        return text


class Separator(ValueType):
    """A single character, or ``\\t`` (tab) or ``\\s`` (space); returned as the character."""

    values = "one character, \\t or \\s"

    def parse(self, text, daemon):
        if text == "\\t":
            return "\t"
        if text == "\\s":
            return " "
        if len(text) != 1:
            raise ValueError(f"'{text}' is not a single character (use \\t for tab, "
                             f"\\s for space)")
        return text


class FilePattern(ValueType):
    """A file name that may hold strftime-like variables; only the ones pmacct 1.7.7
    expands (%d %H %m %M %w %W %Y %s %S %z, at most 32 of them) are allowed."""

    values = "a path, may contain %Y %m %d %H %M %S %s %w %W %z"
    ALLOWED = set("dHmMwWYsSz")

    def parse(self, text, daemon):
        text = super().parse(text, daemon)
        found = re.findall(r"%(.?)", text)
        for c in found:
            if c not in self.ALLOWED:
                raise ValueError(f"'%{c}' is not a supported file name variable")
        if len(found) > 32:
            raise ValueError("more than 32 variables in the file name")
        return text


class PlainPath(ValueType):
    """A path without time-based % variables (pmacct refuses them here)."""

    values = "a path, no % variables"

    def parse(self, text, daemon):
        text = super().parse(text, daemon)
        if "%" in text:
            raise ValueError("time-based '%' variables are not allowed here")
        return text


SYSLOG_FACILITIES = ("auth", "mail", "daemon", "kern", "user",
                     "local0", "local1", "local2", "local3", "local4", "local5", "local6",
                     "local7")


class PluginList(ValueType):
    """``type[name], type, ...``: returned as a tuple of (type, name or None); the loader
    turns it into plugin instances. Types are lower-cased and names trimmed, as pmacct."""

    values = "a comma-separated list of plugin[name]"

    def parse(self, text, daemon):
        out = []
        for token in text.split(","):
            if not token.strip():
                continue
            m = re.fullmatch(r"\s*([^\[\]]*?)\s*(?:\[([^\[\]]*)\])?\s*", token)
            if not m or not m.group(1):
                raise ValueError(f"'{token.strip()}' is not of the form type or type[name]")
            name = m.group(2)
            if name is not None:
                name = name.strip()
                if not name:
                    raise ValueError(f"'{token.strip()}': empty plugin name")
            out.append((m.group(1).lower(), name))
        if not out:
            raise ValueError("no plugin listed")
        return tuple(out)


class Umask(ValueType):
    """An octal file-creation mask; pmacct refuses masks below 002 (world-writable files)."""

    values = "an octal mask, 002 or more (e.g. 077)"

    def parse(self, text, daemon):
        if not re.fullmatch(r"[0-7]{1,4}", text):
            raise ValueError(f"'{text}' is not an octal mask")
        n = int(text, 8)
        if n < 0o2:
            raise ValueError(f"mask {text} is below 002: refused for security reasons")
        return n


class Owner(ValueType):
    """A user (``kind='user'``) or group name or numeric id, resolved to the id."""

    def __init__(self, kind: str):
        self.kind = kind
        self.values = f"a {kind} name or numeric id"

    def parse(self, text, daemon):
        if re.fullmatch(r"\d+", text):
            return int(text)
        import grp
        import pwd
        try:
            if self.kind == "user":
                return pwd.getpwnam(text).pw_uid
            return grp.getgrnam(text).gr_gid
        except KeyError:
            raise ValueError(f"no such {self.kind} '{text}'") from None
