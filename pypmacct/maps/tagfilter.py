"""pre_tag_filter / pre_tag2_filter / pre_tag_label_filter and post_tag / post_tag2.

Tag filters (1.7.7 CONFIG-KEYS): a comma-separated list of values, ranges ``a-b`` and
negations ``-N`` (and negated ranges ``-a-b``); ``0`` matches untagged records. pmacct's
evaluation (evaluate_tags), which we follow: the entries are tried in order; an entry
that matches decides (in for a value or range, out for a negation); a negation that
does not match lets the record in at once; a record no entry decided is kept out.
Labels compare as prefixes (pmacct compares the entry's length only); an unlabelled
record has the label "null".
"""
from __future__ import annotations

import numpy as np

MAX_TAG = 2**64 - 1


class TagFilter:
    def __init__(self, text: str, key: str = "pre_tag_filter"):
        self.text = text
        self.entries: list[tuple[bool, int, int]] = []   # (negated, lo, hi)
        for raw in text.split(","):
            item = raw.strip()
            if not item:
                raise ValueError(f"'{key}': empty entry in {text!r}")
            neg = item.startswith("-")
            if neg:
                item = item[1:]
            lo_s, sep, hi_s = item.partition("-")
            try:
                lo = int(lo_s)
                hi = int(hi_s) if sep else lo
            except ValueError:
                raise ValueError(f"'{key}': {raw.strip()!r} is not a tag, a range or a "
                                 f"negated tag") from None
            if not (0 <= lo <= MAX_TAG and 0 <= hi <= MAX_TAG) or lo > hi:
                raise ValueError(f"'{key}': {raw.strip()!r} is out of range")
            self.entries.append((neg, lo, hi))
        self.any_positive = any(not n for n, _, _ in self.entries)

    def __call__(self, tags: np.ndarray) -> np.ndarray:
        tags = tags.astype(np.uint64, copy=False)
        decided = np.zeros(len(tags), bool)
        verdict = np.zeros(len(tags), bool)
        for neg, lo, hi in self.entries:
            hit = (tags >= np.uint64(lo)) & (tags <= np.uint64(hi))
            m = hit & ~decided
            verdict[m] = not neg
            if neg:
                verdict[~hit & ~decided] = True
                decided[:] = True
                break
            decided |= m
        return verdict


class LabelFilter:
    """pre_tag_label_filter: labels, 'null' for unlabelled, '-label' to keep out."""

    def __init__(self, text: str):
        self.text = text
        self.entries = []
        for raw in text.split(","):
            item = raw.strip()
            if not item:
                raise ValueError(f"'pre_tag_label_filter': empty entry in {text!r}")
            neg = item.startswith("-")
            if neg:
                item = item[1:]
            self.entries.append((neg, item))
        self.any_positive = any(not n for n, _ in self.entries)

    def __call__(self, recs: np.ndarray, strings: list[str]) -> np.ndarray:
        ids = recs["label"]
        # one verdict per distinct label id, then gathered back
        uniq, inv = np.unique(ids, return_inverse=True)
        out = np.empty(len(uniq), bool)
        for j, i in enumerate(uniq.tolist()):
            label = (strings[i] if 0 <= i < len(strings) else "") or "null"
            v = False
            for neg, want in self.entries:
                if label.startswith(want):
                    v = not neg
                    break
                if neg:
                    v = True
                    break
            out[j] = v
        return out[inv]


def channel_tag_stages(ch, pcfg, daemon: str, log, shared_map) -> None:
    """Fill a ChannelStages' tag parts from the plugin's configuration."""
    from pypmacct.config import ConfigError

    for key, field in (("pre_tag_filter", "tag"), ("pre_tag2_filter", "tag2")):
        text = pcfg.get(key)
        if text:
            try:
                ch.tag_filters.append((field, TagFilter(str(text), key)))
            except ValueError as e:
                raise ConfigError(str(e), where=pcfg.where(key), key=key) from None
            ch.fields.add(field)
    text = pcfg.get("pre_tag_label_filter")
    if text:
        ch.tag_filters.append(("label", LabelFilter(str(text))))
        ch.fields.add("label")
    for key, field in (("post_tag", "tag"), ("post_tag2", "tag2")):
        value = pcfg.get(key)
        if value:
            ch.post_tags[field] = np.uint64(value)
            ch.fields.add(field)
    if not pcfg.get("pre_tag_map"):
        return                      # (the map module is imported only for a map)
    from .pretag import load_plugin_map
    tagger = load_plugin_map(pcfg, daemon, log, shared_map)
    if tagger is not None:
        ch.tagger = tagger
        ch.fields |= tagger.fields
