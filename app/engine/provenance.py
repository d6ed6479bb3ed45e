"""What produced a result, so that it can be run again and checked: versions, the model's and
the inputs' sha256, the run options as resolved, and the host (`host_probe`).

The model's sha256 is the service's (`ModelRead.sha256`): one hash over the model's files,
each as `name\\0sha256\\n` in name order, with the names the files have in the model
directory. The dataset's is the same over the input files. A service adds the job's
parameters as submitted and as resolved (`Provenance.job`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from app.engine import host_probe
from app.engine.integrity import Provenance
from app.engine.model import file_sha256
from app.engine.spec import BenchmarkSpec, ModelDescription

# Spec fields that say where files are on this machine, not how the run ran.
LOCAL_FIELDS = frozenset({"shown_names", "option_names"})


def content_sha256(files: Mapping[str, str]) -> str:
    """One hash over files given as {name: sha256} (ingest.model_content_sha256's rule)."""
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(f"{name}\0{files[name]}\n".encode())
    return digest.hexdigest()


def input_hashes(paths: Iterable[Path]) -> dict[str, str]:
    """sha256 of each input file, by file name (the last one wins for a repeated name)."""
    return {path.name: file_sha256(path) for path in sorted(set(paths))}


def build(
    spec: BenchmarkSpec,
    description: ModelDescription,
    input_paths: Iterable[Path],
    ovbench_version: str,
    openvino_version: str,
    resolved: Mapping[str, Any],
) -> Provenance:
    """The provenance of a run of `spec` (its files hashed here, outside the measured loop)."""
    model_files = {f.name: f.sha256 for f in description.files}
    inputs = input_hashes(input_paths)
    options = spec.model_dump(mode="json", exclude=set(LOCAL_FIELDS))
    options.update(resolved)
    return Provenance(
        ovbench_version=ovbench_version,
        openvino_version=openvino_version,
        model_sha256=content_sha256(model_files),
        model_files=model_files,
        dataset_sha256=content_sha256(inputs) if inputs else None,
        input_files=inputs,
        spec=options,
        host=host_probe.probe_host(),
    )
