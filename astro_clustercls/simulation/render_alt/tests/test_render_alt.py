# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Tests of the GalSim renderer: physics checks measured independently."""

import subprocess
import sys

import numpy as np
import pytest

galsim = pytest.importorskip("galsim")

from photutils.aperture import CircularAperture, aperture_photometry  # noqa: E402

from astro_clustercls._constants import DEFAULT_BANDS, PIXEL_SCALE  # noqa: E402
from astro_clustercls.simulation import (  # noqa: E402
    DEFAULT_CONDITIONS,
    TrainingSet,
    draw_population,
    make_training_set,
)
from astro_clustercls.simulation.render_alt import (  # noqa: E402
    drizzle_kernels,
    drizzled_noise,
    eff_profile,
    make_test_set,
    noise_correlation,
    psf_image,
    render_cutouts,
)
from astro_clustercls.simulation.render_alt.profiles import (  # noqa: E402
    component_profile,
    moffat_beta,
)

TWO_BANDS = ["F555W", "F814W"]


def _phot(img, radius, centre):
    return float(
        aperture_photometry(img, CircularAperture(centre, radius))["aperture_sum"][0]
    )


def _fwhm_arcsec(img):
    """FWHM from the area above half maximum of a finely resampled image."""
    fine = galsim.InterpolatedImage(
        galsim.ImageD(img, scale=1.0), x_interpolant="linear"
    )
    arr = fine.drawImage(nx=201, ny=201, scale=0.1, method="no_pixel").array
    area = (arr >= 0.5 * arr.max()).sum() * 0.01  # pixels^2
    return 2.0 * np.sqrt(area / np.pi) * PIXEL_SCALE


def test_reproducible_from_seed():
    kw = dict(bands=TWO_BANDS, size=15, psf_variants=1, classes=[1, 2, 3, 4])
    a, ta = render_cutouts(6, seed=5, **kw)
    b, tb = render_cutouts(6, seed=5, **kw)
    c, _ = render_cutouts(6, seed=6, **kw)
    np.testing.assert_array_equal(a, b)
    assert ta["cluster_class"].tolist() == tb["cluster_class"].tolist()
    np.testing.assert_array_equal(ta["dither"], tb["dither"])
    assert not np.array_equal(np.nan_to_num(a), np.nan_to_num(c))


def test_flux_conservation_isolated_objects():
    """Aperture photometry (photutils) of noise-free, isolated clusters and
    stars recovers the described fluxes times the PSF's encircled energy."""
    size, r = 41, 12.0
    rng = np.random.default_rng(3)
    pop = draw_population(
        12, rng=rng, bands=TWO_BANDS, distance=15.0, classes=np.repeat([1, 4], 6)
    )
    keep = np.isin(pop[0]["subtype"], ["cluster", "star"])
    data, truth = render_cutouts(
        pop,
        bands=TWO_BANDS,
        size=size,
        seed=1,
        psf_variants=[(0.0, 45.0)],
        crowding=0.0,
        background=False,
        noise=False,
        position_jitter=0.0,
    )
    c = size // 2
    for j, band in enumerate(TWO_BANDS):
        ee = _phot(psf_image(band, 81, strut_angle=45.0), r, (40, 40))
        for i in np.flatnonzero(keep):
            measured = _phot(data[i, j], r, (c, c))
            expected = truth[f"flux_{band}"][i] * ee
            assert measured == pytest.approx(expected, rel=0.04), (band, i)
    # the whole stamp holds (almost) all of a star's light, never more
    star = np.flatnonzero(truth["subtype"] == "star")[0]
    tot = data[star].sum(axis=(-2, -1)) / [truth[f"flux_{b}"][star] for b in TWO_BANDS]
    assert np.all((tot > 0.9) & (tot <= 1.0))


@pytest.mark.parametrize("band", DEFAULT_BANDS)
def test_star_fwhm_and_ci(band):
    """A star's FWHM is 0.07-0.10" and CI = mag(1 px) - mag(3 px) 1.0-1.3."""
    img = psf_image(band, 41)
    ci = 2.5 * np.log10(_phot(img, 3, (20, 20)) / _phot(img, 1, (20, 20)))
    assert 1.0 <= ci <= 1.3
    assert 0.07 <= _fwhm_arcsec(img) <= 0.10
    # sub-pixel positions: the light moves by the offset asked for
    off = psf_image(band, 41, center=(20.3, 19.6))
    yy, xx = np.mgrid[:41, :41]

    def centroid(a):
        return (xx * a).sum() / a.sum(), (yy * a).sum() / a.sum()

    (x0, y0), (x1, y1) = centroid(img), centroid(off)
    assert x1 - x0 == pytest.approx(0.3, abs=0.02)
    assert y1 - y0 == pytest.approx(-0.4, abs=0.02)
    assert off.sum() == pytest.approx(img.sum(), rel=1e-3)


def test_drizzled_noise_is_correlated():
    rng = np.random.default_rng(0)
    zero = np.zeros((40, 1, 21, 21))
    drz, shifts = drizzled_noise(zero, ["F555W"], DEFAULT_CONDITIONS, rng)
    white, _ = drizzled_noise(zero, ["F555W"], DEFAULT_CONDITIONS, rng, drizzle=False)
    rho = noise_correlation(drz[:, 0])  # measured with galsim.CorrelatedNoise
    assert rho[2, 3] > 0.1 and rho[3, 2] > 0.1  # lag 1 in x and y
    assert abs(rho[2, 4]) < 0.05  # nothing at lag 2
    rho_w = noise_correlation(white[:, 0])
    assert abs(rho_w[2, 3]) < 0.05 and abs(rho_w[3, 2]) < 0.05
    # white: the per-pixel rms of the depth; drizzled: lower per pixel, the same
    # over a large box
    sigma = DEFAULT_CONDITIONS.pixel_sigma("F555W")
    assert white.std() == pytest.approx(sigma, rel=0.05)
    assert drz.std() < 0.8 * sigma
    box_d = drz[:, 0, 5:16, 5:16].sum(axis=(-2, -1)).std()
    box_w = white[:, 0, 5:16, 5:16].sum(axis=(-2, -1)).std()
    assert box_d == pytest.approx(box_w, rel=0.3)
    assert shifts.shape == (40, 1, DEFAULT_CONDITIONS.n_exp, 2)
    k = drizzle_kernels(np.array([[0.25, -0.1]]), pixfrac=0.8)
    assert k.shape == (1, 3, 3) and k.sum() == pytest.approx(1.0)


def test_same_form_and_units_as_make_training_set():
    ours = make_test_set(8, 15, seed=2, bands=TWO_BANDS, psf_variants=[(0.0, 45.0)])
    theirs = make_training_set(8, 15, seed=2, bands=TWO_BANDS)
    assert isinstance(ours, TrainingSet)
    assert ours.data.shape == theirs.data.shape
    assert ours.data.dtype == theirs.data.dtype
    assert ours.bands == theirs.bands and ours.size == theirs.size
    for col in (
        "cluster_class",
        "subtype",
        "distance",
        "label",
        "x_offset",
        "y_offset",
        "background_v",
        "flux_F555W",
        "mag_F814W",
    ):
        assert col in ours.table.colnames
    assert ours.meta["renderer"].startswith("galsim")
    # the same units: electron/s with the diffuse light kept, object centred
    med = lambda ts: np.nanmedian(ts.data[:, 0])  # noqa: E731
    assert 0.3 < med(ours) / med(theirs) < 3.0
    c = ours.size // 2
    for ts in (ours, theirs):
        bright = np.flatnonzero(ts.table["cluster_class"] == 1)
        centre = np.nanmean(ts.data[bright, 0, c - 1 : c + 2, c - 1 : c + 2], (-2, -1))
        border = np.nanmedian(ts.data[bright, 0, :, :2], (-2, -1))
        assert np.all(centre > border)


def test_class_balance_and_labels():
    ts = make_test_set(
        10, 15, seed=4, bands=TWO_BANDS, psf_variants=[(0.0, 45.0)], crowding=0.0
    )
    assert np.bincount(ts.labels, minlength=5)[1:].tolist() == [3, 3, 2, 2]
    np.testing.assert_array_equal(ts.labels, ts.true_labels)
    np.testing.assert_array_equal(ts.table["label"], ts.labels)
    edge = np.asarray(ts.table["edge"], bool)
    assert np.all(np.isnan(ts.data[edge]).any(axis=(1, 2, 3)))
    assert np.isfinite(ts.data[~edge]).all()


def test_profiles_follow_the_descriptions():
    from astro_clustercls.simulation import _fourier

    np.testing.assert_allclose(
        moffat_beta(np.arange(20)), _fourier.beta_of_index(np.arange(20))
    )
    # the described half-light radius survives the tidal truncation
    for beta in (1.3, 1.8):
        prof = eff_profile(0.06, beta)
        r = np.linspace(0.0, 3.0, 30001)  # arcsec, beyond the truncation
        sb = np.array([prof.xValue(galsim.PositionD(x, 0.0)) for x in r])
        cum = np.cumsum(2 * np.pi * r * sb) * (r[1] - r[0])
        assert cum[-1] == pytest.approx(1.0, rel=2e-3)
        assert np.interp(0.5, cum, r) == pytest.approx(0.06, rel=0.01)
    # elongated components point along theta (counter-clockwise from +x)
    rng = np.random.default_rng(1)
    _, comp = draw_population(40, rng=rng, bands=TWO_BANDS, distance=4.0, classes=[2])
    m = int(np.flatnonzero((comp.kind == 1) & (comp.q < 0.6))[0])
    comp.dx[m] = comp.dy[m] = 0.0
    arr = (
        component_profile(comp, m).drawImage(nx=61, ny=61, scale=PIXEL_SCALE / 2).array
    )
    yy, xx = np.mgrid[:61, :61] - 30
    mxx, myy, mxy = ((arr * v).sum() for v in (xx * xx, yy * yy, xx * yy))
    angle = 0.5 * np.arctan2(2 * mxy, mxx - myy)
    d = (angle - comp.theta[m] + np.pi / 2) % np.pi - np.pi / 2
    assert abs(d) < 0.1


def test_no_torch_imported():
    code = (
        "import sys; import astro_clustercls.simulation.render_alt; "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_same_objects_as_the_training_renderer():
    """One population through both renderers: the same places, orientations
    and fluxes (only the PSFs and the clusters' outer wings differ)."""
    from astro_clustercls.simulation import get_psf
    from astro_clustercls.simulation._render import StampRenderer

    rng = np.random.default_rng(7)
    tab, comp = draw_population(
        6, rng=rng, bands=TWO_BANDS, distance=5.0, classes=[1, 2, 3]
    )
    theirs = StampRenderer([get_psf(b) for b in TWO_BANDS], 31).render(comp, 6)
    ours, _ = render_cutouts(
        (tab, comp),
        bands=TWO_BANDS,
        size=31,
        seed=1,
        psf_variants=[(0.0, 45.0)],
        crowding=0.0,
        background=False,
        noise=False,
        position_jitter=0.0,
    )
    yy, xx = np.mgrid[:31, :31]
    for a, m in zip(ours.reshape(-1, 31, 31), theirs.reshape(-1, 31, 31), strict=True):
        assert np.corrcoef(a.ravel(), m.ravel())[0, 1] > 0.98
        assert a.sum() / m.sum() == pytest.approx(1.0, abs=0.1)
        for g in (xx, yy):
            assert (a * g).sum() / a.sum() == pytest.approx(
                (m * g).sum() / m.sum(), abs=0.1
            )
