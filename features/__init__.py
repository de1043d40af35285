"""Data in: canonical schema, readers, embedded store, demo fleet, tag governance."""
