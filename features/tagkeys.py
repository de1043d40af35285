"""Canonical tag keys, shared by every reader.

Billing exports spell the same tag many ways: ``Team``, ``team``, ``user_team``
(CUR 2.0 ``resource_tags``), ``resourceTags/user:Team`` (legacy CUR),
``CostCenter``, ``cost-center``. Readers turn every key into one snake_case
form so that dimensions line up across sources:

>>> canonical_tag_key("resourceTags/user:CostCenter")
'cost_center'
>>> canonical_tag_key("aws:eks:cluster-name")
'aws_eks_cluster_name'

Readers canonicalise the *distinct* tag sets only (a few thousand in exports of
millions of rows) and join the result back in DuckDB, so this Python stays off
the per-row path.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping

import pyarrow as pa

_PREFIXES = ("resourcetags/user:", "resourcetags/", "user:", "user_", "tag:", "tag_")
_CAMEL = re.compile(r"([a-z0-9])([A-Z])")
_NON_ALNUM = re.compile(r"[^a-z0-9]+")

#: Aliases of the FinOps dimensions carried by the cost frame (after snake-casing).
KEY_ALIASES: dict[str, str] = {
    "team": "team",
    "team_name": "team",
    "squad": "team",
    "project": "project",
    "project_name": "project",
    "app": "project",
    "application": "project",
    "environment": "environment",
    "env": "environment",
    "stage": "environment",
    "cost_center": "cost_center",
    "costcenter": "cost_center",
    "cost_centre": "cost_center",
    "owner": "owner",
    "owner_email": "owner",
    "contact": "owner",
    "cluster": "cluster",
    "aws_eks_cluster_name": "cluster",
    "eks_cluster_name": "cluster",
    "aws_ecs_cluster_name": "cluster",
    "aws_ecs_clustername": "cluster",
    "ecs_cluster_name": "cluster",
    "kubernetes_cluster": "cluster",
}

#: Dimensions a tag set can fill, in cost-frame order.
TAG_DIMENSIONS: tuple[str, ...] = (
    "cluster",
    "team",
    "project",
    "environment",
    "cost_center",
    "owner",
)


def canonical_tag_key(key: str) -> str:
    """Return the snake_case form of a tag key with export prefixes removed."""
    k = key.strip()
    low = k.lower()
    for prefix in _PREFIXES:
        if low.startswith(prefix) and len(k) > len(prefix):
            k = k[len(prefix) :]
            break
    k = _CAMEL.sub(r"\1_\2", k).lower()
    return _NON_ALNUM.sub("_", k).strip("_")


def dimension_of(key: str) -> str | None:
    """The cost-frame dimension a tag key fills, or ``None``."""
    return KEY_ALIASES.get(canonical_tag_key(key))


def normalise_tags(tags: Mapping[str, object] | None) -> dict[str, str]:
    """Canonicalise keys; drop empty values; first spelling of a key wins."""
    out: dict[str, str] = {}
    if not tags:
        return out
    for key, value in tags.items():
        if value is None or key is None:
            continue
        text = str(value).strip()
        if not text:
            continue
        out.setdefault(canonical_tag_key(str(key)), text)
    return out


def parse_tags(raw: str | Mapping[str, object] | None) -> tuple[dict[str, str], bool]:
    """Parse a JSON object string (FOCUS ``Tags``) or a mapping.

    Returns ``(tags, ok)`` where ``ok`` is False when ``raw`` was not a JSON object.
    """
    if raw is None:
        return {}, True
    if isinstance(raw, Mapping):
        return normalise_tags(raw), True
    text = str(raw).strip()
    if not text:
        return {}, True
    try:
        obj = json.loads(text)
    except (ValueError, TypeError, RecursionError):  # deeply nested: not a tag object
        return {}, False
    if not isinstance(obj, dict):
        return {}, False
    return normalise_tags(obj), True


def tag_lookup_table(raw_values: Iterable[str | None]) -> pa.Table:
    """Build the lookup table readers join on: one row per distinct raw tag value.

    Parameters
    ----------
    raw_values : iterable of str or None
        Distinct raw tag strings (JSON objects).

    Returns
    -------
    pyarrow.Table
        Columns ``raw`` (the input), ``tags`` (canonical JSON, keys sorted),
        ``tags_ok`` (bool: parsed) and one string column per
        :data:`TAG_DIMENSIONS` entry (``tag_<dimension>``).
    """
    raws: list[str | None] = []
    canon: list[str] = []
    oks: list[bool] = []
    dims: dict[str, list[str | None]] = {d: [] for d in TAG_DIMENSIONS}
    for raw in raw_values:
        tags, ok = parse_tags(raw)
        raws.append(raw)
        oks.append(ok)
        canon.append(json.dumps(tags, sort_keys=True, separators=(",", ":")))
        found: dict[str, str] = {}
        for key, value in tags.items():
            dim = KEY_ALIASES.get(key)
            if dim is not None:
                found.setdefault(dim, value)
        for d in TAG_DIMENSIONS:
            dims[d].append(found.get(d))
    cols: dict[str, pa.Array] = {
        "raw": pa.array(raws, type=pa.string()),
        "tags": pa.array(canon, type=pa.string()),
        "tag_key": pa.array([hashlib.md5(c.encode()).hexdigest() for c in canon], type=pa.string()),
        "tags_ok": pa.array(oks, type=pa.bool_()),
    }
    for d in TAG_DIMENSIONS:
        cols[f"tag_{d}"] = pa.array(dims[d], type=pa.string())
    return pa.table(cols)
