# Licensed under a 3-clause BSD style license - see LICENSE.rst
import pytest
import torch

from astro_clustercls.models import build_network
from astro_clustercls.models._fusion import fold_batchnorm


def _randomise_bn(net, seed):
    """Give every BatchNorm non-trivial statistics and affine parameters."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.3)
                m.running_var.copy_(torch.rand(n, generator=g) * 2 + 0.2)
                m.weight.copy_(torch.randn(n, generator=g) * 0.5 + 1)
                m.bias.copy_(torch.randn(n, generator=g) * 0.2)


@pytest.mark.parametrize(("arch", "size", "n_bn"),
                         [("resnet18", 31, 20), ("vgg19_bn", 25, 16)])
def test_fold_batchnorm_same_function(arch, size, n_bn):
    torch.manual_seed(0)
    net = build_network(arch, n_bands=5)
    _randomise_bn(net, 1)
    net.eval()
    # every BatchNorm of both torchvision trunks follows a convolution
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules()) == n_bn
    x = torch.randn(4, 5, size, size, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref = net(x)
        fused = fold_batchnorm(net)
        out = fused(x)
    assert fused is net
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    scale = ref.abs().max()
    assert torch.max(torch.abs(out - ref)) <= 1e-4 * scale
    assert torch.equal(out.argmax(1), ref.argmax(1))


def test_fold_batchnorm_errors():
    net = build_network("resnet18")
    with pytest.raises(ValueError, match="evaluation mode"):
        fold_batchnorm(net.train())
    with pytest.raises(TypeError, match="'model' must be a torch.nn.Module"):
        fold_batchnorm("resnet18")


@pytest.mark.parametrize(("cin", "cout", "k", "stride", "pad", "dil", "hw"), [
    (8, 6, 3, 1, 1, 1, (2, 2)),    # ResNet18's last stage at 51 px
    (4, 5, 3, 2, 1, 1, (3, 3)),    # strided
    (3, 4, 1, 1, 0, 1, (1, 1)),    # 1x1 on one pixel
    (3, 2, 3, 1, 2, 2, (2, 3)),    # dilated, rectangular input
])
def test_dense_conv_matches_conv(cin, cout, k, stride, pad, dil, hw):
    from astro_clustercls.models._fusion import DenseConv2d

    torch.manual_seed(0)
    conv = torch.nn.Conv2d(cin, cout, k, stride=stride, padding=pad, dilation=dil)
    dense = DenseConv2d(conv, hw)
    x = torch.randn(5, cin, *hw)
    with torch.no_grad():
        ref = conv(x)
        for layout in (torch.contiguous_format, torch.channels_last):
            out = dense.matmul(x.contiguous(memory_format=layout))
            assert out.shape == ref.shape
            torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
        # float32: the convolution itself; bf16 autocast on CPU: the products
        assert torch.equal(dense(x), ref)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert torch.equal(dense(x), dense.matmul(x))
            torch.testing.assert_close(dense(x).float(), ref, rtol=0.05, atol=0.05)
            # another input size: the convolution
            y = torch.randn(2, cin, hw[0] + 3, hw[1] + 3)
            assert torch.equal(dense(y), conv(y))


@pytest.mark.parametrize(("size", "expected"), [
    (51, ["layer4.0.conv2", "layer4.1.conv1", "layer4.1.conv2"]),
    # at 31 px layer3 sees 2x2 and layer4 1x1 pixels; the 1x1 downsampling
    # convolution on 2x2 pixels (4 > 1 tap) stays a convolution
    (31, ["layer3.0.conv2", "layer3.1.conv1", "layer3.1.conv2", "layer4.0.conv1",
          "layer4.0.conv2", "layer4.1.conv1", "layer4.1.conv2"]),
])
def test_densify_small_convs_resnet(size, expected):
    from astro_clustercls.models._fusion import DenseConv2d, densify_small_convs

    torch.manual_seed(0)
    net = build_network("resnet18", n_bands=5)
    _randomise_bn(net, 3)
    net.eval()
    x = torch.randn(3, 5, size, size)
    with torch.no_grad():
        ref = net(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            ref16 = net(x).float()
        replaced = densify_small_convs(net, (5, size, size))
        assert torch.equal(net(x), ref)  # float32: unchanged
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = net(x.contiguous(memory_format=torch.channels_last)).float()
    assert replaced == expected
    modules = dict(net.named_modules())
    assert all(isinstance(modules[name], DenseConv2d) for name in replaced)
    # bf16 rounding differs between the two paths, not the function
    scale = float(ref.abs().max())
    assert float((out - ref).abs().max()) <= 3 * float((ref16 - ref).abs().max()) \
        + 1e-3 * scale
    with pytest.raises(ValueError, match="evaluation mode"):
        densify_small_convs(net.train(), (5, size, size))


@pytest.mark.parametrize("bf16", [False, True])
def test_dense_conv_batch_size_invariant(bf16):
    """Each row's output is bit-identical whatever the batch it is in."""
    from astro_clustercls.models._fusion import DenseConv2d

    torch.manual_seed(1)
    dense = DenseConv2d(torch.nn.Conv2d(64, 96, 3, padding=1), (2, 2))
    x = torch.randn(150, 64, 2, 2).contiguous(memory_format=torch.channels_last)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        full = dense.matmul(x).float()
        for bs in (1, 3, 7, 64, 100):
            parts = torch.cat([dense.matmul(x[i:i + bs]).float()
                               for i in range(0, 150, bs)])
            assert torch.equal(parts, full), bs
