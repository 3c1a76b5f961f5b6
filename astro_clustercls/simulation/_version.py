# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""The simulator's version."""

#: Version of the simulator's physics and calibration; trained weights cite it.
SIMULATOR_VERSION = "1.0"
