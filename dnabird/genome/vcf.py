"""Small variants from VCF files: plain text, gzip or bgzip; one Variant per ALT allele.

Coordinates: VCF ``POS`` is 1-based, the position of the first REF base, and
:attr:`Variant.pos` keeps it as written; :attr:`Variant.start` and :attr:`Variant.end` give
the REF bases 0-based and half-open like BED (``start = pos - 1``, ``end = start +
len(ref)``), so ``Genome.fetch(v.chrom, v.start, v.end)`` returns the REF allele.

Layout: ``##`` meta lines, then the ``#CHROM`` line, whose first 8 tab-separated columns
must be ``#CHROM POS ID REF ALT QUAL FILTER INFO`` (sample columns after them are allowed
and ignored), then one record per line with at least those 8 columns. Blank lines are
skipped. REF and sequence ALT alleles are uppercased; QUAL, FILTER and samples are not read.

Multi-allelic records (``ALT`` = ``C,T``) are split: one :class:`Variant` per ALT, with
``alt_index`` its 1-based place in the list. ``info_fields`` names the INFO keys to keep,
as text (``''`` for a flag); a key absent from a record is left out of ``Variant.info``,
and keys need no ``##INFO`` declaration. A key declared ``Number=A`` (one value per ALT)
whose value has exactly one comma-separated entry per ALT gives each Variant its own
entry; every other value is kept whole.

Alleles that name no sequence are read, not refused: their Variant has ``kind == "other"``
and ``unsupported`` says why it cannot be scored from the reference: a symbolic ALT
(``<DEL>``, ``<INS>``, ``<*>``: no sequence given), breakend notation (``[`` or ``]``:
a rearrangement joining distant positions), the ``*`` allele (spanning deletion: the site
lies in a deletion described by another record), a missing ALT ``.``, or REF/ALT
characters outside ``ACGTN``. Symbolic and breakend alleles are kept as written.

BCF (binary VCF) is refused with the command that converts it: this reader is plain Python
over text, and pysam/cyvcf2 (htslib) are not dependencies. A malformed line raises
:class:`~dnabird.errors.InputError` as one line ``FILE:LINE: what; what to do``.
"""

from __future__ import annotations

import os
import re
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from dnabird.errors import InputError
from dnabird.files import open_text_input, require_file, text_lines

#: The fixed columns every ``#CHROM`` header line starts with, in order.
FIXED_COLUMNS = ("#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO")
_BASES = frozenset("ACGTN")
_BCF_MAGIC = b"BCF\x02"
_INFO_NUMBER = re.compile(r"##INFO=(?=.*?[<,]ID=([^,>]+))(?=.*?[<,]Number=([^,>]+))")


@dataclass(frozen=True)
class Variant:
    """One ALT allele of a VCF record at 1-based ``pos`` (see the module docstring)."""

    chrom: str
    """Chromosome name, as in the VCF."""
    pos: int
    """1-based position of the first REF base, as in the VCF."""
    id: str
    """The ID column (``.`` when absent)."""
    ref: str
    """Reference allele, uppercase."""
    alt: str
    """One alternative allele: uppercase sequence, or a symbolic/breakend allele as written."""
    alt_index: int
    """1-based index of this ALT in the record's ALT list."""
    line: int
    """1-based line of the record in the file."""
    info: dict[str, str] = field(hash=False)
    """The requested INFO fields present in the record, as text (``''`` for a flag)."""
    unsupported: str | None = None
    """None when the allele can be scored, otherwise why it cannot."""

    @property
    def start(self) -> int:
        """0-based start of REF (``pos - 1``)."""
        return self.pos - 1

    @property
    def end(self) -> int:
        """0-based, half-open end of REF (``start + len(ref)``)."""
        return self.start + len(self.ref)

    @property
    def kind(self) -> str:
        """``snv``, ``mnv`` (equal lengths > 1), ``insertion`` (ALT longer), ``deletion``
        (REF longer), or ``other`` when ``unsupported``."""
        if self.unsupported is not None:
            return "other"
        if len(self.alt) > len(self.ref):
            return "insertion"
        if len(self.alt) < len(self.ref):
            return "deletion"
        return "snv" if len(self.ref) == 1 else "mnv"


def iter_vcf(path: str | os.PathLike, *, info_fields: Sequence[str] = ()) -> Iterator[Variant]:
    """The variants of a VCF file in file order, one per ALT allele, streamed (see the
    module docstring). ``info_fields``: the INFO keys to keep in ``Variant.info``."""
    if isinstance(info_fields, str):
        raise TypeError(f"info_fields must be a sequence of keys, not the string {info_fields!r}")
    wanted = frozenset(info_fields)
    path = require_file(path, "VCF file")
    per_alt: set[str] = set()  # INFO keys declared Number=A
    header_seen = False
    with open_text_input(path) as handle:
        try:
            is_bcf = handle.read(len(_BCF_MAGIC)) == _BCF_MAGIC
        except (OSError, EOFError, zlib.error):
            is_bcf = False  # text_lines names the corrupt gzip data
    if is_bcf:
        raise InputError(
            f"{path}: this is BCF (binary VCF), which dnabird does not read; "
            f"convert it with: bcftools view {path} -Oz -o {path}.vcf.gz"
        )
    for number, line in text_lines(path, "VCF"):
        where = f"{path}:{number}"
        if not line.strip():
            continue
        if header_seen:
            if line.startswith("#"):
                raise InputError(
                    f"{where}: header line after the #CHROM line; a VCF has one header "
                    "(files joined with cat? join them with bcftools concat)"
                )
            yield from _variants(line, where, number, wanted, per_alt)
        elif line.startswith("##"):
            if (match := _INFO_NUMBER.match(line)) and match[2] == "A":
                per_alt.add(match[1])
        elif line.startswith("#"):
            _check_header(line, where)
            header_seen = True
        else:
            raise InputError(
                f"{where}: record before the #CHROM header line; a VCF starts with its "
                f"header, ending in the tab-separated line {' '.join(FIXED_COLUMNS)}"
            )


def read_vcf(
    path: str | os.PathLike, *, info_fields: Sequence[str] = (), allow_empty: bool = False
) -> list[Variant]:
    """All variants of a VCF file (see :func:`iter_vcf`). A file without any record is an
    InputError unless ``allow_empty``."""
    variants = list(iter_vcf(path, info_fields=info_fields))
    if not variants and not allow_empty:
        raise InputError(f"{path}: no variants (only header or blank lines)")
    return variants


def _check_header(line: str, where: str) -> None:
    columns = tuple(line.split("\t")[: len(FIXED_COLUMNS)])
    if columns != FIXED_COLUMNS:
        raise InputError(
            f"{where}: the header line must start with the tab-separated columns "
            f"{' '.join(FIXED_COLUMNS)}, found {line[:80]!r}"
        )


def _variants(
    line: str, where: str, number: int, wanted: frozenset[str], per_alt: set[str]
) -> Iterator[Variant]:
    fields = line.split("\t")
    if len(fields) < len(FIXED_COLUMNS):
        raise InputError(
            f"{where}: expected at least {len(FIXED_COLUMNS)} tab-separated columns "
            f"({' '.join(FIXED_COLUMNS)[1:]}), found {len(fields)}"
        )
    chrom, pos_text, variant_id, ref, alt_column = fields[:5]
    if not chrom:
        raise InputError(f"{where}: empty chromosome name in column 1 (CHROM)")
    if not (pos_text.isascii() and pos_text.isdigit()) or int(pos_text) == 0:
        raise InputError(
            f"{where}: POS {pos_text!r} is not a positive integer (VCF positions are 1-based)"
        )
    if not ref:
        raise InputError(f"{where}: empty REF in column 4; REF holds the reference base(s)")
    alts = alt_column.split(",")
    if "" in alts:
        raise InputError(
            f"{where}: empty allele in ALT {alt_column!r}; write '.' when there is no ALT"
        )
    ref = ref.upper()
    info = _info(fields[7], wanted) if wanted else {}
    for index, written in enumerate(alts, start=1):
        symbolic = written.startswith("<") or "[" in written or "]" in written
        alt = written if symbolic else written.upper()
        yield Variant(
            chrom,
            int(pos_text),
            variant_id,
            ref,
            alt,
            index,
            number,
            _per_alt(info, per_alt, index, len(alts)),
            _unsupported(ref, alt),
        )


def _info(column: str, wanted: frozenset[str]) -> dict[str, str]:
    """{key: value} of the ``wanted`` keys in an INFO column (``''`` for a flag; the empty
    column ``.`` has none)."""
    info = {}
    for entry in column.split(";"):
        key, _, value = entry.partition("=")
        if key in wanted:
            info[key] = value
    return info


def _per_alt(info: dict[str, str], per_alt: set[str], index: int, n_alts: int) -> dict[str, str]:
    """``info`` with each Number=A value that has one entry per ALT cut to ALT ``index``."""
    result = dict(info)
    for key, value in info.items():
        values = value.split(",")
        if key in per_alt and len(values) == n_alts:
            result[key] = values[index - 1]
    return result


def _unsupported(ref: str, alt: str) -> str | None:
    """Why ``ref`` -> ``alt`` cannot be scored from the reference sequence, or None."""
    if alt.startswith("<") and alt.endswith(">"):
        return f"symbolic ALT {alt} (no sequence given)"
    if "[" in alt or "]" in alt:
        return "breakend ALT (a rearrangement joining distant positions)"
    if alt == "*":
        return "'*' allele (spanning deletion described by another record)"
    if alt == ".":
        return "missing ALT '.' (no alternative allele)"
    for name, allele in (("REF", ref), ("ALT", alt)):
        if not set(allele) <= _BASES:
            return f"{name} {allele!r} has characters outside ACGTN"
    return None
