"""Shared helpers for pypmacct's test suite and bench.

- ``pcapio``: write and read classic pcap / pcapng files (vectorised header building).
- ``flowgen``: a seeded NetFlow v5 / v9 / IPFIX export generator that keeps the ground
  truth of every record it encodes, and a packet generator for softflowd.
- ``oracle``: run pmacct 1.7.7's daemons (or ours) on a capture with a config dict and
  collect the print plugin's output; parse, sort and diff outputs.
- ``softflowd``: drive softflowd 1.1.0 over a packet capture and record what it exports.
- ``truth``: the expected print rows for a generated capture, computed from the ground truth.
"""
