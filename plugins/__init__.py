"""Plugins, by the type name used in 'plugins:'. Modules are imported on first use so
that a daemon only loads the client libraries of the plugins it runs."""
from __future__ import annotations

import importlib
from collections.abc import Mapping

_MODULES = {
    "print": ("pypmacct.plugins.print_plugin", "PrintPlugin"),
    "memory": ("pypmacct.plugins.memory_plugin", "MemoryPlugin"),
    "mysql": ("pypmacct.plugins.sql_plugin", "MySQLPlugin"),
    "pgsql": ("pypmacct.plugins.sql_plugin", "PgSQLPlugin"),
    "sqlite3": ("pypmacct.plugins.sql_plugin", "SQLite3Plugin"),
    "tee": ("pypmacct.plugins.tee_plugin", "TeePlugin"),
    "nfprobe": ("pypmacct.plugins.nfprobe_plugin", "NfprobePlugin"),
}


class _Registry(Mapping):
    def __getitem__(self, name):
        module, cls = _MODULES[name]
        return getattr(importlib.import_module(module), cls)

    def __iter__(self):
        return iter(_MODULES)

    def __len__(self):
        return len(_MODULES)


PLUGIN_CLASSES = _Registry()
