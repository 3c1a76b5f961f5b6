# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""The simulator's versions."""

__all__ = ["SIMULATOR_VERSION", "SIMULATOR_VERSIONS", "resolve_version"]

#: Version of the simulator's physics and calibration used by default; trained
#: weights cite it (the bundled networks were trained on "1.0").
SIMULATOR_VERSION = "1.0"

#: The versions that can be asked for (``simulator=`` arguments).
SIMULATOR_VERSIONS = ("1.0", "2.0")

_ALIASES = {
    "1": "1.0",
    "v1": "1.0",
    "1.0": "1.0",
    "2": "2.0",
    "v2": "2.0",
    "2.0": "2.0",
}


def resolve_version(simulator, params=None):
    """
    The version string (``'1.0'`` or ``'2.0'``) of a ``simulator`` argument.

    Parameters
    ----------
    simulator : str or None
        ``'v1'``/``'1.0'`` or ``'v2'``/``'2.0'``; None takes the version of
        ``params`` when given, else `SIMULATOR_VERSION`.
    params : PopulationParameters, optional
        Must match the version when both are given.

    Examples
    --------
    >>> from astro_clustercls.simulation._version import resolve_version
    >>> resolve_version('v2'), resolve_version(None)
    ('2.0', '1.0')
    """
    pv = getattr(params, "version", None) if params is not None else None
    if simulator is None:
        return pv or SIMULATOR_VERSION
    key = str(simulator).strip().lower()
    if key not in _ALIASES:
        raise ValueError(
            "'simulator' must be one of 'v1', 'v2' (or '1.0', '2.0'), "
            f"got {simulator!r}"
        )
    version = _ALIASES[key]
    if pv is not None and pv != version:
        raise ValueError(
            f"'simulator' {simulator!r} does not match the version of 'params' "
            f"({pv!r}); pass parameters of that version (parameters_for({simulator!r}))"
        )
    return version
