# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
The simulated objects: physical parameters and light components per class.

Class 1
    A compact, round cluster: one EFF (Elson, Fall & Freeman 1987) profile
    ``I(r) ~ (1 + r^2/a^2)^(-gamma/2)``, axis ratio 0.8-1.
Class 2
    A compact cluster that is elongated (axis ratio 0.35-0.75), has an
    off-centre secondary component or irregular light (a lumpy halo of a few
    faint stars).
Class 3
    A compact association: 3-7 peaks (young stars and small clusters) spread
    over a few pc, on a diffuse underlying component.
Class 4
    Not a cluster: a single bright star, a close pair or triple of stars, a
    background galaxy (exponential disk + bulge, red), a cosmic ray or hot
    pixel in one band, a noise peak on diffuse light ("fluff"), or any object
    at a chip edge (the stamp is cut by a NaN region).

Luminosities follow dN/dL ~ L^-2; colours come from a simple-stellar-population
(SSP) colour table by age plus dust (E(B-V), Milky-Way law); masses from the
SSP mass-to-light ratio. Sizes are EFF effective radii in pc, converted to
pixels at the object's distance.

The SSP table is a hand-digitised approximation of solar-metallicity SSP models
(Bruzual & Charlot 2003 / Yggdrasil trends) in the WFC3 Vega system, good to
~0.1-0.2 mag; it reproduces the blue-to-red sequence with age and the red
supergiant V-I bump near 10 Myr, not precise model colours.
"""

from dataclasses import dataclass, field, fields
from typing import ClassVar

import numpy as np

from . import _fourier, _populations_v2
from ._popcore import (
    CLASS4_SUBTYPES,
    LEGUS_DISTANCES,
    _Builder,
    _colours_from,  # noqa: F401 (re-exported for the v1 names)
    _draw_classes,
    _lf_draw,
    _resolve_distance,
    _star_colours,
    pc_per_pixel,
    ssp_abs_mag_v,
    ssp_colours,
)
from ._render import (  # noqa: F401 (Components: re-exported)
    KIND_EXPDISK,
    KIND_GAUSS,
    KIND_MOFFAT,
    KIND_POINT,
    Components,
)
from ._version import resolve_version
from .photometry import mag_to_flux

__all__ = [
    "PopulationParameters",
    "PopulationParametersV2",
    "DEFAULT_PARAMETERS",
    "V2_PARAMETERS",
    "parameters_for",
    "CLASS4_SUBTYPES_V2",
    "ssp_colours",
    "ssp_abs_mag_v",
    "pc_per_pixel",
    "draw_population",
    "CLASS4_SUBTYPES",
    "LEGUS_DISTANCES",
]

@dataclass
class PopulationParameters:
    """
    Per-class parameter distributions of the simulated objects.

    These are the knobs tuned in `astro_clustercls.simulation.calibration`
    against the LEGUS catalogs. Ages are log10(yr) normal distributions
    (mean, sigma, clipped to 6.0-10.1); E(B-V) is half-normal with the given
    scale; effective radii are log-normal (median pc, sigma in dex, clipped
    to 0.5-10 pc); ``mv_range`` bounds the L^-2 luminosity function in
    absolute V magnitudes.
    """

    class_fractions: tuple = (0.15, 0.18, 0.19, 0.48)
    mv_range: tuple = (-5.0, -12.5)
    lf_slope: float = 2.0
    age: dict = field(
        default_factory=lambda: {
            1: (8.2, 0.8),
            2: (7.3, 0.7),
            3: (6.75, 0.3),
            4: (6.9, 0.5),
        }
    )
    ebv: dict = field(default_factory=lambda: {1: 0.2, 2: 0.2, 3: 0.12, 4: 0.12})
    reff_pc: dict = field(
        default_factory=lambda: {1: (1.4, 0.25), 2: (1.5, 0.25), 3: (1.5, 0.2)}
    )
    eff_gamma: tuple = (2.6, 3.6)
    assoc_size_pc: tuple = (4.0, 12.0)
    assoc_peaks: tuple = (3, 6)
    assoc_main_peak: tuple = (0.4, 0.65)
    class4_subtypes: dict = field(default_factory=lambda: dict(CLASS4_SUBTYPES))
    star_mv_range: tuple = (-5.5, -9.5)
    red_star_fraction: float = 0.12
    galaxy_mag_range: tuple = (21.0, 24.0)

    #: Simulator version whose objects these parameters describe.
    version: ClassVar[str] = "1.0"

    def copy(self, **changes):
        """A copy with some parameters changed."""
        kw = {f.name: getattr(self, f.name) for f in fields(self)}
        kw = {k: (dict(v) if isinstance(v, dict) else v) for k, v in kw.items()}
        kw.update(changes)
        return type(self)(**kw)


DEFAULT_PARAMETERS = PopulationParameters()

#: Subtypes of class 4 in simulator v2 and their default fractions.
CLASS4_SUBTYPES_V2 = {
    "star": 0.09,
    "pair": 0.08,
    "triple": 0.03,
    "blend": 0.12,
    "galaxy": 0.006,
    "cosmic_ray": 0.05,
    "hot_pixel": 0.03,
    "fluff": 0.15,
    "faint": 0.2,
    "edge": 0.234,
}


@dataclass
class PopulationParametersV2(PopulationParameters):
    """
    Per-class parameter distributions of simulator v2 (`V2_PARAMETERS`).

    Besides `PopulationParameters`' knobs (with broader ages and dust):
    metallicity (log Z/Zsun, normal mean and sigma, clipped to -1..0.3);
    ``nebular`` emission of the youngest clusters and associations (U-V and
    V-I shifts at log age 6, fading out by the given log age);
    the recipes per class (``class1_kinds``, ``class2_kinds``,
    ``class4_subtypes``, fractions); star-by-star sampling of young
    populations (``imf_slope``, populations younger than
    ``stars_max_log_age`` get stars down to apparent V ``star_limit_mag``,
    at most ``resolved_stars[class]`` on average, their mean light at most
    ``resolved_light_max`` of the population's in any band and the smooth
    remainder's colours within ``smooth_colour_tolerance`` mag of the SSP's);
    ``class1_symmetry`` (largest V-light fraction of an off-centre star, px
    allowed between the stars' light centroid and the profile's);
    associations (``assoc_size_pc`` diameter range, log-uniform;
    ``assoc_stars`` range of the mean number of drawn stars;
    ``assoc_subgroups``; ``assoc_core_probability`` of 1-2 compact cores);
    ``lumpy_stars`` (mean number of drawn stars of class-2 ``lumpy`` clusters);
    single stars (``star_phases``: probabilities of main sequence, blue,
    yellow, red supergiant; ``star_mv_range``), members of pairs, triples
    and blends (``blend_phases``: neighbours in a young region, so red
    supergiants are common); impostor ranges
    (``fluff_mv_range``; ``faint_mag_range``, apparent V of objects too
    faint to classify; ``galaxy_blue_fraction``).
    """

    mv_range: tuple = (-4.5, -12.5)
    age: dict = field(
        default_factory=lambda: {
            1: (7.5, 0.8),
            2: (7.0, 0.9),
            3: (6.65, 0.55),
            4: (7.0, 0.6),
        }
    )
    ebv: dict = field(default_factory=lambda: {1: 0.3, 2: 0.25, 3: 0.18, 4: 0.22})
    reff_pc: dict = field(
        default_factory=lambda: {1: (1.5, 0.25), 2: (1.7, 0.25), 3: (1.5, 0.2)}
    )
    assoc_size_pc: tuple = (10.0, 60.0)
    class4_subtypes: dict = field(default_factory=lambda: dict(CLASS4_SUBTYPES_V2))
    star_mv_range: tuple = (-4.5, -9.5)
    metallicity: tuple = (-0.2, 0.25)
    nebular: tuple = (-0.4, 0.3, 6.8)
    class1_kinds: dict = field(
        default_factory=lambda: {"cluster": 0.88, "with_star": 0.12}
    )
    class2_kinds: dict = field(
        default_factory=lambda: {
            "elongated": 0.3,
            "offcentre": 0.2,
            "lumpy": 0.3,
            "star_superposed": 0.2,
        }
    )
    imf_slope: float = 2.3
    stars_max_log_age: float = 8.3
    star_limit_mag: float = 27.5
    resolved_stars: dict = field(default_factory=lambda: {1: 8, 2: 15, 3: 30, 4: 8})
    resolved_light_max: float = 0.8
    smooth_colour_tolerance: float = 0.3
    class1_symmetry: tuple = (0.12, 0.25)
    assoc_stars: tuple = (8.0, 30.0)
    assoc_subgroups: tuple = (1, 3)
    assoc_core_probability: float = 0.5
    lumpy_stars: float = 40.0
    star_phases: tuple = (0.3, 0.62, 0.04, 0.04)
    blend_phases: tuple = (0.25, 0.38, 0.15, 0.22)
    galaxy_mag_range: tuple = (22.0, 25.0)
    galaxy_blue_fraction: float = 0.4
    fluff_mv_range: tuple = (-4.5, -7.5)
    faint_mag_range: tuple = (24.0, 26.5)

    version: ClassVar[str] = "2.0"


#: The calibrated distributions of simulator v2.
V2_PARAMETERS = PopulationParametersV2()


def parameters_for(simulator):
    """
    The default `PopulationParameters` of a simulator version.

    Parameters
    ----------
    simulator : str or None
        ``'v1'``, ``'1.0'``, ``'v2'`` or ``'2.0'`` (None: v1, the default).

    Examples
    --------
    >>> from astro_clustercls.simulation import parameters_for
    >>> parameters_for('v2').version
    '2.0'
    """
    return V2_PARAMETERS if resolve_version(simulator) == "2.0" else DEFAULT_PARAMETERS



def draw_population(n, *, rng, bands, distance=10.0, classes=None, params=None):
    """
    Draw ``n`` objects: their parameters and their light components.

    Parameters
    ----------
    n : int
        Number of objects.
    rng : `numpy.random.Generator`
        Random generator.
    bands : sequence of str
        Band names (fluxes are in electron/s through each band's zeropoint).
    distance : float, (min, max), ndarray or 'legus', optional
        Distance in Mpc: one value, a log-uniform range, one value per object,
        or ``'legus'`` (the distances of the LEGUS fields).
    classes : int, sequence of int or ndarray, optional
        The class of each object (an ndarray of length ``n``), or the classes
        allowed (an int or a list; drawn with ``params.class_fractions``
        renormalised). Default: all four.
    params : PopulationParameters, optional
        Distributions (default `DEFAULT_PARAMETERS`).

    Returns
    -------
    table : dict of ndarray
        Per-object parameters: ``cluster_class``, ``subtype``, ``distance``,
        ``log_age``, ``age``, ``mass``, ``ebv``, ``abs_mag_v``, ``reff_pc``,
        ``reff_pix``, ``eff_gamma``, ``axis_ratio``, ``n_peaks``, ``edge``,
        ``field``, ``mag_<band>`` (total Vega) and ``flux_<band>`` (electron/s).
    components : Components
        Light components with offsets relative to the object's reference point:
        the F555W light centroid of its main body (for class 2, without the
        off-centre secondary light; for class 3, the brightest peak, where a
        detection algorithm puts the candidate).

    Examples
    --------
    >>> import numpy as np
    >>> from astro_clustercls.simulation import draw_population
    >>> tab, comp = draw_population(100, rng=np.random.default_rng(1),
    ...                             bands=['F555W', 'F814W'], classes=[1, 3])
    >>> sorted(set(tab['cluster_class'].tolist()))
    [1, 3]
    """
    p = params or DEFAULT_PARAMETERS
    if p.version == "2.0":
        return _populations_v2.draw_population_v2(
            n, rng=rng, bands=bands, distance=distance, classes=classes, params=p
        )
    bands = list(bands)
    nb = len(bands)
    n = int(n)
    cls = _draw_classes(n, classes, p.class_fractions, rng)
    dist, field_names = _resolve_distance(distance, n, rng)
    pcpix = pc_per_pixel(dist)
    vband = "F555W" if "F555W" in [b.upper() for b in bands] else bands[nb // 2]
    vcol = [b.upper() for b in bands].index(vband.upper())
    zp_flux = np.array([float(mag_to_flux(0.0, b)) for b in bands])
    dm = 5 * np.log10(dist * 1e5)

    subtype = np.empty(n, dtype="<U12")
    log_age = np.full(n, np.nan)
    ebv = np.zeros(n)
    mv = np.full(n, np.nan)
    reff_pc = np.full(n, np.nan)
    gamma = np.full(n, np.nan)
    qax = np.ones(n)
    npk = np.ones(n, int)
    edge = np.zeros(n, bool)
    colours = np.zeros((n, nb))
    B = _Builder(nb)

    def lf(k):
        return _lf_draw(rng, k, p.mv_range[1], p.mv_range[0], p.lf_slope)

    def flux_of(mabs, col, idx):
        """(k, nb) electron/s for absolute V mags and colours."""
        m = (mabs + dm[idx])[:, None] + col
        return zp_flux[None, :] * 10 ** (-0.4 * m)

    def eff(idx, reff_pix, g, q, theta, f, dx=0.0, dy=0.0, ref=True):
        bi = _fourier.nu_index(g / 2.0)
        beta = _fourier.beta_of_index(bi)
        # reff is circularised: major-axis half-light radius = reff / sqrt(q)
        a = reff_pix / np.sqrt(q) / np.sqrt(2.0 ** (1.0 / (beta - 1.0)) - 1.0)
        B.add(
            idx, KIND_MOFFAT, dx, dy, f, size=a, q=q, theta=theta, beta_idx=bi, ref=ref
        )

    # --- clusters, classes 1-3
    for c in (1, 2, 3):
        idx = np.flatnonzero(cls == c)
        k = idx.size
        if k == 0:
            continue
        mu, sig = p.age[c]
        la = np.clip(rng.normal(mu, sig, k), 6.0, 10.1)
        e = np.abs(rng.normal(0, p.ebv[c], k))
        log_age[idx], ebv[idx] = la, e
        col = ssp_colours(la, bands, ebv=e)
        colours[idx] = col
        mv[idx] = lf(k)
        med, sdex = p.reff_pc[c]
        r = np.clip(10 ** rng.normal(np.log10(med), sdex, k), 0.5, 10.0)
        reff_pc[idx] = r
        g = rng.uniform(*p.eff_gamma, k)
        gamma[idx] = g
        rpix = r / pcpix[idx]
        ftot = flux_of(mv[idx], col, idx)
        theta = rng.uniform(0, np.pi, k)
        if c == 1:
            q = rng.uniform(0.8, 1.0, k)
            qax[idx] = q
            subtype[idx] = "cluster"
            eff(idx, rpix, g, q, theta, ftot)
        elif c == 2:
            kind = rng.choice(3, k, p=[0.35, 0.40, 0.25])
            subtype[idx] = np.array(["elongated", "offcentre", "irregular"])[kind]
            q = np.where(
                kind == 0, rng.uniform(0.35, 0.7, k), rng.uniform(0.55, 0.95, k)
            )
            qax[idx] = q
            # secondary light: fraction and offset
            fsec = np.where(kind == 0, 0.0, rng.uniform(0.15, 0.4, k))
            eff(idx, rpix, g, q, theta, ftot * (1 - fsec)[:, None])
            sec = np.flatnonzero(kind == 1)
            if sec.size:
                rr = rng.uniform(1.2, 2.5, sec.size) * np.maximum(rpix[sec], 0.8)
                ang = rng.uniform(0, 2 * np.pi, sec.size)
                eff(
                    idx[sec],
                    0.5 * rpix[sec],
                    g[sec],
                    1.0,
                    0.0,
                    ftot[sec] * fsec[sec, None],
                    rr * np.cos(ang),
                    rr * np.sin(ang),
                    ref=False,
                )
            irr = np.flatnonzero(kind == 2)
            if irr.size:  # 3 faint stars scattered in a lopsided halo
                base = rng.uniform(0, 2 * np.pi, irr.size)
                for _ in range(3):
                    ang = base + rng.normal(0, 0.7, irr.size)
                    rr = rng.uniform(1.0, 3.0, irr.size) * np.maximum(rpix[irr], 0.8)
                    B.add(
                        idx[irr],
                        KIND_POINT,
                        rr * np.cos(ang),
                        rr * np.sin(ang),
                        ftot[irr] * (fsec[irr] / 3)[:, None],
                        ref=False,
                    )
        else:
            subtype[idx] = "association"
            npeaks = rng.integers(p.assoc_peaks[0], p.assoc_peaks[1] + 1, k)
            npk[idx] = npeaks
            size_pix = rng.uniform(*p.assoc_size_pc, k) / pcpix[idx]
            size_pix = np.clip(size_pix, 2.5, 6.0)
            fdiff = rng.uniform(0.08, 0.2, k)
            eff(
                idx,
                np.maximum(rpix, 0.5 * size_pix),
                g,
                rng.uniform(0.5, 1.0, k),
                theta,
                ftot * fdiff[:, None],
                ref=False,
            )
            # the brightest peak near the middle, the others spread around it
            kmax = p.assoc_peaks[1]
            w = rng.dirichlet(np.full(kmax, 0.8), k)
            w[:, 0] = rng.uniform(*p.assoc_main_peak, k)
            others = np.where(
                np.arange(1, kmax)[None, :] < npeaks[:, None], w[:, 1:], 0.0
            )
            w[:, 1:] = others / others.sum(1, keepdims=True) * (1 - w[:, :1])
            for j in range(kmax):
                ii = np.flatnonzero(npeaks > j)
                if ii.size == 0:
                    continue
                if j == 0:
                    rr = rng.uniform(0.0, 0.7, ii.size)
                else:
                    rr = rng.uniform(2.2, size_pix[ii])
                ang = rng.uniform(0, 2 * np.pi, ii.size)
                # each peak: a star or small cluster with its own age scatter
                dcol = ssp_colours(
                    np.clip(log_age[idx[ii]] + rng.normal(0, 0.15, ii.size), 6.0, 10.1),
                    bands,
                    ebv=ebv[idx[ii]],
                )
                f = (
                    ftot[ii]
                    * ((1 - fdiff[ii]) * w[ii, j])[:, None]
                    * 10 ** (-0.4 * (dcol - colours[idx[ii]]))
                )
                eff(
                    idx[ii],
                    np.full(ii.size, 0.35),
                    np.full(ii.size, 3.0),
                    1.0,
                    0.0,
                    f,
                    rr * np.cos(ang),
                    rr * np.sin(ang),
                    ref=(j == 0),
                )

    # --- class 4 impostors
    idx4 = np.flatnonzero(cls == 4)
    if idx4.size:
        names = list(p.class4_subtypes)
        fr = np.array([p.class4_subtypes[s] for s in names], float)
        st = np.array(names)[rng.choice(len(names), idx4.size, p=fr / fr.sum())]
        subtype[idx4] = st
        for s in names:
            idx = idx4[st == s]
            k = idx.size
            if k == 0:
                continue
            e = np.abs(rng.normal(0, p.ebv[4], k))
            ebv[idx] = e
            if s in ("star", "pair", "triple"):
                nstar = {"star": 1, "pair": 2, "triple": 3}[s]
                npk[idx] = nstar
                base = np.zeros((k, 2))
                for j in range(nstar):
                    col, _ = _star_colours(rng, k, bands, p.red_star_fraction, e)
                    m = _lf_draw(rng, k, p.star_mv_range[1], p.star_mv_range[0], 2.0)
                    f = flux_of(m, col, idx)
                    if j == 0:
                        colours[idx], mv[idx] = col, m
                        pos = base
                    else:
                        rr = rng.uniform(1.0, 3.0, k)
                        ang = rng.uniform(0, 2 * np.pi, k)
                        pos = np.stack([rr * np.cos(ang), rr * np.sin(ang)], 1)
                        mv[idx] = -2.5 * np.log10(
                            10 ** (-0.4 * mv[idx]) + 10 ** (-0.4 * m)
                        )
                    B.add(idx, KIND_POINT, pos[:, 0], pos[:, 1], f)
            elif s == "galaxy":
                # apparent magnitude; red, old-looking SED, slight redshift reddening
                la = rng.uniform(9.3, 10.1, k)
                log_age[idx] = la
                col = ssp_colours(la, bands, ebv=e + rng.uniform(0.0, 0.3, k))
                colours[idx] = col
                mapp = rng.uniform(*p.galaxy_mag_range, k)
                mv[idx] = mapp - dm[idx]
                ftot = zp_flux[None, :] * 10 ** (-0.4 * (mapp[:, None] + col))
                h = rng.uniform(1.0, 4.0, k)
                q = rng.uniform(0.25, 1.0, k)
                qax[idx] = q
                th = rng.uniform(0, np.pi, k)
                fb = rng.uniform(0.1, 0.5, k)
                B.add(
                    idx,
                    KIND_EXPDISK,
                    0.0,
                    0.0,
                    ftot * (1 - fb)[:, None],
                    size=h,
                    q=q,
                    theta=th,
                )
                bi = _fourier.nu_index(2.0)
                B.add(
                    idx,
                    KIND_MOFFAT,
                    0.0,
                    0.0,
                    ftot * fb[:, None],
                    size=0.5 * h,
                    q=np.clip(q + 0.3, 0, 1),
                    theta=th,
                    beta_idx=bi,
                )
            elif s in ("cosmic_ray", "hot_pixel"):
                band = rng.integers(0, nb, k)
                amp = 10 ** rng.uniform(0.0, 1.5, k)  # e/s in the brightest pixel
                mv[idx] = np.nan
                B.add_artifact(idx, band, 0, 0, amp)
                if s == "cosmic_ray":  # a short streak of 2-4 pixels
                    ang = rng.uniform(0, 2 * np.pi, k)
                    for j in (1, 2, 3):
                        on = rng.random(k) < (1.0 if j == 1 else 0.5)
                        dx = np.rint(j * np.cos(ang)).astype(int)
                        dy = np.rint(j * np.sin(ang)).astype(int)
                        B.add_artifact(
                            idx[on],
                            band[on],
                            dx[on],
                            dy[on],
                            amp[on] * rng.uniform(0.3, 0.9, on.sum()),
                        )
            elif s == "noise_peak":
                # a faint diffuse lump ("fluff") of young light on which noise peaks
                la = rng.uniform(6.5, 8.0, k)
                log_age[idx] = la
                col = ssp_colours(la, bands, ebv=e)
                colours[idx] = col
                m = _lf_draw(rng, k, -7.5, -5.0, 2.0)
                mv[idx] = m
                f = flux_of(m, col, idx)
                B.add(
                    idx,
                    KIND_GAUSS,
                    0.0,
                    0.0,
                    f,
                    size=rng.uniform(1.0, 2.5, k),
                    q=rng.uniform(0.4, 1.0, k),
                    theta=rng.uniform(0, np.pi, k),
                )
                B.add(
                    idx,
                    KIND_POINT,
                    rng.normal(0, 0.7, k),
                    rng.normal(0, 0.7, k),
                    0.15 * f,
                )
            elif s == "edge":
                # a cluster or a star that sits at a chip edge (NaN region added
                # when the stamp is made); half clusters, half stars
                edge[idx] = True
                la = np.clip(rng.normal(7.3, 0.6, k), 6.0, 10.1)
                log_age[idx] = la
                col = ssp_colours(la, bands, ebv=e)
                colours[idx] = col
                m = lf(k)
                mv[idx] = m
                f = flux_of(m, col, idx)
                isc = rng.random(k) < 0.6
                r = np.clip(10 ** rng.normal(np.log10(2.0), 0.25, k), 0.5, 10)
                reff_pc[idx] = np.where(isc, r, np.nan)
                g = rng.uniform(*p.eff_gamma, k)
                ii = np.flatnonzero(isc)
                eff(idx[ii], r[ii] / pcpix[idx[ii]], g[ii], 1.0, 0.0, f[ii])
                jj = np.flatnonzero(~isc)
                B.add(idx[jj], KIND_POINT, 0.0, 0.0, f[jj])

    comp, ref = B.build()
    # --- re-centre every object on the V light centroid of its main body (all
    # components except class-2 secondaries and class-3 satellites / halo)
    fv = comp.flux[:, vcol] * ref
    tot = np.bincount(comp.obj, fv, minlength=n)
    sx = np.bincount(comp.obj, fv * comp.dx, minlength=n)
    sy = np.bincount(comp.obj, fv * comp.dy, minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        cx = np.where(tot > 0, sx / np.where(tot > 0, tot, 1), 0.0)
        cy = np.where(tot > 0, sy / np.where(tot > 0, tot, 1), 0.0)
    comp.dx -= cx[comp.obj]
    comp.dy -= cy[comp.obj]
    flux_tot = np.zeros((n, nb))
    np.add.at(flux_tot, comp.obj, comp.flux)
    if comp.art_obj.size:
        np.add.at(flux_tot, (comp.art_obj, comp.art_band), comp.art_flux)
    with np.errstate(divide="ignore", invalid="ignore"):
        mags = np.where(
            flux_tot > 0,
            -2.5 * np.log10(np.where(flux_tot > 0, flux_tot, 1) / zp_flux[None, :]),
            np.nan,
        )
    age_ok = np.isfinite(log_age)
    mass = np.full(n, np.nan)
    is_pop = (
        age_ok & np.isin(cls, [1, 2, 3])
        | (subtype == "edge")
        | (subtype == "noise_peak")
    )
    mass[is_pop] = 1e4 * 10 ** (
        -0.4 * (mv[is_pop] - ssp_abs_mag_v(log_age[is_pop], 1e4))
    )
    table = {
        "cluster_class": cls.astype(int),
        "subtype": subtype,
        "distance": dist,
        "field": field_names,
        "log_age": log_age,
        "age": np.where(age_ok, 10 ** np.where(age_ok, log_age, 0), np.nan),
        "mass": mass,
        "ebv": ebv,
        "abs_mag_v": mv,
        "reff_pc": reff_pc,
        "reff_pix": reff_pc / pcpix,
        "eff_gamma": gamma,
        "axis_ratio": qax,
        "n_peaks": npk,
        "edge": edge,
    }
    for j, b in enumerate(bands):
        table[f"flux_{b}"] = flux_tot[:, j]
    for j, b in enumerate(bands):
        table[f"mag_{b}"] = mags[:, j]
    return table, comp


def _crowding_neighbours(n, rng, bands, distance, params, crowding, r_max):
    """
    Neighbouring objects around ``n`` stamps: Poisson(``crowding``) per stamp,
    stars, pairs and clusters of the four classes (no artefacts or edges),
    placed 5 to ``r_max`` pixels from the centre.

    Returns
    -------
    comp : `Components` or None
        Their light (``obj``: the stamp each component belongs to).
    host : ndarray of int
        The stamp of each neighbour kept.
    """
    nn = rng.poisson(crowding, n)
    host = np.repeat(np.arange(n), nn)
    if not host.size:
        return None, host
    tab, comp = draw_population(
        host.size,
        rng=rng,
        bands=bands,
        distance=distance[host],
        classes=np.array(rng.choice([1, 2, 3, 4], host.size, p=[0.3, 0.2, 0.2, 0.3])),
        params=params.copy(mv_range=(-4.0, -10.0)),
    )
    ok = ~np.isin(tab["subtype"], ["cosmic_ray", "hot_pixel", "edge"])
    comp = comp.subset(ok)
    host = host[ok]
    r = rng.uniform(5.0, r_max, host.size)
    ang = rng.uniform(0, 2 * np.pi, host.size)
    comp.dx += (r * np.cos(ang))[comp.obj]
    comp.dy += (r * np.sin(ang))[comp.obj]
    comp.obj = host[comp.obj]
    comp.art_obj = np.zeros(0, np.intp)
    return comp, host
