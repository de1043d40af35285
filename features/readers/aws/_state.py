"""What the live sources remember between runs, kept in the store itself.

One small table, ``live_state (source, key, fingerprint, detail, updated_at)``, next to
the cost and utilization tables, so that a store copied elsewhere keeps knowing which
Cost Explorer days and which S3 billing periods it holds. State is written only after
the ingest it describes committed: a crash in between makes the next run read the same
data again, which the store's upsert absorbs.
"""

from __future__ import annotations

import json
from typing import Any

from features.readers.base import run
from features.store import Store

_DDL = (
    "CREATE TABLE IF NOT EXISTS live_state (source VARCHAR, key VARCHAR, fingerprint VARCHAR, "
    "detail VARCHAR, updated_at TIMESTAMPTZ, PRIMARY KEY (source, key))"
)


def _has_table(store: Store) -> bool:
    rows = store.con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'live_state'"
    ).fetchall()
    return bool(rows[0][0])


def read_state(store: Store, source: str) -> dict[str, tuple[str, dict[str, Any]]]:
    """``key -> (fingerprint, detail)`` of everything ``source`` recorded so far."""
    if not _has_table(store):
        return {}
    rows = store.con.execute(
        "SELECT key, fingerprint, detail FROM live_state WHERE source = ?", [source]
    ).fetchall()
    return {str(k): (str(f), json.loads(d) if d else {}) for k, f, d in rows}


def write_state(store: Store, source: str, entries: dict[str, tuple[str, dict[str, Any]]]) -> None:
    """Record ``key -> (fingerprint, detail)`` for ``source`` (replacing earlier values)."""
    if not entries:
        return
    run(store.con, _DDL)
    for key, (fingerprint, detail) in entries.items():
        run(
            store.con,
            "INSERT OR REPLACE INTO live_state VALUES (?, ?, ?, ?, now())",
            [source, key, fingerprint, json.dumps(detail, sort_keys=True, default=str)],
        )
