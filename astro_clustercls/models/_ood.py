# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
How unlike its training data an input is: feature statistics at every stage.

A network says nothing useful about an object unlike anything it was trained
on, and its class probabilities do not show it (a pure-noise cutout or an
image in magnitudes can come out "not a cluster" with probability ~1). The
score here looks at what the network is given and computes instead of what
it concludes. The first "stage" is the normalised input's radial profile per
band (means in annuli) and the spread of its outer ring; then at the output
of each stage of the network (ResNet18: the stem and ``layer1``-``layer4``;
VGG19-BN: each of the five pooling blocks) every channel's spatial mean and
standard deviation form a feature vector. Each is modelled on the training
data by a Gaussian (mean, the ``n_components`` principal directions with
their variances, and the mean residual variance). An input's distance from each
stage's Gaussian (Mahalanobis in the principal subspace plus the normalised
residual) is divided by that stage's validation quantile; the largest of the
stages, divided by the threshold that a fraction ``fpr`` of validation objects
exceeds, is the **OOD score**: above 1, the object is flagged
``OUT_OF_DISTRIBUTION``. Early stages see pixel statistics (noise, units,
saturation), late ones morphology and colour, so both far and near
departures show.

The statistics (`FeatureStatistics`) are fitted on simulated training and
validation objects (`fit_feature_statistics`) and kept in a small safetensors
file next to the weights, named with its SHA-256 in the weights' meta
(``meta['ood']``).
"""

import functools
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

__all__ = ["FeatureStatistics", "forward_with_stages", "stage_features",
           "fit_feature_statistics", "read_ood_statistics", "register_ood_statistics",
           "ood_file_of", "OOD_METHOD"]

#: name and version of the score, recorded in the weights' meta
OOD_METHOD = "stage-feature-statistics-v1"


#: radii (pixels) of the annuli of the input's radial profile (the first stage)
PROFILE_RADII = (1.5, 3.0, 6.0, 12.0)


@functools.lru_cache(maxsize=8)
def _annuli(size):
    """(n_annuli + 1, size * size) float32 averaging weights: annuli, then the ring."""
    yy, xx = np.mgrid[:size, :size] - size // 2
    r = np.hypot(yy, xx).ravel()
    edges = (0.0, *PROFILE_RADII, np.inf)
    masks = [(r >= lo) & (r < hi) for lo, hi in zip(edges[:-1], edges[1:],
                                                   strict=True)]
    masks = [m for m in masks if m.any()]
    ring = np.zeros((size, size), bool)
    ring[:2], ring[-2:], ring[:, :2], ring[:, -2:] = True, True, True, True
    masks.append(ring.ravel())
    weights = np.stack([m / m.sum() for m in masks]).astype(np.float32)
    return torch.from_numpy(weights)


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


def _pool(x):
    """Per-channel spatial mean and standard deviation: (N, 2C) float32."""
    x = x.float()
    return torch.cat([x.mean(dim=(2, 3)), x.std(dim=(2, 3), correction=0)], dim=1)


def forward_with_stages(net, x):
    """
    The network's logits and its pooled stage features, in one forward pass.

    Parameters
    ----------
    net : `torch.nn.Module`
        An N-band ResNet18 or VGG19-BN of this package (BatchNorm may be
        folded, convolutions densified: the modules are called in order).
    x : `torch.Tensor` (N, B, S, S)
        Normalised cutouts.

    Returns
    -------
    logits : `torch.Tensor` (N, K)
    stages : list of `torch.Tensor` (N, D_s), float32
        The input's radial profile per band (`PROFILE_RADII`) and the spread
        of its outer ring, then each stage's per-channel spatial means and
        standard deviations.
    """
    stages = [_profile(x)]
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


def stage_features(net, batches):
    """Concatenated pooled stage features of every batch: list of (N, D_s) float64."""
    out = None
    with torch.inference_mode():
        for batch in batches:
            x = batch if isinstance(batch, torch.Tensor) else torch.from_numpy(batch)
            _, stages = forward_with_stages(net, x)
            if out is None:
                out = [[] for _ in stages]
            for acc, s in zip(out, stages, strict=True):
                acc.append(s.double().numpy())
    return [np.concatenate(acc) for acc in out]


@dataclass
class FeatureStatistics:
    """
    Gaussian models of a network's stage features and the OOD threshold.

    Attributes
    ----------
    means : list of ndarray (D_s,)
    components : list of ndarray (k_s, D_s)
        Principal directions of each stage's features (rows, orthonormal).
    variances : list of ndarray (k_s,)
        Variance along each principal direction.
    residual : ndarray (n_stages,)
        Mean squared residual outside the principal subspace.
    stage_scale : ndarray (n_stages,)
        Each stage's validation quantile of its distance (the divisor).
    threshold : float
        The combined distance above which an object is out of distribution
        (its ``score`` is the combined distance divided by it).
    """

    means: list
    components: list
    variances: list
    residual: np.ndarray
    stage_scale: np.ndarray
    threshold: float

    @property
    def n_stages(self):
        return len(self.means)

    def distances(self, stages):
        """Each stage's distance, (N, n_stages) float64."""
        cols = []
        for s, f in enumerate(stages):
            z = np.asarray(f, np.float64) - self.means[s]
            p = z @ self.components[s].T
            r2 = np.maximum(np.einsum("nd,nd->n", z, z) - np.einsum("nk,nk->n", p, p),
                            0.0)
            cols.append(np.einsum("nk,k->n", p * p, 1.0 / self.variances[s])
                        + r2 / self.residual[s])
        return np.stack(cols, axis=1)

    def score(self, stages):
        """
        The OOD score of each object, (N,) float64: above 1 means out of distribution.
        """
        combined = (self.distances(stages) / self.stage_scale).max(axis=1)
        return combined / self.threshold

    def to_tensors(self):
        """The statistics as a flat dict of float32 tensors (for safetensors)."""
        tensors = {"residual": self.residual, "stage_scale": self.stage_scale,
                   "threshold": np.array([self.threshold])}
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
                   threshold=float(t["threshold"][0]))

    @classmethod
    def read(cls, path, *, sha256=None):
        """Read a statistics file (SHA-256 checked when given)."""
        if sha256 is not None and file_sha256(path) != sha256:
            raise OSError(f"SHA-256 mismatch for the OOD statistics file {path}; the "
                          "file is corrupt or not the one the weights name")
        return cls.from_tensors(load_state_dict_file(path))


def fit_feature_statistics(train_stages, val_stages, *, n_components=32, fpr=0.01):
    """
    Fit the stage Gaussians on training features and the threshold on validation.

    Parameters
    ----------
    train_stages, val_stages : list of ndarray (N, D_s)
        Pooled stage features (`stage_features`) of training objects (the
        Gaussians) and of other objects of the same kind (the scales and the
        threshold).
    n_components : int, optional
        Principal directions kept per stage (default 32).
    fpr : float, optional
        Fraction of validation objects above the threshold (default 0.01).

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
    means, components, variances, residual = [], [], [], []
    for f in train_stages:
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
                              np.ones(len(means)), 1.0)
    dist = stats.distances(val_stages)
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


def read_ood_statistics(meta, weights_path=None):
    """The `FeatureStatistics` the weights' meta names (None if it names none)."""
    path = ood_file_of(meta, weights_path)
    if path is None:
        return None
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
    ``meta['ood']`` to ``info`` plus the file name, its SHA-256 and the method.

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
    ood = {**dict(info), "method": OOD_METHOD, "file": fname, "sha256": digest}
    entries[0]["meta"]["ood"] = ood
    _api._write_manifest(manifest)
    if old and old != fname:
        (data_dir / old).unlink(missing_ok=True)
    return ood
