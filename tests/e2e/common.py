"""Helpers shared by the end-to-end tests: ports, waiting, sending, reading outputs."""
from __future__ import annotations

import csv
import io
import socket
import sys
import time
from pathlib import Path

NFACCTD = [sys.executable, "-m", "pypmacct.daemons.nfacctd"]


def free_port(family=socket.AF_INET, host="127.0.0.1") -> int:
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_for(pred, timeout=15.0, what="condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def send(port, payloads, host="127.0.0.1", src=None, family=socket.AF_INET):
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        if src:
            s.bind((src, 0))
        for p in payloads:
            s.sendto(p, (host, port))


def read_csv(path: Path) -> list[dict]:
    return list(csv.DictReader(io.StringIO(path.read_text())))
