"""Dataset records and image-file discovery shared by every loader."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

logger = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]

#: File name suffixes read as images, compared case-insensitively.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

# How many paths an error or log message lists before it summarises the rest as a count.
MAX_LISTED_PATHS = 10


@dataclass(frozen=True)
class ImageRecord:
    """One image of a dataset.

    Attributes:
        path: Path of the image file.
        label: 0 for a normal image, 1 for an anomalous one.
        group: Subset the image belongs to: the cell type for ELPV, the defect type for MVTec AD
            and folders, "good" or "anomaly" for VisA.
        mask_path: Path of the pixel mask of the defect, or None where the dataset has no mask.
    """

    path: str
    label: int
    group: str
    mask_path: Optional[str] = None

    def __post_init__(self) -> None:
        if self.label not in (0, 1):
            raise ValueError(
                f"invalid label {self.label!r} for {self.path}: expected 0 (normal) or 1 (anomalous)"
            )


@dataclass
class DatasetSplit:
    """A one-class split: normal training images and a labelled test set.

    Attributes:
        name: Short identifier, for example "elpv" or "mvtec/bottle".
        train: Training records, all normal (label 0).
        test: Test records, normal and anomalous.
        flips: Whether horizontal and vertical flips keep an image normal for this data.
        description: One line that states where the data came from and how it was split.
    """

    name: str
    train: list[ImageRecord]
    test: list[ImageRecord]
    flips: bool = True
    description: str = ""

    def __post_init__(self) -> None:
        anomalous = [record.path for record in self.train if record.label != 0]
        if anomalous:
            raise ValueError(
                f"dataset {self.name!r}: the training set must contain only normal images, "
                f"but {len(anomalous)} have label 1: {format_paths(anomalous)}"
            )

    def summary(self) -> str:
        """Return a one-line count of the training and test images, e.g. for a log line."""
        test_anomalous = sum(record.label for record in self.test)
        test_normal = len(self.test) - test_anomalous
        return (
            f"{self.name}: {len(self.train)} training normals; "
            f"test {test_normal} normal + {test_anomalous} anomalous"
        )


def format_paths(paths: list[str], limit: int = MAX_LISTED_PATHS) -> str:
    """Join paths for a message, listing at most `limit` of them and counting the rest."""
    listed = ", ".join(str(path) for path in paths[:limit])
    if len(paths) > limit:
        listed += f" and {len(paths) - limit} more"
    return listed


def is_image_file(path: PathLike) -> bool:
    """Return whether the file name ends with one of IMAGE_EXTENSIONS, ignoring case."""
    return os.fspath(path).lower().endswith(IMAGE_EXTENSIONS)


def require_directory(path: PathLike, role: str, hint: str = "") -> Path:
    """Return `path` as a Path, or raise FileNotFoundError naming its `role` when it is not a folder."""
    directory = Path(path)
    if not directory.is_dir():
        problem = "is a file, not a folder" if directory.exists() else "not found"
        message = f"{role} {problem}: {directory}"
        if hint:
            message += f". {hint}"
        raise FileNotFoundError(message)
    return directory


def list_image_files(directory: PathLike, *, recursive: bool = False) -> list[Path]:
    """List the image files of a folder, sorted by their path relative to it.

    Files whose suffix is not in IMAGE_EXTENSIONS are skipped and named in one debug log
    message, and so are hidden files and folders (names starting with ".").

    Args:
        directory: Folder to list.
        recursive: Whether to descend into subfolders.

    Returns:
        Image paths, sorted.

    Raises:
        FileNotFoundError: The folder does not exist.
        ValueError: The folder contains no image file. The message names the files it skipped.
    """
    root = require_directory(directory, "image folder")
    images: list[Path] = []
    skipped: list[str] = []
    for current, subfolders, files in os.walk(root):
        subfolders[:] = sorted(name for name in subfolders if not name.startswith("."))
        if not recursive:
            subfolders[:] = []
        for name in files:
            path = Path(current, name)
            if name.startswith(".") or not is_image_file(name):
                skipped.append(str(path.relative_to(root)))
            else:
                images.append(path)

    if skipped:
        logger.debug(
            "skipped %d non-image files in %s: %s", len(skipped), root, format_paths(sorted(skipped))
        )
    if not images:
        message = f"no image files ({', '.join(IMAGE_EXTENSIONS)}) found in {root}"
        if recursive:
            message += " or its subfolders"
        if skipped:
            message += f"; it contains only other files: {format_paths(sorted(skipped))}"
        raise ValueError(message)
    return sorted(images, key=lambda path: path.relative_to(root).as_posix())
