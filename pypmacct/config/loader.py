"""Builds a daemon's configuration from its command line and configuration file.

Lines are applied in order, file first, then switches, as pmacct 1.7.7 does:

- a global line (``key: value``) sets the key for the core process and every plugin;
- a scoped line (``key[name]: value``) sets it for that one plugin (or for the core, if
  ``name`` is the core's name);
- a later line overrides an earlier one for the instances it touches. So a scoped value
  stands until a later global line for the same key overrides it, and switches, being
  last, override the file.

``plugins`` is the exception: it is read first, from its first occurrence, and creates
the plugin instances; a second declaration is an error here (pmacct 1.7.7 keeps the first
and ignores the rest with a warning).
"""
from __future__ import annotations

import os

from pypmacct import PMACCT_COMPAT

from .cli import DAEMONS, help_text, parse_argv, primitives_text, version_text
from .errors import ConfigError
from .parser import Line, read_lines
from .registry import (ALL_NAMES, GLOBAL, IMPLEMENTED_PLUGINS, PLUGIN, PLUGIN_TYPES,
                       PLUGINS_NOT_IN, Key, lookup)
from .values import close_match

CORE_NAME = "default"


class _Instance:
    """Values set for the core or one plugin: canonical key -> (value, where)."""

    def __init__(self, daemon: str, name: str, type_: str):
        self.daemon, self.name, self.type = daemon, name, type_
        self._values: dict[str, tuple] = {}

    def _key(self, name: str) -> Key:
        key = lookup(name)
        if key is None:
            raise KeyError(f"no configuration key named '{name}'")
        return key

    def get(self, name: str):
        """The typed value of a key (any of its names): set value, else the default."""
        key = self._key(name)
        if key.name in self._values:
            return self._values[key.name][0]
        return key.default_for(self.daemon)

    def is_set(self, name: str) -> bool:
        return self._key(name).name in self._values

    def where(self, name: str) -> str | None:
        """Where the value came from ("file:line" or "cmdline -X"), None for a default."""
        entry = self._values.get(self._key(name).name)
        return entry[1] if entry else None

    def _set(self, key: Key, value, where: str) -> None:
        self._values[key.name] = (value, where)


class PluginConfig(_Instance):
    """One plugin instance: ``name`` (``default_<type>`` when none is given, as pmacct),
    ``type`` and its values."""

    def __repr__(self):
        return f"PluginConfig({self.name!r}, {self.type!r})"


class DaemonConfig(_Instance):
    """The whole configuration: the core's values (``get``), the plugins, and for -h, -V
    and -a the ``action`` and the ``text`` to print."""

    def __init__(self, daemon: str, action: str = "run", text: str = "",
                 config_file: str | None = None):
        super().__init__(daemon, CORE_NAME, "core")
        self.action = action
        self.text = text
        self.config_file = config_file
        self.plugins: list[PluginConfig] = []
        self.warnings: list[str] = []
        self.custom_primitives: list = []   # aggregate_primitives definitions

    def plugin(self, name: str) -> PluginConfig:
        for p in self.plugins:
            if p.name == name:
                return p
        raise KeyError(name)

    def __repr__(self):
        return f"DaemonConfig({self.daemon!r}, plugins={self.plugins!r})"


def load_config(daemon: str, argv: list[str], prog: str | None = None) -> DaemonConfig:
    """Parse ``argv`` (without the program name) and the ``-f`` file, if any, for
    ``daemon``; ``prog`` is the program name shown by -h (default: ``daemon``)."""
    if daemon not in DAEMONS:
        raise ValueError(f"unknown daemon '{daemon}' (known: {', '.join(DAEMONS)})")
    args = parse_argv(daemon, argv, prog)
    if args.action == "help":
        return DaemonConfig(daemon, "help", help_text(daemon, prog))
    if args.action == "version":
        return DaemonConfig(daemon, "version", version_text(daemon))
    if args.action == "list_primitives":
        return DaemonConfig(daemon, "list_primitives", primitives_text(daemon))

    lines = list(read_lines(args.config_file)) if args.config_file else []
    lines += args.lines
    cfg = DaemonConfig(daemon, config_file=(os.path.realpath(args.config_file)
                                            if args.config_file else None))
    if args.operands:
        if daemon == "pmacctd" and not args.config_file:
            # pmacctd takes what follows the options as a capture filter
            lines.append(Line("pcap_filter", None, " ".join(args.operands), "cmdline filter"))
        else:
            cfg.warnings.append(f"[cmdline] ignoring extra arguments: {' '.join(args.operands)}")

    if args.config_file:
        # pmacct names the core after the first core_proc_name line of the file
        named = [ln for ln in lines if ln.key == "core_proc_name" and ln.value]
        if named:
            cfg.name = named[0].value
    _load_custom_primitives(cfg, lines)
    plugins_line = _create_plugins(cfg, lines, from_file=bool(args.config_file))
    for line in lines:
        if line is not plugins_line:
            _apply(cfg, line)
    _check(cfg)
    return cfg


def _load_custom_primitives(cfg: DaemonConfig, lines: list[Line]) -> None:
    """aggregate_primitives first: the aggregate lines may name its primitives."""
    from .. import primitives as P
    from ..maps.custom_primitives import columns_for, read_primitives
    from ..output.columns import set_custom
    from .. import record as R
    P.CUSTOM_PRIMITIVES.clear()
    set_custom(())
    R.STRING_FIELDS.intersection_update(R.BASE_STRING_FIELDS)
    decl = [ln for ln in lines if ln.key == "aggregate_primitives" and ln.value]
    if not decl:
        return
    line = decl[-1]
    try:
        prims = read_primitives(line.value, set(P.PRIMITIVES))
    except OSError as e:
        raise ConfigError(f"cannot read aggregate_primitives '{line.value}': {e.strerror}",
                          where=line.where, key="aggregate_primitives") from None
    except ValueError as e:
        raise ConfigError(f"aggregate_primitives '{line.value}' {e}", where=line.where,
                          key="aggregate_primitives") from None
    ptr = [p for p in prims if p.packet_ptrs]
    if cfg.daemon == "uacctd":
        # uacctd: the IP packet's layers only (1.7.7 puts NFLOG's hardware header, or a
        # zeroed Ethernet header, in front of it: not reproduced)
        bad = [(p, ly) for p in ptr for ly, _, _ in p.packet_ptrs
               if ly not in ("l3", "l4", "payload")]
        if bad:
            p, ly = bad[0]
            raise ConfigError(f"aggregate_primitives '{line.value}' line {p.lineno}: "
                              f"packet_ptr layer '{ly}' is not supported by uacctd in "
                              f"pypmacct yet (l3, l4 and payload are)", where=line.where,
                              key="aggregate_primitives")
        ptr = []
    if ptr and cfg.daemon not in ("pmacctd", "sfacctd"):
        what = {"nfacctd": "the packet sections of NetFlow v9/IPFIX (dataLinkFrameSection)",
                }.get(cfg.daemon, cfg.daemon)
        raise ConfigError(f"aggregate_primitives '{line.value}' line {ptr[0].lineno}: "
                          f"packet_ptr is not supported on {what} by pypmacct yet (pmacctd, "
                          f"uacctd and sfacctd only)", where=line.where,
                          key="aggregate_primitives")
    P.CUSTOM_PRIMITIVES.update({p.name: p for p in prims})
    R.STRING_FIELDS.update(p.name for p in prims if p.semantics in ("str", "raw"))
    set_custom(columns_for(prims))
    cfg.custom_primitives = prims


def _create_plugins(cfg: DaemonConfig, lines: list[Line], from_file: bool) -> Line | None:
    decl = [ln for ln in lines if ln.key == "plugins"]
    if not decl:
        if "memory" not in IMPLEMENTED_PLUGINS:
            raise ConfigError("no plugin configured ('plugins' or -P): pmacct would start the "
                              "memory plugin, which is not implemented yet; "
                              "set e.g. 'plugins: print'", key="plugins")
        cfg.warnings.append("no plugin configured; defaulting to the memory plugin")
        cfg.plugins.append(PluginConfig(cfg.daemon, "default_memory", "memory"))
        return None
    first = decl[0]
    if len(decl) > 1:
        raise ConfigError(f"'plugins' is already declared at [{first.where}] (pmacct 1.7.7 "
                          f"would keep that one and ignore this one)",
                          where=decl[1].where, key="plugins")
    if first.name is not None:
        raise ConfigError("'plugins' is a global key: it cannot be given for one plugin",
                          where=first.where, key="plugins")
    key = lookup("plugins")
    try:
        entries = key.type.parse(first.value, cfg.daemon)
    except ValueError as e:
        raise ConfigError(f"invalid value for 'plugins': {e}", where=first.where,
                          key="plugins") from None
    seen = {cfg.name: "core"}
    for type_, name in entries:
        if type_ == "core":
            raise ConfigError("plugins of type 'core' are not allowed", where=first.where,
                              key="plugins")
        if type_ not in PLUGIN_TYPES:
            raise ConfigError(f"unknown plugin type '{type_}'", where=first.where,
                              key="plugins", suggestion=close_match(type_, PLUGIN_TYPES))
        if type_ in PLUGINS_NOT_IN.get(cfg.daemon, ()):
            raise ConfigError(f"plugin '{type_}' is not supported by {cfg.daemon}",
                              where=first.where, key="plugins")
        if type_ not in IMPLEMENTED_PLUGINS:
            raise ConfigError(f"plugin '{type_}' is not implemented yet", where=first.where,
                              key="plugins")
        if name is not None and not from_file:
            # pmacct drops plugin names given on the command line alone
            cfg.warnings.append(f"[{first.where}] plugin name '{name}' ignored without a "
                                f"configuration file: the plugin is 'default_{type_}'")
            name = None
        if name is None:
            name = f"default_{type_}"
        if name in seen:
            raise ConfigError(f"plugin name '{name}' is used twice (pmacct 1.7.7 would drop "
                              f"the second plugin)", where=first.where, key="plugins")
        seen[name] = type_
        cfg.plugins.append(PluginConfig(cfg.daemon, name, type_))
    key_value = tuple((p.type, p.name) for p in cfg.plugins)
    cfg._set(key, key_value, first.where)
    return first


def _apply(cfg: DaemonConfig, line: Line) -> None:
    key = lookup(line.key)
    if key is None:
        raise ConfigError(f"unknown key '{line.key}'", where=line.where, key=line.key,
                          suggestion=close_match(line.key, ALL_NAMES))
    if not key.applies_to(cfg.daemon):
        cfg.warnings.append(f"[{line.where}] key '{line.key}' does not apply to "
                            f"{cfg.daemon}; ignored")
        return
    if not key.implemented:
        raise ConfigError(f"'{line.key}' is a pmacct {PMACCT_COMPAT} key that pypmacct does not "
                          f"implement yet", where=line.where, key=line.key)
    if line.name is not None and key.scope == GLOBAL:
        raise ConfigError(f"'{line.key}' is a global key: it cannot be given for one plugin "
                          f"('{line.key}[{line.name}]')", where=line.where, key=line.key)
    if line.name is None and key.scope == PLUGIN:
        raise ConfigError(f"'{line.key}' can only be given for a plugin, as "
                          f"'{line.key}[name]: value'", where=line.where, key=line.key)
    if line.name is None:
        targets = [cfg, *cfg.plugins]
    elif line.name == cfg.name:
        targets = [cfg]
    else:
        targets = [p for p in cfg.plugins if p.name == line.name]
        if not targets:
            names = [p.name for p in cfg.plugins]
            hint = line.name.strip() if line.name.strip() in names else \
                close_match(line.name, names)
            raise ConfigError(f"'{line.key}[{line.name}]' names no plugin (plugins: "
                              f"{', '.join(names)})", where=line.where, key=line.key,
                              suggestion=hint)
    if line.value == "":
        raise ConfigError(f"invalid value for '{line.key}': a value is required",
                          where=line.where, key=line.key)
    try:
        value = key.type.parse(line.value, cfg.daemon)
    except ValueError as e:
        raise ConfigError(f"invalid value for '{line.key}': {e}", where=line.where,
                          key=line.key) from None
    for inst in targets:
        inst._set(key, value, line.where)


def _check(cfg: DaemonConfig) -> None:
    """Checks across keys that pmacct makes at start-up."""
    if cfg.daemon in ("nfacctd", "sfacctd") and cfg.get("pcap_savefile"):
        for k in ("nfacctd_ip", "nfacctd_port"):
            if cfg.is_set(k):
                raise ConfigError(f"pcap_savefile and '{k}' are mutually exclusive "
                                  f"(reading a file or listening, not both)",
                                  where=cfg.where(k), key=k)
    if cfg.daemon in ("pmacctd", "uacctd", "nfacctd", "sfacctd") \
            and cfg.get("nfacctd_ext_sampling_rate"):
        # 1.7.7: "Internal packet sampling and external packet sampling are mutual exclusive"
        for p in cfg.plugins:
            if p.is_set("sampling_rate") and p.get("sampling_rate"):
                k = f"{cfg.daemon}_ext_sampling_rate"
                raise ConfigError(f"'sampling_rate' (plugin '{p.name}', {p.where('sampling_rate')}) "
                                  f"and '{k}' are mutually exclusive: internal and external "
                                  f"packet sampling", where=cfg.where(k), key=k)
    if cfg.daemon == "nfacctd" and cfg.get("nfacctd_time_secs") and cfg.get("nfacctd_time_new"):
        raise ConfigError("nfacctd_time_secs and nfacctd_time_new are mutually exclusive",
                          where=cfg.where("nfacctd_time_new"), key="nfacctd_time_new")
