"""The print plugin run in-process: outputs, purges, writers, files, markers, names."""
from __future__ import annotations

import json
import os
import re
import stat
import time

import numpy as np
import pytest

from pypmacct.plugins.base import PluginContext
from pypmacct.plugins.print_plugin import PrintConfigError, PrintPlugin

from .print_support import FakePcfg, batch

CTX = PluginContext("nfacctd")


def plugin(**keys):
    p = PrintPlugin(FakePcfg(**keys), CTX)
    p.start()
    return p


def flows(n, port=80, start=0, **extra):
    """n flows from distinct hosts 10.0.x.y to one port, one packet of 100 bytes each."""
    rows = []
    for i in range(start, start + n):
        rows.append(dict(src_host=f"10.0.{i // 256}.{i % 256}", dst_host="192.0.2.1",
                         dst_port=port, proto=6, packets=1, bytes=100, **extra))
    return batch(rows)


def purge(p):
    """A periodic purge, waiting for its writer."""
    p.on_deadline(p.next_deadline())
    p.writers.wait_all()


def read(path):
    with open(path) as f:
        return f.read()


# ---- files -----------------------------------------------------------------------------
def test_file_output_overwritten_each_purge_with_header(tmp_path):
    out = tmp_path / "out.csv"
    p = plugin(aggregate="src_host,dst_port", print_output="csv", print_output_file=str(out))
    p.ingest(flows(2))
    purge(p)
    assert read(out) == "SRC_IP,DST_PORT,PACKETS,BYTES\n10.0.0.0,80,1,100\n10.0.0.1,80,1,100\n"
    p.ingest(flows(1, start=5))
    p.ingest(flows(1, start=5))
    purge(p)
    assert read(out) == "SRC_IP,DST_PORT,PACKETS,BYTES\n10.0.0.5,80,2,200\n"
    p.finish()      # nothing left: no write
    assert read(out) == "SRC_IP,DST_PORT,PACKETS,BYTES\n10.0.0.5,80,2,200\n"


def test_append_keeps_previous_purges_and_writes_header_once(tmp_path):
    out = tmp_path / "sub" / "dir" / "out.csv"     # directories are created
    p = plugin(aggregate="dst_port", print_output="csv", print_output_file=str(out),
               print_output_file_append=True)
    p.ingest(flows(1, port=80))
    purge(p)
    p.ingest(flows(1, port=443))
    p.finish()
    assert read(out) == "DST_PORT,PACKETS,BYTES\n80,1,100\n443,1,100\n"


def test_files_are_created_with_the_process_umask(tmp_path):
    out = tmp_path / "out.txt"
    old = os.umask(0o077)
    try:
        p = plugin(print_output_file=str(out))
        p.ingest(flows(1))
        p.finish()
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600


def test_formatted_and_json_files(tmp_path):
    for fmt, want in [("formatted", "DST_PORT  PACKETS               BYTES\n"
                                    "80        1                     100\n"),
                      ("json", '{"event_type": "purge", "port_dst": 80, "packets": 1, '
                               '"bytes": 100}\n')]:
        out = tmp_path / f"out.{fmt}"
        p = plugin(aggregate="dst_port", print_output=fmt, print_output_file=str(out))
        p.ingest(flows(1))
        p.finish()
        assert read(out) == want


def test_markers_text_and_json(tmp_path):
    out = tmp_path / "m.csv"
    p = plugin(aggregate="dst_port", print_output="csv", print_output_file=str(out),
               print_markers=True)
    p.ingest(flows(1))
    p.finish()
    pid = os.getpid()
    assert read(out) == (f"--START ({pid})--\nDST_PORT,PACKETS,BYTES\n80,1,100\n"
                         f"--END ({pid})--\n")
    out = tmp_path / "m.json"
    p = plugin(aggregate="dst_port", print_output="json", print_output_file=str(out),
               print_markers=True, name="j")
    p.ingest(flows(2, port=80))
    p.ingest(flows(1, port=81))
    p.finish()
    lines = [json.loads(l) for l in read(out).splitlines()]
    assert lines[0] == {"event_type": "purge_init", "writer_id": f"j/{pid}"}
    assert lines[-1] == {"event_type": "purge_close", "writer_id": f"j/{pid}",
                         "purged_entries": 2, "total_entries": 2, "duration": 0}
    assert [l["event_type"] for l in lines[1:-1]] == ["purge", "purge"]


def test_markers_in_a_forked_writer_carry_its_pid(tmp_path):
    out = tmp_path / "m.csv"
    p = plugin(aggregate="dst_port", print_output="csv", print_output_file=str(out),
               print_markers=True)
    p.ingest(flows(1))
    purge(p)
    pids = re.findall(r"--START \((\d+)\)--", read(out))
    assert pids and int(pids[0]) != os.getpid()


def test_empty_purge_writes_nothing_and_logs_et_x(tmp_path, capfd):
    out = tmp_path / "e.csv"
    p = plugin(print_output="csv", print_output_file=str(out))
    purge(p)
    p.finish()
    assert not out.exists()
    err = capfd.readouterr().err
    pid = os.getpid()
    assert f"INFO ( a/print ): *** Purging cache - START (PID: {pid}) ***" in err
    assert f"INFO ( a/print ): *** Purging cache - END (PID: {pid}, QN: 0/0, ET: X) ***" in err


def test_write_empty_file(tmp_path):
    out = tmp_path / "e.csv"
    p = plugin(aggregate="dst_port", print_output="csv", print_output_file=str(out),
               print_write_empty_file=True)
    p.finish()
    assert read(out) == "DST_PORT,PACKETS,BYTES\n"


def test_purge_log_lines(tmp_path, capfd):
    out = tmp_path / "l.csv"
    p = plugin(print_output="csv", print_output_file=str(out))
    p.ingest(flows(3))
    p.finish()
    err = capfd.readouterr().err
    pid = os.getpid()
    assert re.search(rf"INFO \( a/print \): \*\*\* Purging cache - START \(PID: {pid}\) \*\*\*\n"
                     rf"INFO \( a/print \): \*\*\* Purging cache - END \(PID: {pid}, QN: 3/3, "
                     rf"ET: 0\) \*\*\*", err)


# ---- stdout -------------------------------------------------------------------------------
def test_stdout_header_once_per_process(capfd, tmp_path):
    lock = tmp_path / "print.lock"
    p = plugin(aggregate="dst_port", print_output="csv", print_output_lock_file=str(lock))
    purge(p)                          # empty: prints nothing, header still owed
    p.ingest(flows(1, port=80))
    purge(p)
    p.ingest(flows(1, port=81))
    purge(p)
    p.ingest(flows(1, port=82))
    p.finish()
    out = capfd.readouterr().out
    assert out == "DST_PORT,PACKETS,BYTES\n80,1,100\n81,1,100\n82,1,100\n"
    assert lock.exists()


def test_stdout_warns_without_lock_file(capfd):
    plugin(print_output="csv")
    assert "WARN ( a/print ): no print_output_file and no print_output_lock_file defined." \
        in capfd.readouterr().err


def test_stdout_with_markers(capfd):
    p = plugin(aggregate="dst_port", print_output="formatted", print_markers=True)
    p.ingest(flows(1))
    p.finish()
    pid = os.getpid()
    assert capfd.readouterr().out == (f"--START ({pid})--\nDST_PORT  PACKETS               BYTES\n"
                                      f"80        1                     100\n--END ({pid})--\n")


# ---- dynamic names -----------------------------------------------------------------------
def test_dynamic_names_split_rows_by_exporter_and_link_latest(tmp_path):
    p = plugin(aggregate="peer_src_ip,dst_port", print_output="csv",
               print_output_file=str(tmp_path / "out-$peer_src_ip.csv"),
               print_latest_file=str(tmp_path / "latest-$peer_src_ip"))
    rows = [dict(peer_src_ip="192.0.2.1", dst_port=80, packets=1, bytes=10),
            dict(peer_src_ip="2001:db8::1", dst_port=80, packets=1, bytes=20),
            dict(peer_src_ip="192.0.2.1", dst_port=443, packets=1, bytes=30)]
    p.ingest(batch(rows))
    purge(p)
    a = tmp_path / "out-192_0_2_1.csv"
    b = tmp_path / "out-2001_db8__1.csv"
    assert read(a) == "PEER_SRC_IP,DST_PORT,PACKETS,BYTES\n192.0.2.1,80,1,10\n192.0.2.1,443,1,30\n"
    assert read(b) == "PEER_SRC_IP,DST_PORT,PACKETS,BYTES\n2001:db8::1,80,1,20\n"
    assert os.readlink(tmp_path / "latest-192_0_2_1") == str(a)
    assert os.readlink(tmp_path / "latest-2001_db8__1") == str(b)


def test_dynamic_names_from_time_bins_and_tags(tmp_path):
    p = plugin(aggregate="tag,dst_port", print_output="csv", timestamps_utc=True,
               print_history="1h", print_history_roundoff="h", print_refresh_time=60,
               print_output_file=str(tmp_path / "%Y%m%d-%H$tzone-$tag-$post_tag.csv"),
               post_tag=9)
    t1 = 1704067200 * 10**6          # 2024-01-01 00:00 UTC
    rows = [dict(tag=1, dst_port=80, packets=1, bytes=1, time_start=t1 + 60 * 10**6),
            dict(tag=1, dst_port=80, packets=1, bytes=1, time_start=t1 + 3700 * 10**6),
            dict(tag=2, dst_port=80, packets=1, bytes=1, time_start=t1 + 3700 * 10**6)]
    p.ingest(batch(rows))
    p.finish()
    names = sorted(os.listdir(tmp_path))
    assert names == ["20240101-00Z-1-9.csv", "20240101-01Z-1-9.csv", "20240101-01Z-2-9.csv"]
    assert read(tmp_path / "20240101-01Z-2-9.csv") == "TAG,DST_PORT,PACKETS,BYTES\n2,80,1,1\n"


def test_latest_file_disabled_when_output_name_is_static(tmp_path, capfd):
    p = plugin(print_output="csv", print_output_file=str(tmp_path / "static.csv"),
               print_latest_file=str(tmp_path / "latest-$peer_src_ip"))
    p.ingest(flows(1))
    p.finish()
    assert sorted(os.listdir(tmp_path)) == ["static.csv"]
    assert "Disabling print_latest_file due to non-dynamic print_output_file" in \
        capfd.readouterr().err


def test_latest_file_points_at_static_file(tmp_path):
    p = plugin(print_output="csv", print_output_file=str(tmp_path / "static.csv"),
               print_latest_file=str(tmp_path / "latest"))
    p.ingest(flows(1))
    p.finish()
    assert os.readlink(tmp_path / "latest") == str(tmp_path / "static.csv")


# ---- cache full: early purges without loss -------------------------------------------------
def test_full_cache_purges_early_without_losing_data(tmp_path, capfd):
    out = tmp_path / "out.csv"
    # 1 bucket: the cache holds 11 aggregates, then purges early
    p = plugin(aggregate="src_host,dst_port", print_output="csv", print_output_file=str(out),
               print_cache_entries=1)
    for k in range(5):
        p.ingest(flows(10, start=10 * k))
    p.writers.wait_all()
    purge(p)
    text = read(out)
    lines = text.splitlines()
    assert lines[0] == "SRC_IP,DST_PORT,PACKETS,BYTES"
    assert lines.count("SRC_IP,DST_PORT,PACKETS,BYTES") == 1
    assert sorted(lines[1:]) == sorted(f"10.0.0.{i},80,1,100" for i in range(50))
    assert "Finished cache entries (ie. print_cache_entries). Purging." in capfd.readouterr().err
    # the next interval starts a new file again
    p.ingest(flows(1, start=99))
    purge(p)
    assert read(out) == "SRC_IP,DST_PORT,PACKETS,BYTES\n10.0.0.99,80,1,100\n"


def test_full_cache_with_json_and_markers_keeps_every_row(tmp_path):
    out = tmp_path / "out.json"
    p = plugin(aggregate="src_host", print_output="json", print_output_file=str(out),
               print_cache_entries=1, print_markers=True)
    for k in range(4):
        p.ingest(flows(8, start=8 * k))
    p.finish()
    rows = [json.loads(l) for l in read(out).splitlines()]
    purged = [r for r in rows if r["event_type"] == "purge"]
    assert sorted(r["ip_src"] for r in purged) == sorted(f"10.0.0.{i}" for i in range(32))
    assert sum(r["event_type"] == "purge_init" for r in rows) >= 2


# ---- writers -----------------------------------------------------------------------------
def test_writer_limit_reached_writes_inline(tmp_path, capfd, monkeypatch):
    out = tmp_path / "out.csv"
    p = plugin(aggregate="dst_port", print_output="csv", print_output_file=str(out),
               print_max_writers=1)
    monkeypatch.setattr(p.writers, "full", lambda: True)
    p.ingest(flows(1))
    p.on_deadline(p.next_deadline())
    assert not p.writers.running
    assert read(out) == "DST_PORT,PACKETS,BYTES\n80,1,100\n"
    assert "Maximum number of writer processes reached" in capfd.readouterr().err


def test_writers_are_reaped_and_bounded(tmp_path):
    out = tmp_path / "out-%s.csv"
    p = plugin(aggregate="dst_port", print_output="csv",
               print_output_file=str(tmp_path / "o-$tag.csv"), print_max_writers=2)
    for k in range(5):
        p.ingest(flows(1, port=k))
        p.on_deadline(p.next_deadline())
        assert len(p.writers.running) <= 2
    p.writers.wait_all()
    time.sleep(0.05)
    p.writers.reap()
    assert not p.writers.running
    assert read(tmp_path / "o-0.csv") == "DST_PORT,PACKETS,BYTES\n4,1,100\n"


def test_trigger_runs_after_each_purge_from_the_writer(tmp_path, monkeypatch):
    from pypmacct.plugins import print_plugin as pp
    out = tmp_path / "out.csv"
    log = tmp_path / "trigger.log"
    title = tmp_path / "title"
    script = tmp_path / "trigger.sh"
    script.write_text(f"#!/bin/sh\nwc -l < {out} >> {log}\n")
    script.chmod(0o755)
    spawn = pp.spawn_detached

    def spy(path, log=None):           # runs in the writer process
        with open("/proc/self/cmdline", "rb") as f:
            title.write_bytes(f.read().replace(b"\0", b" ").strip())
        spawn(path, log)
    monkeypatch.setattr(pp, "spawn_detached", spy)
    p = plugin(aggregate="dst_port", print_output="csv", print_output_file=str(out),
               print_trigger_exec=str(script))
    p.ingest(flows(1))
    purge(p)
    for _ in range(100):
        if log.exists() and read(log).strip():
            break
        time.sleep(0.05)
    # run after the file was written, from the writer process (named as pmacct names it)
    assert read(log).strip() == "2"
    assert read(title) == "nfacctd: print Plugin -- Writer [a]"


def test_no_trigger_for_empty_purges(tmp_path):
    log = tmp_path / "trigger.log"
    script = tmp_path / "trigger.sh"
    script.write_text(f"#!/bin/sh\necho ran >> {log}\n")
    script.chmod(0o755)
    p = plugin(print_output="csv", print_output_file=str(tmp_path / "o.csv"),
               print_trigger_exec=str(script))
    purge(p)
    p.finish()
    time.sleep(0.2)
    assert not log.exists()


# ---- time bins -----------------------------------------------------------------------------
def test_aggregates_of_the_next_bin_wait_for_a_later_purge(tmp_path):
    out = tmp_path / "out.csv"
    p = plugin(aggregate="dst_port", print_output="csv", print_output_file=str(out),
               print_history="1m", timestamps_utc=True)
    base = p._basetime
    now = int(time.time())
    # pretend the bin rolled over since the last purge: the current bin is now + 1 slot
    p._basetime = base - 60
    old = dict(dst_port=1, packets=1, bytes=1, time_start=(base - 60) * 10**6)
    new = dict(dst_port=2, packets=1, bytes=1, time_start=(base + 1) * 10**6)
    p.ingest(batch([old, new]))
    p._purge(final=False)
    p.writers.wait_all()
    assert read(out) == "DST_PORT,PACKETS,BYTES\n1,1,1\n"
    assert len(p.cache) == 1
    p.finish()
    assert read(out) == "DST_PORT,PACKETS,BYTES\n2,1,1\n"
    assert now >= base


def test_timestamps_secs_drops_microseconds_before_aggregating(tmp_path):
    out = tmp_path / "out.csv"
    p = plugin(aggregate="timestamp_start,timestamp_export", print_output="csv",
               print_output_file=str(out), timestamps_secs=True, timestamps_utc=True)
    t = 1704067200 * 10**6
    p.ingest(batch([dict(ts_start=t + 1, ts_export=t + 5, packets=1, bytes=1),
                    dict(ts_start=t + 999_999, ts_export=t + 5, packets=1, bytes=1)]))
    p.finish()
    assert read(out) == ("TIMESTAMP_START,TIMESTAMP_EXPORT,PACKETS,BYTES\n"
                         "2024-01-01 00:00:00.000000,2024-01-01 00:00:00.000005,2,2\n")


# ---- start-up checks --------------------------------------------------------------------
def test_formatted_with_variable_length_primitives_is_refused():
    with pytest.raises(PrintConfigError, match="variable-length primitives"):
        PrintPlugin(FakePcfg(aggregate="label,src_host"), CTX)
    PrintPlugin(FakePcfg(aggregate="label,src_host", print_output="csv"), CTX)


def test_daemonize_without_output_file_is_refused():
    with pytest.raises(PrintConfigError, match="Output would be lost"):
        PrintPlugin(FakePcfg(daemonize=True), CTX)


def test_tcpflags_are_ored_in_the_value_column(tmp_path):
    out = tmp_path / "out.csv"
    p = plugin(aggregate="dst_port,tcpflags", print_output="csv", print_output_file=str(out))
    p.ingest(batch([dict(dst_port=80, tcp_flags=2, packets=1, bytes=1),
                    dict(dst_port=80, tcp_flags=16, packets=1, bytes=1),
                    dict(dst_port=80, tcp_flags=1, packets=1, bytes=1)]))
    p.finish()
    assert read(out) == "DST_PORT,TCP_FLAGS,PACKETS,BYTES\n80,19,3,3\n"


def test_none_aggregate_gives_one_row(tmp_path):
    out = tmp_path / "out.csv"
    p = plugin(aggregate="none", print_output="csv", print_output_file=str(out))
    p.ingest(flows(7))
    p.finish()
    assert read(out) == "PACKETS,BYTES\n7,700\n"


def test_flows_column(tmp_path):
    out = tmp_path / "out.csv"
    p = plugin(aggregate="dst_port,flows", print_output="csv", print_output_file=str(out))
    p.ingest(batch([dict(dst_port=80, packets=2, bytes=3, flows=1)] * 2))
    p.finish()
    assert read(out) == "DST_PORT,PACKETS,FLOWS,BYTES\n80,4,2,6\n"


def test_early_purge_with_time_bins_empties_the_cache(tmp_path):
    out = tmp_path / "out.csv"
    p = plugin(aggregate="src_host", print_output="csv", print_output_file=str(out),
               print_history="1m", print_cache_entries=1)
    now = int(time.time())
    # every aggregate in the bin in progress: an early purge must still write them
    for k in range(3):
        p.ingest(flows(8, start=8 * k, time_start=now * 10**6))
    p.writers.wait_all()
    assert len(p.cache) < 11
    p.finish()
    lines = read(out).splitlines()
    assert lines[0] == "SRC_IP,PACKETS,BYTES" and lines.count(lines[0]) == 1
    assert sorted(lines[1:]) == sorted(f"10.0.0.{i},1,100" for i in range(24))


def test_unwritable_output_is_logged(tmp_path, capfd):
    blocker = tmp_path / "file"
    blocker.write_text("")
    p = plugin(print_output="csv", print_output_file=str(blocker / "sub" / "out.csv"))
    p.ingest(flows(2))
    p.finish()
    err = capfd.readouterr().err
    assert "open_output_file(): cannot create its directory" in err
    assert "2 aggregates not written" in err
    assert "QN: 0/2" in err


# ---- string table: only strings still in use survive a purge --------------------------------
def test_string_table_keeps_only_held_back_strings(tmp_path):
    now = int(time.time())
    bin_now = now - now % 60
    p = plugin(aggregate="label", print_output="csv", print_history="1m", timestamps_utc=True,
               print_output_file=str(tmp_path / "%H%M.csv"))
    old = (bin_now - 120) * 10**6          # a finished bin: written by the next purge
    new = (bin_now + 120) * 10**6          # a bin in the future: held back
    rows = [dict(label=1, packets=1, bytes=10, time_start=old),
            dict(label=2, packets=1, bytes=20, time_start=new),
            dict(label=3, packets=1, bytes=30, time_start=old)]
    p.ingest(batch(rows, ["", "gold", "silver", "bronze"]))
    purge(p)
    assert p.strings.strings == ["", "silver"]        # only the held-back row's label
    p.ingest(batch([dict(label=1, packets=2, bytes=5, time_start=new)], ["", "silver"]))
    p.finish()
    written = sorted(read(tmp_path / f) for f in os.listdir(tmp_path))
    assert "LABEL,PACKETS,BYTES\ngold,1,10\nbronze,1,30\n" in written
    assert "LABEL,PACKETS,BYTES\nsilver,3,25\n" in written
