"""Model folders: write -> verify -> load round trips, checksums, head checks, replacement."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from dnabird.errors import ConfigError, InputError
from dnabird.model import (
    BigBirdConfig,
    BigBirdForMaskedLM,
    BigBirdForMultiLabelClassification,
    BigBirdForQuestionAnswering,
    BigBirdForSequenceClassification,
    BigBirdForTokenClassification,
)
from dnabird.model.pretrained import (
    load_model,
    load_tokenizer,
    verify_model_folder,
    write_model_folder,
)

CONFIG = BigBirdConfig.preset(
    "tiny",
    vocab_size=100,
    hidden_dropout_prob=0.0,
    attention_probs_dropout_prob=0.0,
    attention_type="block_sparse",
    attention_backend="dense",
    random_seed=5,
)
MANIFEST = {"stage": "test", "parameters": {"seed": 3}}

HEADS = {
    "mlm": lambda: BigBirdForMaskedLM(CONFIG, labelled_logits_only=True),
    "cls": lambda: BigBirdForSequenceClassification(CONFIG, num_labels=3),
    "multilabel": lambda: BigBirdForMultiLabelClassification(CONFIG, 4, pos_weight=[1, 2, 3, 9]),
    "token": lambda: BigBirdForTokenClassification(CONFIG, num_labels=2),
    "qa": lambda: BigBirdForQuestionAnswering(CONFIG),
}


@pytest.fixture(scope="module")
def tokenizer():
    from dnabird.tokenizer import DNATokenizer

    rng = np.random.default_rng(0)
    sentences = ["".join(rng.choice(list("ACGT"), size=300)) for _ in range(200)]
    return DNATokenizer.train(sentences, vocab_size=100, model_type="bpe")


def inputs(length: int = 150) -> tuple[torch.Tensor, torch.Tensor]:
    """Two rows of random ids with [CLS] in front; the second row padded after 100."""
    ids = torch.randint(
        12, CONFIG.vocab_size, (2, length), generator=torch.Generator().manual_seed(1)
    )
    ids[:, 0] = 2
    mask = torch.ones_like(ids)
    mask[1, 100:] = 0
    ids[1, 100:] = 0
    return ids, mask


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("name", list(HEADS))
def test_write_verify_load_round_trip_gives_the_stored_head_and_identical_outputs(
    tmp_path, tokenizer, name
):
    torch.manual_seed(0)
    model = HEADS[name]().eval()
    ids, mask = inputs()
    before = model(ids, attention_mask=mask).logits
    folder = write_model_folder(tmp_path / "model", model, MANIFEST, tokenizer=tokenizer)

    manifest = verify_model_folder(folder)
    assert manifest["stage"] == "test" and manifest["parameters"] == {"seed": 3}
    on_disk = sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and p.name != "manifest.json"
    )
    assert sorted(manifest["files"]) == on_disk
    assert {"config.json", "model.safetensors", "tokenizer/sentencepiece.model"} <= set(on_disk)
    for relative, entry in manifest["files"].items():
        path = folder / relative
        assert entry == {"bytes": path.stat().st_size, "sha256": sha256(path)}
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no staging folder left

    for head in (None, type(model), type(model).__name__):
        loaded = load_model(folder, head).eval()
        assert type(loaded) is type(model)
        assert loaded.head_args() == model.head_args()
        assert torch.equal(loaded(ids, attention_mask=mask).logits, before)
    assert load_tokenizer(folder).pieces == tokenizer.pieces


def test_same_size_garbage_in_the_weights_is_named(tmp_path):
    folder = write_model_folder(tmp_path / "m", HEADS["mlm"](), MANIFEST)
    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-4096:] = np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    weights.write_bytes(bytes(data))
    for call in (verify_model_folder, load_model):
        with pytest.raises(InputError, match="sha256 differs") as info:
            call(folder)
        message = str(info.value)
        assert str(weights) in message and "\n" not in message
    # verify=False skips the check (the tensors load; their values are garbage)
    assert isinstance(load_model(folder, verify=False), BigBirdForMaskedLM)


def test_truncated_missing_or_changed_files_are_named(tmp_path, tokenizer):
    folder = write_model_folder(tmp_path / "m", HEADS["cls"](), MANIFEST, tokenizer=tokenizer)
    config = folder / "config.json"
    original = config.read_bytes()
    config.write_bytes(original[:-10])
    with pytest.raises(InputError, match=r"config\.json: \d+ bytes, manifest\.json says"):
        load_model(folder)
    config.unlink()
    with pytest.raises(InputError, match=r"config\.json: listed in manifest\.json but missing"):
        load_model(folder)
    config.write_bytes(original)
    piece_file = folder / "tokenizer" / "sentencepiece.model"
    data = piece_file.read_bytes()
    piece_file.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(InputError, match=r"sentencepiece\.model: sha256 differs"):
        load_tokenizer(folder)
    with pytest.raises(InputError, match=r"sentencepiece\.model: sha256 differs"):
        verify_model_folder(folder)


def test_manifest_without_checksums_is_refused(tmp_path):
    folder = write_model_folder(tmp_path / "m", HEADS["qa"](), MANIFEST)
    manifest = json.loads((folder / "manifest.json").read_text())
    del manifest["files"]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(InputError, match="lists no files with checksums"):
        load_model(folder)
    manifest["files"] = {"../outside": {"bytes": 1, "sha256": "0"}}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(InputError, match="points outside the folder"):
        verify_model_folder(folder)


def test_loading_as_another_head_is_refused_unless_new_head(tmp_path):
    torch.manual_seed(0)
    classifier = HEADS["cls"]().eval()
    folder = write_model_folder(tmp_path / "cls", classifier, MANIFEST)
    for load in (
        lambda **kw: load_model(folder, "BigBirdForMaskedLM", **kw),
        lambda **kw: BigBirdForMaskedLM.from_pretrained(folder, **kw),
    ):
        with pytest.raises(ConfigError, match="holds a BigBirdForSequenceClassification") as info:
            load()
        assert "new_head" in str(info.value) and "\n" not in str(info.value)
        mlm = load(new_head=True).eval()
        assert type(mlm) is BigBirdForMaskedLM
        ids, mask = inputs()
        torch.testing.assert_close(
            mlm(ids, attention_mask=mask).hidden_states,
            classifier(ids, attention_mask=mask).hidden_states,
            rtol=0,
            atol=0,
        )
    # a fresh head of the same class, e.g. for other labels
    relabelled = load_model(folder, new_head=True, num_labels=7)
    assert type(relabelled) is BigBirdForSequenceClassification and relabelled.num_labels == 7
    with pytest.raises(ConfigError, match="unknown model head 'BigBirdForMLM'"):
        load_model(folder, "BigBirdForMLM")


def test_save_pretrained_folder_without_manifest_loads(tmp_path):
    model = HEADS["token"]()
    model.save_pretrained(tmp_path / "plain")
    assert isinstance(load_model(tmp_path / "plain"), BigBirdForTokenClassification)
    with pytest.raises(InputError, match="model folder has no tokenizer/"):
        load_tokenizer(tmp_path / "plain")


def test_missing_folder_says_model_folder_not_found(tmp_path):
    for call in (load_model, load_tokenizer, verify_model_folder):
        with pytest.raises(InputError, match=r"nomodel: model folder not found"):
            call(tmp_path / "nomodel")


def test_write_replaces_a_model_folder_only_when_complete(tmp_path, tokenizer):
    folder = tmp_path / "m"
    write_model_folder(folder, HEADS["mlm"](), {"version": 1}, tokenizer=tokenizer)
    write_model_folder(folder, HEADS["qa"](), {"version": 2})
    assert json.loads((folder / "manifest.json").read_text())["version"] == 2
    assert not (folder / "tokenizer").exists()  # replaced, not merged
    assert isinstance(load_model(folder), BigBirdForQuestionAnswering)

    class Failing:
        def save_pretrained(self, path):
            raise OSError(28, "No space left on device")

    with pytest.raises(InputError, match="cannot write the model folder"):
        write_model_folder(folder, HEADS["cls"](), {"version": 3}, tokenizer=Failing())
    assert json.loads((folder / "manifest.json").read_text())["version"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]

    other = tmp_path / "notes"
    other.mkdir()
    (other / "mine.txt").write_text("keep me")
    with pytest.raises(InputError, match="exists and is not a model folder"):
        write_model_folder(other, HEADS["cls"](), MANIFEST)
    assert (other / "mine.txt").read_text() == "keep me"
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="cannot write the model folder"):
        write_model_folder(tmp_path / "file" / "m", HEADS["cls"](), MANIFEST)


def test_resolve_device_checks_names_and_this_machine():
    from dnabird.model.pretrained import resolve_device

    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device(None).type == expected
    for name in ("foo", "mps", "CUDA"):
        with pytest.raises(ConfigError, match="unknown device"):
            resolve_device(name)
    with pytest.raises(ConfigError, match="cuda:99"):
        resolve_device("cuda:99")  # no machine has 100 GPUs; without CUDA: not available


def _cpu_flags() -> set[str] | None:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    line = next((line for line in text.splitlines() if line.startswith("flags")), None)
    return None if line is None else set(line.split(":", 1)[1].split())


def test_cpu_has_bfloat16_agrees_with_the_cpu_flags():
    from dnabird.model.pretrained import cpu_has_bfloat16

    flags = _cpu_flags()
    if flags is None:
        pytest.skip("no /proc/cpuinfo flags on this machine")
    assert cpu_has_bfloat16() == bool(flags & {"avx512_bf16", "amx_tile"})


@pytest.mark.parametrize("hardware", [False, True])
def test_bf16_mixed_on_a_cpu_without_bfloat16_warns_once(monkeypatch, caplog, hardware):
    from dnabird.model import pretrained

    for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        monkeypatch.setattr(torch.cpu, probe, lambda: hardware)
    pretrained._warn_emulated_bfloat16.cache_clear()
    model = BigBirdForSequenceClassification(CONFIG, num_labels=2)
    with caplog.at_level("WARNING", logger="dnabird.model.pretrained"):
        pretrained.for_inference(model, torch.device("cpu"), "32-true")
        assert not caplog.records  # float32 never warns
        for _ in range(2):
            pretrained.for_inference(model, torch.device("cpu"), "bf16-mixed")
    warned = [r.getMessage() for r in caplog.records]
    if hardware:
        assert warned == []
    else:
        assert len(warned) == 1 and "no bfloat16 matrix instructions" in warned[0]
    pretrained._warn_emulated_bfloat16.cache_clear()
