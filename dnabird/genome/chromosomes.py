"""Which FASTA records are chromosomes to cut: naming styles and primary-assembly selection.

Human references name chromosomes two ways: UCSC (``chr1`` .. ``chr22``, ``chrX``,
``chrY``, ``chrM``) and Ensembl/NCBI (``1`` .. ``22``, ``X``, ``Y``, ``MT``). By default the
primary assembly is cut: the 24 chromosomes chr1-22, X and Y in either style, in karyotype
order. Mitochondria, unlocalised/unplaced contigs (``_random``, ``chrUn``), alternate
haplotypes (``_alt``, ``_hap``), decoys and patches are skipped, and so are contigs shorter
than a minimum length, unless they are named explicitly. For a genome without human
chromosome names, every record that is not such a contig and is long enough is cut.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from dnabird.errors import ConfigError

#: The primary human chromosomes in karyotype order, UCSC style.
PRIMARY_CHROMOSOMES: tuple[str, ...] = tuple(f"chr{i}" for i in range(1, 23)) + ("chrX", "chrY")

_MITO = {"chrm", "chrmt", "m", "mt"}
_EXTRA_CONTIG = re.compile(
    r"(_random|_alt|_hap\d*|_fix|_decoy|^chrun|^un_|^gl\d|^kn\d|^hs37d5|^chrebv|^ebv$|hla-)",
    re.IGNORECASE,
)

#: Default minimum record length (bp) for records outside the primary chromosomes.
DEFAULT_MIN_LENGTH = 1_000_000


def canonical_name(name: str) -> str | None:
    """``chr7``/``7`` -> ``chr7``; ``X``/``chrX`` -> ``chrX``; None if not a primary chromosome."""
    bare = name[3:] if name.lower().startswith("chr") else name
    candidate = f"chr{bare.upper() if bare.upper() in ('X', 'Y') else bare}"
    return candidate if candidate in PRIMARY_CHROMOSOMES else None


def skip_reason(name: str, length: int, min_length: int) -> str | None:
    """Why a non-primary record is skipped by default, or None if it is kept."""
    if name.lower() in _MITO:
        return "mitochondrion"
    if _EXTRA_CONTIG.search(name):
        return "unplaced, alternate, decoy or patch contig"
    if length < min_length:
        return f"shorter than the minimum length {min_length:,} bp"
    return None


@dataclass
class Selection:
    """The records to cut (in cutting order) and those skipped, each with the reason."""

    chromosomes: list[str]
    skipped: dict[str, str] = field(default_factory=dict)


def select_chromosomes(
    lengths: dict[str, int],
    requested: list[str] | None = None,
    min_length: int = DEFAULT_MIN_LENGTH,
) -> Selection:
    """Choose records from ``lengths`` ({record name: bp}, in file order).

    ``requested``: names to cut (either naming style); any record may be named, even a
    skipped kind. Without it: the primary chromosomes present, in karyotype order; if the
    file has none, every record not skipped by :func:`skip_reason`, in file order.
    Raises ConfigError if a requested name is absent or nothing is left to cut.
    """
    by_canonical = {canonical_name(n): n for n in lengths if canonical_name(n)}
    if requested:
        chosen: list[str] = []
        for want in requested:
            name = want if want in lengths else by_canonical.get(canonical_name(want) or "")
            if name is None:
                more = ", ..." if len(lengths) > 8 else ""
                raise ConfigError(
                    f"--chromosomes: {want!r} is not a record of the FASTA "
                    f"(records: {', '.join(list(lengths)[:8])}{more})"
                )
            if name not in chosen:
                chosen.append(name)
        skipped = {n: "not listed in --chromosomes" for n in lengths if n not in chosen}
        return Selection(_karyotype_order(chosen, list(lengths)), skipped)
    if by_canonical:
        chosen = [by_canonical[c] for c in PRIMARY_CHROMOSOMES if c in by_canonical]
        skipped = {
            n: skip_reason(n, lengths[n], min_length) or "not a primary chromosome"
            for n in lengths
            if n not in chosen
        }
    else:
        reasons = {n: skip_reason(n, length, min_length) for n, length in lengths.items()}
        chosen = [n for n, reason in reasons.items() if reason is None]
        skipped = {n: reason for n, reason in reasons.items() if reason is not None}
    if not chosen:
        raise ConfigError(
            "no chromosome left to cut: every record was skipped "
            f"({', '.join(f'{n}: {r}' for n, r in list(skipped.items())[:3])}); "
            "name records with --chromosomes or lower --min-length"
        )
    return Selection(chosen, skipped)


def _karyotype_order(names: list[str], file_order: list[str]) -> list[str]:
    """Primary chromosomes first in karyotype order, then the others in file order."""
    rank = {c: i for i, c in enumerate(PRIMARY_CHROMOSOMES)}
    position = {n: i for i, n in enumerate(file_order)}

    def key(name: str) -> tuple[int, int]:
        canonical = canonical_name(name)
        if canonical is not None:
            return (0, rank[canonical])
        return (1, position[name])

    return sorted(names, key=key)
