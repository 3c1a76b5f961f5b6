# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Networks and their weights: N-band ResNet18 / VGG19-BN, the registry of
bundled weights, and safe reading/writing of weights files.
"""

from . import _api
from ._api import (
    META_KEYS,
    Weights,
    WeightsEnum,
    get_model,
    get_model_weights,
    get_weight,
    list_models,
    register_bundled_weights,
)
from ._io import (
    file_sha256,
    load_state_dict_file,
    read_weights_meta,
    save_weights,
)
from ._ood import (
    OOD_METHOD,
    FeatureStatistics,
    check_ood_info,
    fit_feature_statistics,
    forward_with_stages,
    input_stages,
    network_stages,
    read_ood_statistics,
    register_ood_statistics,
    stage_features,
)
from ._quantize import Int8Network, int8_network, int8_support, quantize_network
from .architectures import (
    ARCHITECTURES,
    build_network,
    check_state_dict,
    identify_state_dict,
    imagenet_weights_path,
)

__all__ = [
    "ARCHITECTURES",
    "build_network",
    "identify_state_dict",
    "imagenet_weights_path",
    "save_weights",
    "load_state_dict_file",
    "read_weights_meta",
    "file_sha256",
    "check_state_dict",
    "Weights",
    "WeightsEnum",
    "ResNet18_Weights",
    "VGG19_BN_Weights",
    "META_KEYS",
    "list_models",
    "get_model",
    "get_model_weights",
    "get_weight",
    "register_bundled_weights",
    "FeatureStatistics",
    "fit_feature_statistics",
    "forward_with_stages",
    "network_stages",
    "input_stages",
    "stage_features",
    "check_ood_info",
    "OOD_METHOD",
    "read_ood_statistics",
    "register_ood_statistics",
    "Int8Network",
    "int8_network",
    "int8_support",
    "quantize_network",
]


def __getattr__(name):
    # the weights enums are re-built whenever the manifest changes
    if name in ("ResNet18_Weights", "VGG19_BN_Weights"):
        return getattr(_api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
