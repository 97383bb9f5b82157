"""Benchmark: ``dnabird preprocess`` vs a plain biopython ``SeqIO`` loop doing the same cutting.

Claim measured: throughput in Mbp of document sequence written per second per core (all
passes counted) and peak RSS, on the real hg38 chr2 excerpt, on a generated genome of
``--genome-mbp`` Mbp (3 chromosomes, random ACGT with 35% soft-masked stretches and N gaps,
written as gzip like UCSC's hg19.fa.gz, deleted afterwards) and on ``--records`` short
generated records (200-2,000 bp, plain FASTA, ``--min-length 0``, ``--records-passes``
passes) like a draft assembly or a transcript set. For the many-record input it also fits
how our time grows with the record count (exponent over records/4, /2, x1; 1 is linear).
Before work units and one reader per process, 5,000 contigs took 132 s and the time grew
with the square of the record count (pyfaidx reopened per record).

The peer reads the same file with ``Bio.SeqIO.parse``, uppercases each record, finds N gaps
with a regular expression, draws sentence (500-1000 bp) and document (50-100 sentences)
lengths one at a time with ``random.Random`` and writes the same columns to Parquet (zstd)
from Python lists: what a straightforward script would do.

Timing: both tools run in this process, alternating, after a warm-up on the excerpt, single
worker (one core each); medians are reported. Peak RSS: each tool runs once more in a fresh
subprocess that reports its own ``ru_maxrss``. Then the projection for GRCh37 x 10 passes on
16 cores. Usage::

    python benchmarks/preprocess.py                 # excerpt, 300 Mbp genome, 100,000 records
    python benchmarks/preprocess.py --genome-mbp 0 --records 0  # excerpt only
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

#: chr1-22, X, Y of GRCh37 (data_manifests/grch37.json): an upper bound of the bp written
#: per pass, since N gaps are not written.
GRCH37_PRIMARY_BP = 3_095_677_412
#: ``--min-length`` for genome inputs (the default); many-record inputs use 0.
GENOME = 1_000_000


def run_ours(
    fasta: Path, out: Path, passes: int, workers: int = 1, min_length: int = GENOME
) -> int:
    """Run dnabird preprocess; return bp of document sequence written."""
    from dnabird.genome import preprocess

    manifest = preprocess(
        fasta, out, passes=passes, workers=workers, min_length=min_length, overwrite=True
    )
    return manifest["counts"]["total"]["bp"]


def run_peer(fasta: Path, out: Path, passes: int, min_length: int = 0, seed: int = 0) -> int:
    """The plain biopython loop: same cutting rules, one sentence at a time, every record
    of at least ``min_length`` bp."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from Bio import SeqIO

    out.mkdir(parents=True, exist_ok=True)
    opener = gzip.open if fasta.suffix == ".gz" else open
    written = 0
    with opener(fasta, "rt") as handle:
        for record in SeqIO.parse(handle, "fasta"):
            if len(record) < min_length:
                continue
            sequence = str(record.seq).upper()
            gaps = [(m.start(), m.end()) for m in re.finditer("N{50,}", sequence)]
            bounds = [0] + [x for gap in gaps for x in gap] + [len(sequence)]
            segments = list(zip(bounds[0::2], bounds[1::2], strict=True))
            for p in range(passes):
                rng = random.Random(f"{seed}:{record.id}:{p}")
                rows = []
                for seg_start, seg_end in segments:
                    sentences, pos = [], seg_start
                    while seg_end - pos >= 500:
                        remaining = seg_end - pos
                        if remaining <= 1000:
                            length = remaining
                        else:
                            length = rng.randint(500, min(1000, remaining - 500))
                        sentences.append((pos, pos + length))
                        pos += length
                    i = 0
                    while i < len(sentences):
                        left = len(sentences) - i
                        size = left if left <= 100 else rng.randint(50, min(100, left - 50))
                        group = sentences[i : i + size]
                        i += size
                        rows.append(
                            {
                                "doc_id": f"{record.id}:p{p}:+:{len(rows):06d}",
                                "chrom": record.id,
                                "pass": p,
                                "strand": "+",
                                "start": group[0][0],
                                "end": group[-1][1],
                                "sentences": [sequence[a:b] for a, b in group],
                            }
                        )
                        written += group[-1][1] - group[0][0]
                table = pa.Table.from_pylist(rows)
                pq.write_table(table, out / f"{record.id}-p{p}.parquet", compression="zstd")
    return written


def generate_genome(folder: Path, total_mbp: int, seed: int = 0) -> Path:
    """Write a gzip FASTA of ``total_mbp`` Mbp in 3 chromosomes (60 bp lines)."""
    rng = np.random.default_rng(seed)
    path = folder / "generated.fa.gz"
    lengths = [total_mbp * 1_000_000 // 3] * 3
    with gzip.open(path, "wb", compresslevel=1) as out:
        for i, length in enumerate(lengths, start=1):
            codes = np.frombuffer(b"ACGT", np.uint8)[rng.integers(0, 4, length)]
            for start in rng.integers(0, length - 5000, length // 20_000):  # soft-masking
                codes[start : start + 7000] |= 0x20
            codes[:10_000] = ord("N")  # telomeres and a few internal gaps
            codes[-10_000:] = ord("N")
            for start in rng.integers(20_000, length - 200_000, 5):
                codes[start : start + 50_000] = ord("N")
            pad = (-length) % 60
            lines = np.concatenate([codes, np.full(pad, 0, np.uint8)]).reshape(-1, 60)
            text = np.concatenate([lines, np.full((len(lines), 1), 10, np.uint8)], axis=1)
            body = text.tobytes()
            if pad:
                body = body[: -(pad + 1)] + b"\n"
            out.write(f">chr{i}\n".encode() + body)
    return path


def generate_records(folder: Path, records: int, seed: int = 0) -> Path:
    """Write a plain FASTA of ``records`` records of 200-2,000 bp (random ACGT, 60 bp lines)."""
    rng = np.random.default_rng(seed)
    path = folder / f"records-{records}.fa"
    alphabet = np.frombuffer(b"ACGT", np.uint8)
    with open(path, "wb") as out:
        for i, length in enumerate(rng.integers(200, 2001, records).tolist()):
            codes = alphabet[rng.integers(0, 4, length)].tobytes()
            lines = [codes[j : j + 60] for j in range(0, length, 60)]
            out.write(f">contig{i:06d}\n".encode() + b"\n".join(lines) + b"\n")
    return path


def time_scaling(folder: Path, records: int, passes: int) -> tuple[list[tuple[int, float]], float]:
    """Time ours once on records/4, records/2 and records; return the (records, seconds)
    points and the fitted exponent of seconds ~ records^k."""
    points = []
    for count in (records // 4, records // 2, records):
        fasta = generate_records(folder, count)
        start = time.perf_counter()
        run_ours(fasta, folder / "scaling", passes, min_length=0)
        points.append((count, time.perf_counter() - start))
        shutil.rmtree(folder / "scaling", ignore_errors=True)
        fasta.unlink()
    counts, seconds = np.log([p[0] for p in points]), np.log([p[1] for p in points])
    return points, float(np.polyfit(counts, seconds, 1)[0])


def measure_rss(
    tool: str, fasta: Path, passes: int, workers: int = 1, min_length: int = GENOME
) -> tuple[float, float]:
    """Run ``tool`` once in a fresh subprocess; return (seconds, its peak RSS in MiB)."""
    with tempfile.TemporaryDirectory() as tmp:
        child = [tool, str(fasta), tmp, str(passes), str(workers), str(min_length)]
        proc = subprocess.run(
            [sys.executable, __file__, "--child", *child],
            capture_output=True,
            text=True,
            check=True,
        )
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return result["seconds"], result["rss_mib"]


def _child(tool: str, fasta: str, out: str, passes: str, workers: str, min_length: str) -> None:
    start = time.perf_counter()
    if tool == "ours":
        run_ours(Path(fasta), Path(out) / "o", int(passes), int(workers), int(min_length))
    else:
        run_peer(Path(fasta), Path(out) / "o", int(passes), int(min_length))
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "rss_mib": _peak_rss_kib() / 1024}))


def _peak_rss_kib() -> int:
    """This process's peak RSS (VmHWM). Not ru_maxrss: on Linux that also counts the parent's
    RSS at fork/exec time, which would hide the difference between the two tools."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def time_fixed_costs(fasta: Path, work: Path) -> tuple[float, float]:
    """Seconds of the single-process steps (scan, input sha256, plain copy of gzip) and the
    input's length in Mbp."""
    from dnabird.files import sha256_file
    from dnabird.genome.fasta import scan_fasta
    from dnabird.genome.index import prepare_source

    start = time.perf_counter()
    scan = scan_fasta(fasta)
    sha256_file(fasta)
    prepare_source(scan, work / "fixed-cache")
    seconds = time.perf_counter() - start
    shutil.rmtree(work / "fixed-cache", ignore_errors=True)
    return seconds, sum(scan.lengths.values()) / 1e6


def time_pair(
    fasta: Path, passes: int, repeats: int, work: Path, min_length: int = GENOME
) -> dict[str, list[float]]:
    """Alternate ours and peer ``repeats`` times; return seconds and bp written per tool."""
    times: dict[str, list[float]] = {"ours": [], "peer": []}
    written: dict[str, int] = {}
    for _ in range(repeats):
        for tool, fn in (("ours", run_ours), ("peer", run_peer)):
            out = work / tool
            shutil.rmtree(out, ignore_errors=True)
            start = time.perf_counter()
            written[tool] = fn(fasta, out, passes, min_length=min_length)
            times[tool].append(time.perf_counter() - start)
            shutil.rmtree(out, ignore_errors=True)
    return {"times": times, "written": written}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--genome-mbp", type=int, default=300)
    parser.add_argument("--passes", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per tool (excerpt)")
    parser.add_argument("--genome-repeats", type=int, default=1, help="timed runs (generated)")
    parser.add_argument("--records", type=int, default=100_000, help="many-record input (0: skip)")
    parser.add_argument("--records-passes", type=int, default=1, help="passes (many records)")
    parser.add_argument("--child", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(*args.child)
        return
    from dnabird.progress import set_enabled
    from dnabird.testing import shared_data_dir

    set_enabled(False)
    rows = []
    with tempfile.TemporaryDirectory(prefix="dnabird-bench-") as tmp:
        work = Path(tmp)
        datasets = []
        shared = shared_data_dir()
        if shared is not None:
            excerpt = shared / "genome/hg38_chr2_1-2333275.fa.gz"
            datasets.append(
                ("hg38 chr2 excerpt (bgzip)", excerpt, args.repeats, args.passes, GENOME)
            )
        if args.genome_mbp:
            start = time.perf_counter()
            generated = generate_genome(work, args.genome_mbp)
            print(f"generated {args.genome_mbp} Mbp genome in {time.perf_counter() - start:.0f} s")
            name = f"generated {args.genome_mbp} Mbp (gzip)"
            datasets.append((name, generated, args.genome_repeats, args.passes, GENOME))
        if args.records:
            contigs = generate_records(work, args.records)
            name = f"{args.records:,} records x {args.records_passes} pass(es)"
            datasets.append((name, contigs, args.genome_repeats, args.records_passes, 0))
        warm = datasets[0][1]
        time_pair(warm, 1, 1, work)  # warm-up: imports, page cache
        big = [d for d in datasets if d[4] == GENOME]  # the projection uses genome-like inputs
        for name, fasta, repeats, passes, min_length in datasets:
            result = time_pair(fasta, passes, repeats, work, min_length)
            rss = {t: measure_rss(t, fasta, passes, 1, min_length) for t in ("ours", "peer")}
            for tool in ("ours", "peer"):
                seconds = statistics.median(result["times"][tool])
                mbp = result["written"][tool] / 1e6
                rows.append((name, tool, seconds, mbp, mbp / seconds, rss[tool][1], rss[tool][0]))
            print_table(rows[-2:])
        if big:
            ours_rate = min(r[4] for r in rows if r[1] == "ours" and r[0] in {d[0] for d in big})
            fixed_s, fixed_mbp = time_fixed_costs(big[-1][1], work)
        scaling = time_scaling(work, args.records, args.records_passes) if args.records else None
    print("\nAll results")
    print_table(rows)
    if scaling:
        points, exponent = scaling
        shown = ", ".join(f"{n:,} records {s:.1f} s" for n, s in points)
        print(f"\nOurs vs record count ({shown}): time ~ records^{exponent:.2f} (1 = linear).")
    if not big:
        return
    written = GRCH37_PRIMARY_BP * 10 / 1e6
    fixed = fixed_s * GRCH37_PRIMARY_BP / 1e6 / fixed_mbp
    parallel = written / (ours_rate * 16)
    print(
        f"\nSingle-process steps (scan, sha256, plain copy of gzip) on {big[-1][0]}: "
        f"{fixed_s:.2f} s for {fixed_mbp:.1f} Mbp ({fixed_mbp / fixed_s:.0f} Mbp/s)."
        f"\nProjection, GRCh37 x 10 passes (<= {written:,.0f} Mbp written) on 16 cores: "
        f"{fixed / 60:.1f} min single-process steps + {parallel / 60:.1f} min of units at the "
        f"slowest rate of ours on a genome input ({ours_rate:.1f} Mbp/s/core, which includes "
        f"those steps) = {(fixed + parallel) / 60:.1f} min."
    )


def print_table(rows: list[tuple]) -> None:
    print(f"{'dataset':32} {'tool':5} {'median s':>9} {'Mbp out':>9} {'Mbp/s/core':>11} "
          f"{'peak RSS MiB':>13} {'ratio':>7}")  # fmt: skip
    by_name: dict[str, dict[str, float]] = {}
    for name, tool, *_rest in rows:
        by_name.setdefault(name, {})[tool] = _rest[2]
    for name, tool, seconds, mbp, rate, rss, _ in rows:
        ratio = rate / by_name[name]["peer"] if "peer" in by_name[name] else float("nan")
        ratio_text = f"{ratio:.1f}x" if tool == "ours" else ""
        print(
            f"{name:32} {tool:5} {seconds:9.2f} {mbp:9.1f} {rate:11.2f} {rss:13.0f} {ratio_text:>7}"
        )


if __name__ == "__main__":
    main()
