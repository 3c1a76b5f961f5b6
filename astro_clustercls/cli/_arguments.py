# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""
The options of each subcommand (argparse only: building the parser imports
nothing heavy, so ``astro-clustercls --help`` answers at once).
"""

__all__ = ["add_classify_arguments", "add_demo_arguments", "add_simulate_arguments",
           "add_train_arguments", "add_evaluate_arguments", "add_adapt_arguments",
           "add_experiments_arguments", "add_classifier_options",
           "add_labelled_arguments", "add_band_options"]


def add_band_options(parser, *, missing=True):
    """``--band-map`` (and ``--missing-bands``): the bands feeding the network."""
    group = parser.add_argument_group("bands")
    group.add_argument("--band-map", nargs="+", default=None,
                       metavar="NETWORK_BAND=IMAGE_BAND",
                       help="substitute bands: which image band feeds a band of the "
                            "network, e.g. --band-map F438W=F435W F555W=F606W for "
                            "ACS F435W or WFC3 F606W images; other bands are "
                            "matched by name")
    if missing:
        group.add_argument("--missing-bands", choices=("error", "zero"),
                           default="error",
                           help="a band the network needs is missing: error "
                                "(default) or feed zeros and flag BAND_MISSING")


def add_classifier_options(parser, *, with_weights=True, ensemble=False):
    group = parser.add_argument_group("classifier")
    if ensemble:
        # repeatable: several networks make an ensemble (the mode of their classes)
        group.add_argument("--model", action="append", default=None,
                           metavar="MODEL",
                           help="network: resnet18 (default) or vgg19_bn; several "
                                "(--model resnet18 --model vgg19_bn, or "
                                "--model resnet18,vgg19_bn) classify with an ensemble "
                                "(the mode of their classes and the fraction that "
                                "agree)")
        many = {"action": "append"}
        each = "; with several --model, give it once per model, in order"
    else:
        group.add_argument("--model", default="resnet18",
                           help="network: resnet18 (default) or vgg19_bn")
        many, each = {}, ""
    if with_weights:
        group.add_argument("--weights", default=None, **many,
                           help="bundled weights entry (default: the model's "
                                f"DEFAULT){each}")
    group.add_argument("--weights-path", default=None, metavar="FILE", **many,
                       help="external checkpoint (safetensors or a torch state "
                            f"dict){each}")
    group.add_argument("--weights-sha256", default=None, metavar="HEX", **many,
                       help="expected SHA-256 (or a prefix of >= 8 hex digits) of "
                            f"the --weights-path file{each}")
    group.add_argument("--device", default=None,
                       help="cpu, cuda, cuda:N, mps or auto (default: "
                            "astro_clustercls.conf.device)")
    group.add_argument("--batch-size", type=int, default=None, metavar="N",
                       help="cutouts per forward pass (results do not depend on it)")
    group.add_argument("--tta", action="store_true",
                       help="test-time augmentation over the 8 rotations/flips")
    group.add_argument("--no-ood", dest="ood", action="store_false",
                       help="skip the out-of-distribution score (the ood_score "
                            "column and the OUT_OF_DISTRIBUTION flag)")
    group.add_argument("--progress", action="store_true",
                       help="show progress bars even when stderr is not a terminal")


def add_classify_arguments(parser):
    parser.add_argument("--images", nargs="+", required=True, metavar="BAND=FILE",
                        help="one FITS image per band, e.g. F275W=f275w_drc.fits ...; "
                             "or FILE alone to read the band from the FILTER keyword")
    parser.add_argument("--hdu", default=None,
                        help="extension holding the image: a name (SCI), an index "
                             "(1) or NAME,VERSION (SCI,2 for the second chip of an "
                             "flt file); default: SCI if present, else the first 2D "
                             "HDU")
    parser.add_argument("--sources", required=True, metavar="TABLE",
                        help="source table (ECSV, FITS, CSV...: e.g. photutils output)")
    parser.add_argument("--sources-format", default=None, metavar="FORMAT",
                        help="astropy format of --sources if not guessed "
                             "(e.g. ascii.commented_header)")
    parser.add_argument("--out", required=True, metavar="FILE",
                        help="output ECSV table (input columns + classes)")
    parser.add_argument("--regions", default=None, metavar="FILE",
                        help="also write a DS9 region file coloured by class (in "
                             "sky coordinates when the images have a WCS)")
    parser.add_argument("--gallery", default=None, metavar="FILE.png",
                        help="also draw a gallery of cutouts per class (the most "
                             "probable; flagged ones marked; needs matplotlib)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace existing output files")
    pos = parser.add_argument_group("positions")
    pos.add_argument("--xcol", default=None, help="x pixel column")
    pos.add_argument("--ycol", default=None, help="y pixel column")
    pos.add_argument("--skycol", default=None,
                     help="SkyCoord column, or RA,DEC column names (degrees)")
    pos.add_argument("--origin", type=int, choices=(0, 1), default=0,
                     help="0 (default) for 0-based pixel positions, 1 for 1-based")
    add_classifier_options(parser, ensemble=True)
    add_band_options(parser)
    parser.add_argument("--confidence-threshold", type=float, default=None,
                        metavar="P", help="flag LOW_CONFIDENCE below this probability")


def add_demo_arguments(parser):
    parser.add_argument("--outdir", default="clustercls-demo", metavar="DIR",
                        help="output directory (default ./clustercls-demo); an "
                             "existing non-empty one needs --overwrite")
    parser.add_argument("--overwrite", action="store_true",
                        help="write into an existing non-empty --outdir, replacing "
                             "the demo's files there")
    parser.add_argument("--seed", type=int, default=1, help="simulation seed")
    parser.add_argument("--n-objects", type=int, default=150, metavar="N",
                        help="simulated objects (default 150)")
    parser.add_argument("--detect-band", default="F555W",
                        help="band used for detection (default F555W)")
    parser.add_argument("--match-radius", type=float, default=1.5, metavar="PIX",
                        help="detection-truth matching radius in pixels (default 1.5)")
    add_classifier_options(parser)


def add_simulate_arguments(parser):
    parser.add_argument("--outdir", required=True, metavar="DIR",
                        help="directory for one FITS file per band "
                             "(<band>_sim.fits) and truth.ecsv")
    parser.add_argument("--seed", type=int, default=0,
                        help="simulation seed (default %(default)s)")
    parser.add_argument("--n-objects", type=int, default=300, metavar="N",
                        help="objects to simulate (default %(default)s)")
    parser.add_argument("--shape", type=int, nargs=2, default=(1024, 1024),
                        metavar=("NY", "NX"), help="image shape (default 1024 1024)")
    parser.add_argument("--distance", type=float, default=10.0, metavar="MPC",
                        help="galaxy distance in Mpc (default %(default)g)")
    parser.add_argument("--simulator", choices=("v1", "v2"), default="v1",
                        help="simulator version: v1, what the bundled networks "
                             "were trained on, or v2 (young populations star by "
                             "star, field stars, HII regions, dust lanes, the "
                             "observing set-up drawn for the field); recorded as "
                             "SIMVERS in the FITS headers and simulator_version "
                             "in truth.ecsv (default %(default)s)")
    parser.add_argument("--acs-bands", nargs="+", type=str.upper, default=None,
                        choices=("F435W", "F606W"), metavar="BAND",
                        help="observe the F438W slot with ACS/WFC F435W and/or "
                             "the F555W slot with ACS/WFC F606W (their light, "
                             "PSF, zeropoint, sky and exposure); files and FILTER "
                             "keywords carry the true filter: classify with "
                             "--band-map F438W=F435W F555W=F606W (default: the "
                             "WFC3/UVIS bands)")
    parser.add_argument("--progress", action="store_true",
                        help="show a progress bar even when stderr is not a "
                             "terminal")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace existing files")


def add_labelled_arguments(parser):
    parser.add_argument("--images", nargs="+", required=True, metavar="BAND=FILE",
                        help="one FITS image per band (BAND=FILE, or FILE with a "
                             "FILTER keyword)")
    parser.add_argument("--sources", required=True, metavar="TABLE",
                        help="labelled source table (ECSV, FITS, ...)")
    parser.add_argument("--sources-format", default=None, metavar="FORMAT",
                        help="astropy format of --sources if not guessed")
    parser.add_argument("--label-col", default="cluster_class",
                        help="column of the true classes 1-4 (default cluster_class)")
    pos = parser.add_argument_group("positions")
    pos.add_argument("--xcol", default=None, help="x pixel column")
    pos.add_argument("--ycol", default=None, help="y pixel column")
    pos.add_argument("--skycol", default=None,
                     help="SkyCoord column, or RA,DEC column names (degrees)")
    pos.add_argument("--origin", type=int, choices=(0, 1), default=0,
                     help="0 (default) for 0-based pixel positions, 1 for 1-based")


def add_train_arguments(parser):
    add_labelled_arguments(parser)
    parser.add_argument("--model", default="resnet18",
                        help="network: resnet18 (default) or vgg19_bn")
    start = parser.add_mutually_exclusive_group()
    start.add_argument("--weights", default="DEFAULT",
                       help="bundled weights to start from (default DEFAULT)")
    start.add_argument("--weights-path", default=None, metavar="FILE",
                       help="start from this checkpoint instead")
    parser.add_argument("--out", required=True, metavar="FILE.safetensors",
                        help="where to write the fine-tuned weights (their meta "
                             "names the catalog and, for a simulated one such as "
                             "the truth.ecsv of 'simulate', its simulator "
                             "version)")
    training = parser.add_argument_group("training")
    training.add_argument("--epochs", type=int, default=10, metavar="N",
                          help="most epochs; training stops earlier when the "
                               "validation loss has not improved for 5 epochs "
                               "(default %(default)s)")
    training.add_argument("--lr", type=float, default=1e-4, metavar="RATE",
                          help="learning rate of AdamW, decayed to 0 over the "
                               "epochs (default %(default)g)")
    training.add_argument("--batch-size", type=int, default=128, metavar="N",
                          help="cutouts per training step (default %(default)s)")
    training.add_argument("--val-fraction", type=float, default=0.2, metavar="F",
                          help="fraction of each class held out to validate and to "
                               "pick the best epoch (default %(default)s)")
    training.add_argument("--seed", type=int, default=0,
                          help="seed of the split, shuffling and augmentation "
                               "(default %(default)s)")
    training.add_argument("--workdir", default=None, metavar="DIR",
                          help="checkpoint and per-epoch ECSV log (resumable)")
    training.add_argument("--resume", action="store_true",
                          help="continue from the checkpoint in --workdir")
    training.add_argument("--device", default=None,
                          help="cpu, cuda, cuda:N, mps or auto (default: "
                               "astro_clustercls.conf.device)")
    parser.add_argument("--progress", action="store_true",
                        help="show progress bars even when stderr is not a terminal")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing --out file")


def add_evaluate_arguments(parser):
    add_labelled_arguments(parser)
    add_classifier_options(parser)
    add_band_options(parser, missing=False)
    parser.add_argument("--out", default=None, metavar="FILE",
                        help="write the per-class report as ECSV")
    parser.add_argument("--overwrite", action="store_true")


def add_adapt_arguments(parser):
    # defaults as in astro_clustercls.training.adaptation.ADAPT_DEFAULTS (a test
    # checks they agree): typed here so that building the parser loads no torch
    parser.add_argument("--images", nargs="+", required=True, metavar="BAND=FILE",
                        help="one FITS image per band of YOUR field (electron/s), "
                             "e.g. F275W=f275w_drc.fits ...; or FILE alone to read "
                             "the band from the FILTER keyword")
    parser.add_argument("--hdu", default=None,
                        help="extension holding the image (default: SCI if "
                             "present, else the first 2D HDU)")
    parser.add_argument("--out", required=True, metavar="FILE.safetensors",
                        help="where to write the adapted weights")
    parser.add_argument("--report", default=None, metavar="FILE.ecsv",
                        help="per-class recall before and after, as ECSV "
                             "(default: the --out name with -report.ecsv)")
    field = parser.add_argument_group("your field")
    field.add_argument("--distance", type=float, required=True, metavar="MPC",
                       help="distance of the galaxy in Mpc (sets the size of the "
                            "injected clusters in pixels)")
    field.add_argument("--psf-fwhm", nargs="+", default=None, metavar="BAND=ARCSEC",
                       help="core FWHM of the PSF of each band in arcsec, e.g. "
                            "F275W=0.09 F814W=0.09 (default: the simulator's "
                            "drizzled WFC3/UVIS PSFs)")
    start = parser.add_argument_group("network")
    start.add_argument("--model", default="resnet18",
                       help="network: resnet18 (default) or vgg19_bn")
    which = start.add_mutually_exclusive_group()
    which.add_argument("--weights", default=None,
                       help="bundled weights to start from (default: the model's "
                            "DEFAULT)")
    which.add_argument("--weights-path", default=None, metavar="FILE",
                       help="start from this checkpoint instead")
    add_band_options(parser, missing=False)
    training = parser.add_argument_group("injection and fine-tuning")
    training.add_argument("--n-objects", type=int, default=4000, metavar="N",
                          help="simulated objects to inject, the four classes in "
                               "equal numbers (default %(default)s)")
    training.add_argument("--test-fraction", type=float, default=0.25, metavar="F",
                          help="fraction of them held back to measure the recall "
                               "before and after, never trained on (default "
                               "%(default)s)")
    training.add_argument("--epochs", type=int, default=3, metavar="N",
                          help="epochs of fine-tuning (default %(default)s)")
    training.add_argument("--lr", type=float, default=1e-4, metavar="RATE",
                          help="learning rate (default %(default)g)")
    training.add_argument("--batch-size", type=int, default=64, metavar="N",
                          help="cutouts per training step (default %(default)s)")
    training.add_argument("--seed", type=int, default=0,
                          help="seed of the injection, split and training "
                               "(default %(default)s)")
    training.add_argument("--workdir", default=None, metavar="DIR",
                          help="keep the injected cutouts, a checkpoint and the "
                               "per-epoch log here (resumable with --resume)")
    training.add_argument("--resume", action="store_true",
                          help="continue an interrupted run from --workdir")
    training.add_argument("--device", default=None,
                          help="cpu, cuda, cuda:N, mps or auto (default: "
                               "astro_clustercls.conf.device)")
    parser.add_argument("--progress", action="store_true",
                        help="show progress bars even when stderr is not a terminal")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace existing --out/--report files")


# the experiments' architectures and label sets, as in
# astro_clustercls.evaluation.experiments (BUNDLED_RECIPES, LABEL_SETS; a test
# checks they agree): typed here so that building the parser loads no torch
_ARCHS = ("resnet18", "vgg19_bn")
_LABEL_SETS = ("truth", "consensus", "single_expert")
# evaluation.transfer's RENDERERS and ABLATION_VARIANTS (spelled out here so
# that the parser imports nothing heavy; a test checks they agree)
_RENDERERS = ("v1", "v2", "galsim")
_ABLATION_VARIANTS = ("none", "blur", "shift", "gain", "noise", "gradient", "all")


def _add_table_options(parser, *, rst=True):
    """The options every table-making command shares."""
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (1 for bit-reproducible bf16)")
    parser.add_argument("--out", default=None, help="write the table as ECSV here")
    if rst:
        parser.add_argument("--rst", default=None, help="write the table as RST here")


def _add_short_training_options(parser):
    """The sets and length of the short trainings of ``cross`` and ``ablation``."""
    parser.add_argument("--size", type=int, default=31, help="cutout side (default 31)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-train", type=int, default=6000)
    parser.add_argument("--n-val", type=int, default=1000)
    parser.add_argument("--n-test", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=4)


def add_experiments_arguments(parser):
    sub = parser.add_subparsers(dest="experiment", required=True, metavar="EXPERIMENT")
    p = sub.add_parser("bundled", help="train a bundled network from its recipe")
    p.add_argument("--arch", required=True, choices=_ARCHS)
    p.add_argument("--member", default=None,
                   help="which recipe of RECIPES (default: the bundled default's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workdir", default="runs/bundled")
    p.add_argument("--no-resume", action="store_true")
    p.add_argument("--register", action="store_true",
                   help="write the weights into the package's bundled registry")
    p.add_argument("--device", default=None)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--quick", action="store_true",
                   help="a tiny run to check the pipeline (never registered)")
    g = sub.add_parser("grid", help="the paper's experiment grid (nothing registered)")
    g.add_argument("--archs", nargs="+", default=["resnet18"],
                   choices=_ARCHS)
    g.add_argument("--label-sets", nargs="+", default=list(_LABEL_SETS),
                   choices=_LABEL_SETS)
    g.add_argument("--sizes", nargs="+", type=int, default=[25, 51])
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--n-train", type=int, default=12000)
    g.add_argument("--epochs", type=int, default=4)
    g.add_argument("--workdir", default="runs/grid")
    _add_table_options(g)
    t = sub.add_parser("table", help="merge grid ECSV tables into one RST table")
    t.add_argument("tables", nargs="+", help="ECSV files written by 'grid --out'")
    t.add_argument("--rst", required=True, help="write the merged table here")
    d = sub.add_parser("dropout", help="band dropout in training vs a missing band")
    d.add_argument("--dropouts", nargs="+", type=float, default=[0.0, 0.05, 0.3])
    d.add_argument("--size", type=int, default=25)
    d.add_argument("--n-train", type=int, default=12000)
    d.add_argument("--epochs", type=int, default=4)
    d.add_argument("--workdir", default="runs/dropout")
    _add_table_options(d, rst=False)
    o = sub.add_parser("options", help="what TTA, an ensemble, temperature scaling "
                       "and a missing band do on the held-out galaxy")
    o.add_argument("--models", nargs="+", default=["resnet18", "vgg19_bn"],
                   choices=_ARCHS)
    o.add_argument("--n-test", type=int, default=8000)
    o.add_argument("--n-val", type=int, default=4000)
    o.add_argument("--adapt", type=int, default=0, metavar="N",
                   help="also fine-tune each network on N objects simulated in the "
                   "held-out field's conditions")
    _add_table_options(o)
    c = sub.add_parser("cross", help="train on renderers (simulator v1/v2, GalSim), "
                       "test on all; the bundled networks on all")
    c.add_argument("--arch", default="resnet18", choices=_ARCHS)
    c.add_argument("--trained-on", nargs="+", default=["v2", "galsim"],
                   choices=_RENDERERS, help="renderers trained on (default v2 galsim)")
    c.add_argument("--tested-on", nargs="+", default=list(_RENDERERS),
                   choices=_RENDERERS, help="renderers tested on (default all)")
    c.add_argument("--transfer", action="store_true",
                   help="train with the transfer augmentation")
    _add_short_training_options(c)
    c.add_argument("--bundled", nargs="*", default=["resnet18", "vgg19_bn"],
                   choices=_ARCHS, help="bundled networks also tested (none: empty)")
    _add_table_options(c)
    a = sub.add_parser("ablation", help="train on simulator v2 with one transfer "
                       "augmentation at a time; test on v2's held-out galaxy and "
                       "GalSim")
    a.add_argument("--arch", default="resnet18", choices=_ARCHS)
    a.add_argument("--variants", nargs="+", default=list(_ABLATION_VARIANTS),
                   choices=_ABLATION_VARIANTS)
    a.add_argument("--tested-on", nargs="+", default=["v2", "galsim"],
                   choices=_RENDERERS)
    _add_short_training_options(a)
    _add_table_options(a)
    d = sub.add_parser("ood", help="fit a bundled network's out-of-distribution "
                       "statistics and measure the flag's rates")
    d.add_argument("--arch", default="resnet18", choices=_ARCHS)
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--n-train", type=int, default=6000,
                   help="simulated objects for the feature Gaussians (default 6000)")
    d.add_argument("--n-val", type=int, default=3000,
                   help="simulated objects for the threshold (default 3000)")
    d.add_argument("--fpr", type=float, default=0.003,
                   help="fraction of validation objects above the Gaussian "
                   "threshold (default 0.003)")
    d.add_argument("--n-components", type=int, default=32)
    d.add_argument("--n-test", type=int, default=1000,
                   help="objects per set in the rates table (default 1000)")
    d.add_argument("--register", action="store_true",
                   help="store the statistics with the bundled weights")
    _add_table_options(d)
