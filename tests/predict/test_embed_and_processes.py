"""``dnabird embed`` from a pretrained-only model (pooling checked against the encoder run
directly), and a two-process (gloo, CPU) run writing byte-identical files to one process."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from dnabird.predict import embed

from .conftest import cli, cli_process

RNG = np.random.default_rng(3)
RECORDS = {
    f"r{i}": "".join(RNG.choice(list("ACGT"), size=n)) for i, n in enumerate([90, 200, 33, 150, 61])
}


def _fasta(path: Path) -> Path:
    path.write_text("".join(f">{name}\n{seq}\n" for name, seq in RECORDS.items()))
    return path


def test_embeddings_pool_the_encoder_states(mlm_dir: Path, tmp_path: Path) -> None:
    from dnabird.data.classification import batch_tensors, pad_to_window
    from dnabird.model.pretrained import load_model, load_tokenizer

    fasta = _fasta(tmp_path / "r.fa")
    out = tmp_path / "e.h5"
    assert (
        cli(
            "embed",
            "--model",
            mlm_dir,
            "--fasta",
            fasta,
            "-o",
            out,
            "--per-token",
            "--batch-size",
            "2",
        )
        == 0
    )
    tokenizer = load_tokenizer(mlm_dir)
    encoder = load_model(mlm_dir).encoder.eval()
    ids = tokenizer.encode_batch(list(RECORDS.values()))
    with h5py.File(out) as h5:
        window = int(h5.attrs["window"])
        assert window % 16 == 0 and window >= max(map(len, ids)) + 2
        cls = h5["embeddings"][:]
        tokens, offsets, index = (
            h5["token_embeddings"][:],
            h5["token_offsets"][:],
            h5["token_index"][:],
        )
        assert [n.decode() for n in h5["names"][:]] == list(RECORDS)
    batch = batch_tensors(pad_to_window(ids, window))
    with torch.no_grad():
        hidden = encoder(batch["input_ids"], batch["attention_mask"]).numpy()
    np.testing.assert_allclose(cls, hidden[:, 0], atol=1e-5)
    assert list(np.diff(index)) == [len(x) for x in ids]
    for i, (name, sequence) in enumerate(RECORDS.items()):
        rows = slice(index[i], index[i + 1])
        np.testing.assert_allclose(tokens[rows], hidden[i, 1 : 1 + len(ids[i])], atol=1e-5)
        spans = offsets[rows]
        assert spans[0, 0] == 0 and spans[-1, 1] == len(sequence)
        assert "".join(sequence[a:b] for a, b in spans) == sequence, name
    mean = embed(mlm_dir, fasta=fasta, pool="mean", batch_size=5, device="cpu")
    expected = np.stack([hidden[i, 1 : 1 + len(x)].mean(axis=0) for i, x in enumerate(ids)])
    np.testing.assert_allclose(mean, expected, atol=1e-5)
    half = embed(mlm_dir, fasta=fasta, pool="mean", batch_size=5, precision="bf16-mixed")
    assert half.dtype == np.float32 and 0 < np.abs(half - mean).max() < 0.05 * np.abs(mean).max()


def test_two_processes_write_the_same_bytes_as_one(
    model_dir: Path, chr2: Path, tmp_path: Path
) -> None:
    fasta = _fasta(tmp_path / "r.fa")
    vcf = tmp_path / "v.vcf"
    vcf.write_text(
        "##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
        + "".join(f"chr2\t{p}\tv{p}\tN\tA\t.\t.\t.\n" for p in range(150001, 150008))
    )
    for name, command in {
        "p.tsv": ["predict", "--fasta", str(fasta), "--precision", "bf16-mixed"],
        "v.h5": [
            "variant-effect",
            "--vcf",
            str(vcf),
            "--genome",
            str(chr2),
            "--scores",
            "diff,alt",
        ],
    }.items():
        common = [*command, "--model", str(model_dir), "--batch-size", "2"]
        one = cli_process(*[*common, "-o", str(tmp_path / "one" / name)])
        assert one.returncode == 0, one.stderr
        two = cli_process(*[*common, "-o", str(tmp_path / "two" / name), "--devices", "2"])
        assert two.returncode == 0, two.stderr
        assert "2 process(es)" in two.stdout
        for produced in (tmp_path / "one").glob(Path(name).stem + ".*"):
            if produced.suffix == ".json":
                continue  # the manifests differ in times and the process count
            twin = tmp_path / "two" / produced.name
            if produced.suffix == ".h5":
                with h5py.File(produced) as a, h5py.File(twin) as b:
                    for key in ("diff", "alt", "features", "rows/pos", "rows/ref_match"):
                        np.testing.assert_array_equal(a[key][:], b[key][:])
            else:
                assert produced.read_bytes() == twin.read_bytes(), produced.name
        assert not [p for p in (tmp_path / "two").iterdir() if ".part-" in p.name]


def test_a_model_with_broken_weights_is_an_error_not_nan_embeddings(
    mlm_dir: Path, tmp_path: Path
) -> None:
    from dnabird.errors import InputError
    from dnabird.model.pretrained import load_model, load_tokenizer, write_model_folder

    model = load_model(mlm_dir)
    with torch.no_grad():
        model.encoder.embeddings.word_embeddings.weight.fill_(float("nan"))
    broken = write_model_folder(
        tmp_path / "broken", model, {"stage": "pretrain"}, tokenizer=load_tokenizer(mlm_dir)
    )
    out = tmp_path / "e.h5"
    with pytest.raises(InputError, match="non-finite hidden states"):
        embed(broken, fasta=_fasta(tmp_path / "r.fa"), out=out, device="cpu")
    assert not out.exists()
