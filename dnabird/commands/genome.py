"""``dnabird preprocess`` and ``dnabird fetch-genome``: reference genome -> documents."""

from __future__ import annotations

import argparse


def _run_preprocess(args: argparse.Namespace) -> None:
    from dnabird.genome import CuttingParams, PreprocessOptions, preprocess

    options = PreprocessOptions(
        passes=args.passes,
        seed=args.seed,
        workers=args.workers,
        chromosomes=tuple(args.chromosomes) if args.chromosomes else None,
        min_length=args.min_length,
        both_strands=args.both_strands,
        keep_case=args.keep_case,
        max_shard_bp=args.max_shard_bp,
        cutting=CuttingParams(
            min_sentence=args.min_sentence,
            max_sentence=args.max_sentence,
            min_doc=args.min_doc,
            max_doc=args.max_doc,
            max_n_run=args.max_n_run,
            max_n_fraction=args.max_n_fraction,
        ),
        assembly=args.assembly,
        overwrite=args.overwrite,
        cache_dir=args.cache_dir,
    )
    manifest = preprocess(args.fasta, args.out, options)
    print(summary(manifest, args.out))


def summary(manifest: dict, out: str) -> str:
    """One paragraph: what was cut, counts, what was skipped or dropped, time, where."""
    total = manifest["counts"]["total"]
    chroms = manifest["chromosomes"]
    skipped = manifest["skipped"]
    params = manifest["parameters"]
    text = (
        f"Cut {len(chroms)} chromosome(s) ({sum(c['length'] for c in chroms):,} bp) x "
        f"{params['passes']} pass(es) into {total.get('documents', 0):,} documents, "
        f"{total.get('sentences', 0):,} sentences, {total.get('bp', 0):,} bp "
        f"({len(manifest['shards'])} shard(s)) in {manifest.get('seconds', 0):.1f} s -> {out}. "
        f"Gaps (N runs >= {params['max_n_run']}): "
        f"{total.get('gap_bp', 0) // params['passes']:,} bp per pass; "
        f"N-rich sentences dropped: {total.get('n_rich_sentences_dropped', 0):,}; "
        f"bp in segments too short for a sentence: {total.get('short_segment_bp', 0):,}."
    )
    ambiguous = sum(c["ambiguous_to_n"] for c in chroms)
    if ambiguous:
        text += f" IUPAC ambiguity codes written as N: {ambiguous:,}."
    if skipped:
        shown = ", ".join(f"{n} ({r})" for n, r in list(skipped.items())[:5])
        more = f" and {len(skipped) - 5} more" if len(skipped) > 5 else ""
        text += f" Skipped {len(skipped)} record(s): {shown}{more}."
    check = manifest.get("assembly_check")
    if check and check["mismatched"]:
        text += (
            f" WARNING: {len(check['mismatched'])} chromosome length(s) differ from "
            f"{check['assembly']}."
        )
    return text


def _run_fetch(args: argparse.Namespace) -> None:
    from dnabird.genome.fetch import fetch_genome

    path = fetch_genome(
        args.assembly,
        args.out,
        source=args.source,
        url=args.url,
        sha256=args.sha256,
        md5=args.md5,
        verify=not args.no_verify,
    )
    print(f"{args.assembly}: {path} ({path.stat().st_size:,} bytes)")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``preprocess`` and ``fetch-genome`` subcommands."""
    pre = subparsers.add_parser(
        "preprocess",
        help="cut a reference FASTA into documents of sentences (Parquet shards)",
        description="Cut each chromosome, in each of --passes independent passes, into "
        "sentences of 500-1000 bp grouped into documents of 50-100 sentences (BigBird recipe).",
    )
    pre.add_argument("fasta", help="FASTA file: plain, gzip or bgzip")
    pre.add_argument("--out", required=True, help="output folder (created; resumable)")
    pre.add_argument("--passes", type=int, default=10, help="independent passes")
    pre.add_argument("--seed", type=int, default=0, help="seed of all cuts")
    pre.add_argument("--workers", type=int, default=1, help="processes (output is identical)")
    pre.add_argument(
        "--chromosomes", nargs="+", help="records to cut (chr1 or 1); if not given: chr1-22, X, Y"
    )
    pre.add_argument(
        "--min-length",
        type=int,
        default=1_000_000,
        help="skip non-primary records shorter than this unless listed; 0 keeps every record",
    )
    pre.add_argument("--both-strands", action="store_true", help="also write reverse complements")
    pre.add_argument("--keep-case", action="store_true", help="keep soft-masking (lowercase)")
    pre.add_argument("--min-sentence", type=int, default=500, help="shortest sentence, bp")
    pre.add_argument("--max-sentence", type=int, default=1000, help="longest sentence, bp")
    pre.add_argument("--min-doc", type=int, default=50, help="fewest sentences per document")
    pre.add_argument("--max-doc", type=int, default=100, help="most sentences per document")
    pre.add_argument("--max-n-run", type=int, default=50, help="N runs this long end documents")
    pre.add_argument(
        "--max-n-fraction",
        type=float,
        default=0.1,
        help="drop sentences with a larger N fraction",
    )
    pre.add_argument(
        "--max-shard-bp",
        type=int,
        default=100_000_000,
        help="bp per shard at most; short records are grouped up to it",
    )
    pre.add_argument(
        "--assembly", help="expected assembly (e.g. grch37): warn if chromosome lengths differ"
    )
    pre.add_argument("--overwrite", action="store_true", help="redo everything in --out")
    pre.add_argument(
        "--cache-dir",
        help="index and decompressed-copy cache (if not given: OUT/.cache, removed)",
    )
    pre.set_defaults(func=_run_preprocess)

    fetch = subparsers.add_parser(
        "fetch-genome",
        help="download a reference assembly (resumable, checksum-verified)",
    )
    fetch.add_argument("assembly", help="assembly name, e.g. grch37 (see data_manifests/)")
    fetch.add_argument("--out", required=True, help="folder to download into")
    fetch.add_argument(
        "--source", help="manifest source (ucsc, ensembl); if not given: the manifest's"
    )
    fetch.add_argument("--url", help="replace the source URL (https://, file:// or a local path)")
    checksum = fetch.add_mutually_exclusive_group()
    checksum.add_argument("--sha256", help="expected sha256 of the file (64 hex digits)")
    checksum.add_argument("--md5", help="expected md5 of the file (32 hex digits)")
    fetch.add_argument(
        "--no-verify", action="store_true", help="accept the file without a checksum"
    )
    fetch.set_defaults(func=_run_fetch)
