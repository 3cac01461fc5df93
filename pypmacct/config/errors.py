"""The one exception the configuration layer raises."""
from __future__ import annotations


class ConfigError(Exception):
    """A configuration problem that stops start-up.

    ``str(e)`` is the whole message: where (``[file:line]`` or ``[cmdline -X]``), which key,
    what is wrong and, when a close match exists, a suggestion. ``where``, ``key`` and
    ``suggestion`` are kept as attributes for callers and tests. ``usage`` carries the
    ``-h`` text when the problem is a bad command-line switch (pmacct prints its usage then).
    """

    def __init__(self, message: str, *, where: str | None = None, key: str | None = None,
                 suggestion: str | None = None, usage: str | None = None):
        text = message
        if suggestion:
            text = f"{text}. Did you mean '{suggestion}'?"
        if where:
            text = f"[{where}] {text}"
        super().__init__(text)
        self.where = where
        self.key = key
        self.suggestion = suggestion
        self.usage = usage
