# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Folding of BatchNorm layers into the convolutions before them, for inference.

In evaluation mode a ``BatchNorm2d`` is a per-channel affine map, so it can be
merged into the weights and bias of the convolution that feeds it: the
network computes the same function (to float32 rounding) with one pass over
memory fewer per layer. The classifier does this to its cached inference
copy of the network; training never sees it.
"""

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

__all__ = ["fold_batchnorm"]


def _conv_bn_pairs(model):
    """
    Yield (parent, conv name, bn name) for every convolution feeding a BatchNorm.

    Two layouts are recognised, those of the torchvision networks we build
    on: adjacent ``Conv2d`` and ``BatchNorm2d`` children of a ``Sequential``
    (VGG's features, ResNet's downsample), and ``convN``/``bnN`` attribute
    pairs of one module (ResNet's stem and blocks, whose ``forward`` applies
    ``bnN`` right after ``convN``).
    """
    for parent in model.modules():
        children = dict(parent.named_children())
        if isinstance(parent, nn.Sequential):
            names = list(children)
            for a, b in zip(names[:-1], names[1:], strict=True):
                if isinstance(children[a], nn.Conv2d) and \
                        isinstance(children[b], nn.BatchNorm2d):
                    yield parent, a, b
            continue
        for name, child in children.items():
            if not (name.startswith("conv") and isinstance(child, nn.Conv2d)):
                continue
            bn = "bn" + name[len("conv"):]
            if isinstance(children.get(bn), nn.BatchNorm2d):
                yield parent, name, bn


def fold_batchnorm(model):
    """
    Fold every BatchNorm that follows a convolution into it, in place.

    Parameters
    ----------
    model : `torch.nn.Module`
        A network from `~astro_clustercls.models.build_network` or
        `~astro_clustercls.models.get_model`, in evaluation mode.

    Returns
    -------
    model : `torch.nn.Module`
        The same object, each folded BatchNorm replaced by ``nn.Identity``.

    Raises
    ------
    ValueError
        If ``model`` is in training mode (its BatchNorm layers still use batch
        statistics there).

    Examples
    --------
    >>> import torch
    >>> from astro_clustercls.models import build_network
    >>> from astro_clustercls.models._fusion import fold_batchnorm
    >>> net = build_network("resnet18").eval()
    >>> x = torch.randn(2, 5, 31, 31)
    >>> ref = net(x)
    >>> fused = fold_batchnorm(net)
    >>> any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    False
    >>> bool(torch.allclose(fused(x), ref, atol=1e-4))
    True
    """
    if not isinstance(model, nn.Module):
        raise TypeError("'model' must be a torch.nn.Module, got "
                        f"{type(model).__name__}")
    if model.training:
        raise ValueError("'model' must be in evaluation mode (call .eval()) before "
                         "its BatchNorm layers are folded")
    with torch.no_grad():
        for parent, conv, bn in list(_conv_bn_pairs(model)):
            fused = fuse_conv_bn_eval(getattr(parent, conv), getattr(parent, bn))
            fused.requires_grad_(False)
            setattr(parent, conv, fused)
            setattr(parent, bn, nn.Identity())
    return model
