"""CONFIG-KEYS (hand-written) must agree with the key registry: the implemented keys, their
aliases, switches, scopes, daemons and defaults, and the list of known keys. And every key
pmacct 1.7.7 documents must be known to the registry."""
import gzip
import re
from pathlib import Path

import pytest

from pypmacct.config import registry
from pypmacct.config.cli import SWITCHES

REPO = Path(__file__).resolve().parents[2]
ACCOUNTING = ("pmacctd", "uacctd", "nfacctd", "sfacctd")
SCOPES = {"global": registry.GLOBAL, "plugin": registry.PLUGIN,
          "global, plugin": registry.BOTH}


def _sections():
    text = (REPO / "CONFIG-KEYS").read_text()
    head, _, rest = text.partition("\nIMPLEMENTED KEYS\n================\n")
    implemented, _, known = rest.partition("\nKNOWN, NOT IMPLEMENTED YET\n"
                                           "==========================\n")
    assert implemented and known, "CONFIG-KEYS lost its section headings"
    return implemented, known


def _implemented_entries() -> dict[str, dict]:
    implemented, _ = _sections()
    entries = {}
    for block in re.split(r"\n(?=KEY:)", implemented):
        if not block.startswith("KEY:"):
            continue
        fields, last = {}, None
        for line in block.splitlines():
            m = re.match(r"^([A-Z]+):\s+(.*)$", line)
            if m:
                last = m.group(1)
                fields[last] = m.group(2).strip()
            elif line.startswith(" " * 10) and last:
                fields[last] += " " + line.strip()
        m = re.fullmatch(r"([a-z0-9_]+)(?: \((-\w)(?:, (.+))?\))?", fields["KEY"])
        assert m, f"bad KEY line: {fields['KEY']}"
        fields["name"], fields["switch"], fields["switch_daemons"] = m.groups()
        assert fields["name"] not in entries, f"{fields['name']} documented twice"
        entries[fields["name"]] = fields
    return entries


def _known_entries() -> list[tuple[str, ...]]:
    _, known = _sections()
    body = known.strip("\n").split("\n\n", 1)[1]     # after the heading's paragraph
    entries = []
    for line in body.splitlines():
        if not line.strip():
            continue
        names = [n for n in line.strip().split(", ") if n]
        if line.startswith("    "):
            entries[-1] += [n.rstrip(",") for n in names]
        else:
            entries.append([n.rstrip(",") for n in names])
    return [tuple(e) for e in entries]


def _and_list(names) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _switch_doc(key) -> tuple:
    """(switch, daemons text or None) that CONFIG-KEYS must show for ``key``."""
    found = {}
    for daemon, table in SWITCHES.items():
        for letter, (name, _) in table.items():
            if registry.lookup(name) is key:
                found.setdefault(letter, []).append(daemon)
    if not found:
        return (None, None)
    assert len(found) == 1, f"{key.name} has several switches: {found}"
    letter, daemons = next(iter(found.items()))
    return (f"-{letter}", None if len(daemons) == 4 else _and_list(daemons))


def test_documented_keys_are_the_implemented_keys():
    assert set(_implemented_entries()) == set(registry.implemented_keys())


@pytest.mark.parametrize("name", sorted(registry.implemented_keys()))
def test_documented_key_matches_registry(name):
    key = registry.KEYS[name]
    doc = _implemented_entries()[name]
    aliases = tuple(a.strip() for a in doc.get("ALIASES", "").split(",") if a.strip())
    assert aliases == key.aliases
    assert SCOPES[doc["SCOPE"]] == key.scope
    assert doc["DAEMONS"] == ", ".join(d for d in ACCOUNTING if key.applies_to(d))
    assert doc["DEFAULT"] == registry.describe_default(key)
    assert (doc["switch"], doc["switch_daemons"]) == _switch_doc(key)
    assert doc.get("VALUES") and doc.get("DESC")


def test_known_list_matches_registry():
    documented = _known_entries()
    expected = [k.names for k in registry.KEYS.values() if not k.implemented]
    assert sorted(documented) == sorted(expected)


PMACCT_DOC = Path("/usr/share/doc/pmacct/CONFIG-KEYS.gz")
# Named in pmacct 1.7.7's CONFIG-KEYS but missing from its key dictionary: pmacct itself
# answers "Unknown key" for them.
NOT_IN_PMACCT_DICTIONARY = {"sfacctd_ipv6_only", "sfacctd_counter_persistent_msg",
                            "sfactd_counter_amqp_exchange_type"}


def _pmacct_doc_keys() -> set[str]:
    """Key names from the KEY: headers of pmacct 1.7.7's CONFIG-KEYS."""
    if not PMACCT_DOC.exists():
        pytest.fail(f"{PMACCT_DOC} not found: install pmacct 1.7.7 (apt-get install -y pmacct)",
                    pytrace=False)
    lines = gzip.open(PMACCT_DOC, "rt").read().splitlines()
    names = set()
    i = 0
    while i < len(lines):
        if not lines[i].startswith("KEY:"):
            i += 1
            continue
        head = lines[i][4:]
        i += 1
        # a header may go on over indented lines listing more names (or flags)
        while i < len(lines) and re.match(r"^\s+[a-z_|\[\] ,A-Z()-]*(\||\]|\[)", lines[i]) \
                and not re.match(r"^(VALUES?|DESC|DEFAULT|NOTES)", lines[i]):
            head += " " + lines[i]
            i += 1
        head = re.sub(r"\[[A-Z_, ]+\]|\(-\w\)", " ", head)
        names.update(re.findall(r"[a-z][a-z0-9_]*", head))
    return names


@pytest.mark.oracle
def test_every_pmacct_177_documented_key_is_known():
    doc = _pmacct_doc_keys()
    assert len(doc) > 550            # the parse found the headers
    unknown = {n for n in doc if registry.lookup(n) is None}
    assert unknown == NOT_IN_PMACCT_DICTIONARY
