"""sql_preprocess: checks and actions applied to a purge's aggregates before they are
written, vectorised over the whole purge.

``sql_preprocess: minb=10000, maxbpp=1500, usrf=10`` is a comma-separated list of
``key=value``:

- conditional ``qnum``: the checks apply only when the purge holds at least qnum
  aggregates (otherwise every aggregate is written, actions still apply);
- checks (an aggregate is kept if *any* check passes, or *all* of them with
  ``sql_preprocess_type: all``): ``minp``/``minb``/``minf`` (>=), ``maxp``/``maxb``/
  ``maxf`` (<), ``minbpp``/``maxbpp`` (bytes per packet, >= and <), ``minppf``/
  ``maxppf`` (packets per flow; skipped when the first aggregate has no flows, as in
  pmacct), ``fss`` (flow-size dependent sampling with renormalisation) and ``fsrc``
  (sampling under a hard resource constraint: at most fsrc aggregates, renormalised);
- actions on the kept aggregates: ``usrf`` (renormalise counters by a factor), ``adjb``
  (add adjb bytes per packet);
- ``recover``: aggregates the checks drop go to the recovery path (backup host or
  recovery logfile) instead of being discarded.

Integer arithmetic follows pmacct's (bytes per packet is truncated to 16 bits where
pmacct keeps it in a u_int16_t).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

CHECKS = ("minp", "minf", "minb", "maxp", "maxf", "maxb", "maxbpp", "maxppf", "minbpp",
          "minppf", "fss", "fsrc")
ACTIONS = ("usrf", "adjb")
KEYS = ("qnum",) + CHECKS + ACTIONS + ("recover",)


class PreprocessError(ValueError):
    pass


@dataclass
class Result:
    keep: np.ndarray            # bool per aggregate: written
    recover: np.ndarray         # bool per aggregate: dropped but to be recovered
    values: dict                # counters, renormalised where actions/sampling say


@dataclass
class Preprocessor:
    params: dict = field(default_factory=dict)    # key -> int, in the order given
    mode_all: bool = False
    seed: int | None = None

    @classmethod
    def from_config(cls, text, ptype="any", engine: str = "", seed=None):
        if not text:
            return None
        params = {}
        for token in str(text).replace(" ", "").split(","):
            if not token:
                continue
            key, sep, value = token.partition("=")
            key = key.lower()
            if not sep:
                raise PreprocessError(f"sql_preprocess: malformed '{token}' (expected "
                                      f"key=value)")
            if key not in KEYS:
                raise PreprocessError(f"sql_preprocess: unknown keyword '{key}' (one of "
                                      f"{', '.join(KEYS)})")
            try:
                n = int(value)
            except ValueError:
                raise PreprocessError(f"sql_preprocess: '{key}' needs an integer, not "
                                      f"'{value}'") from None
            if n <= 0 and key != "adjb":
                raise PreprocessError(f"sql_preprocess: invalid '{key}' value {value}")
            params[key] = n
        ptype = str(ptype or "any").lower()
        if ptype not in ("any", "all"):
            raise PreprocessError(f"sql_preprocess_type: '{ptype}' is not any or all")
        return cls(params, ptype == "all", seed)

    @property
    def recovers(self) -> bool:
        return bool(self.params.get("recover"))

    def apply(self, values: dict) -> Result:
        p = self.params
        pk = values["packets"].astype(np.uint64)
        by = values["bytes"].astype(np.uint64)
        fl = values["flows"].astype(np.uint64)
        n = len(pk)
        checks = [k for k in p if k in CHECKS]
        run_checks = bool(checks) and not ("qnum" in p and n < p["qnum"])
        masks = []
        bpp = (by // np.maximum(pk, 1)).astype(np.uint16)
        if run_checks:
            for k in checks:
                v = p[k]
                if k == "minp":
                    masks.append(pk >= v)
                elif k == "minb":
                    masks.append(by >= v)
                elif k == "minf":
                    masks.append(fl >= v)
                elif k == "maxp":
                    masks.append(pk < v)
                elif k == "maxb":
                    masks.append(by < v)
                elif k == "maxf":
                    masks.append(fl < v)
                elif k == "maxbpp":
                    masks.append(by // np.maximum(pk, 1) < v)
                elif k == "minbpp":
                    masks.append(by // np.maximum(pk, 1) >= v)
                elif k in ("maxppf", "minppf"):
                    if n == 0 or fl[0] == 0:
                        continue            # pmacct skips the check altogether
                    ppf = pk // np.maximum(fl, 1)
                    masks.append(ppf < v if k == "maxppf" else ppf >= v)
                elif k == "fss":
                    m, by, pk = self._fss(v, by, pk, bpp)
                    masks.append(m)
                elif k == "fsrc":
                    m, by, pk = self._fsrc(v, by, pk, bpp)
                    masks.append(m)
        if masks:
            stack = np.vstack(masks)
            keep = stack.all(axis=0) if self.mode_all else stack.any(axis=0)
        else:
            keep = np.ones(n, dtype=bool)
        if "usrf" in p:
            r = np.uint64(p["usrf"])
            ratio = (by // np.maximum(pk, 1)).astype(np.uint16).astype(np.uint64)
            nb = by * r
            npk = np.where(ratio > 0, nb // np.maximum(ratio, 1), pk)
            by = np.where(keep, nb, by)
            pk = np.where(keep, npk, pk)
        if "adjb" in p:
            adj = by.astype(np.int64) + pk.astype(np.int64) * int(p["adjb"])
            by = np.where(keep, np.maximum(adj, 0).astype(np.uint64), by)
        out = dict(values)
        out["packets"], out["bytes"] = pk, by
        recover = (~keep) if self.recovers else np.zeros(n, dtype=bool)
        return Result(keep, recover, out)

    @staticmethod
    def _renorm(sel, by, pk, bpp, target):
        """pmacct's renormalisation: bytes up to ``target``, packets = bytes / (old bytes
        per packet, 16-bit)."""
        low = sel & (by < target)
        tb = np.asarray(target, dtype=np.float64)
        nb = np.where(low, np.broadcast_to(tb, by.shape).astype(np.uint64), by)
        ratio = bpp.astype(np.uint64)
        npk = np.where(low & (ratio > 0), nb // np.maximum(ratio, 1), pk)
        return nb, npk

    def _fss(self, t, by, pk, bpp):
        res = by.astype(np.float64) / t
        small = res < 1
        # p accumulates the small aggregates' res; one is taken each time p reaches 1
        c = np.cumsum(np.where(small, res, 0.0))
        prev = np.concatenate([[0.0], c[:-1]])
        taken_small = small & (np.floor(c) > np.floor(prev))
        sel = ~small | taken_small
        by, pk = self._renorm(sel, by, pk, bpp, t)
        return sel, by, pk

    def _fsrc(self, m, by, pk, bpp):
        n = len(by)
        if n <= m:
            return np.ones(n, dtype=bool), by, pk
        rng = np.random.default_rng(self.seed)
        w = rng.random(n)
        w = np.where(w == 0, np.finfo(np.float64).tiny, w)
        z = by.astype(np.float64) / w
        order = np.argsort(-z, kind="stable")
        top = order[:m]
        zt = z[order[m]]                       # the (m+1)-th highest z
        sel = np.zeros(n, dtype=bool)
        sel[top] = True
        by, pk = self._renorm(sel, by, pk, bpp, np.floor(zt))
        return sel, by, pk
