# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""The command line's name, its one-line errors, and their CLI spelling."""

import re

__all__ = ["PROG", "CLIError", "OPTION_NAMES", "cli_spelling"]

PROG = "astro-clustercls"


class CLIError(Exception):
    """An error to report in one line (exit status ``status``)."""

    def __init__(self, message, status=1):
        super().__init__(message)
        self.status = status


#: the library's parameter names and the command line's options that set them
OPTION_NAMES = {
    "xcol": "--xcol", "ycol": "--ycol", "skycol": "--skycol", "origin": "--origin",
    "hdu": "--hdu", "batch_size": "--batch-size", "missing_bands": "--missing-bands",
    "bands": "--band-map", "confidence_threshold": "--confidence-threshold",
    "weights_path": "--weights-path", "weights_sha256": "--weights-sha256",
    "weights": "--weights", "device": "--device", "label_col": "--label-col",
    "epochs": "--epochs", "lr": "--lr", "val_fraction": "--val-fraction",
    "test_fraction": "--test-fraction", "n_objects": "--n-objects",
    "distance": "--distance", "psfs": "--psf-fwhm", "sources": "--sources",
    "images": "--images", "model": "--model", "seed": "--seed", "shape": "--shape",
    "acs_bands": "--acs-bands",
}

_NAMES = "|".join(sorted(map(re.escape, OPTION_NAMES), key=len, reverse=True))

# (pattern, replacement) in order: whole phrases first, then single parameters
_PHRASES = [
    # bands={network_band: image_band} / bands={...}
    (re.compile(r"\bbands=\{[^}]*\}"), "--band-map NETWORK_BAND=IMAGE_BAND"),
    (re.compile(r"\bxcol=/ycol= or skycol="), "--xcol/--ycol or --skycol"),
    (re.compile(r"\bxcol=/ycol="), "--xcol/--ycol"),
    (re.compile(r"'xcol'/'ycol'"), "--xcol/--ycol"),
    # skycol=('RA', 'DEC') -> --skycol RA,DEC
    (re.compile(r"\bskycol=\(\s*'([^']*)'\s*,\s*'([^']*)'\s*\)"), r"--skycol \1,\2"),
    # name='value' or name=value (a number or a word) -> --option value
    (re.compile(rf"\b({_NAMES})=(?:'([^']*)'|\"([^\"]*)\"|([\w.+-]+))"),
     lambda m: f"{OPTION_NAMES[m.group(1)]} "
               f"{next(g for g in m.groups()[1:] if g is not None)}"),
    # name= (no value): the option
    (re.compile(rf"\b({_NAMES})=(?=[\s,;.)]|$)"), lambda m: OPTION_NAMES[m.group(1)]),
    # 'name' as a parameter: the option
    (re.compile(rf"'({_NAMES})'"), lambda m: OPTION_NAMES[m.group(1)]),
]


def cli_spelling(message):
    """
    A library message with parameters spelt as the command line's options.

    The library's errors name Python parameters (``xcol=``, ``bands={...}``,
    ``missing_bands='zero'``); on the command line they are options
    (``--xcol``, ``--band-map``, ``--missing-bands zero``).

    Examples
    --------
    >>> from astro_clustercls.cli._errors import cli_spelling
    >>> cli_spelling("substitute with bands={...}")
    'substitute with --band-map NETWORK_BAND=IMAGE_BAND'
    >>> cli_spelling("or pass missing_bands='zero'")
    'or pass --missing-bands zero'
    >>> cli_spelling("name yours with xcol=/ycol= or skycol= (columns: ['a'])")
    "name yours with --xcol/--ycol or --skycol (columns: ['a'])"
    >>> cli_spelling("'batch_size' must be >= 1, got 0")
    '--batch-size must be >= 1, got 0'
    """
    text = str(message)
    for pattern, replacement in _PHRASES:
        text = pattern.sub(replacement, text)
    return text
