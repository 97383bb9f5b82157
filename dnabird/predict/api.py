"""The Python API of prediction; the ``dnabird predict``, ``variant-effect``, ``ism`` and
``embed`` commands are thin layers over it.

::

    from dnabird.predict import predict, variant_effect, ism, embed

    table = predict("run/model", fasta="seqs.fa")                  # a pyarrow Table
    table = predict("run/model", bed="peaks.bed", genome="hg38.fa", out="preds.h5")
    effects = variant_effect("run/model", vcf="vars.vcf.gz", genome="hg38.fa")
    result = ism("run/model", region="chr2:1000-1100", genome="hg38.fa")  # arrays
    vectors = embed("pretrain/model", fasta="seqs.fa")             # float32 [N, C]

``predict`` and ``variant_effect`` return the output table as a :class:`pyarrow.Table`
(``.to_pandas()`` when pandas is installed) and, with ``out``, also leave the file, its
``.NA`` file and its manifest (:mod:`dnabird.predict.writers`). The ``*_to_file``
variants write and return the run's :class:`~dnabird.predict.engine.RunSummary` (None in
a process other than the first of a multi-process run).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dnabird.errors import ConfigError
from dnabird.predict.engine import RunSummary, run
from dnabird.predict.mutagenesis import IsmResult
from dnabird.predict.predictor import Predictor


def _predictor(model: str | os.PathLike | Predictor, **options: Any) -> Predictor:
    """``model`` itself when it is a Predictor (its settings kept), else
    :meth:`Predictor.load` of the folder with ``options``."""
    if isinstance(model, Predictor):
        return model
    return Predictor.load(model, **options)


def predict_to_file(
    model: str | os.PathLike | Predictor,
    out: str | os.PathLike,
    *,
    fasta: str | os.PathLike | None = None,
    bed: str | os.PathLike | None = None,
    genome: str | os.PathLike | None = None,
    window_bp: int | None = None,
    stride_bp: int | None = None,
    rc: str | None = None,
    features: Sequence[str] | str | None = None,
    batch_size: int = 64,
    device: str | None = None,
    precision: str = "32-true",
    devices: int = 1,
    num_nodes: int = 1,
) -> RunSummary | None:
    """Predict every window of ``fasta``, or of ``bed`` intervals on ``genome``, into
    ``out`` (``.tsv``, ``.h5``, ``.parquet``); windows per :mod:`dnabird.predict.inputs`."""
    from dnabird.predict.inputs import BedWindows, FastaWindows

    if (fasta is None) == (bed is None):
        raise ConfigError("give either a FASTA file or a BED file (with --genome)")
    if bed is not None and genome is None:
        raise ConfigError("a BED file needs the reference genome it refers to (--genome)")
    predictor = _predictor(
        model, device=device, rc=rc, features=features, window_bp=window_bp,
        batch_size=batch_size, precision=precision,
    )  # fmt: skip
    if fasta is not None:
        source = FastaWindows(fasta, predictor.window_bp, stride_bp)
    else:
        source = BedWindows(bed, genome, predictor.require_window_bp("BED intervals"))
    parameters = {"window_bp": predictor.window_bp, "stride_bp": stride_bp, "genome": genome}
    return run(
        source,
        predictor,
        out,
        parameters={k: str(v) if isinstance(v, Path) else v for k, v in parameters.items()},
        devices=devices,
        num_nodes=num_nodes,
        accelerator=_accelerator(predictor),
    )


def predict(
    model: str | os.PathLike | Predictor, *, out: str | os.PathLike | None = None, **options: Any
):
    """:func:`predict_to_file` (same options), returning the table (a pyarrow Table);
    without ``out`` the files are written to a temporary folder and removed."""
    return _as_table(predict_to_file, model, out, "data", **options)


def variant_effect_to_file(
    model: str | os.PathLike | Predictor,
    out: str | os.PathLike,
    *,
    vcf: str | os.PathLike,
    genome: str | os.PathLike,
    scores: Sequence[str] = ("diff",),
    info_fields: Sequence[str] = (),
    skip_ref_mismatch: bool = False,
    window_bp: int | None = None,
    rc: str | None = None,
    features: Sequence[str] | str | None = None,
    batch_size: int = 64,
    device: str | None = None,
    precision: str = "32-true",
    devices: int = 1,
    num_nodes: int = 1,
) -> RunSummary | None:
    """Score every allele of ``vcf`` against ``genome`` (:mod:`dnabird.predict.variants`)
    into ``out``: one dataset per score. The summary's ``ref_mismatches`` counts the
    alleles whose REF differs from the genome."""
    from dnabird.predict.variants import VariantScorer, VariantWindows, check_scores

    scores = check_scores(scores)
    predictor = _predictor(
        model, device=device, rc=rc, features=features, window_bp=window_bp,
        batch_size=batch_size, precision=precision,
    )  # fmt: skip
    source = VariantWindows(
        vcf,
        genome,
        predictor.require_window_bp("variant effects"),
        info_fields=info_fields,
        skip_ref_mismatch=skip_ref_mismatch,
    )
    summary = run(
        source,
        predictor,
        out,
        scorer=VariantScorer(scores),
        datasets=scores,
        stage="variant-effect",
        parameters={
            "genome": str(genome),
            "scores": list(scores),
            "info_fields": list(info_fields),
            "skip_ref_mismatch": skip_ref_mismatch,
        },
        devices=devices,
        num_nodes=num_nodes,
        accelerator=_accelerator(predictor),
        unit="variant",
    )
    if summary is not None:
        summary.ref_mismatches = source.ref_mismatches
    return summary


def variant_effect(
    model: str | os.PathLike | Predictor, *, out: str | os.PathLike | None = None, **options: Any
):
    """:func:`variant_effect_to_file` (same options), returning the first score's table (a
    pyarrow Table); without ``out`` the files are written to a temporary folder."""
    scores = options.get("scores", ("diff",))
    return _as_table(variant_effect_to_file, model, out, scores[0], **options)


def ism(
    model: str | os.PathLike | Predictor,
    *,
    region: str | None = None,
    genome: str | os.PathLike | None = None,
    fasta: str | os.PathLike | None = None,
    record: str | None = None,
    out: str | os.PathLike | None = None,
    plot: str | os.PathLike | None = None,
    plot_features: Sequence[str] | None = None,
    **options: Any,
) -> IsmResult:
    """In-silico mutagenesis (:mod:`dnabird.predict.mutagenesis`) of ``region``
    (``chrom:start-end``, 0-based half-open) of ``genome``, or of one record of ``fasta``
    (``record``: its name; default: the only one). ``out``: also write the HDF5 file;
    ``plot``: a PNG heatmap of ``plot_features`` (default: the feature with the largest
    effect)."""
    from dnabird.predict.mutagenesis import ism_record, ism_region, strongest_features, write_ism

    predictor = _predictor(model, **options)
    if (region is None) == (fasta is None):
        raise ConfigError("give either --region (with --genome) or --fasta")
    if region is not None:
        if genome is None:
            raise ConfigError("--region needs the reference genome (--genome)")
        result = ism_region(predictor, genome, *parse_region(region))
    else:
        result = ism_record(predictor, *_one_record(fasta, record))
    if out is not None:
        write_ism(result, out, predictor.source, predictor.classifier.precision)
    if plot is not None:
        from dnabird.plots import plot_ism

        chosen = list(plot_features) if plot_features else strongest_features(result)
        unknown = [f for f in chosen if f not in result.columns]
        if unknown:
            raise ConfigError(f"--plot-features: {unknown[0]!r} is not an output column")
        plot_ism(result, plot, chosen)
    return result


def embed(
    model: str | os.PathLike,
    *,
    fasta: str | os.PathLike,
    out: str | os.PathLike | None = None,
    **options: Any,
) -> np.ndarray:
    """Sequence embeddings float32 ``[N, C]`` of every record of ``fasta``
    (:func:`dnabird.predict.embeddings.embed_fasta`; options ``pool``, ``per_token``,
    ``batch_size``, ``max_length``, ``device``, ``precision``); ``out`` also keeps the HDF5 file."""
    import h5py

    from dnabird.predict.embeddings import embed_fasta

    with tempfile.TemporaryDirectory() as folder:
        path = Path(out) if out is not None else Path(folder) / "embeddings.h5"
        embed_fasta(model, fasta, path, **options)
        with h5py.File(path, "r") as h5:
            return h5["embeddings"][:]


def read_table(path: str | os.PathLike, dataset: str = "data"):
    """An output table (``.tsv``, ``.h5``, ``.parquet``; HDF5: ``dataset``) as a pyarrow
    Table: identifier columns, then one float32 column per feature."""
    import pyarrow as pa

    from dnabird.predict.writers import output_format

    kind = output_format(path)
    if kind == "parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path)
    if kind == "tsv":
        import pyarrow.csv as pcsv

        return pcsv.read_csv(path, parse_options=pcsv.ParseOptions(delimiter="\t"))
    import h5py

    with h5py.File(path, "r") as h5:
        rows = h5["rows"]
        columns = {str(name): _h5_column(rows[str(name)]) for name in rows.attrs["columns"]}
        names = [f.decode() if isinstance(f, bytes) else f for f in h5["features"][:]]
        values = h5[dataset][:]
    order = list(columns)
    arrays = [pa.array(columns[name]) for name in order]
    arrays += [pa.array(values[:, k]) for k in range(values.shape[1])]
    return pa.Table.from_arrays(arrays, names=order + names)


def parse_region(text: str) -> tuple[str, int, int]:
    """``chrom:start-end`` (0-based, half-open; commas allowed) -> (chrom, start, end)."""
    chrom, _, span = text.rpartition(":")
    start, _, end = span.replace(",", "").partition("-")
    if not chrom or not start.isdigit() or not end.isdigit() or int(end) <= int(start):
        raise ConfigError(
            f"region {text!r}: write it as chrom:start-end (0-based, half-open, start < end)"
        )
    return chrom, int(start), int(end)


def _one_record(fasta: str | os.PathLike, name: str | None) -> tuple[str, str]:
    """The record ``name`` of ``fasta``, or its only record when ``name`` is None."""
    from dnabird.genome.fasta import iter_fasta

    records = iter_fasta(fasta)
    if name is not None:
        for record in records:
            if record[0] == name:
                return record
        raise ConfigError(f"{fasta}: no record named {name!r}")
    first = next(records, None)
    if first is None:
        raise ConfigError(f"{fasta}: no records")
    if next(records, None) is not None:
        raise ConfigError(f"{fasta} has several records; choose one with --record")
    return first


def _h5_column(dataset) -> list:
    values = dataset[:]
    if values.dtype == object:
        return [v.decode() if isinstance(v, bytes) else v for v in values]
    return values.tolist()


def _accelerator(predictor: Predictor) -> str:
    return "gpu" if predictor.classifier.device.type == "cuda" else "cpu"


def _as_table(write, model, out, dataset: str, **options):
    """Run ``write`` into ``out`` (or a temporary Parquet file) and read ``dataset`` back."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(out) if out is not None else Path(folder) / "table.parquet"
        summary = write(model, path, **options)
        if summary is None:  # not the first process of a multi-process run
            return None
        return read_table(summary.outputs[0], dataset)
