"""sql_preprocess: checks and actions applied to a purge's aggregates (filled in below)."""
from __future__ import annotations


class PreprocessError(ValueError):
    pass


class Preprocessor:
    @classmethod
    def from_config(cls, text, ptype, engine):
        if not text:
            return None
        raise PreprocessError("sql_preprocess is not implemented yet")

    def select(self, keys, values):
        return None
