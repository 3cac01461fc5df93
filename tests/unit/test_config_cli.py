"""Command-line switches: the switch -> key table of pmacct 1.7.7, getopt behaviour,
mixing with a -f file, and the -h / -V / -a texts (compared with the real binaries)."""
import importlib.metadata
import re
import subprocess

import pytest

from pypmacct.config import ConfigError, banner, load_config
from pypmacct.config.cli import OPTSTRINGS, SWITCHES
from tests.support import oracle


@pytest.fixture
def conf(tmp_path):
    def _conf(text="plugins: print[p]\n"):
        p = tmp_path / "x.conf"
        p.write_text(text)
        return str(p)
    return _conf


# ---- the switch table ----------------------------------------------------------------

NFACCTD_SWITCHES = {
    "L": ("nfacctd_ip", None), "l": ("nfacctd_port", None), "P": ("plugins", None),
    "D": ("daemonize", "true"), "d": ("debug", "true"), "n": ("networks_file", None),
    "t": ("ports_file", None), "O": ("print_output", None), "o": ("print_output_file", None),
    "M": ("print_markers", "true"), "A": ("print_output_file_append", "true"),
    "E": ("print_output_separator", None), "u": ("print_num_protos", "true"),
    "F": ("pidfile", None), "c": ("aggregate", None), "b": ("imt_buckets", None),
    "m": ("imt_mem_pools_number", None), "p": ("imt_path", None),
    "r": ("sql_refresh_time", None), "s": ("imt_mem_pools_size", None),
    "S": ("syslog", None), "R": ("sfacctd_renormalize", "true"),
    "I": ("pcap_savefile", None), "W": ("pcap_savefile_wait", "true"),
    "Z": ("pcap_savefile_delay", None), "Y": ("pcap_savefile_replay", None),
}


def test_nfacctd_switch_table_is_pmacct_177():
    assert SWITCHES["nfacctd"] == NFACCTD_SWITCHES
    assert OPTSTRINGS["nfacctd"] == "n:dDhP:b:f:F:c:m:p:r:s:S:L:l:o:t:O:MuRVaAE:I:WZ:Y:"
    sf = dict(NFACCTD_SWITCHES, L=("sfacctd_ip", None), l=("sfacctd_port", None))
    assert SWITCHES["sfacctd"] == sf


def test_other_daemons_switch_tables():
    pm, ua = SWITCHES["pmacctd"], SWITCHES["uacctd"]
    assert pm["i"] == ("pcap_interface", None) and pm["N"] == ("promisc", "false")
    assert pm["L"] == ("snaplen", None) and pm["z"] == ("pmacctd_nonroot", "true")
    assert pm["w"] == ("pcap_interface_wait", "true") and "l" not in pm
    assert ua["g"] == ("uacctd_group", None) and "I" not in ua and "l" not in ua
    for daemon, table in SWITCHES.items():
        letters = set(OPTSTRINGS[daemon].replace(":", ""))
        assert set(table) | {"f", "h", "V", "a"} == letters, daemon


# every switch of the list that sets an implemented key: switch, argument,
# key to read, expected value, read from the core (True) or the plugin
IMPLEMENTED = [
    ("-D", None, "daemonize", True),
    ("-d", None, "debug", True),
    ("-L", "127.0.0.1", "nfacctd_ip", "127.0.0.1"),
    ("-l", "9995", "nfacctd_port", 9995),
    ("-c", "src_host,dst_port", "aggregate", ("src_host", "dst_port")),
    ("-S", "local5", "syslog", "local5"),
    ("-F", "/run/nfacctd.pid", "pidfile", "/run/nfacctd.pid"),
    ("-R", None, "nfacctd_renormalize", True),
    ("-u", None, "print_num_protos", True),
    ("-I", "/tmp/in.pcap", "pcap_savefile", "/tmp/in.pcap"),
    ("-Z", "3", "pcap_savefile_delay", 3),
    ("-W", None, "pcap_savefile_wait", True),
    ("-Y", "4", "pcap_savefile_replay", 4),
    ("-r", "15", "print_refresh_time", 15),
    ("-O", "json", "print_output", "json"),
    ("-o", "/tmp/out.csv", "print_output_file", "/tmp/out.csv"),
    ("-M", None, "print_markers", True),
    ("-A", None, "print_output_file_append", True),
    ("-E", ";", "print_output_separator", ";"),
]


@pytest.mark.parametrize("switch, arg, key, value", IMPLEMENTED)
def test_switch_sets_its_key(conf, switch, arg, key, value):
    argv = ["-f", conf(), switch] + ([arg] if arg is not None else [])
    cfg = load_config("nfacctd", argv)
    assert cfg.get(key) == value
    assert cfg.plugins[0].get(key) == value
    assert cfg.where(key) == f"cmdline {switch}"


def test_switch_P_declares_plugins(conf):
    cfg = load_config("nfacctd", ["-f", conf("debug: false\n"), "-P", "print[x],print"])
    assert [(p.name, p.type) for p in cfg.plugins] == [("x", "print"),
                                                      ("default_print", "print")]


def test_memory_switches_set_the_imt_keys(conf):
    cfg = load_config("nfacctd", ["-f", conf("debug: false\n"), "-P", "memory", "-p", "/tmp/x.pipe",
                                  "-b", "1024", "-m", "4", "-s", "4096"])
    (p,) = cfg.plugins
    assert (p.name, p.type) == ("default_memory", "memory")
    assert (p.get("imt_path"), p.get("imt_buckets"), p.get("imt_mem_pools_number"),
            p.get("imt_mem_pools_size")) == ("/tmp/x.pipe", 1024, 4, 4096)


def test_networks_and_ports_switches(conf):
    cfg = load_config("nfacctd", ["-f", conf(), "-n", "/etc/networks.lst", "-t", "/etc/ports.lst"])
    assert cfg.get("networks_file") == "/etc/networks.lst"
    assert cfg.get("ports_file") == "/etc/ports.lst"


def test_switch_value_errors_name_the_switch(conf):
    with pytest.raises(ConfigError) as e:
        load_config("nfacctd", ["-f", conf(), "-l", "http"])
    assert str(e.value).startswith("[cmdline -l] invalid value for 'nfacctd_port': ")


def test_sfacctd_L_and_l(conf):
    cfg = load_config("sfacctd", ["-f", conf(), "-L", "::", "-l", "6344"])
    assert cfg.get("sfacctd_ip") == "::" and cfg.get("nfacctd_port") == 6344


# ---- mixing switches and a file -------------------------------------------------------

def test_switch_overrides_file(conf):
    path = conf("plugins: print[p]\naggregate: dst_host\naggregate[p]: proto\n"
                "print_refresh_time: 300\n")
    cfg = load_config("nfacctd", ["-c", "src_port", "-f", path, "-r", "5"])
    assert cfg.plugins[0].get("aggregate") == ("src_port",)
    assert cfg.plugins[0].get("print_refresh_time") == 5


def test_file_values_kept_when_no_switch(conf):
    cfg = load_config("nfacctd", ["-f", conf("plugins: print[p]\naggregate: dst_host\n"), "-d"])
    assert cfg.plugins[0].get("aggregate") == ("dst_host",) and cfg.get("debug") is True


def test_P_with_file_plugins_is_an_error(conf):
    with pytest.raises(ConfigError) as e:
        load_config("nfacctd", ["-f", conf(), "-P", "print"])
    assert e.value.where == "cmdline -P" and "already declared" in str(e.value)


def test_no_file_names_are_dropped():
    cfg = load_config("nfacctd", ["-P", "print[x]", "-c", "proto", "-I", "/tmp/x.pcap"])
    assert cfg.config_file is None
    assert [(p.name, p.type) for p in cfg.plugins] == [("default_print", "print")]
    assert cfg.plugins[0].get("aggregate") == ("proto",)
    assert cfg.warnings == ["[cmdline -P] plugin name 'x' ignored without a configuration "
                            "file: the plugin is 'default_print'"]
    with pytest.raises(ConfigError, match="'default_print' is used twice"):
        load_config("nfacctd", ["-P", "print[x],print[y]"])


def test_last_f_wins(conf, tmp_path):
    other = tmp_path / "y.conf"
    other.write_text("plugins: print[y]\n")
    cfg = load_config("nfacctd", ["-f", conf(), "-f", str(other)])
    assert [p.name for p in cfg.plugins] == ["y"]


# ---- getopt behaviour -----------------------------------------------------------------

def test_clustered_and_attached_arguments(conf):
    cfg = load_config("nfacctd", ["-dDcproto", f"-f{conf()}", "-l2055"])
    assert cfg.get("debug") and cfg.get("daemonize")
    assert cfg.get("aggregate") == ("proto",) and cfg.get("nfacctd_port") == 2055


def test_operands_are_permuted_and_reported(conf):
    cfg = load_config("nfacctd", ["stray", "-f", conf(), "--", "-d"])
    assert cfg.get("debug") is False
    assert cfg.warnings == ["[cmdline] ignoring extra arguments: stray -d"]


def test_pmacctd_operands_are_a_capture_filter():
    cfg = load_config("pmacctd", ["-P", "print", "src", "net", "10.0.0.0/8"])
    assert cfg.get("pcap_filter") == "src net 10.0.0.0/8"
    assert cfg.where("pcap_filter") == "cmdline filter"


def test_invalid_option_and_missing_argument():
    with pytest.raises(ConfigError) as e:
        load_config("nfacctd", ["-x"])
    assert str(e.value) == "invalid option -- 'x'"
    assert e.value.usage.startswith(banner("nfacctd"))
    with pytest.raises(ConfigError) as e:
        load_config("nfacctd", ["-c"])
    assert str(e.value) == "option requires an argument -- 'c'"
    with pytest.raises(ConfigError, match="invalid option -- '-'"):
        load_config("nfacctd", ["--help"])
    with pytest.raises(ConfigError, match="invalid option -- 'N'"):
        load_config("uacctd", ["-N"])       # in uacctd's option string, not handled


def test_first_action_wins():
    assert load_config("nfacctd", ["-h", "-x"]).action == "help"
    assert load_config("nfacctd", ["-ah"]).action == "list_primitives"
    assert load_config("nfacctd", ["-c", "bogus", "-V"]).action == "version"
    with pytest.raises(ConfigError):
        load_config("nfacctd", ["-x", "-h"])


def test_missing_config_file():
    with pytest.raises(ConfigError, match=r"^\[/nonexistent.conf\] file not found$"):
        load_config("nfacctd", ["-f", "/nonexistent.conf"])


# ---- -h, -V, -a ----------------------------------------------------------------------

def test_banner_keeps_pmacct_version_first():
    b = banner("nfacctd")
    assert b == "NetFlow Accounting Daemon, nfacctd 1.7.7-pypmacct-0.1.0 (RELEASE)"
    assert re.search(r"nfacctd 1\.7\.7", b)
    assert banner("uacctd").startswith("Linux NetFilter NFLOG Accounting Daemon, uacctd 1.7.7")


def _real(daemon: str, switch: str) -> str:
    binary = oracle.pmacct_binary(daemon)
    if not binary.exists():
        pytest.fail(f"pmacct's {daemon} (the oracle) not found at {binary}; "
                    f"apt-get install -y pmacct", pytrace=False)
    return subprocess.run([str(binary), switch], capture_output=True, text=True,
                          timeout=30).stdout


def _options(text: str) -> list[tuple[str, list[str]]]:
    """(section title, option letters) in the order -h lists them."""
    out = []
    for line in text.splitlines():
        if line.endswith("options:"):
            out.append((line, []))
        m = re.match(r"  -(\w)  \t", line)
        if m:
            out[-1][1].append(m.group(1))
    return [(t.replace(" plugin options", " options"), letters) for t, letters in out]


@pytest.mark.oracle
@pytest.mark.parametrize("daemon", ["nfacctd", "sfacctd", "pmacctd", "uacctd"])
def test_help_has_pmacct_layout(daemon):
    ours = load_config(daemon, ["-h"], prog=f"/usr/sbin/{daemon}")
    real = _real(daemon, "-h")
    assert ours.action == "help"
    assert ours.text.splitlines()[0] == banner(daemon)
    # same synopsis lines, same sections with the same options in the same order
    assert ours.text.splitlines()[1:4] == real.splitlines()[1:4]
    assert _options(ours.text) == _options(real)
    from pypmacct.config.registry import IMPLEMENTED_PLUGINS, PLUGIN_TYPES, PLUGINS_NOT_IN
    running = ", ".join(t for t in PLUGIN_TYPES if t in IMPLEMENTED_PLUGINS
                        and t not in PLUGINS_NOT_IN.get(daemon, ()))
    assert "print" in running
    assert f"\tPlugins to run (implemented in pypmacct so far: {running})" in ours.text


@pytest.mark.oracle
@pytest.mark.parametrize("daemon", ["nfacctd", "sfacctd", "pmacctd", "uacctd"])
def test_list_primitives_matches_pmacct(daemon):
    ours = load_config(daemon, ["-a"])
    real = _real(daemon, "-a")
    assert ours.action == "list_primitives"
    first, _, rest = ours.text.partition("\n")
    assert first == banner(daemon)
    assert rest == real.partition("\n")[2]


def test_version_text():
    cfg = load_config("nfacctd", ["-V"])
    lines = cfg.text.splitlines()
    assert cfg.action == "version"
    assert lines[0] == "NetFlow Accounting Daemon, nfacctd 1.7.7-pypmacct-0.1.0 [RELEASE]"
    assert f"numpy {importlib.metadata.version('numpy')}" in lines
    i = lines.index("Plugins:")
    from pypmacct.config.registry import IMPLEMENTED_PLUGINS, PLUGIN_TYPES
    want = [t for t in PLUGIN_TYPES if t in IMPLEMENTED_PLUGINS]
    assert lines[i + 1:i + 2 + len(want)] == want + [""]
    assert any(ln.startswith("pika") for ln in lines)   # optional libs listed either way
