"""Reference genome -> pretraining documents (the first stage of the BigBird recipe).

The data's path: FASTA (plain/gzip/bgzip) -> :mod:`~dnabird.genome.fasta` (validate, index
with pyfaidx) -> :mod:`~dnabird.genome.chromosomes` (which records) ->
:mod:`~dnabird.genome.cutting` (seeded sentence/document intervals per chromosome and pass)
-> :mod:`~dnabird.genome.corpus` (Parquet shards, :class:`Corpus` reader), driven by
:mod:`~dnabird.genome.preprocess` (process pool, resume) and, for downloads,
:mod:`~dnabird.genome.fetch`.

    from dnabird.genome import Corpus, preprocess
    preprocess("GRCh37.fa.gz", "corpus/", passes=10, seed=0, workers=8)
    for doc in Corpus("corpus/"):
        doc.doc_id, doc.chrom, doc.start, doc.end, doc.sentences
"""

from dnabird.genome.corpus import Corpus, Document
from dnabird.genome.cutting import CuttingParams
from dnabird.genome.preprocess import PreprocessOptions, preprocess

__all__ = ["Corpus", "CuttingParams", "Document", "PreprocessOptions", "preprocess"]
