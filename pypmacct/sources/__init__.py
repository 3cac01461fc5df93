"""Where datagrams and packets come from: UDP sockets and savefiles."""
from __future__ import annotations

from typing import NamedTuple


class Datagram(NamedTuple):
    """One export datagram as the core sees it, whatever its source."""
    payload: bytes
    src: str        # exporter address as text ("192.0.2.1", "2001:db8::1")
    port: int       # exporter UDP port
    ts_us: int      # arrival time, microseconds since the epoch
