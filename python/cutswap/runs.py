"""Run directories: what a run writes, atomically, and how a saved run is loaded again.

A run directory holds:

- ``config.json``: the resolved training configuration, the dataset and the cutswap version.
- ``checkpoint.pt``: model, optimiser and progress, rewritten atomically after every epoch.
- ``model.pt``: the final network weights.
- ``density.pt``: the Gaussian statistics of the training normals.
- ``metrics.json``: test metrics, thresholds and timings; its presence marks a finished run.
- ``train.log`` and the plots ``roc.png``, ``scores.png`` and ``negatives.png``.

Every tensor file loads with ``torch.load(weights_only=True)``, which cannot run code.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict

import torch

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
CHECKPOINT_FILE = "checkpoint.pt"
MODEL_FILE = "model.pt"
DENSITY_FILE = "density.pt"
METRICS_FILE = "metrics.json"
LOG_FILE = "train.log"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _temporary_beside(path: Path) -> str:
    """Create an empty temporary file next to `path`, readable as a plain new file would be."""
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    # mkstemp creates files readable by the owner alone; a run directory is meant to be shared.
    os.chmod(temporary, 0o666 & ~_umask())
    return temporary


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file and a rename, so readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = _temporary_beside(path)
    handle = os.open(temporary, os.O_WRONLY)
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def _finite_or_none(values: Any) -> Any:
    if isinstance(values, float) and not math.isfinite(values):
        return None
    if isinstance(values, dict):
        return {key: _finite_or_none(value) for key, value in values.items()}
    if isinstance(values, (list, tuple)):
        return [_finite_or_none(value) for value in values]
    return values


def atomic_write_json(path: Path, values: Any) -> None:
    """Write `values` as indented JSON, atomically; NaN and infinities become null, as JSON has none."""
    text = json.dumps(_finite_or_none(values), indent=2, sort_keys=True, allow_nan=False)
    atomic_write_bytes(path, (text + "\n").encode("utf-8"))


def atomic_torch_save(path: Path, values: Any) -> None:
    """Save with `torch.save`, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = _temporary_beside(path)
    try:
        torch.save(values, temporary)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def load_tensor_file(path: Path) -> Dict[str, Any]:
    """Load a run's tensor file with `weights_only=True`, naming the file and the fix on failure."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: the run directory is incomplete; finish it with "
            f"`python -m cutswap.train --output {path.parent} --resume`"
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for corrupt or foreign files
        raise ValueError(
            f"{path} could not be read as a cutswap tensor file ({error}); rerun the training"
        ) from error


def read_run_config(run_dir: Path) -> Dict[str, Any]:
    """Read and check `config.json` of a run directory."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(
            f"run directory {run_dir} not found; pass the --output directory of a training run"
        )
    path = run_dir / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: {run_dir} is not a cutswap run directory")
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON ({error}); the run directory is damaged") from error
    version = values.get("format_version")
    if version != FORMAT_VERSION:
        raise ValueError(
            f"{run_dir} was written with run format {version!r}, this cutswap reads format {FORMAT_VERSION}; "
            "retrain with this version or use the cutswap version that wrote it"
        )
    return values


@dataclass
class SavedRun:
    """The files of a finished run directory, read back.

    Attributes:
        directory: the run directory.
        config: the contents of ``config.json`` (``train``, ``dataset``, ``format_version``, ...).
        model: the contents of ``model.pt``: ``net``, ``reference`` (empty when the run scores with
            the trained embedding alone) and ``saliency_layers``.
        density: the contents of ``density.pt``, a `CombinedDensity` state dict.
        metrics: the contents of ``metrics.json``.
    """

    directory: Path
    config: Dict[str, Any]
    model: Dict[str, Any]
    density: Dict[str, Any]
    metrics: Dict[str, Any]


def load_run(run_dir: Path) -> SavedRun:
    """Read a finished run directory, checking that it is complete and of this format version.

    Raises:
        FileNotFoundError: the directory, ``config.json``, ``model.pt``, ``density.pt`` or
            ``metrics.json`` is missing; the message names the files and the command that
            finishes the run.
        ValueError: a file is damaged or the run was written with another format version.
    """
    run_dir = Path(run_dir)
    config = read_run_config(run_dir)
    missing = [name for name in (MODEL_FILE, DENSITY_FILE, METRICS_FILE) if not (run_dir / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"run directory {run_dir} is incomplete: {', '.join(missing)} not found; finish the run with "
            f"`python -m cutswap.train --output {run_dir} --resume`"
        )
    metrics_path = run_dir / METRICS_FILE
    try:
        metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(
            f"{metrics_path} is not valid JSON ({error}); the run directory is damaged"
        ) from error
    return SavedRun(
        directory=run_dir,
        config=config,
        model=load_tensor_file(run_dir / MODEL_FILE),
        density=load_tensor_file(run_dir / DENSITY_FILE),
        metrics=metrics,
    )
