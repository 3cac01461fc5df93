"""Core-side stages run on every decoded batch before it goes to the plugins' rings.

Daemon-agnostic: they read and write record columns only. ``CoreStages`` is built once
at start-up from the configuration (so every bad filter or map is a start-up error naming
the key and where it was set) and tells the daemon which record fields it needs, so that
the decoder fills them even when no plugin prints them.

Per batch, in pmacct's order (plugin_hooks.c exec_plugins):
1. pre_tag_map, evaluated once when every plugin shares the global map, otherwise per
   plugin on that plugin's records (tag, tag2, label);
2. per plugin: aggregate_filter, pre_tag_filter, pre_tag2_filter, pre_tag_label_filter:
   a record goes to a plugin only if it passes all of them;
3. post_tag / post_tag2 (a plugin's constant tags, applied to what it receives);
4. networks_file / networks_mask / nfacctd_net / nfacctd_as / ports_file, on the
   plugin's copy of its records (pmacct does these in the plugin, before aggregating).
"""
from __future__ import annotations

import numpy as np

from ..filters import config_filter
from ..record import Batch


class ChannelStages:
    """What one plugin's channel does to a batch (its filters and its own tags)."""

    def __init__(self, pcfg, daemon: str, log=None, shared_map=None):
        self.name = pcfg.name
        self.fields: set[str] = set()
        self.agg_filter = None
        text = pcfg.get("aggregate_filter")
        if text:
            self.agg_filter = config_filter(text, "aggregate_filter",
                                            pcfg.where("aggregate_filter"), daemon)
            self.fields |= self.agg_filter.fields
        self.tagger = None          # a plugin-scoped pre_tag_map (maps.PreTagMap)
        self.tag_filters = []       # (field, TagFilter)
        self.post_tags = {}         # field -> constant
        from ..maps.tagfilter import channel_tag_stages
        channel_tag_stages(self, pcfg, daemon, log, shared_map)
        from ..maps.networks import NetworksStage
        self.networks = NetworksStage(pcfg, daemon, log)
        if not self.networks.active:
            self.networks = None
        else:
            self.fields |= self.networks.fields
        self.sampler = None         # the plugin's own sampling_rate
        rate = pcfg.get("sampling_rate")
        if rate and int(rate) > 1:
            from .sampling import PacketSampler
            self.sampler = PacketSampler.for_plugin(pcfg.name, int(rate), daemon)

    @property
    def passthrough(self) -> bool:
        return (self.agg_filter is None and self.tagger is None and not self.tag_filters
                and not self.post_tags and self.networks is None and self.sampler is None)

    def select(self, batch: Batch) -> Batch:
        if self.passthrough or len(batch) == 0:
            return batch
        recs = batch.records
        strings = batch.strings
        if self.tagger is not None:
            recs = recs.copy()
            recs, strings = self.tagger.tag_batch(recs, strings)
        keep = None
        if self.agg_filter is not None:
            keep = self.agg_filter(recs)
        for field, flt in self.tag_filters:
            m = flt(recs, strings) if field == "label" else flt(recs[field])
            keep = m if keep is None else keep & m
        if keep is not None and not keep.all():
            recs = recs[keep]
        if self.sampler is not None:
            recs = self.sampler.apply(recs)      # after the filters, as pmacct (a copy)
        if (self.post_tags or self.networks is not None) and recs is batch.records:
            recs = recs.copy()       # the batch is shared by every channel
        for field, value in self.post_tags.items():
            recs[field] = value
        if self.networks is not None:
            self.networks.apply(recs)
        return Batch(recs, strings)

    def reload(self, log=None) -> None:
        if self.tagger is not None:
            self.tagger.reload(log)
        if self.networks is not None:
            self.networks.reload(log)


class CoreStages:
    def __init__(self, cfg, plugins, daemon: str, log=None):
        self.daemon = daemon
        self.log = log
        self.refresh = bool(cfg.get("maps_refresh"))
        self.global_map = None
        if cfg.get("pre_tag_map"):              # (the map module only for a map)
            from ..maps.pretag import load_global_map
            self.global_map = load_global_map(cfg, daemon, log)
        self.fields: set[str] = set()
        if self.global_map is not None:
            self.fields |= self.global_map.fields
        self.sampling = None
        if cfg.get("sampling_map"):
            from pypmacct.config import ConfigError
            from ..maps.sampling import SamplingMap
            try:
                self.sampling = SamplingMap(
                    cfg.get("sampling_map"), daemon, log,
                    renormalize=bool(cfg.get("nfacctd_renormalize")),
                    ext_rate=int(cfg.get("nfacctd_ext_sampling_rate") or 0),
                    max_entries=int(cfg.get("maps_entries") or 384),
                    row_len=int(cfg.get("maps_row_len") or 256))
            except OSError as e:
                raise ConfigError(f"cannot read sampling_map: {e.strerror}",
                                  where=cfg.where("sampling_map"), key="sampling_map") from None
            self.fields |= self.sampling.fields
        self.geoip = None
        if cfg.get("geoipv2_file"):
            from pypmacct.config import ConfigError
            from ..maps.geoip import GeoIP
            try:
                self.geoip = GeoIP(cfg.get("geoipv2_file"), log)
            except ImportError:
                raise ConfigError("geoipv2_file needs the maxminddb package (pip install "
                                  "geoip2)", where=cfg.where("geoipv2_file"),
                                  key="geoipv2_file") from None
            except (OSError, ValueError) as e:
                raise ConfigError(f"cannot open geoipv2_file: {e}",
                                  where=cfg.where("geoipv2_file"), key="geoipv2_file") from None
            self.fields |= self.geoip.fields
        self.channels = [ChannelStages(p.cfg, daemon, log, self.global_map) for p in plugins]
        for ch in self.channels:
            self.fields |= ch.fields

    def apply(self, batch: Batch) -> Batch:
        if len(batch) == 0:
            return batch
        if self.sampling is not None:
            self.sampling.apply(batch.records)
        if self.geoip is not None:
            batch = Batch(batch.records, self.geoip.apply(batch.records, batch.strings))
        if self.global_map is None:
            return batch
        recs, strings = self.global_map.tag_batch(batch.records, batch.strings)
        return Batch(recs, strings)

    def reload(self) -> None:
        """SIGUSR2: re-read the maps (unless maps_refresh is false). Runs between batches
        in the core's loop, so every record is tagged by the old map or the new one."""
        if not self.refresh:
            return
        if self.sampling is not None:
            self.sampling.reload(self.log)
        if self.geoip is not None:
            self.geoip.reload(self.log)
        if self.global_map is not None:
            self.global_map.reload(self.log)
        for ch in self.channels:
            ch.reload(self.log)
