"""Command-line switches of the daemons, and the texts of -h, -V and -a.

Each switch stands for one configuration line, exactly as in pmacct 1.7.7 (``-l 2100`` is
``nfacctd_port: 2100``, ``-r 60`` is ``sql_refresh_time: 60``, ``-R`` is
``sfacctd_renormalize: true``...). Those lines are appended after the lines of the ``-f``
file, so a switch overrides the file for the same key (pmacct does the same).

Options are read like glibc's ``getopt()`` with pmacct's option strings: clustered flags
(``-dD``), an argument attached or in the next word, options and operands in any order,
``--`` ends the options. They are acted on in order: the first -h, -V or -a wins, and an
unknown switch before it is an error.
"""
from __future__ import annotations

import os
import platform
import sys
from dataclasses import dataclass, field

from pypmacct import PMACCT_COMPAT, __version__
from pypmacct.primitives import list_primitives

from .errors import ConfigError
from .parser import Line
from .registry import IMPLEMENTED_PLUGINS, PLUGIN_TYPES, PLUGINS_NOT_IN

# The version token keeps pmacct's "1.7.7" first, so tools matching "nfacctd 1.7.7" still
# match, and says what we are: "nfacctd 1.7.7-pypmacct-0.1.0 (RELEASE)".
VERSION = f"{PMACCT_COMPAT}-pypmacct-{__version__}"
BUILD = "RELEASE"

HEADERS = {
    "nfacctd": "NetFlow Accounting Daemon",
    "sfacctd": "sFlow Accounting Daemon",
    "pmacctd": "Promiscuous Mode Accounting Daemon",
    "uacctd": "Linux NetFilter NFLOG Accounting Daemon",
}

# pmacct 1.7.7's getopt() option strings (pmacct-defines.h). uacctd's string has an 'N'
# that its switch() does not handle: pmacct then prints the usage and exits 1, which is
# what an unknown option does here, so it is left out.
OPTSTRINGS = {
    "nfacctd": "n:dDhP:b:f:F:c:m:p:r:s:S:L:l:o:t:O:MuRVaAE:I:WZ:Y:",
    "sfacctd": "n:dDhP:b:f:F:c:m:p:r:s:S:L:l:o:t:O:MuRVaAE:I:WZ:Y:",
    "pmacctd": "n:NdDhP:b:f:F:c:i:I:m:p:r:s:S:o:t:O:MuwWZ:Y:L:RVazAE:",
    "uacctd": "n:dDhP:b:f:F:c:m:p:r:s:S:o:t:O:MuRg:L:VaAE:",
}

_COMMON = {
    "P": ("plugins", None), "D": ("daemonize", "true"), "d": ("debug", "true"),
    "n": ("networks_file", None), "t": ("ports_file", None),
    "O": ("print_output", None), "o": ("print_output_file", None),
    "M": ("print_markers", "true"), "A": ("print_output_file_append", "true"),
    "E": ("print_output_separator", None), "u": ("print_num_protos", "true"),
    "F": ("pidfile", None), "c": ("aggregate", None),
    "b": ("imt_buckets", None), "m": ("imt_mem_pools_number", None),
    "p": ("imt_path", None), "r": ("sql_refresh_time", None),
    "s": ("imt_mem_pools_size", None), "S": ("syslog", None),
    "R": ("sfacctd_renormalize", "true"),
}
_SAVEFILE = {
    "I": ("pcap_savefile", None), "W": ("pcap_savefile_wait", "true"),
    "Z": ("pcap_savefile_delay", None), "Y": ("pcap_savefile_replay", None),
}

# switch -> (key, fixed value or None to take the switch's argument)
SWITCHES = {
    "nfacctd": {**_COMMON, **_SAVEFILE,
                "L": ("nfacctd_ip", None), "l": ("nfacctd_port", None)},
    "sfacctd": {**_COMMON, **_SAVEFILE,
                "L": ("sfacctd_ip", None), "l": ("sfacctd_port", None)},
    "pmacctd": {**_COMMON, **_SAVEFILE,
                "z": ("pmacctd_nonroot", "true"), "N": ("promisc", "false"),
                "i": ("pcap_interface", None), "w": ("pcap_interface_wait", "true"),
                "L": ("snaplen", None)},
    "uacctd": {**_COMMON, "g": ("uacctd_group", None), "L": ("snaplen", None)},
}
DAEMONS = tuple(SWITCHES)

ACTIONS = {"h": "help", "V": "version", "a": "list_primitives"}


def banner(daemon: str, build: str = f"({BUILD})") -> str:
    """First line of -h and -a, and of the start-up log: pmacct's shape, our version."""
    return f"{HEADERS[daemon]}, {daemon} {VERSION} {build}"


@dataclass
class Args:
    action: str = "run"                 # run | help | version | list_primitives
    config_file: str | None = None
    lines: list = field(default_factory=list)      # Lines, one per value switch
    operands: list = field(default_factory=list)   # non-option words


def _getopt(optstring: str, argv: list[str]):
    """Yield (option, argument) pairs and ('', operand) for non-options, in argv order,
    the way glibc's getopt() sees them (it moves operands aside; we just report them)."""
    takes_arg = {c: optstring[i + 1:i + 2] == ":" for i, c in enumerate(optstring) if c != ":"}
    i = 0
    while i < len(argv):
        word = argv[i]
        i += 1
        if word == "--":
            for rest in argv[i:]:
                yield "", rest
            return
        if not word.startswith("-") or word == "-":
            yield "", word
            continue
        j = 1
        while j < len(word):
            c = word[j]
            j += 1
            if c not in takes_arg:
                yield "?", c
                continue
            if not takes_arg[c]:
                yield c, None
                continue
            if j < len(word):
                yield c, word[j:]
            elif i < len(argv):
                yield c, argv[i]
                i += 1
            else:
                yield ":", c
            break


def parse_argv(daemon: str, argv: list[str], prog: str | None = None) -> Args:
    """Read the switches; ``ConfigError`` (with ``usage``) for an unknown switch or a
    missing argument."""
    prog = prog or daemon
    table = SWITCHES[daemon]
    args = Args()
    for opt, arg in _getopt(OPTSTRINGS[daemon], argv):
        if opt == "":
            args.operands.append(arg)
        elif opt == "?":
            raise ConfigError(f"invalid option -- '{arg}'", usage=help_text(daemon, prog))
        elif opt == ":":
            raise ConfigError(f"option requires an argument -- '{arg}'",
                              usage=help_text(daemon, prog))
        elif opt in ACTIONS:
            args.action = ACTIONS[opt]
            return args
        elif opt == "f":
            args.config_file = arg
        else:
            key, fixed = table[opt]
            value = fixed if fixed is not None else arg.strip()
            args.lines.append(Line(key, None, value, f"cmdline -{opt}", switch=opt))
    return args


# ---- texts ---------------------------------------------------------------------------

_OPTION_HELP = {
    "h": "Show this help and exit",
    "V": "Show version and build details and exit",
    "f": "Read the configuration from this file",
    "a": "List the aggregation primitives this daemon supports and exit",
    "c": "Primitives to aggregate on, comma-separated; see -a (DEFAULT: src_host)",
    "D": "Run in the background (daemonize)",
    "n": "File with networks and/or ASN definitions",
    "t": "File with port definitions",
    "d": "Turn debug messages on",
    "F": "Write the PID of the core process to this file",
    "R": "Renormalize the counters of sampled traffic",
    "u": "Print IP protocols as numbers, not names",
    "I": "Read packets from this libpcap savefile instead of the network",
    "Z": "With a savefile: seconds to sleep before the first and between replays",
    "W": "With a savefile: once done, wait for a signal instead of exiting",
    "Y": "With a savefile: how many times to play it",
    "L:nf": "IP address to bind to",
    "l": "UDP port to listen on",
    "N": "Do not put the interface in promiscuous mode",
    "z": "Allow running without root privileges (e.g. capabilities set with setcap)",
    "i": "Interface to capture packets from",
    "w": "Wait for the capture interface to appear",
    "L:pm": "Snapshot length (bytes captured per packet)",
    "g": "NFLOG group to read packets from",
    "p": "Socket for the pmacct client's queries (DEFAULT: /tmp/collect.pipe)",
    "b": "Number of hash buckets",
    "m": "Number of memory pools",
    "s": "Size of each memory pool",
    "r": "Seconds between two purges of the cache",
    "o": "Output file (DEFAULT: standard output)",
    "M": "Write start and end marker lines around each purge",
    "A": "Append to the output file (-o) instead of overwriting it",
    "E": "Field separator of -O csv (DEFAULT: ',')",
}

# Order of the general options in each daemon's -h, as in pmacct 1.7.7.
_GENERAL = {
    "nfacctd": "hVLlfacDntPdSFRuIZWY",
    "sfacctd": "hVLlfacDntPdSFRuIZWY",
    "pmacctd": "hVfacDNzntPdiISFwZWYRLu",
    "uacctd": "hVfacDntPdSFRgLu",
}
_SYNOPSIS = {
    "nfacctd": "[ -D | -d ] [ -L IP address ] [ -l port ] [ -c primitive [ , ... ] ] "
               "[ -P plugin [ , ... ] ]",
    "pmacctd": "[ -D | -d ] [ -i interface ] [ -c primitive [ , ... ] ] "
               "[ -P plugin [ , ... ] ] [ filter ]",
    "uacctd": "[ -D | -d ] [ -g NFLOG group ] [ -c primitive [ , ... ] ] "
              "[ -P plugin [ , ... ] ]",
}
_SYNOPSIS["sfacctd"] = _SYNOPSIS["nfacctd"]
_PRINT_FORMATS = "formatted | csv | json | event_formatted | event_csv"


def _plugin_choices(daemon: str) -> list[str]:
    order = ["memory", "print", "mysql", "pgsql", "sqlite3", "amqp", "kafka", "tee",
             "nfprobe", "sfprobe"]
    return [t for t in order if t not in PLUGINS_NOT_IN.get(daemon, ())]


def _option_line(daemon: str, c: str) -> str:
    if c == "P":
        running = ", ".join(t for t in PLUGIN_TYPES if t in IMPLEMENTED_PLUGINS
                            and t not in PLUGINS_NOT_IN.get(daemon, ()))
        return (f"  -P  \t[ {' | '.join(_plugin_choices(daemon))} ] \n"
                f"\tPlugins to run (implemented in pypmacct so far: {running})")
    if c == "S":
        return ("  -S  \t[ auth | mail | daemon | kern | user | local[0-7] ] \n"
                "\tSend log lines to this syslog facility")
    if c == "O":
        return f"  -O  \t[ {_PRINT_FORMATS} ] \n\tOutput format"
    if c == "L":
        c = "L:nf" if daemon in ("nfacctd", "sfacctd") else "L:pm"
    return f"  -{c[0]}  \t{_OPTION_HELP[c]}"


def help_text(daemon: str, prog: str | None = None) -> str:
    """What -h prints: pmacct 1.7.7's layout, our banner and wording."""
    prog = prog or daemon
    out = [banner(daemon),
           f"Usage: {prog} {_SYNOPSIS[daemon]}",
           f"       {prog} [ -f config_file ]",
           f"       {prog} [ -h ]",
           "",
           "General options:"]
    out += [_option_line(daemon, c) for c in _GENERAL[daemon]]
    out += ["", "Memory plugin (-P memory) options:"]
    out += [_option_line(daemon, c) for c in "pbms"]
    out += ["", "Print plugin (-P print) options:"]
    out += [_option_line(daemon, c) for c in "rOoMAE"]
    out += ["",
            "Every configuration key, its switch and its default: see CONFIG-KEYS.",
            "Examples: see the examples/ folder of pypmacct.",
            "",
            f"pypmacct {__version__}: pmacct {PMACCT_COMPAT} rewritten in Python; "
            f"please report differences from pmacct as bugs.",
            ""]
    return "\n".join(out)


# Python distributions that give pypmacct optional abilities, reported by -V.
OPTIONAL_LIBS = ("numpy", "setproctitle", "dpkt", "scapy", "pcapy-ng", "mysqlclient",
                 ("psycopg2", "psycopg2-binary"), "pymongo", "pika", "confluent-kafka",
                 "geoip2", "exabgp")


def _lib_version(names) -> str:
    if isinstance(names, str):
        names = (names,)
    import importlib.metadata    # here: importing it costs every start-up ~15 ms of CPU
    for n in names:
        try:
            return f"{n} {importlib.metadata.version(n)}"
        except importlib.metadata.PackageNotFoundError:
            continue
    return f"{names[0]} (not installed)"


def version_text(daemon: str) -> str:
    """What -V prints: version, Python runtime, optional libraries, plugins, system."""
    uname = os.uname()
    # every plugin built in, as 1.7.7 lists them (its nfacctd -V lists nfprobe too)
    plugins = [t for t in PLUGIN_TYPES if t in IMPLEMENTED_PLUGINS]
    out = [banner(daemon, f"[{BUILD}]"),
           "",
           "Python:",
           f" {platform.python_implementation()} {platform.python_version()} "
           f"({sys.executable})",
           f" pypmacct {__version__} ({os.path.dirname(os.path.dirname(__file__))})",
           "",
           "Libs:"]
    out += [_lib_version(n) for n in OPTIONAL_LIBS]
    out += ["", "Plugins:"] + plugins
    out += ["", "System:", f"{uname.sysname} {uname.release} {uname.version} {uname.machine}",
            "",
            f"pypmacct {__version__}: pmacct {PMACCT_COMPAT} rewritten in Python; "
            f"please report differences from pmacct as bugs.",
            ""]
    return "\n".join(out)


def primitives_text(daemon: str) -> str:
    """What -a prints. uacctd shows pmacctd's list, as pmacct 1.7.7 does (it runs with
    pmacctd's accounting type)."""
    return banner(daemon) + "\n" + list_primitives("pmacctd" if daemon == "uacctd" else daemon)
