# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Model registry: bundled weights, `get_model`, `list_models` (after torchvision).

Bundled weights are safetensors files in ``astro_clustercls/models/data/``
listed in ``manifest.json`` there::

    {"format": 1,
     "weights": [{"model": "resnet18", "member": "SIM_V1",
                  "path": "resnet18-SIM_V1-1a2b3c4d.safetensors",
                  "sha256": "<64 hex digits>", "meta": {...}}, ...]}

Each network has a `WeightsEnum` (``ResNet18_Weights``, ``VGG19_BN_Weights``)
whose members are built from the manifest, in its order, plus a ``DEFAULT``
alias of the last (newest) member of that network. New weights are added
without editing Python by `register_bundled_weights` (which writes the file and
the manifest entry). The registry is re-read whenever ``manifest.json``
changes. Every load of bundled weights checks the file's SHA-256.
"""

import fnmatch
import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from functools import partial
from pathlib import Path

import torch

from .._constants import CLASS_NAMES, DEFAULT_BANDS
from ..preprocessing import DEFAULT_RECIPE, NORMALIZATIONS, normalize
from ..runtime import torch_device
from ..utils._files import atomic_write
from ..utils._parameters import validate_choice, validate_positive_int
from ._io import (
    file_sha256,
    load_state_dict_file,
    read_weights_meta,
    save_weights,
)
from .architectures import (
    ARCHITECTURES,
    _num_params,
    build_network,
    check_state_dict,
    identify_state_dict,
)

__all__ = [
    "Weights",
    "WeightsEnum",
    "ResNet18_Weights",  # noqa: F822 - module __getattr__
    "VGG19_BN_Weights",  # noqa: F822
    "list_models",
    "get_model",
    "get_model_weights",
    "get_weight",
    "register_bundled_weights",
    "META_KEYS",
]

#: Directory of the bundled weights and their ``manifest.json``.
DATA_DIR = Path(__file__).parent / "data"
MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = 1

_ENUM_NAMES = {"resnet18": "ResNet18_Weights", "vgg19_bn": "VGG19_BN_Weights"}

#: Keys of the meta of bundled weights. ``sha256`` and ``num_params`` are
#: computed by `register_bundled_weights`; ``license`` defaults to
#: ``'BSD-3-Clause'``; the others must be given.
META_KEYS = ("architecture", "bands", "cutout_size", "normalization", "categories",
             "label_set", "training_data", "simulator_version", "metrics", "license",
             "sha256", "num_params", "recipe", "notes")

#: Keys a weights file's meta must provide for `get_model` to use it.
_USE_KEYS = ("bands", "cutout_size", "normalization")

_MEMBER_RE = re.compile(r"[A-Z][A-Z0-9_]*")
_SHA_RE = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, eq=False)
class Weights:
    """
    One set of bundled network weights.

    Attributes
    ----------
    path : str
        File name, relative to the bundled-weights directory
        (``astro_clustercls/models/data``).
    sha256 : str
        SHA-256 hex digest of the file, checked on every load.
    meta : dict
        Description: see `META_KEYS` (architecture, bands, cutout_size,
        normalization, categories, label_set, training_data,
        simulator_version, metrics, license, sha256, num_params, recipe,
        notes).
    transforms : callable
        ``functools.partial(normalize, recipe=meta['normalization'])``: turns
        ``(N, B, S, S)`` cutouts into the network's input.
    """

    path: str
    sha256: str
    meta: dict
    transforms: Callable

    def __eq__(self, other):
        # as torchvision: partials compare by content (enum aliasing, deepcopy)
        if not isinstance(other, Weights):
            return NotImplemented
        mine = (self.path, self.sha256, self.meta)
        if mine != (other.path, other.sha256, other.meta):
            return False
        a, b = self.transforms, other.transforms
        if isinstance(a, partial) and isinstance(b, partial):
            return (a.func, a.args, a.keywords) == (b.func, b.args, b.keywords)
        return a == b

    __hash__ = None

    @property
    def full_path(self):
        """Absolute path of the file, in the current bundled-weights directory."""
        return Path(DATA_DIR) / self.path


class WeightsEnum(Enum):
    """
    Base class of the per-network enums of bundled weights.

    Members are `Weights`; ``DEFAULT`` is an alias of the newest member.
    ``repr(member)`` is ``'<Enum>.<MEMBER>'``, the string `get_weight`
    accepts.
    """

    @classmethod
    def verify(cls, obj):
        """
        Return ``obj`` as a member of this enum.

        Parameters
        ----------
        obj : None, str or WeightsEnum member
            ``None`` (returned as is), a member, or its name (``'SIM_V1'``,
            ``'DEFAULT'`` or ``'ResNet18_Weights.SIM_V1'``).

        Raises
        ------
        ValueError
            If no such member exists (the available ones are listed; with no
            bundled weights at all, the message says so and how to pass a
            file with ``weights_path``).
        TypeError
            If ``obj`` is a member of another network's enum or not a weights
            object.
        """
        if obj is None:
            return None
        if isinstance(obj, WeightsEnum):
            if type(obj).__name__ != cls.__name__:
                raise TypeError(f"weights {obj!r} belong to another network; expected "
                                f"a member of {cls.__name__}")
            obj = obj.name  # possibly from a registry re-read since
        if not isinstance(obj, str):
            raise TypeError(f"'weights' must be None, a string or a {cls.__name__} "
                            f"member, got {type(obj).__name__}")
        name = obj
        prefix, dot, member = obj.partition(".")
        if dot:
            if prefix != cls.__name__:
                raise ValueError(f"weights {obj!r} are not {cls.__name__} weights")
            name = member
        if name in cls.__members__:
            return cls.__members__[name]
        model = getattr(cls, "model_name", "?")
        if not cls.__members__:
            raise ValueError(
                f"no bundled weights for {model!r} yet ({cls.__name__} is empty), so "
                f"weights={obj!r} cannot be loaded. Pass a weights file instead: "
                f"get_model({model!r}, weights_path='my_weights.safetensors'), or "
                "train one (astro_clustercls.training).")
        validate_choice("weights", name, tuple(cls.__members__))
        raise AssertionError  # pragma: no cover - validate_choice raised

    def get_state_dict(self, map_location="cpu"):
        """Load this member's state dict (fp32), checking the file's SHA-256."""
        path = self.full_path
        if not path.is_file():
            raise FileNotFoundError(
                f"bundled weights file {path} for {self!r} is missing; the "
                "installation is incomplete (reinstall astro-clustercls)")
        return load_state_dict_file(path, sha256=self.sha256, map_location=map_location)

    def __repr__(self):
        return f"{type(self).__name__}.{self.name}"

    @property
    def path(self):
        return self.value.path

    @property
    def full_path(self):
        return self.value.full_path

    @property
    def sha256(self):
        return self.value.sha256

    @property
    def meta(self):
        return self.value.meta

    @property
    def transforms(self):
        return self.value.transforms


# --------------------------------------------------------------------- manifest

def _manifest_path():
    return Path(DATA_DIR) / MANIFEST_NAME


def _read_manifest(path=None):
    path = _manifest_path() if path is None else path
    if not path.is_file():
        return {"format": MANIFEST_FORMAT, "weights": []}
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise OSError(f"weights manifest {path} is not valid JSON: {exc}") from None
    fmt = manifest.get("format") if isinstance(manifest, dict) else None
    if fmt != MANIFEST_FORMAT:
        raise OSError(f"weights manifest {path} has format {fmt!r}; this version "
                      f"reads format {MANIFEST_FORMAT}")
    entries = manifest.get("weights")
    if not isinstance(entries, list):
        raise OSError(f"weights manifest {path}: 'weights' must be a list")
    for i, entry in enumerate(entries):
        problem = _entry_problem(entry)
        if problem:
            raise OSError(f"weights manifest {path}: entry {i} is invalid: {problem}")
    return manifest


def _entry_problem(entry):
    if not isinstance(entry, dict):
        return "not an object"
    for key in ("model", "member", "path", "sha256", "meta"):
        if key not in entry:
            return f"no {key!r}"
    if entry["model"] not in ARCHITECTURES:
        return f"unknown model {entry['model']!r}"
    member = entry["member"]
    if not isinstance(member, str) or not _MEMBER_RE.fullmatch(member) \
            or member == "DEFAULT":
        return f"bad member name {entry['member']!r}"
    p = entry["path"]
    if not isinstance(p, str) or Path(p).name != p or p.startswith("."):
        return f"'path' must be a plain file name, got {p!r}"
    if not isinstance(entry["sha256"], str) or not _SHA_RE.fullmatch(entry["sha256"]):
        return "'sha256' must be 64 lowercase hex digits"
    if not isinstance(entry["meta"], dict):
        return "'meta' must be an object"
    if "normalization" not in entry["meta"]:
        return "meta has no 'normalization'"
    return None


def _write_manifest(manifest):
    text = json.dumps(manifest, indent=2, sort_keys=False) + "\n"
    atomic_write(_manifest_path(),
                 lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    _CACHE.clear()


def _make_weights(entry):
    meta = dict(entry["meta"])
    meta["sha256"] = entry["sha256"]
    return Weights(path=entry["path"], sha256=entry["sha256"], meta=meta,
                   transforms=partial(normalize, recipe=meta["normalization"]))


def _build_enums(manifest):
    enums = {}
    for model, enum_name in _ENUM_NAMES.items():
        members = [(e["member"], _make_weights(e)) for e in manifest["weights"]
                   if e["model"] == model]
        seen = set()
        for member, _ in members:
            if member in seen:
                raise OSError(f"weights manifest {_manifest_path()}: member {member!r} "
                              f"of {model!r} is listed twice")
            seen.add(member)
        if members:
            members.append(("DEFAULT", members[-1][1]))
        cls = WeightsEnum(enum_name, members, module=__name__, qualname=enum_name)
        cls.model_name = model
        enums[model] = cls
    return enums


_CACHE = {}


def _enums():
    """The current enums, re-read when the manifest (or DATA_DIR) changed."""
    path = _manifest_path()
    try:
        st = path.stat()
        key = (str(path), st.st_mtime_ns, st.st_size)
    except FileNotFoundError:
        key = (str(path), None, None)
    if _CACHE.get("key") != key:
        enums = _build_enums(_read_manifest(path))
        _CACHE.clear()
        _CACHE.update(key=key, enums=enums)
    return _CACHE["enums"]


def __getattr__(name):
    for model, enum_name in _ENUM_NAMES.items():
        if name == enum_name:
            return _enums()[model]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ------------------------------------------------------------------ public API

def _validate_name(name):
    if not isinstance(name, str):
        raise TypeError(f"'name' must be a model name (str), got {type(name).__name__}")
    return validate_choice("name", name.lower(), ARCHITECTURES)


def list_models(include=None, exclude=None):
    """
    Names of the available networks.

    Parameters
    ----------
    include, exclude : str or list of str, optional
        `fnmatch` patterns (e.g. ``'vgg*'``) of names to keep / then drop.

    Returns
    -------
    names : list of str
        Sorted model names, usable with `get_model`.

    Examples
    --------
    >>> from astro_clustercls.models import list_models
    >>> list_models()
    ['resnet18', 'vgg19_bn']
    >>> list_models(include='vgg*')
    ['vgg19_bn']
    """
    names = set(ARCHITECTURES)
    if include is not None:
        pats = [include] if isinstance(include, str) else list(include)
        names = {n for n in names if any(fnmatch.fnmatch(n, p) for p in pats)}
    if exclude is not None:
        pats = [exclude] if isinstance(exclude, str) else list(exclude)
        names = {n for n in names if not any(fnmatch.fnmatch(n, p) for p in pats)}
    return sorted(names)


def get_model_weights(name):
    """
    The `WeightsEnum` of a network (its bundled weights).

    Parameters
    ----------
    name : str
        A model name from `list_models`.

    Returns
    -------
    weights_enum : subclass of `WeightsEnum`
        E.g. ``ResNet18_Weights``; empty while no weights are bundled.

    Examples
    --------
    >>> from astro_clustercls.models import get_model_weights
    >>> get_model_weights('resnet18').__name__
    'ResNet18_Weights'
    """
    return _enums()[_validate_name(name)]


def get_weight(name):
    """
    A bundled weights member from its full name, ``'<Enum>.<MEMBER>'``.

    Parameters
    ----------
    name : str
        E.g. ``'ResNet18_Weights.SIM_V1'`` or ``'VGG19_BN_Weights.DEFAULT'``.

    Returns
    -------
    weights : `WeightsEnum` member

    Raises
    ------
    ValueError
        If the enum or member does not exist (close names are suggested).
    """
    if not isinstance(name, str) or name.count(".") != 1:
        raise ValueError(f"'name' must be '<Enum>.<MEMBER>', e.g. "
                         f"'ResNet18_Weights.DEFAULT', got {name!r}")
    enum_name, _ = name.split(".")
    enum_name = validate_choice("name", enum_name, tuple(_ENUM_NAMES.values()))
    model = next(m for m, e in _ENUM_NAMES.items() if e == enum_name)
    return _enums()[model].verify(name)


def _n_of(meta, key, what):
    value = meta.get(key)
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, (list, tuple)):
        return len(value)
    raise ValueError(f"weights meta {key!r} must be a list of {what}, got {value!r}")


def _override(param, value, from_weights, what):
    """Value from the weights, rejecting a conflicting explicit ``param``."""
    if value is not None and from_weights is not None and value != from_weights:
        raise ValueError(f"{param}={value} conflicts with the weights, which have "
                         f"{from_weights} {what}")
    return from_weights if from_weights is not None else value


def get_model(name, *, weights=None, weights_path=None, meta=None, n_bands=None,
              num_classes=None, device="cpu"):
    """
    A network, ready for inference, with bundled or external weights.

    Parameters
    ----------
    name : str
        Model name from `list_models` (``'resnet18'``, ``'vgg19_bn'``);
        case-insensitive; close names are suggested for unknown ones.
    weights : None, str or `WeightsEnum` member, optional
        Bundled weights: a member of ``get_model_weights(name)``, its name
        (``'SIM_V1'``), ``'DEFAULT'`` (the newest), or ``'Enum.MEMBER'``.
        ``None`` (and no ``weights_path``) gives a randomly initialised,
        untrained network. The file's SHA-256 is checked on every load.
    weights_path : str or `~pathlib.Path`, optional
        An external weights file: safetensors (e.g. written by
        `save_weights`, its meta read from the header) or a torch file read
        with ``torch.load(weights_only=True)`` (pickled code never runs).
        Its SHA-256 is recorded in the meta.
    meta : dict, optional
        Meta for a ``weights_path`` file, overriding the file's own; needed
        for files without meta (torch files): at least ``'bands'`` (list of
        band names), ``'cutout_size'`` (pixels) and ``'normalization'`` (a
        recipe of `~astro_clustercls.preprocessing.NORMALIZATIONS`).
    n_bands, num_classes : int, optional
        Input bands / output classes. Taken from the weights when there are
        weights (an explicit different value is an error); otherwise default
        to 5 and 4.
    device : str or `torch.device`, optional
        ``'cpu'`` (default), ``'cuda'``, ``'cuda:1'``, ``'mps'``, ``'auto'``
        (cuda when available) or ``None`` (``astro_clustercls.conf.device``;
        see `~astro_clustercls.runtime.resolve_device`).

    Returns
    -------
    model : `torch.nn.Module`
        In eval mode, on ``device``, with a dict attribute ``clustercls_meta``:
        the weights' meta plus ``'architecture'``, ``'n_bands'``,
        ``'num_classes'``, ``'num_params'``, ``'weights'`` (the member's
        ``'Enum.MEMBER'`` name, the file path, or None) and ``'sha256'``.

    Raises
    ------
    ValueError
        Unknown ``name`` or weights member, no bundled weights yet for
        ``'DEFAULT'``, both ``weights`` and ``weights_path``, missing meta
        keys, conflicting ``n_bands``/``num_classes``, a bad ``device``, or a
        file for another architecture / band count / class count.
    OSError
        Missing, truncated, corrupt or hash-mismatched file; a pickle file
        that is not plain tensors.

    Examples
    --------
    >>> from astro_clustercls.models import get_model
    >>> net = get_model('resnet18', n_bands=5)       # untrained, random weights
    >>> net.training, net.clustercls_meta['weights'], net.clustercls_meta['n_bands']
    (False, None, 5)
    >>> get_model('resnet19')  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: 'name' must be one of ... Did you mean 'resnet18'?
    """
    name = _validate_name(name)
    if weights is not None and weights_path is not None:
        raise ValueError("give either 'weights' (bundled) or 'weights_path' (a file), "
                         "not both")
    if meta is not None and weights_path is None:
        raise ValueError("'meta' is only used with 'weights_path'")
    n_bands = validate_positive_int("n_bands", n_bands, allow_none=True)
    num_classes = validate_positive_int("num_classes", num_classes, allow_none=True)
    dev = torch_device(device)

    if weights is not None:
        member = get_model_weights(name).verify(weights)
        info = dict(member.meta)
        state = member.get_state_dict()
        source = f"bundled weights {member!r} ({member.full_path})"
        info.update(weights=repr(member), sha256=member.sha256)
    elif weights_path is not None:
        if meta is not None and not isinstance(meta, Mapping):
            raise TypeError(f"'meta' must be a dict, got {type(meta).__name__}")
        path = Path(weights_path).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"'weights_path' {path} does not exist or is not a "
                                    "file")
        info = {**read_weights_meta(path), **dict(meta or {})}
        missing = [k for k in _USE_KEYS if k not in info]
        if missing:
            raise ValueError(
                f"'weights_path' {path} carries no meta {missing}; pass them with "
                "meta=, e.g. meta={'bands': ['F275W', 'F336W', 'F438W', 'F555W', "
                f"'F814W'], 'cutout_size': 31, 'normalization': '{DEFAULT_RECIPE}'}}")
        validate_choice("meta['normalization']", info["normalization"],
                        tuple(NORMALIZATIONS))
        digest = file_sha256(path)
        state = load_state_dict_file(path, sha256=digest)
        source = f"'weights_path' {path}"
        info.update(weights=str(path), sha256=digest)
    else:
        n_bands = 5 if n_bands is None else n_bands
        num_classes = 4 if num_classes is None else num_classes
        info = {"bands": list(DEFAULT_BANDS) if n_bands == len(DEFAULT_BANDS) else None,
                "cutout_size": None, "normalization": DEFAULT_RECIPE,
                "categories": list(CLASS_NAMES) if num_classes == 4 else None,
                "weights": None, "sha256": None,
                "notes": "randomly initialised network: not trained"}
        state = None

    if state is not None:
        if info.get("architecture") not in (None, name):
            raise ValueError(f"{source} are {info['architecture']} weights (meta "
                             f"'architecture'), not {name}")
        found = identify_state_dict(state)
        if found["arch"] is not None and found["arch"] != name:
            raise ValueError(f"{source} holds weights of a {found['arch']} network, "
                             f"not {name}; use get_model('{found['arch']}', ...)")
        meta_bands = _n_of(info, "bands", "band names")
        if None not in (meta_bands, found["n_bands"]) \
                and meta_bands != found["n_bands"]:
            raise ValueError(f"{source}: meta lists {meta_bands} bands but the weights "
                             f"take {found['n_bands']}")
        n_bands = _override("n_bands", n_bands, found["n_bands"] or meta_bands, "bands")
        if info.get("categories") is None and found["num_classes"] == 4:
            info["categories"] = list(CLASS_NAMES)
        num_classes = _override("num_classes", num_classes,
                                found["num_classes"]
                                or _n_of(info, "categories", "class names"), "classes")
        n_bands = 5 if n_bands is None else n_bands
        num_classes = 4 if num_classes is None else num_classes

    model = build_network(name, n_bands=n_bands, num_classes=num_classes)
    if state is not None:
        check_state_dict(model, state, arch=name, source=source)
        model.load_state_dict(state, strict=True)
    model.to(dev).eval()
    info.update(architecture=name, n_bands=n_bands, num_classes=num_classes,
                num_params=_num_params(model))
    model.clustercls_meta = info
    return model


def register_bundled_weights(model, name, member, meta, *, overwrite=False):
    """
    Add trained weights to the bundled registry (used by the training command).

    Writes ``<data dir>/<name>-<member>-<sha256[:8]>.safetensors`` (fp16, meta
    in the header) and appends an entry to ``manifest.json``, so that the
    weights become ``get_model_weights(name).<member>`` and the new
    ``DEFAULT``. Both files are written atomically.

    Parameters
    ----------
    model : `torch.nn.Module`
        A trained network from `build_network`/`get_model` of architecture
        ``name``.
    name : str
        Model name (``'resnet18'`` or ``'vgg19_bn'``).
    member : str
        Enum member name: upper case, e.g. ``'SIM_V1'``; not ``'DEFAULT'``.
    meta : dict
        All of `META_KEYS` except ``sha256`` and ``num_params`` (computed) and
        ``license`` (default ``'BSD-3-Clause'``); JSON-serialisable.
        ``bands`` and ``categories`` must match the network's input bands and
        classes; ``notes`` must say honestly what the weights are (e.g.
        "placeholder from a short run on simulated data").
    overwrite : bool, optional
        Replace an existing member of the same name (its file is deleted).

    Returns
    -------
    weights : `WeightsEnum` member
        The new member.

    Raises
    ------
    ValueError
        Bad ``name``/``member``, missing or inconsistent meta, a network of
        another architecture, or an existing member without ``overwrite``.
    """
    name = _validate_name(name)
    if not isinstance(member, str) or not _MEMBER_RE.fullmatch(member) \
            or member == "DEFAULT":
        raise ValueError("'member' must be an upper-case identifier like 'SIM_V1' "
                         f"(not 'DEFAULT'), got {member!r}")
    if not isinstance(model, torch.nn.Module):
        raise TypeError("'model' must be a torch.nn.Module, got "
                        f"{type(model).__name__}")
    if not isinstance(meta, Mapping):
        raise TypeError(f"'meta' must be a dict, got {type(meta).__name__}")
    meta = dict(meta)
    meta.setdefault("license", "BSD-3-Clause")
    meta.setdefault("architecture", name)
    missing = [k for k in META_KEYS
               if k not in meta and k not in ("sha256", "num_params")]
    if missing:
        raise ValueError(f"'meta' lacks {missing}; bundled weights need all of "
                         f"{list(META_KEYS)} (sha256 and num_params are computed)")
    found = identify_state_dict(model.state_dict())
    if found["arch"] != name or meta["architecture"] != name:
        raise ValueError(f"'model' is a {found['arch']} network (meta says "
                         f"{meta['architecture']!r}), not {name!r}")
    if _n_of(meta, "bands", "band names") != found["n_bands"]:
        raise ValueError(f"meta['bands'] lists {meta['bands']!r} but the network takes "
                         f"{found['n_bands']} bands")
    if _n_of(meta, "categories", "class names") != found["num_classes"]:
        raise ValueError(f"meta['categories'] has {meta['categories']!r} but the "
                         f"network has {found['num_classes']} classes")
    validate_choice("meta['normalization']", meta["normalization"],
                    tuple(NORMALIZATIONS))
    validate_positive_int("meta['cutout_size']", meta["cutout_size"])
    meta["num_params"] = _num_params(model)
    meta.pop("sha256", None)
    meta.pop("ood", None)  # statistics of other weights: refit for these

    data_dir = Path(DATA_DIR)
    data_dir.mkdir(parents=True, exist_ok=True)
    manifest = _read_manifest()
    old = [e for e in manifest["weights"]
           if e["model"] == name and e["member"] == member]
    if old and not overwrite:
        raise ValueError(f"{_ENUM_NAMES[name]}.{member} already exists; pick another "
                         "member name or pass overwrite=True")

    # written completely under a pending name, then renamed after its hash
    pending = data_dir / f".{name}-{member}.pending.safetensors"
    try:
        digest = save_weights(model, pending, meta, fp16=True)
        fname = f"{name}-{member}-{digest[:8]}.safetensors"
        os.replace(pending, data_dir / fname)
    except BaseException:
        pending.unlink(missing_ok=True)
        raise
    # JSON round trip: the manifest holds exactly what the registry will read
    stored_meta = read_weights_meta(data_dir / fname)
    entries = [e for e in manifest["weights"] if e not in old]
    entries.append({"model": name, "member": member, "path": fname, "sha256": digest,
                    "meta": stored_meta})
    manifest["weights"] = entries
    _write_manifest(manifest)
    for e in old:
        if e["path"] != fname:
            (data_dir / e["path"]).unlink(missing_ok=True)
    return get_model_weights(name)[member]
