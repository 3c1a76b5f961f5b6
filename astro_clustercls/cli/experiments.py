# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
``astro-clustercls experiments``: the paper's experiments and the training of
the bundled networks (`astro_clustercls.evaluation.experiments`), e.g.::

    astro-clustercls experiments bundled --arch resnet18 --seed 0 --threads 1
    astro-clustercls experiments grid --archs resnet18 --sizes 25 51 --out g.ecsv
    astro-clustercls experiments options --n-test 4000 --adapt 6000 --rst opts.rst
    astro-clustercls experiments cross --arch resnet18 --rst cross.rst
"""

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from astropy.table import QTable, vstack

from ..evaluation.experiments import (
    BUNDLED_RECIPES,
    LABEL_SETS,
    RECIPES,
    band_dropout_experiment,
    compare_options,
    grid_to_rst,
    options_to_rst,
    run_grid,
    train_bundled,
)
from ..evaluation.ood import fit_ood, ood_rates, ood_to_rst
from ..evaluation.transfer import (
    ablation_to_rst,
    cross_renderer,
    cross_to_rst,
    transfer_ablation,
)
from ..models import get_model, register_ood_statistics
from ._errors import CLIError

__all__ = ["run"]


def _finish(table, args, to_rst=None):
    """Print ``table`` and write it where ``--out`` / ``--rst`` say."""
    print(table)
    if args.out:
        table.write(args.out, overwrite=True)
    if to_rst is not None and args.rst:
        Path(args.rst).write_text(to_rst(table))
    return 0


def _ood(args):
    """Fit (and register) a bundled network's OOD statistics; its rates table."""
    net = get_model(args.arch, weights="DEFAULT").eval()
    stats = fit_ood(net, n_train=args.n_train, n_val=args.n_val, seed=args.seed,
                    n_components=args.n_components, fpr=args.fpr)
    table = ood_rates(net, stats, n=args.n_test, seed=args.seed + 1)
    table.meta.update(arch=args.arch, weights=net.clustercls_meta.get("weights"),
                      n_train=args.n_train, n_val=args.n_val, fpr=args.fpr,
                      n_components=args.n_components, seed=args.seed)
    if args.register:
        member = str(net.clustercls_meta["weights"]).rpartition(".")[2]
        info = {k: table.meta[k] for k in ("n_train", "n_val", "fpr", "n_components",
                                           "seed")}
        info["rates"] = {str(r["set"]): round(float(r["flagged"]), 4) for r in table}
        ood = register_ood_statistics(args.arch, member, stats, info)
        print(f"registered {ood['file']} for {args.arch} {member}", flush=True)
    return table


def run(args):
    """The paper's experiments: train the bundled networks, the grid, the options."""
    if args.experiment == "table":
        table = vstack([QTable.read(f, format="ascii.ecsv") for f in args.tables])
        order = {"resnet18": 0, "vgg19_bn": 1}
        labels = {name: i for i, name in enumerate(LABEL_SETS)}
        table = table[np.lexsort((np.asarray(table["cutout_size"]),
                                  [labels[str(v)] for v in table["label_set"]],
                                  [order.get(str(v), 9) for v in table["arch"]]))]
        Path(args.rst).write_text(grid_to_rst(table))
        print(table)
        return 0
    if args.experiment == "dropout":
        return _finish(band_dropout_experiment(
            args.dropouts, size=args.size, n_train=args.n_train, epochs=args.epochs,
            workdir=args.workdir, threads=args.threads, progress_bar=True), args)
    if args.experiment == "options":
        if args.threads:
            torch.set_num_threads(args.threads)
        return _finish(compare_options(args.models, n_val=args.n_val,
                                       n_test=args.n_test, n_adapt=args.adapt),
                       args, options_to_rst)
    if args.experiment == "ood":
        return _finish(_ood(args), args, ood_to_rst)
    if args.experiment == "cross":
        return _finish(cross_renderer(args.arch, trained_on=args.trained_on,
                                      tested_on=args.tested_on,
                                      transfer="transfer" if args.transfer else None,
                                      size=args.size, seed=args.seed,
                                      n_train=args.n_train, n_val=args.n_val,
                                      n_test=args.n_test, epochs=args.epochs,
                                      bundled=tuple(args.bundled), progress_bar=True,
                                      threads=args.threads), args, cross_to_rst)
    if args.experiment == "ablation":
        return _finish(transfer_ablation(args.arch, variants=args.variants,
                                         tested_on=args.tested_on, size=args.size,
                                         seed=args.seed, n_train=args.n_train,
                                         n_val=args.n_val, n_test=args.n_test,
                                         epochs=args.epochs, progress_bar=True,
                                         threads=args.threads), args, ablation_to_rst)
    if args.experiment == "grid":
        return _finish(run_grid(archs=args.archs, label_sets=args.label_sets,
                                sizes=args.sizes, seed=args.seed,
                                n_train=args.n_train, epochs=args.epochs,
                                workdir=args.workdir, threads=args.threads,
                                progress_bar=True), args, grid_to_rst)
    if args.member is None:
        recipe = BUNDLED_RECIPES[args.arch]
    elif (args.arch, args.member) in RECIPES:
        recipe = RECIPES[args.arch, args.member]
    else:
        raise CLIError(f"--member: no recipe {args.member!r} for {args.arch}; known: "
                       + ", ".join(m for a, m in RECIPES if a == args.arch), status=2)
    if args.quick:
        recipe = replace(recipe, n_train=512, n_val=256, n_test=256, epochs=1)
        args.register = False
    train_bundled(args.arch, seed=args.seed, workdir=args.workdir,
                  resume=not args.no_resume, register=args.register,
                  device=args.device, recipe=recipe, threads=args.threads)
    return 0
