"""``dnabird finetune`` and ``dnabird evaluate``: train a sequence classifier or a
multi-label (chromatin-profile) model from a YAML config, and score one on labelled
sequences. Predicting files is :mod:`dnabird.commands.predict`'s."""

from __future__ import annotations

import argparse
import json

from dnabird.commands._training import add_run_options, run_from_args
from dnabird.commands._types import at_least, device
from dnabird.model.config import STRAND_MODES


def _run_finetune(args: argparse.Namespace) -> None:
    from dnabird.data.deepsea import PUBLISHED_MEDIAN_AUROC
    from dnabird.tasks.classification_metrics import metrics_table
    from dnabird.tasks.finetune_config import FinetuneConfig
    from dnabird.tasks.finetune_run import REPORT_NAME, run_finetune
    from dnabird.tasks.multilabel_metrics import summary_table

    done = run_from_args(args, "finetune", FinetuneConfig, run_finetune)
    if done is None:
        return
    config, export = done
    manifest = json.loads((export / "manifest.json").read_text(encoding="utf-8"))
    best = manifest.get("best")
    chosen = (
        f"best {best['metric']} {best['value']:.4f} at step {best['step']}"
        if best
        else "last weights"
    )
    if manifest.get("stopped_early") and best:
        patience = config.early_stopping.patience
        chosen += f" (stopped early: no better {best['metric']} in {patience} validations)"
    elif manifest["steps"] < config.trainer.max_steps and config.trainer.max_time_s is not None:
        chosen += f" (stopped at the time limit, trainer.max_time_s={config.trainer.max_time_s:g})"
    counts = manifest["data"]["splits"]
    sizes = ", ".join(
        f"{name} {sum(counts[name].values()):,}" for name in ("train", "validation", "test")
    )
    print(
        f"Fine-tuned for {manifest['steps']} steps in {manifest['seconds']:.0f} s on "
        f"{sizes} sequences (window {manifest['max_length']} tokens); exported the "
        f"{chosen} to {export}."
    )
    test = manifest.get("test")
    if test and manifest["task"] == "multilabel":
        print(
            f"Test split ({sum(counts['test'].values()):,} sequences, "
            f"{len(manifest['classes'])} features), medians over features, 95% bootstrap CIs:"
        )
        categories = set(manifest["data"]["features"]["categories"])
        reference = PUBLISHED_MEDIAN_AUROC if categories & {"DHS", "TF", "HM"} else None
        print(summary_table(test["reports"], reference))
        print(
            f"Report and plots in {config.out} ({REPORT_NAME}, test_performance.tsv, "
            "auroc_by_category.png, roc_pr.png)."
        )
    elif test:
        print(f"Test split ({sum(counts['test'].values()):,} sequences), 95% bootstrap CIs:")
        print(metrics_table(test["reports"]), end="")
        print(f"Report and plots in {config.out} ({REPORT_NAME}, roc_pr.png, confusion.png).")
    else:
        print("No test split (data.test is null and data.split gives test 0): no test report.")


def _run_evaluate(args: argparse.Namespace) -> None:
    from dnabird.data.labelled import read_labelled
    from dnabird.files import write_text_atomic
    from dnabird.outputs import check_writable_file
    from dnabird.tasks.classification_metrics import metrics_table
    from dnabird.tasks.classify import Classifier, evaluate_classifier

    if args.output:
        check_writable_file(args.output)  # before the work, not after it
    classifier = Classifier.load(args.model, args.device)
    if classifier.multilabel:
        _evaluate_profiles(args, classifier)
        return
    rows = read_labelled(
        args.data,
        format=args.format,
        label=args.label,
        classes=classifier.classes,
        labels_file=args.labels_file,
    )
    report, _ = evaluate_classifier(
        classifier,
        rows,
        batch_size=args.batch_size,
        resamples=args.resamples,
        seed=args.seed,
        rc=args.rc,
    )
    counts = ", ".join(f"{name} {n:,}" for name, n in report["class_counts"].items())
    cut = "" if report["threshold"] is None else f", threshold {report['threshold']:.4g}"
    print(
        f"Evaluated {report['n']:,} sequences of {rows.source} ({counts}) with {args.model} "
        f"(window {classifier.window} tokens{cut}); 95% bootstrap CIs ({args.resamples} "
        "resamples):"
    )
    print(
        metrics_table({"model": report}, names=("accuracy", "f1", "mcc", "auroc", "auprc")), end=""
    )
    if args.output:
        write_text_atomic(args.output, json.dumps(report, indent=2) + "\n")
        print(f"Report written to {args.output}.")


def _evaluate_profiles(args: argparse.Namespace, classifier) -> None:
    """``evaluate`` of a multi-label model: per-feature AUROC / AUPRC with CIs, medians."""
    import numpy as np

    from dnabird.data.chromatin import read_examples
    from dnabird.errors import InputError
    from dnabird.files import write_text_atomic
    from dnabird.tasks.multilabel_metrics import multilabel_report, summary_table

    examples = read_examples(args.data, args.format)
    if isinstance(examples, dict):  # a make-dataset folder: its test split
        examples = examples.get("test")
        if examples is None or not len(examples):
            raise InputError(f"{args.data}: the dataset has no test split to evaluate")
    ids = list(examples.features.ids)
    missing = [i for i in classifier.classes if i not in ids]
    if missing:
        raise InputError(
            f"{args.data}: no label column for the model's feature(s) {', '.join(missing[:3])}"
            f" ({len(missing)} of {len(classifier.classes)} missing); give data with them"
        )
    examples = examples.select_features(np.array([ids.index(i) for i in classifier.classes]))
    names = [f"row {i + 1}" for i in range(len(examples))]
    scores = classifier.probabilities(
        examples.sequences, names, examples.source, args.batch_size, args.rc
    )
    report = multilabel_report(
        examples.labels,
        scores,
        examples.features.ids,
        examples.features.categories,
        resamples=args.resamples,
        seed=args.seed,
    )
    print(
        f"Evaluated {len(examples):,} sequences of {examples.source} on "
        f"{len(classifier.classes)} features with {args.model} (window {classifier.window} "
        f"tokens); medians over features, 95% bootstrap CIs ({args.resamples} resamples):"
    )
    print(summary_table({"model": report}))
    if args.output:
        write_text_atomic(args.output, json.dumps(report, indent=2) + "\n")
        print(f"Report written to {args.output}.")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``finetune`` and ``evaluate`` subcommands."""
    ft = subparsers.add_parser(
        "finetune",
        help="fine-tune a sequence classifier or a chromatin-profile model (YAML config)",
        description="Fine-tune per a YAML config: a packaged one by name (promoter, "
        "promoter_gpu, chromatin_peaks, chromatin_deepsea) or a file; trailing key.sub=value "
        "arguments override its entries (values read as YAML). The best validation's weights "
        "are exported with the tokenizer, classes (or features) and window, and scored on the "
        "test split next to k-mer (and one-hot) baselines. Ctrl-C stops after the current "
        "step with a checkpoint; --resume continues.",
    )
    add_run_options(
        ft, "promoter, promoter_gpu, chromatin_peaks, chromatin_deepsea", "data.negatives=shuffle"
    )
    ft.set_defaults(func=_run_finetune)

    ev = subparsers.add_parser(
        "evaluate",
        help="score a fine-tuned model on labelled sequences (metrics with 95%% CIs)",
        description="Score a fine-tuned model folder on a labelled file (one sequence per "
        "line, FASTA, CSV/TSV with sequence and label columns, Parquet): accuracy, precision, "
        "recall, F1, MCC, AUROC, AUPRC with percentile-bootstrap 95% intervals. The labels "
        "must be the model's classes; every sequence is padded to the model's window. A "
        "multi-label model takes a multi-label file (Parquet, DeepSEA CSV) or a make-dataset "
        "folder (its test split): AUROC and AUPRC per feature and their medians.",
    )
    ev.add_argument("--model", required=True, help="fine-tuned model folder (OUT/model)")
    ev.add_argument("--data", required=True, help="labelled sequence file")
    ev.add_argument(
        "--format",
        default="auto",
        help="format of --data: lines, fasta, csv, tsv, parquet, or auto (from the file name)",
    )
    ev.add_argument(
        "--label", help="the class of every sequence of a file without labels (e.g. promoter)"
    )
    ev.add_argument("--labels-file", help="FASTA: TSV of id<TAB>label instead of header labels")
    ev.add_argument("--batch-size", type=at_least(1), default=64, help="sequences per batch")
    ev.add_argument(
        "--resamples", type=at_least(1), default=1000, help="bootstrap resamples for the CIs"
    )
    ev.add_argument("--seed", type=at_least(0), default=0, help="bootstrap seed")
    ev.add_argument(
        "--rc",
        choices=STRAND_MODES,
        help="combine each sequence's prediction with its reverse complement's: mean, max, "
        "or none (forward strand only); default: as the model was trained",
    )
    ev.add_argument(
        "--device", type=device, help="cpu, cuda or cuda:N (default: cuda when available)"
    )
    ev.add_argument("-o", "--output", help="also write the report as JSON")
    ev.set_defaults(func=_run_evaluate)
