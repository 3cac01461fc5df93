"""A throw-away network namespace for NFLOG tests: loopback up, nftables rules loaded,
deleted afterwards. Needs root (``ip netns``, ``nft``)."""
from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import uuid

import pytest

NFT = shutil.which("nft") or "/usr/sbin/nft"


@contextlib.contextmanager
def namespace(rules: str, prefix: str = "pmt", why: str = "this test"):
    if os.geteuid() != 0:
        pytest.fail(f"{why} needs root (network namespaces, nftables)", pytrace=False)
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"], check=True)
        subprocess.run(["ip", "netns", "exec", name, NFT, "-f", "-"], input=rules.encode(),
                       check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)
