#!/usr/bin/env python
# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Shim for tools that still call setup.py; all metadata is in pyproject.toml."""
from setuptools import setup

setup()
