"""Configuration file syntax: pmacct 1.7.7's rules (found by running it, see
docs/config.md) plus our line continuation."""
import pytest

from pypmacct.config import ConfigError
from pypmacct.config.parser import Line, read_lines, split_line


def lines_of(tmp_path, text, name="x.conf"):
    p = tmp_path / name
    p.write_text(text)
    return p, read_lines(str(p))


def test_key_value_and_where(tmp_path):
    p, lines = lines_of(tmp_path, "debug: true\nnfacctd_port: 2100\n")
    assert lines == [Line("debug", None, "true", f"{p}:1"),
                     Line("nfacctd_port", None, "2100", f"{p}:2")]


def test_comments_and_blank_lines(tmp_path):
    p, lines = lines_of(tmp_path, "! a comment\n   ! indented\n\t# hash too\n\n   \n"
                                  "debug: true\n")
    assert [(ln.key, ln.where) for ln in lines] == [("debug", f"{p}:6")]


def test_no_end_of_line_comments(tmp_path):
    _, lines = lines_of(tmp_path, "aggregate: src_host ! note\n")
    assert lines[0].value == "src_host ! note"


def test_value_splits_at_first_colon_and_is_trimmed(tmp_path):
    _, lines = lines_of(tmp_path, "nfacctd_ip:   ::1  \nprint_output_file: /tmp/a:b.txt\n")
    assert [ln.value for ln in lines] == ["::1", "/tmp/a:b.txt"]


def test_key_whitespace_dropped_and_lowercased_name_kept(tmp_path):
    _, lines = lines_of(tmp_path, " Aggregate [ My Plugin ] :  src_host , dst_host \n"
                                  "PRINT_ output: CSV\n")
    assert lines[0] == Line("aggregate", " My Plugin ", "src_host , dst_host", lines[0].where)
    assert (lines[1].key, lines[1].name, lines[1].value) == ("print_output", None, "CSV")


def test_empty_value_is_kept_empty(tmp_path):
    _, lines = lines_of(tmp_path, "pidfile:\n")
    assert lines[0].value == ""


def test_crlf_line_endings(tmp_path):
    _, lines = lines_of(tmp_path, "debug: true\r\naggregate: proto\r\n")
    assert [(ln.key, ln.value) for ln in lines] == [("debug", "true"), ("aggregate", "proto")]


@pytest.mark.parametrize("text, message", [
    ("debug true\n", "missing ':'"),
    (": true\n", "missing key"),
    ("  [a]: x\n", "not attached to a key"),
    ("aggregate[a: x\n", "brackets"),
    ("aggregate[a]]: x\n", "unbalanced"),
    ("aggregate[[a]]: x\n", "nested"),
    ("aggregate[a][b]: x\n", "repeated"),
    ("aggregate[a]x: y\n", "after ']'"),
])
def test_syntax_errors_name_file_and_line(tmp_path, text, message):
    p = tmp_path / "bad.conf"
    p.write_text("! first line\n" + text)
    with pytest.raises(ConfigError) as e:
        read_lines(str(p))
    assert e.value.where == f"{p}:2"
    assert str(e.value).startswith(f"[{p}:2] syntax error")
    assert message in str(e.value)


def test_continuation_joins_lines(tmp_path):
    p, lines = lines_of(tmp_path, "aggregate: src_host,\\\n   dst_host, \\\n  proto\ndebug: true\n")
    assert lines[0] == Line("aggregate", None, "src_host,dst_host, proto", f"{p}:1")
    assert (lines[1].key, lines[1].where) == ("debug", f"{p}:4")


def test_continuation_skips_comments_and_ends_at_blank_or_eof(tmp_path):
    p, lines = lines_of(tmp_path, "aggregate: src_host,\\\n! dst_host,\\\n  proto\n"
                                  "pcap_filter: net 10.0.0.0/8 and \\\n\nlogfile: /tmp/l\\\n")
    assert [(ln.key, ln.value, ln.where) for ln in lines] == [
        ("aggregate", "src_host,proto", f"{p}:1"),
        ("pcap_filter", "net 10.0.0.0/8 and", f"{p}:4"),
        ("logfile", "/tmp/l", f"{p}:6"),
    ]


def test_continued_line_errors_point_at_first_line(tmp_path):
    p = tmp_path / "c.conf"
    p.write_text("debug: true\naggregate \\\n src_host\n")
    with pytest.raises(ConfigError) as e:
        read_lines(str(p))
    assert e.value.where == f"{p}:2"


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ConfigError, match=r"^\[/nonexistent/x.conf\] file not found$"):
        read_lines("/nonexistent/x.conf")
    with pytest.raises(ConfigError, match="not a regular file"):
        read_lines(str(tmp_path))


def test_too_many_lines(tmp_path):
    p = tmp_path / "big.conf"
    p.write_text("! x\n" * 8225)
    with pytest.raises(ConfigError, match="more than 8224 lines"):
        read_lines(str(p))


def test_split_line_direct():
    assert split_line("a[b]: c", "cmdline -x") == Line("a", "b", "c", "cmdline -x")
