# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
pytest set-up of the documentation's doctests (``pytest --doctest-rst docs``).

* Every page runs in its own temporary directory (the tutorials write FITS
  files, tables and figures into the current directory), with matplotlib's
  Agg backend.
* The tutorials use the bundled networks (``ClusterClassifier('resnet18')``).
  Until bundled weights are registered in ``astro_clustercls/models/data``, a
  development checkpoint (`DEV_WEIGHTS`, never part of the repository) stands
  in for them: the weights registry is pointed, for the test session only, at
  a temporary directory holding a link to that file and a manifest entry whose
  held-out metrics are *measured here* with
  `astro_clustercls.experiments.heldout_report`, exactly as for the bundled
  networks. Pages that need a network are skipped when neither exists.
  Once the bundled weights exist this stand-in is never used; to drop it, set
  ``DEV_WEIGHTS = {}``.
"""

import contextlib
import json
import os
from pathlib import Path

import pytest

#: Development checkpoints standing in for missing bundled weights (tests only).
DEV_WEIGHTS = {"resnet18": Path("/work/dev_weights/resnet18-dev.safetensors")}

#: Pages (file names) whose code needs a trained network.
NEEDS_NETWORK = {"classify_fits.rst", "fine_tune.rst", "paper_experiments.rst",
                 "reading_results.rst"}

HERE = Path(__file__).parent


def bundled_available(model="resnet18"):
    """Whether ``model`` has bundled weights installed in the package."""
    from astro_clustercls.models import get_model_weights

    return any(Path(m.full_path).is_file() for m in get_model_weights(model))


def _dev_manifest_entry(model, path, *, n_test=400, seed=0):
    """A manifest entry for a development checkpoint, with measured metrics."""
    import numpy as np

    from astro_clustercls._constants import CLASS_NAMES
    from astro_clustercls.experiments import heldout_report, predict_probs
    from astro_clustercls.models import file_sha256, get_model, read_weights_meta
    from astro_clustercls.simulation import (
        HELD_OUT_GALAXY,
        SIMULATOR_VERSION,
        make_training_set,
    )

    meta = read_weights_meta(path)
    net = get_model(model, weights_path=path)
    test = make_training_set(n_test, int(meta["cutout_size"]),
                             np.random.default_rng(seed), held_out=True,
                             label_noise="consensus")
    probs = predict_probs(net, test.data, normalization=meta["normalization"])
    _, heldout = heldout_report(probs, test)
    meta.update(
        architecture=model, categories=list(CLASS_NAMES),
        label_set=meta.get("label_set", "truth"),
        training_data=("DEVELOPMENT checkpoint standing in for the bundled weights "
                       "in the documentation tests only"),
        simulator_version=SIMULATOR_VERSION, license="BSD-3-Clause",
        metrics={**meta.get("metrics", {}), **heldout,
                 "heldout_galaxy": dict(HELD_OUT_GALAXY)})
    meta = json.loads(json.dumps(meta))  # as the manifest stores it
    sha = file_sha256(path)
    return {"model": model, "member": "DEV",
            "path": f"{model}-DEV-{sha[:8]}.safetensors", "sha256": sha, "meta": meta}


@contextlib.contextmanager
def stand_in_weights(tmpdir):
    """
    Point the weights registry at development checkpoints where bundled ones
    are missing; yield the set of models that have (real or stand-in) weights.
    """
    from astro_clustercls.classify import clear_model_cache
    from astro_clustercls.models import _api

    have = {m for m in ("resnet18", "vgg19_bn") if bundled_available(m)}
    missing = {m: p for m, p in DEV_WEIGHTS.items()
               if m not in have and Path(p).is_file()}
    if not missing:
        yield have
        return
    tmpdir = Path(tmpdir)
    entries = [e for e in _api._read_manifest()["weights"]
               if (_api.DATA_DIR / e["path"]).is_file()]
    for e in entries:
        os.symlink(_api.DATA_DIR / e["path"], tmpdir / e["path"])
    for model, path in missing.items():
        entry = _dev_manifest_entry(model, path)
        os.symlink(Path(path).resolve(), tmpdir / entry["path"])
        entries.append(entry)
    (tmpdir / _api.MANIFEST_NAME).write_text(
        json.dumps({"format": _api.MANIFEST_FORMAT, "weights": entries}))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_api, "DATA_DIR", tmpdir)
        _api._CACHE.clear()
        clear_model_cache()
        try:
            yield have | set(missing)
        finally:
            _api._CACHE.clear()
            clear_model_cache()


@pytest.fixture(scope="session")
def _docs_networks(tmp_path_factory):
    with stand_in_weights(tmp_path_factory.mktemp("weights")) as have:
        yield have


@pytest.fixture(autouse=True)
def _docs_page(request, tmp_path, monkeypatch):
    """Run every documentation page in a fresh directory, with Agg."""
    import matplotlib

    matplotlib.use("Agg")
    name = Path(str(request.node.path)).name
    if name in NEEDS_NETWORK:
        have = request.getfixturevalue("_docs_networks")
        if "resnet18" not in have:
            pytest.skip("no trained resnet18 weights (bundled or development)")
    monkeypatch.chdir(tmp_path)
    yield
    import matplotlib.pyplot as plt

    plt.close("all")
