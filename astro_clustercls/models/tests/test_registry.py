# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Tests of the weights registry, get_model and external weights files."""

import copy
import json
import os
import pickle
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch

from astro_clustercls import models
from astro_clustercls.models import (
    META_KEYS,
    Weights,
    WeightsEnum,
    build_network,
    file_sha256,
    get_model,
    get_model_weights,
    get_weight,
    list_models,
    register_bundled_weights,
    save_weights,
)
from astro_clustercls.preprocessing import normalize
from astro_clustercls.tests.helper import random_weights_meta

BANDS2 = ["F555W", "F814W"]


def bundled_meta(**extra):
    return random_weights_meta(**{
        "bands": BANDS2, "categories": ["c1", "c2", "c3", "c4"], "label_set": "test",
        "training_data": "none: random weights for a registry test", "recipe": "none",
        } | extra)


@pytest.fixture(scope="module")
def nets():
    torch.manual_seed(0)
    return [build_network("resnet18", n_bands=2).eval() for _ in range(2)]


def outputs(model, seed=0):
    x = torch.randn(2, 2, 15, 15, generator=torch.Generator().manual_seed(seed))
    with torch.inference_mode():
        return model(x)


def test_shipped_manifest_is_valid():
    path = Path(models.__file__).parent / "data" / "manifest.json"
    manifest = json.loads(path.read_text())
    assert manifest["format"] == 1
    for entry in manifest["weights"]:
        assert file_sha256(path.parent / entry["path"]) == entry["sha256"]
        assert set(META_KEYS) <= set(entry["meta"]) | {"sha256"}
        assert entry["meta"]["license"] == "BSD-3-Clause"
    # what the registry built from it
    for name in list_models():
        members = [e["member"] for e in manifest["weights"] if e["model"] == name]
        assert [m.name for m in get_model_weights(name)] == members


def test_list_models_and_names():
    assert list_models() == ["resnet18", "vgg19_bn"]
    assert list_models(include="res*") == ["resnet18"]
    assert list_models(exclude=["res*", "x"]) == ["vgg19_bn"]
    assert get_model_weights("ResNet18").__name__ == "ResNet18_Weights"
    assert models.VGG19_BN_Weights is get_model_weights("vgg19_bn")
    with pytest.raises(ValueError, match="Did you mean 'vgg19_bn'"):
        get_model("vgg19")
    with pytest.raises(ValueError, match="Did you mean 'resnet18'"):
        get_model_weights("resnet-18")
    with pytest.raises(TypeError, match="'name'"):
        get_model(18)


def test_no_bundled_weights_yet(empty_registry):
    assert list(models.ResNet18_Weights) == []
    with pytest.raises(ValueError, match="no bundled weights for 'resnet18' yet.*"
                                         "weights_path="):
        get_model("resnet18", weights="DEFAULT")
    with pytest.raises(ValueError, match="no bundled weights"):
        get_weight("VGG19_BN_Weights.DEFAULT")


def test_register_and_default(empty_registry, nets):
    a, b = nets
    w1 = register_bundled_weights(a, "resnet18", "SIM_V1", bundled_meta())
    assert repr(w1) == "ResNet18_Weights.SIM_V1"
    assert models.ResNet18_Weights.DEFAULT is w1
    w2 = register_bundled_weights(b, "resnet18", "SIM_V2", bundled_meta(notes="v2"))
    enum = models.ResNet18_Weights
    assert [m.name for m in enum] == ["SIM_V1", "SIM_V2"]
    assert enum.DEFAULT is w2 and enum["DEFAULT"] is w2
    assert list(models.VGG19_BN_Weights) == []

    # files and manifest
    manifest = json.loads((empty_registry / "manifest.json").read_text())
    assert [e["member"] for e in manifest["weights"]] == ["SIM_V1", "SIM_V2"]
    for w in (w1, w2):
        assert w.full_path.is_file() and w.full_path.parent == empty_registry
        assert w.path == f"resnet18-{w.name}-{w.sha256[:8]}.safetensors"
        assert file_sha256(w.full_path) == w.sha256 == w.meta["sha256"]
        assert w.meta["num_params"] == sum(p.numel() for p in a.parameters())
        assert w.meta["license"] == "BSD-3-Clause"
        assert w.meta["architecture"] == "resnet18"
    assert sorted(p.name for p in empty_registry.iterdir()) == sorted(
        ["manifest.json", w1.path, w2.path])

    # loading: DEFAULT, names, members, full names
    for spec in ("DEFAULT", "SIM_V2", w2, "ResNet18_Weights.SIM_V2",
                 get_weight("ResNet18_Weights.DEFAULT")):
        model = get_model("resnet18", weights=spec)
        assert not model.training
        assert model.clustercls_meta["weights"] == "ResNet18_Weights.SIM_V2"
        assert model.clustercls_meta["sha256"] == w2.sha256
        assert model.clustercls_meta["bands"] == BANDS2
        assert model.clustercls_meta["notes"] == "v2"
    torch.testing.assert_close(outputs(model), outputs(b), rtol=2e-2, atol=2e-2)
    m1 = get_model("resnet18", weights="SIM_V1")
    torch.testing.assert_close(outputs(m1), outputs(a), rtol=2e-2, atol=2e-2)
    assert not torch.allclose(outputs(m1), outputs(model))

    # transforms: the recorded normalisation recipe
    assert isinstance(w1.transforms, partial)
    x = np.random.default_rng(0).normal(size=(2, 2, 15, 15))
    np.testing.assert_array_equal(w1.transforms(x), normalize(x, recipe="asinh-v1"))

    # a copy of a member compares equal (torchvision's partial-aware __eq__)
    assert copy.deepcopy(w1.value) == w1.value
    assert w1.value != w2.value


def test_hash_checked_on_every_load(empty_registry, nets):
    w = register_bundled_weights(nets[0], "resnet18", "SIM_V1", bundled_meta())
    get_model("resnet18", weights="SIM_V1")
    data = bytearray(w.full_path.read_bytes())
    data[-10] ^= 0x01  # one bit in the weights
    w.full_path.write_bytes(bytes(data))
    with pytest.raises(OSError, match=f"expected {w.sha256}.*corrupt or has been "
                                      "modified"):
        get_model("resnet18", weights="SIM_V1")
    w.full_path.unlink()
    with pytest.raises(OSError, match="missing"):
        get_model("resnet18", weights="DEFAULT")


def test_manifest_written_by_hand(empty_registry, nets):
    """The training command's route: a safetensors file + a manifest entry."""
    entries = []
    for member, model in (("B_OLD", nets[1]), ("A_NEW", nets[0])):
        fname = f"resnet18-{member}.safetensors"
        digest = save_weights(model, empty_registry / fname, bundled_meta())
        entries.append({"model": "resnet18", "member": member, "path": fname,
                        "sha256": digest, "meta": bundled_meta()})
    (empty_registry / "manifest.json").write_text(json.dumps({"format": 1,
                                                         "weights": entries}))
    enum = get_model_weights("resnet18")
    assert [m.name for m in enum] == ["B_OLD", "A_NEW"]
    assert enum.DEFAULT.name == "A_NEW"  # the last entry is the newest
    model = get_model("resnet18", weights="DEFAULT")
    torch.testing.assert_close(outputs(model), outputs(nets[0]), rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize("content, match", [
    ("{not json", "not valid JSON"),
    ('{"format": 2, "weights": []}', "format 2"),
    ('{"format": 1, "weights": [{"model": "resnet18"}]}', "entry 0 is invalid"),
    ('{"format": 1, "weights": [{"model": "resnet18", "member": "X", '
     '"path": "../x.safetensors", "sha256": "' + "0" * 64 + '", '
     '"meta": {"normalization": "asinh-v1"}}]}', "plain file name"),
])
def test_bad_manifest(empty_registry, content, match):
    (empty_registry / "manifest.json").write_text(content)
    with pytest.raises(OSError, match=match):
        get_model_weights("resnet18")


def test_register_errors(empty_registry, nets):
    a = nets[0]
    register_bundled_weights(a, "resnet18", "SIM_V1", bundled_meta())
    with pytest.raises(ValueError, match="already exists"):
        register_bundled_weights(a, "resnet18", "SIM_V1", bundled_meta())
    old_file = get_model_weights("resnet18").SIM_V1.full_path
    new = register_bundled_weights(nets[1], "resnet18", "SIM_V1", bundled_meta(),
                                   overwrite=True)
    assert [m.name for m in get_model_weights("resnet18")] == ["SIM_V1"]
    assert new.full_path.is_file() and not old_file.exists()
    for member in ("sim_v2", "DEFAULT", "2X"):
        with pytest.raises(ValueError, match="'member'"):
            register_bundled_weights(a, "resnet18", member, bundled_meta())
    meta = bundled_meta()
    del meta["notes"], meta["training_data"]
    with pytest.raises(ValueError, match=r"lacks \['training_data', 'notes'\]"):
        register_bundled_weights(a, "resnet18", "SIM_V3", meta)
    with pytest.raises(ValueError, match="takes 2 bands"):
        register_bundled_weights(a, "resnet18", "SIM_V3", bundled_meta(bands=["F555W"]))
    with pytest.raises(ValueError, match="not 'vgg19_bn'"):
        register_bundled_weights(a, "vgg19_bn", "SIM_V3", bundled_meta())
    with pytest.raises(ValueError, match="Did you mean 'asinh-v1'"):
        register_bundled_weights(a, "resnet18", "SIM_V3",
                                 bundled_meta(normalization="asinh"))
    assert [m.name for m in get_model_weights("resnet18")] == ["SIM_V1"]


def test_weights_verify(empty_registry, nets):
    register_bundled_weights(nets[0], "resnet18", "SIM_V1", bundled_meta())
    enum = get_model_weights("resnet18")
    assert enum.verify(None) is None
    with pytest.raises(ValueError, match="Did you mean 'SIM_V1'"):
        enum.verify("SIM_V2")
    with pytest.raises(ValueError, match="are not ResNet18_Weights"):
        enum.verify("VGG19_BN_Weights.SIM_V1")
    with pytest.raises(TypeError, match="'weights'"):
        enum.verify(3)
    with pytest.raises(ValueError, match="Did you mean 'VGG19_BN_Weights'"):
        get_weight("VGG19_Weights.DEFAULT")
    with pytest.raises(ValueError, match="'<Enum>.<MEMBER>'"):
        get_weight("SIM_V1")
    assert issubclass(enum, WeightsEnum) and isinstance(enum.SIM_V1.value, Weights)
    # members pickle by name
    assert pickle.loads(pickle.dumps(enum.SIM_V1)) is enum.SIM_V1


# ---------------------------------------------------------- external files

def test_weights_path_safetensors(tmp_path, nets):
    path = tmp_path / "mine.safetensors"
    save_weights(nets[0], path, {"architecture": "resnet18", "bands": BANDS2,
                                 "cutout_size": 21, "normalization": "asinh-v1"})
    model = get_model("resnet18", weights_path=path)
    meta = model.clustercls_meta
    assert meta["cutout_size"] == 21 and meta["bands"] == BANDS2
    assert meta["sha256"] == file_sha256(path) and meta["weights"] == str(path)
    assert meta["n_bands"] == 2 and meta["num_classes"] == 4
    assert meta["categories"] == list(models._api.CLASS_NAMES)
    torch.testing.assert_close(outputs(model), outputs(nets[0]), rtol=2e-2, atol=2e-2)
    # meta= overrides the header
    assert get_model("resnet18", weights_path=path,
                     meta={"cutout_size": 31}).clustercls_meta["cutout_size"] == 31
    with pytest.raises(ValueError, match="n_bands=5 conflicts with the weights, which "
                                         "have 2 bands"):
        get_model("resnet18", weights_path=path, n_bands=5)
    with pytest.raises(ValueError, match="holds weights of a resnet18 network, not "
                                         "vgg19_bn"):
        get_model("vgg19_bn", weights_path=path, meta={"architecture": "vgg19_bn"})
    with pytest.raises(ValueError, match="are resnet18 weights"):
        get_model("vgg19_bn", weights_path=path)


def test_weights_path_torch_file_needs_meta(tmp_path, nets):
    path = tmp_path / "ckpt.pt"
    torch.save({"state_dict": nets[1].state_dict(), "epoch": 2}, path)
    with pytest.raises(ValueError, match=r"carries no meta \['bands', 'cutout_size', "
                                         r"'normalization'\]; pass them with meta="):
        get_model("resnet18", weights_path=path)
    meta = {"bands": BANDS2, "cutout_size": 15, "normalization": "asinh-v1"}
    model = get_model("resnet18", weights_path=path, meta=meta)
    torch.testing.assert_close(outputs(model), outputs(nets[1]))  # fp32: exact
    with pytest.raises(ValueError, match="meta lists 3 bands but the weights take 2"):
        get_model("resnet18", weights_path=path, meta=dict(meta, bands=["a", "b", "c"]))


def test_weights_path_pickle_refused(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch '{marker}'",))

    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"conv1.weight": Payload()}, f, protocol=2)
    with pytest.raises(OSError, match="refusing to load"):
        get_model("resnet18", weights_path=path,
                  meta={"bands": BANDS2, "cutout_size": 15,
                        "normalization": "asinh-v1"})
    assert not marker.exists()


def test_get_model_argument_errors(tmp_path):
    with pytest.raises(ValueError, match="not both"):
        get_model("resnet18", weights="DEFAULT", weights_path=tmp_path / "x")
    with pytest.raises(ValueError, match="'meta' is only used with 'weights_path'"):
        get_model("resnet18", meta={})
    with pytest.raises(FileNotFoundError, match="'weights_path'"):
        get_model("resnet18", weights_path=tmp_path / "missing.safetensors")
    with pytest.raises(ValueError, match="'device'"):
        get_model("resnet18", device="gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            get_model("resnet18", device="cuda")


def test_untrained_model_meta():
    model = get_model("vgg19_bn", n_bands=3, num_classes=4, device="auto")
    meta = model.clustercls_meta
    assert not model.training and meta["weights"] is None and meta["sha256"] is None
    assert meta["n_bands"] == 3 and "not trained" in meta["notes"]
    assert model.features[0].in_channels == 3
