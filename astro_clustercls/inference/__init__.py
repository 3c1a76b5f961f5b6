# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Inference: the classifier, ensembles, and survey-scale runs on Dask.

`ClusterClassifier` classifies with one network, `ClusterEnsemble` with
several, `classify_sources` with either in one call;
`astro_clustercls.inference.distributed` runs them over many fields or
mosaics larger than memory.
"""

from .api import classify_sources
from .classifier import (
           MAX_BATCH_SIZE,
           OUTPUT_COLUMNS,
           ClusterClassifier,
           clear_model_cache,
)
from .ensemble import ENSEMBLE_COLUMNS, ClusterEnsemble, combine_votes

__all__ = ["ClusterClassifier", "ClusterEnsemble", "classify_sources",
           "clear_model_cache", "combine_votes", "OUTPUT_COLUMNS", "ENSEMBLE_COLUMNS",
           "MAX_BATCH_SIZE"]
