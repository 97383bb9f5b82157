"""Real-data chromatin profiles: 16 peak tracks over the hg38 chr2 excerpt, the same
model and bins with 1 kbp windows and with 8 kbp of context on each side, next to a k-mer
logistic regression on the labelled 200 bp bin.

Builds both datasets with ``dnabird make-dataset`` (identical bins: the same ``--gap``),
fine-tunes ``--config chromatin_peaks`` on each (same model, seed and steps; only the
window differs), then prints per-track test AUROC and AUPRC with 95% bootstrap intervals
and the medians. Run from the repository root; the tokenizer is a model folder's (``dnabird
demo``'s by default).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from dnabird.testing import shared_data_dir

CONTEXTS = {"1k": 400, "8k": 8000}
"""Dataset name -> flank in bp on each side of the 200 bp bin."""
TEST_REGION = "chr2:1980000-2333275"
VALIDATION_REGION = "chr2:1747000-1980000"
GAP = 8000


def make_dataset(data: Path, out: Path, flank: int) -> None:
    """The 16-track dataset with ``flank`` bp each side (skipped when complete)."""
    chromatin = data / "chromatin"
    ensembl = chromatin / "ensembl_regulatory_GRCh38"
    peaks = []
    for name in ("enhancer", "ocr", "promoter"):
        files = ",".join(str(ensembl / part / f"{name}.csv.gz") for part in ("train", "test"))
        peaks += ["--peaks", f"{name}={files}"]
    command = [
        sys.executable,
        "-m",
        "dnabird.cli",
        "-q",
        "make-dataset",
        "--genome",
        str(data / "genome" / "hg38_chr2_1-2333275.fa.gz"),
        "--peaks",
        f"CTCF={chromatin / 'ENCFF252PLM_CTCF_GRCh38.narrowPeak.gz'}",
        "--tracks-in",
        str(chromatin / "nott2019_brain_peaks_hg38_chr2_1-2333275.bed"),
        *peaks,
        "--test",
        TEST_REGION,
        "--validation",
        VALIDATION_REGION,
        "--bin",
        "200",
        "--flank",
        str(flank),
        "--gap",
        str(GAP),
        "--out",
        str(out),
    ]
    subprocess.run(command, check=True)


def finetune(dataset: Path, out: Path, tokenizer: Path, overrides: list[str]) -> dict:
    """One fine-tuning run; its report, steps and seconds."""
    command = [
        sys.executable,
        "-m",
        "dnabird.cli",
        "--no-progress",
        "-q",
        "finetune",
        "--config",
        "chromatin_peaks",
        f"out={out}",
        f"data.train={dataset}",
        f"model.tokenizer={tokenizer}",
        *overrides,
    ]
    started = time.perf_counter()
    subprocess.run(command, check=True)
    manifest = json.loads((out / "model" / "manifest.json").read_text())
    return {
        "seconds": round(time.perf_counter() - started, 1),
        "steps": manifest["steps"],
        "window_tokens": manifest["max_length"],
        "best": manifest.get("best"),
        "command": " ".join(command[2:]),
        "report": json.loads((out / "report.json").read_text()),
    }


def _cell(row: dict, name: str) -> str:
    value, interval = row[name], row[f"{name}_ci"]
    if value is None:
        return "n/a"
    return f"{value:.3f} [{interval[0]:.3f}, {interval[1]:.3f}]"


def per_track_table(results: dict[str, dict], metric: str) -> str:
    """Markdown: one row per track, test ``metric`` of each context's model and of the
    k-mer baseline (from the first run: both runs train it on the same bins)."""
    names = list(results)
    columns = [f"dnabird {name}" for name in names] + ["k-mer (200 bp bin)"]
    lines = [
        f"| track | test positives | {' | '.join(columns)} |",
        "|---|---:|" + "---|" * len(columns),
    ]
    first = results[names[0]]["report"]["reports"]
    for j, row in enumerate(first["dnabird"]["features"]):
        cells = [
            _cell(results[name]["report"]["reports"]["dnabird"]["features"][j], metric)
            for name in names
        ]
        cells.append(_cell(first["kmer_logreg"]["features"][j], metric))
        lines.append(f"| {row['id']} | {row['positives']} | {' | '.join(cells)} |")
    medians = []
    for name in names:
        entry = results[name]["report"]["reports"]["dnabird"]["summary"]["all"]
        medians.append(_median(entry, metric))
    medians.append(_median(first["kmer_logreg"]["summary"]["all"], metric))
    lines.append(f"| **median** (defined tracks) | | {' | '.join(medians)} |")
    return "\n".join(lines)


def _median(entry: dict, metric: str) -> str:
    value, interval = entry[f"{metric}_median"], entry[f"{metric}_median_ci"]
    if value is None:
        return "n/a"
    return f"**{value:.3f}** [{interval[0]:.3f}, {interval[1]:.3f}] ({entry['defined']})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, required=True, help="folder for datasets and runs")
    parser.add_argument(
        "--tokenizer",
        type=Path,
        default=Path("demo_run/pretrain/model"),
        help="tokenizer or model folder (default: dnabird demo's model)",
    )
    parser.add_argument(
        "--contexts",
        type=lambda text: text.split(","),
        default=list(CONTEXTS),
        help=f"comma-separated, of {', '.join(CONTEXTS)} (default: all)",
    )
    parser.add_argument(
        "overrides", nargs="*", help="key=value overrides of chromatin_peaks.yaml for every run"
    )
    parser.add_argument("--json", type=Path, help="write every result here")
    args = parser.parse_args()
    data = shared_data_dir()
    if data is None:
        sys.exit("chromatin.py: the shared data folder was not found (set DNABIRD_SHARED_DATA)")
    unknown = sorted(set(args.contexts) - set(CONTEXTS))
    if unknown:
        parser.error(f"--contexts: unknown {', '.join(unknown)}; choose from {', '.join(CONTEXTS)}")
    results = {}
    for name in args.contexts:
        dataset = args.work / f"dataset_{name}"
        make_dataset(data, dataset, CONTEXTS[name])
        results[name] = finetune(
            dataset, args.work / f"model_{name}", args.tokenizer, args.overrides
        )
        run = results[name]
        print(
            f"{name}: window {run['window_tokens']} tokens, {run['steps']} steps in "
            f"{run['seconds']:.0f} s, best {run['best']}",
            flush=True,
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    for metric in ("auroc", "auprc"):
        print(f"\nTest {metric.upper()} per track (95% bootstrap CIs):\n")
        print(per_track_table(results, metric))


if __name__ == "__main__":
    main()
