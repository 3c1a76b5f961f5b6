# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Shared fixtures: small seeded synthetic multi-band images and FITS files."""

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from astro_clustercls import BandImages

#: pixel scale of the synthetic images, arcsec per pixel
SCALE = 0.04
BANDS = ("F336W", "F555W", "F814W")


def make_wcs(shape, *, crval=(150.1, 2.2), scale=SCALE, shift=(0.0, 0.0)):
    """A TAN WCS of ``scale`` arcsec/px, reference pixel near the centre."""
    ny, nx = shape
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = list(crval)
    wcs.wcs.crpix = [nx / 2 + 0.5 + shift[0], ny / 2 + 0.5 + shift[1]]
    wcs.wcs.cdelt = [-scale / 3600, scale / 3600]
    wcs.wcs.cunit = ["deg", "deg"]
    wcs.array_shape = shape
    return wcs


def make_arrays(shape=(48, 64), bands=BANDS, *, seed=0, dtype=np.float32):
    """Seeded noisy images with a few Gaussian sources, one per band."""
    rng = np.random.default_rng(seed)
    ny, nx = shape
    yy, xx = np.mgrid[:ny, :nx]
    arrays = {}
    centres = rng.uniform([5, 5], [nx - 5, ny - 5], size=(6, 2))
    for i, band in enumerate(bands):
        img = rng.normal(0.0, 0.01, size=shape)
        for cx, cy in centres:
            img += (1 + i) * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * 1.5**2))
        arrays[band] = img.astype(dtype)
    return arrays


@pytest.fixture
def wcs_factory():
    return make_wcs


@pytest.fixture
def arrays():
    return make_arrays()


@pytest.fixture
def band_images(arrays):
    """Three bands (F336W, F555W, F814W), 48x64 float32, TAN WCS at 0.04"/px."""
    return BandImages(arrays, wcs=make_wcs((48, 64)), unit="electron/s")


def write_hst_file(path, band, data, *, kind="flt", dq=None, err=None, wht=None,
                   ctx=None, wcs=None, bunit="ELECTRONS/S", primary_extra=None,
                   keyword="FILTER"):
    """
    Write an HST-like file: primary header with the filter + image extensions.

    ``kind='flt'``: SCI/ERR/DQ extensions; ``kind='drc'``: SCI/WHT/CTX;
    ``kind='simple'``: the data in the primary HDU.
    """
    phdr = fits.Header()
    phdr["TELESCOP"] = "HST"
    if keyword == "FILTER":
        phdr["INSTRUME"] = "WFC3"
        phdr["FILTER"] = band
    elif keyword == "FILTER1/2":
        phdr["INSTRUME"] = "ACS"
        phdr["FILTER1"] = "CLEAR1L"
        phdr["FILTER2"] = band
    for key, value in (primary_extra or {}).items():
        phdr[key] = value
    hdr = wcs.to_header() if wcs is not None else fits.Header()
    hdr["BUNIT"] = bunit
    if kind == "simple":
        phdr.update(hdr)
        fits.PrimaryHDU(data, phdr).writeto(path)
        return path
    hdus = [fits.PrimaryHDU(header=phdr), fits.ImageHDU(data, hdr, name="SCI")]
    if kind == "flt":
        hdus.append(fits.ImageHDU(err if err is not None else np.ones_like(data),
                                  name="ERR"))
        hdus.append(fits.ImageHDU(dq if dq is not None else
                                  np.zeros(data.shape, np.int16), name="DQ"))
    elif kind == "drc":
        hdus.append(fits.ImageHDU(wht if wht is not None else
                                  np.ones(data.shape, np.float32), name="WHT"))
        hdus.append(fits.ImageHDU(ctx if ctx is not None else
                                  np.ones(data.shape, np.int32), name="CTX"))
    fits.HDUList(hdus).writeto(path)
    return path


@pytest.fixture
def hst_writer():
    return write_hst_file


@pytest.fixture
def arrays_factory():
    return make_arrays


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory):
    """
    An untrained 5-band ResNet18 saved as safetensors with the meta a classifier
    needs (15-px cutouts, asinh-v1): for tests of the code paths, never of accuracy.
    """
    import torch

    from astro_clustercls._constants import DEFAULT_BANDS
    from astro_clustercls.models import build_network, save_weights

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "tiny-resnet18.safetensors"
    meta = {"architecture": "resnet18", "bands": list(DEFAULT_BANDS),
            "cutout_size": 15, "normalization": "asinh-v1",
            "notes": "random weights, test only"}
    save_weights(build_network("resnet18", n_bands=5).eval(), path, meta)
    return path
