"""Figures for the documentation: attention time and memory against sequence length (from
the benchmark's JSON), and the block-sparse attention pattern.

``attention`` reads what ``benchmarks/attention.py --json`` writes (one or more files; a
later file's measurement of the same contender, workload, mode, block size and length
replaces an earlier one, so a second command that added 16k tokens for some contenders
completes the first) and draws, log-log, the median time (ms) and the peak memory growth
(MiB) of dnabird's blocked backend, Hugging Face BigBird ``block_sparse`` and dense SDPA
against the sequence length, inference solid and training dashed, with L and L^2 guides and
the fitted growth exponent of each curve. The title carries the machine, date and threads
from the JSON, so the picture says where it was measured.

``pattern`` draws which key blocks each query block attends in one head of the paper's
setting (:func:`dnabird.plots.plot_block_pattern`, like Figure 1 of the BigBird paper).

Usage::

    PYTHONPATH=. python benchmarks/plots.py attention benchmarks/results/attention_cpu.json \\
        benchmarks/results/attention_cpu_16k.json --out docs/images/attention_scaling.png
    PYTHONPATH=. python benchmarks/plots.py pattern --out docs/images/attention_pattern.png
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from collections.abc import Sequence
from pathlib import Path

#: Contender name in the JSON -> (legend label, colour). Ours first.
CONTENDERS = {
    "ours-blocked": ("dnabird (blocked backend)", "#1f77b4"),
    "ours-flex": ("dnabird (flex backend)", "#17becf"),
    "hf-block-sparse": ("HF BigBird block_sparse", "#d62728"),
    "dense-sdpa": ("dense SDPA (full attention)", "#7f7f7f"),
}
MODES = {"fwd": ("inference", "-", "o"), "fwd+bwd": ("training (fwd+bwd)", "--", "s")}


def load_results(paths: Sequence[str | Path]) -> tuple[list[dict], list[dict]]:
    """``(metas, results)`` of the JSON files, results merged per contender: for each
    (what, mode, block size, length, contender), the last file that measured it wins."""
    metas, merged = [], {}
    for path in paths:
        data = json.loads(Path(path).read_text())
        metas.append(data["meta"])
        for row in data["results"]:
            key = (row["what"], row["mode"], row["block_size"], row["length"])
            slot = merged.setdefault(key, {"median_s": {}, "peak_bytes": {}, **_ids(row)})
            slot["median_s"].update(row["median_s"])
            slot["peak_bytes"].update(row.get("peak_bytes", {}))
    return metas, [merged[key] for key in sorted(merged)]


def _ids(row: dict) -> dict:
    return {k: row[k] for k in ("what", "mode", "block_size", "length")}


def series(results: list[dict], what: str, mode: str, field: str, name: str):
    """``(lengths, values)`` of one contender, sorted by length; memory values below 1 MiB
    (RSS growth too small to measure) are left out, as a log axis cannot show them."""
    points = sorted(
        (r["length"], r[field][name])
        for r in results
        if r["what"] == what and r["mode"] == mode and name in r[field]
    )
    if field == "peak_bytes":
        points = [(n, v) for n, v in points if v >= 2**20]
    return [n for n, _ in points], [v for _, v in points]


def slope(lengths: Sequence[int], values: Sequence[float]) -> float | None:
    """Least-squares exponent k of value ~ length^k (None for fewer than 3 points)."""
    if len(lengths) < 3:
        return None
    xs, ys = [math.log(n) for n in lengths], [math.log(v) for v in values]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum(
        (x - mx) ** 2 for x in xs
    )


def _title(metas: list[dict]) -> str:
    first = metas[0]
    dates = sorted({m["date"][:10] for m in metas})
    machine = first.get("machine_description") or (
        f"{first['machine']} CPU, {first['nproc']} cores" if "nproc" in first else first["machine"]
    )
    threads = {m.get("torch_threads") for m in metas}
    thread_text = f", {threads.pop()} torch thread(s)" if len(threads) == 1 else ""
    return (
        f"BigBird attention alone (12 heads x 64, block 64, r = 3, batch 1, {first['dtype']}): "
        f"{machine}{thread_text}, torch {first['torch']}, {', '.join(dates)}"
    )


def attention_figure(metas: list[dict], results: list[dict], what: str = "attention"):
    """The two-panel figure (time, peak memory) for workload ``what``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    fig, axes = plt.subplots(1, 2, figsize=(13, 5.6), dpi=110)
    panels = (
        (axes[0], "median_s", 1e3, "median time per call (ms)", "Time"),
        (axes[1], "peak_bytes", 1 / 2**20, "peak memory growth (MiB)", "Peak memory"),
    )
    lengths_seen: set[int] = set()
    for ax, field, scale, ylabel, name in panels:
        for mode, (_, style, marker) in MODES.items():
            for contender, (label, colour) in CONTENDERS.items():
                xs, ys = series(results, what, mode, field, contender)
                if not xs:
                    continue
                lengths_seen.update(xs)
                k = slope(xs, ys)
                ax.plot(
                    xs,
                    [y * scale for y in ys],
                    style,
                    marker=marker,
                    color=colour,
                    linewidth=2,
                    markersize=5,
                    label=f"{label}, {MODES[mode][0]}"
                    + (f" ($\\propto L^{{{k:.2f}}}$)" if k else ""),
                )
        _guides(ax)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("sequence length L (tokens; 4k tokens = about 32 kbp of DNA)")
        ax.set_ylabel(ylabel)
        ax.set_title(name + (" (CPU: growth of the process RSS)" if "peak" in field else ""))
        ax.grid(True, which="major", alpha=0.35)
        ax.grid(True, which="minor", alpha=0.12)
        ax.legend(fontsize=7.5, loc="upper left", framealpha=0.9)
    ticks = sorted(lengths_seen)
    for ax in axes:
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x / 1024:g}k"))
    handles = [
        Line2D([], [], color="black", linestyle=MODES[m][1], marker=MODES[m][2], label=MODES[m][0])
        for m in MODES
    ]
    handles.append(
        Line2D(
            [], [], color="#bbbbbb", linestyle=":", label="guides: $L$ and $L^2$ (slopes 1 and 2)"
        )
    )
    handles.append(
        Line2D(
            [], [], linestyle="", label="$\\propto L^k$: least-squares slope over the lengths shown"
        )
    )
    fig.legend(handles=handles, loc="lower center", ncol=4, fontsize=9, frameon=False)
    fig.suptitle(_title(metas), fontsize=10)
    fig.tight_layout(rect=(0, 0.05, 1, 0.96))
    return fig


def _guides(ax) -> None:
    """Dotted L and L^2 lines through the lowest plotted point at the smallest length."""
    lines = [line for line in ax.get_lines() if len(line.get_xdata())]
    if not lines:
        return
    x0 = min(min(line.get_xdata()) for line in lines)
    x1 = max(max(line.get_xdata()) for line in lines)
    y0 = min(
        y
        for line in lines
        for x, y in zip(line.get_xdata(), line.get_ydata(), strict=True)
        if x == x0
    )
    for power in (1, 2):
        ax.plot(
            [x0, x1],
            [y0, y0 * (x1 / x0) ** power],
            ":",
            color="#bbbbbb",
            linewidth=1.2,
            zorder=0,
        )
        ax.annotate(
            "$L$" if power == 1 else "$L^2$",
            (x1, y0 * (x1 / x0) ** power),
            fontsize=8,
            color="#888888",
            xytext=(3, 0),
            textcoords="offset points",
        )


def plot_attention(paths: Sequence[str | Path], out: str | Path, what: str = "attention") -> Path:
    """Draw :func:`attention_figure` from the JSON files ``paths`` into the PNG ``out``
    (written under a temporary name and renamed)."""
    import matplotlib.pyplot as plt

    metas, results = load_results(paths)
    if not any(r["what"] == what for r in results):
        raise SystemExit(f"no {what!r} results in {', '.join(map(str, paths))}")
    fig = attention_figure(metas, results, what)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial.png")
    fig.savefig(partial)
    plt.close(fig)
    partial.replace(out)
    return out


def plot_pattern(out: str | Path, num_blocks: int = 32, head: int = 0) -> Path:
    """The ``base`` preset's pattern (block 64, 2 global ITC blocks, window 3, 3 random
    blocks) over ``num_blocks`` blocks, layer 0, one head, written to the PNG ``out``."""
    from dnabird.model.config import BigBirdConfig
    from dnabird.model.patterns import make_pattern
    from dnabird.plots import plot_block_pattern

    pattern = make_pattern(BigBirdConfig.preset("base"), num_blocks=num_blocks, layer=0)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    plot_block_pattern(pattern, out, head=head)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="figure", required=True)
    att = sub.add_parser("attention", help="time and memory vs length (attention.py --json)")
    att.add_argument("json", nargs="+", type=Path, help="benchmarks/attention.py --json output")
    att.add_argument("--out", type=Path, default=Path("docs/images/attention_scaling.png"))
    att.add_argument("--what", default="attention", choices=["attention", "layer"])
    pat = sub.add_parser("pattern", help="the block-sparse pattern of one head")
    pat.add_argument("--out", type=Path, default=Path("docs/images/attention_pattern.png"))
    pat.add_argument("--blocks", type=int, default=32, help="blocks of 64 tokens")
    args = parser.parse_args(argv)
    if args.figure == "pattern":
        print(f"wrote {plot_pattern(args.out, args.blocks)}")
    else:
        print(f"wrote {plot_attention(args.json, args.out, args.what)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
