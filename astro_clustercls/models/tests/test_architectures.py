# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Tests of the N-band ResNet18 / VGG19-BN builders."""

import pytest
import torch
import torchvision
from torch import nn

from astro_clustercls.models import (
    ARCHITECTURES,
    build_network,
    identify_state_dict,
    imagenet_weights_path,
)

_NETS = {}


def net(arch, n_bands):
    """One network per (arch, n_bands), built once per session (eval mode)."""
    if (arch, n_bands) not in _NETS:
        torch.manual_seed(0)
        _NETS[arch, n_bands] = build_network(arch, n_bands=n_bands).eval()
    return _NETS[arch, n_bands]


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("n_bands", [1, 3, 5])
@pytest.mark.parametrize("size", [15, 31, 51])
def test_output_shapes(arch, n_bands, size):
    model = net(arch, n_bands)
    x = torch.randn(2, n_bands, size, size, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        y = model(x)
    assert y.shape == (2, 4)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_large_odd_size_and_first_conv(arch):
    model = net(arch, 5)
    with torch.inference_mode():
        assert model(torch.zeros(1, 5, 101, 101)).shape == (1, 4)
    first = model.conv1 if arch == "resnet18" else model.features[0]
    assert isinstance(first, nn.Conv2d) and first.in_channels == 5
    with pytest.raises(RuntimeError):  # 3-band input into a 5-band network
        model(torch.zeros(1, 3, 31, 31))


def test_vgg_pools_are_ceil_mode():
    pools = [m for m in net("vgg19_bn", 3).features if isinstance(m, nn.MaxPool2d)]
    assert len(pools) == 5 and all(p.ceil_mode for p in pools)


def test_num_params():
    # independent counts from torchvision's own builders (on the meta device)
    with torch.device("meta"):
        tv_resnet = torchvision.models.resnet18(weights=None, num_classes=4)
        tv_vgg = torchvision.models.vgg19_bn(weights=None)

    def count(m):
        return sum(p.numel() for p in m.parameters())

    for n_bands in (1, 3, 5):
        extra = (n_bands - 3) * 64
        assert count(net("resnet18", n_bands)) == count(tv_resnet) + extra * 7 * 7
        trunk = count(tv_vgg.features) + extra * 3 * 3
        head = 512 * 256 + 256 + 256 * 4 + 4
        assert count(net("vgg19_bn", n_bands)) == trunk + head
    # fp16 files: ~22 MB and ~40 MB (the full VGG19-BN would be ~287 MB)
    assert 2 * count(net("vgg19_bn", 5)) / 1e6 == pytest.approx(40.3, abs=0.1)
    assert 2 * count(net("resnet18", 5)) / 1e6 == pytest.approx(22.4, abs=0.1)


def test_num_classes_and_seed():
    torch.manual_seed(3)
    a = build_network("resnet18", n_bands=2, num_classes=7)
    torch.manual_seed(3)
    b = build_network("resnet18", n_bands=2, num_classes=7)
    assert a.fc.out_features == 7
    sa, sb = a.state_dict(), b.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_identify_state_dict():
    assert identify_state_dict(net("vgg19_bn", 1).state_dict()) == {
        "arch": "vgg19_bn", "n_bands": 1, "num_classes": 4}
    assert identify_state_dict({"w": torch.zeros(2)})["arch"] is None


@pytest.mark.parametrize("kwargs, match", [
    ({"arch": "resnet20"}, "Did you mean 'resnet18'"),
    ({"arch": "vgg19"}, "Did you mean 'vgg19_bn'"),
    ({"arch": "resnet18", "n_bands": 0}, "'n_bands'"),
    ({"arch": "resnet18", "num_classes": 0}, "'num_classes'"),
    ({"arch": "resnet18", "init": "pretrained"}, "'init'"),
    ({"arch": "resnet18", "imagenet_weights": "x.pth"}, "init='imagenet'"),
])
def test_build_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_network(**kwargs)


# ---------------------------------------------------------------- ImageNet

def fake_imagenet_file(arch, path):
    """A torchvision-format ImageNet state dict with random values."""
    gen = torch.Generator().manual_seed(5)
    if arch == "resnet18":
        state = torchvision.models.resnet18(weights=None).state_dict()
    else:
        from torchvision.models.vgg import cfgs, make_layers

        state = {f"features.{k}": v for k, v in
                 make_layers(cfgs["E"], batch_norm=True).state_dict().items()}
        # the real file has a 4096-wide head; small stand-ins with the same names
        for i, shape in ((0, (16, 8)), (3, (16, 16)), (6, (10, 16))):
            state[f"classifier.{i}.weight"] = torch.zeros(shape)
            state[f"classifier.{i}.bias"] = torch.zeros(shape[0])
    state = {k: (torch.randn(v.shape, generator=gen) if v.is_floating_point() else v)
             for k, v in state.items()}
    torch.save(state, path)
    return state


@pytest.mark.parametrize("arch, n_bands", [("resnet18", 1), ("vgg19_bn", 5)])
def test_imagenet_init_from_file(tmp_path, arch, n_bands):
    path = tmp_path / "imagenet.pth"
    state = fake_imagenet_file(arch, path)
    model = build_network(arch, n_bands=n_bands, init="imagenet", imagenet_weights=path)
    got = model.state_dict()
    first = "conv1.weight" if arch == "resnet18" else "features.0.weight"
    head = "fc." if arch == "resnet18" else "classifier."
    for key, value in state.items():
        if key == first or key.startswith(head):
            continue
        assert torch.equal(got[key], value), key
    rgb = state[first]
    expected = rgb.mean(dim=1, keepdim=True).repeat(1, n_bands, 1, 1) * 3 / n_bands
    torch.testing.assert_close(got[first], expected)
    # a flat image excites the first layer as a flat grey RGB image does
    ones_n = torch.ones(1, n_bands, 9, 9)
    ones_rgb = torch.ones(1, 3, 9, 9)
    conv = nn.functional.conv2d
    torch.testing.assert_close(conv(ones_n, got[first]), conv(ones_rgb, rgb),
                               rtol=1e-4, atol=1e-4)
    # the head is fresh (4 classes), not from the file
    last = model.fc if arch == "resnet18" else model.classifier[3]
    assert last.out_features == 4
    model.eval()
    with torch.inference_mode():
        assert model(torch.zeros(1, n_bands, 15, 15)).shape == (1, 4)


def test_imagenet_init_from_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    path = imagenet_weights_path("resnet18")
    assert path == tmp_path / "checkpoints" / "resnet18-f37072fd.pth"
    with pytest.raises(OSError) as info:
        build_network("resnet18", init="imagenet")
    msg = str(info.value)
    assert str(path) in msg and "imagenet_weights" in msg and "never downloads" in msg
    path.parent.mkdir()
    state = fake_imagenet_file("resnet18", path)
    model = build_network("resnet18", init="imagenet")
    assert torch.equal(model.state_dict()["layer4.1.conv2.weight"],
                       state["layer4.1.conv2.weight"])


def test_imagenet_missing_vgg_message(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(OSError, match="vgg19_bn-c79401a0.pth"):
        build_network("vgg19_bn", init="imagenet")
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        build_network("vgg19_bn", init="imagenet",
                      imagenet_weights=tmp_path / "missing.pth")


def test_imagenet_wrong_architecture_file(tmp_path):
    path = tmp_path / "resnet.pth"
    fake_imagenet_file("resnet18", path)
    with pytest.raises(ValueError, match="is a resnet18 state dict, not torchvision's "
                                         "vgg19_bn"):
        build_network("vgg19_bn", init="imagenet", imagenet_weights=path)
