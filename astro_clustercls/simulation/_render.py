# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Vectorised Fourier rendering of objects into small stamps (private).

An object is a set of components (see `Components`); each component's Fourier
transform is analytic, so a stamp is ``irfft2(OTF_band * sum_m flux_mb G_m(k)
exp(-i k.x_m))``: exact sub-pixel positions, exact convolution with the
pixel-integrated PSF, one inverse FFT per stamp and band.
"""

from dataclasses import dataclass, field

import numpy as np
import scipy.fft
import scipy.sparse

from . import _fourier

__all__ = []

KIND_POINT, KIND_MOFFAT, KIND_EXPDISK, KIND_GAUSS = 0, 1, 2, 3


@dataclass
class Components:
    """Flat arrays, one entry per light component; ``obj`` is sorted."""

    obj: np.ndarray
    kind: np.ndarray
    dx: np.ndarray
    dy: np.ndarray
    size: np.ndarray
    q: np.ndarray
    theta: np.ndarray
    beta_idx: np.ndarray
    flux: np.ndarray  # (M, B) electron/s
    # real-space artefacts (cosmic rays, hot pixels): obj, band index, dx, dy, flux
    art_obj: np.ndarray = field(default_factory=lambda: np.zeros(0, np.intp))
    art_band: np.ndarray = field(default_factory=lambda: np.zeros(0, np.intp))
    art_dx: np.ndarray = field(default_factory=lambda: np.zeros(0, np.intp))
    art_dy: np.ndarray = field(default_factory=lambda: np.zeros(0, np.intp))
    art_flux: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @classmethod
    def concatenate(cls, parts):
        """Merge several Components (objects indices are kept) and sort by object."""
        names = ("obj", "kind", "dx", "dy", "size", "q", "theta", "beta_idx", "flux")
        arts = ("art_obj", "art_band", "art_dx", "art_dy", "art_flux")
        cat = {n: np.concatenate([getattr(p, n) for p in parts]) for n in names + arts}
        order = np.argsort(cat["obj"], kind="stable")
        for n in names:
            cat[n] = cat[n][order]
        return cls(**cat)

    @classmethod
    def single_eff(cls, reff, flux, *, beta=1.5):
        """
        One centred, round EFF (Moffat) profile of effective radius ``reff``
        (pixels) and total ``flux`` per band: a typical cluster on its own, e.g.
        to measure aperture corrections or concentration indices.
        """
        bi = _fourier.nu_index(beta)
        beta = _fourier.beta_of_index(bi)
        return cls(
            obj=np.array([0]),
            kind=np.array([KIND_MOFFAT]),
            dx=np.zeros(1),
            dy=np.zeros(1),
            size=np.array([reff / np.sqrt(2.0 ** (1.0 / (beta - 1.0)) - 1.0)]),
            q=np.ones(1),
            theta=np.zeros(1),
            beta_idx=np.array([bi]),
            flux=np.atleast_2d(np.asarray(flux, dtype=float)),
        )

    def subset(self, mask):
        """Components whose object is selected by a boolean ``mask`` over objects,
        renumbered 0..mask.sum()-1."""
        mask = np.asarray(mask, bool)
        new_index = np.cumsum(mask) - 1
        keep = mask[self.obj]
        akeep = mask[self.art_obj]
        return Components(
            obj=new_index[self.obj[keep]],
            kind=self.kind[keep],
            dx=self.dx[keep],
            dy=self.dy[keep],
            size=self.size[keep],
            q=self.q[keep],
            theta=self.theta[keep],
            beta_idx=self.beta_idx[keep],
            flux=self.flux[keep],
            art_obj=new_index[self.art_obj[akeep]],
            art_band=self.art_band[akeep],
            art_dx=self.art_dx[akeep],
            art_dy=self.art_dy[akeep],
            art_flux=self.art_flux[akeep],
        )


def component_ft(comp, sel, ky, kx):
    """Profile transforms (M, P, F) float32 of the components ``sel``."""
    kind = comp.kind[sel]
    out = np.ones((sel.size, ky.size, kx.size), np.float32)
    ext = np.flatnonzero(kind != KIND_POINT)
    if ext.size == 0:
        return out
    s_ext = sel[ext]
    c = np.cos(comp.theta[s_ext]).astype(np.float32)
    s = np.sin(comp.theta[s_ext]).astype(np.float32)
    q2 = (comp.q[s_ext] ** 2).astype(np.float32)
    a2 = (comp.size[s_ext] ** 2).astype(np.float32)
    # |k|^2 in the object's frame, minor axis q times shorter, times size^2
    A = (c * c + q2 * s * s) * a2
    C = (s * s + q2 * c * c) * a2
    Bx = 2 * c * s * (1 - q2) * a2
    ky2 = (ky * ky)[None, :, None]
    kx2 = (kx * kx)[None, None, :]
    kxy = (ky[:, None] * kx[None, :])[None]
    x2 = A[:, None, None] * kx2 + C[:, None, None] * ky2
    x2 += Bx[:, None, None] * kxy
    kinds = kind[ext]
    for k_id in (KIND_MOFFAT, KIND_EXPDISK, KIND_GAUSS):
        m = kinds == k_id
        if not m.any():
            continue
        if k_id == KIND_MOFFAT:
            val = _fourier.moffat_ft_table2(x2[m], comp.beta_idx[s_ext[m]])
        elif k_id == KIND_EXPDISK:
            val = (1.0 + x2[m]) ** np.float32(-1.5)
        else:
            val = np.exp(np.float32(-0.5) * x2[m])
        out[ext[m]] = val
    return out


class StampRenderer:
    """
    Render objects into ``size x size`` stamps for a fixed set of band PSFs.

    Parameters
    ----------
    psfs : sequence of MoffatPSF
        One PSF per band, in band order.
    size : int
        Side of the output stamps (odd: the object's reference point is on the
        central pixel ``size // 2``).
    pad : int, optional
        Side of the FFT grid (default: ``size`` + 17 rounded up to a multiple of
        16); light beyond ``pad / 2`` from the centre wraps around.
    """

    def __init__(self, psfs, size, *, pad=None):
        self.size = int(size)
        if pad is None:
            pad = int(np.ceil((self.size + 17) / 16.0) * 16)
        self.pad = int(pad)
        if self.pad < self.size:
            raise ValueError("'pad' must be >= 'size'")
        self.ky, self.kx = _fourier.frequency_grid(self.pad)
        self.otf = np.stack([p.otf(self.ky, self.kx) for p in psfs]).astype(np.float32)
        self.n_bands = len(psfs)
        c = self.pad // 2
        h = self.size // 2
        self._crop = slice(c - h, c - h + self.size)
        self._centre = float(c)

    def render(self, comp, n, *, chunk=128):
        """
        Noise-free stamps (n, B, size, size) float32 in electron/s.

        The object reference point (component offsets ``dx = dy = 0``) is at
        pixel ``(size // 2, size // 2)``.
        """
        out = np.zeros((n, self.n_bands, self.size, self.size), np.float32)
        if n == 0:
            return out
        starts = np.searchsorted(comp.obj, np.arange(n + 1))
        counts = np.diff(starts)
        slot = np.arange(comp.obj.size) - starts[comp.obj]
        P, F = self.pad, self.kx.size
        for lo in range(0, n, chunk):
            hi = min(n, lo + chunk)
            sel = np.arange(starts[lo], starts[hi])
            if sel.size == 0:
                continue
            kmax = int(counts[lo:hi].max())
            G = component_ft(comp, sel, self.ky, self.kx)
            x = self._centre + comp.dx[sel]
            y = self._centre + comp.dy[sel]
            phx = np.exp(-1j * np.outer(x, self.kx)).astype(np.complex64)
            phy = np.exp(-1j * np.outer(y, self.ky)).astype(np.complex64)
            C = G * phy[:, :, None]
            C *= phx[:, None, :]
            grid = np.zeros((hi - lo, kmax, P * F), np.complex64)
            grid[comp.obj[sel] - lo, slot[sel]] = C.reshape(sel.size, P * F)
            W = np.zeros((hi - lo, self.n_bands, kmax), np.complex64)
            W[comp.obj[sel] - lo, :, slot[sel]] = comp.flux[sel]
            spec = np.matmul(W, grid).reshape(hi - lo, self.n_bands, P, F)
            spec *= self.otf[None]
            img = scipy.fft.irfft2(spec, s=(P, P), workers=1)
            out[lo:hi] = img[:, :, self._crop, self._crop]
        if comp.art_obj.size:
            h = self.size // 2
            ax = h + comp.art_dx
            ay = h + comp.art_dy
            ok = (ax >= 0) & (ax < self.size) & (ay >= 0) & (ay < self.size)
            np.add.at(
                out,
                (comp.art_obj[ok], comp.art_band[ok], ay[ok], ax[ok]),
                comp.art_flux[ok].astype(np.float32),
            )
        return out


_OTF_CACHE = {}
_OTF_CACHE_MAX = 4096


def cached_otf(psf, ky, kx, pad):
    """``psf.otf(ky, kx)`` on the rfft2 grid of ``pad``, cached for hashable PSFs."""
    try:
        key = (psf, int(pad))
        hit = _OTF_CACHE.get(key)
    except TypeError:  # an unhashable PSF object: no cache
        key, hit = None, None
    if hit is not None:
        return hit
    otf = np.asarray(psf.otf(ky, kx, pixel=True))
    otf = otf.astype(np.complex64 if np.iscomplexobj(otf) else np.float32)
    if key is not None:
        if len(_OTF_CACHE) >= _OTF_CACHE_MAX:
            _OTF_CACHE.clear()
        _OTF_CACHE[key] = otf
    return otf


def _ranges(starts, counts):
    """Indices ``starts[i] + 0..counts[i]-1`` for all i, and their owner and slot."""
    total = int(counts.sum())
    owner = np.repeat(np.arange(counts.size), counts)
    first = np.cumsum(counts) - counts
    slot = np.arange(total) - first[owner]
    return starts[owner] + slot, owner, slot


class VariantStampRenderer:
    """
    Render objects into stamps, each stamp with one of several PSF sets.

    Simulator v2's renderer: like `StampRenderer` (same Fourier method,
    conventions and pixel grid) but every stamp ``i`` is convolved with the
    PSFs of set ``variant[i]`` (PSF width randomisation, ACS or WFC3 bands),
    point sources are summed with separable phase factors (much cheaper than
    a full Fourier grid per star), and objects are processed in order of
    their number of components so that little work is padding.

    Parameters
    ----------
    psf_sets : sequence of sequence of PSF
        ``psf_sets[v][b]``: the PSF of band ``b`` in set ``v``. Any object
        with ``otf(ky, kx, pixel=True)`` works (analytic or tabulated PSFs).
    size : int
        Odd side of the stamps.
    pad : int, optional
        FFT grid side (default as `StampRenderer`).
    """

    def __init__(self, psf_sets, size, *, pad=None):
        self.size = int(size)
        if pad is None:
            pad = int(np.ceil((self.size + 17) / 16.0) * 16)
        self.pad = int(pad)
        if self.pad < self.size:
            raise ValueError("'pad' must be >= 'size'")
        self.ky, self.kx = _fourier.frequency_grid(self.pad)
        otfs = [
            [cached_otf(p, self.ky, self.kx, self.pad) for p in psfs]
            for psfs in psf_sets
        ]
        self.otf = np.array(otfs)
        self.n_bands = self.otf.shape[1]
        c = self.pad // 2
        h = self.size // 2
        self._crop = slice(c - h, c - h + self.size)
        self._centre = float(c)

    def render(self, comp, n, *, variant=None, chunk=256):
        """
        Noise-free stamps (n, B, size, size) float32 in electron/s.

        ``variant`` (n,) int gives each stamp's PSF set (default all 0).
        """
        B, P, F = self.n_bands, self.pad, self.kx.size
        out = np.zeros((n, B, self.size, self.size), np.float32)
        if n == 0:
            return out
        variant = np.zeros(n, np.intp) if variant is None else np.asarray(variant)
        # separable: points and circular Gaussians, G(k) = g(ky) g(kx)
        sep = (comp.kind == KIND_POINT) | ((comp.kind == KIND_GAUSS) & (comp.q == 1))
        ext_idx = np.flatnonzero(~sep)
        pt_idx = np.flatnonzero(sep)
        n_ext = np.bincount(comp.obj[ext_idx], minlength=n)
        n_pt = np.bincount(comp.obj[pt_idx], minlength=n)
        ext_starts = np.searchsorted(comp.obj[ext_idx], np.arange(n))
        pt_starts = np.searchsorted(comp.obj[pt_idx], np.arange(n))
        order = np.lexsort((n_ext, n_pt))
        c0 = np.float32(self._centre)
        for lo in range(0, n, chunk):
            objs = order[lo : lo + chunk]
            m = objs.size
            cnt = n_pt[objs]
            kmax = int(cnt.max())
            if kmax:
                rows, own, slot = _ranges(pt_starts[objs], cnt)
                sel = pt_idx[rows]
                phx = _phase(c0 + comp.dx[sel], self.kx)
                phy = _phase(c0 + comp.dy[sel], self.ky)
                gauss = np.flatnonzero(comp.kind[sel] == KIND_GAUSS)
                if gauss.size:
                    a2 = (-0.5 * comp.size[sel[gauss]] ** 2).astype(np.float32)
                    phx[gauss] *= np.exp(np.multiply.outer(a2, self.kx * self.kx))
                    phy[gauss] *= np.exp(np.multiply.outer(a2, self.ky * self.ky))
                Y = np.zeros((m, P, kmax), np.complex64)
                Y[own, :, slot] = phy
                X = np.zeros((m, B, kmax, F), np.complex64)
                X[own, :, slot] = (
                    comp.flux[sel].astype(np.float32)[:, :, None] * phx[:, None, :]
                )
                spec = np.matmul(Y[:, None], X)
                del X, Y
            else:
                spec = np.zeros((m, B, P, F), np.complex64)
            cnt = n_ext[objs]
            if cnt.any():
                rows, own, _ = _ranges(ext_starts[objs], cnt)
                sel = ext_idx[rows]
                M = sel.size
                C = component_ft(comp, sel, self.ky, self.kx).astype(np.complex64)
                C *= _phase(c0 + comp.dy[sel], self.ky)[:, :, None]
                C *= _phase(c0 + comp.dx[sel], self.kx)[:, None, :]
                W = scipy.sparse.csr_matrix(
                    (
                        comp.flux[sel].astype(np.complex64).ravel(),
                        (
                            (own[:, None] * B + np.arange(B)).ravel(),
                            np.repeat(np.arange(M), B),
                        ),
                    ),
                    shape=(m * B, M),
                )
                flat = spec.reshape(m * B, P * F)
                flat += W @ C.reshape(M, P * F)
                del C
            spec *= self.otf[variant[objs]]
            img = scipy.fft.irfft2(spec, s=(P, P), workers=1)
            out[objs] = img[:, :, self._crop, self._crop]
        if comp.art_obj.size:
            h = self.size // 2
            ax = h + comp.art_dx
            ay = h + comp.art_dy
            ok = (ax >= 0) & (ax < self.size) & (ay >= 0) & (ay < self.size)
            np.add.at(
                out,
                (comp.art_obj[ok], comp.art_band[ok], ay[ok], ax[ok]),
                comp.art_flux[ok].astype(np.float32),
            )
        return out


def _phase(x, k):
    """exp(-i x k) as complex64 (M, K) from positions x (M,) and frequencies k."""
    ph = np.multiply.outer(np.asarray(x, np.float32), k)
    out = np.empty(ph.shape, np.complex64)
    out.real = np.cos(ph)
    out.imag = np.sin(ph)
    np.negative(out.imag, out=out.imag)
    return out
