"""The preprocess pipeline on real data: the hg38 chr2 excerpt (bgzip, soft-masked, 10 kbp
of N at the start), read in place from the read-only shared data folder.

Checks the issue's list: sentence and document lengths within bounds; every document equals
the FASTA at its coordinates (pyfaidx, with its own freshly built index); within a pass,
documents do not overlap and cover the non-N sequence; passes differ; 1 and 2 workers give
identical bytes; a killed run resumes to the same result.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyfaidx
import pytest
from Bio.Seq import Seq

from dnabird.genome import Corpus, preprocess

pytestmark = pytest.mark.realdata

EXCERPT = "genome/hg38_chr2_1-2333275.fa.gz"
LENGTH = 2_333_275
PASSES = 2
#: Both strands of one pass (4.67 Mbp) fill a unit: one unit, and one shard, per pass.
SHARD_BP = 5_000_000


def _shard_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("shard-*.parquet"))}


@pytest.fixture(scope="module")
def runs(shared_data, tmp_path_factory):
    """One-worker and two-worker corpora (2 passes) and the reference sequence (uppercase)."""
    base = tmp_path_factory.mktemp("realdata")
    fasta = shared_data / EXCERPT
    common = {"passes": PASSES, "both_strands": True, "max_shard_bp": SHARD_BP}
    one = preprocess(fasta, base / "one", workers=1, **common)
    two = preprocess(fasta, base / "two", workers=2, **common)
    copy = Path(shutil.copy(fasta, base / "reference.fa.gz"))  # pyfaidx indexes it afresh
    with pyfaidx.Fasta(str(copy), as_raw=True) as reference:
        sequence = reference["chr2"][:]
    return {"base": base, "one": one, "two": two, "sequence": sequence, "fasta": fasta}


def test_lengths_within_bounds_and_documents_equal_the_fasta(runs):
    reference = pyfaidx.Fasta(str(runs["base"] / "reference.fa.gz"), as_raw=True)
    docs = list(Corpus(runs["base"] / "one"))
    assert len(docs) == runs["one"]["counts"]["total"]["documents"] > 0
    for doc in docs:
        assert all(500 <= len(s) <= 1000 for s in doc.sentences)
        assert 50 <= len(doc.sentences) <= 100
        assert 25_000 <= doc.end - doc.start <= 100_000
        expected = reference["chr2"][doc.start : doc.end].upper()
        if doc.strand == "-":
            expected = str(Seq(expected).reverse_complement())
        assert doc.sequence == expected, doc.doc_id
    reference.close()


def test_each_pass_covers_the_non_n_sequence_without_overlap(runs):
    sequence = np.frombuffer(runs["sequence"].upper().encode(), np.uint8)
    non_n = sequence != ord("N")
    assert non_n.sum() == LENGTH - 10_000  # the excerpt's only N are the leading gap
    docs = [d for d in Corpus(runs["base"] / "one") if d.strand == "+"]
    for p in range(PASSES):
        covered = np.zeros(LENGTH, np.int32)
        for doc in docs:
            if doc.pass_index == p:
                covered[doc.start : doc.end] += 1
        assert covered.max() == 1, "documents overlap"
        assert (covered.astype(bool) == non_n).all(), "coverage differs from the non-N sequence"


def test_passes_cut_at_different_places(runs):
    cuts = {p: set() for p in range(PASSES)}
    for doc in Corpus(runs["base"] / "one"):
        if doc.strand == "+":
            cuts[doc.pass_index].update(np.cumsum([len(s) for s in doc.sentences]) + doc.start)
    shared = cuts[0] & cuts[1]
    assert len(shared) / len(cuts[0]) < 0.02, "passes share most sentence boundaries"


def test_one_and_two_workers_write_identical_bytes(runs):
    one, two = _shard_bytes(runs["base"] / "one"), _shard_bytes(runs["base"] / "two")
    assert one and one == two
    assert runs["one"]["shards"] == runs["two"]["shards"] and len(runs["one"]["shards"]) == PASSES
    assert runs["one"]["counts"] == runs["two"]["counts"]


_KILLER = textwrap.dedent(
    """
    import os, signal, sys
    from dnabird.genome import preprocess

    def die(record):  # SIGKILL: no cleanup, like a crash or an OOM kill
        os.kill(os.getpid(), signal.SIGKILL)

    preprocess(sys.argv[1], sys.argv[2], passes=int(sys.argv[3]), both_strands=True,
               max_shard_bp=int(sys.argv[4]), on_unit_done=die)
    """
)


def test_killed_run_resumes_to_the_same_bytes(runs):
    out = runs["base"] / "killed"
    proc = subprocess.run(
        [sys.executable, "-c", _KILLER, str(runs["fasta"]), str(out), str(PASSES), str(SHARD_BP)],
        capture_output=True,
        timeout=300,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    assert not (out / "manifest.json").exists()
    done = sorted(p.parent.name for p in (out / ".units").glob("*/done.json"))
    assert done == ["000000"]
    resumed = []
    manifest = preprocess(
        runs["fasta"],
        out,
        passes=PASSES,
        both_strands=True,
        max_shard_bp=SHARD_BP,
        on_unit_done=resumed.append,
    )
    assert [r["items"] for r in resumed] == [[["chr2", 1]]]
    assert _shard_bytes(out) == _shard_bytes(runs["base"] / "one")
    assert manifest["shards"] == runs["one"]["shards"]
    assert json.loads((out / "manifest.json").read_text())["counts"] == runs["one"]["counts"]
