# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Make ``instrument_psfs.npz`` from drizzlepac's TinyTim PSF models.

The simulator reads the processed tables (`astro_clustercls.simulation.
instrument_psf`) and never needs drizzlepac; this script is only needed to
regenerate them. It reads ``drizzlepac/pars/psfs/{wfc3/uvis,acs/wfc}/*.fits``
from an installed drizzlepac, from an unpacked copy, or straight from a
drizzlepac wheel, and for each band of
`~astro_clustercls.simulation.instrument_psf.INSTRUMENT_BANDS`:

1. crops an even-sized model (ACS/WFC: 122 px) to odd size by dropping its
   last row and column (zeros in drizzlepac 3.11), so it has a central pixel;
2. normalises it to unit sum and stores it as float32 (values otherwise
   unchanged) with its native pixel scale (header ``PIXSCALE``) and a summary
   of its header;
3. measures its centre, ``(cy, cx)`` from the central pixel in model pixels:
   iterated until the processed PSF (`InstrumentPSF` defaults, not
   symmetrised) moved by ``-(cy, cx)`` with a Fourier phase and rendered on
   the drizzled grid has its centroid (2D Gaussian fit to the central 5x5
   pixels, `photutils.centroids.centroid_2dg`) on the central pixel to better
   than 1e-4 px. `InstrumentPSF` applies that phase; the table itself is not
   resampled (a Fourier shift of an undersampled table rings over the whole
   field).

Run::

    python -m astro_clustercls.simulation.data.psfs.make_psfs \\
        [--source DIR_OR_WHEEL] [--out FILE] [--report]

``--report`` prints CI and FWHM of every band, raw and processed.
"""

import argparse
import hashlib
import importlib.metadata
import importlib.util
import io
import sys
import warnings
import zipfile
from pathlib import Path

import numpy as np

__all__ = ["find_source", "read_models", "recentre", "make_tables", "report", "main"]

OUT = Path(__file__).with_name("instrument_psfs.npz")

_HEADER_KEYS = ("INSTRUME", "FILTER", "SPECTRUM", "PIXSCALE", "FOCUS", "X_COMA",
                "Y_COMA", "X_ASTIG", "Y_ASTIG", "SPHERICL", "CREATED")


class _Source:
    """Files of ``drizzlepac/pars/psfs`` in a directory or a wheel."""

    def __init__(self, path):
        path = Path(path)
        self.wheel = None
        self.version = "unknown"
        self.licence = None
        if path.is_file():
            self.wheel = zipfile.ZipFile(path)
            names = self.wheel.namelist()
            self.root = "drizzlepac/pars/psfs/"
            for n in names:
                if n.endswith(".dist-info/METADATA"):
                    meta = self.wheel.read(n).decode()
                    for line in meta.splitlines():
                        if line.startswith("Version:"):
                            self.version = line.split(":", 1)[1].strip()
                if n.endswith(".dist-info/licenses/LICENSE.txt") or n.endswith(
                    ".dist-info/LICENSE.txt"
                ):
                    self.licence = self.wheel.read(n).decode()
            self.description = f"wheel {path.name}"
        else:
            for cand in (path, path / "pars" / "psfs",
                         path / "drizzlepac" / "pars" / "psfs"):
                if (cand / "wfc3").is_dir() and (cand / "acs").is_dir():
                    self.root = cand
                    break
            else:
                raise FileNotFoundError(
                    f"no drizzlepac PSF models (pars/psfs) under {path}"
                )
            self.description = f"directory {self.root}"
            # an unpacked wheel or site-packages: the dist-info beside the package
            site = self.root.parents[2] if len(self.root.parents) > 2 else self.root
            for info in sorted(site.glob("drizzlepac-*.dist-info")):
                meta = (info / "METADATA").read_text()
                for line in meta.splitlines():
                    if line.startswith("Version:"):
                        self.version = line.split(":", 1)[1].strip()
                for name in ("licenses/LICENSE.txt", "LICENSE.txt"):
                    if (info / name).is_file():
                        self.licence = (info / name).read_text()

    def read(self, relpath):
        if self.wheel is not None:
            return self.wheel.read(self.root + relpath)
        return (self.root / relpath).read_bytes()


def find_source(source=None):
    """
    Where drizzlepac's PSF models are: ``source`` (a directory or a wheel), or
    the installed drizzlepac (found without importing it).
    """
    if source is not None:
        return _Source(source)
    spec = importlib.util.find_spec("drizzlepac")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "drizzlepac is not installed: install it (pip install drizzlepac) "
            "or give --source, a drizzlepac wheel or its pars/psfs directory "
            "(pip download drizzlepac --no-deps)"
        )
    src = _Source(Path(spec.submodule_search_locations[0]))
    src.version = importlib.metadata.version("drizzlepac")
    dist = importlib.metadata.distribution("drizzlepac")
    for name in ("licenses/LICENSE.txt", "LICENSE.txt", "LICENSE.rst"):
        text = dist.read_text(name)
        if text:
            src.licence = text
            break
    return src


def _relpath(instrument, band):
    inst, det = instrument.lower().split("/")
    return f"{inst}/{det}/{inst}_{det}_{band.lower()}.fits"


def read_models(src):
    """{(instrument, band): (data float64, header)} of the raw models."""
    from astropy.io import fits

    from astro_clustercls.simulation.instrument_psf import INSTRUMENT_BANDS

    out = {}
    for instrument, bands in INSTRUMENT_BANDS.items():
        for band in bands:
            raw = src.read(_relpath(instrument, band))
            with fits.open(io.BytesIO(raw)) as h:
                header = h[0].header.copy()
                header["SRCSHA"] = hashlib.sha256(raw).hexdigest()
                out[instrument, band] = (h[0].data.astype(np.float64), header)
    return out


def _processed_image(table, native, centre, *, charge_diffusion, pixel_scale,
                     size=15):
    from astro_clustercls.simulation import _fourier
    from astro_clustercls.simulation.instrument_psf import (
        DEFAULT_JITTER,
        DEFAULT_PIXFRAC,
        _otf,
    )

    pad = 4 * size
    ky, kx = _fourier.frequency_grid(pad)
    c = (size - 1) / 2.0
    phase = np.exp(-1j * (ky[:, None] * c + kx[None, :] * c))
    otf = _otf(table, native, centre, ky, kx, pixel=True,
               charge_diffusion=charge_diffusion, pixfrac=DEFAULT_PIXFRAC,
               jitter=DEFAULT_JITTER, scale=1.0, symmetric=False,
               pixel_scale=pixel_scale)
    return np.fft.irfft2(otf * phase, s=(pad, pad))[:size, :size]


def _centre_offset(img):
    """(dy, dx) of the centroid from the central pixel: 2D Gaussian, 5x5 px."""
    from photutils.centroids import centroid_2dg

    c = img.shape[0] // 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        x, y = centroid_2dg(img[c - 2 : c + 3, c - 2 : c + 3])
    return y - 2.0, x - 2.0


def recentre(table, native, *, charge_diffusion, pixel_scale, tol=1e-4,
             max_iter=20):
    """
    The centre (cy, cx) of ``table`` (odd size), in table pixels from its
    central pixel (see the module docstring).
    """
    c = table.shape[0] // 2
    # start from the centroid of the brightest 5x5 pixels
    sub = table[c - 2 : c + 3, c - 2 : c + 3]
    yy, xx = np.mgrid[-2:3, -2:3]
    cy = (sub * yy).sum() / sub.sum()
    cx = (sub * xx).sum() / sub.sum()
    ratio = pixel_scale / native  # table pixels per output pixel
    for _ in range(max_iter):
        img = _processed_image(table, native, (cy, cx), pixel_scale=pixel_scale,
                               charge_diffusion=charge_diffusion)
        oy, ox = _centre_offset(img)
        if max(abs(oy), abs(ox)) < tol:
            return cy, cx
        cy += oy * ratio
        cx += ox * ratio
    raise RuntimeError("re-centring did not converge")  # pragma: no cover


def make_tables(src, *, pixel_scale=None):
    """The processed tables and their metadata, as a dict of arrays for npz."""
    from astro_clustercls._constants import PIXEL_SCALE
    from astro_clustercls.simulation.instrument_psf import (
        _key,
        default_charge_diffusion,
    )

    pixel_scale = PIXEL_SCALE if pixel_scale is None else pixel_scale
    arrays = {}
    for (instrument, band), (data, header) in read_models(src).items():
        key = _key(instrument, band)
        native = float(header["PIXSCALE"])
        raw_sum = float(data.sum())
        if data.shape[0] % 2 == 0:
            data = data[:-1, :-1]
        table = (data / data.sum()).astype(np.float32)
        centre = recentre(
            table.astype(np.float64), native, pixel_scale=pixel_scale,
            charge_diffusion=default_charge_diffusion(instrument, band))
        arrays[key] = table
        arrays[key + "_pixscale"] = np.float64(native)
        arrays[key + "_centre"] = np.array(centre, dtype=np.float64)
        cards = [f"{k} = {header[k]}" for k in _HEADER_KEYS if k in header]
        cards.append(f"source = drizzlepac/pars/psfs/{_relpath(instrument, band)}, "
                     f"sha256 {header['SRCSHA']}, shape {header['NAXIS2']}x"
                     f"{header['NAXIS1']}, sum {raw_sum:.6f}")
        arrays[key + "_header"] = np.array("; ".join(cards))
    arrays["provenance"] = np.array(
        f"drizzlepac {src.version} (BSD-3-Clause, AURA), pars/psfs, read from "
        f"{src.description}; processed by "
        "astro_clustercls/simulation/data/psfs/make_psfs.py (odd-size crop, "
        "unit sum, float32, centre measured)"
    )
    if src.licence is None:
        warnings.warn("drizzlepac's licence text was not found; the README's copy "
                      "is the only one", stacklevel=2)
    arrays["licence"] = np.array(src.licence or "")
    return arrays


def _ci(img, xy):
    from photutils.aperture import CircularAperture, aperture_photometry

    t = aperture_photometry(img, [CircularAperture(xy, 1.0),
                                  CircularAperture(xy, 3.0)], method="exact")
    return -2.5 * np.log10(t["aperture_sum_0"][0] / t["aperture_sum_1"][0])


def _fwhm(img, xy):
    from photutils.psf import fit_fwhm

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(fit_fwhm(img, xypos=[xy], fit_shape=7)[0])


def _native_image(psf, size=41):
    """``psf`` before drizzling: native pixels, no drop, no jitter (pixel=False:
    the table already holds the native pixel)."""
    from dataclasses import replace

    from astro_clustercls.simulation import _fourier

    nat = replace(psf, pixfrac=0.0, jitter=0.0, pixel_scale=psf.native_pixel_scale)
    pad = 4 * size
    ky, kx = _fourier.frequency_grid(pad)
    c = (size - 1) / 2.0
    phase = np.exp(-1j * (ky[:, None] * c + kx[None, :] * c))
    otf = nat.otf(ky, kx, pixel=False)
    return np.fft.irfft2(otf * phase, s=(pad, pad))[:size, :size], nat.pixel_scale


def report(src, *, n_phases=16, seed=0):
    """
    Print CI and FWHM per band (an RST table): the raw models (apertures on the
    brightest pixel, at their own pixel scale), `InstrumentPSF` defaults on a
    pixel centre and averaged over random sub-pixel positions, and the FWHM
    before drizzling (native pixels, no drop, no jitter).
    """
    from astro_clustercls.simulation.instrument_psf import InstrumentPSF

    rng = np.random.default_rng(seed)
    phases = rng.uniform(-0.5, 0.5, (n_phases, 2))
    rows = []
    for (instrument, band), (data, header) in read_models(src).items():
        native = float(header["PIXSCALE"])
        cy, cx = np.unravel_index(np.argmax(data), data.shape)
        sub = data[cy - 20 : cy + 21, cx - 20 : cx + 21]
        psf = InstrumentPSF(band, instrument=instrument)
        img = psf.image(41)
        ci_avg = np.mean([
            _ci(psf.image(41, center=(20 + dx, 20 + dy)), (20 + dx, 20 + dy))
            for dx, dy in phases
        ])
        nat, nat_scale = _native_image(psf)
        rows.append((
            instrument, band, f"{_ci(sub, (20, 20)):.2f}", f"{_ci(img, (20, 20)):.2f}",
            f"{ci_avg:.2f}", f"{_fwhm(sub, (20, 20)) * native:.3f}\"",
            f"{_fwhm(nat, (20, 20)) * nat_scale:.3f}\"",
            f"{_fwhm(img, (20, 20)) * psf.pixel_scale:.3f}\"",
        ))
    head = ("instrument", "band", "CI raw", "CI", "CI avg", "FWHM raw",
            "FWHM nat", "FWHM")
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    rule = "  ".join("=" * w for w in widths)
    print(rule)
    print("  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)))
    print(rule)
    for r in rows:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)))
    print(rule)
    return rows


def main(argv=None):
    """Command-line entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(
        prog="python -m astro_clustercls.simulation.data.psfs.make_psfs",
        description="Process drizzlepac's TinyTim PSFs for the simulator.",
    )
    parser.add_argument("--source", default=None,
                        help="drizzlepac wheel, package or pars/psfs directory "
                             "(default: the installed drizzlepac)")
    parser.add_argument("--out", default=str(OUT), help="output .npz file")
    parser.add_argument("--report", action="store_true",
                        help="only print CI and FWHM, raw and processed")
    args = parser.parse_args(argv)
    src = find_source(args.source)
    if args.report:
        report(src)
        return 0
    arrays = make_tables(src)
    np.savez_compressed(args.out, **arrays)
    for key in sorted(arrays):
        if key.endswith("_centre"):
            print(f"{key[:-7]:20s} centre (cy, cx) = "
                  f"({arrays[key][0]:+.3f}, {arrays[key][1]:+.3f}) px")
    print(f"wrote {args.out} ({Path(args.out).stat().st_size / 1e3:.0f} kB) "
          f"from drizzlepac {src.version}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
