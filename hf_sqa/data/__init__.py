"""Data: SPEC resolution into `datasets` objects with a uniform schema."""

from .specs import BadRow, Spec, SpecError, parse_spec, resolve, resolve_many, shard_for_node

__all__ = ["BadRow", "Spec", "SpecError", "parse_spec", "resolve", "resolve_many", "shard_for_node"]
