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
