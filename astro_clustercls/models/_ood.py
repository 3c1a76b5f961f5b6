# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
How unlike its training data an input is: feature statistics at every stage.

A network says nothing useful about an object unlike anything it was trained
on, and its class probabilities do not show it (a pure-noise cutout or an
image in magnitudes can come out "not a cluster" with probability ~1). The
score here looks at what the network is given and computes instead of what
it concludes. Three descriptions of the input come first, computed from the
normalised cutout made linear again (the ``'asinh-v1'`` stretch inverted;
other recipes are taken as linear) and from each band's noise, measured in
the cutout's outer ring (2 px, the pixels the normalisation takes as sky):

1. **Detection**: the highest significance anywhere in the cutout of a
   3x3-pixel box of the band-summed signal-to-noise image (each band's
   pixels divided by its ring noise, summed over bands, divided by
   ``sqrt(B)``; a box's sum divided by 3, its noise for uncorrelated
   pixels). A candidate comes from a detection of at least 5 sigma, so a
   cutout in which nothing reaches `DETECTION_SIGMA` = 5 holds no source:
   its detection score is ``DETECTION_SIGMA / peak`` (above 1: out of
   distribution). This term is physical, not fitted, and one-sided: a
   brighter source never raises it.
2. **Radial profile**: the means in annuli (`PROFILE_RADII`) per band and
   the spread of the outer ring: concentration, colour and noise in the
   normalised units.
3. **Angular structure**: in annuli (`ANGULAR_RADII`) of the band-summed
   signal-to-noise image, the amplitude of each angular Fourier mode ``m =
   1..8`` relative to the annulus' total absolute signal, as
   ``log(amplitude + 0.01)``. A radial profile averages a PSF's diffraction
   pattern away; these keep it: HST's four spikes put power in ``m = 4, 8``,
   a six-spiked JWST-like PSF in ``m = 6``, pure noise spreads it evenly,
   a cluster or a galaxy has its own mix.

Then, at the output of each stage of the network (ResNet18: the stem and
``layer1``-``layer4``; VGG19-BN: each of the five pooling blocks), every
channel's spatial mean and standard deviation form a feature vector. The
profile, the angular structure and each network stage are modelled on the
training data by a Gaussian (mean, the ``n_components`` principal directions
with their variances, and the mean residual variance). An input's distance
from each Gaussian (Mahalanobis in the principal subspace plus the
normalised residual) is divided by that stage's validation quantile; the
largest, divided by the threshold that a fraction ``fpr`` of validation
objects exceeds, is the Gaussian score. The **OOD score** is the larger of
it and the detection score: above 1, the object is flagged
``OUT_OF_DISTRIBUTION``. The input terms see pixel statistics (noise, units,
saturation, PSF), the early network stages texture, the late ones
morphology and colour, so both far and near departures show.

The statistics (`FeatureStatistics`) are fitted on simulated training and
validation objects (`fit_feature_statistics`) and kept in a small safetensors
file next to the weights, named with its SHA-256 in the weights' meta
(``meta['ood']``, which also records the SHA-256 of the weights they were
fitted for and `OOD_METHOD`).
"""

import functools
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn

from ..utils._files import atomic_write
from ..utils._parameters import validate_positive_int
from . import _api
from ._io import file_sha256, load_state_dict_file

__all__ = ["FeatureStatistics", "forward_with_stages", "network_stages",
           "input_stages", "stage_features", "fit_feature_statistics",
           "read_ood_statistics", "register_ood_statistics", "ood_file_of",
           "check_ood_info", "OOD_METHOD", "DETECTION_SIGMA", "STAGE_NAMES_INPUT"]

#: name and version of the score, recorded in the weights' meta
OOD_METHOD = "stage-feature-statistics-v2"

#: radii (pixels) of the annuli of the input's radial profile
PROFILE_RADII = (1.5, 3.0, 6.0, 12.0)

#: edges (pixels) of the annuli of the angular structure (cut at the cutout's
#: inscribed circle)
ANGULAR_RADII = (2.0, 4.0, 8.0, 16.0, 26.0)

#: angular Fourier modes measured in each annulus: m = 1..ANGULAR_MODES
ANGULAR_MODES = 8

#: a cutout whose band-summed 3x3-box significance reaches this nowhere holds
#: no detectable source (the detection score is DETECTION_SIGMA / peak)
DETECTION_SIGMA = 5.0

#: the input's stages, first in the list `forward_with_stages` returns
STAGE_NAMES_INPUT = ("detection peak", "radial profile", "angular structure")

_RING = 2  # width (px) of the outer ring: the sky, as for the normalisation
_NOISE_FLOOR = 1e-4  # ring noise floor, in units of the normalisation's scale
_ASINH_ALPHA = 0.1  # the 'asinh-v1' stretch (astro_clustercls.preprocessing)


def _ring_mask(size):
    ring = np.zeros((size, size), bool)
    ring[:_RING], ring[-_RING:], ring[:, :_RING], ring[:, -_RING:] = (True,) * 4
    return ring


@functools.lru_cache(maxsize=8)
def _annuli(size):
    """(n_annuli + 1, size * size) float32 averaging weights: annuli, then the ring."""
    yy, xx = np.mgrid[:size, :size] - size // 2
    r = np.hypot(yy, xx).ravel()
    edges = (0.0, *PROFILE_RADII, np.inf)
    masks = [(r >= lo) & (r < hi) for lo, hi in zip(edges[:-1], edges[1:],
                                                   strict=True)]
    masks = [m for m in masks if m.any()]
    masks.append(_ring_mask(size).ravel())
    weights = np.stack([m / m.sum() for m in masks]).astype(np.float32)
    return torch.from_numpy(weights)


@functools.lru_cache(maxsize=8)
def _angular_weights(size):
    """
    (size * size, 2 * K * M) cos/sin weights of the modes in each annulus and
    (size * size, K) annulus masks (float64).
    """
    yy, xx = np.mgrid[:size, :size] - size // 2
    r = np.hypot(yy, xx).ravel()
    theta = np.arctan2(yy, xx).ravel()
    edges = [e for e in ANGULAR_RADII if e <= size // 2 + 0.5] or [ANGULAR_RADII[0]]
    edges = [*edges, size // 2 + 0.5] if edges[-1] < size // 2 else edges
    masks = [(r >= lo) & (r < hi) for lo, hi in zip(edges[:-1], edges[1:],
                                                   strict=True)]
    masks = [m for m in masks if m.any()]
    m = np.arange(1, ANGULAR_MODES + 1)
    cos, sin = np.cos(np.outer(theta, m)), np.sin(np.outer(theta, m))
    waves = np.concatenate([np.concatenate([cos * a[:, None], sin * a[:, None]], 1)
                            for a in masks], axis=1)
    return (torch.from_numpy(waves), torch.from_numpy(
        np.stack(masks, axis=1).astype(np.float64)))


def _linear(x, recipe):
    """The normalised cutouts made linear again (float32), in units of the scale."""
    x = x.detach().to(torch.float32)
    if recipe == "asinh-v1":
        # sinh through one exp (torch.sinh is several times slower on CPUs);
        # |u| <= 40 keeps every later sum finite in float32
        e = (x * math.asinh(1.0 / _ASINH_ALPHA)).clamp_(-40.0, 40.0).exp_()
        return e.sub_(torch.reciprocal(e)).mul_(0.5 * _ASINH_ALPHA)
    return x.clone()  # a copy: the significance is computed in place


def _profile(x):
    """
    The input's radial profile per band (means in annuli) and its ring's spread.

    What the network is given, summarised: an object's concentration and
    colour, and the noise around it, in the normalised units.
    """
    n, nb, s, _ = x.shape
    flat = x.float().reshape(n, nb, s * s)
    w = _annuli(s).to(flat.device)
    means = flat @ w.T  # (n, nb, n_annuli + 1)
    ring = w[-1] > 0
    spread = flat[:, :, ring].std(dim=2, correction=0)
    return torch.cat([means.reshape(n, -1), spread], dim=1)


def _significance(lin):
    """Each band's pixels minus its ring median, over its ring noise (MAD); in place."""
    n, nb, s, _ = lin.shape
    ring = torch.from_numpy(_ring_mask(s).ravel()).to(lin.device)
    pix = lin.reshape(n, nb, s * s)[:, :, ring]
    med = pix.median(dim=2).values
    mad = (pix - med[..., None]).abs().median(dim=2).values
    sigma = torch.clamp(1.482602218505602 * mad, min=_NOISE_FLOOR)
    return lin.sub_(med[..., None, None]).div_(sigma[..., None, None])


def input_stages(x, recipe="asinh-v1"):
    """
    The input's own features: detection peak, radial profile, angular structure.

    Parameters
    ----------
    x : `torch.Tensor` (N, B, S, S)
        Normalised cutouts (any device, layout and float dtype).
    recipe : str, optional
        Their normalisation recipe (``'asinh-v1'`` is inverted first).

    Returns
    -------
    list of `torch.Tensor`, float32, on the CPU
        ``(N, 1)`` highest 3x3-box significance of the band-summed
        signal-to-noise image; ``(N, B * (n_annuli + 1) + B)`` radial profile
        and ring spread; ``(N, K * 8)`` log amplitudes of the angular modes
        ``m = 1..8`` in ``K`` annuli (see the module docstring).
    """
    n, nb, s, _ = x.shape
    x = x.detach().cpu().contiguous()
    profile = _profile(x)
    z = _significance(_linear(x, recipe))
    detect = z.sum(dim=1, keepdim=True) / math.sqrt(nb)
    box = torch.nn.functional.avg_pool2d(detect, 3, stride=1) * 3.0  # 9 px / 3
    peak = box.reshape(n, -1).amax(dim=1, keepdim=True)
    waves, masks = _angular_weights(s)
    image = z.sum(dim=1).reshape(n, s * s).double()
    parts = (image @ waves).reshape(n, masks.shape[1], 2, ANGULAR_MODES)
    amp = torch.hypot(parts[:, :, 0], parts[:, :, 1])
    total = (image.abs() @ masks).clamp(min=1e-30)[..., None]
    angular = torch.log(amp / total + 0.01).reshape(n, -1)
    return [peak.float(), profile, angular.float()]


def _pool(x):
    """Per-channel spatial mean and standard deviation: (N, 2C) float32."""
    x = x.float()
    n, c, h, w = x.shape
    if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        flat, dim = x.permute(0, 2, 3, 1).reshape(n, h * w, c), 1
    else:
        flat, dim = x.reshape(n, c, h * w), 2
    # E[x^2] by a norm: no (N, C, H, W) temporary (~10x faster than x.std)
    mean = flat.mean(dim=dim)
    square = torch.linalg.vector_norm(flat, dim=dim) ** 2 / (h * w)
    return torch.cat([mean, torch.clamp(square - mean * mean, min=0.0).sqrt()], dim=1)


def network_stages(net, x):
    """
    The network's logits and the pooled features of each of its stages.

    Parameters
    ----------
    net : `torch.nn.Module`
        An N-band ResNet18 or VGG19-BN of this package (BatchNorm may be
        folded, convolutions densified: the modules are called in order, as
        the network's own ``forward`` does, so the logits are the same).
    x : `torch.Tensor` (N, B, S, S)
        Normalised cutouts.

    Returns
    -------
    logits : `torch.Tensor` (N, K)
    stages : list of `torch.Tensor` (N, 2 C_s), float32
        Each stage's per-channel spatial means and standard deviations.
    """
    stages = []
    if hasattr(net, "layer4"):  # ResNet
        x = net.relu(net.bn1(net.conv1(x)))
        stages.append(_pool(x))
        x = net.maxpool(x)
        for layer in (net.layer1, net.layer2, net.layer3, net.layer4):
            x = layer(x)
            stages.append(_pool(x))
        x = torch.flatten(net.avgpool(x), 1)
        return net.fc(x), stages
    for module in net.features:  # VGG: a stage ends at each pooling layer
        x = module(x)
        if isinstance(module, nn.MaxPool2d):
            stages.append(_pool(x))
    x = torch.flatten(net.avgpool(x), 1)
    return net.classifier(x), stages


def forward_with_stages(net, x, recipe=None):
    """
    The network's logits and all the OOD stage features, in one forward pass.

    Parameters
    ----------
    net : `torch.nn.Module`
        See `network_stages`.
    x : `torch.Tensor` (N, B, S, S)
        Normalised cutouts.
    recipe : str, optional
        Their normalisation (default: the network's ``clustercls_meta``, else
        ``'asinh-v1'``).

    Returns
    -------
    logits : `torch.Tensor` (N, K)
    stages : list of `torch.Tensor` (N, D_s), float32
        `input_stages` (detection peak, radial profile, angular structure),
        then `network_stages`.
    """
    if recipe is None:
        recipe = getattr(net, "clustercls_meta", {}).get("normalization", "asinh-v1")
    logits, stages = network_stages(net, x)
    return logits, [*input_stages(x, recipe), *stages]


def stage_features(net, batches, recipe=None):
    """Concatenated stage features of every batch: list of (N, D_s) float64."""
    out = None
    with torch.inference_mode():
        for batch in batches:
            x = batch if isinstance(batch, torch.Tensor) else torch.from_numpy(batch)
            _, stages = forward_with_stages(net, x, recipe)
            if out is None:
                out = [[] for _ in stages]
            for acc, s in zip(out, stages, strict=True):
                acc.append(s.double().cpu().numpy())
    return [np.concatenate(acc) for acc in out]


@dataclass
class FeatureStatistics:
    """
    Gaussian models of a network's stage features and the OOD threshold.

    Attributes
    ----------
    means : list of ndarray (D_s,)
    components : list of ndarray (k_s, D_s)
        Principal directions of each modelled stage's features (rows,
        orthonormal).
    variances : list of ndarray (k_s,)
        Variance along each principal direction.
    residual : ndarray (n_stages,)
        Mean squared residual outside the principal subspace.
    stage_scale : ndarray (n_stages,)
        Each stage's validation quantile of its distance (the divisor).
    threshold : float
        The combined distance above which an object is out of distribution
        (its Gaussian score is the combined distance divided by it).
    detection_sigma : float, optional
        If positive, the first of the stages given to `score` is the
        detection peak (`input_stages`), not modelled: its score is
        ``detection_sigma / peak``. 0 (default): every stage is modelled.
    """

    means: list
    components: list
    variances: list
    residual: np.ndarray
    stage_scale: np.ndarray
    threshold: float
    detection_sigma: float = 0.0

    @property
    def n_stages(self):
        """Number of modelled (Gaussian) stages."""
        return len(self.means)

    def _split(self, stages):
        """(detection peak (N,) or None, the modelled stages)."""
        stages = list(stages)
        expected = self.n_stages + (1 if self.detection_sigma > 0 else 0)
        if len(stages) != expected:
            raise ValueError(f"the OOD statistics model {expected} stages, got "
                             f"{len(stages)}; the statistics belong to another "
                             "network or method version")
        if self.detection_sigma > 0:
            return np.asarray(stages[0], np.float64).reshape(-1), stages[1:]
        return None, stages

    def distances(self, stages):
        """Each modelled stage's distance, (N, n_stages) float64."""
        cols = []
        for s, f in enumerate(stages):
            z = np.asarray(f, np.float64) - self.means[s]
            if z.shape[1] != self.means[s].shape[0]:
                raise ValueError(f"stage {s} has {z.shape[1]} features, the OOD "
                                 f"statistics {self.means[s].shape[0]}")
            p = z @ self.components[s].T
            r2 = np.maximum(np.einsum("nd,nd->n", z, z) - np.einsum("nk,nk->n", p, p),
                            0.0)
            cols.append(np.einsum("nk,k->n", p * p, 1.0 / self.variances[s])
                        + r2 / self.residual[s])
        return np.stack(cols, axis=1)

    def score_terms(self, stages):
        """
        The two terms of the score, (N,) float64 each: Gaussian and detection.

        The detection term is 0 where the statistics have none.
        """
        peak, modelled = self._split(stages)
        gauss = (self.distances(modelled) / self.stage_scale).max(axis=1) \
            / self.threshold
        if peak is None:
            return gauss, np.zeros_like(gauss)
        with np.errstate(divide="ignore", invalid="ignore"):
            det = np.where(peak > 0, self.detection_sigma / peak, np.inf)
        det = np.where(np.isnan(peak), np.inf, det)
        return gauss, det

    def score(self, stages):
        """
        The OOD score of each object, (N,) float64: above 1 means out of distribution.
        """
        return np.fmax(*self.score_terms(stages))

    def to_tensors(self):
        """The statistics as a flat dict of float32 tensors (for safetensors)."""
        tensors = {"residual": self.residual, "stage_scale": self.stage_scale,
                   "threshold": np.array([self.threshold]),
                   "detection_sigma": np.array([self.detection_sigma])}
        for s in range(self.n_stages):
            tensors[f"stage{s}.mean"] = self.means[s]
            tensors[f"stage{s}.components"] = self.components[s]
            tensors[f"stage{s}.variances"] = self.variances[s]
        return {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32))
                for k, v in tensors.items()}

    @classmethod
    def from_tensors(cls, tensors):
        """Inverse of `to_tensors`."""
        t = {k: v.double().numpy() for k, v in tensors.items()}
        n = len([k for k in t if k.endswith(".mean")])
        return cls(means=[t[f"stage{s}.mean"] for s in range(n)],
                   components=[t[f"stage{s}.components"] for s in range(n)],
                   variances=[t[f"stage{s}.variances"] for s in range(n)],
                   residual=t["residual"], stage_scale=t["stage_scale"],
                   threshold=float(t["threshold"][0]),
                   detection_sigma=float(t.get("detection_sigma", [0.0])[0]))

    @classmethod
    def read(cls, path, *, sha256=None):
        """Read a statistics file (SHA-256 checked when given)."""
        if sha256 is not None and file_sha256(path) != sha256:
            raise OSError(f"SHA-256 mismatch for the OOD statistics file {path}; the "
                          "file is corrupt or not the one the weights name")
        try:
            return cls.from_tensors(load_state_dict_file(path))
        except (KeyError, IndexError, ValueError) as exc:
            raise OSError(f"{path} is not an OOD statistics file: {exc!r}") from None


def fit_feature_statistics(train_stages, val_stages, *, n_components=32, fpr=0.01,
                           detection_sigma=None):
    """
    Fit the stage Gaussians on training features and the threshold on validation.

    Parameters
    ----------
    train_stages, val_stages : list of ndarray (N, D_s)
        Stage features (`stage_features`) of training objects (the
        Gaussians) and of other objects of the same kind (the scales and the
        threshold).
    n_components : int, optional
        Principal directions kept per stage (default 32).
    fpr : float, optional
        Fraction of validation objects above the Gaussian threshold (default
        0.01).
    detection_sigma : float, optional
        If given, the first stage is the detection peak (`input_stages`),
        scored ``detection_sigma / peak`` instead of modelled (the package
        uses ``DETECTION_SIGMA`` = 5). Default: every stage is modelled.

    Returns
    -------
    `FeatureStatistics`

    Examples
    --------
    >>> import numpy as np
    >>> from astro_clustercls.models._ood import fit_feature_statistics
    >>> rng = np.random.default_rng(0)
    >>> train = [rng.normal(size=(2000, 6))]
    >>> val = [rng.normal(size=(2000, 6))]
    >>> stats = fit_feature_statistics(train, val, n_components=3, fpr=0.05)
    >>> far = [rng.normal(size=(100, 6)) + 8.0]
    >>> round(float(np.mean(stats.score(val) > 1)), 2)  # the fpr
    0.05
    >>> float(np.mean(stats.score(far) > 1))
    1.0
    """
    n_components = validate_positive_int("n_components", n_components)
    if not 0 < fpr < 1:
        raise ValueError(f"'fpr' must be in (0, 1), got {fpr!r}")
    det = 0.0 if detection_sigma is None else float(detection_sigma)
    if not (np.isfinite(det) and det >= 0):
        raise ValueError(f"'detection_sigma' must be >= 0, got {detection_sigma!r}")
    first = 1 if det > 0 else 0
    means, components, variances, residual = [], [], [], []
    for f in train_stages[first:]:
        f = np.asarray(f, np.float64)
        mu = f.mean(axis=0)
        z = f - mu
        # principal directions from the SVD of the centred features
        _, sing, vt = np.linalg.svd(z, full_matrices=False)
        k = min(n_components, vt.shape[0] - 1) if vt.shape[0] > 1 else 1
        var = sing[:k] ** 2 / len(f)
        floor = 1e-6 * max(float(var.max()), 1e-30)
        means.append(mu)
        components.append(vt[:k])
        variances.append(np.maximum(var, floor))
        rest = (sing[k:] ** 2).sum() / len(f)
        residual.append(max(rest, floor))
    stats = FeatureStatistics(means, components, variances, np.asarray(residual),
                              np.ones(len(means)), 1.0, det)
    dist = stats.distances(val_stages[first:])
    stats.stage_scale = np.quantile(dist, 1 - fpr, axis=0)
    combined = (dist / stats.stage_scale).max(axis=1)
    stats.threshold = float(np.quantile(combined, 1 - fpr))
    return stats


def ood_file_of(meta, weights_path=None):
    """
    The statistics file the weights' meta names, or None.

    Bundled weights keep it in the bundled-weights directory; a weights file
    of the user's keeps it beside itself.
    """
    info = (meta or {}).get("ood")
    if not info or not info.get("file"):
        return None
    if weights_path:
        return Path(weights_path).expanduser().parent / info["file"]
    return Path(_api.DATA_DIR) / info["file"]


def check_ood_info(meta):
    """
    Why the OOD statistics the weights' meta names cannot be used, or None.

    They cannot if they were fitted by another version of the score
    (``meta['ood']['method']`` is not `OOD_METHOD`) or for other weights
    (``meta['ood']['weights_sha256']`` is not ``meta['sha256']``: the weights
    were replaced without a refit). Returns None when the meta names no
    statistics.
    """
    info = (meta or {}).get("ood")
    if not info:
        return None
    refit = ("; refit them with 'astro-clustercls experiments ood --arch "
             f"{meta.get('architecture', '<arch>')} --register'")
    if info.get("method") != OOD_METHOD:
        return (f"the OOD statistics {info.get('file')} were fitted by "
                f"{info.get('method')!r}, this version computes {OOD_METHOD!r}"
                + refit)
    fitted = info.get("weights_sha256")
    sha = meta.get("sha256")
    if fitted and sha and fitted != sha:
        return (f"the OOD statistics {info.get('file')} were fitted for weights "
                f"{fitted[:12]}, not these ({str(sha)[:12]})" + refit)
    return None


def read_ood_statistics(meta, weights_path=None):
    """
    The `FeatureStatistics` the weights' meta names (None if it names none).

    Raises
    ------
    FileNotFoundError
        The file named is missing.
    OSError
        It fails its SHA-256 check, is not a statistics file, or cannot be
        used with these weights (see `check_ood_info`).
    """
    path = ood_file_of(meta, weights_path)
    if path is None:
        return None
    reason = check_ood_info(meta)
    if reason:
        raise OSError(reason)
    if not path.is_file():
        raise FileNotFoundError(f"the OOD statistics file {path} named by the "
                                "weights' meta is missing; reinstall, or refit it with "
                                "'astro-clustercls experiments ood'")
    return FeatureStatistics.read(path, sha256=meta["ood"].get("sha256"))


def register_ood_statistics(name, member, stats, info):
    """
    Store OOD statistics for bundled weights and name them in the manifest.

    Writes ``<name>-<member>-ood-<sha256[:8]>.safetensors`` into the
    bundled-weights directory (atomically) and sets the manifest entry's
    ``meta['ood']`` to ``info`` plus the file name, its SHA-256, the method
    (`OOD_METHOD`) and the SHA-256 of the weights it was fitted for.

    Returns
    -------
    dict
        The ``meta['ood']`` written.
    """
    manifest = _api._read_manifest()
    entries = [e for e in manifest["weights"]
               if e["model"] == name and e["member"] == member]
    if not entries:
        raise ValueError(f"no bundled weights {name} {member!r} to attach OOD "
                         "statistics to")
    data_dir = Path(_api.DATA_DIR)
    pending = data_dir / f".{name}-{member}-ood.pending.safetensors"
    atomic_write(pending, lambda tmp: save_file(stats.to_tensors(), str(tmp)))
    digest = file_sha256(pending)
    fname = f"{name}-{member}-ood-{digest[:8]}.safetensors"
    os.replace(pending, data_dir / fname)
    old = entries[0]["meta"].get("ood", {}).get("file")
    ood = {**dict(info), "method": OOD_METHOD, "file": fname, "sha256": digest,
           "weights_sha256": entries[0]["sha256"]}
    entries[0]["meta"]["ood"] = ood
    _api._write_manifest(manifest)
    if old and old != fname:
        (data_dir / old).unlink(missing_ok=True)
    return ood
