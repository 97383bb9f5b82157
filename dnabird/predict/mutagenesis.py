"""In-silico mutagenesis: every single-base substitution in a region, scored against the
reference prediction.

The region sits in one window of ``W`` bp chosen as ``predict`` and ``variant-effect``
choose theirs: for a genome region ``[s, e)`` the window starts at ``s + (e - s) // 2 -
W // 2`` (so a 1 bp region gets exactly the window ``variant-effect`` gives an SNV there,
and its effects equal that SNV's ``diff``); a FASTA record of at most ``W`` bp is centred
in the window and padded with ``N``. Each of the three other bases (all four at an ``N``)
at each position is substituted into the reference window and scored; the effect is
``P(mutant) - P(reference)`` per output feature. The mutants are scored in batches, so a
1 kbp region is about ``3000 / batch_size`` batched forward passes.

:func:`write_ism` stores ``effects`` float32 ``[positions, 4, features]`` (bases in
:data:`BASES` order; 0 at the reference base, NaN where a mutant's tokens did not fit the
model's window), ``reference`` float32 ``[features]``, ``sequence`` (the region's bases),
``features`` and the coordinates as attributes, in one HDF5 file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dnabird.errors import ConfigError, InputError
from dnabird.predict.predictor import Predictor

BASES = "ACGT"
"""The order of the substituted bases (axis 1 of ``effects``)."""


@dataclass
class IsmResult:
    """The mutagenesis of ``sequence`` (the region's reference bases, ``P`` bp) at
    ``chrom:start-end`` (or a FASTA record's ``name`` and its coordinates), scored in the
    window starting at ``window_start`` (same coordinates): ``reference`` float32 ``[F]``,
    ``effects`` float32 ``[P, 4, F]``, output ``columns`` ``[F]``."""

    name: str
    start: int
    end: int
    sequence: str
    window_start: int
    window_bp: int
    reference: np.ndarray
    effects: np.ndarray
    columns: tuple[str, ...]


def mutagenesis(
    predictor: Predictor, window: str, offset: int, length: int
) -> tuple[np.ndarray, np.ndarray]:
    """Score every substitution of ``window[offset : offset + length]``.

    Returns ``(reference float32 [F], effects float32 [length, 4, F])`` (see the module
    docstring). InputError when the reference window itself does not fit the model.
    """
    from dnabird.progress import progress

    reference, fits = predictor.predict([window])
    if not fits[0]:
        raise InputError(
            f"the {len(window)} bp window does not fit the model's window of "
            f"{predictor.classifier.window} tokens; use a smaller --window-bp"
        )
    effects = np.zeros((length, len(BASES), len(predictor.columns)), dtype=np.float32)
    mutants = [
        (p, b) for p in range(length) for b, base in enumerate(BASES) if base != window[offset + p]
    ]
    step = predictor.batch_size
    with progress(total=len(mutants), unit="mutant", desc="ism") as bar:
        for first in range(0, len(mutants), step):
            chunk = mutants[first : first + step]
            sequences = [
                window[: offset + p] + BASES[b] + window[offset + p + 1 :] for p, b in chunk
            ]
            values, _ = predictor.predict(sequences)  # NaN where a mutant does not fit
            for (p, b), row in zip(chunk, values, strict=True):
                effects[p, b] = row - reference[0]
            bar.update(len(chunk))
    return reference[0], effects


def ism_region(
    predictor: Predictor, genome: str | os.PathLike, chrom: str, start: int, end: int
) -> IsmResult:
    """:func:`mutagenesis` of the genome region ``chrom[start:end)`` (0-based, half-open)."""
    from dnabird.genome.regions import Genome
    from dnabird.predict.inputs import off_genome

    width = predictor.require_window_bp("ISM of a region")
    if not 0 < end - start <= width:
        raise ConfigError(
            f"region {chrom}:{start}-{end} must hold 1 to {width} bp (the window); "
            "use a shorter region or a larger --window-bp"
        )
    window_start = start + (end - start) // 2 - width // 2
    with Genome(genome) as reference:
        reason = off_genome(reference, chrom, window_start, window_start + width)
        if reason is not None:
            raise InputError(f"{genome}: region {chrom}:{start}-{end}: {reason}")
        window = reference.fetch(chrom, window_start, window_start + width)
    offset = start - window_start
    base, effects = mutagenesis(predictor, window, offset, end - start)
    return IsmResult(
        f"{chrom}:{start}-{end}",
        start,
        end,
        window[offset : offset + end - start],
        window_start,
        width,
        base,
        effects,
        predictor.columns,
    )


def ism_record(predictor: Predictor, name: str, sequence: str) -> IsmResult:
    """:func:`mutagenesis` of a whole sequence (a FASTA record), centred in the window."""
    width = predictor.window_bp or len(sequence)
    if not 0 < len(sequence) <= width:
        raise ConfigError(
            f"record {name} has {len(sequence)} bp; ISM takes 1 to {width} bp (the window)"
        )
    offset = (width - len(sequence)) // 2
    window = "N" * offset + sequence + "N" * (width - len(sequence) - offset)
    base, effects = mutagenesis(predictor, window, offset, len(sequence))
    return IsmResult(
        name, 0, len(sequence), sequence, -offset, width, base, effects, predictor.columns
    )


def write_ism(
    result: IsmResult, path: str | os.PathLike, model: str, precision: str = "32-true"
) -> Path:
    """Write ``result`` as one HDF5 file (atomically; see the module docstring); ``model``
    and ``precision`` (what the predictions ran at) are recorded as attributes."""
    import h5py

    from dnabird.files import atomic_path

    path = Path(path)
    strings = h5py.string_dtype(encoding="utf-8")
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as h5:
        h5.create_dataset("effects", data=result.effects, compression="gzip")
        h5.create_dataset("reference", data=result.reference.astype(np.float32))
        h5.create_dataset("sequence", data=result.sequence, dtype=strings)
        h5.create_dataset("features", data=np.array(result.columns, dtype=object), dtype=strings)
        h5.attrs.update(
            {
                "region": result.name,
                "start": result.start,
                "end": result.end,
                "window_start": result.window_start,
                "window_bp": result.window_bp,
                "bases": BASES,
                "model": model,
                "precision": precision,
                "effect": "P(mutant) - P(reference)",
            }
        )
    return path


def strongest_features(result: IsmResult, count: int = 1) -> list[str]:
    """The ``count`` output columns with the largest absolute effect anywhere."""
    peak = np.nanmax(np.abs(result.effects), axis=(0, 1))
    order = np.argsort(-np.nan_to_num(peak, nan=-1.0), kind="stable")
    return [result.columns[i] for i in order[:count]]
