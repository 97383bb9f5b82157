"""``dnabird demo``: the whole recipe, end to end, in a few minutes on a CPU.

Genome FASTA -> held-out split -> documents (``preprocess``) -> SentencePiece tokenizer
(``train-tokenizer``) -> token shards (``tokenize``) -> a small BigBird masked language
model (``pretrain``) -> held-out bits per bp next to an interpolated k-mer baseline
(``evaluate-mlm``) -> promoter classifier fine-tuned from it (``finetune``, next to k-mer
and one-hot baselines) -> a chromatin dataset from peak files (``make-dataset``) -> a
multi-label chromatin model fine-tuned from it -> profiles predicted for a FASTA of test
windows (``predict``) -> effects of a small VCF (``variant-effect``) -> in-silico
mutagenesis of 60 bp (``ism``) -> ``report.md`` and ``report.html``.

The inputs are the real files of the shared data folder when it is present, otherwise a
seeded synthetic genome with planted promoters, motifs and peaks, clearly labelled as such
(:mod:`dnabird.demo_data`): a fresh clone has no real data and nothing may be downloaded.
The last ``held_out_bp`` of the genome are never trained on: pretraining leaves them out,
and they are the chromatin test region, where the focus site of the variants and the
mutagenesis lies.

Layout of the output folder::

    summary.json, manifest.json   what was done, numbers, timings, every output
    report.md, report.html        the report (the HTML embeds its pictures)
    lengths.png, attention_pattern.png, training_curve.png, promoter_metrics.png,
    chromatin_tracks.png          the pictures (and promoter/roc_pr.png, ism.png)
    train.fa                      the genome without its held-out end
    corpus/, tokenizer/, tokens/, pretrain/ (pretrain/model: the language model)
    promoters.txt, promoter/      positives of the promoter task; its run (model/,
                                  report.json, roc_pr.png, confusion.png)
    chromatin_data/, chromatin/   the make-dataset folder; the multi-label run (model/, ...)
    test_windows.fa, predictions.tsv        predicted profiles of test windows
    variants.vcf, variant_effects.tsv       variant effects (one REF mismatch on purpose)
    ism.h5, ism.png                         mutagenesis around the focus site
    genome.fa, peaks.bed          (synthetic data) / brain_NeuN.bed (real data)
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dnabird.demo_data import (
    BRAIN_CELL_TYPE,
    DemoData,
    real_data,
    synthetic_data,
    write_variants,
)
from dnabird.errors import ConfigError
from dnabird.files import write_text_atomic
from dnabird.genome.fasta import write_fasta
from dnabird.testing import shared_data_dir

log = logging.getLogger(__name__)

ISM_BP = 60
"""bp of the mutagenesis region, centred on the focus site."""
BIN_BP = 200
"""bp of a chromatin bin, the unit labelled by peak overlap (make-dataset)."""


@dataclass
class DemoOptions:
    """Sizes of the demo run; the defaults finish in about six minutes on 2 CPU cores."""

    held_out_bp: int = 300_000
    """Last bp of the genome kept out of pretraining: scored by the language model, and the
    test region of the chromatin dataset."""
    passes: int = 4
    """Preprocessing passes (the paper uses 10); both strands are written."""
    vocab_size: int = 2048
    """Tokenizer vocabulary (the paper uses 32k on a whole genome)."""
    tokenizer_sample_bp: int = 500_000
    """bp of training sentences the tokenizer learns from."""
    max_length: int = 512
    """Tokens per pretraining sequence."""
    batch_size: int = 16
    """Sequences per optimizer step."""
    steps: int = 700
    """Optimizer steps of pretraining."""
    hidden_size: int = 128
    """Width of the model: the ``tiny`` preset (2 layers, 4 heads) widened from 64, which
    levels off above the k-mer baseline on real DNA (``benchmarks/RESULTS.md``)."""
    ngram_orders: tuple[int, ...] = (4, 6, 8, 10)
    """Orders of the k-mer baseline; the best one is reported."""
    promoters: int = 1000
    """Promoters (positives) of the promoter task, as many negatives made from them."""
    promoter_steps: int = 200
    """Optimizer steps of promoter fine-tuning (batch 32)."""
    chromatin_steps: int = 150
    """Optimizer steps of chromatin fine-tuning (batch 16, no validation: the last weights
    are exported)."""
    flank_bp: int = 400
    """bp added on each side of a 200 bp chromatin bin (400: 1 kbp windows, DeepSEA's)."""
    negatives: float = 0.5
    """All-negative chromatin bins kept per bin with a positive label."""
    synthetic_bp: int = 1_500_000
    """Length of the synthetic genome used when no real genome is available."""
    seed: int = 0
    """Seed of every random choice of the run."""

    @property
    def window_bp(self) -> int:
        """bp of a chromatin window: a :data:`BIN_BP` bin and its flanks."""
        return BIN_BP + 2 * self.flank_bp


def run_demo(
    out: str | Path,
    genome: str | Path | None = None,
    options: DemoOptions | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Run the recipe into folder ``out``; return the summary (also ``out/summary.json``).

    ``genome``: a FASTA to pretrain on instead of the built-in genome (the fine-tuning
    stages still use the built-in data). ``out`` goes through
    :class:`~dnabird.outputs.OutputFolder`: claimed before any work (an unwritable or busy
    folder fails at once), a finished demo of the same options is returned as it is, an
    interrupted one resumes (each stage reuses what it finished) and ``overwrite`` starts
    again.
    """
    from dnabird.manifest import new_manifest
    from dnabird.outputs import OutputFolder

    options = options or DemoOptions()
    data_dir = shared_data_dir()
    run = {
        "genome": str(genome) if genome else "built-in",
        "data": str(data_dir) if data_dir else "synthetic",
        "options": asdict(options),
    }
    with OutputFolder(out, "demo", run, overwrite=overwrite) as folder:
        if folder.complete:
            return folder.manifest["summary"]
        summary = _Demo(Path(out), options, folder.resuming).run(data_dir, genome)
        folder.finish(new_manifest("demo", asdict(options), summary=summary))
    return summary


class _Demo:
    """The stages of one demo run into ``out`` (claimed by :func:`run_demo`); each stage
    method records its numbers in :attr:`summary` and its files in :attr:`outputs`."""

    STAGES = (
        "inputs",
        "preprocess",
        "train-tokenizer",
        "tokenize",
        "pretrain",
        "evaluate-mlm",
        "finetune promoter",
        "make-dataset",
        "finetune chromatin",
        "predict",
        "variant-effect",
        "ism",
        "pictures",
        "report",
    )

    def __init__(self, out: Path, options: DemoOptions, resuming: bool) -> None:
        self.out, self.options, self.resuming = out, options, resuming
        self.summary: dict[str, Any] = {}
        self.outputs: dict[str, str] = {}
        self.timings: dict[str, float] = {}
        self._last = time.perf_counter()

    def stage(self, name: str) -> None:
        """Record the time of stage ``name``, just finished."""
        now = time.perf_counter()
        self.timings[name] = round(now - self._last, 1)
        self._last = now
        log.info(
            "demo [%d/%d] %s done (%.1f s)",
            self.STAGES.index(name) + 1,
            len(self.STAGES),
            name,
            self.timings[name],
        )

    def output(self, path: str, what: str) -> None:
        """Name an output (``path`` relative to the folder) for the summary and report."""
        self.outputs[path] = what

    def prediction_output(self, path: str, what: str, rows: str) -> None:
        """A prediction file and the two written beside it (``.NA``: the ``rows`` that could
        not be scored; ``.manifest.json``)."""
        from dnabird.predict.writers import side_path

        self.output(path, what)
        self.output(
            side_path(path, ".NA").name, f"{rows} that could not be scored, with the reason"
        )
        self.output(side_path(path, ".manifest.json").name, f"inputs and settings of {path}")

    def run(self, data_dir: Path | None, genome: str | Path | None) -> dict[str, Any]:
        """Every stage, in order, on the real data in ``data_dir`` (None: synthetic data),
        pretraining on ``genome`` when given; returns the summary (also summary.json)."""
        data = self.inputs(data_dir)
        model_dir, held_out = self.pretrain(data, genome)
        self.evaluate(data, model_dir, held_out)
        promoter_model = self.promoter(model_dir, data)
        dataset = self.chromatin_dataset(data)
        chromatin_model = self.chromatin(model_dir, dataset)
        self.predict(chromatin_model, dataset)
        self.variants(chromatin_model, data)
        self.mutagenesis(chromatin_model, data)
        self.pictures(model_dir)
        self.summary.update(
            model=str(model_dir),
            promoter_model=str(promoter_model),
            chromatin_model=str(chromatin_model),
            options=asdict(self.options),
            seconds=self.timings,
            outputs=self.outputs,
        )
        self.report()
        write_text_atomic(self.out / "summary.json", json.dumps(self.summary, indent=2) + "\n")
        return self.summary

    # ------------------------------------------------------------------------ stages
    def inputs(self, data_dir: Path | None) -> DemoData:
        """The real inputs in ``data_dir``, or synthetic ones (:mod:`dnabird.demo_data`)."""
        options, out = self.options, self.out
        if data_dir is not None:
            data = real_data(data_dir, out, options.held_out_bp, options.promoters, options.seed)
            self.output(f"brain_{BRAIN_CELL_TYPE}.bed", "the neuronal tracks of the brain peaks")
        else:
            data = synthetic_data(
                out, options.synthetic_bp, options.held_out_bp, options.promoters, options.seed
            )
            self.output("genome.fa", "the SYNTHETIC genome (planted elements in peaks.bed)")
            self.output("peaks.bed", "SYNTHETIC peaks: one line per planted element")
        if len(data.sequence) < 2 * options.held_out_bp:
            raise ConfigError(f"{data.genome}: needs at least {2 * options.held_out_bp:,} bp")
        self.output("promoters.txt", "positives of the promoter task, one 300 bp line each")
        self.summary.update(synthetic=data.synthetic, sources=data.sources)
        self.stage("inputs")
        return data

    def pretrain(
        self, data: DemoData, genome: str | Path | None
    ) -> tuple[Path, tuple[str, int, str]]:
        """preprocess -> train-tokenizer -> tokenize -> pretrain. Returns the exported model
        and the genome record ``(name, split, sequence)``: bases from ``split`` on are held
        out."""
        from dnabird.data.tokens import tokenize_corpus
        from dnabird.genome import preprocess
        from dnabird.genome.fasta import read_fasta
        from dnabird.tasks.config import load_config
        from dnabird.tasks.pretrain_config import PretrainConfig
        from dnabird.tasks.pretrain_run import run_pretrain
        from dnabird.tokenizer import train_tokenizer

        options, out = self.options, self.out
        name, sequence = data.chrom, data.sequence  # long enough: checked by inputs()
        if genome is not None:
            name, sequence = next(iter(read_fasta(genome).items()))
            self.summary["sources"]["pretraining genome"] = f"{genome} (record {name})"
            if len(sequence) < 2 * options.held_out_bp:
                raise ConfigError(f"{genome}: needs at least {2 * options.held_out_bp:,} bp")
        split = len(sequence) - options.held_out_bp
        write_fasta(out / "train.fa", [(name, sequence[:split])])
        self.output("train.fa", "the pretraining genome without its held-out end")
        preprocess(
            out / "train.fa",
            out / "corpus",
            passes=options.passes,
            seed=options.seed,
            both_strands=True,
            chromosomes=(name,),  # whatever its name and length
        )
        self.output("corpus/", "documents of sentences (preprocess)")
        self.stage("preprocess")
        train_tokenizer(
            out / "corpus",
            out / "tokenizer",
            vocab_size=options.vocab_size,
            sample_bp=options.tokenizer_sample_bp,
            seed=options.seed,
        )
        self.output("tokenizer/", "the SentencePiece tokenizer (train-tokenizer)")
        self.stage("train-tokenizer")
        tokenize_corpus(out / "corpus", out / "tokenizer", out / "tokens")
        self.output("tokens/", "token shards (tokenize)")
        self.stage("tokenize")
        model_overrides = {  # no dropout: a few hundred steps see well under one epoch
            "hidden_size": options.hidden_size,
            "intermediate_size": 4 * options.hidden_size,
            "max_position_embeddings": options.max_length,
            "block_size": 16,
            "hidden_dropout_prob": 0.0,
            "attention_probs_dropout_prob": 0.0,
        }
        steps = options.steps
        config = load_config(
            PretrainConfig,
            None,
            [
                f"out={out / 'pretrain'}",
                f"seed={options.seed}",
                f"data.tokens={out / 'tokens'}",
                f"data.max_length={options.max_length}",
                f"data.batch_size={options.batch_size}",
                "data.val_fraction=0.02",
                "data.val_batches=4",
                "model.preset=tiny",
                f"model.overrides={json.dumps(model_overrides)}",
                "optim.lr=2.0e-3",
                f"optim.warmup_steps={steps // 10}",
                f"trainer.max_steps={steps}",
                "trainer.accelerator=cpu",
                f"trainer.val_every_steps={max(steps // 4, 1)}",
                f"trainer.checkpoint_every_steps={steps}",
                f"trainer.log_every_steps={max(1, min(10, steps // 4))}",
            ],
        )
        # an interrupted demo continues an interrupted pretraining run
        model_dir = run_pretrain(config, resume=self.resuming and (out / "pretrain").is_dir())
        self.output("pretrain/model/", "the pretrained BigBird masked language model")
        self.stage("pretrain")
        return model_dir, (name, split, sequence)

    def evaluate(self, data: DemoData, model_dir: Path, held_out: tuple[str, int, str]) -> None:
        """Held-out bits per bp of the model and of the k-mer baselines."""
        from dnabird.progress import progress
        from dnabird.tasks.evaluate_mlm import evaluate_mlm, ngram_baseline

        options = self.options
        name, split, sequence = held_out
        held_out_bases = sequence[split:].upper()
        scored = evaluate_mlm(
            model_dir,
            [(f"{name}:{split}-{len(sequence)}", held_out_bases)],
            max_length=options.max_length,
            seed=options.seed,
        )
        baselines = [
            ngram_baseline([sequence[:split].upper()], [held_out_bases], order)
            for order in progress(options.ngram_orders, desc="k-mer baselines", unit="order")
        ]
        best = min(baselines, key=lambda b: b["bpc"])
        self.summary.update(
            genome=data.sources.get("pretraining genome", data.sources["genome"]),
            held_out=f"{name}:{split}-{len(sequence)} (0-based, half-open)",
            held_out_bpc=scored["bpc"],
            held_out_bpc_se=scored["bpc_se"],
            held_out_accuracy=scored["accuracy"],
            ngram_bpc={str(b["order"]): b["bpc"] for b in baselines},  # str keys, as in JSON
            best_ngram_order=best["order"],
        )
        self.stage("evaluate-mlm")

    def finetune(
        self, recipe: str, name: str, steps: int, overrides: list[str]
    ) -> tuple[Path, dict]:
        """Fine-tune per the packaged config ``recipe`` into ``out/name``, shrunk to ``steps``
        (``overrides`` set the rest); returns the exported model and the run's
        ``report.json``."""
        from dnabird.tasks.config import load_config
        from dnabird.tasks.finetune_config import FinetuneConfig
        from dnabird.tasks.finetune_run import run_finetune

        out = self.out / name
        config = load_config(
            FinetuneConfig,
            recipe,
            [
                f"out={out}",
                f"seed={self.options.seed}",
                f"optim.warmup_steps={max(steps // 10, 1)}",
                f"trainer.max_steps={steps}",
                f"trainer.checkpoint_every_steps={steps}",
                f"trainer.log_every_steps={max(1, min(20, steps // 4))}",
                *overrides,
            ],
        )
        model = run_finetune(config, resume=self.resuming and out.is_dir())  # or continue one
        return model, json.loads((out / "report.json").read_text(encoding="utf-8"))

    def promoter(self, model_dir: Path, data: DemoData) -> Path:
        """The promoter classifier, fine-tuned from the language model."""
        steps = self.options.promoter_steps
        model, report = self.finetune(
            "promoter",
            "promoter",
            steps,
            [
                f"model.init={model_dir}",
                f"data.train={data.promoters}",
                f"trainer.val_every_steps={max(steps // 4, 1)}",
                "early_stopping.patience=0",  # 4 validations; the best is exported
            ],
        )
        self.summary["promoter"] = {
            name: {k: r["metrics"][k] for k in ("accuracy", "f1", "mcc", "auroc", "auprc")}
            for name, r in report["reports"].items()
        }
        self.summary["promoter_f1_ci95"] = {
            name: r["ci95"]["f1"] for name, r in report["reports"].items()
        }
        self.output("promoter/", "promoter classifier run: model/, report.json, roc_pr.png")
        self.stage("finetune promoter")
        return model

    def chromatin_dataset(self, data: DemoData) -> Path:
        """Label 200 bp bins by the peaks (make-dataset); test region = the held-out end."""
        from dnabird.data.peak_dataset import DatasetOptions, make_dataset

        options = self.options
        test = f"{data.chrom}:{len(data.sequence) - options.held_out_bp}-{len(data.sequence)}"
        manifest = make_dataset(
            data.genome,
            data.tracks,
            self.out / "chromatin_data",
            DatasetOptions(
                bin_size=BIN_BP,
                flank=options.flank_bp,
                negatives=options.negatives,
                seed=options.seed,
                test=(test,),
                chromosomes=(data.chrom,),
            ),
        )
        self.summary["chromatin_data"] = {
            "test_region": f"{test} (0-based, half-open)",
            "tracks": manifest["features"]["ids"],
            "rows": {name: split["rows"] for name, split in manifest["counts"]["splits"].items()},
        }
        self.output(
            "chromatin_data/",
            f"chromatin dataset: {options.window_bp:,} bp windows labelled by peaks",
        )
        self.stage("make-dataset")
        return self.out / "chromatin_data"

    def chromatin(self, model_dir: Path, dataset: Path) -> Path:
        """The multi-label chromatin model, fine-tuned from the language model."""
        model, report = self.finetune(
            "chromatin_peaks",
            "chromatin",
            self.options.chromatin_steps,
            [
                f"model.init={model_dir}",
                "model.preset=null",
                "model.tokenizer=null",
                "model.overrides={}",
                f"data.train={dataset}",
                "data.batch_size=16",
                "early_stopping.metric=null",  # no validation region: the last weights
            ],
        )
        self.summary["chromatin"] = {
            name: {row["id"]: row["auroc"] for row in r["features"]}
            for name, r in report["reports"].items()
        }
        self.summary["chromatin_median_auroc"] = {  # over the defined tracks, with its CI
            name: {
                "median": r["summary"]["all"]["auroc_median"],
                "ci95": r["summary"]["all"]["auroc_median_ci"],
                "tracks": r["summary"]["all"]["defined"],
            }
            for name, r in report["reports"].items()
        }
        self.output("chromatin/", "chromatin model run: model/, report.json, test_performance.tsv")
        self.stage("finetune chromatin")
        return model

    def predict(self, model: Path, dataset: Path) -> None:
        """Profiles of test windows: the first one positive for each track, and the first
        all-negative one, written as a FASTA and predicted."""
        from dnabird.predict import predict_to_file

        windows = _test_windows(dataset)
        write_fasta(self.out / "test_windows.fa", [(w["name"], w.pop("sequence")) for w in windows])
        predict_to_file(model, self.out / "predictions.tsv", fasta=self.out / "test_windows.fa")
        self.summary["predict"] = {"windows": windows}
        self.output("test_windows.fa", "test windows to predict (one per track, one negative)")
        self.prediction_output(
            "predictions.tsv", "predicted profiles of test_windows.fa", "windows"
        )
        self.stage("predict")

    def variants(self, model: Path, data: DemoData) -> None:
        """Effects of five VCF records around the focus site, one with a wrong REF."""
        from dnabird.predict import variant_effect_to_file

        write_variants(self.out / "variants.vcf", data.genome, data.chrom, data.focus)
        result = variant_effect_to_file(
            model,
            self.out / "variant_effects.tsv",
            vcf=self.out / "variants.vcf",
            genome=data.genome,
            info_fields=["AF"],
        )
        self.summary["variants"] = {
            "alleles": result.rows,
            "ref_mismatches": result.ref_mismatches,
            "focus": data.sources["focus"],
        }
        self.output("variants.vcf", "five records near the focus site (one wrong REF)")
        self.prediction_output(
            "variant_effects.tsv", "P(alt) - P(ref) per allele and track", "alleles"
        )
        self.stage("variant-effect")

    def mutagenesis(self, model: Path, data: DemoData) -> None:
        """Every substitution of the 60 bp around the focus site."""
        from dnabird.predict import ism

        start = data.focus - ISM_BP // 2
        region = f"{data.chrom}:{start}-{start + ISM_BP}"
        track = data.focus_track
        ism(
            model,
            region=region,
            genome=data.genome,
            out=self.out / "ism.h5",
            plot=self.out / "ism.png",
            plot_features=[track],
        )
        self.summary["ism"] = {"region": f"{region} (0-based, half-open)", "track": track}
        self.output("ism.h5", "in-silico mutagenesis effects [60 bp, 4 bases, tracks]")
        self.output("ism.png", f"mutagenesis heatmap of {track}")
        self.stage("ism")

    def pictures(self, model_dir: Path) -> None:
        """The attention pattern, the training curve, the corpus lengths, the AUROCs."""
        from dnabird.model import BigBirdConfig
        from dnabird.model.patterns import make_pattern
        from dnabird.plots import (
            plot_block_pattern,
            plot_length_histograms,
            plot_metric_bars,
            plot_track_aurocs,
            plot_training_curve,
        )

        options, out, summary = self.options, self.out, self.summary
        documents, token_bp = _corpus_lengths(out / "tokens")
        self.summary["bp_per_token"] = float(
            (np.arange(len(token_bp)) * token_bp).sum() / token_bp.sum()
        )
        plot_length_histograms(
            documents,
            token_bp,
            out / "lengths.png",
            f"Pretraining corpus: {options.passes} pass{'es' * (options.passes != 1)}, "
            f"both strands, vocabulary {options.vocab_size:,}",
        )
        model_config = BigBirdConfig.load(model_dir)
        plot_block_pattern(
            make_pattern(model_config, options.max_length // model_config.block_size, layer=0),
            out / "attention_pattern.png",
        )
        best = summary["best_ngram_order"]
        plot_training_curve(
            {f"BigBird 2 x {options.hidden_size}": out / "pretrain" / "logs" / "metrics.csv"},
            out / "training_curve.png",
            baselines={f"{best}-mer Markov": summary["ngram_bpc"][str(best)]},
            title="Demo pretraining: bits per masked bp (bpc)",
        )
        promoter = json.loads((out / "promoter" / "report.json").read_text(encoding="utf-8"))
        plot_metric_bars(
            promoter["reports"],
            ("f1", "mcc", "auroc", "auprc"),
            out / "promoter_metrics.png",
            f"Promoter test split ({sum(promoter['test_counts'].values()):,} sequences)",
        )
        rows = self.summary["chromatin_data"]["rows"]
        report = json.loads((out / "chromatin" / "report.json").read_text(encoding="utf-8"))
        plot_track_aurocs(
            report["reports"],
            out / "chromatin_tracks.png",
            f"Chromatin tracks: test AUROC ({rows['test']:,} windows of {options.window_bp:,} bp)",
        )
        for name, what in (
            ("lengths.png", "document and token length histograms"),
            ("attention_pattern.png", "the block-sparse attention pattern"),
            ("training_curve.png", "pretraining curve with the k-mer baseline"),
            ("promoter_metrics.png", "promoter test F1, MCC, AUROC, AUPRC with the baselines"),
            ("chromatin_tracks.png", "chromatin test AUROC per track"),
        ):
            self.output(name, what)
        self.stage("pictures")

    def report(self) -> None:
        """report.md and report.html (:func:`dnabird.report.demo_report`)."""
        from dnabird.report import demo_report

        self.output("report.md", "the report, Markdown (pictures beside it)")
        self.output("report.html", "the report, one self-contained web page")
        self.output("summary.json", "every number of the run")
        self.output("manifest.json", "the run's options and summary, written last")
        demo_report(self.out, self.summary)
        self.stage("report")


def _test_windows(dataset: Path) -> list[dict[str, Any]]:
    """The first test row positive for each track (in track order, each row once) and the
    first all-negative test row of a make-dataset folder: ``[{"name", "region" (the
    window, 0-based half-open), "positives" (track ids), "sequence"}]``."""
    import pyarrow.parquet as pq

    from dnabird.manifest import read_manifest

    manifest = read_manifest(dataset, stage="make-dataset")
    tracks = manifest["features"]["ids"]
    table = pq.read_table(
        [dataset / shard["file"] for shard in manifest["shards"] if shard["split"] == "test"],
        columns=["chrom", "window_start", "window_end", "sequence", "labels"],
    ).to_pylist()
    labels = np.array([row["labels"] for row in table], dtype=bool)  # [rows, tracks]
    chosen: list[tuple[str, int]] = []
    for j, track in enumerate(tracks):
        rows = [i for i in np.flatnonzero(labels[:, j]) if i not in {c[1] for c in chosen}]
        if rows:
            chosen.append((f"test_{track}", int(rows[0])))
    negatives = np.flatnonzero(~labels.any(axis=1))
    if len(negatives):
        chosen.append(("test_negative", int(negatives[0])))
    windows = []
    for name, i in chosen:
        row = table[i]
        windows.append(
            {
                "name": name,
                "region": f"{row['chrom']}:{row['window_start']}-{row['window_end']}",
                "positives": [t for t, on in zip(tracks, labels[i], strict=True) if on],
                "sequence": row["sequence"],
            }
        )
    return windows


def _corpus_lengths(tokens: Path) -> tuple[np.ndarray, np.ndarray]:
    """Document lengths (bp, int64 ``[D]``) of a token folder, and its token lengths as
    counts (``int64 [L + 1]``: ``counts[n]`` tokens spell ``n`` bp)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from dnabird.tokenizer import DNATokenizer

    tokenizer = DNATokenizer.from_pretrained(tokens / "tokenizer")
    documents, counts = [], np.zeros(int(tokenizer.bp_per_id.max()) + 1, dtype=np.int64)
    for shard in sorted(tokens.glob("shard-*.parquet")):
        table = pq.read_table(shard, columns=["start", "end", "sentence_ids"])
        documents.append(np.asarray(table["end"]) - np.asarray(table["start"]))
        ids = np.asarray(pc.list_flatten(pc.list_flatten(table["sentence_ids"])), dtype=np.int64)
        counts += np.bincount(tokenizer.token_lengths(ids), minlength=len(counts))
    return np.concatenate(documents), counts
