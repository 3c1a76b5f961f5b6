# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Class-balanced labelled test sets from the GalSim renderer.

Same form as `~astro_clustercls.simulation.make_training_set` (a
`~astro_clustercls.simulation.TrainingSet`), so everything that evaluates a
network on simulated cutouts can take one.
"""

import galsim
import numpy as np

from ..._constants import DEFAULT_BANDS
from ...utils._meta import get_meta
from ...utils._parameters import validate_positive_int
from .._version import SIMULATOR_VERSION
from ..label_noise import apply_label_noise
from ..populations import DEFAULT_PARAMETERS, draw_population
from ..training_set import TrainingSet
from .render import draw_psf_variants, render_cutouts

__all__ = ["make_test_set", "RENDERER_NAME"]

#: Name of this renderer in the sets' meta (``meta['renderer']``).
RENDERER_NAME = "galsim-render_alt-1.0"


def _class_counts(n, class_balance, classes, params):
    classes = (
        [1, 2, 3, 4]
        if classes is None
        else sorted(int(c) for c in np.atleast_1d(classes))
    )
    if not set(classes) <= {1, 2, 3, 4} or not classes:
        raise ValueError(f"'classes' must be among 1, 2, 3, 4, got {classes!r}")
    if isinstance(class_balance, str):
        if class_balance == "equal":
            frac = np.ones(4)
        elif class_balance == "legus":
            frac = np.asarray(params.class_fractions, float)
        else:
            raise ValueError(
                "'class_balance' must be 'equal', 'legus' or 4 fractions, "
                f"got {class_balance!r}"
            )
    else:
        frac = np.asarray(class_balance, float)
        if frac.shape != (4,) or frac.min() < 0 or frac.sum() <= 0:
            raise ValueError("'class_balance' must hold 4 non-negative fractions")
    frac = np.array([frac[c - 1] for c in classes])
    frac = frac / frac.sum()
    counts = np.floor(frac * n).astype(int)
    rest = n - counts.sum()
    order = np.argsort(-(frac * n - counts), kind="stable")
    counts[order[:rest]] += 1  # largest remainders
    return np.repeat(classes, counts)


def make_test_set(
    n,
    size=31,
    seed=None,
    *,
    bands=DEFAULT_BANDS,
    classes=None,
    class_balance="equal",
    distance=None,
    params=None,
    conditions=None,
    label_noise=None,
    psf_variants=4,
    chunk=1024,
    **render_options,
):
    """
    A labelled set of GalSim-rendered cutouts, exactly class-balanced.

    Parameters
    ----------
    n : int
        Number of cutouts.
    size : int, optional
        Cutout side (odd, default 31).
    seed : int or `numpy.random.Generator`, optional
        The same seed gives the same set.
    bands : sequence of str, optional
        Bands (default ``DEFAULT_BANDS``).
    classes : sequence of int, optional
        Classes to make (default all four).
    class_balance : 'equal', 'legus' or sequence of 4 float, optional
        Class fractions, met exactly (largest remainders); default equal.
    distance : float, (min, max), 'legus' or None, optional
        Distance in Mpc (default log-uniform 4-23 Mpc).
    params : PopulationParameters, optional
        Per-class distributions.
    conditions : ObservingConditions, optional
        Depth and noise.
    label_noise : None, 'single_expert', 'consensus' or (4, 4) array, optional
        Relabel as human experts would (`apply_label_noise`).
    psf_variants : int or sequence, optional
        PSF variants (focus, roll) shared by the whole set (default 4).
    chunk : int, optional
        Cutouts rendered at a time.
    **render_options
        Passed to `render_cutouts` (``crowding``, ``background_mu``,
        ``drizzle``...).

    Returns
    -------
    `~astro_clustercls.simulation.TrainingSet`
        ``table`` is the truth table of `render_cutouts`; ``meta['renderer']``
        names this renderer.

    Examples
    --------
    >>> from astro_clustercls.simulation.render_alt import make_test_set
    >>> ts = make_test_set(8, 15, seed=1, bands=['F555W', 'F814W'],
    ...                    psf_variants=1)
    >>> ts.data.shape, sorted(ts.labels.tolist())
    ((8, 2, 15, 15), [1, 1, 2, 2, 3, 3, 4, 4])
    """
    n = validate_positive_int("n", n)
    chunk = validate_positive_int("chunk", chunk)
    rng = np.random.default_rng(seed)
    bands = tuple(str(b).upper() for b in bands)
    p = params or DEFAULT_PARAMETERS
    cls = rng.permutation(_class_counts(n, class_balance, classes, p))
    if isinstance(psf_variants, int | np.integer):
        psf_variants = draw_psf_variants(psf_variants, rng)
    if distance is None:
        distance = (4.0, 23.0)
    datas, tables = [], []
    for lo in range(0, n, chunk):
        part = cls[lo : lo + chunk]
        pop = draw_population(
            part.size, rng=rng, bands=bands, distance=distance, classes=part, params=p
        )
        data, truth = render_cutouts(
            pop,
            bands=bands,
            size=size,
            conditions=conditions,
            seed=rng,
            params=p,
            psf_variants=psf_variants,
            **render_options,
        )
        datas.append(data)
        tables.append(truth)
    from astropy.table import vstack

    table = (
        vstack(tables, metadata_conflicts="silent") if len(tables) > 1 else tables[0]
    )
    true = np.asarray(table["cluster_class"], int)
    labels = apply_label_noise(true, label_noise, rng=rng)
    table["label"] = labels
    meta = get_meta(
        renderer=RENDERER_NAME,
        simulator_version=SIMULATOR_VERSION,
        galsim_version=galsim.__version__,
        seed=None if seed is None else (seed if isinstance(seed, int) else "generator"),
        label_noise=(
            label_noise
            if label_noise is None or isinstance(label_noise, str)
            else "matrix"
        ),
        class_balance=class_balance
        if isinstance(class_balance, str)
        else list(class_balance),
        psf_variants=[list(v) for v in psf_variants],
        bands=list(bands),
        size=size,
    )
    table.meta.update(meta)
    return TrainingSet(
        data=np.concatenate(datas),
        labels=labels,
        true_labels=true,
        table=table,
        bands=bands,
        size=size,
        meta=meta,
    )
