"""Packet classifiers (pmacctd, uacctd): L7-filter patterns matched per flow.

``patterns`` reads ``*.pat`` files and translates their regular-expression dialect;
``flows`` keeps the per-flow state and classifies a batch of packets. See
docs/classifiers.md.
"""
from __future__ import annotations

from .flows import FlowClassifier, payload_bounds
from .patterns import Classifier, PatternError, load_classifiers

__all__ = ["FlowClassifier", "payload_bounds", "Classifier", "PatternError",
           "load_classifiers", "classifier_for", "class_table", "drop_class_without"]

_LOADED: dict[str, list[Classifier]] = {}


def class_table(path: str | None, log=None, table_num: int = 256) -> list[Classifier]:
    """The classifiers of directory ``path``, loaded once per process (the memory
    plugin's ``pmacct -C`` answer reuses what the core loaded before the fork)."""
    if not path:
        return []
    key = f"{path}\0{table_num}"
    if key not in _LOADED:
        _LOADED[key] = load_classifiers(path, log, table_num)
    return _LOADED[key]


def _aggregates_class(cfg) -> bool:
    return any("class" in tuple(p.get("aggregate") or ()) for p in cfg.plugins)


def drop_class_without(cfg, log) -> None:
    """Without ``classifiers``, pmacct 1.7.7 warns and takes 'class' out of every
    plugin's aggregate; so do we (pmacctd, uacctd)."""
    if cfg.get("classifiers") or not _aggregates_class(cfg):
        return
    from pypmacct.config.registry import lookup
    key = lookup("aggregate")
    log.warn("'class' aggregation not possible without 'classifiers': ignored")
    for p in cfg.plugins:
        agg = tuple(p.get("aggregate") or ())
        keep = tuple(a for a in agg if a != "class")
        if keep != agg:
            p._set(key, keep or ("none",), p.where("aggregate") or "core")


def classifier_for(cfg, log=None) -> FlowClassifier | None:
    """The flow classifier of a pmacctd/uacctd configuration, or None when no plugin
    aggregates 'class' (or no ``classifiers`` directory is set). Raises ValueError for
    what pmacct refused at start-up."""
    path = cfg.get("classifiers")
    if not path:
        return None
    for p in cfg.plugins:
        try:
            rate = p.get("sampling_rate")
        except KeyError:
            rate = None
        if rate or cfg.get("nfacctd_ext_sampling_rate"):
            raise ValueError("Packet sampling and classification are mutual exclusive.")
    try:
        table = class_table(path, log, int(cfg.get("classifier_table_num") or 256))
    except OSError as e:
        raise ValueError(str(e)) from None
    if not _aggregates_class(cfg):
        return None
    # sql_aggressive_classification needs nothing more: the core holds a flow's first
    # packets back until its class is known, so no plugin ever sees them as 'unknown'
    # when a class is found later (docs/classifiers.md)
    return FlowClassifier(table, tentatives=int(cfg.get("classifier_tentatives") or 5),
                          snaplen=int(cfg.get("snaplen") or 128),
                          lifetime=int(cfg.get("pmacctd_flow_lifetime") or 60),
                          hold_bytes=int(cfg.get("pmacctd_flow_buffer_size") or 16384000))
