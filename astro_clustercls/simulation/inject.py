# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Inject simulated objects of known class into a user's own images.

The objects are those of `simulate_field` (same populations, PSFs and
photometric zeropoints) added to real images, so they sit on the real
background, noise and crowding: for fine-tuning a classifier on one's own
field and for completeness tests.
"""

import warnings

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.nddata import CCDData
from astropy.table import QTable

from ..data.images import BandImages
from ..utils._meta import get_meta
from ..utils._parameters import validate_positive_int
from ..utils.exceptions import ClusterClsWarning
from ._version import resolve_version
from .field import paint_objects
from .observing import DEFAULT_CONDITIONS
from .populations import draw_population, parameters_for
from .psf import get_psf

__all__ = ["inject"]


def inject(
    images,
    n=50,
    classes=None,
    seed=None,
    *,
    distance=10.0,
    positions=None,
    params=None,
    psfs=None,
    conditions=None,
    add_noise=True,
    border=16,
    min_separation=6.0,
    class_balance="legus",
    simulator=None,
):
    """
    Add ``n`` simulated objects to ``images``; return new images and the truth.

    Parameters
    ----------
    images : `~astro_clustercls.BandImages`
        The user's images, in electron/s (a dimensionless unit is taken as
        electron/s, with a warning). They are not modified.
    n : int, optional
        Number of objects (ignored when ``positions`` is given).
    classes : sequence of int or ndarray, optional
        Classes to draw from (default all four); or, as an ndarray of ``n``
        ints, the class of each object (as `draw_population` takes it).
    class_balance : {'legus', 'equal'}, optional
        ``'legus'`` (default): classes drawn with the LEGUS-like fractions of
        ``params``; ``'equal'``: as many objects of each class (to within
        one), in random order, e.g. to fine-tune or to measure per-class
        recall.
    seed : int or `numpy.random.Generator`, optional
    distance : float, optional
        Distance of the galaxy, Mpc (default 10).
    positions : (N, 2) array, optional
        0-based (x, y) pixel positions; default random positions at least
        ``border`` px inside, on finite pixels of every band, ``min_separation``
        px apart.
    params : PopulationParameters, optional
    psfs : dict band -> MoffatPSF, optional
        PSFs of the user's images (default the simulator's per band).
    conditions : ObservingConditions, optional
        Gives the exposure time per band for the Poisson noise of the added
        light (default LEGUS-like).
    add_noise : bool, optional
        Add the Poisson noise of the injected light (default True).

    simulator : {'v1', 'v2'} or None, optional
        Simulator version of the objects (None: that of ``params``, else
        v1); v2 objects have their young stars drawn one by one (see
        `make_training_set`). The user's images bring the neighbourhood.

    Returns
    -------
    new_images : `~astro_clustercls.BandImages`
    truth : `~astropy.table.QTable`
        ``x_centroid``, ``y_centroid``, ``sky_centroid`` (when the images have
        a WCS), ``cluster_class``, ``subtype`` and the physical parameters.

    Examples
    --------
    >>> import numpy as np
    >>> from astro_clustercls import BandImages
    >>> from astro_clustercls.simulation import inject
    >>> base = BandImages({b: np.zeros((80, 80)) for b in ('F555W', 'F814W')},
    ...                   unit='electron/s')
    >>> new, truth = inject(base, n=3, seed=2)
    >>> len(truth), bool(np.nansum(new['F555W'].data) > 0)
    (3, True)
    """
    if not isinstance(images, BandImages):
        raise TypeError(f"'images' must be a BandImages, got {type(images).__name__}")
    rng = np.random.default_rng(seed)
    unit = images.unit
    if unit is None or unit == u.dimensionless_unscaled:
        warnings.warn("images have no unit: assuming electron/s", ClusterClsWarning)
    elif unit != u.electron / u.s:
        raise ValueError(
            f"'images' must be in electron/s to inject objects with the "
            f"right fluxes, got {unit}"
        )
    bands = images.bands
    ny, nx = images.shape
    conditions = conditions or DEFAULT_CONDITIONS
    finite = np.ones((ny, nx), bool)
    for b in bands:
        finite &= np.isfinite(images[b].data)
    if positions is None:
        n = validate_positive_int("n", n)
        xy = []
        tries = 0
        while len(xy) < n and tries < 200 * n:
            tries += 1
            x = rng.uniform(border, nx - 1 - border)
            y = rng.uniform(border, ny - 1 - border)
            if not finite[int(round(y)), int(round(x))]:
                continue
            if xy and np.min(np.hypot(*(np.array(xy) - [x, y]).T)) < min_separation:
                continue
            xy.append((x, y))
        if len(xy) < n:
            raise ValueError(
                f"could not place {n} objects {min_separation} px apart on "
                f"finite pixels; got {len(xy)}"
            )
        xy = np.array(xy)
    else:
        xy = np.asarray(positions, float).reshape(-1, 2)
        n = xy.shape[0]
    version = resolve_version(simulator, params)
    p = params or parameters_for(version)
    if class_balance not in ("legus", "equal"):
        raise ValueError(f"'class_balance' must be 'legus' or 'equal', got "
                         f"{class_balance!r}")
    if isinstance(classes, np.ndarray) and classes.ndim == 1 and classes.size == n:
        cl = classes.astype(np.int64)  # one class per object
    else:
        cl = [1, 2, 3, 4] if classes is None else [int(c) for c in
                                                    np.atleast_1d(classes)]
        if class_balance == "equal":
            cl = rng.permutation(np.resize(np.asarray(cl, dtype=np.int64), n))
    # chip-edge objects need a real edge: not injected
    sub = dict(p.class4_subtypes)
    sub.pop("edge", None)
    p = p.copy(class4_subtypes=sub)
    tab, comp = draw_population(
        n, rng=rng, bands=bands, distance=distance, classes=cl, params=p
    )
    psf_list = [(psfs or {}).get(b) or get_psf(b) for b in bands]
    model = paint_objects((ny, nx), bands, comp, xy[:, 0], xy[:, 1], psfs=psf_list)
    new = {}
    for j, b in enumerate(bands):
        add = model[j]
        if add_noise:
            t = conditions.t(b)
            add = rng.poisson(np.clip(add, 0, None) * t) / t + np.minimum(add, 0)
        data = np.asarray(images[b].data, dtype=np.float32) + add.astype(np.float32)
        old = images[b]
        new[b] = CCDData(
            data,
            unit=old.unit,
            wcs=old.wcs,
            mask=old.mask,
            uncertainty=old.uncertainty,
            meta=dict(old.meta),
        )
    out = BandImages(new)
    out._badpix.update(
        {
            b: images.bad_pixel_source(b)
            for b in bands
            if images.bad_pixel_source(b) is not None
        }
    )
    truth = QTable()
    truth["id"] = np.arange(1, n + 1)
    truth["x_centroid"] = xy[:, 0]
    truth["y_centroid"] = xy[:, 1]
    if images.wcs is not None:
        truth["sky_centroid"] = SkyCoord.from_pixel(
            xy[:, 0], xy[:, 1], images.wcs, origin=0
        )
    for k, v in tab.items():
        truth[k] = v
    truth.meta.update(get_meta(simulator_version=version, injected=True))
    return out, truth
