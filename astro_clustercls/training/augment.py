# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Augmentations for transfer: what differs between fields, cameras and renderers.

A network trained on one simulator learns that simulator's PSF, noise and
photometric calibration as well as the objects. `TransferAugmentation`
perturbs each training cutout, in its raw units and before normalisation, the
way another field or another pipeline would differ:

==============  ==============================================================
``blur``        extra Gaussian blur of rms uniform in ``blur`` (pixels), with a
                per-band jitter of ``blur_band_jitter`` (relative): a broader
                PSF (focus, drizzle, a different PSF model)
``shift``       a sub-pixel shift uniform within +-``shift`` pixels per axis
                (Fourier; catalog positions are never exact)
``gain``        per-band flux scale 10^(-0.4 dm), dm uniform within +-``gain``
                mag (zeropoints, colour terms, ACS vs WFC3 filters)
``noise``       extra Gaussian noise of rms ``f`` times the band's measured sky
                noise, ``f`` uniform in ``noise`` (shallower data); its
                neighbour correlation uniform in ``noise_corr`` (drizzle)
``gradient``    a background plane rising by ``g`` sky-noise rms from the
                centre to the edge in a random direction, ``g`` uniform in
                ``gradient`` (diffuse disk light, imperfect sky subtraction)
==============  ==============================================================

Each perturbation is applied to an item with probability ``p`` (independently
of the others), so the network keeps seeing unperturbed objects. Every draw
comes from the item's own generator, so the augmented set is reproducible
whatever the batch or worker order. The sky level and noise are measured on
the cutout's outer ring like `astro_clustercls.preprocessing.normalize`.
Pixels that are missing (NaN: off the image, a missing band) stay missing.
"""

from dataclasses import asdict, dataclass

import numpy as np

from ..preprocessing import _ring_stats
from ..simulation.observing import correlated_noise
from ..utils._parameters import validate_choice

__all__ = ["TransferAugmentation", "TRANSFER_PRESETS", "resolve_transfer"]


def _range(name, value, *, lo=0.0):
    pair = tuple(float(v) for v in np.broadcast_to(np.asarray(value, float), (2,)))
    if not (np.all(np.isfinite(pair)) and lo <= pair[0] <= pair[1]):
        raise ValueError(f"'{name}' must be a range (min, max) with {lo} <= min <= "
                         f"max, got {value!r}")
    return pair


@dataclass(frozen=True)
class TransferAugmentation:
    """
    Random perturbations of raw cutouts that mimic other fields and renderers.

    See the module docstring for what each parameter does; a range ``(0, 0)``
    (or ``0`` for ``shift`` and ``gain``) switches a perturbation off.

    Parameters
    ----------
    p : float, optional
        Probability that each perturbation is applied to an item (default 0.5).
    blur : (float, float), optional
        Extra blur rms in pixels (default (0.2, 0.8)).
    blur_band_jitter : float, optional
        Relative rms of the blur between bands (default 0.2).
    shift : float, optional
        Largest sub-pixel shift per axis, pixels (default 0.5).
    gain : float, optional
        Largest per-band zeropoint change, mag (default 0.15).
    noise : (float, float), optional
        Extra noise, in units of the measured sky noise (default (0.3, 1.0)).
    noise_corr : (float, float), optional
        Neighbour correlation of the extra noise (default (0.0, 0.4)).
    gradient : (float, float), optional
        Background gradient, sky-noise rms from centre to edge (default (0.5, 3)).

    Examples
    --------
    >>> import numpy as np
    >>> from astro_clustercls.training.augment import TransferAugmentation
    >>> aug = TransferAugmentation(p=1.0)
    >>> x = np.random.default_rng(0).normal(0, 0.01, (5, 21, 21)).astype('f4')
    >>> x[:, 10, 10] += 5.0  # a star
    >>> y = aug(x, np.random.default_rng(1))
    >>> y.shape, y.dtype.name
    ((5, 21, 21), 'float32')
    >>> bool(y[:, 10, 10].max() < 5.0)  # blurred
    True
    >>> TransferAugmentation.off().enabled
    ()
    """

    p: float = 0.5
    blur: tuple = (0.2, 0.8)
    blur_band_jitter: float = 0.2
    shift: float = 0.5
    gain: float = 0.15
    noise: tuple = (0.3, 1.0)
    noise_corr: tuple = (0.0, 0.4)
    gradient: tuple = (0.5, 3.0)

    def __post_init__(self):
        set_ = object.__setattr__
        if not 0 <= float(self.p) <= 1:
            raise ValueError(f"'p' must be in [0, 1], got {self.p!r}")
        set_(self, "p", float(self.p))
        for name in ("blur", "noise", "gradient"):
            set_(self, name, _range(name, getattr(self, name)))
        corr = _range("noise_corr", self.noise_corr)
        if corr[1] > 0.5:
            raise ValueError(f"'noise_corr' must be <= 0.5, got {self.noise_corr!r}")
        set_(self, "noise_corr", corr)
        for name in ("blur_band_jitter", "shift", "gain"):
            value = float(getattr(self, name))
            if not (np.isfinite(value) and value >= 0):
                raise ValueError(f"'{name}' must be >= 0, got {getattr(self, name)!r}")
            set_(self, name, value)

    @classmethod
    def off(cls):
        """An augmentation that changes nothing (every perturbation off)."""
        return cls(**_OFF)

    @property
    def enabled(self):
        """Names of the perturbations that can change an item."""
        if self.p == 0:
            return ()
        on = {"blur": self.blur[1] > 0, "shift": self.shift > 0, "gain": self.gain > 0,
              "noise": self.noise[1] > 0, "gradient": self.gradient[1] > 0}
        return tuple(k for k, v in on.items() if v)

    def only(self, *names):
        """A copy with every perturbation but ``names`` switched off."""
        unknown = set(names) - set(_OFF)
        if unknown:
            raise ValueError(f"unknown perturbations {sorted(unknown)}; known: "
                             f"{sorted(_OFF)}")
        return TransferAugmentation(**{**asdict(self), **{k: v for k, v in _OFF.items()
                                                        if k not in names}})

    def to_dict(self):
        """The parameters as a JSON-able dict (for the weights' recipe)."""
        return {k: list(v) if isinstance(v, tuple) else v
                for k, v in asdict(self).items()}

    def draw(self, nb, rng):
        """
        Draw the perturbations of one item with ``nb`` bands.

        Every value is drawn whether or not it is used, so that switching one
        perturbation off leaves the others' draws unchanged (ablations).

        Returns
        -------
        dict
            Keyword arguments of `apply`: the perturbations that are on for
            this item (absent: off).
        """
        use = rng.random(5) < self.p
        blur = rng.uniform(*self.blur) * np.clip(
            1 + self.blur_band_jitter * rng.standard_normal(nb), 0.5, 1.5)
        shift = rng.uniform(-self.shift, self.shift, 2)
        gain = 10 ** (-0.4 * rng.uniform(-self.gain, self.gain, nb))
        level = rng.uniform(*self.noise)
        corr = rng.uniform(*self.noise_corr)
        seed = int(rng.integers(2**63))
        slope = rng.uniform(*self.gradient)
        angle = rng.uniform(0, 2 * np.pi)
        values = {"blur": blur, "shift": shift, "gain": gain,
                  "noise": (level, corr, seed), "gradient": (slope, angle)}
        on = (self.blur[1] > 0, self.shift > 0, self.gain > 0, self.noise[1] > 0,
              self.gradient[1] > 0)
        return {k: v for (k, v), u, o in zip(values.items(), use, on, strict=True)
                if u and o}

    @staticmethod
    def apply(x, *, blur=None, shift=None, gain=None, noise=None, gradient=None):
        """
        Apply given perturbations to one raw cutout (B, S, S); float32 copy.

        Parameters
        ----------
        x : ndarray (B, S, S)
            Raw pixels, NaN where missing (they stay missing).
        blur : ndarray (B,), optional
            Gaussian blur rms per band, pixels.
        shift : (dy, dx), optional
            Shift in pixels (the object moves by +dy, +dx).
        gain : ndarray (B,), optional
            Flux scale per band (object and sky).
        noise : (level, correlation, seed), optional
            Extra noise of rms ``level`` times the ring's noise, with that
            neighbour correlation, from that seed.
        gradient : (slope, angle), optional
            A plane of ``slope`` ring-noise rms from the centre to the edge
            along ``angle`` (radians from +x towards +y).
        """
        x = np.asarray(x, np.float32)
        nb, ny, nx = x.shape
        bkg, sigma = _ring_stats(x[None], 2)
        bkg = np.where(np.isfinite(bkg[0]), bkg[0], 0.0)[:, None, None]
        sigma = np.where(np.isfinite(sigma[0]), sigma[0], 0.0)[:, None, None]
        missing = ~np.isfinite(x)
        y = np.where(missing, 0.0, x - bkg)
        if blur is not None or shift is not None:
            ky = 2 * np.pi * np.fft.fftfreq(ny)[:, None]
            kx = 2 * np.pi * np.fft.rfftfreq(nx)[None, :]
            ft = np.fft.rfft2(y)
            if blur is not None:
                b = np.asarray(blur, float).reshape(nb, 1, 1)
                ft = ft * np.exp(-0.5 * b**2 * (ky**2 + kx**2))
            if shift is not None:
                ft = ft * np.exp(-1j * (ky * shift[0] + kx * shift[1]))
            y = np.fft.irfft2(ft, s=(ny, nx))
        if gain is not None:
            g = np.asarray(gain, float).reshape(nb, 1, 1)
            y, bkg, sigma = y * g, bkg * g, sigma * g
        if noise is not None:
            level, corr, seed = noise
            y = y + level * sigma * correlated_noise(
                (nb, ny, nx), np.full(nb, corr), np.random.default_rng(seed))
        if gradient is not None:
            slope, angle = gradient
            yy, xx = np.mgrid[:ny, :nx]
            along = (xx - nx // 2) * np.cos(angle) + (yy - ny // 2) * np.sin(angle)
            y = y + slope * sigma * along / max(nx // 2, 1)
        out = (y + bkg).astype(np.float32)
        out[missing] = np.nan
        return out

    def __call__(self, x, rng):
        """
        Perturb one raw cutout at random (`draw`, then `apply`).

        Parameters
        ----------
        x : ndarray (B, S, S)
            Raw pixel values (NaN where missing); not modified.
        rng : `numpy.random.Generator`
            The item's generator.

        Returns
        -------
        ndarray (B, S, S) float32
        """
        x = np.asarray(x, np.float32)
        values = self.draw(x.shape[0], rng)
        return self.apply(x, **values) if values else x.copy()


_OFF = {"blur": 0, "shift": 0, "gain": 0, "noise": 0, "gradient": 0}

#: Named augmentations: ``'transfer'`` (every perturbation, the defaults).
TRANSFER_PRESETS = {"transfer": TransferAugmentation()}


def resolve_transfer(transfer):
    """
    The `TransferAugmentation` a ``transfer`` argument names (None: none).

    Parameters
    ----------
    transfer : None, `TransferAugmentation`, str or dict
        An augmentation, a name of `TRANSFER_PRESETS`, or its parameters.
    """
    if transfer is None or isinstance(transfer, TransferAugmentation):
        return transfer
    if isinstance(transfer, str):
        return TRANSFER_PRESETS[validate_choice("transfer", transfer,
                                                tuple(TRANSFER_PRESETS))]
    if isinstance(transfer, dict):
        return TransferAugmentation(**transfer)
    raise TypeError("'transfer' must be None, a TransferAugmentation, a preset name "
                    f"or a dict of its parameters, got {transfer!r}")
