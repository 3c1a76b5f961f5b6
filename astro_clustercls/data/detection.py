# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Source detection and positional matching, as a reduction script does it.

`detect_sources` runs photutils' DAOStarFinder on the background-subtracted
image with a threshold in units of the sigma-clipped noise; `match_sources`
matches detections to a reference list (e.g. a simulation's truth) one to
one within a radius.
"""

import numpy as np
from astropy.stats import SigmaClip, sigma_clipped_stats
from photutils.background import Background2D, MedianBackground
from photutils.detection import DAOStarFinder
from scipy.spatial import cKDTree

__all__ = ["detect_sources", "match_sources"]


def detect_sources(image, *, fwhm=2.5, nsigma=5.0):
    """
    Detect point-like sources as a reduction script does, with photutils.

    The background is estimated with `~photutils.background.Background2D`
    (boxes of a quarter of the image, 16 to 64 px; sigma-clipped medians)
    and subtracted; `~photutils.detection.DAOStarFinder` then finds sources
    above ``nsigma`` times the sigma-clipped standard deviation of the
    residual. Non-finite pixels (a chip gap) are masked.

    Parameters
    ----------
    image : array-like (ny, nx)
        The detection image (e.g. the V band, F555W).
    fwhm : float, optional
        FWHM of the finder's kernel in pixels (default 2.5).
    nsigma : float, optional
        Threshold in units of the background noise (default 5).

    Returns
    -------
    `~astropy.table.QTable` or None
        photutils' table (``id``, ``x_centroid``, ``y_centroid``, ...,
        0-based pixels), or None when nothing is found.

    Examples
    --------
    >>> import numpy as np
    >>> from astro_clustercls.data.detection import detect_sources
    >>> rng = np.random.default_rng(0)
    >>> yy, xx = np.mgrid[:64, :64]
    >>> image = rng.normal(10, 1, (64, 64)) + 50 * np.exp(
    ...     -((xx - 30.2)**2 + (yy - 20.7)**2) / 2)
    >>> found = detect_sources(image)
    >>> len(found), round(float(found['x_centroid'][0]))
    (1, 30)
    """
    data = np.asarray(image, dtype=float)
    bad = ~np.isfinite(data)  # e.g. the chip gap
    box = max(16, min(64, min(data.shape) // 4))
    bkg = Background2D(data, box, mask=bad, filter_size=3,
                       sigma_clip=SigmaClip(sigma=3.0),
                       bkg_estimator=MedianBackground())
    resid = np.where(bad, 0.0, data - bkg.background)
    _, _, std = sigma_clipped_stats(resid, mask=bad, sigma=3.0)
    finder = DAOStarFinder(threshold=nsigma * std, fwhm=fwhm)
    return finder(resid, mask=bad)


def match_sources(det_xy, true_xy, radius):
    """Index of the matched truth object of each detection (-1: none), one-to-one."""
    match = np.full(len(det_xy), -1, dtype=int)
    if len(det_xy) == 0 or len(true_xy) == 0:
        return match
    dist, idx = cKDTree(true_xy).query(det_xy, distance_upper_bound=radius)
    order = np.argsort(dist)
    taken = set()
    for i in order:
        if np.isfinite(dist[i]) and idx[i] not in taken:
            match[i] = idx[i]
            taken.add(idx[i])
    return match
