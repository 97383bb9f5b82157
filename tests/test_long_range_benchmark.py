"""The long-range benchmark's data (``benchmarks/long_range.py``) on tiny sizes: where motifs
are planted, the label rules, determinism by seed, and the token windows."""

from __future__ import annotations

import numpy as np
import pytest

from dnabird.errors import ConfigError, InputError


@pytest.fixture(scope="module")
def bench(load_benchmark):
    return load_benchmark("long_range")


def small_design(bench, **overrides):
    values = dict(
        seq_bp=2400, motif_bp=12, pair_labels=2, local_labels=2, zone_bp=200, edge_bp=100, copies=2
    )
    return bench.Design(**{**values, **overrides})


def generate(bench, design, count, seed):
    motifs = bench.make_motifs(design, seed)
    rng = np.random.default_rng([seed, 1])
    return motifs, bench.generate_examples(count, design, motifs, bench.random_background, rng)


def test_design_zones_and_rejected_layouts(bench):
    design = small_design(bench)
    assert design.zones() == ((100, 300), (2100, 2300), (1100, 1300))
    with pytest.raises(ConfigError, match="8 slots of 24 bp, fewer than 10 .*raise --zone-bp"):
        small_design(bench, copies=5)
    assert small_design(bench, copies=5, zone_bp=240).zones()[0] == (100, 340)
    assert bench.parse_args(["--out", "x", "--zone-bp", "1600"]).zone_bp == 1600
    with pytest.raises(ConfigError, match="raise --seq-bp to at least 800"):
        small_design(bench, seq_bp=700)  # local zone [250, 450) meets the pair zone [100, 300)


def test_motifs_are_distinct_and_not_reverse_complements(bench):
    design = small_design(bench, pair_labels=6, local_labels=6, motif_bp=4, seq_bp=6000)
    motifs = bench.make_motifs(design, seed=3)
    assert list(motifs) == design.motif_names()
    seqs = list(motifs.values())
    assert all(len(m) == 4 and set(m) <= set("ACGT") for m in seqs)
    for i, m in enumerate(seqs):
        for other in seqs[:i]:
            assert m != other and m != other[::-1].translate(str.maketrans("ACGT", "TGCA"))
    assert bench.make_motifs(design, seed=3) == motifs


def test_motif_positions_and_label_rules(bench):
    design = small_design(bench)
    motifs, examples = generate(bench, design, 300, seed=1)
    left, right, local = (100, 300), (2100, 2300), (1100, 1300)
    assert examples.features.ids == ("pair_0", "pair_1", "local_0", "local_1")
    assert examples.features.categories == ("pair", "pair", "local", "local")

    def zone_of(start):
        for zone in (left, right, local):
            if zone[0] <= start and start + design.motif_bp <= zone[1]:
                return zone
        raise AssertionError(f"copy at {start} lies in no zone")

    for i, seq in enumerate(examples.sequences):
        assert len(seq) == design.seq_bp
        taken = []
        for name, motif in motifs.items():
            starts = list(examples.columns[f"{name}.starts"][i])
            # found independently: every occurrence in the sequence is a recorded copy
            found = [p for p in range(len(seq)) if seq.startswith(motif, p)]
            assert found == starts
            assert motif[::-1].translate(str.maketrans("ACGT", "TGCA")) not in seq
            assert len(starts) in (0, design.copies)
            zones = {zone_of(s) for s in starts}
            assert len(zones) <= 1
            if starts:
                assert zones == ({local} if name.startswith("local") else zones & {left, right})
            taken += [(s, s + design.motif_bp) for s in starts]
        taken.sort()
        assert all(a[1] <= b[0] for a, b in zip(taken, taken[1:], strict=False))
        for k in range(design.pair_labels):
            a = list(examples.columns[f"pair_{k}.a.starts"][i])
            b = list(examples.columns[f"pair_{k}.b.starts"][i])
            assert examples.labels[i, k] == (
                motifs[f"pair_{k}.a"] in seq and motifs[f"pair_{k}.b"] in seq
            )
            if a and b:  # opposite pair zones
                assert {zone_of(a[0]), zone_of(b[0])} == {left, right}
        for k in range(design.local_labels):
            assert examples.labels[i, design.pair_labels + k] == (motifs[f"local_{k}"] in seq)

    # half the pair labels are 1 (each motif present with probability sqrt(1/2)), and each
    # of A, B is also often present alone (the negatives a one-motif model cannot separate)
    rates = examples.labels.mean(axis=0)
    assert np.all(np.abs(rates - 0.5) < 0.1), rates
    a_alone = [
        bool(examples.columns["pair_0.a.starts"][i]) and not examples.labels[i, 0]
        for i in range(len(examples))
    ]
    assert 0.1 < np.mean(a_alone) < 0.3


def test_generation_is_deterministic_by_seed(bench):
    design = small_design(bench)
    motifs, first = generate(bench, design, 20, seed=5)
    again_motifs, again = generate(bench, design, 20, seed=5)
    other_motifs, other = generate(bench, design, 20, seed=6)
    assert motifs == again_motifs and first.sequences == again.sequences
    assert np.array_equal(first.labels, again.labels)
    assert motifs != other_motifs and first.sequences != other.sequences


def test_chunked_generation_does_not_depend_on_workers(bench, tmp_path):
    from dnabird.genome.regions import Genome

    design = small_design(bench)
    motifs = bench.make_motifs(design, 3)
    bases = "".join(np.random.default_rng(0).choice(list("ACGT"), size=20_000))
    (tmp_path / "g.fa").write_text(f">chrT\n{bases}\n")
    with Genome(tmp_path / "g.fa", cache_dir=tmp_path / "cache") as genome:
        for background in (
            bench.random_background,
            bench.GenomeBackground(genome, "chrT", 0, 20_000),
        ):
            count = 2 * bench.CHUNK + 7
            one = bench.generate_in_chunks(count, design, motifs, background, [3, 1], workers=1)
            three = bench.generate_in_chunks(count, design, motifs, background, [3, 1], workers=3)
            assert len(one) == count and one.sequences == three.sequences
            assert np.array_equal(one.labels, three.labels)
            assert one.columns.keys() == three.columns.keys()
            for key in one.columns:
                assert list(one.columns[key]) == list(three.columns[key])
            first_chunk = bench.generate_examples(
                bench.CHUNK, design, motifs, background, np.random.default_rng([3, 1, 0])
            )
            assert one.sequences[: bench.CHUNK] == first_chunk.sequences


def test_genome_background_skips_n_rich_windows(bench, tmp_path):
    from dnabird.genome.regions import Genome

    rng = np.random.default_rng(0)
    bases = "".join(rng.choice(list("ACGT"), size=3000))
    record = bases[:1000] + "N" * 1000 + bases[2000:]  # N in [1000, 2000)
    lines = "\n".join(record[i : i + 60] for i in range(0, len(record), 60))
    (tmp_path / "g.fa").write_text(f">chrT\n{lines}\n")
    with Genome(tmp_path / "g.fa", cache_dir=tmp_path / "cache") as genome:
        background = bench.GenomeBackground(genome, "chrT", 0, 3000)
        draw = np.random.default_rng(1)
        for _ in range(30):
            seq, where = background(draw, 400)
            assert where["chrom"] == "chrT" and where["end"] - where["start"] == 400
            assert seq == genome.fetch("chrT", where["start"], where["end"], where["strand"])
            assert seq.count("N") <= bench.MAX_N
        with pytest.raises(InputError, match="no 1500 bp window"):
            background(draw, 1500)
        with pytest.raises(ConfigError, match="shorter than"):
            bench.GenomeBackground(genome, "chrT", 0, 100)(draw, 400)


def test_windows_are_centred_token_runs(bench):
    from dnabird.tokenizer import DNATokenizer
    from dnabird.tokenizer.vocab import CLS_ID, PAD_ID, SEP_ID

    design = small_design(bench)
    _, examples = generate(bench, design, 12, seed=2)
    tokenizer = DNATokenizer.train(examples.sequences, 40, "bpe")
    centre = design.seq_bp // 2
    for window in (64, 4096):
        data = bench.encode_windows(
            tokenizer, tokenizer.encode_batch(examples.sequences), window, centre
        )
        assert data.input_ids.shape == data.attention_mask.shape == (12, window)
        for i, seq in enumerate(examples.sequences):
            ids = tokenizer.encode(seq)
            offsets = tokenizer.offsets(ids)
            row = data.input_ids[i][data.attention_mask[i] == 1].tolist()
            assert data.attention_mask[i][: len(row)].all()  # real tokens first, then padding
            assert (data.input_ids[i][len(row) :] == PAD_ID).all()
            assert data.tokens[i] == len(ids)
            assert row[0] == CLS_ID and row[-1] == SEP_ID
            content = row[1:-1]
            assert len(content) == min(window - 2, len(ids))
            start, end = data.spans[i]
            assert start <= centre < end
            first = int(np.flatnonzero(offsets[:, 0] == start)[0])
            assert content == ids[first : first + len(content)]
            assert offsets[first + len(content) - 1, 1] == end
            if window == 4096:
                assert (start, end) == (0, len(seq))
            else:  # as many tokens before the centre token as the window allows
                middle = int(
                    np.flatnonzero((offsets[:, 0] <= centre) & (centre < offsets[:, 1]))[0]
                )
                assert middle - first == (window - 2) // 2


def test_trimmed_padding_keeps_every_token(bench):
    from dnabird.tokenizer import DNATokenizer

    design = small_design(bench)
    _, examples = generate(bench, design, 12, seed=2)
    tokenizer = DNATokenizer.train(examples.sequences, 40, "bpe")
    encoded = tokenizer.encode_batch(examples.sequences)
    full = [bench.encode_windows(tokenizer, ids, 4096, 1200) for ids in (encoded[:8], encoded[8:])]
    trimmed = bench.trim_padding(full, block_size=16)
    longest = max(int(w.attention_mask.sum(axis=1).max()) for w in full)
    width = trimmed[0].input_ids.shape[1]
    assert width % 16 == 0 and longest <= width < longest + 16 and width < 4096
    for before, after in zip(full, trimmed, strict=True):
        assert after.input_ids.shape[1] == after.attention_mask.shape[1] == width
        assert np.array_equal(after.input_ids, before.input_ids[:, :width])
        assert not before.attention_mask[:, width:].any()  # only padding was cut
        assert np.array_equal(after.spans, before.spans)


def test_motifs_inside_counts_whole_copies(bench):
    from dnabird.data.multilabel import Features, MultiLabelExamples

    starts = np.empty(3, dtype=object)
    starts[0], starts[1], starts[2] = [10, 50], [], [95]
    local = np.empty(3, dtype=object)
    local[0], local[1], local[2] = [40], [60], []
    examples = MultiLabelExamples(
        ["A" * 200] * 3,
        np.zeros((3, 1)),
        Features.numbered(1),
        columns={"pair_0.a.starts": starts, "local_0.starts": local},
    )
    spans = np.array([[10, 54], [0, 70], [90, 102]])  # 0-based, half-open
    # 5 bp: pair copies 10 and 95 inside, 50 ends at 55 > 54; local 40 and 60 inside
    assert bench.motifs_inside(examples, spans, 5) == {"pair": [2, 3], "local": [2, 2]}
    # 11 bp: 95 ends at 106 > 102 and local 60 at 71 > 70
    assert bench.motifs_inside(examples, spans, 11) == {"pair": [1, 3], "local": [1, 2]}
