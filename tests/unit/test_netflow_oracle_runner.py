"""run_nfacctd itself: a 1.7.7 run whose log reports trouble is not trusted.

A stand-in ``nfacctd`` (a shell script) prints a log and writes the CSV file named in the
config it is given, so these tests need no pmacct.
"""
from __future__ import annotations

import pytest

from tests.unit import netflow_oracle as O

CSV = "SRC_IP,PACKETS,FLOWS,BYTES\n10.0.0.1,3,1,300\n"


def fake_nfacctd(tmp_path, logs: list[str], header_only_runs: int = 0):
    """A script printing logs[n] on its n-th run (the last one from then on); its first
    ``header_only_runs`` runs print the CSV header and no rows."""
    for i, text in enumerate(logs):
        (tmp_path / f"log{i}").write_text(text)
    script = tmp_path / "nfacctd"
    script.write_text(f"""#!/bin/sh
n=$(cat {tmp_path}/count 2>/dev/null || echo 0)
echo $((n + 1)) > {tmp_path}/count
[ $n -ge {len(logs)} ] && n={len(logs) - 1}
log=$(sed -n 's/^logfile: //p' "$2")
cat {tmp_path}/log$n > "$log"
out=$(sed -n 's/^print_output_file\\[a\\]: //p' "$2")
if [ $(cat {tmp_path}/count) -le {header_only_runs} ]; then printf 'SRC_IP,PACKETS,FLOWS,BYTES\n' > "$out"
else printf '{CSV}' > "$out"; fi
grep -q '^plugin_pipe_size: 20480000$' "$2" || echo "ERROR small pipe" >> "$log"
""")
    script.chmod(0o755)
    return script


def runs(tmp_path) -> int:
    return int((tmp_path / "count").read_text())


def test_a_clean_log_gives_the_rows_at_once(tmp_path):
    binary = fake_nfacctd(tmp_path, ["INFO ( a/print ): *** Purging cache - END ***\n"])
    rows = O.run_nfacctd("x.pcap", ("src_host",), binary=str(binary))
    assert rows == [{"SRC_IP": "10.0.0.1", "PACKETS": "3", "FLOWS": "1", "BYTES": "300"}]
    assert runs(tmp_path) == 1


def test_missing_data_means_run_again(tmp_path):
    binary = fake_nfacctd(tmp_path, ["WARN ( a/print ): We are missing data.\n", "INFO ok\n"])
    rows = O.run_nfacctd("x.pcap", ("src_host",), binary=str(binary))
    assert [r["PACKETS"] for r in rows] == ["3"]
    assert runs(tmp_path) == 2


def test_trouble_every_time_fails_with_the_log_lines(tmp_path):
    binary = fake_nfacctd(tmp_path, ["INFO start\nWARN ( a/print ): Finished cache entries\n"])
    with pytest.raises(RuntimeError) as e:
        O.run_nfacctd("x.pcap", ("src_host",), binary=str(binary))
    assert "WARN ( a/print ): Finished cache entries" in str(e.value)
    assert "INFO start" not in str(e.value)
    assert runs(tmp_path) == 3


def test_a_run_that_printed_no_rows_runs_again(tmp_path):
    binary = fake_nfacctd(tmp_path, ["INFO ok\n"], header_only_runs=2)
    rows = O.run_nfacctd("x.pcap", ("src_host",), binary=str(binary))
    assert [r["SRC_IP"] for r in rows] == ["10.0.0.1"]
    assert runs(tmp_path) == 3


def test_no_rows_three_times_is_an_answer(tmp_path):
    binary = fake_nfacctd(tmp_path, ["INFO ok\n"], header_only_runs=5)
    assert O.run_nfacctd("x.pcap", ("src_host",), binary=str(binary)) == []
    assert runs(tmp_path) == 3
