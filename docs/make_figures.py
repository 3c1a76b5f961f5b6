# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
Make the tutorials' figures by running the tutorials themselves.

Each tutorial page's code (its doctest examples) runs, in order, in a temporary
directory; the figures it saves there are copied into ``docs/_static/tutorials``,
which the pages show. The figures are thus exactly what the page's code makes.
Run it again whenever the bundled weights, the simulator or the plots change::

    python docs/make_figures.py                 # all pages
    python docs/make_figures.py fine_tune.rst   # one page
    python docs/make_figures.py --show-outputs  # also print the examples'
                                                # actual outputs
    python docs/make_figures.py --update-outputs  # write them into the pages
                                                  # (IGNORE_OUTPUT examples)

The pages use the bundled networks.
"""

import argparse
import contextlib
import doctest
import io
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "_static" / "tutorials"

#: page -> {file the page's code saves: file name in _static/tutorials}
FIGURES = {
    "classify_fits.rst": {"gallery.png": "classify_fits_gallery.png",
                          "gallery_truth.png": "classify_fits_gallery_truth.png"},
    "fine_tune.rst": {"confusion.png": "fine_tune_confusion.png",
                      "reliability.png": "fine_tune_reliability.png"},
}


def run_page(path, workdir, *, show_outputs=False, update_outputs=False):
    """
    Run the doctest examples of an .rst page in ``workdir``; return seconds.

    With ``update_outputs``, the shown output of every ``IGNORE_OUTPUT``
    example is replaced in the page by the output it gives now.
    """
    for flag in ("IGNORE_OUTPUT", "FLOAT_CMP", "REMOTE_DATA", "IGNORE_WARNINGS",
                 "SHOW_WARNINGS"):  # pytest-doctestplus's options
        doctest.register_optionflag(flag)
    test = doctest.DocTestParser().get_doctest(
        Path(path).read_text(encoding="utf-8"), {}, Path(path).name, str(path), 0)
    namespace = {"__name__": "__main__"}
    outputs = []
    old = os.getcwd()
    os.chdir(workdir)
    t0 = time.perf_counter()
    try:
        for example in test.examples:
            buffer = io.StringIO()
            with contextlib.redirect_stdout(buffer):
                exec(compile(example.source, str(path), "single"), namespace)
            if "IGNORE_OUTPUT" in example.source:
                outputs.append((example, buffer.getvalue()))
                if show_outputs:
                    print(f">>> {example.source.rstrip()}")
                    print(buffer.getvalue())
    finally:
        os.chdir(old)
    seconds = time.perf_counter() - t0
    if update_outputs:
        _write_outputs(path, outputs)
    return seconds


def _write_outputs(path, outputs):
    """Replace the shown outputs of ``outputs`` [(example, text)] in the page."""
    lines = Path(path).read_text(encoding="utf-8").split("\n")
    for example, text in sorted(outputs, key=lambda o: -o[0].lineno):
        start = example.lineno + example.source.count("\n")
        end = start + example.want.count("\n")
        new = [" " * example.indent + line if line.strip() else ""
               for line in text.rstrip("\n").split("\n")] if text.strip() else []
        lines[start:end] = new
    Path(path).write_text("\n".join(lines), encoding="utf-8")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pages", nargs="*", default=sorted(FIGURES),
                        help="tutorial pages (default: all with figures)")
    parser.add_argument("--show-outputs", action="store_true")
    parser.add_argument("--update-outputs", action="store_true")
    args = parser.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    OUT.mkdir(parents=True, exist_ok=True)
    for page in args.pages:
        with tempfile.TemporaryDirectory() as work:
            seconds = run_page(HERE / "tutorials" / page, work,
                               show_outputs=args.show_outputs,
                               update_outputs=args.update_outputs)
            for made, name in FIGURES.get(page, {}).items():
                shutil.copyfile(Path(work) / made, OUT / name)
                print(f"{page}: wrote {OUT / name}")
        print(f"{page}: ran in {seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
