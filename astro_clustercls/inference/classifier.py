# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Classify star-cluster candidates with one network: `ClusterClassifier`.

The classifier takes a source table (photutils finder output, a catalog with
named columns, an ``(N, 2)`` array of pixel positions or a
`~astropy.coordinates.SkyCoord`) and multi-band images, cuts one cutout per
source with `~astro_clustercls.make_cutouts`, normalises it with the network's
recipe and returns the input table with four or five new columns:

==================  ==========================================================
``cluster_class``   int 1..4 (masked where the row could not be classified)
``class_prob``      (N, 4) float32 class probabilities (NaN where not
                    classified); each row sums to 1
``class_prob_max``  the highest probability (NaN where not classified)
``classify_flags``  int bit mask, see `~astro_clustercls.data.flags.FLAGS`
``ood_score``       float, how unlike the network's training data the object
                    is (above 1: flagged ``OUT_OF_DISTRIBUTION``; masked
                    where not classified); only when the weights carry
                    out-of-distribution statistics (both bundled networks do)
==================  ==========================================================

Every input row is kept, in input order. ``meta['astro_clustercls']`` records
the provenance (versions, model, weights and their sha256, bands, cutout size,
normalisation, device, numerical precision, how positions were read).

Speed and memory: the network, its BatchNorm layers folded into the
convolutions and its convolutions on inputs no larger than their kernel
turned into matrix products, runs in ``channels_last`` layout under bfloat16
autocast where the hardware does bfloat16 natively (CPUs with AVX512-BF16 or
AMX, CUDA GPUs since Ampere; float16 on older CUDA GPUs), float32 elsewhere
(``precision=`` opts out; the choice is `astro_clustercls.runtime`'s). Sources
are processed in chunks of a few thousand, in order of their ``y`` pixel, while
a background thread cuts and normalises the next chunk; pages of memory-mapped
images are handed back to the operating system after each chunk, so memory
stays flat in the image size (`astro_clustercls.inference._streaming`). Loaded
networks are cached per process (`astro_clustercls.inference._cache`).
"""

import json
import numbers
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from astropy.table import Column, MaskedColumn

from .._config import conf
from .._constants import CLASS_NAMES, CLASSES, N_CLASSES
from ..data.flags import FLAGS
from ..data.images import bands_of, normalize_band_name
from ..data.positions import resolve_positions
from ..models import check_ood_info, input_stages, int8_support, network_stages
from ..models import read_ood_statistics as _read_ood_statistics
from ..preprocessing import normalize
from ..runtime import (
    PRECISIONS,
    autocast,
    cpu_has_native_bf16,
    resolve_device,
    resolve_precision,
    tta_probabilities,
)
from ..utils._meta import get_meta
from ..utils._parameters import validate_choice, validate_positive_int
from ..utils._progress_bars import AUTO_MIN_OBJECTS, add_progress_bar
from ..utils.exceptions import BandWarning, ClusterClsWarning, WeightsWarning
from . import _streaming
from ._cache import (
    bundled_ood,
    bundled_sha256,
    cached_int8,
    cached_network,
    check_sha256,
    clear_model_cache,
    file_key,
    model_names,
    weights_key,
)
from ._streaming import MAX_BATCH_SIZE
from ._tables import (
    OOD_COLUMN,
    OUTPUT_COLUMNS,
    finish_table,
    ood_column,
    output_table,
    warn_weights,
)

__all__ = ["ClusterClassifier", "clear_model_cache", "OUTPUT_COLUMNS", "OOD_COLUMN",
           "MAX_BATCH_SIZE", "PRECISIONS", "INT8_MIN_AGREEMENT", "INT8_OOD_GUARD"]

#: ``precision='auto'`` takes the int8 copy only if, on simulated objects, its
#: labels agree with float32 at least this often
INT8_MIN_AGREEMENT = 0.995

#: on the int8 path, rows whose OOD score is within this factor of 1 have
#: their network stage features recomputed in float32 (so the flag is the
#: float32 network's)
INT8_OOD_GUARD = 1.25


class ClusterClassifier:
    """
    Classify star-cluster candidates into the four classes of Wei et al. (2020).

    Options are checked, and the network and its weights are loaded (once per
    process), when the classifier is built; calling it classifies.

    Parameters
    ----------
    model : str, optional
        Network name: ``'resnet18'`` (default) or ``'vgg19_bn'`` (see
        `astro_clustercls.models.list_models`).
    weights : str or weights enum member, optional
        Bundled weights: ``None`` or ``'DEFAULT'`` for the default entry, a
        member name (``'SIM_V1'``), ``'Enum.MEMBER'`` or the member itself.
    weights_path : path-like, optional
        An external checkpoint instead of bundled weights: safetensors written
        by `~astro_clustercls.models.save_weights` (its meta gives the bands,
        cutout size and normalisation), or a ``torch.save`` state dict read
        with ``weights_only=True`` (pickled code never runs).
    weights_meta : dict, optional
        Meta of a ``weights_path`` file that carries none (a torch file): at
        least ``'bands'``, ``'cutout_size'`` and ``'normalization'``;
        overrides the file's own meta.
    weights_sha256 : str, optional
        Expected SHA-256 of the ``weights_path`` file (hex digest, or a prefix
        of at least 8 characters); a mismatch raises an OSError. Bundled
        weights are always checked against their manifest.
    device : str or `torch.device`, optional
        ``'cpu'``, ``'cuda'``, ``'cuda:N'``, ``'mps'`` or ``'auto'``. Default:
        ``astro_clustercls.conf.device`` (``'auto'``: ``'cuda'`` if available,
        else ``'cpu'``).
    batch_size : int, optional
        Cutouts per forward pass, 1 to 65536 (default
        ``astro_clustercls.conf.batch_size``). Results do not depend on it.
    progress_bar : bool or None, optional
        Show a tqdm progress bar. Default ``astro_clustercls.conf.progress_bar``,
        whose default None means auto: a bar when standard error is a terminal
        and more than a few thousand objects are classified.
    cutout_size : int, optional
        Cutout side in pixels. The network was trained on one size, recorded in
        its weights' meta; giving another raises a ValueError. Default: that
        size.
    bands : mapping or sequence, optional
        Which image band feeds each band of the network. Default: match by name
        (the network's bands are ``classifier.bands``). A mapping
        ``{network_band: image_band}`` substitutes bands, e.g.
        ``{'F438W': 'F435W', 'F555W': 'F606W'}`` for fields observed with ACS
        F435W or WFC3 F606W; bands not in the mapping are matched by name. A
        sequence gives the image band for each network band in order (``None``
        for a missing one). Substitutions are recorded in the output meta.
    missing_bands : {'error', 'zero'}, optional
        What to do when a band of the network has no image: ``'error'``
        (default) raises a ValueError naming it; ``'zero'`` feeds zeros for
        that band after normalisation (what a network trained with band
        dropout expects), flags every row ``BAND_MISSING`` and emits a
        `~astro_clustercls.utils.exceptions.BandWarning`. Many rows are then
        also flagged ``OUT_OF_DISTRIBUTION`` (the OOD statistics know five
        bands: on the simulator's held-out galaxy, 34 % of the rows with
        F275W fed as zeros, 19 % with F814W, for the default ResNet18).
    tta : bool, optional
        Test-time augmentation: average the class probabilities over the 8
        rotations/flips of each cutout (8 times slower; default False).
    confidence_threshold : float, optional
        Rows whose highest probability is below it are flagged
        ``LOW_CONFIDENCE`` (their class is still given). Default: no threshold.
    precision : {'auto', 'fp32', 'bf16', 'fp16', 'int8'}, optional
        Numeric precision of the forward pass (autocast; weights, softmax and
        outputs stay float32). ``'auto'`` (default): ``'bf16'`` on CPUs with
        native bfloat16 (AVX512-BF16, AMX, Arm BF16) and on CUDA GPUs that
        support it, ``'fp16'`` on older CUDA GPUs with tensor cores; on other
        x86 CPUs with AVX2, ``'int8'`` for bundled weights when onnxruntime
        and onnx are installed (the ``int8`` extra) and
        ``astro_clustercls.conf.int8_auto`` is True; ``'fp32'`` elsewhere.
        ``'int8'``: the network's int8 copy run by ONNX Runtime (built once
        per weights, calibrated and checked on simulated cutouts, cached on
        disk; rows whose two best classes are near-ties are recomputed in
        float32): 2.2-3x the plain float32 forward on an AVX2 CPU, labels
        agreeing with float32 on 99.85-100 % of simulated field objects.
        ``'fp32'`` gives the reference numbers. The precision used is
        ``classifier.precision`` and is recorded in the output meta. On a
        simulated field of 3000 objects, bf16 labels agree with fp32 labels
        for 99.7 % of them (the others are near-ties;
        probabilities differ by 0.025 at most); rows whose reduced-precision
        logits are not finite are recomputed in float32.
    channels_last : bool, optional
        Run the network in ``channels_last`` memory layout (default True: what
        oneDNN's fast CPU kernels and tensor cores want); False keeps NCHW.
    ood : bool, optional
        Score how unlike the training data each object is (default True):
        when the weights' meta names out-of-distribution statistics
        (``meta['ood']``, as for both bundled networks), every classified row
        gets an ``ood_score`` and the flag ``OUT_OF_DISTRIBUTION`` where it is
        above 1 (see Notes). Weights without statistics (a checkpoint of your
        own) give no ``ood_score`` column and no warning;
        ``meta['astro_clustercls']['ood']`` is then None. False skips it.

    Raises
    ------
    TypeError, ValueError
        For invalid options (the message names the parameter); unknown model
        names get close-match suggestions.
    OSError
        If the weights file is missing, truncated or fails its hash check.

    Notes
    -----
    Each cutout is normalised on its own, so a row's probabilities do not
    depend on the other rows or on ``batch_size`` (labels are identical and
    probabilities agree to float32 rounding; in bf16 on CPUs oneDNN computes
    each cutout the same way whatever the batch shape, checked by the tests).
    Inference runs in chunks of sources (a few thousand, ~64 MB of cutouts),
    taken in order of their ``y`` pixel while a background thread prepares
    the next chunk, so memory is proportional to the chunk size and not to
    the number of sources or the image size: pages of large memory-mapped
    images are handed back to the system after each chunk. The forward pass
    runs under `torch.inference_mode` in eval mode.

    On CUDA, cutouts are copied from pinned memory without blocking, every
    forward batch is padded to ``batch_size`` rows (one batch shape, so one
    set of cuDNN kernels for all rows), and a batch that runs out of GPU
    memory is retried at half the size (with a warning; the size reached is
    ``meta['batch_size']``).

    If the weights' meta holds a ``'temperature'`` (calibration by temperature
    scaling), the logits are divided by it before the softmax.

    The ``ood_score`` (`~astro_clustercls.models.FeatureStatistics`) compares
    the input (a detection significance, its radial profile and angular
    structure) and the pooled features of every stage of the network with
    Gaussians fitted on simulated objects like the training data; its
    threshold (score 1) was fitted on simulated validation objects and is
    recorded with the statistics (``meta['astro_clustercls']['ood']``: the
    method, the statistics file and its SHA-256, the fraction of validation
    objects flagged and the rates measured on out-of-distribution sets). It
    is computed in the same forward pass (on the untransformed view under
    ``tta``): labels and probabilities are unchanged by it, and it does not
    depend on ``batch_size``. On the int8 path the stage features come from
    the int8 network, and rows within a factor ``INT8_OOD_GUARD`` (1.25) of the
    threshold are recomputed in float32. Rows that could not be classified
    get a masked score and never the flag. Statistics fitted for other
    weights (the weights were replaced without a refit) or by another version
    of the score are not used: a
    `~astro_clustercls.utils.exceptions.WeightsWarning` says so and how to
    refit; a statistics file that is missing or fails its SHA-256 check
    raises an OSError.

    Examples
    --------
    Classify two sources on 5-band images with a checkpoint ``weights_file``
    (here a freshly initialised network, so the classes mean nothing):

    >>> import pathlib, tempfile
    >>> import numpy as np
    >>> from astro_clustercls import BandImages
    >>> from astro_clustercls.inference.classifier import ClusterClassifier
    >>> from astro_clustercls.models import build_network, save_weights
    >>> bands = ('F275W', 'F336W', 'F438W', 'F555W', 'F814W')
    >>> meta = {'architecture': 'resnet18', 'bands': list(bands), 'cutout_size': 15,
    ...         'normalization': 'asinh-v1'}
    >>> tmpdir = tempfile.TemporaryDirectory()
    >>> weights_file = pathlib.Path(tmpdir.name) / 'weights.safetensors'
    >>> _ = save_weights(build_network('resnet18'), weights_file, meta)
    >>> rng = np.random.default_rng(0)
    >>> images = BandImages({b: rng.normal(0, 1, (64, 64)) for b in bands})
    >>> clf = ClusterClassifier('resnet18', weights_path=weights_file, device='cpu')
    >>> result = clf([(20.0, 30.0), (500.0, 10.0)], images)
    ... # doctest: +SHOW_WARNINGS +ELLIPSIS
    CutoutWarning: 1 of 2 rows have incomplete cutouts (1 OFF_IMAGE); 1 of them ...
    >>> result.colnames[2:]
    ['cluster_class', 'class_prob', 'class_prob_max', 'classify_flags']
    >>> result['cluster_class'].mask.tolist()  # the second source is off the image
    [False, True]
    >>> result['class_prob'].shape
    (2, 4)
    >>> tmpdir.cleanup()
    """

    def __init__(self, model="resnet18", *, weights=None, weights_path=None,
                 weights_sha256=None, weights_meta=None, device=None, batch_size=None,
                 progress_bar=None,
                 cutout_size=None, bands=None, missing_bands="error", tta=False,
                 confidence_threshold=None, precision="auto", channels_last=True,
                 ood=True):
        if not isinstance(model, str):
            raise TypeError(f"'model' must be a model name (str), got "
                            f"{type(model).__name__}")
        self.model = validate_choice("model", model.strip().lower(), model_names())
        if weights_path is not None and not isinstance(weights_path, (str, Path)):
            raise TypeError("'weights_path' must be a path (str or pathlib.Path), got "
                            f"{type(weights_path).__name__}")
        if weights is not None and weights_path is not None:
            raise ValueError("give either 'weights' (bundled) or 'weights_path' (a "
                             "file), not both")
        if weights_sha256 is not None and weights_path is None:
            raise ValueError("'weights_sha256' checks a 'weights_path' file; bundled "
                             "weights are always checked against their manifest")
        self.weights = weights_key(weights)
        self.weights_path = None if weights_path is None else str(weights_path)
        file_id = file_key(self.weights_path)
        if weights_sha256 is not None:
            check_sha256(self.weights_path, weights_sha256)
        if weights_meta is not None:
            if weights_path is None:
                raise ValueError("'weights_meta' describes a 'weights_path' file; give "
                                 "both")
            if not isinstance(weights_meta, Mapping):
                raise TypeError("'weights_meta' must be a dict, got "
                                f"{type(weights_meta).__name__}")
            try:
                self._meta_json = json.dumps(dict(weights_meta), sort_keys=True)
            except TypeError as exc:
                raise TypeError(f"'weights_meta' must be JSON-serialisable: {exc}") \
                    from None
        else:
            self._meta_json = None
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device)
        self.precision_requested = (precision.strip().lower()
                                    if isinstance(precision, str) else precision)
        if not isinstance(channels_last, (bool, np.bool_)):
            raise TypeError(f"'channels_last' must be True or False, got "
                            f"{channels_last!r}")
        self.channels_last = bool(channels_last)
        self.batch_size = validate_positive_int(
            "batch_size", conf.batch_size if batch_size is None else batch_size,
            maximum=MAX_BATCH_SIZE)
        self.progress_bar = None if progress_bar is None else bool(progress_bar)
        self.missing_bands = validate_choice("missing_bands", missing_bands,
                                             ("error", "zero"))
        if not isinstance(tta, (bool, np.bool_)):
            raise TypeError(f"'tta' must be True or False, got {tta!r}")
        self.tta = bool(tta)
        if not isinstance(ood, (bool, np.bool_)):
            raise TypeError(f"'ood' must be True or False, got {ood!r}")
        if confidence_threshold is not None:
            if (isinstance(confidence_threshold, bool)
                    or not isinstance(confidence_threshold, numbers.Real)):
                raise TypeError("'confidence_threshold' must be a number in [0, 1], "
                                f"got {confidence_threshold!r}")
            if not 0 <= confidence_threshold <= 1:
                raise ValueError("'confidence_threshold' must be in [0, 1], got "
                                 f"{confidence_threshold!r}")
            confidence_threshold = float(confidence_threshold)
        self.confidence_threshold = confidence_threshold

        # the network: loaded once per process (cached), errors surface here
        net = self._network(file_id)
        self.meta = dict(net.clustercls_meta)
        if self.weights_path is None:  # the registry's, as refitted (see _cache)
            self.meta["ood"] = bundled_ood(self.model, self.weights)
        self.bands = tuple(normalize_band_name(b) for b in self.meta["bands"])
        trained_size = int(self.meta["cutout_size"])
        if cutout_size is not None:
            cutout_size = validate_positive_int("cutout_size", cutout_size)
            if cutout_size != trained_size:
                raise ValueError(f"'cutout_size' is {cutout_size} but the {self.model} "
                                 f"weights were trained on {trained_size}-pixel "
                                 f"cutouts; use cutout_size={trained_size} (or None)")
        self.cutout_size = trained_size
        self.normalization = self.meta.get("normalization", "asinh-v1")
        self.temperature = float(self.meta.get("temperature", 1.0))
        self._band_map = self._parse_band_map(bands)
        warn_weights(self.model, self.meta)
        self._ood = self._ood_statistics() if ood else None
        self._int8 = None
        if self.precision == "int8" or (
                self.precision_requested == "auto" and self.precision == "fp32"
                and self.device == "cpu" and conf.int8_auto
                and self.weights_path is None
                and int8_support("cpu", native_bf16=cpu_has_native_bf16())[0]):
            self._int8 = self._int8_network(explicit=self.precision == "int8")
        if self._int8 is not None:
            self.precision = "int8"
            self.channels_last = False  # the ONNX graph takes NCHW

    def _int8_network(self, explicit):
        """The int8 copy of the network, or None (auto: with a warning why)."""
        sha = bundled_sha256(self.model, self.weights) if self.weights_path is None \
            else None
        try:
            qnet = cached_int8(self.model, self.weights, file_key(self.weights_path),
                               self._meta_json, sha)
        except (ImportError, ValueError, RuntimeError, OSError) as exc:
            if explicit:
                raise
            warnings.warn(f"int8 inference unavailable ({exc}); running float32",
                          ClusterClsWarning)
            return None
        agreement = float(qnet.info.get("agreement", 0.0))
        if not explicit and agreement < INT8_MIN_AGREEMENT:
            warnings.warn(f"the int8 copy of {self.model} agrees with float32 on only "
                          f"{100 * agreement:.2f} % of simulated objects; running "
                          "float32", ClusterClsWarning)
            return None
        return qnet

    # -- set-up helpers ----------------------------------------------------
    def _ood_statistics(self):
        """The weights' OOD statistics, or None (with a warning if unusable)."""
        reason = check_ood_info(self.meta)
        if reason:
            warnings.warn(f"{self.model} weights: {reason}; no ood_score is given",
                          WeightsWarning, stacklevel=4)
            return None
        return _read_ood_statistics(self.meta, self.weights_path)

    @property
    def output_columns(self):
        """The columns this classifier adds, in order."""
        return OUTPUT_COLUMNS + ((OOD_COLUMN,) if self._ood is not None else ())

    def _network(self, file_id=None):
        if getattr(self, "_int8", None) is not None:
            return self._int8
        if file_id is None:
            file_id = file_key(self.weights_path)
        sha = None if file_id is not None else bundled_sha256(self.model, self.weights)
        return cached_network(self.model, self.weights, file_id, self._meta_json,
                               self.device, self.channels_last, sha)

    def _parse_band_map(self, bands):
        """{network band: image band or None}, in the network's band order."""
        mapping = {b: b for b in self.bands}
        if bands is None:
            return mapping
        if isinstance(bands, Mapping):
            for key, value in bands.items():
                net_band = normalize_band_name(key)
                if net_band not in mapping:
                    raise ValueError(f"'bands' maps {key!r}, which is not a band of "
                                     f"the network; its bands are {self.bands}")
                mapping[net_band] = None if value is None else normalize_band_name(
                    value)
            return mapping
        if isinstance(bands, str) or not hasattr(bands, "__len__"):
            raise TypeError("'bands' must be a mapping {network_band: image_band} or a "
                            f"sequence of {len(self.bands)} image band names, got "
                            f"{bands!r}")
        if len(bands) != len(self.bands):
            raise ValueError(f"'bands' must name one image band per network band "
                             f"{self.bands} ({len(self.bands)}), got {len(bands)}")
        return {net: None if img is None else normalize_band_name(img)
                for net, img in zip(self.bands, bands, strict=True)}

    def __repr__(self):
        source = (f"weights_path={self.weights_path!r}" if self.weights_path
                  else f"weights={self.weights!r}")
        return (f"<ClusterClassifier model={self.model!r} {source} "
                f"device={self.device!r} precision={self.precision!r} "
                f"bands={list(self.bands)} "
                f"cutout_size={self.cutout_size} tta={self.tta}>")

    @property
    def weights_sha256(self):
        """The sha256 of the loaded weights (from their meta), or None."""
        return self.meta.get("sha256")

    # -- the work ------------------------------------------------------------
    def _match_bands(self, images):
        """Image bands feeding the network, in network order; None = missing."""
        used = {net: (img if img in images.bands else None)
                for net, img in self._band_map.items()}
        missing = [net for net, img in used.items() if img is None]
        wanted = {img for img in used.values() if img is not None}
        extra = [b for b in images.bands if b not in wanted]
        if not wanted:
            raise ValueError(f"none of the network's bands {self.bands} is among the "
                             f"images' bands {images.bands}; name the substitutions "
                             "with bands={network_band: image_band}")
        if missing:
            detail = ", ".join(f"{net}" + (f" (as {self._band_map[net]})"
                                          if self._band_map[net] not in (None, net)
                                          else "")
                               for net in missing)
            if self.missing_bands == "error":
                raise ValueError(f"the images lack band(s) {detail} that the "
                                 f"{self.model} network needs (its bands: "
                                 f"{self.bands}; the images': {images.bands}). Give "
                                 "them, substitute with bands={...}, or pass "
                                 "missing_bands='zero'")
            warnings.warn(f"band(s) {detail} missing: fed as zeros after "
                          "normalisation; every row is flagged BAND_MISSING",
                          BandWarning)
        if extra:
            warnings.warn(f"image band(s) {extra} are not used by the {self.model} "
                          f"network (its bands: {self.bands}); ignored", BandWarning)
        return used

    def _logits(self, net, x, precision):
        if precision == "int8":
            return net(x)  # float32 logits; near-ties recomputed in float32
        with autocast(x.device.type, precision):
            return net(x).float()

    def _safe_logits(self, net, x):
        """Logits (float32) of one input batch in the classifier's precision."""
        logits = self._logits(net, x, self.precision)
        if self.precision not in ("fp32", "int8"):
            # overflow in reduced precision (rare, fp16): redo those rows in fp32
            bad = ~torch.isfinite(logits).all(dim=1)
            if bool(bad.any()):
                logits[bad] = self._logits(net, x[bad], "fp32")
        return logits

    def _logits_stages(self, net, x):
        """Logits (float32) and pooled network stage features of one batch."""
        if self.precision == "int8":
            return net.forward_with_stages(x)
        with autocast(x.device.type, self.precision):
            logits, stages = network_stages(net, x)
        logits = logits.float()
        if self.precision != "fp32":
            bad = ~torch.isfinite(logits).all(dim=1)
            if bool(bad.any()):  # as _safe_logits: those rows again in fp32
                redo, redo_stages = network_stages(net, x[bad])
                logits[bad] = redo.float()
                for s, r in zip(stages, redo_stages, strict=True):
                    s[bad] = r
        return logits, stages

    def _ood_score(self, net, x, stages):
        """OOD scores (N,) float64 of the normalised batch ``x`` (its first rows)."""
        n = len(stages[0])
        x = x[:n]
        inputs = input_stages(x, self.normalization)
        stages = [s.float().cpu().numpy() for s in stages]
        score = self._ood.score([*inputs, *stages])
        if self._int8 is not None and INT8_OOD_GUARD > 1:
            # near the threshold: the float32 network's stage features decide
            near = np.flatnonzero((score > 1 / INT8_OOD_GUARD)
                                  & (score < INT8_OOD_GUARD))
            if near.size:
                rows = torch.from_numpy(near)
                _, redo = net.forward_with_stages(x[rows], kind="float")
                score[near] = self._ood.score([*(s[rows] for s in inputs),
                                               *(s.numpy() for s in redo)])
        return score

    def _forward(self, net, batch, pad_to=None):
        """
        Class probabilities (float32 tensor on the device) of one batch, and
        its OOD scores ((N,) float64 numpy; None without OOD statistics).

        ``batch`` is a CPU tensor or array (N, B, S, S) of normalised cutouts,
        in any memory layout. ``pad_to`` pads the batch with zero rows to that
        many, so every forward pass has one shape (used on CUDA).
        """
        x = batch if isinstance(batch, torch.Tensor) else torch.from_numpy(batch)
        n = x.shape[0]
        x = x.to(self.device, non_blocking=True)
        if pad_to is not None and n < pad_to:
            x = torch.cat([x, x.new_zeros((pad_to - n, *x.shape[1:]))])
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        captured = []

        def logits_of(view):
            view = view.contiguous(memory_format=fmt)
            if self._ood is not None and not captured:
                # the first view is the cutout itself: its stages, same logits
                logits, stages = self._logits_stages(net, view)
                captured.append([s[:n] for s in stages])
                return logits
            return self._safe_logits(net, view)

        probs = tta_probabilities(logits_of, x, temperature=self.temperature,
                                  tta=self.tta)[:n]
        score = self._ood_score(net, x, captured[0]) if captured else None
        return probs, score

    def _forward_chunk(self, net, data, state, bar):
        """
        Probabilities (N, 4) float32 numpy of a normalised chunk, batch by batch,
        and the OOD scores (N,) float64 (NaN without OOD statistics).

        A batch that raises an out-of-memory error is retried at half the size
        (down to 1); ``state['batch_size']`` keeps the size reached for the
        following chunks.
        """
        oom_errors = tuple({getattr(torch, "OutOfMemoryError", MemoryError),
                            torch.cuda.OutOfMemoryError})
        cuda = self.device.startswith("cuda")
        n = data.shape[0]
        out = np.empty((n, N_CLASSES), dtype=np.float32)
        scores = np.full(n, np.nan)
        pending = []  # CUDA: results stay on the device until the chunk ends
        b0 = 0
        while b0 < n:
            bs = state["batch_size"]
            b1 = min(b0 + bs, n)
            try:
                probs, score = self._forward(net, data[b0:b1],
                                             pad_to=bs if cuda else None)
            except oom_errors:
                if bs == 1:
                    raise
                state["batch_size"] = bs // 2
                warnings.warn(f"out of memory on {self.device} with batch_size={bs}: "
                              f"retrying with batch_size={bs // 2}",
                              ClusterClsWarning)
                if cuda:
                    torch.cuda.empty_cache()
                continue
            if score is not None:
                scores[b0:b1] = score
            if cuda:
                pending.append((b0, b1, probs))
            else:
                out[b0:b1] = probs.numpy()
            if bar is not None:
                bar.update(b1 - b0)
            b0 = b1
        for p0, p1, probs in pending:
            out[p0:p1] = probs.cpu().numpy()
        return out, scores

    def _prepare(self, raw, present_idx, missing_idx):
        """
        The network's input for raw cutouts (N, B', S, S) of the present bands.

        Normalised with the weights' recipe (zeros for missing bands), as a CPU
        tensor in the network's memory layout, pinned for CUDA; runs in the
        prefetch thread, off the network's.
        """
        size = self.cutout_size
        if missing_idx:
            data = np.zeros((len(raw), len(self.bands), size, size), np.float32)
            data[:, present_idx] = normalize(raw, self.normalization)
        else:
            data = normalize(raw, self.normalization)
        del raw
        if self.channels_last:
            # NHWC in memory: the tensor is an NCHW view in channels_last layout
            data = np.ascontiguousarray(data.transpose(0, 2, 3, 1))
            tensor = torch.from_numpy(data).permute(0, 3, 1, 2)
        else:
            tensor = torch.from_numpy(data)
        if self.device.startswith("cuda"):
            tensor = tensor.pin_memory()
        return tensor

    def classify(self, sources, images, *, xcol=None, ycol=None, skycol=None,
                 origin=0):
        """
        Classify the sources and return the input table with the class columns.

        Parameters
        ----------
        sources : Table, array-like (N, 2) or `~astropy.coordinates.SkyCoord`
            The sources. A table keeps all its columns and rows; its positions
            are read from ``xcol``/``ycol`` or ``skycol`` when given, else from
            the photutils pixel columns (``x_centroid``/``y_centroid``,
            ``xcentroid``/``ycentroid``, ``x_peak``/``y_peak``), else from
            ``sky_centroid`` through the images' WCS (see
            `~astro_clustercls.data.positions.resolve_positions`). An array holds
            ``(x, y)`` pixel positions (the output gets ``x_centroid`` and
            ``y_centroid`` columns, 0-based); a SkyCoord gives a
            ``sky_centroid`` column.
        images : `~astro_clustercls.BandImages` or mapping band -> image
            The images, all on one pixel grid; bands are matched to the
            network's by name (see ``bands`` and ``missing_bands``).
        xcol, ycol : str, optional
            Pixel position columns of ``sources``.
        skycol : str or tuple of 2 str, optional
            A SkyCoord column, or RA and Dec columns, of ``sources``.
        origin : {0, 1}, optional
            0 (default) if pixel positions are 0-based (astropy, photutils),
            1 if 1-based (FITS, IRAF, DS9, many catalogs).

        Returns
        -------
        `~astropy.table.QTable`
            The input rows in input order, with ``cluster_class``,
            ``class_prob``, ``class_prob_max`` and ``classify_flags`` added
            (and ``ood_score`` when the weights carry OOD statistics) and
            provenance in ``meta['astro_clustercls']``. An input column with
            one of these names (e.g. a catalog's true ``cluster_class``) is
            kept, renamed ``<name>_input``, with an
            `~astro_clustercls.utils.exceptions.InputColumnWarning`; the
            renames are in ``meta['astro_clustercls']['renamed_columns']``.
            Rows with incomplete cutouts (see ``classify_flags``) are kept;
            one `~astro_clustercls.utils.exceptions.CutoutWarning` per call
            counts them.

        Raises
        ------
        TypeError, ValueError
            For invalid sources, positions, images or missing bands.
        """
        images = bands_of(images)
        used = self._match_bands(images)
        present = [net for net, img in used.items() if img is not None]
        present_idx = [self.bands.index(b) for b in present]
        missing_idx = [i for i, b in enumerate(self.bands) if used[b] is None]
        sub = images.select([used[b] for b in present])

        resolved = resolve_positions(sources, wcs=images.wcs, xcol=xcol, ycol=ycol,
                                     skycol=skycol, origin=origin, name="sources")
        table, renamed = output_table(sources, resolved, self.output_columns)
        n = len(resolved.xy)
        if len(table) != n:  # pragma: no cover - guarded by resolve_positions
            raise ValueError(f"'sources' has {len(table)} rows but {n} positions")

        probs = np.full((n, N_CLASSES), np.nan, dtype=np.float32)
        flags = np.zeros(n, dtype=np.int32)
        done = np.zeros(n, dtype=bool)
        scores = np.full(n, np.nan)
        state = {"batch_size": self.batch_size}

        if n:
            if conf.num_threads and conf.num_threads > 0:
                torch.set_num_threads(int(conf.num_threads))
            net = self._network()
            order, bounds, buffers = _streaming.plan_chunks(
                sub, resolved.xy, len(self.bands), self.cutout_size, self.batch_size)
            # progress in objects, updated per batch (None: no bar)
            bar = add_progress_bar(None, desc=f"classify ({self.model})", total=n,
                                   progress_bar=self.progress_bar,
                                   min_total=AUTO_MIN_OBJECTS)
            chunks = _streaming.Prefetcher(_streaming.cutout_chunks(
                sub, resolved.xy, self.cutout_size, order, bounds, buffers,
                lambda raw: self._prepare(raw, present_idx, missing_idx)))
            try:
                with torch.inference_mode():
                    for idx, chunk_flags, rows, data in chunks:
                        flags[idx] = chunk_flags
                        if bar is not None and len(idx) > rows.size:
                            bar.update(len(idx) - rows.size)
                        if rows.size == 0:
                            continue
                        out, score = self._forward_chunk(net, data, state, bar)
                        probs[idx[rows]] = out
                        scores[idx[rows]] = score
                        done[idx[rows]] = True
            finally:
                chunks.close()
                if bar is not None:
                    bar.close()

        return finish_table(self._to_table(table, probs, flags, done, missing_idx,
                                           used, resolved, state["batch_size"],
                                           scores),
                            renamed)

    __call__ = classify

    def _categories(self):
        cats = self.meta.get("categories")
        try:
            values = np.array([int(c) for c in cats])
        except (TypeError, ValueError):
            return CLASSES
        return values if values.size == N_CLASSES else CLASSES

    def _ood_meta(self):
        """The provenance of the OOD score (None without statistics)."""
        if self._ood is None:
            return None
        info = self.meta["ood"]
        meta = {k: info.get(k) for k in ("method", "file", "sha256", "weights_sha256",
                                          "fpr", "n_train", "n_val", "n_components",
                                          "seed")}
        meta["threshold_from"] = (f"simulated validation objects: a fraction "
                                  f"{info.get('fpr')} of them above 1")
        meta["detection_sigma"] = self._ood.detection_sigma
        meta["rates"] = info.get("rates")
        if self._int8 is not None:
            meta["int8_guard"] = INT8_OOD_GUARD
        return meta

    def _to_table(self, table, probs, flags, done, missing_idx, used, resolved,
                  batch_size, scores=None):
        n = len(flags)
        categories = self._categories()
        with np.errstate(invalid="ignore"):
            best = np.argmax(np.where(done[:, None], probs, -1.0), axis=1) if n else \
                np.zeros(0, int)
        classes = np.where(done, categories[best], 0).astype(np.int64)
        prob_max = np.where(done, probs[np.arange(n), best] if n else 0.0, np.nan)
        prob_max = prob_max.astype(np.float32)
        if missing_idx:
            flags |= FLAGS.BAND_MISSING.bit
        if self.confidence_threshold is not None:
            low = done & (prob_max < self.confidence_threshold)
            flags |= np.where(low, FLAGS.LOW_CONFIDENCE.bit, 0).astype(np.int32)
        flags |= np.where(done, 0, FLAGS.NOT_CLASSIFIED.bit).astype(np.int32)
        if self._ood is not None:
            scores = np.where(done, scores, np.nan)
            with np.errstate(invalid="ignore"):
                flags |= np.where(scores > 1, FLAGS.OUT_OF_DISTRIBUTION.bit, 0
                                  ).astype(np.int32)

        table["cluster_class"] = MaskedColumn(
            classes, mask=~done, fill_value=0, dtype=np.int64,
            description="class 1..4 (Wei et al. 2020): " + "; ".join(
                f"{c} {name}" for c, name in zip(CLASSES, CLASS_NAMES, strict=True)))
        table["class_prob"] = Column(
            probs, description="probability of each class 1..4 (NaN: not classified)")
        table["class_prob_max"] = Column(
            prob_max, description="highest class probability (NaN: not classified)")
        table["classify_flags"] = Column(
            flags.astype(np.int32),
            description="quality bit mask, see astro_clustercls.data.flags.FLAGS")
        if self._ood is not None:
            table[OOD_COLUMN] = ood_column(scores)

        bands_used = {net: img for net, img in used.items()}
        table.meta["astro_clustercls"] = get_meta(
            model=self.model,
            weights=(f"file:{Path(self.weights_path).name}" if self.weights_path
                     else self.meta.get("weights")),
            weights_sha256=self.weights_sha256,
            weights_training_data=self.meta.get("training_data"),
            weights_notes=self.meta.get("notes"),
            bands=list(self.bands),
            bands_used=bands_used,
            cutout_size=self.cutout_size,
            normalization=self.normalization,
            categories=[int(c) for c in categories],
            class_names=list(CLASS_NAMES),
            device=self.device,
            precision=self.precision,
            precision_requested=self.precision_requested,
            int8=(None if self._int8 is None else
                  {k: self._int8.info.get(k) for k in ("margin", "agreement",
                                                       "onnxruntime")}),
            channels_last=self.channels_last,
            batch_size=int(batch_size),
            positions=resolved.source,
            tta=self.tta,
            confidence_threshold=self.confidence_threshold,
            ood=self._ood_meta(),
            n_sources=int(n),
            n_classified=int(np.count_nonzero(done)),
        )
        return table
