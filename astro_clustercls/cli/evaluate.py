# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""``astro-clustercls evaluate``: per-class accuracy on a labelled catalog."""

from ..data.images import BandImages
from ..evaluation.metrics import compare_with_paper, evaluate
from ..io.export import write_table
from ._common import (
    PROG,
    check_output,
    count,
    make_classifier,
    parse_images,
    read_sources,
    skycol,
    stage,
)

__all__ = ["run"]

def run(args):
    """Classify a labelled catalog and report per-class accuracy vs the paper."""
    out = check_output(args.out, args.overwrite, "--out")
    clf = make_classifier(args)
    images = BandImages.from_files(parse_images(args.images))
    sources = read_sources(args.sources, args.sources_format)
    stage(args, f"classifying {count(len(sources))} labelled sources...")
    report = evaluate(clf, sources, images, label_col=args.label_col, xcol=args.xcol,
                      ycol=args.ycol, skycol=skycol(args.skycol), origin=args.origin)
    print(f"{PROG}: evaluated {report.meta['n_evaluated']} labelled sources "
          f"(overall accuracy {report.meta['overall_accuracy']:.3f})")
    comparison = compare_with_paper(report)
    for table in (report, comparison):
        for name in table.colnames:
            if table[name].dtype.kind == "f":
                table[name].info.format = ".3f"
    report.pprint(max_width=-1)
    print("\nagainst Wei et al. 2020 (NGC 1559) and human consistency:")
    comparison.pprint(max_width=-1)
    if out is not None:
        write_table(report, out, overwrite=args.overwrite)
        print(f"wrote {out}")
    return 0
