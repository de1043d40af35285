"""Tag handling of the CUR 2.0 reader, on top of the shared :mod:`features.tagkeys`.

Key canonicalisation lives in one place, :func:`features.tagkeys.canonical_tag_key`
(prefix removal, snake case: ``user_CostCenter`` and ``cost-center`` -> ``cost_center``,
``aws:eks:cluster-name`` -> ``aws_eks_cluster_name``) with
:data:`features.tagkeys.KEY_ALIASES` mapping keys to cost-frame dimensions (``env`` ->
``environment``, ``aws_eks_cluster_name`` -> ``cluster``). Every reader uses it, so a tag
reads the same from CUR and from FOCUS, and tag governance sees one spelling.

This module only adds what :func:`features.readers.cur.read_cur` promises on top: a
configurable ``tag_prefixes`` list stripped *before* canonicalisation (longest match,
case-sensitive, at most one), a result that does not depend on the order an export wrote
its keys in (raw keys are taken in sorted order; the first spelling of a key wins), and the
lookup table the reader joins in DuckDB (Python runs once per distinct tag set, never per row).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pyarrow as pa

from features import tagkeys

#: Prefixes stripped from tag keys by default (CUR 2.0, legacy CUR, and plain ``user:``).
DEFAULT_TAG_PREFIXES: tuple[str, ...] = ("user_", "resourceTags/user:", "resourceTags/", "user:")

#: Cost-frame dimensions filled from tags besides ``cluster``, in cost-frame order.
TAG_DIMENSIONS: tuple[str, ...] = ("team", "project", "environment", "cost_center", "owner")

#: Columns of :func:`tag_lookup_table`.
TAG_LOOKUP_COLUMNS: tuple[str, ...] = ("tags_text", "tags", "tags_ok", "cluster", *TAG_DIMENSIONS)


def strip_tag_prefix(key: str, prefixes: Sequence[str] = DEFAULT_TAG_PREFIXES) -> str:
    """Remove the longest of ``prefixes`` that ``key`` starts with (at most one)."""
    key = key.strip()
    for prefix in sorted(prefixes, key=len, reverse=True):
        if prefix and key.startswith(prefix) and len(key) > len(prefix):
            return key[len(prefix) :]
    return key


def normalize_tag_key(key: str, prefixes: Sequence[str] = DEFAULT_TAG_PREFIXES) -> str:
    """Canonical spelling of one tag key: strip ``prefixes``, then ``canonical_tag_key``.

    Examples
    --------
    >>> normalize_tag_key("user_CostCenter")
    'cost_center'
    >>> normalize_tag_key("resourceTags/user:Env")
    'env'
    >>> normalize_tag_key("aws:eks:cluster-name")
    'aws_eks_cluster_name'
    """
    return tagkeys.canonical_tag_key(strip_tag_prefix(key, prefixes))


def normalize_tags(
    tags: Mapping[str, Any] | None, prefixes: Sequence[str] = DEFAULT_TAG_PREFIXES
) -> dict[str, str]:
    """Canonicalise every key of a tag set; drop empty keys and empty or null values.

    Parameters
    ----------
    tags : mapping, optional
        Raw tags (a CUR ``resource_tags`` map, a parsed JSON object).
    prefixes : sequence of str
        Passed to :func:`normalize_tag_key`.

    Returns
    -------
    dict of str to str
        Canonical key -> value (whitespace-trimmed), sorted by key. When several raw keys
        canonicalise to one key, the raw key that sorts first wins.
    """
    out: dict[str, str] = {}
    for raw_key, value in sorted((tags or {}).items(), key=lambda kv: str(kv[0])):
        key = normalize_tag_key(str(raw_key), prefixes)
        text = "" if value is None else str(value).strip()
        if key and text:
            out.setdefault(key, text)
    return dict(sorted(out.items()))


def tag_dimensions(tags: Mapping[str, str]) -> dict[str, str | None]:
    """``cluster`` and :data:`TAG_DIMENSIONS` of canonical tags (via ``KEY_ALIASES``).

    Keys are visited in sorted order; the first key of a dimension wins.
    """
    dims: dict[str, str | None] = dict.fromkeys(("cluster", *TAG_DIMENSIONS))
    for key in sorted(tags):
        dim = tagkeys.KEY_ALIASES.get(key)
        if dim in dims and dims[dim] is None:
            dims[dim] = tags[key]
    return dims


def tags_to_json(tags: Mapping[str, str]) -> str:
    """The ``tags`` column text: keys sorted, no spaces (as :mod:`features.tagkeys` writes it)."""
    return json.dumps(dict(tags), sort_keys=True, separators=(",", ":"))


def parse_tags_text(text: str | None) -> dict[str, Any] | None:
    """Parse a JSON tag object; ``{}`` for empty text, ``None`` when it is not an object."""
    if text is None or not text.strip():
        return {}
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):  # deeply nested JSON is not a tag object
        return None
    return value if isinstance(value, dict) else None


def tag_lookup_table(
    texts: Iterable[str], prefixes: Sequence[str] = DEFAULT_TAG_PREFIXES
) -> pa.Table:
    """Canonicalise each distinct raw tag text once, for a ``LEFT JOIN`` back in DuckDB.

    Parameters
    ----------
    texts : iterable of str
        Distinct raw tag texts, each a JSON object (``to_json`` of a CUR ``resource_tags``
        map, or the JSON string some exports write instead).
    prefixes : sequence of str
        Passed to :func:`normalize_tag_key`.

    Returns
    -------
    pyarrow.Table
        One row per text with :data:`TAG_LOOKUP_COLUMNS`: ``tags_text`` (the input),
        ``tags`` (JSON of the canonical tags, ``"{}"`` when none), ``tags_ok`` (False when
        the text is not a JSON object; its tags are then empty), ``cluster`` and the
        :data:`TAG_DIMENSIONS` (null when absent).
    """
    cols: dict[str, list[Any]] = {c: [] for c in TAG_LOOKUP_COLUMNS}
    for text in texts:
        parsed = parse_tags_text(text)
        tags = normalize_tags(parsed or {}, prefixes)
        dims = tag_dimensions(tags)
        cols["tags_text"].append(text)
        cols["tags"].append(tags_to_json(tags))
        cols["tags_ok"].append(parsed is not None)
        for key in ("cluster", *TAG_DIMENSIONS):
            cols[key].append(dims[key])
    types = {c: pa.bool_() if c == "tags_ok" else pa.string() for c in TAG_LOOKUP_COLUMNS}
    return pa.table({c: pa.array(v, types[c]) for c, v in cols.items()})
