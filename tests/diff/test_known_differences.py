"""The checks behind documented differences are real: they pass and fail as they should."""
from pathlib import Path

from .known_differences import DOC, KNOWN, Known, superset_check, zero_column

ROOT = Path(__file__).resolve().parents[2]
FLAGS = Known("x", frozenset(), column="TCP_FLAGS", json_key="tcp_flags")


def test_every_known_difference_is_documented():
    headings = {l[3:].strip() for l in (ROOT / DOC).read_text().splitlines()
                if l.startswith("## ")}
    for k in KNOWN:
        assert k.doc in headings, f"{k.doc!r} has no section in {DOC}"


def test_zero_column_csv_formatted_json():
    csv = "SRC_PORT,TCP_FLAGS,PACKETS,BYTES\n80,16,1,60\n443,2,3,180\n"
    assert zero_column(csv, "csv", FLAGS) == "SRC_PORT,TCP_FLAGS,PACKETS,BYTES\n80,0,1,60\n443,0,3,180\n"
    fmt = ("SRC_PORT  TCP_FLAGS  PACKETS               BYTES\n"
           "80        16         1                     60\n")
    assert zero_column(fmt, "formatted", FLAGS) == (
        "SRC_PORT  TCP_FLAGS  PACKETS               BYTES\n"
        "80        0          1                     60\n")
    js = '{"event_type": "purge", "tcp_flags": "24", "packets": 1}\n'
    assert zero_column(js, "json", FLAGS) == '{"event_type": "purge", "tcp_flags": "0", "packets": 1}\n'
    sr = Known("x", frozenset(), column="SAMPLING_RATE", json_key="sampling_rate")
    assert zero_column('{"sampling_rate": 256, "bytes": 9}\n', "json", sr) == \
        '{"sampling_rate": 0, "bytes": 9}\n'


def test_superset_check():
    theirs = "SRC_IP,PACKETS,BYTES\n10.0.0.1,1,10\n"
    problems, more = superset_check(theirs, "SRC_IP,PACKETS,BYTES\n10.0.0.1,2,20\n", "csv")
    assert problems == [] and more
    problems, more = superset_check(theirs, theirs, "csv")
    assert problems == [] and not more
    problems, _ = superset_check(theirs, "SRC_IP,PACKETS,BYTES\n10.0.0.2,5,50\n", "csv")
    assert problems and "only in pmacct" in problems[0]
    problems, _ = superset_check("SRC_IP,PACKETS,BYTES\n10.0.0.1,3,10\n",
                                 "SRC_IP,PACKETS,BYTES\n10.0.0.1,2,20\n", "csv")
    assert problems and "<" in problems[0]
