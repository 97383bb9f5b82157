"""Variant effects: each VCF allele scored in a reference and an alternative window.

**The window rule.** Windows are fixed in bp, not tokens (tokens shift around an indel).
For a variant whose REF starts at 0-based ``s`` and a window of ``W`` bp, both windows
start at ``s - W // 2``: the same ``W // 2`` bp of left flank, then the allele (REF or
ALT), then right flank from the genome after REF (``genome[s + len(REF):]``) up to ``W``
bp. So the variant's first base sits at offset ``W // 2`` of both windows, both are exactly
``W`` bp, and an SNV's two windows differ in that base alone; an insertion's alternative
window ends earlier in the genome, a deletion's later. An allele longer than ``W - W // 2``
bp, a window reaching past the chromosome, an unknown chromosome and an allele the reader
marks unsupported (symbolic, breakend, ``*``) go to the ``.NA`` file with the reason.

**REF check.** ``ref_match`` says whether the genome holds the VCF's REF at ``s``. A
mismatch is never scored silently: it is counted, listed in the summary and flagged
``False``; its reference window carries the VCF's REF (so the two windows still differ by
the variant alone). ``skip_ref_mismatch`` sends such rows to the ``.NA`` file instead.

**Scores** (:data:`SCORES`), per output feature, from probabilities ``p``: ``ref`` and
``alt`` (``p`` of each window), ``diff = alt - ref``, ``abs_diff = |alt - ref|`` and
``logit_diff = logit(alt) - logit(ref)`` (log-odds, ``p`` clipped to ``[1e-7, 1 -
1e-7]``). Columns: ``chrom pos name ref alt strand ref_match contains_unk`` (Selene's
variant columns; ``name`` is the VCF ID, ``strand`` always ``+``, ``contains_unk``: either
window holds an ``N``), the requested INFO fields, then the features.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence

import numpy as np

from dnabird.errors import ConfigError
from dnabird.predict.inputs import Row, off_genome
from dnabird.predict.predictor import Predictor

SCORES = ("ref", "alt", "diff", "abs_diff", "logit_diff")
"""The scores ``variant-effect`` can write (see the module docstring)."""

_CLIP = 1e-7


def check_scores(scores: Sequence[str]) -> tuple[str, ...]:
    """``scores`` (unique, in the given order), each one of :data:`SCORES`."""
    unknown = [s for s in scores if s not in SCORES]
    if unknown or not scores:
        raise ConfigError(
            f"unknown score(s) {', '.join(unknown) or '(none given)'}; choose from "
            f"{', '.join(SCORES)}"
        )
    return tuple(dict.fromkeys(scores))


def variant_windows(reference: str, left: str, right: str, alt: str, width: int) -> tuple[str, str]:
    """The reference and alternative windows of ``width`` bp: ``left`` flank (``width //
    2`` bp) + allele + ``right`` flank (the genome after REF, at least ``width - width // 2
    - min(len(REF), len(ALT))`` bp), each cut to ``width``."""
    return (left + reference + right)[:width], (left + alt + right)[:width]


class VariantWindows:
    """The rows of a VCF file: each allele's two windows from ``genome`` (see the module
    docstring)."""

    na_columns = ("chrom", "pos", "name", "ref", "alt")

    def __init__(
        self,
        vcf: str | os.PathLike,
        genome: str | os.PathLike,
        window_bp: int,
        *,
        info_fields: Sequence[str] = (),
        skip_ref_mismatch: bool = False,
    ) -> None:
        self.vcf, self.genome, self.window_bp = vcf, genome, window_bp
        self.source = str(vcf)
        self.info_fields = tuple(info_fields)
        self.skip_ref_mismatch = skip_ref_mismatch
        self.columns = (
            ("chrom", "str"),
            ("pos", "int"),
            ("name", "str"),
            ("ref", "str"),
            ("alt", "str"),
            ("strand", "str"),
            ("ref_match", "bool"),
            ("contains_unk", "bool"),
            *((f"info_{key}", "str") for key in self.info_fields),
        )
        self.ref_mismatches = 0

    def rows(self) -> Iterator[Row]:
        """One row per ALT allele, in file order."""
        from dnabird.genome.regions import Genome
        from dnabird.genome.vcf import iter_vcf

        half = self.window_bp // 2
        room = self.window_bp - half
        self.ref_mismatches = 0
        with Genome(self.genome) as genome:
            for v in iter_vcf(self.vcf, info_fields=self.info_fields):
                na_ids = (v.chrom, v.pos, v.id, v.ref, v.alt)
                longest = max(len(v.ref), len(v.alt))
                start = v.start - half
                reason = v.unsupported or off_genome(
                    genome, v.chrom, start, v.start + len(v.ref) + room
                )
                if reason is None and longest > room:
                    reason = f"allele of {longest} bp, longer than half the window ({room} bp)"
                if reason is not None:
                    yield Row((), (), na_ids, reason)
                    continue
                in_genome = genome.fetch(v.chrom, v.start, v.end)
                ref_match = in_genome == v.ref
                if not ref_match:
                    self.ref_mismatches += 1
                    if self.skip_ref_mismatch:
                        yield Row((), (), na_ids, f"REF does not match the genome ({in_genome})")
                        continue
                left = genome.fetch(v.chrom, start, v.start)
                right = genome.fetch(v.chrom, v.end, v.end + room)
                ref_window, alt_window = variant_windows(v.ref, left, right, v.alt, self.window_bp)
                unknown = "N" in ref_window or "N" in alt_window
                info = tuple(v.info.get(key, "") for key in self.info_fields)
                ids = (v.chrom, v.pos, v.id, v.ref, v.alt, "+", ref_match, unknown, *info)
                yield Row(ids, (ref_window, alt_window), na_ids)

    def count(self) -> int:
        """How many rows :meth:`rows` yields (reads the VCF once)."""
        from dnabird.genome.vcf import iter_vcf

        return sum(1 for _ in iter_vcf(self.vcf))


class VariantScorer:
    """The :data:`~dnabird.predict.engine.Scorer` of ``variant-effect``: both windows of
    every row in one call, then the chosen ``scores``."""

    def __init__(self, scores: Sequence[str]) -> None:
        self.scores = check_scores(scores)

    def __call__(
        self, predictor: Predictor, rows: Sequence[Row]
    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        values, fits = predictor.predict(
            [row.sequences[0] for row in rows] + [row.sequences[1] for row in rows]
        )
        count = len(rows)
        scored = fits[:count] & fits[count:]
        return variant_scores(values[:count][scored], values[count:][scored], self.scores), scored


def variant_scores(
    ref: np.ndarray, alt: np.ndarray, scores: Sequence[str]
) -> dict[str, np.ndarray]:
    """The chosen ``scores`` (float32 ``[N, F]`` each) from the probabilities of the
    reference and alternative windows (``[N, F]`` each)."""
    out = {}
    for name in scores:
        if name == "ref":
            value = ref
        elif name == "alt":
            value = alt
        elif name == "diff":
            value = alt.astype(np.float64) - ref
        elif name == "abs_diff":
            value = np.abs(alt.astype(np.float64) - ref)
        else:
            value = _logit(alt) - _logit(ref)
        out[name] = np.asarray(value, dtype=np.float32)
    return out


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p.astype(np.float64), _CLIP, 1 - _CLIP)
    return np.log(p) - np.log1p(-p)
