"""Tag governance and cost allocation.

* **Value normalisation**: ``ML-Platform``, ``ml_platform`` and ``mlplatform`` are
  one team. Values are grouped by their lower-case alphanumeric form and each
  group takes its most-spent spelling; explicit aliases (``production -> prod``)
  apply first. A value with one spelling is kept as written.
* **Coverage**: the share of spend carrying every required tag, per tag, and
  the untagged spend by service and account.
* **Showback / chargeback**: cost by any tag per period, with shared and
  unallocated spend (missing tag, or a value listed as shared) spread over the
  tagged values in proportion to their direct spend in the same period.

Everything is computed in DuckDB over the store's ``cost`` table; only the
distinct tag values (hundreds) pass through Python.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd
import pyarrow as pa

from features.exceptions import ConfigError
from features.readers.base import run
from features.store import Store
from features.tagkeys import KEY_ALIASES, canonical_tag_key

#: Tags a FinOps team usually requires (FinOps Foundation tagging guidance).
DEFAULT_REQUIRED_TAGS: tuple[str, ...] = ("Environment", "Team", "Project", "CostCenter", "Owner")

#: Value aliases applied before grouping, per dimension (lower-case keys).
DEFAULT_VALUE_ALIASES: dict[str, dict[str, str]] = {
    "environment": {
        "production": "prod",
        "prd": "prod",
        "live": "prod",
        "stage": "staging",
        "stg": "staging",
        "development": "dev",
        "develop": "dev",
        "test": "test",
        "qa": "test",
    }
}

#: Dimensions that tags fill and that showback can group by.
TAGGED_DIMENSIONS: tuple[str, ...] = ("team", "project", "environment", "cost_center", "owner")
#: Other cost-frame dimensions showback can group by.
GROUPABLE: tuple[str, ...] = (
    *TAGGED_DIMENSIONS,
    "cluster",
    "service",
    "account",
    "region",
    "instance_type",
    "purchase_option",
    "charge_category",
    "provider",
)
_PERIODS = {"day": "day", "week": "week", "month": "month", "quarter": "quarter", "year": "year"}
_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def required_dimensions(required_tags: Sequence[str]) -> list[str]:
    """Map required tag names (``CostCenter``) to cost-frame dimensions (``cost_center``)."""
    dims = []
    for tag in required_tags:
        key = canonical_tag_key(tag)
        dim = KEY_ALIASES.get(key, key)
        if dim not in TAGGED_DIMENSIONS:
            raise ConfigError(
                f"parameter required_tags must name tags among {list(TAGGED_DIMENSIONS)} "
                f"(any spelling), got {tag!r}"
            )
        dims.append(dim)
    return dims


def normalisation_map(
    store: Store,
    dims: Sequence[str] = TAGGED_DIMENSIONS,
    aliases: Mapping[str, Mapping[str, str]] | None = None,
) -> pd.DataFrame:
    """Raw value -> normalised value for each tagged dimension.

    Returns
    -------
    pandas.DataFrame
        Columns ``dimension, raw, value, spend``; one row per distinct raw value.
    """
    alias = {
        d: {k.lower(): v for k, v in m.items()}
        for d, m in (aliases if aliases is not None else DEFAULT_VALUE_ALIASES).items()
    }
    rows = []
    for dim in dims:
        df = store.query(
            f"SELECT {dim} AS raw, sum(abs(effective_cost)) AS spend FROM cost "
            f"WHERE {dim} IS NOT NULL GROUP BY 1"
        )
        if df.empty:
            continue
        amap = alias.get(dim, {})
        df["aliased"] = [amap.get(str(r).strip().lower(), str(r).strip()) for r in df["raw"]]
        df["key"] = [_NON_ALNUM.sub("", str(v).lower()) for v in df["aliased"]]
        # Each group of spellings takes its most-spent spelling (ties: alphabetical); a value
        # with a single spelling is left exactly as written (emails, codes).
        best = (
            df.groupby(["key", "aliased"], as_index=False)["spend"]
            .sum()
            .sort_values(["key", "spend", "aliased"], ascending=[True, False, True])
            .drop_duplicates("key")
            .set_index("key")["aliased"]
        )
        df["value"] = df["key"].map(best)
        df.loc[df["key"] == "", "value"] = None
        df["dimension"] = dim
        rows.append(df[["dimension", "raw", "value", "spend"]])
    if not rows:
        return pd.DataFrame(columns=["dimension", "raw", "value", "spend"])
    return pd.concat(rows, ignore_index=True)


def create_normalised_view(
    store: Store,
    aliases: Mapping[str, Mapping[str, str]] | None = None,
    shared_values: Sequence[str] = ("shared", "platform-shared", "common"),
) -> pd.DataFrame:
    """Create the temp view ``cost_n``: the cost table with normalised tag values.

    Values listed in ``shared_values`` (after normalisation) become NULL, so they
    are treated as shared spend by showback. Returns the map used.
    """
    nmap = normalisation_map(store, aliases=aliases)
    shared = {_NON_ALNUM.sub("", s.lower()) for s in shared_values}
    is_shared = [
        v is not None and _NON_ALNUM.sub("", str(v).lower()) in shared for v in nmap["value"]
    ]
    nmap.loc[is_shared, "value"] = None
    store.con.register("_tag_norm", pa.Table.from_pandas(nmap, preserve_index=False))
    joins = []
    sel = []
    for i, dim in enumerate(TAGGED_DIMENSIONS):
        joins.append(
            f"LEFT JOIN (SELECT raw, value FROM _tag_norm WHERE dimension = '{dim}') n{i} "
            f"ON c.{dim} = n{i}.raw"
        )
        sel.append(f"n{i}.value AS {dim}")
    run(
        store.con,
        "CREATE OR REPLACE TEMP VIEW cost_n AS SELECT c.* EXCLUDE "
        f"({', '.join(TAGGED_DIMENSIONS)}), {', '.join(sel)} FROM cost c {' '.join(joins)}",
    )
    return nmap


@dataclass
class TagCoverage:
    """Tag coverage of spend.

    Attributes
    ----------
    total_spend : float
        Effective cost considered (Usage and Purchase charges; taxes, credits and
        adjustments are not taggable and are excluded).
    fully_tagged_pct : float
        Share of that spend carrying every required tag, in percent.
    per_tag : pandas.DataFrame
        ``tag, dimension, tagged_spend, coverage_pct``.
    untagged_by : pandas.DataFrame
        ``service, account, untagged_spend, share_pct`` for spend missing any required tag.
    variants : pandas.DataFrame
        Raw tag values that were normalised to another spelling: ``dimension, raw, value, spend``.
    """

    required_tags: list[str]
    total_spend: float
    fully_tagged_spend: float
    per_tag: pd.DataFrame
    untagged_by: pd.DataFrame
    variants: pd.DataFrame

    @property
    def fully_tagged_pct(self) -> float:
        return 100.0 * self.fully_tagged_spend / self.total_spend if self.total_spend else 100.0

    @property
    def untagged_spend(self) -> float:
        return self.total_spend - self.fully_tagged_spend


def tag_coverage(
    store: Store,
    required_tags: Sequence[str] = DEFAULT_REQUIRED_TAGS,
    aliases: Mapping[str, Mapping[str, str]] | None = None,
) -> TagCoverage:
    """Coverage of spend by the required tags (see :class:`TagCoverage`)."""
    dims = required_dimensions(required_tags)
    nmap = create_normalised_view(store, aliases=aliases, shared_values=())
    scope = "charge_category IN ('Usage', 'Purchase')"
    all_tagged = " AND ".join(f"{d} IS NOT NULL" for d in dims) or "TRUE"
    total, tagged = store.con.execute(
        f"SELECT coalesce(sum(effective_cost), 0), "
        f"coalesce(sum(effective_cost) FILTER (WHERE {all_tagged}), 0) FROM cost_n WHERE {scope}"
    ).fetchall()[0]
    per = []
    for tag, dim in zip(required_tags, dims, strict=True):
        val = store.con.execute(
            f"SELECT coalesce(sum(effective_cost) FILTER (WHERE {dim} IS NOT NULL), 0) "
            f"FROM cost_n WHERE {scope}"
        ).fetchall()[0][0]
        per.append(
            {
                "tag": tag,
                "dimension": dim,
                "tagged_spend": float(val),
                "coverage_pct": 100.0 * float(val) / float(total) if total else 100.0,
            }
        )
    untagged = store.query(
        f"SELECT coalesce(service, '(none)') AS service, coalesce(account, '(none)') AS account, "
        f"sum(effective_cost) AS untagged_spend FROM cost_n WHERE {scope} AND NOT ({all_tagged}) "
        f"GROUP BY 1, 2 ORDER BY untagged_spend DESC"
    )
    untagged["share_pct"] = 100.0 * untagged["untagged_spend"] / float(total) if total else 0.0
    variants = nmap[nmap["raw"] != nmap["value"]].sort_values(["dimension", "value", "raw"])
    return TagCoverage(
        required_tags=list(required_tags),
        total_spend=float(total),
        fully_tagged_spend=float(tagged),
        per_tag=pd.DataFrame(per),
        untagged_by=untagged,
        variants=variants.reset_index(drop=True),
    )


def showback(
    store: Store,
    by: Sequence[str] = ("team",),
    *,
    period: str = "month",
    spread_shared: bool = True,
    aliases: Mapping[str, Mapping[str, str]] | None = None,
    shared_values: Sequence[str] = ("shared", "platform-shared", "common"),
    cost_column: str = "effective_cost",
) -> pd.DataFrame:
    """Cost by tag values per period, with shared spend spread proportionally.

    Parameters
    ----------
    by : sequence of str
        Dimensions to group by (tag spellings such as ``Team`` are accepted).
    period : {"day", "week", "month", "quarter", "year"}
    spread_shared : bool
        Spread spend with no value for ``by`` (untagged, shared) over the values
        in proportion to their direct spend in the same period. When False, that
        spend is reported under the value ``(unallocated)``.
    cost_column : {"effective_cost", "billed_cost", "list_cost"}

    Returns
    -------
    pandas.DataFrame
        ``period`` (UTC timestamp of the period start), the ``by`` columns,
        ``direct_cost``, ``shared_cost``, ``total_cost``, ``share_pct`` (of the
        period's total). The sum of ``total_cost`` equals the stored spend of the
        period exactly.
    """
    if period not in _PERIODS:
        raise ConfigError(f"parameter period must be one of {list(_PERIODS)}, got {period!r}")
    if cost_column not in ("effective_cost", "billed_cost", "list_cost"):
        raise ConfigError(
            "parameter cost_column must be effective_cost, billed_cost or list_cost, "
            f"got {cost_column!r}"
        )
    dims = []
    for b in by:
        key = canonical_tag_key(b)
        dim = KEY_ALIASES.get(key, key)
        if dim not in GROUPABLE:
            raise ConfigError(f"parameter by must name one of {list(GROUPABLE)}, got {b!r}")
        dims.append(dim)
    if not dims:
        raise ConfigError("parameter by must name at least one dimension, got []")
    create_normalised_view(store, aliases=aliases, shared_values=shared_values)
    dcols = ", ".join(dims)
    allocated = " AND ".join(f"{d} IS NOT NULL" for d in dims)
    direct = store.query(
        f"SELECT date_trunc('{period}', ds) AS period, {dcols}, "
        f"sum({cost_column}) AS direct_cost FROM cost_n WHERE {allocated} "
        f"GROUP BY ALL"
    )
    pool = store.query(
        f"SELECT date_trunc('{period}', ds) AS period, sum({cost_column}) AS pool "
        f"FROM cost_n WHERE NOT ({allocated}) GROUP BY 1"
    )
    direct["period"] = pd.to_datetime(direct["period"], utc=True)
    pool["period"] = pd.to_datetime(pool["period"], utc=True)
    if spread_shared:
        weights = direct.groupby("period")["direct_cost"].transform(lambda s: s.abs().sum())
        direct = direct.merge(pool, on="period", how="left").fillna({"pool": 0.0})
        w = direct["direct_cost"].abs() / weights.where(weights > 0)
        direct["shared_cost"] = (direct["pool"] * w).fillna(0.0)
        direct = direct.drop(columns="pool")
        # A period with shared spend but no tagged spend keeps it unallocated.
        orphan = pool[~pool["period"].isin(direct["period"])]
    else:
        direct["shared_cost"] = 0.0
        orphan = pool
    if not orphan.empty:
        extra = orphan.rename(columns={"pool": "shared_cost"})
        for d in dims:
            extra[d] = "(unallocated)"
        extra["direct_cost"] = 0.0
        direct = pd.concat([direct, extra[direct.columns]], ignore_index=True)
    direct["total_cost"] = direct["direct_cost"] + direct["shared_cost"]
    per_total = direct.groupby("period")["total_cost"].transform("sum")
    direct["share_pct"] = 100.0 * direct["total_cost"] / per_total.where(per_total != 0)
    return direct.sort_values(["period", "total_cost"], ascending=[True, False]).reset_index(
        drop=True
    )[["period", *dims, "direct_cost", "shared_cost", "total_cost", "share_pct"]]
