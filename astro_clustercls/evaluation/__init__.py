# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Evaluation: the paper's metrics (`astro_clustercls.evaluation.metrics`) and
experiments (`astro_clustercls.evaluation.experiments`: the bundled networks'
recipes, the experiment grid, the options on the held-out galaxy).

Importing this package loads the metrics only (numpy); the experiments
module, which trains networks, loads torch when imported.
"""

from .metrics import *  # noqa: F401, F403
from .metrics import __all__  # noqa: F401
