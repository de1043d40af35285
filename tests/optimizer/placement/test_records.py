"""Boundary validation: bad frames and files fail naming the column, row and file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.exceptions import ConfigError, IngestError, InvalidFrameError
from optimizer.placement import Cluster, PodStream, place
from optimizer.placement.io import read_nodes, read_pods
from tests.optimizer.placement.builders import node, nodes_frame, pod, pods_frame, write_csv

GOOD_NODES = nodes_frame([node("n1", 8_000, 8_192, 2, "T4"), node("n0", 4_000, 4_096, 0, "")])


def test_cluster_sorts_nodes_by_name_and_pads_gpus() -> None:
    cl = Cluster.from_frame(GOOD_NODES)
    assert cl.names.tolist() == ["n0", "n1"]
    assert cl.num_gpus.tolist() == [0, 2]
    assert cl.gpu_mask.tolist() == [[False, False], [True, True]]
    assert cl.model_id.tolist() == [-1, 0]


@pytest.mark.parametrize(
    ("rows", "column", "row"),
    [
        ([node("a", -1, 1, 0, "")], "cpu_milli", 0),
        ([node("a", 1, 1, 1, "T4"), node("b", 1, float("nan"), 0, "")], "memory_mib", 1),
        ([node("a", 1, 1, 1.5, "T4")], "gpu", 0),
        ([node("a", 1, 1, 65, "T4")], "gpu", 0),
        ([node("a", 1, 1, 2, "")], "model", 0),
        ([node("a", 1, 1, 0, ""), node("a", 1, 1, 0, "")], "sn", 1),
        ([node("", 1, 1, 0, "")], "sn", 0),
    ],
)
def test_bad_node_frames_name_column_and_row(rows: list, column: str, row: int) -> None:
    with pytest.raises(InvalidFrameError) as info:
        Cluster.from_frame(nodes_frame(rows))
    assert info.value.column == column
    assert info.value.rows[0] == row


def test_missing_column_is_named() -> None:
    with pytest.raises(InvalidFrameError, match="gpu_milli"):
        PodStream.from_frame(pods_frame([pod("p", 1)]).drop(columns=["gpu_milli"]))


def test_pod_normalisation_follows_protocol() -> None:
    s = PodStream.from_frame(
        pods_frame(
            [
                pod("cpu", 1_000, 10, 0, 500, spec="T4"),  # CPU-only: share and spec dropped
                pod("big", 1_000, 10, 2, 1_500),  # share above 1000 is one whole GPU each
                pod("share", 1_000, 10, 1, 250, spec="T4|G2"),
            ]
        ).drop(columns=[])
    )
    assert s.gpu_milli.tolist() == [0, 1000, 250]
    assert s.kind.tolist() == [0, 2, 1]
    assert [s.specs[i] for i in s.spec_id] == ["", "", "T4|G2"]
    assert s.gpu_request.tolist() == [0, 2000, 250]


def test_gpu_spec_column_is_optional_and_extra_columns_ignored() -> None:
    frame = pods_frame([pod("p", 1, 1, 1, 1000)]).drop(columns=["gpu_spec"])
    frame["qos"] = "LS"
    s = PodStream.from_frame(frame)
    assert s.specs == ("",)


def test_csv_reader_names_file_line_and_column(tmp_path: Path) -> None:
    frame = pods_frame([pod("p0", 1_000), pod("p1", 1_000)])
    frame["cpu_milli"] = frame["cpu_milli"].astype(object)
    frame.loc[1, "cpu_milli"] = "NaN"
    path = write_csv(tmp_path / "stream.csv", frame)
    with pytest.raises(IngestError) as info:
        read_pods(path)
    msg = str(info.value)
    assert "stream.csv" in msg and "row 3" in msg and "'cpu_milli'" in msg
    assert info.value.row == 3 and info.value.column == "cpu_milli"


def test_csv_reader_rejects_empty_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(IngestError, match="not found"):
        read_nodes(tmp_path / "nope.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(IngestError, match="empty"):
        read_nodes(tmp_path / "empty.csv")
    (tmp_path / "text.csv").write_text("sn,cpu_milli,memory_mib,gpu,model\na,x,1,0,\n")
    with pytest.raises(IngestError) as info:
        read_nodes(tmp_path / "text.csv")
    assert info.value.row == 2 and info.value.column == "cpu_milli"


def test_unknown_policy_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="policy"):
        place(GOOD_NODES, pods_frame([pod("p", 1)]), policy="tetris")


def test_zero_capacity_and_unplaceable_pods() -> None:
    nodes = nodes_frame([node("z", 0, 0, 0, ""), node("g", 4_000, 4_096, 1, "T4")])
    pods = pods_frame(
        [
            pod("zero", 0, 0),  # needs nothing: fits even the zero node (name order: g first)
            pod("huge", 10**9),  # fits nowhere
            pod("wrong-model", 1, 1, 1, 500, spec="A100"),
            pod("too-many-gpus", 1, 1, 4, 1000),
            pod("ok", 1_000, 1_000, 1, 1000),
            pod("after-full", 1, 1, 1, 1),
        ]
    )
    res = place(nodes, pods, policy="firstfit")
    out = res.to_frame()
    assert out["node"].tolist() == ["g", "", "", "", "g", ""]
    assert out["gpus"].tolist() == ["", "", "", "", "0", ""]
    assert res.n_failed == 4


def test_empty_inputs() -> None:
    res = place(nodes_frame([]), pods_frame([pod("p", 1, 1, 1, 100)]))
    assert res.to_frame()["node"].tolist() == [""]
    res = place(GOOD_NODES, pods_frame([]))
    assert res.n_pods == 0 and list(res.to_frame().columns) == ["name", "node", "gpus"]


def test_result_is_a_read_only_value_object() -> None:
    res = place(GOOD_NODES, pods_frame([pod("p", 1, 1, 1, 100)]), policy="bestfit")
    with pytest.raises(ValueError):
        res.node_index[0] = 5
    again = place(GOOD_NODES, pods_frame([pod("p", 1, 1, 1, 100)]), policy="bestfit")
    assert res == again
    assert np.array_equal(res.gpu_assignment, again.gpu_assignment)
    assert isinstance(res.to_frame(), pd.DataFrame)
