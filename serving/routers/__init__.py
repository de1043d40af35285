"""Routers of the serving API, one module per resource (built per app from its settings)."""
