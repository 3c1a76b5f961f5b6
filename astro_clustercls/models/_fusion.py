# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Inference-only rewrites of a network that keep its function (to float
rounding) and make it faster; the classifier applies them to its cached copy
of the network, training never sees them.

* `fold_batchnorm`: in evaluation mode a ``BatchNorm2d`` is a per-channel
  affine map, merged into the weights and bias of the convolution feeding it
  (one pass over memory fewer per layer).
* `densify_small_convs`: a convolution whose input has no more pixels than its
  kernel has taps (ResNet18's last stage at 51 px: 3x3 kernels on 2x2 pixels)
  becomes one matrix product, `DenseConv2d`, that skips the taps oneDNN would
  spend on the zero padding.
"""

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

__all__ = ["fold_batchnorm", "densify_small_convs", "DenseConv2d"]


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


class DenseConv2d(nn.Module):
    """
    A convolution on a small input of fixed size, computed as one matrix product.

    On the last stage of ResNet18 with 51-px cutouts a 3x3 convolution sees
    2x2 pixels: 5 of its 9 taps fall on the zero padding, which oneDNN still
    multiplies. As a matrix from the flattened input (H x W x C_in) to the
    flattened output, the same map costs only the taps that hit pixels, in
    one large GEMM. It is used under bfloat16 autocast on CPU (the
    classifier's default there); in float32, on other devices and for inputs
    of another size the convolution runs.

    Parameters
    ----------
    conv : `torch.nn.Conv2d`
        The convolution (``groups=1``, zero padding).
    in_hw : tuple of int
        The (height, width) of the inputs it will see.
    """

    def __init__(self, conv, in_hw):
        super().__init__()
        if conv.groups != 1 or conv.padding_mode != "zeros" or \
                isinstance(conv.padding, str):
            raise ValueError("'conv' must have groups=1 and numeric zero padding")
        self.conv = conv
        hi, wi = (int(v) for v in in_hw)
        (kh, kw), (sh, sw) = conv.kernel_size, conv.stride
        (ph, pw), (dh, dw) = conv.padding, conv.dilation
        ho = (hi + 2 * ph - dh * (kh - 1) - 1) // sh + 1
        wo = (wi + 2 * pw - dw * (kw - 1) - 1) // sw + 1
        weight = conv.weight.detach()
        cout, cin = weight.shape[:2]
        # (out row, out col, C_out, in row, in col, C_in): both sides in the
        # pixel-major order of a channels_last tensor
        dense = weight.new_zeros(ho, wo, cout, hi, wi, cin)
        for oi in range(ho):
            for oj in range(wo):
                for a in range(kh):
                    ii = oi * sh - ph + a * dh
                    for b in range(kw):
                        jj = oj * sw - pw + b * dw
                        if 0 <= ii < hi and 0 <= jj < wi:
                            dense[oi, oj, :, ii, jj, :] += weight[:, :, a, b]
        bias = conv.bias.detach() if conv.bias is not None else weight.new_zeros(cout)
        self.register_buffer("weight", dense.reshape(ho * wo * cout, hi * wi * cin))
        self.register_buffer("bias", bias.repeat(ho * wo))
        self.in_hw, self.out_shape = (hi, wi), (ho, wo, cout)

    #: rows per matrix product: every product has this shape (the last one
    #: padded with zeros), because BLAS picks other kernels, which round
    #: differently, for other numbers of rows -- results would then depend on
    #: the batch size (measured)
    block_rows = 64

    @staticmethod
    def _use_matmul(x):
        # bf16 autocast on CPU only: there the products are bit-identical for
        # a row whatever the batch and its place in it (measured); float32
        # sgemm kernels round a row differently at different places in the
        # block, so float32 (and other devices) keep the convolution
        return (x.device.type == "cpu" and torch.is_autocast_enabled("cpu")
                and torch.get_autocast_dtype("cpu") == torch.bfloat16)

    def forward(self, x):
        if tuple(x.shape[-2:]) != self.in_hw or not self._use_matmul(x):
            return self.conv(x)
        return self.matmul(x)

    def matmul(self, x):
        """The convolution of ``x`` (of size ``in_hw``) as matrix products."""
        n = x.shape[0]
        flat = x.permute(0, 2, 3, 1).reshape(n, -1)  # a view for channels_last
        pad = -n % self.block_rows
        if pad:
            flat = torch.cat([flat, flat.new_zeros((pad, flat.shape[1]))])
        y = torch.cat([nn.functional.linear(rows, self.weight, self.bias)
                       for rows in flat.split(self.block_rows)])[:n]
        return y.reshape(n, *self.out_shape).permute(0, 3, 1, 2)


def densify_small_convs(model, input_shape):
    """
    Replace, in place, each convolution whose input (for inputs of
    ``input_shape``) has no more pixels than its kernel has taps by a
    `DenseConv2d`, which then costs no more multiplications than the
    convolution and runs as one GEMM.

    Parameters
    ----------
    model : `torch.nn.Module`
        A network in evaluation mode.
    input_shape : tuple of int
        ``(bands, height, width)`` of the network's inputs.

    Returns
    -------
    replaced : list of str
        Names of the replaced convolutions.
    """
    if model.training:
        raise ValueError("'model' must be in evaluation mode (call .eval())")
    seen, hooks = {}, []

    def record(name):
        def hook(module, args):
            seen.setdefault(name, tuple(args[0].shape[-2:]))
        return hook

    for name, module in model.named_modules():
        if type(module) is nn.Conv2d:
            hooks.append(module.register_forward_pre_hook(record(name)))
    try:
        param = next(model.parameters())
        with torch.no_grad():
            model(torch.zeros((1, *input_shape), dtype=param.dtype,
                              device=param.device))
    finally:
        for hook in hooks:
            hook.remove()
    replaced = []
    modules = dict(model.named_modules())
    for name, (hi, wi) in seen.items():
        conv = modules[name]
        kh, kw = conv.kernel_size
        if conv.groups != 1 or isinstance(conv.padding, str) or \
                conv.padding_mode != "zeros" or hi * wi > kh * kw:
            continue
        parent, _, attr = name.rpartition(".")
        with torch.no_grad():
            setattr(modules[parent] if parent else model, attr,
                    DenseConv2d(conv, (hi, wi)))
        replaced.append(name)
    return replaced
