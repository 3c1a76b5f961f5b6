# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
N-band ResNet18 and VGG19-BN networks built on torchvision.

Both take cutouts of ``n_bands`` bands (the first convolution is widened or
narrowed from torchvision's 3 RGB channels) and any square size from about 15
pixels up (the networks end in adaptive average pooling). VGG19-BN keeps
torchvision's convolutional trunk (``features``, same parameter names as
``torchvision.models.vgg19_bn``) with ``ceil_mode`` max-pooling, so that inputs
of 15-31 pixels survive its five poolings, and a small head replacing the
4096-wide ImageNet classifier, so the fp16 file is ~40 MB instead of ~280 MB.
"""

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import torch
import torchvision
from torch import nn
from torchvision.models.vgg import VGG, cfgs, make_layers

from ..utils._parameters import validate_choice, validate_positive_int
from ._io import load_state_dict_file

__all__ = ["ARCHITECTURES", "build_network", "imagenet_weights_path",
           "identify_state_dict", "check_state_dict"]


@dataclass(frozen=True)
class _ArchSpec:
    first_conv: str  # module name of the first convolution
    head: str  # module name of the classifier head (skipped from ImageNet)
    last_linear: str  # module name of the layer giving the class scores
    imagenet_file: str  # torchvision's file name in the torch hub cache


_SPECS = {
    "resnet18": _ArchSpec("conv1", "fc", "fc", "resnet18-f37072fd.pth"),
    "vgg19_bn": _ArchSpec("features.0", "classifier", "classifier.3",
                          "vgg19_bn-c79401a0.pth"),
}

#: Names of the supported architectures.
ARCHITECTURES = tuple(_SPECS)

_VGG_HEAD_WIDTH = 256
_VGG_HEAD_DROPOUT = 0.5


def _resnet18(n_bands, num_classes):
    model = torchvision.models.resnet18(weights=None, num_classes=num_classes)
    old = model.conv1
    model.conv1 = nn.Conv2d(n_bands, old.out_channels, kernel_size=old.kernel_size,
                            stride=old.stride, padding=old.padding, bias=False)
    nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
    return model


def _vgg19_bn(n_bands, num_classes):
    # torchvision's vgg19_bn(weights=None) would also build and initialise the
    # 120M-parameter ImageNet classifier only to throw it away (~2 s, 0.5 GB);
    # make_layers(cfgs['E'], batch_norm=True) is exactly its trunk.
    features = make_layers(cfgs["E"], batch_norm=True)
    first = features[0]
    features[0] = nn.Conv2d(n_bands, first.out_channels, kernel_size=3, padding=1)
    for layer in features:
        if isinstance(layer, nn.MaxPool2d):
            layer.ceil_mode = True
    model = VGG.__new__(VGG)
    nn.Module.__init__(model)
    model.features = features
    model.avgpool = nn.AdaptiveAvgPool2d(1)
    model.classifier = nn.Sequential(
        nn.Linear(512, _VGG_HEAD_WIDTH),
        nn.ReLU(inplace=True),
        nn.Dropout(p=_VGG_HEAD_DROPOUT),
        nn.Linear(_VGG_HEAD_WIDTH, num_classes),
    )
    # torchvision's VGG initialisation
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            nn.init.constant_(m.bias, 0)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.constant_(m.weight, 1)
            nn.init.constant_(m.bias, 0)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.constant_(m.bias, 0)
    return model


_BUILDERS = {"resnet18": _resnet18, "vgg19_bn": _vgg19_bn}


def imagenet_weights_path(arch):
    """
    Where torchvision keeps the ImageNet weights of ``arch``: the torch hub cache.

    The file is there only if torchvision downloaded it once (e.g.
    ``torchvision.models.resnet18(weights='DEFAULT')`` on a machine with
    network); this package never downloads it.

    Parameters
    ----------
    arch : {'resnet18', 'vgg19_bn'}
        The architecture.

    Returns
    -------
    path : `~pathlib.Path`
        ``torch.hub.get_dir() / 'checkpoints' / <torchvision file name>``.

    Examples
    --------
    >>> from astro_clustercls.models import imagenet_weights_path
    >>> imagenet_weights_path('resnet18').name
    'resnet18-f37072fd.pth'
    """
    arch = validate_choice("arch", arch, ARCHITECTURES)
    return Path(torch.hub.get_dir()) / "checkpoints" / _SPECS[arch].imagenet_file


def build_network(arch, *, n_bands=5, num_classes=4, init="scratch",
                  imagenet_weights=None):
    """
    Build an N-band ResNet18 or VGG19-BN classifier.

    Parameters
    ----------
    arch : {'resnet18', 'vgg19_bn'}
        The architecture.
    n_bands : int, optional
        Number of input bands (channels of the first convolution).
    num_classes : int, optional
        Number of output classes (4 for the cluster classes 1-4).
    init : {'scratch', 'imagenet'}, optional
        ``'scratch'``: torchvision's random initialisation. ``'imagenet'``:
        every layer but the classifier head starts from torchvision's ImageNet
        weights, read from ``imagenet_weights`` or else from the torch hub
        cache (`imagenet_weights_path`), never downloaded. The first
        convolution's RGB kernels are averaged and the mean kernel is tiled
        over the ``n_bands`` bands, scaled by ``3 / n_bands`` (so a flat
        input gives the same response as a flat grey RGB image).
    imagenet_weights : str or `~pathlib.Path`, optional
        A torchvision-format ImageNet state dict file (``.pth`` read with
        ``torch.load(weights_only=True)``, or safetensors) for ``init =
        'imagenet'``.

    Returns
    -------
    model : `torch.nn.Module`
        A ``torchvision.models.ResNet`` or ``torchvision.models.VGG`` in
        training mode, taking ``(N, n_bands, S, S)`` float32 input and
        returning ``(N, num_classes)`` logits.

    Raises
    ------
    ValueError
        Unknown ``arch`` or ``init``, bad ``n_bands`` / ``num_classes``,
        ``imagenet_weights`` without ``init='imagenet'``, or an ImageNet file
        that is not a torchvision state dict of ``arch``.
    OSError
        ``init='imagenet'`` and no weights file found (the message names the
        cache path and the ``imagenet_weights`` argument), or an unreadable
        file.

    Examples
    --------
    >>> import torch
    >>> from astro_clustercls.models import build_network
    >>> net = build_network('resnet18', n_bands=5).eval()
    >>> with torch.inference_mode():
    ...     logits = net(torch.zeros(2, 5, 31, 31))
    >>> tuple(logits.shape)
    (2, 4)
    """
    arch = validate_choice("arch", arch, ARCHITECTURES)
    n_bands = validate_positive_int("n_bands", n_bands)
    num_classes = validate_positive_int("num_classes", num_classes)
    init = validate_choice("init", init, ("scratch", "imagenet"))
    if imagenet_weights is not None and init != "imagenet":
        raise ValueError("'imagenet_weights' is only used with init='imagenet', got "
                         f"init={init!r}")
    if init == "imagenet":
        imagenet_weights = _imagenet_file(arch, imagenet_weights)
    model = _BUILDERS[arch](n_bands, num_classes)
    if init == "imagenet":
        _load_imagenet(model, arch, n_bands, imagenet_weights)
    return model


def _imagenet_file(arch, path):
    """The ImageNet weights file to read; OSError naming both ways if absent."""
    spec = _SPECS[arch]
    if path is not None:
        path = Path(path).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"'imagenet_weights' file {path} does not exist")
        return path
    path = imagenet_weights_path(arch)
    if not path.is_file():
        raise OSError(
            f"init='imagenet' needs torchvision's ImageNet weights for {arch}, "
            f"which are not in the torch hub cache ({path}) and "
            "'imagenet_weights' was not given. Either pass "
            "imagenet_weights='/path/to/" + spec.imagenet_file + "' or put the "
            f"file at {path} (e.g. run torchvision.models.{arch}(weights="
            "'DEFAULT') once on a machine with network access); this package "
            "never downloads it.")
    return path


def _load_imagenet(model, arch, n_bands, path):
    spec = _SPECS[arch]
    state = load_state_dict_file(path)
    first = spec.first_conv + ".weight"
    head = spec.head + "."
    trunk = {k: v for k, v in state.items() if not k.startswith(head)}
    expected = {k: v for k, v in model.state_dict().items() if not k.startswith(head)}
    missing = [k for k in expected if k not in trunk
               and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in trunk if k not in expected]
    if missing or unexpected or first not in trunk:
        guess = identify_state_dict(state)["arch"]
        what = f"a {guess} state dict" if guess else "not a torchvision state dict"
        raise ValueError(
            f"'imagenet_weights' file {path} is {what}, not torchvision's {arch} "
            f"ImageNet weights (missing keys: {missing[:3]}, unexpected keys: "
            f"{unexpected[:3]})")
    rgb = trunk[first].float()
    if rgb.ndim != 4 or rgb.shape[1] != 3:
        raise ValueError(f"'imagenet_weights' file {path}: {first} has shape "
                         f"{tuple(rgb.shape)}, expected (64, 3, k, k) RGB kernels")
    mean = rgb.mean(dim=1, keepdim=True)
    trunk[first] = mean.repeat(1, n_bands, 1, 1) * (3.0 / n_bands)
    bad = [(k, tuple(trunk[k].shape), tuple(v.shape)) for k, v in expected.items()
           if k in trunk and trunk[k].shape != v.shape]
    if bad:
        raise ValueError(f"'imagenet_weights' file {path} does not fit {arch}: "
                         f"(key, file shape, network shape) {bad[:3]}")
    result = model.load_state_dict(trunk, strict=False)
    leftover = [k for k in result.missing_keys if not k.startswith(head)]
    if leftover:  # pragma: no cover - guarded by the key check above
        raise ValueError(f"'imagenet_weights' file {path} lacks {leftover[:3]}")


@cache
def _reference_shapes(arch):
    """Parameter/buffer shapes of ``arch`` (3 bands, 4 classes), built on 'meta'."""
    with torch.device("meta"):
        model = _BUILDERS[arch](3, 4)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def identify_state_dict(state_dict):
    """
    Recognise the architecture, band count and class count of a state dict.

    Parameters
    ----------
    state_dict : mapping of str to `torch.Tensor`
        Parameters and buffers, as ``model.state_dict()``.

    Returns
    -------
    info : dict
        ``{'arch': name or None, 'n_bands': int or None, 'num_classes': int or
        None}``; ``arch`` is the architecture whose parameter names (outside
        the classifier head) match, ``None`` if none does.

    Examples
    --------
    >>> from astro_clustercls.models import build_network, identify_state_dict
    >>> identify_state_dict(build_network('resnet18', n_bands=3).state_dict())
    {'arch': 'resnet18', 'n_bands': 3, 'num_classes': 4}
    """
    keys = {k for k in state_dict if not k.endswith("num_batches_tracked")}
    for arch, spec in _SPECS.items():
        ref = {k for k in _reference_shapes(arch)
               if not k.endswith("num_batches_tracked")}
        head = spec.head + "."
        if {k for k in keys if not k.startswith(head)} == \
                {k for k in ref if not k.startswith(head)}:
            first = state_dict.get(spec.first_conv + ".weight")
            last = state_dict.get(spec.last_linear + ".weight")
            n_bands = (int(first.shape[1]) if first is not None and first.ndim == 4
                       else None)
            ncls = int(last.shape[0]) if last is not None and last.ndim == 2 else None
            return {"arch": arch, "n_bands": n_bands, "num_classes": ncls}
    return {"arch": None, "n_bands": None, "num_classes": None}


def _spec(arch):
    return _SPECS[arch]


def _num_params(model):
    return int(sum(p.numel() for p in model.parameters()))


def check_state_dict(model, state_dict, *, arch=None, source="state dict"):
    """
    Check that a state dict fits a network before loading it.

    Parameters
    ----------
    model : `torch.nn.Module`
        The network to load into.
    state_dict : mapping of str to `torch.Tensor`
        The weights.
    arch : str, optional
        The network's architecture name, for messages.
    source : str, optional
        Where the weights come from (e.g. the file name), for messages.

    Raises
    ------
    ValueError
        Naming what differs: another architecture, another band count
        (first convolution), another class count, or other missing,
        unexpected or mis-shaped entries.

    Examples
    --------
    >>> from astro_clustercls.models import build_network, check_state_dict
    >>> net = build_network('resnet18', n_bands=5)
    >>> other = build_network('resnet18', n_bands=3).state_dict()
    >>> check_state_dict(net, other, arch='resnet18')  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: state dict has 3 input bands, but the resnet18 network takes 5 bands...
    """
    expected = model.state_dict()
    got = identify_state_dict(state_dict)
    mine = identify_state_dict(expected)
    arch = arch or mine["arch"] or type(model).__name__

    def _keys(d):
        return {k for k in d if not k.endswith("num_batches_tracked")}

    missing = sorted(_keys(expected) - _keys(state_dict))
    unexpected = sorted(_keys(state_dict) - _keys(expected))
    if missing or unexpected:
        if got["arch"] is not None and got["arch"] != mine["arch"]:
            raise ValueError(f"{source} holds weights of a {got['arch']} network, not "
                             f"{arch}; load it with get_model('{got['arch']}', ...)")
        if got["arch"] is None:
            raise ValueError(
                f"{source} is not a {arch} state dict: missing {len(missing)} entries "
                f"(e.g. {missing[:3]}), unexpected {len(unexpected)} (e.g. "
                f"{unexpected[:3]})")
        raise ValueError(f"{source} does not match the {arch} network: missing "
                         f"{missing[:3]}, unexpected {unexpected[:3]}")
    if mine["arch"] is not None:
        spec = _spec(mine["arch"])
        if got["n_bands"] != mine["n_bands"]:
            raise ValueError(f"{source} has {got['n_bands']} input bands, but the "
                             f"{arch} network takes {mine['n_bands']} bands "
                             f"(n_bands={mine['n_bands']})")
        if got["num_classes"] != mine["num_classes"]:
            raise ValueError(f"{source} has {got['num_classes']} output classes, but "
                             f"the {arch} network has {mine['num_classes']} "
                             f"(num_classes={mine['num_classes']}); last layer "
                             f"{spec.last_linear!r}")
    bad = [(k, tuple(state_dict[k].shape), tuple(v.shape)) for k, v in expected.items()
           if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)]
    if bad:
        raise ValueError(f"{source} does not fit the {arch} network; (entry, file "
                         f"shape, network shape): {bad[:3]}")
