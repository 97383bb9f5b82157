"""``dnabird predict``, ``variant-effect``, ``ism`` and ``embed``: a fine-tuned (or, for
``embed``, any) model folder applied to FASTA, BED + genome or VCF files
(:mod:`dnabird.predict`)."""

from __future__ import annotations

import argparse

from dnabird.commands._types import at_least, device
from dnabird.model.config import INFERENCE_PRECISIONS, STRAND_MODES

_OUTPUT_HELP = (
    "output file; its extension picks the format: .tsv, .h5 or .parquet (a .NA file of "
    "the rows not scored and a .manifest.json are written beside it)"
)


def _features(text: str) -> list[str]:
    return [item for item in text.split(",") if item]


def _add_device_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device", type=device, help="cpu, cuda or cuda:N (default: cuda when available)"
    )
    parser.add_argument(
        "--precision",
        choices=INFERENCE_PRECISIONS,
        default="32-true",
        help="32-true: float32 throughout; bf16-mixed: matrix products in bfloat16 under "
        "autocast (faster on GPUs and on CPUs with bfloat16 instructions, several times "
        "slower on CPUs without them; outputs differ from float32's in the second or third "
        "decimal)",
    )


def _add_model_options(parser: argparse.ArgumentParser, *, window: bool = True) -> None:
    parser.add_argument("--model", required=True, help="fine-tuned model folder (OUT/model)")
    parser.add_argument("--batch-size", type=at_least(1), default=64, help="windows per batch")
    _add_device_options(parser)
    parser.add_argument(
        "--rc",
        choices=STRAND_MODES,
        help="combine each window's prediction with its reverse complement's: mean, max, or "
        "none (forward strand only); default: as the model was trained (mean for a model "
        "trained with average_strands)",
    )
    parser.add_argument(
        "--features",
        type=_features,
        help="output only these features: comma-separated ids, names or categories (e.g. "
        "TF), or a file with one per line; default: all",
    )
    if window:
        parser.add_argument(
            "--window-bp",
            type=at_least(1),
            help="bp per window (default: the model's training window)",
        )


def _add_parallel_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--devices",
        type=at_least(1),
        default=1,
        help="processes per machine (Lightning DDP; gloo on CPU, NCCL on GPUs); the parts "
        "are merged in input order into the file one process writes",
    )
    parser.add_argument(
        "--num-nodes",
        type=at_least(1),
        default=1,
        help="machines (under torchrun or SLURM; the output folder must be shared)",
    )


def _model_options(args: argparse.Namespace) -> dict:
    return {
        "rc": args.rc,
        "features": args.features[0]
        if args.features and len(args.features) == 1
        else args.features,
        "batch_size": args.batch_size,
        "device": args.device,
        "precision": args.precision,
        "window_bp": args.window_bp,
    }


def _report(summary, what: str, source: str) -> None:
    if summary is None:  # a process other than the first: process 0 reports
        return
    outputs = ", ".join(str(p) for p in summary.outputs)
    skipped = (
        f"{summary.not_scored:,} not scored, listed with the reason in {summary.na_path}"
        if summary.not_scored
        else "every row scored"
    )
    print(
        f"Scored {summary.rows:,} {what} of {source} in {summary.seconds:.1f} s "
        f"({summary.processes} process(es)) into {outputs}; {skipped}; manifest "
        f"{summary.manifest_path}."
    )


def _run_predict(args: argparse.Namespace) -> None:
    from dnabird.outputs import check_writable_file
    from dnabird.predict.api import predict_to_file
    from dnabird.predict.writers import output_format

    output_format(args.output)
    check_writable_file(args.output)  # before the work, not after it
    summary = predict_to_file(
        args.model,
        args.output,
        fasta=args.fasta,
        bed=args.bed,
        genome=args.genome,
        stride_bp=args.stride_bp,
        devices=args.devices,
        num_nodes=args.num_nodes,
        **_model_options(args),
    )
    _report(summary, "windows", args.fasta or args.bed)


def _run_variant_effect(args: argparse.Namespace) -> None:
    from dnabird.outputs import check_writable_file
    from dnabird.predict.api import variant_effect_to_file
    from dnabird.predict.variants import check_scores
    from dnabird.predict.writers import output_format

    output_format(args.output)
    check_scores(args.scores)
    check_writable_file(args.output)
    summary = variant_effect_to_file(
        args.model,
        args.output,
        vcf=args.vcf,
        genome=args.genome,
        scores=args.scores,
        info_fields=args.info or (),
        skip_ref_mismatch=args.skip_ref_mismatch,
        devices=args.devices,
        num_nodes=args.num_nodes,
        **_model_options(args),
    )
    _report(summary, "alleles", args.vcf)
    if summary is not None and summary.ref_mismatches:
        fate = "sent to the .NA file" if args.skip_ref_mismatch else "scored with ref_match False"
        print(
            f"Warning: {summary.ref_mismatches:,} allele(s) have a REF that differs from "
            f"{args.genome} ({fate}); is the VCF on this assembly?"
        )


def _run_ism(args: argparse.Namespace) -> None:
    from dnabird.outputs import check_writable_file
    from dnabird.predict.api import ism

    check_writable_file(args.output)
    plot = args.plot or str(args.output).rsplit(".", 1)[0] + ".png"
    result = ism(
        args.model,
        region=args.region,
        genome=args.genome,
        fasta=args.fasta,
        record=args.record,
        out=args.output,
        plot=plot,
        plot_features=args.plot_features,
        **_model_options(args),
    )
    positions, _, features = result.effects.shape
    print(
        f"Scored {positions * 3:,} substitutions over {positions:,} bp of {result.name} "
        f"({features} features, window {result.window_bp:,} bp) into {args.output}; heatmap "
        f"{plot}."
    )


def _run_embed(args: argparse.Namespace) -> None:
    from dnabird.outputs import check_writable_file
    from dnabird.predict.embeddings import embed_fasta

    check_writable_file(args.output)
    summary = embed_fasta(
        args.model,
        args.fasta,
        args.output,
        pool=args.pool,
        per_token=args.per_token,
        batch_size=args.batch_size,
        max_length=args.max_length,
        device=args.device,
        precision=args.precision,
    )
    tokens = f" and {summary.tokens:,} token embeddings" if args.per_token else ""
    print(
        f"Embedded {summary.sequences:,} sequences of {args.fasta}{tokens} ({summary.width} "
        f"values each, {args.pool} pooling, window {summary.window} tokens) into "
        f"{summary.path}."
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``predict``, ``variant-effect``, ``ism`` and ``embed`` subcommands."""
    pr = subparsers.add_parser(
        "predict",
        help="predict every window of a FASTA, or of BED intervals on a genome",
        description="Score fixed bp windows with a fine-tuned model: every FASTA record "
        "(centred and padded with N when shorter than the window, sliding windows when "
        "longer), or a window centred on each BED interval (strand-aware) fetched from the "
        "genome. One row per window: identifier columns (FASTA: index name start end; BED: "
        "index chrom start end strand contains_unk), then one column per feature or class. "
        "Rows that cannot be scored go to the .NA file with the reason. Streamed in "
        "batches; written atomically.",
    )
    source = pr.add_mutually_exclusive_group(required=True)
    source.add_argument("--fasta", help="FASTA (plain, gzip or bgzip) of sequences to score")
    source.add_argument("--bed", help="BED intervals (with --genome) to score")
    pr.add_argument("--genome", help="reference FASTA the BED intervals refer to")
    pr.add_argument("-o", "--output", required=True, help=_OUTPUT_HELP)
    pr.add_argument(
        "--stride-bp",
        type=at_least(1),
        help="FASTA records longer than the window: bp between window starts (default: the "
        "window, i.e. adjacent windows)",
    )
    _add_model_options(pr)
    _add_parallel_options(pr)
    pr.set_defaults(func=_run_predict)

    ve = subparsers.add_parser(
        "variant-effect",
        help="score VCF variants: predictions of the reference and alternative windows",
        description="For every ALT allele of a VCF (plain, gzip or bgzip; multi-allelic "
        "records split), score a window of the reference and one with the allele; both "
        "windows start window-bp // 2 bp before the variant. REF is checked against the "
        "genome (ref_match column; mismatches counted and reported). Columns: chrom pos name "
        "ref alt strand ref_match contains_unk, then the features; one file per score "
        "(STEM.SCORE.EXT) when several are asked for, one dataset each in HDF5.",
    )
    ve.add_argument("--vcf", required=True, help="VCF file of the variants")
    ve.add_argument("--genome", required=True, help="reference FASTA of the VCF's assembly")
    ve.add_argument("-o", "--output", required=True, help=_OUTPUT_HELP)
    ve.add_argument(
        "--scores",
        type=_features,
        default="diff",
        help="comma-separated: ref, alt, diff (alt - ref), abs_diff, logit_diff (log-odds "
        "ratio); default diff",
    )
    ve.add_argument(
        "--info",
        type=_features,
        help="comma-separated VCF INFO fields to carry through as info_<FIELD> columns",
    )
    ve.add_argument(
        "--skip-ref-mismatch",
        action="store_true",
        help="send alleles whose REF differs from the genome to the .NA file instead of "
        "scoring them (flagged ref_match False)",
    )
    _add_model_options(ve)
    _add_parallel_options(ve)
    ve.set_defaults(func=_run_variant_effect)

    im = subparsers.add_parser(
        "ism",
        help="in-silico mutagenesis: every single-base substitution in a region",
        description="Score every substitution of every base of a region (or of one FASTA "
        "record) against the reference prediction, in batches: an HDF5 file with effects "
        "[positions, 4 (A C G T), features] = P(mutant) - P(reference), and a PNG heatmap.",
    )
    where = im.add_mutually_exclusive_group(required=True)
    where.add_argument("--region", help="chrom:start-end (0-based, half-open) of --genome")
    where.add_argument("--fasta", help="FASTA whose record (--record, or its only one) is mutated")
    im.add_argument("--genome", help="reference FASTA of --region")
    im.add_argument("--record", help="the FASTA record to mutate")
    im.add_argument("-o", "--output", required=True, help="HDF5 file to write (.h5)")
    im.add_argument("--plot", help="heatmap PNG (default: the output's name with .png)")
    im.add_argument(
        "--plot-features",
        type=_features,
        help="features drawn in the heatmap, comma-separated (default: the one with the "
        "largest effect)",
    )
    _add_model_options(im)
    im.set_defaults(func=_run_ism)

    em = subparsers.add_parser(
        "embed",
        help="sequence embeddings from any model folder (pretrained or fine-tuned)",
        description="The encoder's last hidden states of every FASTA record, pooled per "
        "sequence ([CLS] or mean) and, with --per-token, per token with each token's bp "
        "span: one HDF5 file.",
    )
    em.add_argument("--model", required=True, help="model folder (pretrain or finetune OUT/model)")
    em.add_argument("--fasta", required=True, help="FASTA of the sequences to embed")
    em.add_argument("-o", "--output", required=True, help="HDF5 file to write (.h5)")
    em.add_argument("--pool", choices=("cls", "mean"), default="cls", help="pooling")
    em.add_argument("--per-token", action="store_true", help="also store per-token embeddings")
    em.add_argument("--batch-size", type=at_least(1), default=16, help="sequences per batch")
    em.add_argument(
        "--max-length",
        type=at_least(3),
        help="token window (default: the smallest that holds the longest record)",
    )
    _add_device_options(em)
    em.set_defaults(func=_run_embed)
