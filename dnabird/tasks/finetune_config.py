"""``FinetuneConfig``: every setting of a fine-tuning run, as typed dataclasses.

The packaged YAML files (``dnabird/pipelines/promoter.yaml``, ``promoter_gpu.yaml``) mirror
these classes section by section; read one with
``load_config(FinetuneConfig, "promoter", ["trainer.max_steps=50"])``
(:func:`dnabird.tasks.config.load_config`). ``out``, ``seed``, ``optim`` and ``trainer``
come from :class:`~dnabird.tasks.config.RunConfig`; the sections here say which model to
start from (``model``), which labelled sequences to learn (``data``) and which validation
metric picks the exported weights and stops training (``early_stopping``).

Reading a config imports neither torch nor Lightning; :meth:`FinetuneConfig.check` adds what
needs the model package or the file system (model folder, preset, input files), before any
work.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from dnabird.data.negatives import SCHEMES
from dnabird.docstrings import document_fields
from dnabird.errors import ConfigError
from dnabird.model.config import POOLINGS
from dnabird.tasks.config import RunConfig, require
from dnabird.tasks.pretrain_config import ModelSection

if TYPE_CHECKING:
    from dnabird.model import BigBirdConfig

TASKS = {
    "sequence": "BigBirdForSequenceClassification",
    "multilabel": "BigBirdForMultiLabelClassification",
}
"""``task`` -> the model head it trains."""

METRICS = (
    "val/loss",
    "val/accuracy",
    "val/precision",
    "val/recall",
    "val/f1",
    "val/mcc",
    "val/auroc",
    "val/auprc",
)
"""Validation metrics logged at every validation (:mod:`dnabird.tasks.finetune`); any of
them may select the best checkpoint (``early_stopping.metric``)."""

MULTILABEL_METRICS = ("val/loss", "val/auroc", "val/auprc")
"""The validation metrics of ``task: multilabel`` (means of the per-feature values)."""

#: Negatives made from the positives (:mod:`dnabird.data.negatives`); anything else given as
#: ``data.negatives`` is the path of a file of negatives.
NEGATIVE_SCHEMES = SCHEMES

SHAPE_FIELDS = (
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "max_position_embeddings",
    "type_vocab_size",
    "num_global_blocks",
    "global_mode",
)
"""BigBirdConfig fields that change the shape of the weights: a pretrained model's
(``model.init``) cannot be overridden."""


@document_fields
@dataclass
class FinetuneModelSection(ModelSection):
    """The model to fine-tune: a pretrained model folder (``init``), or a size preset from
    scratch with a tokenizer; what trains and how fast each part learns."""

    init: str | None = None
    """Exported model folder to start from (``dnabird pretrain``'s ``OUT/model``): its
    encoder weights, config and tokenizer (THE tokenizer of the run); the classification
    head is new. Give ``init`` or ``preset``, not both."""
    preset: str | None = None
    """Size preset of a model trained from scratch (tiny, small, base, large); needs
    ``tokenizer``."""
    overrides: dict[str, Any] = field(default_factory=dict)
    """BigBirdConfig fields replacing the preset's (``vocab_size`` comes from the
    tokenizer). With ``init``: fields that do not change weight shapes only (for example
    ``attention_backend``, ``random_mode``)."""
    tokenizer: str | None = None
    """Tokenizer folder (``dnabird train-tokenizer``'s output, or a model folder's
    ``tokenizer/``) of a model from scratch (``preset``); with ``init`` the model folder's
    own tokenizer is used."""
    freeze_encoder: bool = False
    """Train the classification head only: the encoder's weights get no gradient and no
    optimizer state, and its dropout is off (a linear probe of the pretrained features)."""
    layer_lr_decay: float = 1.0
    """Layer-wise learning-rate decay d in (0, 1] (1 = off): the head learns at
    ``optim.lr``, encoder layer ``L-1`` (the last) at ``lr * d``, layer ``i`` at
    ``lr * d^(L-i)``, the embeddings at ``lr * d^(L+1)``."""
    dropout: float | None = None
    """Hidden and attention dropout of the fine-tuned model, in [0, 1) (null: the model's
    own, from ``init`` or the preset)."""
    base_channels: int = 0
    """Channels of the base-resolution features added to the token embeddings (0 = off):
    two convolutions over the bases the tokens spell, pooled per token, plus each token's
    bp offset (:mod:`dnabird.model.bases`). New weights, trained from zero also on a
    pretrained ``init``; they help where single bases and exact positions matter (promoters,
    binding sites)."""
    pooling: str = "cls"
    """What the sequence head reads of the last hidden states: ``cls`` (the [CLS] token, as
    BERT), ``mean`` or ``max`` (over the sequence's real tokens: a motif anywhere reaches the
    head directly). ``cls`` computes only the [CLS] row of the last layer, the others every
    row: on the 2-layer promoter model about 2,330 steps fit in 14 minutes against 2,750."""

    base_pooling: bool = False
    """With ``base_channels``: the classifier also reads the maximum and the mean of every
    base-feature channel over the whole sequence, beside the pooled hidden state (a motif
    scanner's view that does not pass through the tokens; new weights)."""
    base_pooling_bins: int = 1
    """With ``base_pooling``: the maxima and means are taken over each of this many
    consecutive segments of the sequence (1 = the whole sequence), so the classifier also
    learns where along the sequence a motif sits (e.g. a TATA box 30 bp before the TSS):
    20 gives 15 bp segments on 300 bp promoters. Segments are fractions of each
    sequence's length, so they line up only on sequences of one length. The summary has
    ``2 * base_channels * base_pooling_bins`` values."""

    def validate(self, key: str) -> None:
        if (self.init is None) == (self.preset is None):
            raise ConfigError(
                f"{key}.init and {key}.preset: give exactly one ({key}.init: a pretrained model "
                f"folder; {key}.preset: a new model from scratch, with {key}.tokenizer)"
            )
        if self.preset is not None and not self.tokenizer:
            raise ConfigError(
                f"{key}.tokenizer: required with {key}.preset={self.preset} (a tokenizer "
                f"folder, e.g. a model folder's tokenizer/); or start from {key}.init"
            )
        if self.init is not None and self.tokenizer:
            raise ConfigError(
                f"{key}.tokenizer={self.tokenizer}: {key}.init={self.init} brings its own "
                f"tokenizer, which the model was trained with; drop {key}.tokenizer"
            )
        decay = self.layer_lr_decay
        require(0 < decay <= 1, f"{key}.layer_lr_decay", decay, "in (0, 1] (1 = off)")
        if self.freeze_encoder and decay != 1:
            raise ConfigError(
                f"{key}.layer_lr_decay={decay}: the encoder is frozen ({key}.freeze_encoder="
                "true), so only the head learns; set one of them"
            )
        if self.dropout is not None:
            require(0 <= self.dropout < 1, f"{key}.dropout", self.dropout, "in [0, 1) or null")
        channels = self.base_channels  # an int: the config loader checks the types
        require(channels >= 0, f"{key}.base_channels", channels, "a whole number >= 0 (0 = off)")
        require(self.pooling in POOLINGS, f"{key}.pooling", self.pooling, f"one of {POOLINGS}")
        if self.base_pooling and not channels:
            raise ConfigError(
                f"{key}.base_pooling=true reads the base features: set {key}.base_channels "
                "(e.g. 128)"
            )
        bins = self.base_pooling_bins
        require(bins >= 1, f"{key}.base_pooling_bins", bins, "a whole number >= 1")
        if bins > 1 and not self.base_pooling:
            raise ConfigError(
                f"{key}.base_pooling_bins={bins} segments the base-pooling summary: set "
                f"{key}.base_pooling=true"
            )

    def config_overrides(self) -> dict[str, Any]:
        """BigBirdConfig fields to replace in the model: ``overrides`` and ``dropout``."""
        overrides = dict(self.overrides)
        if self.dropout is not None:
            overrides["hidden_dropout_prob"] = self.dropout
            overrides["attention_probs_dropout_prob"] = self.dropout
        return overrides

    def build(self, vocab_size: int | None = None, key: str = "model") -> BigBirdConfig:
        """The BigBirdConfig of the model to fine-tune: ``init``'s ``config.json`` with
        :meth:`config_overrides`, or the preset's (:meth:`ModelSection.build`, with
        ``vocab_size`` the tokenizer's). Mistakes are ConfigErrors naming their key."""
        from dnabird.model import BigBirdConfig
        from dnabird.model.config import CONFIG_NAME

        if self.init is None:
            return ModelSection(self.preset, self.config_overrides()).build(vocab_size, key)
        stored = BigBirdConfig.load(Path(self.init) / CONFIG_NAME)
        try:
            return BigBirdConfig.from_dict({**stored.to_dict(), **self.config_overrides()})
        except ConfigError as err:
            message = str(err).removeprefix("BigBirdConfig: ")
            raise ConfigError(f"{key}.overrides (with {key}.init): {message}") from None

    def check(self, key: str = "model") -> BigBirdConfig:
        """What needs the file system or the model package: the folders exist, the preset
        or ``init`` and the overrides make a valid model; return its config (:meth:`build`,
        the preset's vocabulary)."""
        if self.init is not None:
            _require_folder(self.init, f"{key}.init", "model folder (dnabird pretrain's OUT/model)")
            for name in self.overrides:
                if name in SHAPE_FIELDS:
                    raise ConfigError(
                        f"{key}.overrides.{name}: changes the shape of the pretrained weights in "
                        f"{key}.init; drop it (or train from scratch with {key}.preset)"
                    )
        else:
            _require_folder(self.tokenizer, f"{key}.tokenizer", "tokenizer folder")
        return self.build(key=key)


@document_fields
@dataclass
class ClassificationDataConfig:
    """Labelled sequences in (:mod:`dnabird.data.labelled`), negatives, splits, batches
    (:mod:`dnabird.data.classification`)."""

    train: str = ""
    """Labelled sequences to learn: one sequence per line, FASTA, CSV/TSV with ``sequence``
    and ``label`` columns (GUE's format), or Parquet. Also the source of the validation and
    test splits that are not given as files (``split``)."""
    validation: str | None = None
    """Validation file (e.g. GUE's ``dev.csv.gz``); null: drawn from ``train``."""
    test: str | None = None
    """Test file; null: drawn from ``train``."""
    format: str = "auto"
    """Format of the files: ``auto`` (by extension and content) or a format name of
    :func:`dnabird.data.labelled.read_labelled`."""
    classes: list[str] | None = None
    """Class names in order (class ``i`` is the model's output ``i``; in a binary task the
    second is the positive class). Null: the labels found in ``train``, sorted; with
    ``negatives``: ``[negative, <label>]``."""
    label: str | None = None
    """The label of every sequence of a file without labels (one sequence per line, FASTA
    without labels), e.g. ``promoter``."""
    labels_file: str | None = None
    """FASTA only: a file mapping record ids to labels (instead of a header field)."""
    label_field: str = "label"
    """FASTA only: the header field holding the label (``>id label=promoter``)."""
    negatives: str | None = None
    """For positives-only files (``label``): ``substitute`` (DeePromoter: 12 of 20 parts
    replaced by random bases), ``shuffle`` (12 of 20 parts permuted among themselves: same
    composition, much harder), the path of a file of negatives, or null (the files hold
    every class). One negative per positive, seeded by ``seed``; negatives made from a
    positive go to its split."""
    negative_draws: int = 1
    """With ``substitute`` or ``shuffle``: negatives made for each training positive, in
    independent draws; each training positive is repeated as often, so the classes stay
    balanced. More draws show the model more random parts, which it cannot learn by heart;
    the validation and test splits keep one negative per positive, and the baselines train
    on the same enlarged training split."""
    reverse_complement: bool = False
    """``task: sequence``: add the reverse complement of every training sequence, with its
    label, to the training split (which doubles); for labels that do not depend on the
    strand, such as transcription-factor binding (not promoters, which have a direction).
    The baselines train on the same doubled split; validation and test are not changed.
    Multi-label runs set ``multilabel.reverse_complement`` instead."""
    average_strands: bool = False
    """``task: sequence``: the validation metrics (so the checkpoint choice and early
    stopping), the test report, a threshold chosen on validation and later predictions (the
    exported model records it; ``--rc`` overrides) average the probabilities of each
    sequence and its reverse complement; for strand-free labels, with
    ``reverse_complement``. Multi-label runs set ``multilabel.average_strands`` instead."""
    split: list[float] = field(default_factory=lambda: [0.8, 0.1, 0.1])
    """Train/validation/test fractions of ``train``, stratified by class and by sequence
    identity (no sequence in two splits), seeded by ``seed``. A split given as a file
    (``validation``, ``test``) takes nothing from ``train`` (its fraction goes to training);
    a ``split`` column of the train file is used as it is."""
    max_length: int | None = None
    """The fixed window in tokens (``[CLS]`` and ``[SEP]`` included) every sequence is
    padded to, in training and in every later prediction (recorded in the exported model).
    Null: the longest tokenized sequence of the data + 2, rounded up to a multiple of the
    block size, at most the model's ``max_position_embeddings``."""
    truncate: bool = False
    """Cut sequences longer than the window (keeping the start); false: such a sequence is
    an error naming it."""
    batch_size: int = 32
    """Sequences per batch and device, in training and evaluation."""
    num_workers: int = 0
    """DataLoader worker processes per device (the batches do not depend on it)."""

    def validate(self, key: str) -> None:
        require(bool(self.train), f"{key}.train", self.train, "a labelled sequence file")
        require(bool(self.format), f"{key}.format", self.format, "auto or a format name")
        if self.classes is not None:
            require(
                len(self.classes) >= 2 and len(set(self.classes)) == len(self.classes),
                f"{key}.classes",
                self.classes,
                "at least 2 distinct class names, or null",
            )
            if self.label is not None and self.label not in self.classes:
                raise ConfigError(
                    f"{key}.label={self.label}: not one of {key}.classes={self.classes}"
                )
        if self.negatives is not None:
            if self.label is None:
                raise ConfigError(
                    f"{key}.negatives={self.negatives}: negatives are made for a file of "
                    f"positives only; set {key}.label (the positives' class, e.g. promoter)"
                )
            if self.classes is not None and len(self.classes) != 2:
                raise ConfigError(
                    f"{key}.classes={self.classes}: with {key}.negatives the task is binary; "
                    f"give 2 classes (negative first) or null"
                )
        draws = self.negative_draws
        require(draws >= 1, f"{key}.negative_draws", draws, "a positive integer")
        if draws > 1 and self.scheme is None:
            raise ConfigError(
                f"{key}.negative_draws={draws}: more than one draw needs made negatives; set "
                f"{key}.negatives=substitute or shuffle"
            )
        values = self.split
        require(len(values) == 3, f"{key}.split", values, "3 fractions: train, validation, test")
        ok = all(v >= 0 for v in values) and values[0] > 0 and abs(sum(values) - 1) < 1e-6
        require(ok, f"{key}.split", values, "fractions >= 0 summing to 1, train > 0")
        if self.max_length is not None:
            require(self.max_length >= 3, f"{key}.max_length", self.max_length, ">= 3 or null")
        require(self.batch_size >= 1, f"{key}.batch_size", self.batch_size, "a positive integer")
        require(self.num_workers >= 0, f"{key}.num_workers", self.num_workers, ">= 0")

    @property
    def scheme(self) -> str | None:
        """The negative scheme (``substitute``/``shuffle``), or None (no negatives made)."""
        return self.negatives if self.negatives in NEGATIVE_SCHEMES else None

    @property
    def negatives_file(self) -> str | None:
        """The file of negatives, when ``negatives`` names one."""
        return self.negatives if self.negatives and self.scheme is None else None

    def files(self) -> dict[str, str]:
        """``{key: path}`` of every input file given (``train``, ``validation``, ...)."""
        named = {
            "train": self.train,
            "validation": self.validation,
            "test": self.test,
            "negatives": self.negatives_file,
            "labels_file": self.labels_file,
        }
        return {name: path for name, path in named.items() if path}

    def check(self, key: str = "data", multilabel: bool = False) -> None:
        """The input files exist; the format is one the reader knows. ``multilabel``: the
        multi-label formats (:data:`dnabird.data.chromatin.FORMATS`), whose inputs may also
        be ``make-dataset`` folders."""
        if multilabel:
            from dnabird.data.chromatin import FORMATS
        else:
            from dnabird.data.labelled import FORMATS

        allowed = ("auto", *FORMATS)
        require(
            self.format in allowed, f"{key}.format", self.format, f"one of {', '.join(allowed)}"
        )
        for name, path in self.files().items():
            target = Path(path)
            if not (target.is_file() or (multilabel and target.is_dir())):
                what = "is not a file" if target.exists() else "file not found"
                hint = (
                    f" (or one of the schemes {', '.join(NEGATIVE_SCHEMES)})"
                    if name == "negatives"
                    else ""
                )
                raise ConfigError(f"{key}.{name}={path}: {what}; give an existing file{hint}")


@document_fields
@dataclass
class MultiLabelSection:
    """``task: multilabel`` only: which features, the positive weight, strands, baseline."""

    features: list[str] | str | None = None
    """The label columns to learn: null (all), a list of feature ids or names, a category
    (DeepSEA: ``DHS``, ``TF``, ``HM``), or a file with one per line
    (:func:`dnabird.data.deepsea.select_features`). Kept in file order."""
    names: str | None = None
    """Feature names file (DeepSEA's ``index<TAB>cell|target|treatment`` list) for data
    files that do not name their label columns (DeepSEA CSV); null: the names stored in the
    data (``make-dataset`` Parquet), else ``feature_0 ..``."""
    pos_weight: float = 8.0
    """Weight of a positive label in the binary cross-entropy (the BigBird paper: 8; labels
    are sparse, most profiles are positive in a few percent of windows)."""
    reverse_complement: bool = True
    """Training shows each window as either strand (a seeded coin per sequence and pass):
    chromatin labels do not depend on the strand."""
    average_strands: bool = True
    """Validation, test and prediction average the probabilities of both strands."""
    baseline_bp: int | None = 200
    """The k-mer logistic-regression baseline (one per feature, on the training split) sees
    the central ``baseline_bp`` bases of each sequence (200: the labelled bin of
    ``make-dataset``'s windows); null: the whole sequence; 0: no baseline."""

    def validate(self, key: str) -> None:
        require(self.pos_weight > 0, f"{key}.pos_weight", self.pos_weight, "> 0")
        if self.baseline_bp is not None:
            require(self.baseline_bp >= 0, f"{key}.baseline_bp", self.baseline_bp, ">= 0 or null")


@document_fields
@dataclass
class EarlyStoppingSection:
    """What the validation split selects: the exported weights (by a metric), when training
    stops, and the decision threshold of two-class models."""

    metric: str | None = "val/auroc"
    """Validation metric (``val/auroc``, ``val/auprc``, ``val/f1``, ``val/mcc``,
    ``val/accuracy``, ``val/precision``, ``val/recall``, ``val/loss``; macro averages over
    classes beyond 2): the model exported is the one of the validation where it was best
    (its step is recorded). Null: the last weights, no early stopping."""
    mode: str = "auto"
    """``max`` (higher is better), ``min``, or ``auto`` (``min`` for ``val/loss``, else
    ``max``)."""
    patience: int = 5
    """Stop after this many validations without improvement of ``metric`` (0 = never stop
    early; the best weights are still the ones exported)."""
    threshold: float | str = 0.5
    """Two classes only: P(class 1) above which a sequence is called class 1, for the test
    report (F1, precision, recall, accuracy, MCC, confusion matrix; AUROC and AUPRC do not
    depend on it) and ``dnabird evaluate`` with the exported model. ``validation``: the
    threshold of the best F1 on the validation split, chosen for the exported weights and
    for each baseline alike (useful when training sees its examples differently from new
    data: with ``data.negative_draws > 1`` each positive is repeated)."""

    def validate(self, key: str) -> None:
        if self.metric is not None:
            require(
                self.metric in METRICS,
                f"{key}.metric",
                self.metric,
                f"one of {', '.join(METRICS)} or null",
            )
        require(self.mode in ("auto", "max", "min"), f"{key}.mode", self.mode, "auto, max or min")
        require(self.patience >= 0, f"{key}.patience", self.patience, ">= 0 (0 = never stop early)")
        threshold = self.threshold  # a float or a str: the config loader checks the types
        require(
            threshold == "validation" or (not isinstance(threshold, str) and 0 <= threshold <= 1),
            f"{key}.threshold",
            threshold,
            "a probability in [0, 1] or validation",
        )

    @property
    def direction(self) -> str:
        """``max`` or ``min``: the resolved ``mode``."""
        if self.mode != "auto":
            return self.mode
        return "min" if self.metric == "val/loss" else "max"


@document_fields
@dataclass
class FinetuneConfig(RunConfig):
    """A fine-tuning run: the shared run sections, then task, model, data and early
    stopping."""

    stage: ClassVar[str] = "finetune"
    config_prefixes: ClassVar[tuple[str, ...]] = ("promoter", "chromatin")
    resumable_changes: ClassVar[tuple[str, ...]] = (
        *RunConfig.resumable_changes,
        # the inputs are identified by their checksums (the run's inputs), not their paths
        "data.train",
        "data.validation",
        "data.test",
        "data.labels_file",
        "model.init",
        "model.tokenizer",
        "data.num_workers",  # the batches do not depend on it
    )

    out: str = "runs/finetune"
    """Run folder: checkpoints/, logs/, model/ (the exported classifier), report.json, the
    test plots, manifest.json."""
    task: str = "sequence"
    """``sequence``: one class per sequence (softmax over ``data.classes``, cross-entropy);
    ``multilabel``: independent 0/1 labels per sequence (chromatin profiles: one sigmoid
    output per feature, binary cross-entropy; settings in ``multilabel``). Both from the
    pooled ``[CLS]`` token."""
    model: FinetuneModelSection = field(default_factory=FinetuneModelSection)
    """The model to start from and what trains."""
    data: ClassificationDataConfig = field(default_factory=ClassificationDataConfig)
    """Labelled sequences, negatives, splits, the fixed window and batches."""
    early_stopping: EarlyStoppingSection = field(default_factory=EarlyStoppingSection)
    """The validation metric that picks the exported weights, and patience."""
    multilabel: MultiLabelSection = field(default_factory=MultiLabelSection)
    """``task: multilabel``: features, positive weight, strands, baseline."""

    def validate(self, key: str = "") -> None:
        super().validate(key)
        require(self.task in TASKS, "task", self.task, f"one of {', '.join(TASKS)}")
        if self.task == "multilabel":
            self._validate_multilabel()
        validates = self.data.validation is not None or self.data.split[1] > 0
        if self.early_stopping.metric is not None and not validates:
            raise ConfigError(
                f"early_stopping.metric={self.early_stopping.metric}: there is no validation "
                "split (data.validation is null and data.split gives validation 0); give one, "
                "or set early_stopping.metric=null to export the last weights"
            )
        if self.early_stopping.threshold == "validation" and not validates:
            raise ConfigError(
                "early_stopping.threshold=validation: there is no validation split "
                "(data.validation is null and data.split gives validation 0); give one, or a "
                "fixed threshold such as 0.5"
            )
        if self.task == "multilabel" and self.data.reverse_complement:
            raise ConfigError(
                "data.reverse_complement=true: multi-label runs choose a strand per sequence "
                "and pass with multilabel.reverse_complement; leave data.reverse_complement "
                "false"
            )
        if self.task == "multilabel" and self.data.average_strands:
            raise ConfigError(
                "data.average_strands=true: multi-label runs average the strands with "
                "multilabel.average_strands; leave data.average_strands false"
            )
        if self.task == "multilabel" and self.early_stopping.threshold != 0.5:
            raise ConfigError(
                f"early_stopping.threshold={self.early_stopping.threshold}: multi-label models "
                "are reported by AUROC and AUPRC, which need no threshold; leave it at 0.5"
            )

    def check(self, hardware: bool = True) -> None:
        """Also the files: data files and model folders exist, the model section builds,
        the window fits the model. ``hardware=False`` (printing a config meant for another
        machine, whose files may live there) checks only a preset's model."""
        super().check(hardware)
        if not hardware:
            if self.model.preset is not None:
                self.model.build(key="model")
            return
        self.data.check("data", multilabel=self.task == "multilabel")
        names = self.multilabel.names
        if self.task == "multilabel" and names is not None and not Path(names).is_file():
            raise ConfigError(
                f"multilabel.names={self.multilabel.names}: file not found; give a feature "
                "names file or null"
            )
        model = self.model.check("model")
        window = self.data.max_length
        if window is not None and window > model.max_position_embeddings:
            raise ConfigError(
                f"data.max_length={window} exceeds the model's max_position_embeddings="
                f"{model.max_position_embeddings}; lower data.max_length (or null: chosen "
                "from the data) or set data.truncate=true"
            )

    def _validate_multilabel(self) -> None:
        """What a multi-label run cannot take: classes, labels, negatives, class metrics."""
        data = self.data
        for name in ("classes", "label", "labels_file", "negatives"):
            if getattr(data, name) is not None:
                raise ConfigError(
                    f"data.{name}={getattr(data, name)}: task multilabel reads its 0/1 labels "
                    f"from the data (one column per feature); drop data.{name} (or use "
                    "task: sequence)"
                )
        if Path(data.train).suffix.lower() == ".mat":  # streamed: dnabird.data.chromatin
            if data.validation is None:
                raise ConfigError(
                    f"data.validation: required with data.train={data.train} (a DeepSEA .mat "
                    "file is streamed, no split is drawn from it); give valid.mat"
                )
            if data.max_length is None:
                raise ConfigError(
                    f"data.max_length: required with data.train={data.train} (streamed: the "
                    "window cannot be fitted to it in advance); e.g. 256 for 1,000 bp at about "
                    "8 bp per token, with data.truncate=true"
                )
            if self.multilabel.baseline_bp != 0:
                raise ConfigError(
                    f"multilabel.baseline_bp={self.multilabel.baseline_bp}: the baseline trains "
                    f"on the training split in memory, but data.train={data.train} is streamed; "
                    "set multilabel.baseline_bp=0"
                )
        metric = self.early_stopping.metric
        if metric is not None and metric not in MULTILABEL_METRICS:
            raise ConfigError(
                f"early_stopping.metric={metric}: task multilabel logs "
                f"{', '.join(MULTILABEL_METRICS)} (means over features); choose one of them"
            )

    @property
    def head(self) -> str:
        """The model head class name of :attr:`task`."""
        return TASKS[self.task]

    @property
    def average_strands(self) -> bool:
        """Whether evaluation and prediction average both strands: ``multilabel.`` or
        ``data.average_strands``, by :attr:`task`."""
        section = self.multilabel if self.task == "multilabel" else self.data
        return section.average_strands


def _require_folder(path: str | None, key: str, what: str) -> None:
    folder = Path(path or "")
    if not folder.is_dir():
        state = "is not a folder" if folder.exists() else "folder not found"
        raise ConfigError(f"{key}={path}: {state}; give a {what}")
