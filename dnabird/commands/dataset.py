"""``dnabird make-dataset``: a multi-label chromatin dataset from a genome and peak files.

Each ``--peaks [NAME=]FILE[,FILE...]`` is one track (several files, e.g. the train and test
halves of one class, make one track); each ``--tracks-in FILE`` is a BED whose column 4
names each peak's track (one track per name, sorted). Tracks are columns in the order given.
Peak files: BED, narrowPeak or interval CSV (``chrom``/``region``, ``start``, ``end``),
gzip or plain. The real 16-track dataset of ``../shared/data`` (1 CTCF + 12 brain + 3
Ensembl tracks; test the last ~15% of the excerpt, validation the ~10% before it)::

    D=../shared/data/chromatin; E=$D/ensembl_regulatory_GRCh38
    dnabird make-dataset --genome ../shared/data/genome/hg38_chr2_1-2333275.fa.gz \\
        --peaks CTCF=$D/ENCFF252PLM_CTCF_GRCh38.narrowPeak.gz \\
        --tracks-in $D/nott2019_brain_peaks_hg38_chr2_1-2333275.bed \\
        --peaks enhancer=$E/train/enhancer.csv.gz,$E/test/enhancer.csv.gz \\
        --peaks ocr=$E/train/ocr.csv.gz,$E/test/ocr.csv.gz \\
        --peaks promoter=$E/train/promoter.csv.gz,$E/test/promoter.csv.gz \\
        --test chr2:1980000-2333275 --validation chr2:1747000-1980000 \\
        --bin 200 --flank 400 --out chromatin_ds/

What it does and writes: :mod:`dnabird.data.peak_dataset`.
"""

from __future__ import annotations

import argparse
import math

from dnabird.commands._types import at_least, between


def _negatives(text: str) -> float | str:
    """``all`` or a ratio >= 0."""
    if text == "all":
        return text
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a ratio or 'all', got {text!r}") from None
    if not 0 <= value < math.inf:
        raise argparse.ArgumentTypeError(f"must be a ratio >= 0 or 'all', got {text}")
    return value


def _items(values: list[str] | None) -> tuple[str, ...]:
    """Comma lists given once or repeated, flattened."""
    return tuple(part for value in values or () for part in value.split(",") if part)


def _run(args: argparse.Namespace) -> None:
    from dnabird.data.peak_dataset import DatasetOptions, make_dataset
    from dnabird.data.peaks import TrackSource
    from dnabird.errors import ConfigError

    if not args.tracks:
        raise ConfigError("no peaks; give --peaks [NAME=]FILE[,FILE...] or --tracks-in FILE")
    sources = [
        TrackSource.parse(text) if kind == "peaks" else TrackSource.column(text)
        for kind, text in args.tracks
    ]
    options = DatasetOptions(
        bin_size=args.bin,
        flank=args.flank,
        min_overlap=args.min_overlap,
        max_n=args.max_n,
        negatives=args.negatives,
        seed=args.seed,
        test=_items(args.test),
        validation=_items(args.validation),
        gap=args.gap,
        chromosomes=_items(args.chromosomes) or None,
        shard_size=args.shard_size,
    )
    manifest = make_dataset(
        args.genome, sources, args.out, options, overwrite=args.overwrite, cache_dir=args.cache_dir
    )
    print(summary(manifest, args.out))


def summary(manifest: dict, out: str) -> str:
    """One paragraph: rows per split, window size, positives per track (train / validation
    / test), bins skipped by reason, peaks skipped, time and where."""
    from dnabird.data.splits import SPLITS

    params, counts = manifest["parameters"], manifest["counts"]
    splits = {name: counts["splits"][name] for name in SPLITS}  # the manifest sorts keys
    bins = counts["bins"]
    window = params["bin_size"] + 2 * params["flank"]
    rows = ", ".join(f"{name} {s['rows']:,}" for name, s in splits.items() if s["rows"])
    total_bins = sum(c["bins"] for c in bins.values())
    positives = "; ".join(
        f"{track} " + "/".join(f"{s['positives'][track]:,}" for s in splits.values())
        for track in manifest["features"]["names"]
    )
    skipped = {key: sum(c[key] for c in bins.values()) for key in ("n_rich", "near_other_split")}
    negatives = sum(c["negative"] for c in bins.values())
    kept = sum(c["negative_kept"] for c in bins.values())
    text = (
        f"Made {sum(s['rows'] for s in splits.values()):,} examples ({rows}) of {window:,} bp "
        f"(bin {params['bin_size']} + 2 x {params['flank']} flank) from {total_bins:,} bins of "
        f"{len(manifest['chromosomes'])} chromosome(s) and {len(manifest['features']['ids'])} "
        f"track(s) in {manifest.get('seconds', 0):.1f} s -> {out} "
        f"({len(manifest['shards'])} shard(s)). Positives per track (train/validation/test): "
        f"{positives}. Bins skipped: {skipped['n_rich']:,} mostly N, "
        f"{skipped['near_other_split']:,} within {params['gap']:,} bp of another split; "
        f"all-negative bins kept: {kept:,} of {negatives:,} (ratio {params['negatives']}, "
        f"seed {params['seed']})."
    )
    peaks = {
        key: sum(t["peaks"][key] for t in manifest["tracks"])
        for key in ("other_chromosome", "beyond_end")
    }
    if any(peaks.values()):
        text += (
            f" Peaks skipped: {peaks['other_chromosome']:,} on chromosomes not binned, "
            f"{peaks['beyond_end']:,} beyond a chromosome's end."
        )
    return text


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``make-dataset`` subcommand."""
    cmd = subparsers.add_parser(
        "make-dataset",
        help="multi-label chromatin dataset: genome bins labelled by peak files (Parquet)",
        description="Cut the genome into bins, label each bin per track by peak overlap, keep "
        "bins with a positive plus sampled negatives, attach flanking sequence and write "
        "train/validation/test Parquet shards split by chromosomes or regions.",
    )
    cmd.add_argument("--genome", required=True, help="FASTA: plain, gzip or bgzip")
    cmd.add_argument("--out", required=True, help="output folder (created; resumable)")
    cmd.add_argument(
        "--peaks",
        dest="tracks",
        action="append",
        type=lambda text: ("peaks", text),
        metavar="[NAME=]FILE[,FILE...]",
        help="one track from BED / narrowPeak / interval-CSV files, gzip or plain (repeat "
        "for more tracks; NAME defaults to the file name)",
    )
    cmd.add_argument(
        "--tracks-in",
        dest="tracks",
        action="append",
        type=lambda text: ("column", text),
        metavar="FILE",
        help="a BED whose column 4 names each peak's track: one track per name",
    )
    cmd.add_argument("--bin", type=at_least(1), default=200, metavar="BP", help="bin length")
    cmd.add_argument(
        "--flank", type=at_least(0), default=400, metavar="BP", help="sequence added on each side"
    )
    cmd.add_argument(
        "--min-overlap",
        type=between(0, 1, closed=True),
        default=0.5,
        metavar="SHARE",
        help="share of a bin, in (0, 1], a track's peaks must cover for label 1",
    )
    cmd.add_argument(
        "--max-n",
        type=between(0, 1, closed=True),
        default=0.5,
        metavar="SHARE",
        help="skip bins whose own bases are more N than this share",
    )
    cmd.add_argument(
        "--negatives",
        type=_negatives,
        default=1.0,
        metavar="RATIO|all",
        help="all-negative bins kept per positive bin (per chromosome and split), or 'all'",
    )
    cmd.add_argument("--seed", type=int, default=0, help="seed of the negative sampling")
    cmd.add_argument(
        "--test",
        action="append",
        metavar="CHROM|CHROM:START-END[,...]",
        required=True,
        help="test chromosomes or regions (0-based, half-open)",
    )
    cmd.add_argument(
        "--validation",
        action="append",
        metavar="CHROM|CHROM:START-END[,...]",
        help="validation chromosomes or regions; everything else is train",
    )
    cmd.add_argument(
        "--gap",
        type=at_least(0),
        metavar="BP",
        help="drop bins within this many bp of another split's region (default: --flank, "
        "so no sequence is shared between splits)",
    )
    cmd.add_argument(
        "--chromosomes",
        action="append",
        metavar="NAME[,...]",
        help="chromosomes to bin (default: every record)",
    )
    cmd.add_argument(
        "--shard-size", type=at_least(1), default=10_000, metavar="ROWS", help="rows per shard"
    )
    cmd.add_argument("--overwrite", action="store_true", help="replace what --out holds")
    cmd.add_argument("--cache-dir", help="FASTA index cache (default: the dnabird cache)")
    cmd.set_defaults(func=_run)
