# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
The ``astro-clustercls`` command line (also ``python -m astro_clustercls``).

Subcommands live in `SUBCOMMANDS`, a dict ``name -> (add_arguments, run)``:
``add_arguments(parser)`` declares the options of the subcommand (argparse
only, in `astro_clustercls.cli._arguments`) and ``run(args)`` does the work and
returns the exit status; ``run`` lives in the subcommand's own module
(``astro_clustercls.cli.<name>``), imported only when the subcommand runs, so
``--help`` answers without loading torch. The first line of ``run``'s
docstring is the subcommand's help. Adding a subcommand is adding one entry.

Errors a user can cause (missing or unreadable files, wrong extension names,
bad arguments) print one line ``astro-clustercls: error: ...`` on stderr and
exit with a non-zero status, without a traceback; ``--debug`` shows the
traceback instead. The library's messages name Python parameters
(``xcol=``, ``missing_bands='zero'``); they are shown with the command line's
options instead (``--xcol``, ``--missing-bands zero``; see
`astro_clustercls.cli._errors.cli_spelling`).

Long commands say what they do on stderr ("loading network...",
"classifying 12 000 sources...") and show progress bars when stderr is a
terminal; ``--quiet`` silences both (results and warnings are still printed),
``--progress`` forces the bars.
"""

import argparse
import importlib
import sys
import warnings

from .._version import version
from . import _arguments
from ._errors import PROG, CLIError, cli_spelling

__all__ = ["main", "SUBCOMMANDS", "build_parser"]


class _Command:
    """``run(args)`` of a subcommand, imported from its module on first call."""

    def __init__(self, module, help_):
        self.module = module
        self.__doc__ = help_

    def __call__(self, args):
        module = importlib.import_module(f".{self.module}", __package__)
        return module.run(args)

    def __repr__(self):
        return f"<astro-clustercls {self.module} command>"


#: name -> (add_arguments(parser), run(args) -> exit status)
SUBCOMMANDS = {
    "classify": (_arguments.add_classify_arguments, _Command(
        "classify", "Classify the sources of a table on FITS images; write ECSV "
                    "(+ regions).")),
    "demo": (_arguments.add_demo_arguments, _Command(
        "demo", "Simulate a field, detect, classify and compare with the truth "
                "(offline).")),
    "simulate": (_arguments.add_simulate_arguments, _Command(
        "simulate", "Simulate a five-band HST field with true classes; write FITS + "
                    "truth table.")),
    "train": (_arguments.add_train_arguments, _Command(
        "train", "Fine-tune a network on a labelled catalog; write safetensors "
                 "weights.")),
    "evaluate": (_arguments.add_evaluate_arguments, _Command(
        "evaluate", "Classify a labelled catalog and report per-class accuracy vs the "
                    "paper.")),
    "adapt": (_arguments.add_adapt_arguments, _Command(
        "adapt", "Fine-tune a network to your own field on simulated objects "
                 "injected into its images.")),
    "experiments": (_arguments.add_experiments_arguments, _Command(
        "experiments", "The paper's experiments: train the bundled networks, the "
                       "grid, the options.")),
}


def build_parser():
    """The argparse parser with one subparser per entry of `SUBCOMMANDS`."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show tracebacks instead of one-line errors")
    common.add_argument("-q", "--quiet", action="store_true",
                        default=argparse.SUPPRESS,
                        help="no stage lines or progress bars on stderr (results "
                             "and warnings are still printed)")
    parser = argparse.ArgumentParser(
        prog=PROG, parents=[common],
        description="Classify star-cluster candidates in HST images into the four "
                    "classes of Wei et al. (2020).")
    parser.add_argument("--version", action="version", version=f"%(prog)s {version}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (add_arguments, run) in SUBCOMMANDS.items():
        doc = (run.__doc__ or "").strip().splitlines()
        help_ = doc[0] if doc else None
        sp = sub.add_parser(name, parents=[common], help=help_, description=help_)
        add_arguments(sp)
        sp.set_defaults(_run=run)
    return parser


def _one_line(exc):
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def _show_warning(message, category, filename, lineno, file=None, line=None):
    print(f"{PROG}: warning: {cli_spelling(_one_line(message))}", file=sys.stderr)


def main(argv=None):
    """
    Run the ``astro-clustercls`` command line; return the exit status.

    Parameters
    ----------
    argv : list of str, optional
        The arguments (default ``sys.argv[1:]``).

    Returns
    -------
    int
        0 on success; 1 for errors in files or arguments (printed in one
        line); 2 for usage errors; 3 when no network weights are available;
        130 if interrupted.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors
        return int(exc.code or 0)
    debug = getattr(args, "debug", False)
    if getattr(args, "_run", None) is None:
        parser.print_help(sys.stderr)
        return 2
    with warnings.catch_warnings():
        if not debug:
            warnings.showwarning = _show_warning
        if not sys.warnoptions:  # a command line shows warnings, never raises them
            warnings.simplefilter("default")
        try:
            return int(args._run(args) or 0)
        except KeyboardInterrupt:
            if debug:
                raise
            hint = getattr(args, "interrupt_hint", None)  # set by resumable commands
            print(f"{PROG}: interrupted" + (f"; {hint}" if hint else ""),
                  file=sys.stderr)
            return 130
        except (CLIError, OSError, ValueError, TypeError, KeyError) as exc:
            if debug:
                raise
            print(f"{PROG}: error: {cli_spelling(_one_line(exc))}", file=sys.stderr)
            return exc.status if isinstance(exc, CLIError) else 1
