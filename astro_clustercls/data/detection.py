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
    """DAOStarFinder on the background-subtracted image (sigma-clipped stats)."""
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
