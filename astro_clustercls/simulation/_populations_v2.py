# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Simulator v2 objects: young populations star by star (private).

`draw_population` calls `draw_population_v2` when given
`~astro_clustercls.simulation.PopulationParametersV2`. What changes from v1:

* Young (log age < ``stars_max_log_age``) clusters and associations get
  their brightest stars drawn one by one (`_stars`: IMF- and age-limited,
  main-sequence stars, blue, yellow and red supergiants) and rendered as
  point sources over an EFF profile (or, for associations, diffuse light)
  that holds the rest of the light: the smooth part carries the SSP flux
  minus the *expected* flux of the drawn stars, so the mean total equals the
  SSP flux while each object scatters around it (stochastic IMF sampling).
  Low-mass young objects come out lumpy, with colours that scatter by tenths
  of a magnitude; massive or old ones stay smooth.
* Class 1 keeps its symmetry: drawn stars carrying more than
  ``class1_symmetry[0]`` of the V light are moved into the core (mass
  segregation), and the light centroid of the stars is kept within
  ``class1_symmetry[1]`` px of the profile's centre; ``with_star`` class-1
  objects have a separate field star 3.5-7 px away (humans still call them
  class 1).
* Class 2 adds ``lumpy`` clusters (low-mass, young, their stars lopsided) and
  ``star_superposed`` (a round cluster with a star 1.2-3 px off its centre,
  10-60 % of its V light: asymmetric light, class 2 for a human).
* Class 3 associations are loose groups ``assoc_size_pc`` across (10-60 pc
  diameter), 1-3 subgroups of resolved stars (3-30 drawn on average), diffuse
  light and sometimes small compact cores; the candidate sits on the densest
  concentration.
* Class 4 adds ``blend`` (two to four field stars within 3 px), ``fluff``
  (diffuse light without a compact core) and ``faint`` (real but too faint
  objects, apparent V 24-26.5); stars use the stellar tables of `_stars`.
* Metallicity (log Z/Zsun, normal) shifts SSP colours (older populations
  more), and ages and dust are broader than v1.
"""

import numpy as np

from . import _fourier, _stars
from ._popcore import (
    _SSP,
    _Builder,
    _colours_from,
    _draw_classes,
    _lf_draw,
    _resolve_distance,
    pc_per_pixel,
    ssp_abs_mag_v,
)
from ._render import KIND_EXPDISK, KIND_GAUSS, KIND_MOFFAT, KIND_POINT
from .photometry import EXTINCTION_COEFFICIENTS, canonical_band, mag_to_flux

__all__ = []


def ssp_colours_z(log_age, bands, ebv, metallicity, nebular=None):
    """
    SSP colours with a metallicity shift (see module docstring) and,
    optionally, the nebular emission of the youngest populations:
    ``nebular = (d_uv, d_vi, log_age_end)`` adds ``d_uv`` to U-V (Balmer
    continuum in F336W) and ``d_vi`` to V-I (Paschen and [SIII] lines in
    F814W) at log age 6.0, fading linearly to nothing at ``log_age_end``.
    """
    la = np.clip(np.asarray(log_age, float), _SSP[0, 0], _SSP[-1, 0])
    z = np.asarray(metallicity, float)
    w = np.clip((la - 7.0) / 1.5, 0.2, 1.0) * z
    uv = np.interp(la, _SSP[:, 0], _SSP[:, 1]) + 0.25 * w
    bv = np.interp(la, _SSP[:, 0], _SSP[:, 2]) + 0.12 * w
    vi = np.interp(la, _SSP[:, 0], _SSP[:, 3]) + 0.18 * w
    nuvu = np.interp(la, _SSP[:, 0], _SSP[:, 4]) + 0.30 * w
    if nebular is not None:
        d_uv, d_vi, end = nebular
        f = np.clip((end - la) / (end - 6.0), 0.0, 1.0)
        uv = uv + d_uv * f
        vi = vi + d_vi * f
        nuvu = nuvu - 0.3 * d_uv * f
    return _colours_from(uv, bv, vi, nuvu, bands, ebv)


def extinction(bands, ebv):
    """A_band (mag) for E(B-V) ``ebv``: shape ``ebv.shape + (len(bands),)``."""
    r = np.array(
        [EXTINCTION_COEFFICIENTS[canonical_band(b).split("/")[1]] for b in bands]
    )
    return np.asarray(ebv, float)[..., None] * r


def star_colours_for_mv(rng, phase, mv, bands):
    """
    m_band - M_V (no dust) of single stars of ``phase`` with absolute V
    magnitude ``mv``: the colours of the tabulated star of that phase whose M_V
    is closest, with the tables' scatter.
    """
    out = np.zeros(np.shape(mv) + (len(bands),))
    for ph in np.unique(phase):
        s = phase == ph
        mass = _mass_for_mv(int(ph), np.asarray(mv)[s])
        lum_s, mv_s = _stars.draw_star_light(rng, np.full(mass.size, ph), mass, bands)
        out[s] = -2.5 * np.log10(lum_s) - mv_s[:, None]
    return out


_MV_GRID = np.exp(np.linspace(np.log(0.9), np.log(120.0), 160))
_MV_CACHE = {}


def _mass_for_mv(phase, mv):
    """Tabulated mass of ``phase`` whose M_V is closest to ``mv``."""
    if phase not in _MV_CACHE:
        _, mvg = _stars.star_luminosity(
            np.full(_MV_GRID.size, phase), _MV_GRID, ["F555W"]
        )
        _MV_CACHE[phase] = mvg
    mvg = _MV_CACHE[phase]
    return _MV_GRID[np.argmin(np.abs(mvg[None, :] - mv[:, None]), axis=1)]


_THIN_GRID = np.linspace(0.0, 1.0, 41)


def _thinning(f_exp, f_ssp, vcol, p):
    """
    Fraction of the planned stars to draw (each star is kept with this
    probability, the rest of their mean light stays smooth): the largest
    value such that the drawn stars' mean light is at most
    ``resolved_light_max`` of the population's in every band, and the smooth
    remainder's colours (SSP minus the stars' mean) stay within
    ``smooth_colour_tolerance`` mag of the SSP's, where the stellar tables
    and the SSP table disagree.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(f_ssp > 0, f_exp / f_ssp, np.inf)  # (k, nb)
    t = _THIN_GRID[None, :, None]
    rem = 1.0 - t * r[:, None, :]  # (k, T, nb)
    ok = (rem >= 1.0 - p.resolved_light_max).all(axis=2)
    with np.errstate(divide="ignore", invalid="ignore"):
        dev = np.abs(2.5 * np.log10(rem / rem[:, :, vcol : vcol + 1]))
    ok &= (np.nan_to_num(dev, nan=np.inf) <= p.smooth_colour_tolerance).all(axis=2)
    # the grid is ordered: the last admissible value (0 always is)
    best = ok.shape[1] - 1 - np.argmax(ok[:, ::-1], axis=1)
    return _THIN_GRID[best]


def _eff_core_radius(reff_pix, beta, q):
    return reff_pix / np.sqrt(q) / np.sqrt(2.0 ** (1.0 / (beta - 1.0)) - 1.0)


def _eff_positions(rng, a, beta, q, theta, rmax):
    """Sub-pixel offsets drawn from an EFF (Moffat) profile, truncated at rmax."""
    e = 1.0 - beta
    umax = 1.0 - (1.0 + (rmax / a) ** 2) ** e
    u = rng.random(a.shape) * umax
    r = a * np.sqrt(np.maximum((1.0 - u) ** (1.0 / e) - 1.0, 0.0))
    phi = rng.uniform(0, 2 * np.pi, a.shape)
    x, y = r * np.cos(phi), q * r * np.sin(phi)
    c, s = np.cos(theta), np.sin(theta)
    return x * c - y * s, x * s + y * c


class _V2Drawer:
    """State shared by the per-class recipes of one `draw_population_v2` call."""

    def __init__(self, n, rng, bands, dist, params):
        self.n, self.rng, self.bands, self.p = n, rng, list(bands), params
        self.nb = len(self.bands)
        self.dist = dist
        self.pcpix = pc_per_pixel(dist)
        self.dm = 5 * np.log10(dist * 1e5)
        self.zp_flux = np.array([float(mag_to_flux(0.0, b)) for b in self.bands])
        up = [b.upper() for b in self.bands]
        self.vcol = (
            up.index("F555W")
            if "F555W" in up
            else (up.index("F606W") if "F606W" in up else self.nb // 2)
        )
        self.B = _Builder(self.nb)
        self.wcols = [j for j, b in enumerate(up) if b in ("F435W", "F438W")][:1]
        self.wcols.append(self.vcol)
        self.cols = {
            "subtype": np.empty(n, dtype="<U16"),
            "log_age": np.full(n, np.nan),
            "ebv": np.zeros(n),
            "metallicity": np.full(n, np.nan),
            "abs_mag_v": np.full(n, np.nan),
            "mass": np.full(n, np.nan),
            "reff_pc": np.full(n, np.nan),
            "eff_gamma": np.full(n, np.nan),
            "axis_ratio": np.ones(n),
            "n_peaks": np.ones(n, int),
            "n_stars": np.zeros(n, int),
            "assoc_size_pc": np.full(n, np.nan),
            "edge": np.zeros(n, bool),
        }

    # --- helpers
    def flux(self, mabs, col, idx):
        m = (mabs + self.dm[idx])[:, None] + col
        return self.zp_flux[None, :] * 10 ** (-0.4 * m)

    def lf(self, k, rng_mv=None):
        lo, hi = rng_mv or self.p.mv_range
        return _lf_draw(self.rng, k, hi, lo, self.p.lf_slope)

    def draw_age_dust(self, idx, c, clip=(6.0, 10.1)):
        rng, p = self.rng, self.p
        k = idx.size
        mu, sig = p.age[c]
        la = np.clip(rng.normal(mu, sig, k), *clip)
        scale = p.ebv[c]
        e = np.abs(rng.normal(0, scale, k))
        z = np.clip(rng.normal(*p.metallicity, k), -1.0, 0.3)
        self.cols["log_age"][idx] = la
        self.cols["ebv"][idx] = e
        self.cols["metallicity"][idx] = z
        return la, e, z

    def star_light_to_flux(self, lum, idx, ebv):
        """(k, nb) electron/s of luminosities in M = 0 units, with dust."""
        a = extinction(self.bands, ebv)
        return lum * self.zp_flux[None, :] * 10 ** (-0.4 * (self.dm[idx][:, None] + a))

    def resolved(self, idx, la, e, mv, ftot, n_target, *, m_floor=None, n_min=0):
        """
        Plan and draw the resolved stars of populations ``idx``.

        Returns (smooth flux (k, nb), stars: dict with owner (0..k-1), flux
        (N, nb), mv) where the smooth flux is the SSP flux minus the expected
        flux of the drawn stars.
        """
        p, rng = self.p, self.rng
        k = idx.size
        a_v = extinction(["F555W"], e)[:, 0]
        mass = 1e4 * 10 ** (-0.4 * (mv - a_v - ssp_abs_mag_v(la, 1e4)))
        self.cols["mass"][idx] = mass
        young = la < p.stars_max_log_age
        empty = {
            "owner": np.zeros(0, np.intp),
            "flux": np.zeros((0, self.nb)),
            "mv": np.zeros(0),
        }
        if not young.any():
            return ftot.copy(), empty
        yi = np.flatnonzero(young)
        if m_floor is None:
            m_floor = _stars.ms_mass_for_mv(p.star_limit_mag - self.dm[idx])
        nt = np.broadcast_to(np.asarray(n_target, float), (k,))
        m_lim, m_to, m_end, p_ev, n_ms, n_ev = _stars.plan_resolved_stars(
            mass[yi], la[yi], m_floor[yi], nt[yi], p.imf_slope
        )
        lum_exp = _stars.expected_resolved_light(
            mass[yi], m_lim, m_to, m_end, p_ev, self.bands, p.imf_slope
        )
        f_exp = self.star_light_to_flux(lum_exp, idx[yi], e[yi])
        thin = _thinning(f_exp, ftot[yi], self.vcol, p)
        smooth = ftot.copy()
        smooth[yi] = np.maximum(ftot[yi] - thin[:, None] * f_exp, 0.0)
        owner, _, _, lum, mv_s = _stars.draw_resolved_stars(
            rng,
            thin * n_ms,
            thin * n_ev,
            m_lim,
            m_to,
            self.bands,
            p.imf_slope,
            n_min=n_min,
        )
        gidx = yi[owner]
        flux = self.star_light_to_flux(lum, idx[gidx], e[gidx])
        self.cols["n_stars"][idx] += np.bincount(gidx, minlength=k)
        return smooth, {"owner": gidx, "flux": flux, "mv": mv_s}

    def eff(self, idx, reff_pix, g, q, theta, f, dx=0.0, dy=0.0, ref=True):
        bi = _fourier.nu_index(g / 2.0)
        beta = _fourier.beta_of_index(bi)
        a = _eff_core_radius(reff_pix, beta, q)
        self.B.add(
            idx, KIND_MOFFAT, dx, dy, f, size=a, q=q, theta=theta, beta_idx=bi, ref=ref
        )
        return a, beta

    def field_star(self, k, mv, ebv, idx, phases=None):
        """Flux (k, nb) of single field stars of absolute V ``mv``; ``phases``:
        probabilities of MS, blue, yellow, red (default ``star_phases``)."""
        w = np.asarray(self.p.star_phases if phases is None else phases, float)
        ph = self.rng.choice(4, k, p=w / w.sum())
        col = star_colours_for_mv(self.rng, ph, mv, self.bands)
        lum = 10 ** (-0.4 * (mv[:, None] + col))
        return self.star_light_to_flux(lum, idx, ebv)

    # --- clusters (classes 1, 2 and cluster-like impostors)
    def cluster(self, idx, c, kind):
        """Compact clusters of class ``c`` (1 or 2) and recipe ``kind``."""
        rng, p = self.rng, self.p
        k = idx.size
        la, e, z = self.draw_age_dust(idx, c)
        col = ssp_colours_z(la, self.bands, e, z, p.nebular)
        mv = self.lf(k)
        self.cols["abs_mag_v"][idx] = mv
        med, sdex = p.reff_pc[c]
        r = np.clip(10 ** rng.normal(np.log10(med), sdex, k), 0.5, 10.0)
        self.cols["reff_pc"][idx] = r
        g = rng.uniform(*p.eff_gamma, k)
        self.cols["eff_gamma"][idx] = g
        rpix = r / self.pcpix[idx]
        theta = rng.uniform(0, np.pi, k)
        if kind == "elongated":
            q = rng.uniform(0.35, 0.7, k)
        elif c == 1:
            q = rng.uniform(0.8, 1.0, k)
        else:
            q = rng.uniform(0.6, 1.0, k)
        self.cols["axis_ratio"][idx] = q
        ftot = self.flux(mv, col, idx)
        fsec = np.zeros(k)
        if kind == "offcentre":
            fsec = rng.uniform(0.15, 0.4, k)
        if kind == "lumpy":  # light grainy with its brightest stars, any mass
            n_target, m_floor = p.lumpy_stars, np.full(k, _stars.M_BREAK)
        else:
            n_target, m_floor = p.resolved_stars[c], None
        smooth, st = self.resolved(
            idx, la, e, mv, ftot * (1 - fsec)[:, None], n_target, m_floor=m_floor
        )
        a, beta = self.eff(idx, rpix, g, q, theta, smooth)
        if kind == "offcentre":
            rr = rng.uniform(1.2, 2.5, k) * np.maximum(rpix, 0.8)
            ang = rng.uniform(0, 2 * np.pi, k)
            self.eff(
                idx,
                0.5 * rpix,
                g,
                np.ones(k),
                np.zeros(k),
                ftot * fsec[:, None],
                rr * np.cos(ang),
                rr * np.sin(ang),
                ref=False,
            )
        # the drawn stars follow the profile (more concentrated in class 1)
        o = st["owner"]
        if o.size:
            li = o
            rmax = 4.0 * np.maximum(rpix[li], 0.3)
            sx, sy = _eff_positions(rng, a[li], beta[li], q[li], theta[li], rmax)
            if c == 1:
                sx, sy = 0.6 * sx, 0.6 * sy
                sx, sy = self._symmetrise(li, sx, sy, st["flux"], ftot, k)
            if kind == "lumpy":
                # lopsided: all on one side, a bit further out
                base = rng.uniform(0, 2 * np.pi, k)[li]
                r_ = 1.3 * np.hypot(sx, sy) + 0.3
                ang = base + rng.uniform(-0.5 * np.pi, 0.5 * np.pi, li.size)
                sx, sy = r_ * np.cos(ang), r_ * np.sin(ang)
            near = np.hypot(sx, sy) < np.maximum(2.0, 1.5 * rpix[li])
            self.B.add(idx[li], KIND_POINT, sx, sy, st["flux"], ref=near)
        self.cols["subtype"][idx] = kind
        if kind in ("with_star", "star_superposed"):
            if kind == "with_star":
                dmag = rng.uniform(1.0, 3.0, k)
                rr = rng.uniform(3.5, 7.0, k)
            else:
                dmag = rng.uniform(0.55, 2.5, k)
                rr = rng.uniform(1.2, 3.0, k)
            ang = rng.uniform(0, 2 * np.pi, k)
            e_star = np.abs(rng.normal(0, 0.15, k))
            fs = self.field_star(k, mv + dmag, e_star, idx)
            self.B.add(
                idx, KIND_POINT, rr * np.cos(ang), rr * np.sin(ang), fs, ref=False
            )

    def _symmetrise(self, li, sx, sy, flux, ftot, k):
        """Class 1: bright stars into the core; star centroid within limits."""
        fmax, dmax = self.p.class1_symmetry
        fv = flux[:, self.vcol]
        tot = ftot[li, self.vcol]
        big = (fv > fmax * tot) & (np.hypot(sx, sy) > 0.5)
        if big.any():
            rr = self.rng.uniform(0, 0.5, big.sum())
            ang = self.rng.uniform(0, 2 * np.pi, big.sum())
            sx = sx.copy()
            sy = sy.copy()
            sx[big], sy[big] = rr * np.cos(ang), rr * np.sin(ang)
        mx = np.bincount(li, fv * sx, minlength=k) / np.maximum(
            ftot[:, self.vcol], 1e-30
        )
        my = np.bincount(li, fv * sy, minlength=k) / np.maximum(
            ftot[:, self.vcol], 1e-30
        )
        d = np.hypot(mx, my)
        shrink = np.where(d > dmax, dmax / np.maximum(d, 1e-30), 1.0)[li]
        return sx * shrink, sy * shrink

    # --- associations (class 3)
    def association(self, idx):
        rng, p = self.rng, self.p
        k = idx.size
        la, e, z = self.draw_age_dust(idx, 3, clip=(6.0, 7.9))
        col = ssp_colours_z(la, self.bands, e, z, p.nebular)
        mv = self.lf(k)
        self.cols["abs_mag_v"][idx] = mv
        lo, hi = p.assoc_size_pc
        size_pc = np.exp(rng.uniform(np.log(lo), np.log(hi), k))
        self.cols["assoc_size_pc"][idx] = size_pc
        R = 0.5 * size_pc / self.pcpix[idx]  # radius, px
        ftot = self.flux(mv, col, idx)
        # at least assoc_stars[0] stars on average: lower the mass floor if needed
        # the brightest assoc_stars of them, whatever their brightness: the
        # light of an association is grainy, not smooth
        n_target = rng.uniform(*p.assoc_stars, k)
        m_floor = np.full(k, _stars.M_BREAK)
        smooth, st = self.resolved(
            idx, la, e, mv, ftot, n_target, m_floor=m_floor, n_min=3
        )
        # geometry: 1-3 subgroups inside the radius R
        ng = rng.integers(p.assoc_subgroups[0], p.assoc_subgroups[1] + 1, k)
        gx = np.zeros((k, 3))
        gy = np.zeros((k, 3))
        rr = 0.5 * R[:, None] * np.sqrt(rng.random((k, 3)))
        ang = rng.uniform(0, 2 * np.pi, (k, 3))
        gx[:, 1:], gy[:, 1:] = (rr * np.cos(ang))[:, 1:], (rr * np.sin(ang))[:, 1:]
        gx[:, 0], gy[:, 0] = (
            0.3 * rr[:, 0] * np.cos(ang[:, 0]),
            0.3 * rr[:, 0] * np.sin(ang[:, 0]),
        )
        # stars: hierarchical, in compact subgroups, some scattered over
        # the whole association
        o = st["owner"]
        grp = (rng.random(o.size) * ng[o]).astype(int)
        sig_g = R[:, None] * rng.uniform(0.04, 0.15, (k, 3))
        sig = sig_g[o, grp]
        sx = gx[o, grp] + sig * rng.standard_normal(o.size)
        sy = gy[o, grp] + sig * rng.standard_normal(o.size)
        loose = rng.random(o.size) < 0.15
        rl = R[o][loose] * np.sqrt(rng.random(loose.sum()))
        al = rng.uniform(0, 2 * np.pi, loose.sum())
        sx[loose], sy[loose] = rl * np.cos(al), rl * np.sin(al)
        rad = np.hypot(sx, sy)
        out = rad > R[o]
        fac = np.where(
            out, R[o] * rng.uniform(0.6, 1.0, o.size) / np.maximum(rad, 1e-9), 1
        )
        sx, sy = sx * fac, sy * fac
        # diffuse light: a broad component and one per subgroup; sometimes
        # 1-2 small compact cores
        has_core = rng.random(k) < p.assoc_core_probability
        fcore = np.where(has_core, rng.uniform(0.15, 0.4, k), 0.0)
        ncore = np.where(has_core, rng.integers(1, 3, k), 0)
        sig_d = np.maximum(R / rng.uniform(1.2, 2.0, k), 1.0)
        self.cols["reff_pc"][idx] = 1.177 * sig_d * self.pcpix[idx]
        fbroad = rng.uniform(0.1, 0.3, k)
        diffuse = smooth * (1 - fcore)[:, None]
        self.B.add(
            idx,
            KIND_GAUSS,
            0.0,
            0.0,
            diffuse * fbroad[:, None],
            size=sig_d,
            q=rng.uniform(0.5, 1.0, k),
            theta=rng.uniform(0, np.pi, k),
            ref=False,
        )
        wg = rng.dirichlet(np.ones(3), k) * (np.arange(3)[None, :] < ng[:, None])
        wg /= wg.sum(1, keepdims=True)
        for j in range(3):
            ii = np.flatnonzero(ng > j)
            self.B.add(
                idx[ii],
                KIND_GAUSS,
                gx[ii, j],
                gy[ii, j],
                diffuse[ii] * ((1 - fbroad[ii]) * wg[ii, j])[:, None],
                size=np.maximum(sig_g[ii, j], 0.8),
                q=1.0,
                ref=False,
            )
        core_pos = []
        for j in range(2):
            ii = np.flatnonzero(ncore > j)
            if ii.size == 0:
                continue
            rcore = rng.uniform(0.5, 1.5, ii.size) / self.pcpix[idx[ii]]
            fj = smooth[ii] * (fcore[ii] / ncore[ii])[:, None]
            cx = gx[ii, j] + rng.normal(0, 0.5, ii.size)
            cy = gy[ii, j] + rng.normal(0, 0.5, ii.size)
            core_pos.append((ii, cx, cy, fj[:, self.wcols].sum(1), fj, rcore))
        # the candidate: the densest concentration of light (within 2.5 px) in
        # B + V, as on a detection image
        px = [sx] + [c_[1] for c_ in core_pos]
        py = [sy] + [c_[2] for c_ in core_pos]
        pw = [st["flux"][:, self.wcols].sum(1)] + [c_[3] for c_ in core_pos]
        po = [o] + [c_[0] for c_ in core_pos]
        px, py, pw, po = (np.concatenate(v) for v in (px, py, pw, po))
        order = np.argsort(po, kind="stable")
        px, py, pw, po = px[order], py[order], pw[order], po[order]
        peak_x = np.zeros(k)
        peak_y = np.zeros(k)
        if po.size:
            # pairwise within objects: light within 2.5 px of each point
            starts = np.searchsorted(po, np.arange(k + 1))
            cnt = np.diff(starts)
            kmax = int(cnt.max())
            slot = np.arange(po.size) - starts[po]
            X = np.full((k, kmax), np.nan)
            Y = np.full((k, kmax), np.nan)
            Wt = np.zeros((k, kmax))
            X[po, slot], Y[po, slot], Wt[po, slot] = px, py, pw
            d2 = (X[:, :, None] - X[:, None, :]) ** 2 + (
                Y[:, :, None] - Y[:, None, :]
            ) ** 2
            near = np.nan_to_num(d2, nan=1e9) < 2.5**2
            dens = (near * Wt[:, None, :]).sum(2)
            best = np.argmax(dens, axis=1)
            has = cnt > 0
            peak_x[has] = X[has, best[has]]
            peak_y[has] = Y[has, best[has]]
        ref_star = np.hypot(sx - peak_x[o], sy - peak_y[o]) < 2.5
        self.B.add(idx[o], KIND_POINT, sx, sy, st["flux"], ref=ref_star)
        bi = _fourier.nu_index(1.5)
        for ii, cx, cy, _, fj, rcore in core_pos:
            ref_c = np.hypot(cx - peak_x[ii], cy - peak_y[ii]) < 2.5
            beta = _fourier.beta_of_index(bi)
            self.B.add(
                idx[ii],
                KIND_MOFFAT,
                cx,
                cy,
                fj,
                size=_eff_core_radius(rcore, beta, 1.0),
                beta_idx=bi,
                ref=ref_c,
            )
        # objects with no point at all: centre on the diffuse light
        lonely = np.flatnonzero(np.bincount(po, minlength=k) == 0)
        if lonely.size:
            self.B.add(
                idx[lonely],
                KIND_POINT,
                0.0,
                0.0,
                np.zeros((lonely.size, self.nb)),
                ref=True,
            )
        self.cols["n_peaks"][idx] = np.bincount(o, minlength=k) + ncore
        self.cols["subtype"][idx] = "association"
        self.cols["eff_gamma"][idx] = np.nan

    # --- impostors (class 4)
    def impostors(self, idx4):
        rng, p = self.rng, self.p
        names = list(p.class4_subtypes)
        fr = np.array([p.class4_subtypes[s] for s in names], float)
        st = np.array(names)[rng.choice(len(names), idx4.size, p=fr / fr.sum())]
        self.cols["subtype"][idx4] = st
        for s in names:
            idx = idx4[st == s]
            k = idx.size
            if k == 0:
                continue
            e = np.abs(rng.normal(0, p.ebv[4], k))
            self.cols["ebv"][idx] = e
            getattr(self, "_c4_" + s)(idx, e)

    def _stars_group(self, idx, e, nstar, sep):
        rng, p = self.rng, self.p
        k = idx.size
        tot = np.zeros(k)
        phases = p.star_phases if nstar == 1 else p.blend_phases
        for j in range(nstar):
            m = _lf_draw(rng, k, p.star_mv_range[1], p.star_mv_range[0], 2.0)
            f = self.field_star(k, m, e, idx, phases)
            if j == 0:
                x = y = np.zeros(k)
            else:
                rr = rng.uniform(*sep, k)
                ang = rng.uniform(0, 2 * np.pi, k)
                x, y = rr * np.cos(ang), rr * np.sin(ang)
            self.B.add(idx, KIND_POINT, x, y, f)
            tot += 10 ** (-0.4 * m)
        self.cols["abs_mag_v"][idx] = -2.5 * np.log10(tot)
        self.cols["n_peaks"][idx] = nstar
        self.cols["n_stars"][idx] = nstar

    def _c4_star(self, idx, e):
        self._stars_group(idx, e, 1, (0, 0))

    def _c4_pair(self, idx, e):
        self._stars_group(idx, e, 2, (1.0, 3.0))

    def _c4_triple(self, idx, e):
        self._stars_group(idx, e, 3, (1.0, 3.0))

    def _c4_blend(self, idx, e):
        # two to four fainter field stars within 3 px: a chance blend
        rng, p = self.rng, self.p
        k = idx.size
        nst = rng.integers(2, 5, k)
        tot = np.zeros(k)
        lo, hi = p.star_mv_range
        for j in range(4):
            ii = np.flatnonzero(nst > j)
            m = _lf_draw(rng, ii.size, hi + 1.5, lo + 0.5, 2.0)
            f = self.field_star(ii.size, m, e[ii], idx[ii], p.blend_phases)
            rr = rng.uniform(0.0, 3.0, ii.size) if j else rng.uniform(0, 1.0, ii.size)
            ang = rng.uniform(0, 2 * np.pi, ii.size)
            self.B.add(idx[ii], KIND_POINT, rr * np.cos(ang), rr * np.sin(ang), f)
            tot[ii] += 10 ** (-0.4 * m)
        self.cols["abs_mag_v"][idx] = -2.5 * np.log10(tot)
        self.cols["n_peaks"][idx] = nst
        self.cols["n_stars"][idx] = nst

    def _c4_galaxy(self, idx, e):
        rng, p = self.rng, self.p
        k = idx.size
        blue = rng.random(k) < p.galaxy_blue_fraction
        la = np.where(blue, rng.uniform(8.0, 9.0, k), rng.uniform(9.3, 10.1, k))
        self.cols["log_age"][idx] = la
        col = ssp_colours_z(
            la, self.bands, e + rng.uniform(0.0, 0.3, k), rng.normal(0, 0.2, k)
        )
        mapp = rng.uniform(*p.galaxy_mag_range, k)
        self.cols["abs_mag_v"][idx] = mapp - self.dm[idx]
        ftot = self.zp_flux[None, :] * 10 ** (-0.4 * (mapp[:, None] + col))
        h = rng.uniform(1.0, 4.0, k)
        q = rng.uniform(0.25, 1.0, k)
        self.cols["axis_ratio"][idx] = q
        th = rng.uniform(0, np.pi, k)
        fb = rng.uniform(0.1, 0.5, k)
        self.B.add(
            idx, KIND_EXPDISK, 0.0, 0.0, ftot * (1 - fb)[:, None], size=h, q=q, theta=th
        )
        self.B.add(
            idx,
            KIND_MOFFAT,
            0.0,
            0.0,
            ftot * fb[:, None],
            size=0.5 * h,
            q=np.clip(q + 0.3, 0, 1),
            theta=th,
            beta_idx=_fourier.nu_index(2.0),
        )

    def _artefact(self, idx, streak):
        rng = self.rng
        k = idx.size
        band = rng.integers(0, self.nb, k)
        amp = 10 ** rng.uniform(0.0, 1.5, k)
        self.B.add_artifact(idx, band, 0, 0, amp)
        if streak:
            ang = rng.uniform(0, 2 * np.pi, k)
            for j in (1, 2, 3):
                on = rng.random(k) < (1.0 if j == 1 else 0.5)
                dx = np.rint(j * np.cos(ang)).astype(int)
                dy = np.rint(j * np.sin(ang)).astype(int)
                self.B.add_artifact(
                    idx[on],
                    band[on],
                    dx[on],
                    dy[on],
                    amp[on] * rng.uniform(0.3, 0.9, on.sum()),
                )

    def _c4_cosmic_ray(self, idx, e):
        self._artefact(idx, True)

    def _c4_hot_pixel(self, idx, e):
        self._artefact(idx, False)

    def _c4_fluff(self, idx, e):
        # diffuse light without a compact core: young light or nebular (HII)
        rng, p = self.rng, self.p
        k = idx.size
        la = rng.uniform(6.5, 8.0, k)
        self.cols["log_age"][idx] = la
        col = ssp_colours_z(la, self.bands, e, np.zeros(k))
        neb = rng.random(k) < 0.2
        if neb.any():
            col[neb] = nebular_colours(rng, neb.sum(), self.bands)
        m = _lf_draw(rng, k, p.fluff_mv_range[1], p.fluff_mv_range[0], 2.0)
        self.cols["abs_mag_v"][idx] = m
        f = self.flux(m, col, idx)
        sig = rng.uniform(1.2, 3.0, k)
        fp = rng.uniform(0.0, 0.1, k)
        self.B.add(
            idx,
            KIND_GAUSS,
            0.0,
            0.0,
            f * (1 - fp)[:, None],
            size=sig,
            q=rng.uniform(0.4, 1.0, k),
            theta=rng.uniform(0, np.pi, k),
        )
        self.B.add(
            idx,
            KIND_POINT,
            rng.normal(0, 0.8, k),
            rng.normal(0, 0.8, k),
            f * fp[:, None],
        )
        self.cols["reff_pc"][idx] = 1.177 * sig * self.pcpix[idx]

    def _c4_faint(self, idx, e):
        # a real cluster or star, but too faint to be classified: apparent V
        # in ``faint_mag_range`` (S/N of a few tens at most at LEGUS depth)
        rng, p = self.rng, self.p
        k = idx.size
        la = np.clip(rng.normal(7.0, 0.6, k), 6.0, 9.5)
        self.cols["log_age"][idx] = la
        m = rng.uniform(*sorted(p.faint_mag_range), k) - self.dm[idx]
        self.cols["abs_mag_v"][idx] = m
        col = ssp_colours_z(la, self.bands, e, np.zeros(k))
        f = self.flux(m, col, idx)
        isc = rng.random(k) < 0.6
        r = np.clip(10 ** rng.normal(np.log10(1.5), 0.25, k), 0.5, 10)
        self.cols["reff_pc"][idx] = np.where(isc, r, np.nan)
        ii = np.flatnonzero(isc)
        g = rng.uniform(*p.eff_gamma, k)
        self.eff(
            idx[ii],
            r[ii] / self.pcpix[idx[ii]],
            g[ii],
            np.ones(ii.size),
            np.zeros(ii.size),
            f[ii],
        )
        jj = np.flatnonzero(~isc)
        self.B.add(idx[jj], KIND_POINT, 0.0, 0.0, f[jj])

    def _c4_edge(self, idx, e):
        rng, p = self.rng, self.p
        k = idx.size
        self.cols["edge"][idx] = True
        la = np.clip(rng.normal(7.0, 0.6, k), 6.0, 10.1)
        self.cols["log_age"][idx] = la
        col = ssp_colours_z(la, self.bands, e, np.zeros(k))
        m = self.lf(k)
        self.cols["abs_mag_v"][idx] = m
        f = self.flux(m, col, idx)
        isc = rng.random(k) < 0.6
        r = np.clip(10 ** rng.normal(np.log10(2.0), 0.25, k), 0.5, 10)
        self.cols["reff_pc"][idx] = np.where(isc, r, np.nan)
        g = rng.uniform(*p.eff_gamma, k)
        ii = np.flatnonzero(isc)
        self.eff(
            idx[ii],
            r[ii] / self.pcpix[idx[ii]],
            g[ii],
            np.ones(ii.size),
            np.zeros(ii.size),
            f[ii],
        )
        jj = np.flatnonzero(~isc)
        self.B.add(idx[jj], KIND_POINT, 0.0, 0.0, f[jj])


def nebular_colours(rng, k, bands):
    """m_band - m_V of ionised-gas emission (no dust): bright in F336W
    (Balmer continuum) and F555W ([OIII], H-beta), much brighter in F606W
    (H-alpha), faint in F438W and F814W."""
    base = {
        "F275W": (-0.4, 0.4),
        "F336W": (-1.0, 0.3),
        "F435W": (0.45, 0.2),
        "F438W": (0.45, 0.2),
        "F555W": (0.0, 0.0),
        "F606W": (-0.9, 0.3),
        "F814W": (0.4, 0.3),
    }
    cols = []
    for b in bands:
        mu, w = base[canonical_band(b).split("/")[1]]
        cols.append(mu + rng.uniform(-w, w, k) if w else np.zeros(k))
    return np.stack(cols, -1)


def draw_population_v2(n, *, rng, bands, distance, classes, params):
    """Simulator v2 objects (see `draw_population` and the module docstring)."""
    p = params
    bands = list(bands)
    n = int(n)
    cls = _draw_classes(n, classes, p.class_fractions, rng)
    dist, field_names = _resolve_distance(distance, n, rng)
    D = _V2Drawer(n, rng, bands, dist, p)
    for c, kinds in ((1, p.class1_kinds), (2, p.class2_kinds)):
        idx = np.flatnonzero(cls == c)
        if idx.size == 0:
            continue
        names = list(kinds)
        w = np.array([kinds[s] for s in names], float)
        pick = rng.choice(len(names), idx.size, p=w / w.sum())
        for j, kind in enumerate(names):
            sub = idx[pick == j]
            if sub.size:
                D.cluster(sub, c, kind)
    idx3 = np.flatnonzero(cls == 3)
    if idx3.size:
        D.association(idx3)
    idx4 = np.flatnonzero(cls == 4)
    if idx4.size:
        D.impostors(idx4)
    comp, ref = D.B.build()
    nb = len(bands)
    vcol = D.vcol
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
    star = comp.kind == KIND_POINT
    star_v = np.bincount(comp.obj[star], comp.flux[star, vcol], minlength=n)
    if comp.art_obj.size:
        np.add.at(flux_tot, (comp.art_obj, comp.art_band), comp.art_flux)
    zp = D.zp_flux
    with np.errstate(divide="ignore", invalid="ignore"):
        mags = np.where(
            flux_tot > 0,
            -2.5 * np.log10(np.where(flux_tot > 0, flux_tot, 1) / zp[None, :]),
            np.nan,
        )
        star_frac = np.where(flux_tot[:, vcol] > 0, star_v / flux_tot[:, vcol], np.nan)
    cols = D.cols
    la = cols["log_age"]
    age_ok = np.isfinite(la)
    table = {
        "cluster_class": cls.astype(int),
        "subtype": cols["subtype"],
        "distance": dist,
        "field": field_names,
        "log_age": la,
        "age": np.where(age_ok, 10 ** np.where(age_ok, la, 0), np.nan),
        "mass": cols["mass"],
        "ebv": cols["ebv"],
        "metallicity": cols["metallicity"],
        "abs_mag_v": cols["abs_mag_v"],
        "reff_pc": cols["reff_pc"],
        "reff_pix": cols["reff_pc"] / D.pcpix,
        "eff_gamma": cols["eff_gamma"],
        "axis_ratio": cols["axis_ratio"],
        "n_peaks": cols["n_peaks"],
        "n_stars": cols["n_stars"],
        "star_fraction_v": star_frac,
        "assoc_size_pc": cols["assoc_size_pc"],
        "edge": cols["edge"],
    }
    for j, b in enumerate(bands):
        table[f"flux_{b}"] = flux_tot[:, j]
    for j, b in enumerate(bands):
        table[f"mag_{b}"] = mags[:, j]
    return table, comp
