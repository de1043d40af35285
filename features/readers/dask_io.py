"""Series frames from large FOCUS parquet exports with ``dask.dataframe``.

:func:`read_focus_series` turns a FOCUS export too large for one machine's
memory (a folder of parquet files, local or on an object store) into a lazy
dask series frame ``unique_id, ds, y``: daily (or ``freq``) effective cost per
resource, tag or service. Only three columns are read, and the aggregation
runs on the Dask workers; the result feeds
:class:`models.dask_backend.DaskBackend` directly (which regroups it by
series). The full validating reader (:func:`features.readers.focus.read_focus`)
remains the way into the store; this one is the scale path for forecasting.

Dask is optional (the ``dask`` extra); it is imported only when called.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from features.exceptions import IngestError

__all__ = ["MISSING_ID", "read_focus_series"]

#: Series id given to charges without a value in the id column (nothing is dropped).
MISSING_ID = "(none)"
_TIME = "ChargePeriodStart"
_COST = "EffectiveCost"


def read_focus_series(
    path: str | Path,
    *,
    id_column: str = "ResourceId",
    freq: str = "D",
    split_out: int | None = None,
) -> Any:
    """Read a FOCUS parquet export as a lazy series frame of effective cost.

    Parameters
    ----------
    path : str or Path
        A parquet file or a folder of them (any URL ``dask`` reads).
    id_column : str
        FOCUS column that names a series: ``ResourceId`` (one series per pod
        or instance), ``ServiceName``, ``SubAccountId``...
    freq : str
        Period of the series (pandas alias); charges are summed per period,
        periods starting at ``ChargePeriodStart`` floored to it, in UTC.
    split_out : int, optional
        Partitions of the aggregated frame; default the number of input
        partitions (keeps every partition small with very many series).

    Returns
    -------
    dask.dataframe.DataFrame
        Columns ``unique_id`` (string), ``ds`` (UTC timestamps), ``y``
        (float, summed EffectiveCost). Charges without an id are kept under
        :data:`MISSING_ID`.

    Raises
    ------
    IngestError
        Naming the path and the column when a required column is missing.
    """
    import dask.dataframe as dd
    import pyarrow.dataset as pads

    name = str(path)
    try:
        schema = pads.dataset(name, format="parquet").schema
    except (OSError, ValueError) as exc:
        raise IngestError(f"cannot read parquet ({exc})", path=name) from None
    for col in (id_column, _TIME, _COST):
        if col not in schema.names:
            raise IngestError(
                f"missing required column (got columns {schema.names})", path=name, column=col
            )
    raw = dd.read_parquet(name, columns=[id_column, _TIME, _COST])
    frame = raw.assign(
        unique_id=raw[id_column].astype(str).where(raw[id_column].notnull(), MISSING_ID),
        ds=dd.to_datetime(raw[_TIME], utc=True).dt.floor(freq),
        # Numeric by the FOCUS spec (double or decimal); anything else fails loudly.
        y=raw[_COST].astype(float),
    )[["unique_id", "ds", "y"]]
    parts = split_out if split_out is not None else max(int(raw.npartitions), 1)
    summed = frame.groupby(["unique_id", "ds"]).agg({"y": "sum"}, split_out=parts)
    return summed.reset_index()
