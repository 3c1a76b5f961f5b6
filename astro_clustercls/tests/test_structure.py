# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
The package's layering: what each layer may import, and no import circles.

- ``import astro_clustercls``, the data layer (`astro_clustercls.data`), the
  simulator (`astro_clustercls.simulation`), the output layer and the command
  line's parser load neither torch nor the networks nor the classifier; each
  module is imported in a fresh interpreter.
- No import circle among the package's modules, counting every import
  statement, also those inside functions.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import astro_clustercls

PACKAGE_DIR = Path(astro_clustercls.__file__).resolve().parent
PACKAGE = "astro_clustercls"

# modules that must never be loaded by the light layers
HEAVY = ("torch", "torchvision", "astro_clustercls.models",
         "astro_clustercls.inference",
         "astro_clustercls.training", "astro_clustercls.runtime")


def _module_name(path):
    parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _package_modules():
    """Every module of the package (tests, conftest files and version.py aside)."""
    names = {}
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        rel = path.relative_to(PACKAGE_DIR)
        if "tests" in rel.parts or path.name in ("conftest.py", "version.py"):
            continue
        if "data" in rel.parts[1:-1]:  # package data (e.g. a script beside a table)
            continue
        names[_module_name(path)] = path
    return names


MODULES = _package_modules()


def _light_modules():
    light = [PACKAGE, f"{PACKAGE}._config", f"{PACKAGE}._constants",
             f"{PACKAGE}.evaluation", f"{PACKAGE}.evaluation.metrics", f"{PACKAGE}.io",
             f"{PACKAGE}.cli", f"{PACKAGE}.cli.main", f"{PACKAGE}.cli._arguments"]
    light += [m for m in MODULES
              if m.startswith((f"{PACKAGE}.data", f"{PACKAGE}.simulation",
                               f"{PACKAGE}.utils", f"{PACKAGE}.io"))]
    return sorted(set(light))


LIGHT = _light_modules()

_PROBE = """
import importlib, sys
importlib.import_module({name!r})
heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision')
               or m.startswith({heavy!r}))
print(' '.join(m for m in heavy if m.split('.')[0] not in ('torch', 'torchvision'))
      or '-', 'torch' in sys.modules)
"""


def test_light_modules_listed():
    # the data layer and the simulator are really there (a rename would
    # otherwise leave this module checking nothing)
    assert f"{PACKAGE}.data.images" in LIGHT and f"{PACKAGE}.data.cutouts" in LIGHT
    assert f"{PACKAGE}.simulation.field" in LIGHT
    assert f"{PACKAGE}.simulation.training_set" in LIGHT
    assert len([m for m in LIGHT if ".simulation" in m]) >= 10


def test_light_layers_never_load_torch():
    """Each light module, imported alone in a fresh interpreter, loads no torch."""
    heavy_pkgs = tuple(h for h in HEAVY if h.startswith(PACKAGE))
    failures = {}
    batch = 4
    for start in range(0, len(LIGHT), batch):
        procs = {name: subprocess.Popen(
            [sys.executable, "-c", _PROBE.format(name=name, heavy=heavy_pkgs)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for name in LIGHT[start:start + batch]}
        for name, proc in procs.items():
            out, err = proc.communicate(timeout=120)
            if proc.returncode != 0:
                failures[name] = err.strip().splitlines()[-1:]
                continue
            loaded, torch_loaded = out.split()
            if loaded != "-" or torch_loaded != "False":
                failures[name] = (loaded, f"torch loaded: {torch_loaded}")
    assert not failures, failures


def test_lazy_top_level():
    """The public names resolve on first use, to the objects of their modules."""
    from astro_clustercls.data.cutouts import make_cutouts
    from astro_clustercls.inference.classifier import ClusterClassifier

    assert astro_clustercls.make_cutouts is make_cutouts
    assert astro_clustercls.ClusterClassifier is ClusterClassifier
    for name in astro_clustercls.__all__:
        assert getattr(astro_clustercls, name) is not None
    assert set(astro_clustercls.__all__) <= set(dir(astro_clustercls))
    with pytest.raises(AttributeError, match="no_such_name"):
        astro_clustercls.no_such_name  # noqa: B018


def _imports_of(name, path):
    """The package modules ``name`` imports (anywhere in the file)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    targets = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found = [module]
            # 'from pkg import sub' imports the submodule pkg.sub
            found += [f"{module}.{alias.name}" for alias in node.names
                      if f"{module}.{alias.name}" in MODULES]
        else:
            continue
        for target in found:
            if not target.startswith(PACKAGE):
                continue
            parts = target.split(".")
            # the target and the packages above it that are not above ``name``
            for i in range(len(parts), 0, -1):
                candidate = ".".join(parts[:i])
                if name == candidate or name.startswith(candidate + "."):
                    break
                if candidate in MODULES:
                    targets.add(candidate)
    return targets


def _cycles(graph):
    """Strongly connected components of more than one module, and self-imports."""
    index, low, stack, on_stack, result = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph[v]:
                result.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return result


def test_cycle_finder_finds_cycles():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"d"}, "e": {"a"}}
    assert sorted(_cycles(graph)) == [["a", "b", "c"], ["d"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_import_graph_sees_imports():
    # the graph is not empty and follows relative imports across subpackages
    graph = {name: _imports_of(name, path) for name, path in MODULES.items()}
    classifier = graph[f"{PACKAGE}.inference.classifier"]
    assert f"{PACKAGE}.data.cutouts" not in classifier  # streaming cuts cutouts
    assert f"{PACKAGE}.inference._streaming" in classifier
    assert {f"{PACKAGE}.data", f"{PACKAGE}.data.images", f"{PACKAGE}.runtime"} \
        <= classifier
    training_set = graph[f"{PACKAGE}.simulation.training_set"]
    assert f"{PACKAGE}.simulation.measure" in training_set


def test_no_import_circles():
    graph = {name: _imports_of(name, path) & set(MODULES)
             for name, path in MODULES.items()}
    assert _cycles(graph) == []


def test_cli_lists_the_experiments_of_the_package():
    """The parser's typed choices agree with the experiments module."""
    from astro_clustercls.cli import _arguments
    from astro_clustercls.evaluation import transfer
    from astro_clustercls.evaluation.experiments import BUNDLED_RECIPES, LABEL_SETS

    assert tuple(sorted(BUNDLED_RECIPES)) == _arguments._ARCHS
    assert _arguments._RENDERERS == transfer.RENDERERS
    assert _arguments._ABLATION_VARIANTS == transfer.ABLATION_VARIANTS
    assert tuple(LABEL_SETS) == _arguments._LABEL_SETS
