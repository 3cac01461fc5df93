"""pmacct-compatible configuration: ``key: value`` files, ``key[plugin]`` scoping and the
daemons' command-line switches.

    cfg = load_config("nfacctd", sys.argv[1:])
    cfg.action                     # "run", "help", "version" or "list_primitives"
    cfg.get("nfacctd_port")        # typed core value, default applied
    for p in cfg.plugins:          # in declaration order
        p.name, p.type, p.get("aggregate")

Modules: ``parser`` (file syntax), ``cli`` (switches, -h/-V/-a), ``values`` (value
types), ``known`` (pmacct 1.7.7's key names), ``registry`` (types, defaults, scopes,
what is implemented), ``loader`` (applying lines in pmacct's order).
"""
from .cli import banner
from .errors import ConfigError
from .loader import DaemonConfig, PluginConfig, load_config
from .registry import IMPLEMENTED_PLUGINS, KEYS, lookup

__all__ = ["load_config", "ConfigError", "DaemonConfig", "PluginConfig", "IMPLEMENTED_PLUGINS",
           "KEYS", "lookup", "banner"]
