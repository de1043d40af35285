"""The bad-input corpus: each malformed input either ingests with exact accounting
or fails with a message naming the file (and row/column where known), and a
failure never leaves a partial write in the store.

CUR-specific cases live in ``test_cur_reader.py``; this corpus covers FOCUS and
utilization files and the store's atomicity.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from features.exceptions import IngestError
from features.readers.focus import read_focus
from features.readers.metrics import read_utilization
from features.store import Store
from tests.features.focus_fixtures import focus_row, rows, write_focus_csv, write_focus_parquet


@dataclass
class Case:
    """A malformed input: a builder, and what must happen."""

    build: Callable[[Path], Path]
    #: Expected rejection reasons (reason -> count) when the file ingests.
    rejections: dict[str, int] | None = None
    #: Substrings the IngestError message must contain when the file fails.
    error: tuple[str, ...] | None = None
    #: (row, column) of the first rejection, when checked.
    first: tuple[int, str | None] | None = None
    reader: str = "focus"


def _csv(name: str, data: list[dict], **kw: object) -> Callable[[Path], Path]:
    return lambda d: write_focus_csv(d / name, data, **kw)  # type: ignore[arg-type]


def _bytes(name: str, make: Callable[[Path], bytes]) -> Callable[[Path], Path]:
    def build(d: Path) -> Path:
        p = d / name
        p.write_bytes(make(d))
        return p

    return build


def _good_csv_bytes(d: Path, n: int = 5) -> bytes:
    return write_focus_csv(d / "_tmp_good.csv", rows(n)).read_bytes()


def _parquet_wrong_type(d: Path) -> Path:
    df = pd.DataFrame(rows(3))
    df["EffectiveCost"] = pd.Timestamp("2025-01-01", tz="UTC")
    p = d / "wrong_type.parquet"
    df.to_parquet(p, index=False)
    return p


def _parquet_truncated(d: Path) -> Path:
    p = write_focus_parquet(d / "trunc.parquet", rows(50))
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    return p


def _parquet_missing_col(d: Path) -> Path:
    df = pd.DataFrame(rows(3)).drop(columns=["BilledCost"])
    p = d / "missing.parquet"
    df.to_parquet(p, index=False)
    return p


def _parquet_string_costs(d: Path) -> Path:
    data = rows(4)
    data[2]["EffectiveCost"] = "n/a"
    return write_focus_parquet(d / "strcost.parquet", data, typed=False)


def _util(name: str, df: pd.DataFrame) -> Callable[[Path], Path]:
    def build(d: Path) -> Path:
        p = d / name
        df.to_csv(p, index=False)
        return p

    return build


_U = pd.DataFrame(
    {
        "ds": ["2025-01-01T00:00:00Z", "2025-01-01T01:00:00Z", "2025-01-01T02:00:00Z"],
        "workload_id": ["w1", "w1", "w1"],
        "cpu_used": [0.5, 0.7, 0.6],
        "cpu_requested": [2, 2, 2],
    }
)

CORPUS: dict[str, Case] = {
    # --- structure of the file -----------------------------------------------------------
    "empty_file": Case(_bytes("empty.csv", lambda d: b""), error=("empty.csv", "empty")),
    "header_only": Case(_csv("header.csv", []), rejections={}),
    "truncated_csv": Case(
        _bytes("trunc.csv", lambda d: _good_csv_bytes(d)[:-60]),
        rejections={"malformed_row:missing_columns": 1},
        first=(6, "x_UsageType"),
    ),
    "semicolon_delimiter": Case(_csv("semi.csv", rows(5), delimiter=";"), rejections={}),
    "tab_delimiter": Case(_csv("tab.csv", rows(5), delimiter="\t"), rejections={}),
    "pipe_file_single_column": Case(
        _bytes("pipe.csv", lambda d: b"ChargePeriodStart|BilledCost\n2025-01-01|1\n"),
        error=("pipe.csv", "EffectiveCost"),
    ),
    "missing_required_column": Case(
        _csv("nocost.csv", rows(3), columns=[c for c in rows(1)[0] if c != "EffectiveCost"]),
        error=("nocost.csv", "EffectiveCost", "row 1"),
    ),
    "stray_carriage_returns": Case(
        _bytes("cr.csv", lambda d: _good_csv_bytes(d).replace(b"\r\n", b"\r\r\n")),
        error=("cr.csv", "not a readable CSV"),
    ),
    "binary_garbage": Case(
        _bytes("garbage.csv", lambda d: bytes(range(256)) * 20), error=("garbage.csv",)
    ),
    "too_many_columns_row": Case(
        _bytes("extra.csv", lambda d: _good_csv_bytes(d, 3) + b"a,b,c," * 10 + b"\n"),
        rejections={"malformed_row:too_many_columns": 1},
        first=(5, None),
    ),
    "crlf_and_bom": Case(
        _bytes(
            "crlf.csv",
            lambda d: (
                b"\xef\xbb\xbf" + _good_csv_bytes(d).replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
            ),
        ),
        rejections={},
    ),
    # --- cells ---------------------------------------------------------------------------
    "cost_not_a_number": Case(
        _csv("abc.csv", [focus_row(0), focus_row(1, EffectiveCost="abc"), focus_row(2)]),
        rejections={"invalid_cost": 1},
        first=(3, "EffectiveCost"),
    ),
    "nan_cost": Case(
        _csv("nan.csv", [focus_row(0), focus_row(1, BilledCost="NaN")]),
        rejections={"invalid_cost": 1},
        first=(3, "BilledCost"),
    ),
    "inf_cost": Case(
        _csv("inf.csv", [focus_row(0, EffectiveCost="inf"), focus_row(1)]),
        rejections={"invalid_cost": 1},
        first=(2, "EffectiveCost"),
    ),
    "empty_cost_cell": Case(
        _csv("blank.csv", [focus_row(0), focus_row(1, EffectiveCost="")]),
        rejections={"invalid_cost": 1},
        first=(3, "EffectiveCost"),
    ),
    "unparsable_date": Case(
        _csv("date.csv", [focus_row(0, ChargePeriodStart="31/31/2025"), focus_row(1)]),
        rejections={"invalid_timestamp": 1},
        first=(2, "ChargePeriodStart"),
    ),
    "missing_date": Case(
        _csv("nodate.csv", [focus_row(0), focus_row(1, ChargePeriodStart="")]),
        rejections={"invalid_timestamp": 1},
        first=(3, "ChargePeriodStart"),
    ),
    "mixed_timezones": Case(
        _csv(
            "tz.csv",
            [
                focus_row(0),
                focus_row(1, ChargePeriodStart="2025-01-01T03:00:00+02:00"),
                focus_row(2, ChargePeriodStart="2025-01-01 02:00:00"),
            ],
        ),
        rejections={},
    ),
    "duplicated_line_items": Case(
        _csv("dup.csv", [focus_row(0), focus_row(1), focus_row(0), focus_row(0)]),
        rejections={"duplicate_line_item": 2},
        first=(4, None),
    ),
    "unknown_charge_category": Case(
        _csv("cat.csv", [focus_row(0, ChargeCategory="Refund?"), focus_row(1)]),
        rejections={"invalid_charge_category": 1},
        first=(2, "ChargeCategory"),
    ),
    "non_utf8_bytes": Case(
        _bytes("latin.csv", lambda d: _good_csv_bytes(d).replace(b"i-0002", b"i-\xe9002", 1)),
        rejections={"invalid_encoding": 1},
        first=(4, "ResourceId"),
    ),
    "negative_costs_are_data": Case(
        _csv(
            "credit.csv",
            [
                focus_row(0),
                focus_row(1, ChargeCategory="Credit", BilledCost="-10", EffectiveCost="-10"),
            ],
        ),
        rejections={},
    ),
    "tags_not_json": Case(_csv("tags.csv", [focus_row(0, Tags="team=nlp")]), rejections={}),
    # --- parquet -------------------------------------------------------------------------
    "parquet_wrong_schema_type": Case(
        _parquet_wrong_type, error=("wrong_type.parquet", "EffectiveCost", "TIMESTAMP")
    ),
    "parquet_truncated": Case(_parquet_truncated, error=("trunc.parquet", "parquet")),
    "parquet_missing_column": Case(_parquet_missing_col, error=("missing.parquet", "BilledCost")),
    "parquet_string_cost": Case(
        _parquet_string_costs, rejections={"invalid_cost": 1}, first=(2, "EffectiveCost")
    ),
    "parquet_named_csv": Case(
        lambda d: write_focus_parquet(d / "actually_parquet.csv", rows(3)), rejections={}
    ),
    # --- paths ---------------------------------------------------------------------------
    "file_not_found": Case(lambda d: d / "nope.csv", error=("nope.csv", "not found")),
    "empty_folder": Case(
        lambda d: (d / "emptydir").mkdir() or d / "emptydir", error=("emptydir", "no .csv")
    ),
    # --- utilization metrics -------------------------------------------------------------
    "metrics_negative_value": Case(
        _util("neg.csv", _U.assign(cpu_used=[0.5, -1.0, 0.6])),
        rejections={"invalid_measurement": 1},
        first=(3, "cpu_used"),
        reader="metrics",
    ),
    "metrics_missing_id_and_bad_date": Case(
        _util(
            "ids.csv",
            _U.assign(
                workload_id=["w1", None, "w1"],
                ds=["2025-01-01T00:00:00Z", "2025-01-01T01:00:00Z", "soon"],
            ),
        ),
        rejections={"missing_workload_id": 1, "invalid_timestamp": 1},
        reader="metrics",
    ),
    "metrics_duplicate_rows": Case(
        _util("dupm.csv", pd.concat([_U, _U.iloc[[1]]])),
        rejections={"duplicate_row": 1},
        reader="metrics",
    ),
    "metrics_missing_column": Case(
        _util("noid.csv", _U.drop(columns="workload_id")),
        error=("noid.csv", "workload_id"),
        reader="metrics",
    ),
}


def _read(case: Case, path: Path):  # type: ignore[no-untyped-def]
    return read_focus(path) if case.reader == "focus" else read_utilization(path)


def test_corpus_is_large_enough() -> None:
    assert len(CORPUS) >= 25


@pytest.fixture
def seeded_store(tmp_path: Path) -> Store:
    store = Store(tmp_path / "store.duckdb")
    store.ingest(
        read_focus(write_focus_csv(tmp_path / "seed" / "seed.csv", rows(10, SubAccountId="seed")))
    )
    return store


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_bad_input(name: str, tmp_path: Path, seeded_store: Store) -> None:
    case = CORPUS[name]
    path = case.build(tmp_path)
    before = seeded_store.totals()
    before_util = seeded_store.query("SELECT count(*) AS n FROM utilization")["n"].item()
    if case.error is not None:
        with pytest.raises(IngestError) as info:
            _read(case, path)
        message = str(info.value)
        for fragment in case.error:
            assert fragment in message, f"{fragment!r} not in {message!r}"
        assert seeded_store.totals() == before  # nothing written
        return
    result = _read(case, path)
    reasons: dict[str, int] = {}
    for r in result.rejections:
        reasons[r.reason] = reasons.get(r.reason, 0) + 1
        assert r.file == str(path)
    assert reasons == case.rejections
    if case.first is not None:
        first = min(result.rejections, key=lambda r: r.row)
        assert (first.row, first.column) == case.first
    if case.reader == "focus":
        report = seeded_store.ingest(result)
        assert report.rows_read == report.rows_accepted + report.rows_rejected
        assert report.balanced
        after = seeded_store.totals()
        assert after["effective_cost"] == pytest.approx(
            before["effective_cost"] + report.effective_cost_stored, abs=0.005
        )
    else:
        report = seeded_store.ingest_utilization(result)
        assert report.rows_read == report.rows_accepted + report.rows_rejected
        n = seeded_store.query("SELECT count(*) AS n FROM utilization")["n"].item()
        assert n == before_util + report.rows_accepted


def test_mixed_timezones_are_converted_to_utc(tmp_path: Path) -> None:
    p = CORPUS["mixed_timezones"].build(tmp_path)
    res = read_focus(p)
    ds = res.table.column("ds").to_pylist()
    assert [t.hour for t in ds] == [0, 1, 2]
    assert any("without a timezone" in w for w in res.warnings)


def test_failed_write_leaves_store_unchanged(
    tmp_path: Path, seeded_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure in the middle of the write transaction rolls everything back."""
    before = seeded_store.totals()
    n_ingests = len(seeded_store.ingest_log())
    result = read_focus(
        write_focus_csv(tmp_path / "new.csv", [focus_row(i) for i in range(20, 30)])
    )

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(seeded_store, "_write_rejections", boom)
    with pytest.raises(RuntimeError):
        seeded_store.ingest(result)
    assert seeded_store.totals() == before
    assert len(seeded_store.ingest_log()) == n_ingests


def test_ingest_twice_equals_once_to_the_cent(tmp_path: Path) -> None:
    p = write_focus_csv(
        tmp_path / "f.csv",
        [
            *rows(40),
            focus_row(0, ChargeCategory="Credit", EffectiveCost="-3.21", BilledCost="-3.21"),
        ],
    )
    store = Store(tmp_path / "s.duckdb")
    first = store.ingest(read_focus(p))
    once = store.totals()
    second = store.ingest(read_focus(p))
    twice = store.totals()
    assert round(once["effective_cost"], 2) == round(twice["effective_cost"], 2)
    assert once["rows"] == twice["rows"] == first.rows_accepted
    assert second.rows_new == 0 and second.rows_replaced == first.rows_accepted


def test_rejections_are_stored_with_reasons(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.duckdb")
    p = CORPUS["cost_not_a_number"].build(tmp_path)
    store.ingest(read_focus(p))
    rej = store.query("SELECT file, row, column_name, reason FROM rejections")
    assert rej.to_dict(orient="records") == [
        {"file": str(p), "row": 3, "column_name": "EffectiveCost", "reason": "invalid_cost"}
    ]


def test_parquet_schema_check_uses_arrow_types(tmp_path: Path) -> None:
    # A decimal column (as AWS writes costs) is a number, not a wrong type.
    tbl = pa.Table.from_pylist(rows(2))
    tbl = tbl.set_column(
        tbl.schema.get_field_index("EffectiveCost"),
        "EffectiveCost",
        pa.array([json.loads(x) for x in ["1.25", "2.50"]], pa.float64()).cast(
            pa.decimal128(18, 6)
        ),
    )
    p = tmp_path / "dec.parquet"
    pq.write_table(tbl, p)
    res = read_focus(p)
    assert res.table.column("effective_cost").to_pylist() == [1.25, 2.5]
    assert os.path.exists(p)
