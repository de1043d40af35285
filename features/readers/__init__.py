"""Readers of billing exports into the cost frame (through DuckDB)."""

from features.readers.base import ReadResult, Rejection

__all__ = ["ReadResult", "Rejection"]
