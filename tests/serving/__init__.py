"""Tests of the serving API (unit level; tests/integration runs it over real HTTP)."""
