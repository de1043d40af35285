"""Hostile input to the readers and the store (issue 15): nothing is lost silently, nothing
outside the valid domain is stored, nothing hangs, crashes or reads outside its root."""

from __future__ import annotations

import json
import math
import os
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.exceptions import IngestError
from features.readers.base import ReadResult
from features.readers.cur import read_cur
from features.readers.focus import read_focus
from features.store import Store
from tests.features.cur_fixtures import cur_row, cur_table, write_cur_export
from tests.features.focus_fixtures import focus_row, rows, write_focus_csv


def test_a_row_outside_its_delivery_never_deletes_another_period(tmp_path: Path) -> None:
    """An April delivery holding a row dated March replaces April only, keeps the row."""
    march = datetime(2025, 3, 10)
    store = Store(tmp_path / "s.duckdb")
    first = write_cur_export(
        tmp_path / "v1",
        {
            "2025-03": [
                [
                    cur_row(cost=10.0, start=march, line_item_id="m1"),
                    cur_row(cost=10.0, start=march, line_item_id="m2"),
                    cur_row(cost=10.0, start=march, line_item_id="m3"),
                ]
            ]
        },
    )
    store.ingest(read_cur(first))
    assert store.totals()["effective_cost"] == pytest.approx(30.0)
    for bill_start in (datetime(2025, 3, 1), None):
        stray = cur_row(
            cost=1.5,
            start=datetime(2025, 3, 31, 23),
            line_item_id=f"a-{bill_start is None}",
            bill_billing_period_start_date=bill_start,
        )
        april = write_cur_export(tmp_path / f"v2-{bill_start is None}", {"2025-04": [[stray]]})
        result = read_cur(april)
        assert result.replace_prefixes == ["111122223333/2025-04/"]
        assert any("outside the delivery" in w for w in result.warnings)
        report = store.ingest(result)
        # Only the earlier April delivery (the stray row of the first loop) is replaced.
        assert report.balanced and report.rows_removed == (bill_start is None)
        assert any("outside the delivery" in w for w in report.to_dict()["warnings"])
        # March keeps its $30; the stray row is kept (once: the April delivery is replaced).
        assert store.totals()["effective_cost"] == pytest.approx(31.5)


def test_the_store_reports_rows_removed_by_a_restated_period(tmp_path: Path) -> None:
    march = datetime(2025, 3, 10)
    store = Store(tmp_path / "s.duckdb")
    v1 = write_cur_export(
        tmp_path / "v1",
        {"2025-03": [[cur_row(cost=1.0, start=march, line_item_id=f"x{i}") for i in range(3)]]},
    )
    v2 = write_cur_export(
        tmp_path / "v2", {"2025-03": [[cur_row(cost=2.0, start=march, line_item_id="y")]]}
    )
    store.ingest(read_cur(v1))
    report = store.ingest(read_cur(v2))
    assert report.rows_removed == 3
    assert report.replaced_periods == ["111122223333/2025-03/"]


# -- 2. the valid domain -----------------------------------------------------------------------


def _focus_store(tmp_path: Path, data: list[dict[str, Any]]) -> tuple[ReadResult, Store]:
    result = read_focus(write_focus_csv(tmp_path / "f.csv", data))
    store = Store(":memory:")
    report = store.ingest(result)
    assert report.balanced
    assert result.rows_read == result.rows_accepted + len(result.rejections)
    assert math.isfinite(store.totals()["effective_cost"])
    return result, store


@pytest.mark.parametrize(
    ("override", "column", "reason"),
    [
        ({"EffectiveCost": "1e308"}, "EffectiveCost", "invalid_cost"),
        ({"BilledCost": "-1e308"}, "BilledCost", "invalid_cost"),
        ({"EffectiveCost": "2e12"}, "EffectiveCost", "invalid_cost"),
        ({"ListCost": "1e300"}, "ListCost", "invalid_cost"),
        ({"ChargePeriodStart": "294247-01-01T00:00:00Z"}, "ChargePeriodStart", "invalid_timestamp"),
        ({"ChargePeriodStart": "0001-01-01T00:00:00Z"}, "ChargePeriodStart", "invalid_timestamp"),
        ({"ChargePeriodStart": "9999-12-31T00:00:00Z"}, "ChargePeriodStart", "invalid_timestamp"),
        ({"ChargePeriodEnd": "9999-12-31T00:00:00Z"}, "ChargePeriodEnd", "invalid_timestamp"),
        ({"ChargePeriodEnd": "2024-12-31T00:00:00Z"}, "ChargePeriodEnd", "invalid_period"),
    ],
)
def test_focus_rows_outside_the_valid_domain_are_rejected_with_reasons(
    tmp_path: Path, override: dict[str, str], column: str, reason: str
) -> None:
    data = rows(4)
    data[1] = focus_row(1, **override)
    data[2] = focus_row(2, **override)
    result, store = _focus_store(tmp_path, data)
    assert [(r.row, r.column, r.reason) for r in result.rejections] == [
        (3, column, reason),
        (4, column, reason),
    ]
    assert result.rows_accepted == 2
    assert store.totals()["effective_cost"] < 10


def test_negative_costs_stay_valid_data(tmp_path: Path) -> None:
    data = [focus_row(0), focus_row(1, EffectiveCost="-5.5", BilledCost="-5.5", ListCost="-5.5")]
    result, _ = _focus_store(tmp_path, data)
    assert result.rows_accepted == 2 and not result.rejections


def test_cur_rows_outside_the_valid_domain_are_rejected(tmp_path: Path) -> None:
    march = datetime(2025, 3, 10)
    data = [
        cur_row(cost=1.0, start=march),
        cur_row(cost=1e308, start=march),
        cur_row(cost=1e308, start=march),
        cur_row(cost=-3.0, start=march),
        cur_row(cost=1.0, start=march, line_item_usage_end_date=datetime(2025, 3, 9)),
        cur_row(cost=1.0, start=datetime(2150, 3, 1)),
    ]
    root = write_cur_export(tmp_path / "cur", {"2025-03": [data]})
    result = read_cur(root)
    got = [(r.row, r.column, r.reason) for r in result.rejections]
    assert got == [
        (1, "line_item_unblended_cost", "invalid_cost"),
        (2, "line_item_unblended_cost", "invalid_cost"),
        (4, "line_item_usage_end_date", "invalid_period"),
        (5, "line_item_usage_start_date", "invalid_timestamp"),
    ]
    assert result.effective_cost_read == pytest.approx(-2.0 + 1.0 + 1.0)
    report = Store(":memory:").ingest(result)
    assert report.balanced


def test_cur_costs_as_text_beyond_the_domain_do_not_overflow(tmp_path: Path) -> None:
    march = datetime(2025, 3, 10)
    data = [cur_row(cost=1.0, start=march), cur_row(cost=None, start=march)]
    table = cur_table(data)
    col = table.schema.get_field_index("line_item_unblended_cost")
    table = table.set_column(
        col, "line_item_unblended_cost", pa.array(["1e308", "1e308"], pa.string())
    )
    root = write_cur_export(tmp_path / "cur", {"2025-03": [table]})
    result = read_cur(root)
    assert [r.reason for r in result.rejections] == ["invalid_cost", "invalid_cost"]
    assert result.effective_cost_read == 0.0


# -- 3. crashes and hangs ----------------------------------------------------------------------


def test_a_named_pipe_is_refused_not_read(tmp_path: Path) -> None:
    fifo = tmp_path / "export.csv"
    os.mkfifo(fifo)
    for reader in (read_focus, read_cur):
        with pytest.raises(IngestError, match="not a regular file") as err:
            reader(fifo)
        assert err.value.path == str(fifo)


def test_dev_zero_is_not_a_regular_file_and_a_symlink_loop_says_so(tmp_path: Path) -> None:
    with pytest.raises(IngestError, match="not a regular file"):
        read_focus(Path("/dev/zero"))
    loop = tmp_path / "loop.csv"
    loop.symlink_to(loop)
    for reader in (read_focus, read_cur):
        with pytest.raises(IngestError, match="symlink loop"):
            reader(loop)


def test_deeply_nested_tags_are_read_as_untagged_not_a_crash(tmp_path: Path) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    data = [focus_row(0), focus_row(1, Tags='{"a": ' + deep + "}")]
    result, _ = _focus_store(tmp_path, data)
    assert result.rows_accepted == 2
    assert any("not a JSON object" in w for w in result.warnings)


def test_deeply_nested_manifest_is_refused_with_a_message(tmp_path: Path) -> None:
    root = write_cur_export(tmp_path / "cur", {"2025-03": [[cur_row()]]})
    manifest = root / "metadata/BILLING_PERIOD=2025-03/finops-cur2-Manifest.json"
    manifest.write_text('{"dataFiles": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(IngestError, match="nested too deeply") as err:
        read_cur(root)
    assert err.value.path == str(manifest)


def test_hidden_files_in_a_folder_are_skipped_and_reported(tmp_path: Path) -> None:
    folder = tmp_path / "exports"
    write_focus_csv(folder / "f.csv", rows(3))
    (folder / ".DS_Store").write_bytes(b"\x00\x01binary")
    (folder / ".f.csv.swp.csv").write_text("garbage,\n\x00")
    result = read_focus(folder)
    assert result.rows_accepted == 3
    assert any("skipped 2 hidden file(s)" in w for w in result.warnings)


# -- 4. manifest paths stay inside the export root ---------------------------------------------


@pytest.mark.parametrize(
    "entry", ["../../../x/secret.parquet", "s3://bucket/../../../x/secret.parquet"]
)
def test_manifest_entries_outside_the_export_root_are_refused(tmp_path: Path, entry: str) -> None:
    secret_dir = tmp_path / "x"
    secret_dir.mkdir()
    pq.write_table(cur_table([cur_row(cost=999.0)]), secret_dir / "secret.parquet")
    root = write_cur_export(tmp_path / "a/b/cur", {"2025-03": [[cur_row()]]}, extra_listed=[entry])
    with pytest.raises(IngestError, match="leaves the export root"):
        read_cur(root)


def test_a_symlink_out_of_the_export_root_is_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "secret.parquet"
    pq.write_table(cur_table([cur_row(cost=999.0)]), outside)
    root = write_cur_export(
        tmp_path / "cur", {"2025-03": [[cur_row()]]}, extra_listed=["data/link.parquet"]
    )
    (root / "data/link.parquet").symlink_to(outside)
    with pytest.raises(IngestError, match="does not exist under"):
        read_cur(root)


# -- property: hostile FOCUS rows never break the accounting ------------------------------------

_costs = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["1e308", "-1e308", "NaN", "inf", "-0", "", "abc", "1e12", "-1e13"]),
    st.decimals(allow_nan=False, allow_infinity=False, places=4).map(str),
)
_stamps = st.one_of(
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)).map(
        lambda d: d.strftime("%Y-%m-%dT%H:%M:%SZ")
    ),
    st.sampled_from(["294247-01-01T00:00:00Z", "", "not a date", "2025-02-30T00:00:00Z"]),
)
_tags = st.one_of(
    st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3).map(json.dumps),
    st.text(max_size=20),
    st.sampled_from(["[" * 5000 + "]" * 5000, "{", "null", '{"Team": {"x": 1}}']),
)


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.tuples(_costs, _costs, _stamps, _stamps, _tags), min_size=1, max_size=8))
def test_hostile_focus_rows_keep_the_accounting(tmp_path_factory: Any, cells: list) -> None:
    data = [
        focus_row(i, EffectiveCost=e, BilledCost=b, ChargePeriodStart=s, ChargePeriodEnd=t, Tags=g)
        for i, (e, b, s, t, g) in enumerate(cells)
    ]
    path = write_focus_csv(tmp_path_factory.mktemp("h") / "f.csv", data)
    result = read_focus(path)
    assert result.rows_read == result.rows_accepted + len(result.rejections)
    costs = result.table.column("effective_cost").to_pylist()
    assert all(math.isfinite(c) and abs(c) <= 1e12 for c in costs)
    report = Store(":memory:").ingest(result)
    assert report.balanced
    assert math.isfinite(report.effective_cost_stored)


# -- 6. ambiguous headers ----------------------------------------------------------------------


@pytest.mark.parametrize("second", ["EffectiveCost", "effectivecost"])
def test_a_duplicated_column_fails_naming_it(tmp_path: Path, second: str) -> None:
    path = write_focus_csv(tmp_path / "f.csv", rows(2))
    lines = path.read_text().splitlines()
    lines[0] += f",{second}"
    lines[1:] = [line + ",999" for line in lines[1:]]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(IngestError, match="'EffectiveCost' appears 2 times") as err:
        read_focus(path)
    assert err.value.column == "EffectiveCost"


# -- 7. broken CSV lines are rejected one by one, on their own line (issue 15 point 6) ----------


def test_a_stray_quote_rejects_only_its_line(tmp_path: Path) -> None:
    """A stray ``"`` on line 4 used to make the sniffer drop quoting and reject every line."""
    path = write_focus_csv(tmp_path / "f.csv", rows(5))
    lines = path.read_text().splitlines()
    assert ",Amazon Elastic" in lines[3]
    lines[3] = lines[3].replace(",Amazon Elastic", ',"Amazon Elastic', 1)
    path.write_text("\n".join(lines) + "\n")
    result = read_focus(path)
    assert result.rows_read == 5
    assert result.rows_accepted == 4
    assert result.rows_read == result.rows_accepted + len(result.rejections)
    [rej] = result.rejections
    assert (rej.file, rej.row) == (str(path), 4)
    assert rej.reason.startswith("malformed_row:")
    # The good lines around it keep their tags (their quoted JSON cells parse); line 4 held
    # the only "search" row.
    assert sorted(result.table.column("team").to_pylist()) == ["nlp", "nlp", "vision", "vision"]


def test_a_10mb_cell_is_rejected_on_its_own_line(tmp_path: Path) -> None:
    data = rows(4)
    data[1] = focus_row(1, x_Operation="A" * 10_000_000)
    path = write_focus_csv(tmp_path / "f.csv", data)
    result = read_focus(path)
    assert [(r.file, r.row, r.reason) for r in result.rejections] == [
        (str(path), 3, "malformed_row:line_size_over_maximum")
    ]
    assert result.rows_accepted == 3
    assert result.rows_read == result.rows_accepted + len(result.rejections)
