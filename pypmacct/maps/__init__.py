"""Maps: pre_tag_map and friends (see docs/maps.md)."""
