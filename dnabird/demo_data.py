"""The inputs of ``dnabird demo``: real files when the shared data folder is present, a
seeded synthetic stand-in for each of them otherwise, and the small files the demo writes
to show prediction (a FASTA of test windows, a VCF of variants near a binding site).

Real (:func:`dnabird.testing.shared_data_dir`): the hg38 chr2 excerpt, the EPDnew TATA-box
promoters, ENCODE CTCF peaks, three neuronal (NeuN) tracks of Nott et al. 2019 and three
classes of the Ensembl Regulatory Build; the focus site is the strongest CTCF summit of the
test region.

Synthetic (:func:`synthetic_data`): :func:`synthetic_genome` (an order-3 Markov chain with
interspersed repeats) into which :func:`plant_elements` writes four kinds of elements at
seeded, well separated sites, each a track with its own peaks:

- ``CTCF_like``: the CTCF core motif :data:`CTCF_MOTIF` (either strand), peak 200 bp;
- ``GATA_like``: three copies of :data:`GATA_MOTIF` 40 bp apart, peak 200 bp;
- ``promoter``: a TATA box at -31 and an initiator at the TSS, peak -249..+50 (300 bp);
- ``CpG_island``: 500 bp drawn with 70% G+C, peak the 500 bp.

The promoter task gets 300 bp positives of the same design (:func:`synthetic_promoters`:
genome sequence with the TATA box and initiator written in, TSS at offset 249 as in
EPDnew's -249..+50 windows); the focus site is the first ``CTCF_like`` site of the test
region. Coordinates are 0-based and half-open throughout.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from dnabird.errors import ConfigError
from dnabird.files import write_text_atomic

if TYPE_CHECKING:
    from dnabird.data.peaks import TrackSource

log = logging.getLogger(__name__)

REAL_GENOME = "genome/hg38_chr2_1-2333275.fa.gz"
REAL_PROMOTERS = "promoters/human_TATA_EPDnew_300bp.txt"
REAL_CTCF = "chromatin/ENCFF252PLM_CTCF_GRCh38.narrowPeak.gz"
REAL_BRAIN = "chromatin/nott2019_brain_peaks_hg38_chr2_1-2333275.bed"
REAL_ENSEMBL = "chromatin/ensembl_regulatory_GRCh38"
BRAIN_CELL_TYPE = "NeuN"
"""The Nott et al. cell type kept (neurons): its ATAC, H3K27ac and H3K4me3 tracks."""
ENSEMBL_CLASSES = ("enhancer", "ocr", "promoter")

CTCF_MOTIF = "CCACCAGGGGGCGC"
GATA_MOTIF = "AGATAA"
TATA_BOX = "TATAAAAG"
INITIATOR = "TCAGTC"
PROMOTER_BP = 300
TSS_OFFSET = 249
"""0-based offset of the TSS in a promoter window (-249..+50, as EPDnew's)."""
SITE_SPACING = 3_000
"""bp between the centres of neighbouring synthetic element slots."""
_TRACKS = ("CTCF_like", "GATA_like", "promoter", "CpG_island")


@dataclass
class DemoData:
    """Everything the demo reads: ``genome`` (FASTA, one record ``chrom`` whose bases are
    ``sequence``), ``promoters`` (300 bp positives, one per line), the peak ``tracks``
    (:class:`~dnabird.data.peaks.TrackSource`), the ``focus`` site (0-based position on
    ``chrom``, in the held-out end) that variants and mutagenesis look at, and where each
    came from."""

    synthetic: bool
    genome: Path
    chrom: str
    sequence: str
    promoters: Path
    tracks: list[TrackSource]
    focus: int
    focus_track: str
    """The track whose peak holds the focus site (the mutagenesis heatmap shows it)."""
    sources: dict[str, str]
    """``{input: description}`` for the summary and the report."""


def real_data(data: Path, out: Path, held_out_bp: int, promoters: int, seed: int) -> DemoData:
    """The real inputs under ``data``; writes into ``out`` a seeded sample of ``promoters``
    EPDnew promoters (``promoters.txt``) and the NeuN tracks of the brain BED
    (``brain_NeuN.bed``). The focus site is the strongest CTCF summit of the last
    ``held_out_bp`` bp."""
    from dnabird.data.peaks import TrackSource
    from dnabird.genome.fasta import read_fasta
    from dnabird.genome.intervals import iter_bed

    genome = data / REAL_GENOME
    chrom, sequence = next(iter(read_fasta(genome).items()))
    test_start = len(sequence) - held_out_bp
    lines = (data / REAL_PROMOTERS).read_text(encoding="ascii").split()
    chosen = np.sort(np.random.default_rng(seed).permutation(len(lines))[:promoters])
    write_text_atomic(out / "promoters.txt", "".join(lines[i] + "\n" for i in chosen))
    brain = [
        line
        for line in (data / REAL_BRAIN).read_text(encoding="ascii").splitlines(keepends=True)
        if line.startswith("#") or line.split("\t")[3].endswith(f"_{BRAIN_CELL_TYPE}")
    ]
    write_text_atomic(out / f"brain_{BRAIN_CELL_TYPE}.bed", "".join(brain))
    ensembl = data / REAL_ENSEMBL
    tracks = [
        TrackSource.parse(f"CTCF={data / REAL_CTCF}"),
        TrackSource.column(out / f"brain_{BRAIN_CELL_TYPE}.bed"),
        *(
            TrackSource.parse(
                f"{name}={ensembl / 'train' / name}.csv.gz,{ensembl / 'test' / name}.csv.gz"
            )
            for name in ENSEMBL_CLASSES
        ),
    ]
    peaks = [
        p
        for p in iter_bed(data / REAL_CTCF)
        if p.chrom == chrom and test_start <= p.start and p.end <= len(sequence)
    ]
    if not peaks:
        raise ConfigError(
            f"no CTCF peak in the held-out {chrom}:{test_start}-{len(sequence)}; hold out more"
        )
    strongest = max(peaks, key=lambda p: float(p.extra[0]))  # signalValue
    focus = strongest.start + int(strongest.extra[3])  # + summit offset
    return DemoData(
        synthetic=False,
        genome=genome,
        chrom=chrom,
        sequence=sequence,
        promoters=out / "promoters.txt",
        tracks=tracks,
        focus=focus,
        focus_track="CTCF",
        sources={
            "genome": f"{genome} (record {chrom}, {len(sequence):,} bp, hg38)",
            "promoters": f"{promoters:,} of the {len(lines):,} EPDnew human TATA-box promoters "
            f"(300 bp, seeded sample) of {data / REAL_PROMOTERS}",
            "peaks": f"ENCODE CTCF ChIP-seq ({data / REAL_CTCF}), Nott et al. 2019 "
            f"{BRAIN_CELL_TYPE} ATAC/H3K27ac/H3K4me3 ({data / REAL_BRAIN}), Ensembl Regulatory "
            f"Build {'/'.join(ENSEMBL_CLASSES)} ({ensembl})",
            "focus": f"{chrom}:{focus} (0-based), summit of the strongest ENCODE CTCF peak "
            f"of the test region ({strongest.label}, signalValue {float(strongest.extra[0]):.1f})",
        },
    )


def synthetic_data(out: Path, length: int, held_out_bp: int, promoters: int, seed: int) -> DemoData:
    """The synthetic inputs (module docstring), written into ``out``: ``genome.fa``,
    ``promoters.txt`` (``promoters`` positives drawn outside the last ``held_out_bp`` bp)
    and ``peaks.bed`` (one track per name in column 4)."""
    from dnabird.data.peaks import TrackSource
    from dnabird.genome.fasta import write_fasta

    chrom, test_start = "synth1", length - held_out_bp
    log.info("no real data found: generating a %s bp synthetic genome", f"{length:,}")
    sequence, peaks = plant_elements(synthetic_genome(length, seed), seed)
    write_fasta(out / "genome.fa", [(chrom, sequence)])
    bed = "".join(f"{chrom}\t{start}\t{end}\t{track}\n" for start, end, track in peaks)
    write_text_atomic(out / "peaks.bed", bed)
    positives = synthetic_promoters(sequence[:test_start], promoters, seed)
    write_text_atomic(out / "promoters.txt", "".join(p + "\n" for p in positives))
    centres = [(a + b) // 2 for a, b, track in peaks if track == "CTCF_like" and a >= test_start]
    if not centres:
        raise ConfigError(
            f"no planted CTCF_like site in the held-out {chrom}:{test_start}-{length}"
        )
    centre = centres[0]
    counts = {track: sum(p[2] == track for p in peaks) for track in _TRACKS}
    return DemoData(
        synthetic=True,
        genome=out / "genome.fa",
        chrom=chrom,
        sequence=sequence,
        promoters=out / "promoters.txt",
        tracks=[TrackSource.column(out / "peaks.bed")],
        focus=centre,
        focus_track="CTCF_like",
        sources={
            "genome": f"SYNTHETIC genome ({length:,} bp, seed {seed})",
            "promoters": f"{promoters:,} SYNTHETIC 300 bp promoters (TATA box at -31, "
            "initiator at the TSS, in synthetic genome sequence)",
            "peaks": "SYNTHETIC planted elements, one track each: "
            + ", ".join(f"{track} {n}" for track, n in counts.items()),
            "focus": f"{chrom}:{centre} (0-based), centre of the first planted CTCF_like motif "
            "of the test region",
        },
    )


def synthetic_genome(length: int, seed: int) -> str:
    """Return a seeded synthetic DNA sequence of ``length`` bp.

    An order-3 Markov chain with random transition probabilities, into which copies of a
    few hundred repeat elements (300-3000 bp, 0-15% point mutations) are inserted, so that
    both local composition and long repeats give a language model something to learn.
    """
    rng = np.random.default_rng(seed)
    bases = np.frombuffer(b"ACGT", dtype=np.uint8)
    transitions = rng.dirichlet(np.full(4, 0.6), size=64).cumsum(axis=1)  # [64 contexts, 4]
    draws = rng.random(length)
    out = np.empty(length, dtype=np.uint8)
    context = 0
    for i in range(length):  # ~1 s per Mbp
        base = int(np.searchsorted(transitions[context], draws[i]))
        out[i] = min(base, 3)
        context = (context * 4 + out[i]) % 64
    repeats = [
        out[s : s + n].copy()
        for s, n in zip(
            rng.integers(0, length - 3000, 300), rng.integers(300, 3000, 300), strict=True
        )
    ]
    position = int(rng.integers(2_000, 20_000))
    while position < length:
        element = repeats[int(rng.integers(len(repeats)))].copy()
        mutated = rng.random(len(element)) < rng.uniform(0.0, 0.15)
        element[mutated] = rng.integers(0, 4, int(mutated.sum()))
        end = min(position + len(element), length)
        out[position:end] = element[: end - position]
        position = end + int(rng.integers(2_000, 20_000))
    return bases[out].tobytes().decode("ascii")


def plant_elements(
    sequence: str, seed: int, occupancy: float = 0.8
) -> tuple[str, list[tuple[int, int, str]]]:
    """Write the elements of the module docstring into ``sequence``: one per slot of
    :data:`SITE_SPACING` bp (a seeded ``occupancy`` share of the slots, kinds in equal
    numbers, centres jittered by up to 500 bp). Returns the new sequence and the peaks
    ``[(start, end, track)]`` in genome order."""
    from dnabird.genome.fasta import reverse_complement

    rng = np.random.default_rng([seed, 1])
    bases = bytearray(sequence, "ascii")
    slots = np.arange(SITE_SPACING // 2, len(bases) - SITE_SPACING // 2, SITE_SPACING)
    used = np.sort(rng.choice(slots, size=int(occupancy * len(slots)), replace=False))
    kinds = rng.permutation(np.resize(np.arange(len(_TRACKS)), len(used)))
    peaks = []
    for slot, kind in zip(used, kinds, strict=True):
        centre = int(slot + rng.integers(-500, 501))
        track = _TRACKS[kind]
        if track == "CTCF_like":
            motif = CTCF_MOTIF.encode()
            motif = reverse_complement(motif) if rng.random() < 0.5 else motif
            start = centre - len(motif) // 2
            bases[start : start + len(motif)] = motif
            peaks.append((centre - 100, centre + 100, track))
        elif track == "GATA_like":
            for offset in (-40, 0, 40):
                motif = GATA_MOTIF.encode()
                motif = reverse_complement(motif) if rng.random() < 0.5 else motif
                bases[centre + offset : centre + offset + len(motif)] = motif
            peaks.append((centre - 100, centre + 100, track))
        elif track == "promoter":
            _write_promoter(bases, centre)
            peaks.append((centre - TSS_OFFSET, centre - TSS_OFFSET + PROMOTER_BP, track))
        else:
            island = rng.choice(list(b"ACGT"), size=500, p=[0.15, 0.35, 0.35, 0.15])
            bases[centre - 250 : centre + 250] = bytes(island.astype(np.uint8))
            peaks.append((centre - 250, centre + 250, track))
    return bases.decode("ascii"), peaks


def synthetic_promoters(sequence: str, count: int, seed: int) -> list[str]:
    """``count`` 300 bp promoters: slices of ``sequence`` at seeded positions with the TATA
    box and initiator of a planted promoter written in (TSS at offset 249)."""
    rng = np.random.default_rng([seed, 2])
    promoters = []
    for start in rng.integers(0, len(sequence) - PROMOTER_BP, count):
        window = bytearray(sequence[start : start + PROMOTER_BP], "ascii")
        _write_promoter(window, TSS_OFFSET)
        promoters.append(window.decode("ascii"))
    return promoters


def _write_promoter(bases: bytearray, tss: int) -> None:
    """The core promoter at ``tss``: TATA box at -31..-24, initiator at -2..+4."""
    bases[tss - 31 : tss - 31 + len(TATA_BOX)] = TATA_BOX.encode()
    bases[tss - 2 : tss - 2 + len(INITIATOR)] = INITIATOR.encode()


def write_variants(path: Path, genome: Path, chrom: str, focus: int) -> list[str]:
    """Write a VCF of five records around ``focus`` (0-based) of ``chrom``, REF read from
    ``genome``: an SNV at the focus, a 3 bp insertion 14 bp before it, a 5 bp deletion 6 bp
    after it, a two-ALT SNV 16 bp after it and, 21 bp after it, an SNV whose REF is wrong on
    purpose (flagged ``ref_match False``). Returns the record IDs in file order."""
    from dnabird.genome.regions import Genome

    with Genome(genome) as reference:
        length = reference.lengths[chrom]
        around = reference.fetch(chrom, focus - 20, focus + 30)  # around[20] is the focus

    def base(offset: int) -> str:
        return around[20 + offset]

    transition = {"A": "G", "G": "A", "C": "T", "T": "C", "N": "A"}
    others = [b for b in "ACGT" if b != base(16)]
    wrong = transition[base(21)]
    records = [
        (-14, "ins_3bp", base(-14), base(-14) + "GCG", "0.03"),
        (0, "snv_focus", base(0), transition[base(0)], "0.12"),
        (6, "del_5bp", around[26:32], base(6), "0.01"),
        (16, "two_alts", base(16), f"{others[0]},{others[1]}", "0.20,0.05"),
        (21, "wrong_ref", wrong, transition[wrong], "0.50"),
    ]
    header = [
        "##fileformat=VCFv4.2",
        f"##contig=<ID={chrom},length={length}>",
        '##INFO=<ID=AF,Number=A,Type=Float,Description="Allele frequency (made up)">',
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO",
    ]
    lines = [
        f"{chrom}\t{focus + offset + 1}\t{name}\t{ref}\t{alt}\t.\tPASS\tAF={af}"
        for offset, name, ref, alt, af in records
    ]
    write_text_atomic(path, "\n".join(header + lines) + "\n")
    return [r[1] for r in records]
