"""The ``pmacct`` command: queries a memory plugin's table, with 1.7.7's switches,
checks, messages and outputs (see docs/memory.md for what differs and why)."""
from __future__ import annotations

import os
import socket
import sys
import time

import numpy as np

from pypmacct import __version__
from pypmacct.config.cli import VERSION, _getopt
from pypmacct.runtime.process import console_script

from . import protocol as P
from .query import (ClientError, parse_primitives, parse_query, read_query_file,
                    split_queries)
from .render import TableRenderer

OPTSTRING = "hSsc:Cetm:p:P:M:arN:n:lT:O:E:uVUiI0"
DEFAULT_PATH = "/tmp/collect.pipe"
HEADER = f"pmacct IMT plugin client, pmacct {VERSION} (RELEASE)"
MAINTAINER = "Paolo Lucente <paolo@pmacct.net>"

# query kinds, as 1.7.7's client keeps them in one bit set
STATS, STATUS, COUNTER, MATCH, CLASS_TABLE, CUSTOM_TABLE = 1, 2, 4, 8, 16, 32
ERASE, RESET, LOCK, ERASE_STAMP = 64, 128, 256, 512
EXCLUSIVE_MASK = ~(RESET | ERASE | LOCK)

_C_LIST = (
    "\t< src_mac | dst_mac | vlan | cos | src_host | dst_host | src_net | dst_net | src_mask | dst_mask | \n"
    "\t src_port | dst_port | tos | proto | src_as | dst_as | sum_mac | sum_host | sum_net | sum_as | \n"
    "\t sum_port | in_iface | out_iface | tag | tag2 | flows | class | std_comm | ext_comm | lrg_comm | \n"
    "\t med | local_pref | as_path | dst_roa | peer_src_ip | peer_dst_ip | peer_src_as | peer_dst_as | \n"
    "\t src_as_path | src_std_comm | src_ext_comm | src_lrg_comm | src_med | src_local_pref | src_roa | \n"
    "\t mpls_vpn_rd | mpls_pw_id | etype | sampling_rate | sampling_direction | post_nat_src_host | \n"
    "\t post_nat_dst_host | post_nat_src_port | post_nat_dst_port | nat_event | tunnel_src_mac | \n"
    "\t tunnel_dst_mac | tunnel_src_host | tunnel_dst_host | tunnel_protocol | tunnel_tos | \n"
    "\t tunnel_src_port | tunnel_dst_port | vxlan | timestamp_start | timestamp_end | timestamp_arrival | \n"
    "\t mpls_label_top | mpls_label_bottom |  mpls_stack_depth | label | src_host_country | \n"
    "\t dst_host_country | export_proto_seqno | export_proto_version | export_proto_sysid | \n"
    "\t src_host_pocode | dst_host_pocode | src_host_coords | dst_host_coords > \n")


def usage(prog: str) -> str:
    return (
        f"{HEADER}\n"
        f"Usage: {prog} [query]\n\n"
        "Queries:\n"
        "  -h\tShow this page\n"
        "  -s\tShow statistics\n"
        "  -N\t<matching data>[';'<matching data>] | 'file:'<filename> \n"
        "\tMatch primitives; print counters only (requires -c)\n"
        "  -M\t<matching data>[';'<matching data>] | 'file:'<filename> \n"
        "\tMatch primitives; print formatted table (requires -c)\n"
        "  -n\t<bytes | packets | flows | all> \n"
        "\tSelect the counters to print (applies to -N)\n"
        "  -S\tSum counters instead of returning a single counter for each request "
        "(applies to -N)\n"
        "  -a\tDisplay all table fields (even those currently unused)\n"
        "  -c" + _C_LIST +
        "\tSelect primitives to match (required by -N and -M)\n"
        "  -T\t<bytes | packets | flows>,[<# how many>] \n"
        "\tOutput top N statistics (applies to -M and -s)\n"
        "  -e\tClear statistics\n"
        "  -i\tShow time (in seconds) since statistics were last cleared (ie. pmacct -e)\n"
        "  -r\tReset counters (applies to -N and -M)\n"
        "  -l\tPerform locking of the table\n"
        "  -t\tShow memory table status\n"
        "  -C\tShow classifiers table\n"
        "  -U\tShow custom primitives table\n"
        "  -p\t<file> \n"
        f"\tSocket for client-server communication (DEFAULT: {DEFAULT_PATH})\n"
        "  -O\tSet output < formatted | csv | json | event_formatted | event_csv > "
        "(applies to -M and -s)\n"
        "  -E\tSet sparator for CSV format\n"
        "  -I\tSet timestamps in 'since Epoch' format\n"
        "  -u\tLeave IP protocols in numerical format\n"
        "  -0\tAlways set timestamps to UTC (even if the timezone configured on the system "
        "is different)\n"
        "  -V\tPrint version and exit\n"
        "\n"
        "  See QUICKSTART file in the distribution for examples\n"
        "\n"
        f"For suggestions, critics, bugs, contact me: {MAINTAINER}.\n")


def version() -> str:
    return (f"{HEADER}\n"
            f" pypmacct {__version__} on Python {sys.version.split()[0]}\n\n"
            f"For suggestions, critics, bugs, contact me: {MAINTAINER}.\n")


class Exit(Exception):
    def __init__(self, code: int, text: str = ""):
        super().__init__(code)
        self.code, self.text = code, text


class Options:
    def __init__(self):
        self.qtype = 0
        self.prims: list[str] = []
        self.unknown: list[str] = []
        self.match = ""
        self.which = 0          # 0 bytes, 1 packets, 2 all, 3 flows
        self.which_set = False
        self.top = 0            # 1 bytes, 2 packets, 3 flows
        self.top_n = 0
        self.sum = False
        self.path = DEFAULT_PATH
        self.all_fields = False
        self.fmt = "formatted"
        self.sep = ""
        self.num_protos = False
        self.since_epoch = False
        self.utc = False


class Client:
    def __init__(self, prog: str, out):
        self.prog = prog
        self.out = out
        self.custom = []        # the plugin's custom primitives (CustomPrimitive)

    def write(self, text) -> None:
        self.out.write(text.encode() if isinstance(text, str) else text)

    def fail(self, text: str, with_usage: bool = False):
        raise Exit(1, text + (usage(self.prog) if with_usage else ""))

    # ---- argv ---------------------------------------------------------------------------
    def parse(self, argv) -> Options:
        o = Options()

        def exclusive(bit):
            if o.qtype & EXCLUSIVE_MASK:
                self.fail("ERROR: -s, -t, -N, -M and -C options are each mutually "
                          "exclusive.\n\n")
            o.qtype |= bit

        for opt, arg in _getopt(OPTSTRING, argv):
            if opt == "":
                continue            # operands are ignored, as getopt() leaves them
            if opt in ("?", ":"):
                what = "invalid option" if opt == "?" else "option requires an argument"
                sys.stderr.write(f"{self.prog}: {what} -- '{arg}'\n")
                self.fail("ERROR: parameter ? unknown! \n  Exiting...\n\n", with_usage=True)
            if opt == "s":
                exclusive(STATS)
            elif opt == "c":
                prims, unknown = parse_primitives(arg[:255])
                o.prims += prims
                o.unknown += unknown
            elif opt == "C":
                exclusive(CLASS_TABLE)
            elif opt == "U":
                exclusive(CUSTOM_TABLE)
            elif opt == "e":
                o.qtype |= ERASE
            elif opt == "i":
                o.qtype |= ERASE_STAMP
            elif opt == "t":
                exclusive(STATUS)
            elif opt == "I":
                o.since_epoch = True
            elif opt == "0":
                o.utc = True
            elif opt == "l":
                o.qtype |= LOCK
            elif opt in ("m", "N"):
                exclusive(COUNTER)
                o.match = arg
            elif opt == "n":
                v = arg[:255].lower()
                which = {"bytes": 0, "packets": 1, "flows": 3, "all": 2}.get(v)
                if which is None:
                    self.write(f"WARN: -n, ignoring unknown counter type: {v}.\n")
                else:
                    o.which = which
            elif opt == "T":
                v = arg[:255].lower()
                name, comma, count = v.partition(",")
                if comma:
                    from .query import c_atoi
                    o.top_n = c_atoi(count) % (1 << 32) if count.strip() else 0
                    if o.top_n >= 1 << 31:
                        o.top_n -= 1 << 32
                top = {"bytes": 1, "packets": 2, "flows": 3}.get(name)
                if top is None:
                    self.write(f"WARN: -T, ignoring unknown counter type: {name}.\n")
                else:
                    o.top = top
            elif opt == "S":
                o.sum = True
            elif opt == "M":
                exclusive(MATCH)
                o.match = arg
            elif opt == "p":
                o.path = arg[:255]
            elif opt == "P":
                pass        # obsoleted password
            elif opt == "a":
                o.all_fields = True
            elif opt == "r":
                o.qtype |= RESET
            elif opt == "O":
                v = arg[:255].lower()
                if v in ("formatted", "csv", "json", "event_formatted", "event_csv"):
                    o.fmt = v
                else:
                    self.write(f"WARN: -O, ignoring unknown output value: '{v}'.\n")
            elif opt == "E":
                o.sep = arg[:9]
            elif opt == "u":
                o.num_protos = True
            elif opt == "h":
                raise Exit(0, usage(self.prog))
            elif opt == "V":
                raise Exit(0, version())
        return o

    # ---- talking to the plugin ------------------------------------------------------------
    def request(self, o: Options, req: dict, eof_tag: int):
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        except OSError:
            self.fail("ERROR: Unable to open socket.\n")
        try:
            s.connect(o.path)
        except ConnectionRefusedError:
            self.fail(f"INFO: Connection refused while trying to connect to '{o.path}'\n\n")
        except OSError:
            self.fail(f"ERROR: Unable to connect to '{o.path}'\n\n")
        try:
            s.sendall(P.encode(dict(req, v=P.VERSION)))
            header, blobs = P.recv_reply(s)
        except (OSError, P.ProtocolError):
            self.fail(f"ERROR: missing EOF from server ({eof_tag})\n")
        finally:
            s.close()
        if not header.get("ok"):
            self.fail(f"ERROR: {header.get('error', 'query refused by the plugin')}\n")
        return header, blobs

    # ---- the run ----------------------------------------------------------------------------
    def run(self, argv) -> int:
        o = self.parse(argv)
        # first off, the custom primitives the plugin has loaded (1.7.7 does the same)
        hdr, _ = self.request(o, {"op": "custom_primitives"}, 1)
        custom = hdr.get("primitives", [])
        from pypmacct.maps.custom_primitives import from_registry
        self.custom = from_registry(custom)
        if o.qtype & CUSTOM_TABLE:
            self.write("NAME                              LEN    OFF\n")
            for c in custom:
                self.write(f"{c['name']:<32}  {c['len']:<5}  {c['off']:<5}\n")
            raise Exit(1)
        names = {c["name"] for c in custom}
        for u in o.unknown:
            if u not in names:
                self.fail(f"ERROR: unknown primitive '{u}'\n")
        counter, match = bool(o.qtype & COUNTER), bool(o.qtype & MATCH)
        stats = bool(o.qtype & STATS)
        if not o.qtype:
            self.fail("ERROR: no options specified. Either -s, -e, -t, -M, -N or -C must be "
                      "supplied. \n  Exiting...\n\n", with_usage=True)
        if (counter or match) and not [p for p in o.prims
                                       if p not in o.unknown or p in names]:
            self.fail("ERROR: -N or -M selected but -c has not been specified or is invalid."
                      "\n  Exiting...\n\n", with_usage=True)
        if o.qtype & RESET and not (counter or match):
            self.fail("ERROR: -r selected but either -N or -M has not been specified.\n"
                      "  Exiting...\n\n", with_usage=True)
        if (o.which or o.sum) and not counter:
            self.fail("ERROR: -n and -S options apply only to -N\n  Exiting...\n\n",
                      with_usage=True)
        if o.top and not (match or stats):
            self.fail("ERROR: -T option apply only to -M or -s\n  Exiting...\n\n",
                      with_usage=True)
        sep = self._separator(o.sep)
        queries = []
        if counter or match:
            text = o.match.lstrip()
            if text.startswith("file:"):
                strings = read_query_file(text[5:])
            else:
                strings = split_queries(o.match)
            classes = None
            if "class" in o.prims:
                # as 1.7.7's client: the server's class table names the classes -M takes
                hdr, _ = self.request(o, {"op": "class_table"}, 9)
                classes = {c["name"] for c in hdr.get("classes", [])}
            for qs in strings:
                queries.append(parse_query(o.prims, qs, o.num_protos, classes, names))
        return self._query(o, queries, sep)

    @staticmethod
    def _separator(sep: str) -> str:
        if not sep:
            return ","
        if len(sep) == 1:
            return sep
        if sep == "\\t":
            return "\t"
        if sep == "\\s":
            return " "
        raise Exit(1, "ERROR: -E option expects a single char as separator\n  Exiting...\n\n")

    def _op(self, o: Options) -> str:
        t = o.qtype
        for bit, op in ((STATS, "stats"), (STATUS, "status"), (MATCH, "match"),
                        (COUNTER, "counter"), (CLASS_TABLE, "class_table"),
                        (ERASE_STAMP, "erase_stamp")):
            if t & bit:
                return op
        return "erase"

    def _query(self, o: Options, queries, sep: str) -> int:
        op = self._op(o)
        req = {"op": op, "queries": queries, "reset": bool(o.qtype & RESET),
               "erase": bool(o.qtype & ERASE) and op != "erase",
               "lock": bool(o.qtype & LOCK)}
        cycle = time.time()
        if op in ("stats", "match"):
            hdr, blobs = self.request(o, req, 4)
            self._table(o, hdr, blobs, sep)
        elif o.qtype & ERASE:
            self.request(o, req, 6)
            self.write("OK: Clearing stats.\n")
        elif op == "erase_stamp":
            hdr, _ = self.request(o, req, 6)
            stamp = float(hdr.get("stamp") or 0)
            self.write(f"{int(cycle) - int(stamp)}\n" if stamp else "never\n")
        elif op == "status":
            hdr, _ = self.request(o, req, 7)
            self._status(hdr)
        elif op == "counter":
            hdr, _ = self.request(o, req, 8)
            self._counters(o, hdr.get("counters", []))
        elif op == "class_table":
            hdr, _ = self.request(o, req, 9)
            self.write("CLASS_ID\tCLASS_NAME\n")
            classes = hdr.get("classes", [])
            for c in classes:
                self.write(f"{c['id']}\t\t{c['name']}\n")
            self.write(f"\nFor a total of: {len(classes)} classifiers\n")
        return 0

    def _status(self, hdr) -> None:
        buckets = int(hdr.get("buckets", 0))
        chains = {int(b): int(n) for b, n in hdr.get("chains", [])}
        lines = ["* = element\n\nBUCKET\tCHAIN_STATUS\n"]
        for b in range(buckets):
            lines.append(f"{b}\t{'*' * chains.get(b, 0)}\n")
        self.write("".join(lines))

    def _counters(self, o: Options, counters) -> None:
        lines = []
        tp = tb = tf = tn = 0
        for p, b, f, n in counters:
            if o.sum:
                tp, tb, tf, tn = tp + p, tb + b, tf + f, tn + n
            elif o.which == 0:
                lines.append(f"{b}\n")
            elif o.which == 1:
                lines.append(f"{p}\n")
            elif o.which == 2:
                lines.append(f"{p} {b} {f} {n}\n")
            else:
                lines.append(f"{f}\n")
        if o.sum:
            mask = (1 << 64) - 1
            tp, tb, tf = tp & mask, tb & mask, tf & mask
            lines.append({0: f"{tb}\n", 1: f"{tp}\n", 2: f"{tp} {tb} {tf} {tn & 0xFFFFFFFF}\n",
                          3: f"{tf}\n"}[o.which])
        self.write("".join(lines))

    def _table(self, o: Options, hdr, blobs, sep: str) -> None:
        try:
            keys, values = P.table_from_blobs(hdr, blobs)
        except (P.ProtocolError, KeyError, ValueError):
            self.fail("ERROR: missing EOF from server (4)\n")
        strings = hdr.get("strings") or [""]
        prims = hdr.get("primitives") or []
        r = TableRenderer(o.fmt, prims, keys.dtype, all_fields=o.all_fields, sep=sep,
                          num_protos=o.num_protos, since_epoch=o.since_epoch, utc=o.utc,
                          custom=self.custom)
        if o.top:
            col = values[{1: "bytes", 2: "packets", 3: "flows"}[o.top]]
            # descending and stable (ties keep table order), as 1.7.7's merge sort
            n = len(col)
            order = (n - 1 - np.argsort(col[::-1], kind="stable"))[::-1]
            if o.top_n > 0:
                order = order[:o.top_n]
            elif o.top_n < 0:       # 1.7.7 keeps N in an int: a negative N prints none
                order = order[:0]
            keys = np.take(keys, order)
            values = {k: np.take(v, order) for k, v in values.items()}
        self.write(r.header())
        self.write(r.lines(keys, values, strings))
        if o.fmt in ("formatted", "event_formatted"):
            self.write(f"\nFor a total of: {len(keys)} entries\n")


def main(argv=None) -> int:
    argv = list(sys.argv if argv is None else argv)
    prog = argv[0] if argv else "pmacct"
    out = sys.stdout.buffer
    client = Client(prog, out)
    code = 0
    try:
        code = client.run(argv[1:])
    except Exit as e:
        if e.text:
            client.write(e.text)
        code = e.code
    except ClientError as e:
        client.write(f"{e}\n")
        code = 1
    except KeyboardInterrupt:
        code = 130
    except BrokenPipeError:
        code = 141
    try:
        out.flush()
    except BrokenPipeError:
        # the reader went away (| head): like a C program killed by SIGPIPE, quietly
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, out.fileno())
        except OSError:
            pass
        return 141
    return code


# the console script (setup.py): no interpreter teardown at exit
run = console_script(main)

if __name__ == "__main__":
    run()
