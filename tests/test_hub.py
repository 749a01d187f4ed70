"""The seed's torch.hub entry points work from a local checkout."""

from __future__ import annotations

import inspect

import torch

from tests.conftest import REPO


def test_torch_hub_load_mobilenetv3_gives_a_ready_model_in_eval_mode():
    model = torch.hub.load(str(REPO), "mobilenetv3", source="local")
    assert not model.training
    with torch.no_grad():
        fgr, pha, *rec = model(torch.rand(1, 3, 64, 64), *[None] * 4, 0.5)
    assert pha.shape == (1, 1, 64, 64) and len(rec) == 4


def test_torch_hub_load_resnet50_builds_the_official_layout():
    model = torch.hub.load(str(REPO), "resnet50", source="local", pretrained=False)
    assert not model.training and "backbone.layer4.2.conv3.weight" in model.state_dict()


def test_torch_hub_converter_has_the_official_signature():
    convert_video = torch.hub.load(str(REPO), "converter", source="local")
    params = inspect.signature(convert_video).parameters
    for name in [
        "model", "input_source", "input_resize", "downsample_ratio", "output_type", "output_composition",
        "output_alpha", "output_foreground", "output_video_mbps", "seq_chunk", "num_workers", "progress",
        "device", "dtype",
    ]:
        assert name in params
