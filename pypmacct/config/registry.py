"""The key registry: one entry per setting, with its names, type, default, scope and the
daemons it applies to.

Every key pmacct 1.7.7 accepts is known (``known.py``), so a pmacct configuration never
meets "unknown key" here; the ones pypmacct supports carry a type and a default below and
``implemented=True``. Using a known key that is not implemented stops start-up with a
clear message rather than being ignored.

Names that write one setting in pmacct are aliases of one ``Key`` (``print_refresh_time``,
``sql_refresh_time``, ``kafka_refresh_time``... are one field; so are ``nfacctd_port``
and ``sfacctd_port``). ``lookup()`` takes any of them.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from . import values as v
from .known import PMACCT_177_KEYS

GLOBAL, PLUGIN, BOTH = "global", "plugin", "both"
_SCOPES = {"G": GLOBAL, "P": PLUGIN, "B": BOTH}

DAEMON_LETTERS = {"p": "pmacctd", "u": "uacctd", "n": "nfacctd", "s": "sfacctd",
                  "b": "pmbgpd", "m": "pmbmpd", "t": "pmtelemetryd"}
ALL_DAEMONS = frozenset(DAEMON_LETTERS.values())

# Plugin types pmacct 1.7.7 knows, and the ones pypmacct has. Later issues add to the set.
PLUGIN_TYPES = ("memory", "print", "mysql", "pgsql", "sqlite3", "mongodb", "amqp", "kafka",
                "tee", "nfprobe", "sfprobe")
IMPLEMENTED_PLUGINS = {"print", "memory"}
# Plugin types a daemon refuses (pmacct checks this at start-up too).
PLUGINS_NOT_IN = {
    "nfacctd": {"nfprobe", "sfprobe"},
    "sfacctd": {"nfprobe", "sfprobe"},
    "pmacctd": {"tee"},
    "uacctd": {"tee"},
}


@dataclass(frozen=True)
class PerDaemon:
    """A default that differs between daemons; ``other`` for daemons not listed."""
    by_daemon: tuple          # ((daemon, value), ...)
    other: object = None

    def get(self, daemon: str):
        return dict(self.by_daemon).get(daemon, self.other)


@dataclass(frozen=True)
class Key:
    name: str                          # canonical name
    aliases: tuple = ()                # other names of the same setting
    scope: str = BOTH                  # GLOBAL, PLUGIN or BOTH
    daemons: frozenset = ALL_DAEMONS
    implemented: bool = False
    type: v.ValueType = field(default_factory=v.Text)
    default: object = None

    @property
    def names(self) -> tuple:
        return (self.name,) + self.aliases

    def applies_to(self, daemon: str) -> bool:
        return daemon in self.daemons

    def default_for(self, daemon: str):
        if isinstance(self.default, PerDaemon):
            return self.default.get(daemon)
        return self.default


@dataclass(frozen=True)
class Spec:
    """Type and default of an implemented key (scope and daemons come from known.py)."""
    type: v.ValueType
    default: object = None


_TIME_LETTERS = v.Roundoff()

# The implemented keys, by canonical name.
IMPLEMENTED_SPECS: dict[str, Spec] = {
    # general
    "debug": Spec(v.Bool(), False),
    "debug_internal_msg": Spec(v.Bool(), False),
    "daemonize": Spec(v.Bool(), False),
    "aggregate": Spec(v.Aggregate(), ("src_host",)),
    "plugins": Spec(v.PluginList(), None),
    "pidfile": Spec(v.Path(), None),
    "logfile": Spec(v.Path(), None),
    "syslog": Spec(v.Choice(v.SYSLOG_FACILITIES, case=True), None),
    "core_proc_name": Spec(v.Text(), "default"),
    "plugin_pipe_size": Spec(v.Int(1), None),
    "plugin_buffer_size": Spec(v.Int(1), None),
    "timestamps_secs": Spec(v.Bool(), False),
    "timestamps_rfc3339": Spec(v.Bool(), False),
    "timestamps_utc": Spec(v.Bool(), False),
    "timestamps_since_epoch": Spec(v.Bool(), False),
    "files_umask": Spec(v.Umask(), 0o77),
    "files_uid": Spec(v.Owner("user"), None),
    "files_gid": Spec(v.Owner("group"), None),
    # NetFlow/sFlow collection
    "nfacctd_ip": Spec(v.IPAddress(), None),
    "nfacctd_port": Spec(v.Int(1, 65535), PerDaemon((("nfacctd", 2100), ("sfacctd", 6343)))),
    "nfacctd_pipe_size": Spec(v.Int(1, 2**31 - 1), None),
    "nfacctd_allow_file": Spec(v.Path(), None),
    "nfacctd_templates_file": Spec(v.Path(), None),
    "nfacctd_renormalize": Spec(v.Bool(), False),
    "nfacctd_time_secs": Spec(v.Bool(), False),
    "nfacctd_time_new": Spec(v.Bool(), False),
    "nfacctd_disable_checks": Spec(v.Bool(), PerDaemon((("nfacctd", True), ("sfacctd", True)),
                                                        False)),
    "nfacctd_ext_sampling_rate": Spec(v.Int(1), None),
    "nfacctd_ipv6_only": Spec(v.Bool(), False),
    "nfacctd_mcast_groups": Spec(v.AddressList(), None),
    "nfacctd_account_options": Spec(v.Bool(), False),
    "nfacctd_disable_opt_scope_check": Spec(v.Bool(), False),
    "use_ip_next_hop": Spec(v.Bool(), False),
    # savefiles
    "pcap_savefile": Spec(v.Path(), None),
    "pcap_savefile_wait": Spec(v.Bool(), False),
    "pcap_savefile_delay": Spec(v.Int(0), 0),
    "pcap_savefile_replay": Spec(v.Int(0), 1),
    # print plugin (and the fields pmacct shares with sql/amqp/kafka/mongo)
    "print_output": Spec(v.Choice(("formatted", "csv", "json", "event_formatted", "event_csv"),
                                  unsupported=("avro", "avro_bin", "avro_json", "custom")),
                         "formatted"),
    "print_output_separator": Spec(v.Separator(), ","),
    "print_output_file": Spec(v.FilePattern(), None),
    "print_output_file_append": Spec(v.Bool(), False),
    "print_output_lock_file": Spec(v.Path(), None),
    "print_latest_file": Spec(v.PlainPath(), None),
    "print_write_empty_file": Spec(v.Bool(), False),
    "print_refresh_time": Spec(v.Int(1), 60),
    "print_startup_delay": Spec(v.Int(0), 0),
    "print_history": Spec(v.History(), None),
    "print_history_roundoff": Spec(_TIME_LETTERS, None),
    "print_history_offset": Spec(v.Int(0), 0),
    "print_markers": Spec(v.Bool(), False),
    "print_num_protos": Spec(v.Bool(), False),
    "print_cache_entries": Spec(v.Int(1), 16411),
    "print_trigger_exec": Spec(v.Path(), None),
    "print_max_writers": Spec(v.Int(1), 10),
    # --- memory plugin ---
    "imt_path": Spec(v.Path(), "/tmp/collect.pipe"),
    "imt_buckets": Spec(v.Int(1), 32771),
    "imt_mem_pools_number": Spec(v.Int(0), 16),
    "imt_mem_pools_size": Spec(v.Int(1), 8192),
    # --- SQL plugins (mysql, pgsql, sqlite3) ---
    "sql_db": Spec(v.Text(), None),
    "sql_table_schema": Spec(v.Path(), None),
    "sql_table_version": Spec(v.Int(1, 9), 1),
    "sql_table_type": Spec(v.Choice(("original", "bgp")), None),
    "sql_conn_ca_file": Spec(v.Path(), None),
    "sql_host": Spec(v.Text(), None),
    "sql_port": Spec(v.Int(1, 65535), None),
    "sql_data": Spec(v.Choice(("typed", "unified")), "typed"),
    "sql_user": Spec(v.Text(), None),
    "sql_passwd": Spec(v.Text(), None),
    "sql_optimize_clauses": Spec(v.Bool(), False),
    "sql_recovery_backup_host": Spec(v.Text(), None),
    "sql_delimiter": Spec(v.Separator(), ","),
    "sql_trigger_time": Spec(v.History(), None),
    "sql_cache_entries": Spec(v.Int(1), 32771),
    "sql_dont_try_update": Spec(v.Bool(), False),
    "sql_multi_values": Spec(v.Int(0), 0),
    "sql_locking_style": Spec(v.Choice(("table", "row")), "table"),
    "sql_use_copy": Spec(v.Bool(), False),
    "sql_num_hosts": Spec(v.Bool(), False),
    "print_preprocess": Spec(v.Text(), None),
    "print_preprocess_type": Spec(v.Choice(("any", "all")), "any"),
    # keys of older pmacct releases, brought back (see known.py)
    "sql_recovery_logfile": Spec(v.Path(), None),
    "sql_history_since_epoch": Spec(v.Bool(), False),
    "nfacctd_sql_log": Spec(v.Bool(), False),
    # --- sources: sfacctd counters, pmacctd (libpcap), uacctd (NFLOG) ---
    "sfacctd_counter_file": Spec(v.Path(), None),
    "sfacctd_counter_output": Spec(v.Choice(("json",)), "json"),
    "snaplen": Spec(v.Int(1, 65535), 128),
    "promisc": Spec(v.Bool(), True),
    "pcap_filter": Spec(v.Text(), None),
    "pcap_interface": Spec(v.Text(), None),
    "pcap_interface_wait": Spec(v.Bool(), False),
    "pcap_direction": Spec(v.Choice(("in", "out")), None),
    "pcap_ifindex": Spec(v.Choice(("sys", "hash", "map", "none")), "none"),
    "pcap_interfaces_map": Spec(v.Path(), None),
    "uacctd_group": Spec(v.Int(0, 65535), None),
    "uacctd_nl_size": Spec(v.Int(1), 131072),
    "uacctd_threshold": Spec(v.Int(1), 1),
    # --- filters and maps (pypmacct/filters, pypmacct/maps, runtime/stages.py) ---
    "aggregate_filter": Spec(v.Text(), None),
    "pre_tag_filter": Spec(v.Text(), None),
    "pre_tag2_filter": Spec(v.Text(), None),
    "pre_tag_label_filter": Spec(v.Text(), None),
    "post_tag": Spec(v.Int(1, 2**64 - 1), None),
    "post_tag2": Spec(v.Int(1, 2**64 - 1), None),
    "pre_tag_map": Spec(v.Path(), None),
    "maps_entries": Spec(v.Int(1), 384),
    "maps_row_len": Spec(v.Int(1), 256),
    "maps_refresh": Spec(v.Bool(), True),
    "maps_index": Spec(v.Bool(), False),
    "networks_file": Spec(v.Path(), None),
    "networks_mask": Spec(v.Int(0, 128), None),
    "networks_file_filter": Spec(v.Bool(), False),
    "networks_file_no_lpm": Spec(v.Bool(), False),
    "networks_cache_entries": Spec(v.Int(1), None),
    "ports_file": Spec(v.Path(), None),
    "nfacctd_net": Spec(v.Choice(("netflow", "sflow", "mask", "file", "longest", "fallback"),
                                 unsupported=("igp", "bgp", "bmp")), None),
    "sampling_map": Spec(v.Path(), None),
    "geoipv2_file": Spec(v.Path(), None),
    "aggregate_primitives": Spec(v.Path(), None),
    "nfacctd_as": Spec(v.Choice(("netflow", "sflow", "file", "longest", "fallback", "true",
                                 "false"), unsupported=("bgp", "bmp")), None),
    # (second round) pmacctd/uacctd flow buffer: the flows counter
    "pmacctd_flow_buffer_size": Spec(v.Int(1), 16384000),
    "pmacctd_flow_buffer_buckets": Spec(v.Int(1), 256),
    "pmacctd_flow_lifetime": Spec(v.Int(1), 60),
    "pmacctd_flow_tcp_lifetime": Spec(v.Int(1), None),
    # --- sources (third round): fragment table size ---
    "pmacctd_frag_buffer_size": Spec(v.Int(1), 4096000),
    "pmacctd_force_frag_handling": Spec(v.Bool(), False),
    "pcap_protocol": Spec(v.IntAnyBase(0, 0xFFFF), None),
    # --- sources (third round): a plugin's own packet sampling ---
    "sampling_rate": Spec(v.Int(1), None),
    # --- packet classifiers (pypmacct/classifiers, docs/classifiers.md) ---
    "classifiers": Spec(v.Path(), None),
    "classifier_tentatives": Spec(v.Int(1, 255), 5),
    "classifier_table_num": Spec(v.Int(1), 256),
    "sql_aggressive_classification": Spec(v.Bool(), False),
    # --- tee plugin (plugins/tee_plugin.py, docs/tee.md) ---
    "tee_receivers": Spec(v.Path(), None),
    "tee_transparent": Spec(v.Bool(), False),
    "tee_max_receivers": Spec(v.Int(1), 32),
    "tee_max_receiver_pools": Spec(v.Int(1), 128),
    "tee_pipe_size": Spec(v.Int(1, 2**31 - 1), None),
    # --- nfprobe plugin (plugins/nfprobe_plugin.py, docs/nfprobe.md) ---
    "nfprobe_receiver": Spec(v.Text(), "127.0.0.1:2100"),
    "nfprobe_version": Spec(v.Choice(("5", "9", "10")), "10"),
    "nfprobe_timeouts": Spec(v.Text(), None),
    "nfprobe_maxflows": Spec(v.Int(1), 8192),
    "nfprobe_hoplimit": Spec(v.Int(1, 255), None),
    "nfprobe_engine": Spec(v.Text(), None),
    "nfprobe_source_ip": Spec(v.IPAddress(), None),     # also tee_source_ip
    "nfprobe_ipprec": Spec(v.Int(0, 7), 0),             # also tee_ipprec
    "nfprobe_direction": Spec(v.Choice(("in", "out", "tag", "tag2")), None),
    "nfprobe_ifindex": Spec(v.Text(), None),
    "nfprobe_ifindex_override": Spec(v.Bool(), False),
    "nfprobe_dont_cache": Spec(v.Bool(), False),
    "nfprobe_tstamp_usec": Spec(v.Bool(), False),
}
IMPLEMENTED_PLUGINS.update({"mysql", "pgsql", "sqlite3", "tee", "nfprobe"})


def _parse_known(text: str) -> list[tuple[str, frozenset, list[str]]]:
    entries = []
    for line in text.splitlines():
        if not line.strip():
            continue
        if line[0].isspace():
            entries[-1][2].extend(line.split())
            continue
        scope, daemons, *names = line.split()
        ds = ALL_DAEMONS if daemons == "*" else frozenset(DAEMON_LETTERS[c] for c in daemons)
        entries.append((_SCOPES[scope], ds, names))
    return entries


def _build() -> tuple[dict[str, Key], dict[str, str]]:
    keys: dict[str, Key] = {}
    by_name: dict[str, str] = {}
    for scope, daemons, names in _parse_known(PMACCT_177_KEYS):
        spec = IMPLEMENTED_SPECS.get(names[0])
        if spec is None:
            key = Key(names[0], tuple(names[1:]), scope, daemons)
        else:
            key = Key(names[0], tuple(names[1:]), scope, daemons, True, spec.type, spec.default)
        keys[key.name] = key
        for n in names:
            if n in by_name:
                raise RuntimeError(f"key '{n}' listed twice in known.py")
            by_name[n] = key.name
    missing = set(IMPLEMENTED_SPECS) - set(keys)
    if missing:
        raise RuntimeError(f"implemented keys missing from known.py: {sorted(missing)}")
    return keys, by_name


KEYS, _BY_NAME = _build()
ALL_NAMES = tuple(sorted(_BY_NAME))


def lookup(name: str) -> Key | None:
    """The Key a name (canonical or alias) belongs to, or None if pmacct has no such key."""
    canonical = _BY_NAME.get(name)
    return KEYS[canonical] if canonical else None


def implemented_keys() -> dict[str, Key]:
    return {k: key for k, key in KEYS.items() if key.implemented}


def describe_default(key: Key) -> str:
    """The default as CONFIG-KEYS writes it (a test compares the two)."""
    def one(value) -> str:
        if value is None:
            return "none"
        if isinstance(key.type, v.Umask):
            return f"{value:03o}"
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, tuple):
            return ", ".join(value)
        return str(value)

    if isinstance(key.default, PerDaemon):
        parts = [f"{one(val)} ({d})" for d, val in key.default.by_daemon]
        parts.append(f"{one(key.default.other)} (others)")
        return "; ".join(parts)
    return one(key.default)
