"""The catalog: uploaded models and datasets, their rows and the content-addressed files
they name. A model or dataset that a queued or running job uses cannot be deleted."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.errors import ConflictError, NotFoundError
from app.store.blobs import BlobStore
from app.store.tables import ACTIVE_STATUSES, DatasetRow, JobRow, ModelRow, SweepRow

logger = logging.getLogger(__name__)


class Catalog:
    """Models, datasets and their files for one data dir."""

    def __init__(self, sessions: sessionmaker[Session], blobs: BlobStore) -> None:
        self.session = sessions
        self.blobs = blobs

    # ---------------------------------------------------------------- models
    def find_model_by_sha(self, sha256: str) -> ModelRow | None:
        with self.session() as s:
            return s.scalars(select(ModelRow).where(ModelRow.sha256 == sha256)).first()

    def add_model(self, row: ModelRow) -> tuple[ModelRow, bool]:
        """Insert, or return the model with the same content: (row, created)."""
        with self.session() as s:
            existing = s.scalars(select(ModelRow).where(ModelRow.sha256 == row.sha256)).first()
            if existing is not None:
                return existing, False
            s.add(row)
            s.commit()
        logger.info(
            "model %s stored (%s, %s, %d bytes)", row.id, row.name, row.format, row.size_bytes
        )
        return row, True

    def get_model(self, model_id: str) -> ModelRow:
        with self.session() as s:
            row = s.get(ModelRow, model_id)
        if row is None:
            raise NotFoundError(f"No model with id {model_id!r}", code="model_not_found")
        return row

    def list_models(self) -> Sequence[ModelRow]:
        with self.session() as s:
            return s.scalars(
                select(ModelRow).order_by(ModelRow.created_at.desc(), ModelRow.id)
            ).all()

    def delete_model(self, model_id: str) -> None:
        with self.session() as s:
            row = s.get(ModelRow, model_id)
            if row is None:
                raise NotFoundError(f"No model with id {model_id!r}", code="model_not_found")
            self._refuse_if_used(s, JobRow.model_id == model_id, f"model {model_id!r}")
            self._refuse_if_swept(s, SweepRow.model_id == model_id, f"model {model_id!r}")
            s.delete(row)
            s.commit()
        self.blobs.remove_dir(self.blobs.model_dir(model_id))
        self.release_blobs(f["sha256"] for f in row.files)
        logger.info("model %s deleted", model_id)

    def model_dir(self, row: ModelRow) -> Path:
        """The model's files under safe names (`model.xml` + `model.bin`, `model.onnx`...)."""
        return self.blobs.materialise(
            self.blobs.model_dir(row.id), {f["name"]: f["sha256"] for f in row.files}
        )

    # -------------------------------------------------------------- datasets
    def add_dataset(self, row: DatasetRow) -> DatasetRow:
        with self.session() as s:
            s.add(row)
            s.commit()
        logger.info("dataset %s stored (%d files)", row.id, row.count)
        return row

    def get_dataset(self, dataset_id: str) -> DatasetRow:
        with self.session() as s:
            row = s.get(DatasetRow, dataset_id)
        if row is None:
            raise NotFoundError(f"No dataset with id {dataset_id!r}", code="dataset_not_found")
        return row

    def list_datasets(self) -> Sequence[DatasetRow]:
        with self.session() as s:
            return s.scalars(
                select(DatasetRow).order_by(DatasetRow.created_at.desc(), DatasetRow.id)
            ).all()

    def delete_dataset(self, dataset_id: str) -> None:
        with self.session() as s:
            row = s.get(DatasetRow, dataset_id)
            if row is None:
                raise NotFoundError(f"No dataset with id {dataset_id!r}", code="dataset_not_found")
            self._refuse_if_used(s, JobRow.dataset_id == dataset_id, f"dataset {dataset_id!r}")
            self._refuse_if_swept(s, SweepRow.dataset_id == dataset_id, f"dataset {dataset_id!r}")
            s.delete(row)
            s.commit()
        self.blobs.remove_dir(self.blobs.dataset_dir(dataset_id))
        self.release_blobs(f["sha256"] for f in row.files)
        logger.info("dataset %s deleted", dataset_id)

    def dataset_dir(self, row: DatasetRow) -> Path:
        return self.blobs.materialise(
            self.blobs.dataset_dir(row.id), {f["name"]: f["sha256"] for f in row.files}
        )

    def _refuse_if_used(self, s: Session, condition: Any, what: str) -> None:
        in_use = s.scalars(
            select(JobRow.id).where(condition, JobRow.status.in_(ACTIVE_STATUSES)).limit(5)
        ).all()
        if in_use:
            raise ConflictError(
                f"The {what} is used by a queued or running job; cancel it or wait for it to finish",
                code="in_use",
                details={"job_ids": list(in_use)},
            )

    def _refuse_if_swept(self, s: Session, condition: Any, what: str) -> None:
        """409 while an active sweep will queue more points with it."""
        active = s.scalars(
            select(SweepRow.id).where(condition, SweepRow.status.in_(ACTIVE_STATUSES)).limit(5)
        ).all()
        if active:
            raise ConflictError(
                f"The {what} is used by a sweep that is still running; cancel it or wait for "
                "it to finish",
                code="in_use",
                details={"sweep_ids": list(active)},
            )

    def release_blobs(self, shas: Iterable[str]) -> None:
        """Delete blobs that no model or dataset references any more."""
        candidates = set(shas)
        if not candidates:
            return
        with self.session() as s:
            for files in s.scalars(select(ModelRow.files)):
                candidates -= {f["sha256"] for f in files}
            for files in s.scalars(select(DatasetRow.files)):
                candidates -= {f["sha256"] for f in files}
        for sha in candidates:
            self.blobs.delete(sha)

    # ------------------------------------------------------------- retention
    def sweep_unreferenced(self, grace_s: float = 0.0) -> int:
        """Delete files no model, dataset or job refers to; returns how many were removed.

        Blobs not named by any model or dataset, model and dataset directories whose row is
        gone, and staging files. Only files older than `grace_s` go, so a periodic sweep
        never races an upload between its blob commit and its database row; at start-up
        (no request in flight) `grace_s=0` removes them all. Jobs refer to models and
        datasets by id, so their files stay as long as those rows do.
        """
        with self.session() as s:
            shas: set[str] = set()
            for files in s.scalars(select(ModelRow.files)):
                shas.update(f["sha256"] for f in files)
            for files in s.scalars(select(DatasetRow.files)):
                shas.update(f["sha256"] for f in files)
            model_ids = set(s.scalars(select(ModelRow.id)))
            dataset_ids = set(s.scalars(select(DatasetRow.id)))
        removed = self.blobs.sweep(shas, model_ids, dataset_ids, grace_s)
        if removed:
            logger.info("retention sweep removed %d unreferenced file(s)", removed)
        return removed
