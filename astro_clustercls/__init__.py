# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
astro-clustercls: star-cluster candidate classification in HST images.

Implements and extends Wei et al. 2020 (MNRAS 493, 3178): multi-band cutouts of
cluster candidates are classified into four morphological classes (1 compact
symmetric cluster, 2 compact asymmetric cluster, 3 compact multi-peaked
association, 4 not a cluster) by ResNet18 / VGG19-BN networks.
"""

from astropy import config as _config

try:
    from .version import version as __version__
except ImportError:  # pragma: no cover - not installed, no setuptools_scm run
    __version__ = "0.0.dev0"


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
    )
    batch_size = _config.ConfigItem(
        256,
        "Default number of cutouts per batch for inference.",
        cfgtype="integer",
    )
    progress_bar = _config.ConfigItem(
        False,
        "Show tqdm progress bars by default in long operations.",
        cfgtype="boolean",
    )
    num_threads = _config.ConfigItem(
        0,
        "Torch intra-op threads on CPU (0: leave torch's default).",
        cfgtype="integer",
    )


conf = Conf()

from .classify import ClusterClassifier, classify_sources  # noqa: E402
from .cutouts import CutoutStack, make_cutouts  # noqa: E402
from .ensemble import ClusterEnsemble  # noqa: E402
from .flags import FLAGS, decode_flags  # noqa: E402
from .images import BandImages  # noqa: E402
from .models import get_model, list_models  # noqa: E402

__all__ = ["__version__", "conf", "Conf", "BandImages", "CutoutStack", "make_cutouts",
           "FLAGS", "decode_flags", "ClusterClassifier", "ClusterEnsemble",
           "classify_sources",
           "list_models", "get_model"]
