"""Tests of dnabird.genome.cutting: partition, gap detection and whole-chromosome cuts."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dnabird.errors import ConfigError
from dnabird.genome.cutting import CuttingParams, cut_chromosome, n_runs, partition, unit_rng


@settings(max_examples=200, deadline=None)
@given(
    total=st.integers(1, 200_000),
    lo=st.integers(1, 600),
    extra=st.integers(0, 700),
    seed=st.integers(0, 2**32 - 1),
)
def test_partition_parts_sum_to_total_and_respect_bounds(total, lo, extra, seed):
    hi = 2 * lo - 1 + extra  # the feasible regime: hi >= 2 * lo - 1
    parts = partition(total, lo, hi, np.random.default_rng(seed))
    assert parts.sum() == total
    assert (parts <= hi).all()
    if total >= lo:
        assert (parts >= lo).all()
    else:
        assert parts.tolist() == [total]


def test_partition_infeasible_bounds_only_shorten_the_last_part():
    rng = np.random.default_rng(0)
    for total in range(1, 200):
        parts = partition(total, 5, 6, rng)
        assert parts.sum() == total
        assert (parts[:-1] >= 5).all() and (parts <= 6).all()


def test_partition_draws_are_spread_over_the_range():
    parts = partition(10_000_000, 500, 1000, np.random.default_rng(1))[:-5]
    assert parts.min() == 500 and parts.max() == 1000
    assert abs(parts.mean() - 750) < 2  # uniform mean; ~13k draws, sd of mean ~1.3


def _naive_runs(mask: list[bool], min_run: int) -> list[tuple[int, int]]:
    runs, start = [], None
    for i, value in enumerate([*mask, False]):
        if value and start is None:
            start = i
        elif not value and start is not None:
            if i - start >= min_run:
                runs.append((start, i))
            start = None
    return runs


def _as_sequence(mask) -> bytes:
    """A sequence whose N (either case) are where ``mask`` is True."""
    return bytes(b"ACGTNn"[4 + i % 2] if m else b"ACGT"[i % 4] for i, m in enumerate(mask))


@settings(max_examples=200, deadline=None)
@given(mask=st.lists(st.booleans(), max_size=300))
def test_n_runs_matches_a_naive_scan(mask):
    starts, ends = n_runs(_as_sequence(mask))
    assert list(zip(starts.tolist(), ends.tolist(), strict=True)) == _naive_runs(mask, 1)


def test_unit_rng_depends_on_seed_chromosome_and_pass_only():
    draw = lambda *key: unit_rng(*key).integers(0, 2**62, size=4).tolist()  # noqa: E731
    assert draw(0, "chr1", 0) == draw(0, "chr1", 0)
    others = [draw(1, "chr1", 0), draw(0, "chr2", 0), draw(0, "chr1", 1)]
    assert all(o != draw(0, "chr1", 0) for o in others)


def _check_cut(is_n: np.ndarray, params: CuttingParams, seed: int) -> None:
    """Check every rule of the module docstring against a direct reading of the mask."""
    runs = n_runs(_as_sequence(is_n))
    cut = cut_chromosome(len(is_n), *runs, params, np.random.default_rng(seed))
    starts, ends = cut.sentence_starts, cut.sentence_ends
    lengths = ends - starts
    assert (lengths >= params.min_sentence).all() and (lengths <= params.max_sentence).all()
    assert (starts[1:] >= ends[:-1]).all()  # ordered, no overlap
    gaps = _naive_runs(is_n.tolist(), params.max_n_run)
    in_gap = np.zeros(len(is_n), bool)
    for a, b in gaps:
        in_gap[a:b] = True
    covered = np.zeros(len(is_n), bool)
    for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
        assert not in_gap[a:b].any()
        assert is_n[a:b].sum() <= params.max_n_fraction * (b - a)
        covered[a:b] = True
    # Everything outside gaps is covered, except short segments and N-rich sentences.
    uncovered = (~in_gap & ~covered).sum()
    assert uncovered == cut.short_segment_bp + cut.n_rich_bp
    assert cut.gap_bp == in_gap.sum()
    # Documents: consecutive touching sentences; a short document only between breaks.
    offsets = cut.doc_offsets
    assert offsets[0] == 0 and offsets[-1] == len(starts)
    for d in range(cut.num_documents):
        first, last = offsets[d], offsets[d + 1]
        assert last - first <= params.max_doc
        assert (starts[first + 1 : last] == ends[first : last - 1]).all()
        if last - first < params.min_doc:
            before_ok = first == 0 or starts[first] != ends[first - 1]
            after_ok = last == len(starts) or starts[last] != ends[last - 1]
            assert before_ok and after_ok, "short document inside an unbroken run"
    for d in range(cut.num_documents - 1):  # touching documents form one run: both full
        if ends[offsets[d + 1] - 1] == starts[offsets[d + 1]]:
            assert offsets[d + 1] - offsets[d] >= params.min_doc
            assert offsets[d + 2] - offsets[d + 1] >= params.min_doc


@settings(max_examples=150, deadline=None)
@given(
    mask=st.lists(st.sampled_from([False] * 6 + [True]), min_size=1, max_size=1500),
    runs=st.lists(st.tuples(st.integers(0, 1500), st.integers(1, 40)), max_size=5),
    seed=st.integers(0, 1000),
)
def test_cut_chromosome_obeys_every_rule(mask, runs, seed):
    is_n = np.array(mask, dtype=bool)
    for start, length in runs:  # add some long gaps
        is_n[start : start + length] = True
    params = CuttingParams(
        min_sentence=20, max_sentence=45, min_doc=3, max_doc=6, max_n_run=8, max_n_fraction=0.2
    )
    _check_cut(is_n, params, seed)


def test_cut_of_a_clean_chromosome_covers_it_exactly_with_default_bounds():
    is_n = np.zeros(3_000_000, bool)
    is_n[:10_000] = True  # a telomere gap
    runs = n_runs(_as_sequence(is_n))
    cut = cut_chromosome(len(is_n), *runs, CuttingParams(), np.random.default_rng(3))
    assert cut.sentence_starts[0] == 10_000 and cut.sentence_ends[-1] == 3_000_000
    sizes = np.diff(cut.doc_offsets)
    assert sizes.min() >= 50 and sizes.max() <= 100
    bp = cut.doc_ends - cut.doc_starts
    assert bp.min() >= 25_000 and bp.max() <= 100_000


def test_cutting_params_reject_disordered_bounds():
    with pytest.raises(ConfigError, match="sentence lengths"):
        CuttingParams(min_sentence=10, max_sentence=5).validate()
    with pytest.raises(ConfigError, match="document sizes"):
        CuttingParams(min_doc=0).validate()
