"""Reference genomes: validated FASTA reading, region access, intervals, pretraining corpora.

The data's paths:

- Pretraining: FASTA (plain/gzip/bgzip) -> :mod:`~dnabird.genome.fasta` (scan and validate)
  -> :mod:`~dnabird.genome.chromosomes` (which records) -> :mod:`~dnabird.genome.index`
  (make it readable at random) -> :mod:`~dnabird.genome.cutting` (seeded sentence/document
  intervals per chromosome and pass) -> :mod:`~dnabird.genome.corpus` (Parquet shards,
  :class:`Corpus` reader), driven by :mod:`~dnabird.genome.preprocess` (work units, process
  pool, resume) and, for downloads, :mod:`~dnabird.genome.fetch`.
- Fine-tuning and prediction: BED/narrowPeak -> :mod:`~dnabird.genome.intervals`
  (:func:`read_bed`) -> :mod:`~dnabird.genome.regions` (:class:`Genome`, ``fetch`` with N
  padding and strand); query sequences -> :func:`~dnabird.genome.fasta.iter_fasta`.

All coordinates are 0-based, half-open, on the forward strand (like BED)::

    from dnabird.genome import Corpus, Genome, preprocess, read_bed
    preprocess("GRCh37.fa.gz", "corpus/", passes=10, seed=0, workers=8)
    for doc in Corpus("corpus/"):
        doc.doc_id, doc.chrom, doc.start, doc.end, doc.sentences
    with Genome("GRCh37.fa.gz") as genome:
        windows = [genome.fetch(r.chrom, r.start, r.end, r.strand) for r in read_bed("peaks.bed")]
"""

from dnabird.genome.corpus import Corpus, Document
from dnabird.genome.cutting import CuttingParams
from dnabird.genome.fasta import iter_fasta, read_fasta
from dnabird.genome.intervals import Interval, read_bed
from dnabird.genome.preprocess import PreprocessOptions, preprocess
from dnabird.genome.regions import Genome

__all__ = [
    "Corpus",
    "CuttingParams",
    "Document",
    "Genome",
    "Interval",
    "PreprocessOptions",
    "iter_fasta",
    "preprocess",
    "read_bed",
    "read_fasta",
]
