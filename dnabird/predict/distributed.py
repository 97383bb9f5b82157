"""Scoring in many processes through Lightning's predict loop (DDP), as users already run
it under torchrun or SLURM: each process scores its share of the batches into a part file
that process 0 merges (:func:`dnabird.predict.engine.run`)."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import lightning as L
from torch.utils.data import DataLoader, IterableDataset

from dnabird.predict.engine import (
    Input,
    Scorer,
    append_part,
    batches,
    part_path,
    score_rows,
)
from dnabird.predict.inputs import Row
from dnabird.predict.predictor import Predictor


def score_distributed(
    source: Input,
    predictor: Predictor,
    out: str | os.PathLike,
    scorer: Scorer,
    datasets: Sequence[str],
    devices: int,
    num_nodes: int,
    accelerator: str,
) -> list[Path] | None:
    """Score this process's share of the batches (batch ``i`` in rank ``i % world``);
    return every rank's part file in process 0 once all are written, None elsewhere."""
    from dnabird.tasks.trainer import route_lightning_logs

    route_lightning_logs()
    warnings.filterwarnings("ignore", message=".*predict returned None.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*is deprecated.*")
    trainer = L.Trainer(
        accelerator=accelerator,
        devices=devices,
        num_nodes=num_nodes,
        strategy="ddp",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        use_distributed_sampler=False,
    )
    module = PartWriter(predictor, scorer, datasets, out)
    loader = DataLoader(RankBatches(source, predictor.batch_size), batch_size=None)
    trainer.predict(module, dataloaders=loader, return_predictions=False)
    trainer.strategy.barrier("dnabird-predict-parts")
    if trainer.global_rank != 0:
        return None
    return [part_path(out, rank) for rank in range(trainer.world_size)]


class RankBatches(IterableDataset):
    """The scorable rows of batch ``i`` of ``source``, for the process of rank
    ``i % world size`` (as ``(i, rows)``)."""

    def __init__(self, source: Input, batch_size: int) -> None:
        self.source, self.batch_size = source, batch_size

    def __iter__(self) -> Iterator[tuple[int, list[Row]]]:
        import torch.distributed as dist

        rank, world = dist.get_rank(), dist.get_world_size()
        for i, batch in enumerate(batches(self.source.rows(), self.batch_size)):
            if i % world == rank:
                yield i, [row for row in batch if row.skipped is None]


class PartWriter(L.LightningModule):
    """Scores its rank's batches and appends them, in order, to the rank's part file."""

    def __init__(
        self,
        predictor: Predictor,
        scorer: Scorer,
        datasets: Sequence[str],
        out: str | os.PathLike,
    ) -> None:
        super().__init__()
        self.model = predictor.classifier.model
        self.predictor, self.scorer, self.datasets, self.out = predictor, scorer, datasets, out
        self.handle: IO[bytes] | None = None

    def on_predict_start(self) -> None:
        self.predictor.classifier.device = self.device
        self.handle = open(part_path(self.out, self.global_rank), "wb")  # noqa: SIM115

    def transfer_batch_to_device(self, batch: Any, device: Any, dataloader_idx: int) -> Any:
        """Rows of text stay as they are; :meth:`Predictor.predict` moves its tensors."""
        return batch

    def predict_step(self, item: tuple[int, list[Row]], batch_idx: int) -> None:
        _, rows = item
        values, scored = score_rows(self.predictor, self.scorer, rows, self.datasets)
        append_part(self.handle, values, scored)

    def on_predict_end(self) -> None:
        self.handle.close()

    def forward(self, *args: Any) -> Any:  # pragma: no cover - Lightning's interface
        return self.model(*args)
