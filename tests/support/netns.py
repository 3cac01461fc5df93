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


def run_uacctd_pair(ns: str, theirs, ours, traffic: str) -> None:
    """pmacct 1.7.7's uacctd (config ``theirs/uacctd.conf``) and ours (``ours/...``)
    side by side in namespace ``ns``: wait until both logs say they are up, run
    ``traffic`` (Python code) in the namespace, then stop both with SIGINT (SIGKILL
    after 30 s) so that they purge."""
    import signal
    import sys
    import time

    from tests.support import oracle
    procs = [subprocess.Popen(["ip", "netns", "exec", ns, str(b), "-f", str(d / "uacctd.conf")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
             for b, d in ((oracle.pmacct_binary("uacctd"), theirs),
                          (oracle.our_binary("uacctd"), ours))]
    try:
        end = time.monotonic() + 20
        while time.monotonic() < end and not all(
                (d / "log").exists() and any(w in (d / "log").read_text() for w in
                                             ("NFLOG", "link type", "cache entries"))
                for d in (theirs, ours)):
            time.sleep(0.1)
        time.sleep(1.5)            # pmacct binds its group after the plugins start
        subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", traffic],
                       check=True, timeout=60)
        time.sleep(2.5)
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGINT)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
    time.sleep(0.5)
