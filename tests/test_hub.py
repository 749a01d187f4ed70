"""The seed's torch.hub entry points work from a local checkout."""

from __future__ import annotations

import inspect

import torch

from tests.conftest import DATA, REPO


def test_torch_hub_load_mobilenetv3_gives_the_provisioned_weights_in_eval_mode():
    from rvm_engine.weights import load_model

    model = torch.hub.load(str(REPO), "mobilenetv3", source="local")
    assert not model.training
    hub, engine = model.state_dict(), load_model("mobilenetv3").state_dict()
    assert list(hub) == list(engine)
    different = [key for key in engine if not torch.equal(hub[key], engine[key])]
    assert different == [], f"the hub model's weights differ from the engine's in {different[:5]}"
    with torch.no_grad():
        fgr, pha, *rec = model(torch.rand(1, 3, 64, 64), *[None] * 4, 0.5)
    assert pha.shape == (1, 1, 64, 64) and len(rec) == 4


def test_torch_hub_load_resnet50_builds_the_official_layout():
    model = torch.hub.load(str(REPO), "resnet50", source="local", pretrained=False)
    assert not model.training
    official = {}
    for line in (DATA / "rvm_resnet50_state_dict.tsv").read_text().splitlines():
        key, shape, dtype = line.split("\t")
        official[key] = ([int(s) for s in shape.strip("[]").split(",") if s.strip()], dtype)
    ours = {key: (list(value.shape), str(value.dtype).removeprefix("torch.")) for key, value in model.state_dict().items()}
    assert ours == official


def test_torch_hub_converter_has_the_official_signature():
    convert_video = torch.hub.load(str(REPO), "converter", source="local")
    params = inspect.signature(convert_video).parameters
    for name in [
        "model", "input_source", "input_resize", "downsample_ratio", "output_type", "output_composition",
        "output_alpha", "output_foreground", "output_video_mbps", "seq_chunk", "num_workers", "progress",
        "device", "dtype",
    ]:
        assert name in params
