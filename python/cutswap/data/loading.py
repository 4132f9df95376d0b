"""One entry point that loads any supported dataset by name."""

from __future__ import annotations

from typing import Any, Callable

from .elpv import load_elpv
from .layouts import load_folder, load_mvtec, load_visa
from .records import DatasetSplit

DATASET_LOADERS: dict[str, Callable[..., DatasetSplit]] = {
    "elpv": load_elpv,
    "mvtec": load_mvtec,
    "visa": load_visa,
    "folder": load_folder,
}


def load_dataset(name: str, **options: Any) -> DatasetSplit:
    """Load a dataset split by name.

    Args:
        name: "elpv", "mvtec", "visa" or "folder".
        **options: Keyword arguments of the matching loader: load_elpv, load_mvtec, load_visa or
            load_folder.

    Returns:
        The split.

    Raises:
        ValueError: Unknown name.
        TypeError: An option the loader does not take.
    """
    loader = DATASET_LOADERS.get(name)
    if loader is None:
        raise ValueError(f"unknown dataset {name!r}: expected one of {', '.join(DATASET_LOADERS)}")
    return loader(**options)
