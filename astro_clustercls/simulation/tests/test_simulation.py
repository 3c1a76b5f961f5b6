# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Tests of the simulator's physics, API and calibration."""

import numpy as np
import pytest
from astropy import units as u
from astropy.stats import sigma_clipped_stats

from astro_clustercls import BandImages
from astro_clustercls._constants import DEFAULT_BANDS, PIXEL_SCALE
from astro_clustercls.simulation import (
    SIMULATOR_VERSION,
    ObservingConditions,
    apply_label_noise,
    draw_population,
    expert_confusion_matrix,
    get_psf,
    inject,
    inter_expert_agreement,
    mag_to_flux,
    make_training_set,
    pc_per_pixel,
    simulate_field,
    ssp_colours,
)
from astro_clustercls.simulation import calibration as cal
from astro_clustercls.simulation._render import Components, StampRenderer

LEGUS = cal.legus_data_dir()
needs_legus = pytest.mark.skipif(LEGUS is None, reason="../shared/data/legus absent")


@pytest.fixture(scope="module")
def field():
    return simulate_field(
        seed=3, n_objects=50, shape=(256, 256), distance=6.0, chip_gap=True
    )


def test_version():
    assert isinstance(SIMULATOR_VERSION, str) and SIMULATOR_VERSION


def test_zeropoints_roundtrip():
    # independent: 10 e/s is 2.5 mag brighter than 1 e/s, which is the zeropoint
    assert mag_to_flux(22.632, "F275W") == pytest.approx(1.0)
    assert mag_to_flux(24.684 - 2.5, "F814W") == pytest.approx(10.0)
    assert mag_to_flux(25.724, "ACS/F555W") == pytest.approx(1.0)


@pytest.mark.parametrize("band", DEFAULT_BANDS)
def test_psf_fwhm(band):
    from photutils.psf import fit_fwhm

    img = get_psf(band).image(41, center=(20.3, 19.8))
    assert img.sum() == pytest.approx(1.0, abs=0.03)  # wings beyond 20 px
    fwhm = fit_fwhm(img, xypos=[(20.3, 19.8)], fit_shape=7)[0] * PIXEL_SCALE
    assert 0.07 <= fwhm <= 0.11
    # wings: more light beyond 3 px than a Gaussian of that FWHM would put there
    yy, xx = np.mgrid[:41, :41]
    r = np.hypot(xx - 20.3, yy - 19.8)
    sig = fwhm / PIXEL_SCALE / 2.3548
    gauss_out = np.exp(-(3.0**2) / (2 * sig**2))
    assert img[r > 3].sum() > 3 * gauss_out


def test_render_matches_psf_and_position():
    psf = get_psf("F555W")
    r = StampRenderer([psf], 31)
    comp = Components(
        obj=np.array([0]),
        kind=np.array([0]),
        dx=np.array([0.3]),
        dy=np.array([-0.4]),
        size=np.ones(1),
        q=np.ones(1),
        theta=np.zeros(1),
        beta_idx=np.zeros(1, int),
        flux=np.array([[50.0]]),
    )
    img = r.render(comp, 1)[0, 0]
    ref = psf.image(31, center=(15.3, 14.6), pad=r.pad)
    np.testing.assert_allclose(img, 50 * ref, atol=1e-4)


def test_profile_width_vs_distance():
    """The same 3 pc cluster looks broader nearby; CI falls towards the star's."""

    def ci_of(reff_pix):
        comp = Components.single_eff(reff_pix, [100.0])
        img = StampRenderer([get_psf("F555W")], 31, pad=128).render(comp, 1)
        m = cal.quick_measure(img, np.zeros_like(img), ["F555W"])
        return float(m["ci"][0])

    star = ci_of(1e-3)
    cis = [ci_of(3.0 / pc_per_pixel(d)) for d in (4.0, 10.0, 20.0)]
    assert cis[0] > cis[1] > cis[2] > star
    assert 1.15 < star < 1.35  # LEGUS's stars sit below the 1.2-1.4 cut
    # at 20 Mpc a 3 pc cluster is 0.77 px: barely resolved
    assert cis[2] - star < 0.35


def test_colour_ordering_by_age():
    c = ssp_colours([6.5, 7.5, 8.5, 9.5], ["F275W", "F336W", "F555W", "F814W"])
    uv = c[:, 1] - c[:, 2]
    assert np.all(np.diff(uv) > 0)  # U-V reddens with age
    nuv_v = c[:, 0]
    assert np.all(np.diff(nuv_v) > 0)
    # dust reddens
    dusty = ssp_colours(7.0, ["F336W", "F814W"], ebv=0.3)
    clean = ssp_colours(7.0, ["F336W", "F814W"])
    assert dusty[0] > clean[0] and dusty[1] < clean[1]


def test_noise_matches_depth():
    bands = ("F555W",)
    for scale in (1.0, 0.25):
        obs = ObservingConditions().scaled(scale)
        images, _ = simulate_field(
            seed=1,
            n_objects=1,
            shape=(128, 128),
            bands=bands,
            background="none",
            chip_gap=False,
            conditions=obs,
        )
        data = images["F555W"].data
        _, _, std = sigma_clipped_stats(data[:40, :40])
        assert std == pytest.approx(obs.pixel_sigma("F555W"), rel=0.08)


def test_field_structure(field):
    images, truth = field
    assert images.bands == DEFAULT_BANDS
    assert images.unit == u.electron / u.s
    assert images.wcs is not None
    assert abs(images.wcs.wcs.cdelt[1] * 3600 - PIXEL_SCALE) < 1e-9
    assert np.isnan(images["F555W"].data).any()  # chip gap
    for col in (
        "x_centroid",
        "y_centroid",
        "sky_centroid",
        "cluster_class",
        "subtype",
        "distance",
        "mass",
        "age",
        "reff_pc",
        "flux_F555W",
        "mag_F814W",
    ):
        assert col in truth.colnames
    # sky_centroid agrees with the pixel positions through the WCS
    x, y = images.wcs.world_to_pixel(truth["sky_centroid"])
    np.testing.assert_allclose(x, truth["x_centroid"], atol=1e-6)
    np.testing.assert_allclose(y, truth["y_centroid"], atol=1e-6)


def test_detection_and_positions(field):
    from photutils.background import Background2D, MedianBackground
    from photutils.centroids import centroid_2dg, centroid_sources
    from photutils.detection import DAOStarFinder

    images, truth = field
    raw = images["F555W"].data
    bkg = Background2D(
        np.nan_to_num(raw),
        32,
        filter_size=3,
        mask=~np.isfinite(raw),
        bkg_estimator=MedianBackground(),
    )
    data = np.nan_to_num(raw - bkg.background)
    found = DAOStarFinder(
        5 * np.median(bkg.background_rms),
        2.5,
        exclude_border=True,
        roundness_range=(-2, 2),
        sharpness_range=(0.05, 2),
    )(data)
    real = ~np.isin(truth["subtype"], ["cosmic_ray", "hot_pixel", "noise_peak"])
    real &= truth["mag_F555W"] < 26
    tx, ty = truth["x_centroid"][real], truth["y_centroid"][real]
    d = np.hypot(
        tx[:, None] - found["x_centroid"][None], ty[:, None] - found["y_centroid"][None]
    )
    recovered = d.min(axis=1) < 1.5
    assert recovered.mean() > 0.75  # 0.81 for this seed; misses are blends
    # photutils centroids of isolated compact objects sit on the truth positions
    single = real & np.isin(truth["subtype"], ["cluster", "star", "elongated"])
    xs, ys = centroid_sources(
        data,
        truth["x_centroid"][single],
        truth["y_centroid"][single],
        box_size=5,
        centroid_func=centroid_2dg,
    )
    off = np.hypot(xs - truth["x_centroid"][single], ys - truth["y_centroid"][single])
    assert np.nanmedian(off) < 0.3
    assert np.mean(off < 1.0) > 0.85


def test_field_determinism():
    a, ta = simulate_field(seed=11, n_objects=5, shape=(64, 64))
    b, tb = simulate_field(seed=11, n_objects=5, shape=(64, 64))
    c, _ = simulate_field(seed=12, n_objects=5, shape=(64, 64))
    np.testing.assert_array_equal(a["F336W"].data, b["F336W"].data)
    np.testing.assert_array_equal(ta["x_centroid"], tb["x_centroid"])
    assert not np.array_equal(
        np.nan_to_num(a["F336W"].data), np.nan_to_num(c["F336W"].data)
    )


def test_training_set_basic():
    ts = make_training_set(400, 21, seed=4)
    assert ts.data.shape == (400, 5, 21, 21) and ts.data.dtype == np.float32
    assert ts.bands == DEFAULT_BANDS
    np.testing.assert_array_equal(ts.labels, ts.true_labels)
    # class balance follows the LEGUS-like fractions
    frac = np.bincount(ts.labels, minlength=5)[1:] / 400
    np.testing.assert_allclose(frac, [0.15, 0.18, 0.19, 0.48], atol=0.06)
    eq = make_training_set(400, 15, seed=4, class_balance="equal")
    np.testing.assert_allclose(
        np.bincount(eq.labels, minlength=5)[1:] / 400, 0.25, atol=0.06
    )
    # the object's light is at the centre: photutils centroids of class 1
    from photutils.centroids import centroid_2dg

    c1 = ts.data[ts.true_labels == 1][:, 3]
    cen = np.array([centroid_2dg(x[7:14, 7:14] - np.nanmedian(x)) for x in c1]) + 7
    true = np.column_stack([10 + ts.table["x_offset"], 10 + ts.table["y_offset"]])
    off = np.hypot(*(cen - true[ts.true_labels == 1]).T)
    assert np.median(off) < 0.3 and np.mean(off < 1) > 0.85
    for col in (
        "cluster_class",
        "subtype",
        "distance",
        "mass",
        "age",
        "reff_pc",
        "flux_F555W",
        "mag_F555W",
    ):
        assert col in ts.table.colnames


def test_training_set_determinism_and_classes():
    a = make_training_set(30, 15, seed=9, classes=[2, 3])
    b = make_training_set(30, 15, seed=9, classes=[2, 3])
    np.testing.assert_array_equal(a.data, b.data)
    assert set(a.labels.tolist()) <= {2, 3}


def test_held_out_differs():
    base = make_training_set(300, 21, seed=1, distance=19.0)
    held = make_training_set(300, 21, seed=1, held_out=True)
    assert np.all(held.table["distance"] == 19.0)
    assert np.median(held.table["background_v"]) > 2 * np.median(
        base.table["background_v"]
    )
    assert held.meta["held_out"] is True


def test_label_noise():
    s = expert_confusion_matrix("single_expert")
    c = expert_confusion_matrix("consensus")
    np.testing.assert_allclose(s.sum(1), 1)
    np.testing.assert_allclose(c.sum(1), 1)
    agree = inter_expert_agreement(s)
    assert 0.70 <= agree[0] <= 0.80 and 0.40 <= agree[1] <= 0.50
    assert 0.40 <= agree[2] <= 0.50 and 0.60 <= agree[3] <= 0.70
    assert np.all(c.diagonal() > s.diagonal())
    true = np.repeat([1, 2, 3, 4], 5000)
    noisy = apply_label_noise(true, "single_expert", rng=1)
    for k in range(4):
        got = np.mean(noisy[true == k + 1] == k + 1)
        assert got == pytest.approx(s[k, k], abs=0.02)
    ts = make_training_set(200, 15, seed=2, label_noise="consensus")
    assert np.any(ts.labels != ts.true_labels)
    assert np.mean(ts.labels == ts.true_labels) > 0.7
    with pytest.raises(ValueError, match="label_noise"):
        apply_label_noise(true, np.eye(3))


def test_draw_population_errors():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="classes"):
        draw_population(5, rng=rng, bands=["F555W"], classes=[5])
    with pytest.raises(ValueError, match="distance"):
        draw_population(5, rng=rng, bands=["F555W"], distance="virgo")
    with pytest.raises(ValueError, match="size"):
        make_training_set(5, 20)


def test_inject_adds_flux_where_truth_says():
    rng = np.random.default_rng(0)
    base = {
        b: rng.normal(0, 0.01, (120, 120)).astype(np.float32) for b in DEFAULT_BANDS
    }
    images = BandImages(base, unit="electron/s")
    new, truth = inject(images, n=6, classes=[1], seed=3, distance=5.0)
    assert len(truth) == 6 and set(truth["cluster_class"]) == {1}
    diff = new["F555W"].data - images["F555W"].data
    for row in truth:
        x, y = int(round(row["x_centroid"])), int(round(row["y_centroid"]))
        box = diff[y - 12 : y + 13, x - 12 : x + 13]
        assert box.sum() == pytest.approx(row["flux_F555W"], rel=0.15, abs=0.3)
    # the input is untouched
    np.testing.assert_array_equal(images["F555W"].data, base["F555W"])
    with pytest.raises(ValueError, match="electron/s"):
        inject(BandImages(base, unit="adu"), n=2)


def test_quick_measure_matches_photutils():
    ts = make_training_set(60, 31, seed=8, classes=[1, 4], distance=8.0)
    from astro_clustercls.simulation.training_set import _make_stamps  # noqa: F401

    var = np.full(ts.data.shape, 1e-4, np.float32)
    a = cal.quick_measure(ts.data, var, ts.bands)
    b = cal.measure_stamps(ts.data, ts.bands, variance=var)
    ok = np.isfinite(a["ci"]) & np.isfinite(b["ci"]) & (a["mag"][:, 3] < 26)
    np.testing.assert_allclose(a["ci"][ok], b["ci"][ok], atol=0.05)
    np.testing.assert_allclose(a["mag"][ok, 3], b["mag"][ok, 3], atol=0.05)


def _check_calibration(sim, legus, order=True):
    for c in (1, 2, 3, 4):
        assert abs(sim[c]["CI"][0] - legus[c]["CI"][0]) <= cal.TOLERANCES["ci_median"]
        for q in ("U-V", "V-I"):
            assert abs(sim[c][q][0] - legus[c][q][0]) <= cal.TOLERANCES["colour_median"]
        assert 21.5 <= sim[c]["V"][0] <= 23.5
    if order:
        uv = {c: sim[c]["U-V"][0] for c in (1, 2, 3, 4)}
        assert min(uv, key=uv.get) == 3  # class 3 bluest, as in LEGUS
        assert max(uv, key=uv.get) == 1  # class 1 reddest
        vi = {c: sim[c]["V-I"][0] for c in (1, 2, 3, 4)}
        assert max(vi, key=vi.get) == 1


@needs_legus
def test_legus_reader():
    cat = cal._read_legus_for_calibration()
    counts = np.bincount(cat["cls"], minlength=5)[1:]
    np.testing.assert_array_equal(counts, [1683, 2065, 2104, 5171])
    leg = cal.legus_summary(cat)
    assert 1.5 < leg[1]["CI"][0] < 1.7
    assert leg[3]["U-V"][0] < leg[1]["U-V"][0]


@needs_legus
def test_calibration_fast():
    """Smaller, quick variant of the calibration check (numpy apertures)."""
    cat = cal._read_legus_for_calibration()
    legus = cal.legus_summary(cat)
    sim = cal.simulated_summary(700, seed=1, cat=cat, use_photutils=False)
    # fewer objects: medians are noisier, allow 0.05 more; colour order not asserted
    for c in (1, 2, 3, 4):
        assert abs(sim[c]["CI"][0] - legus[c]["CI"][0]) <= 0.15
        assert abs(sim[c]["U-V"][0] - legus[c]["U-V"][0]) <= 0.3


@pytest.mark.slow
@needs_legus
def test_calibration_full():
    """Per class: CI median within 0.1 mag, colours within 0.25 mag and ordered."""
    cat = cal._read_legus_for_calibration()
    legus = cal.legus_summary(cat)
    sim = cal.simulated_summary(4000, seed=0, cat=cat, use_photutils=True)
    _check_calibration(sim, legus)


def test_vary_conditions_draws_depth_background_and_psf_per_block():
    from astro_clustercls.simulation import VARY_CONDITIONS, make_training_set
    from astro_clustercls.simulation.training_set import VARY_CONDITIONS_BLOCK

    n = 3 * VARY_CONDITIONS_BLOCK
    ts = make_training_set(n, 15, seed=4, vary_conditions=True)
    fixed = make_training_set(n, 15, seed=4)
    for name in ("depth_scale", "background_mu", "psf_scale"):
        lo, hi = VARY_CONDITIONS[name]
        values = np.asarray(ts.table[name])
        blocks = values.reshape(3, VARY_CONDITIONS_BLOCK)
        # one draw per block, inside the documented range, different blocks differ
        assert np.all(blocks == blocks[:, :1])
        assert np.all((values >= lo * (1 - 1e-9)) & (values <= hi * (1 + 1e-9)))
        assert len(np.unique(blocks[:, 0])) == 3
        assert len(np.unique(np.asarray(fixed.table[name]))) == 1
