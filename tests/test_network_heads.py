"""Head variants: official key names by default, position-aware variants by params, exportable."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from contract.tasks import TaskKind, TaskRegistry, TaskSpec
from network import build_model
from network.heads import CellOffsetDetectionHead, HeatmapRegressionHead, head_variant
from tests.conftest import make_tiny_config

VARIANTS = {"detection_head": "cell_offset", "regression_head": "heatmap"}


def test_default_heads_keep_the_official_key_names():
    model = build_model(make_tiny_config(TaskRegistry.official().select(["FUGC", "thyroid_nodule_det"])))
    keys = set(model.state_dict())
    assert {"heads.FUGC.linear.weight", "heads.FUGC.linear.bias"} <= keys
    assert "heads.thyroid_nodule_det.conv_block.6.weight" in keys
    assert model.task_path("FUGC") == ["encoder", "head.FUGC"]  # global head: no FPN


def test_variant_params_switch_heads_and_routing():
    tasks = TaskRegistry.official().select(["FUGC", "thyroid_nodule_det"])
    config = make_tiny_config(tasks).model_copy(update={"params": {"pyramid_channels": 64,
                                                                   "segmentation_channels": 32, **VARIANTS}})
    model = build_model(config)
    assert isinstance(model.heads["FUGC"], HeatmapRegressionHead)
    assert isinstance(model.heads["thyroid_nodule_det"], CellOffsetDetectionHead)
    assert model.task_path("FUGC") == ["encoder", "fpn", "head.FUGC"]  # heatmaps read the FPN output


def test_unknown_variant_names_the_known_ones():
    with pytest.raises(ValueError, match="known: linear, heatmap"):
        head_variant(TaskKind.REGRESSION, {"regression_head": "mlp"})


def test_cell_offset_box_is_the_cell_centre_plus_distances():
    head = CellOffsetDetectionHead(in_channels=4, num_classes=1).eval()
    last = head.conv_block[6]
    distances = [0.1, 0.2, 0.3, 0.05]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(torch.tensor([math.log(d / (1 - d)) for d in distances] + [0.0]))
        grid = head(torch.randn(1, 4, 8, 16))
    # cell (row 2, column 5) of an 8 x 16 grid: centre x = 5.5 / 16, y = 2.5 / 8
    cx, cy = 5.5 / 16, 2.5 / 8
    expected = [cx - 0.1, cy - 0.2, cx + 0.3, cy + 0.05]
    assert grid.shape == (1, 5, 8, 16)
    assert grid[0, :4, 2, 5].tolist() == pytest.approx(expected, abs=1e-6)


def test_heatmap_head_returns_the_peak_position_as_x_y_pairs():
    head = HeatmapRegressionHead(in_channels=2, num_points=2).eval()
    head.conv_block = nn.Identity()  # feed heatmaps directly
    heatmaps = torch.full((1, 2, 10, 20), -50.0)
    heatmaps[0, 0, 3, 7] = 50.0   # point 1: x = 7.5/20, y = 3.5/10
    heatmaps[0, 1, 9, 0] = 50.0   # point 2: x = 0.5/20, y = 9.5/10
    points = head(heatmaps)
    assert points.tolist()[0] == pytest.approx([7.5 / 20, 3.5 / 10, 0.5 / 20, 9.5 / 10], abs=1e-5)


def test_variant_heads_export_with_parity(tmp_path):
    from exporter import export_model

    tasks = [TaskSpec(task_id="FUGC", kind=TaskKind.REGRESSION, num_classes=2),
             TaskSpec(task_id="thyroid_nodule_det", kind=TaskKind.DETECTION, num_classes=1)]
    config = make_tiny_config(tasks).model_copy(update={"params": {"pyramid_channels": 32,
                                                                   "segmentation_channels": 32, **VARIANTS}})
    torch.manual_seed(0)
    manifest = export_model(build_model(config).eval(), tmp_path / "model")
    assert manifest.task("FUGC").path == ["encoder", "fpn", "head.FUGC"]
    assert max(manifest.parity.max_rel_error.values()) <= 1e-4


def test_cell_offset_head_exports_at_fp16(tmp_path):
    """The fp16 converter retypes the cell centres' Cast to float16 but leaves it casting to float32; the one
    conversion of both layouts repairs it (before, the default model's fp16 export failed on this head)."""
    from exporter import export_model

    tasks = [TaskSpec(task_id="thyroid_nodule_det", kind=TaskKind.DETECTION, num_classes=1)]
    config = make_tiny_config(tasks).model_copy(update={"params": {"pyramid_channels": 32, "segmentation_channels": 32,
                                                                   "detection_head": "cell_offset"}})
    torch.manual_seed(0)
    manifest = export_model(build_model(config).eval(), tmp_path / "model", precisions=["fp16"])
    figures = manifest.graph_set("fp16").deviation_from_fp32
    assert math.isfinite(figures["max_rel_error"]) and figures["detection.max_abs_box_diff"] < 1e-2
