# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""The package's configuration: `Conf` and its instance `conf`."""

from astropy import config as _config

__all__ = ["Conf", "conf"]

# the items belong to the top-level package (the [astro_clustercls] section of
# astro_clustercls.cfg), as they did when they were defined there
_MODULE = "astro_clustercls"


class Conf(_config.ConfigNamespace):
    """
    Configuration parameters for astro_clustercls (environment settings only).

    Science choices (model, cutout size, bands) are arguments of the functions,
    never configuration.
    """

    device = _config.ConfigItem(
        "auto",
        "Torch device for the networks: 'auto' (cuda when available, else cpu), "
        "'cpu', 'cuda', 'cuda:1', 'mps'.",
        cfgtype="string",
        module=_MODULE,
    )
    batch_size = _config.ConfigItem(
        256,
        "Default number of cutouts per batch for inference.",
        cfgtype="integer",
        module=_MODULE,
    )
    progress_bar = _config.ConfigItem(
        None,
        "Progress bars (tqdm) of long operations: True, False, or None (default) "
        "for auto: a bar when standard error is a terminal and the work is long "
        "(classifying more than a few thousand objects, training, adapting).",
        cfgtype="boolean",
        module=_MODULE,
    )
    num_threads = _config.ConfigItem(
        0,
        "Torch intra-op threads on CPU (0: leave torch's default).",
        cfgtype="integer",
        module=_MODULE,
    )

    int8_auto = _config.ConfigItem(
        True,
        "With precision='auto' on CPUs without native bfloat16, classify with the "
        "bundled networks' int8 copy (ONNX Runtime, built once and cached) where "
        "onnxruntime and onnx are installed and it agrees with float32 on >= 99.5 "
        "% of simulated objects; False keeps float32.",
        cfgtype="boolean",
        module=_MODULE,
    )


conf = Conf()
