"""Loaders for datasets stored in folders: MVTec AD, VisA and plain normal/abnormal folders."""

from __future__ import annotations

import csv
import logging
import math
from pathlib import Path
from typing import Optional

from .records import (
    DatasetSplit,
    ImageRecord,
    PathLike,
    format_paths,
    is_image_file,
    list_image_files,
    require_directory,
)

logger = logging.getLogger(__name__)

# Categories where a mirrored normal image looks like a defect: MVTec AD's metal_nut has a "flip"
# defect (the nut upside down) and transistor a "misplaced" one, and the VisA PCBs carry printed
# text and asymmetric layouts.
_NO_FLIP_CATEGORIES = {
    "mvtec": ("metal_nut", "transistor"),
    "visa": ("pcb1", "pcb2", "pcb3", "pcb4"),
}

VISA_SPLIT_CSV = Path("split_csv") / "1cls.csv"
_VISA_COLUMNS = ("object", "split", "label", "image", "mask")


def _check_seed(seed: int) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise ValueError(f"invalid seed {seed!r}: expected an integer in [0, 2**32)")


def _check_category(category: Optional[str], found: list[str], dataset: str, root: Path) -> None:
    available = f"categories found: {', '.join(found)}" if found else "no categories found there"
    if not category:
        raise ValueError(f"{dataset} needs a category (--category); {available} in {root}")
    if category not in found:
        raise FileNotFoundError(f"{dataset} category {category!r} not found in {root}; {available}")


def _check_disjoint(train: list[ImageRecord], test: list[ImageRecord], name: str) -> None:
    train_paths = {str(Path(record.path).resolve()) for record in train}
    shared = sorted(
        path for path in (str(Path(record.path).resolve()) for record in test) if path in train_paths
    )
    if shared:
        raise ValueError(
            f"dataset {name!r}: {len(shared)} images are in both the training and the test set "
            f"(do the folders overlap?): {format_paths(shared)}"
        )


def load_mvtec(root: PathLike, category: str) -> DatasetSplit:
    """Load one category of MVTec AD from its standard folder layout.

    Layout: ``root/category/train/good/*.png`` are the training normals; every folder
    ``root/category/test/<defect>/`` contains test images, normal when <defect> is "good";
    ``root/category/ground_truth/<defect>/<name>_mask.png`` is the mask of ``test/<defect>/<name>.png``.

    Args:
        root: Folder that contains the category folders (bottle, cable, ...).
        category: Category folder name.

    Returns:
        The split, named "mvtec/<category>". Each record's group is its defect type or "good".
        `flips` is False for metal_nut and transistor, whose defect types include flipped and
        misplaced parts.

    Raises:
        FileNotFoundError: The root, the category (the message lists those found), train/good
            or test is missing.
        ValueError: A folder has no image files.
    """
    root_dir = require_directory(
        root, "MVTec AD root", hint="Pass the folder that contains the category folders (bottle, cable, ...)"
    )
    found = sorted(path.name for path in root_dir.iterdir() if (path / "train").is_dir())
    _check_category(category, found, "MVTec AD", root_dir)
    category_dir = root_dir / category

    train_dir = require_directory(category_dir / "train" / "good", "MVTec AD training folder")
    train = [ImageRecord(path=str(path), label=0, group="good") for path in list_image_files(train_dir)]

    test_dir = require_directory(category_dir / "test", "MVTec AD test folder")
    test: list[ImageRecord] = []
    missing_masks: list[str] = []
    for defect_dir in sorted(
        path for path in test_dir.iterdir() if path.is_dir() and not path.name.startswith(".")
    ):
        defect = defect_dir.name
        for path in list_image_files(defect_dir):
            if defect == "good":
                test.append(ImageRecord(path=str(path), label=0, group="good"))
                continue
            mask_path = category_dir / "ground_truth" / defect / f"{path.stem}_mask.png"
            mask_found = mask_path.is_file()
            if not mask_found:
                missing_masks.append(str(mask_path))
            record = ImageRecord(
                path=str(path), label=1, group=defect, mask_path=str(mask_path) if mask_found else None
            )
            test.append(record)

    if not test:
        raise ValueError(f"no test images found in the subfolders of {test_dir}")
    if missing_masks:
        logger.warning(
            "%d anomalous MVTec AD test images have no mask and get mask_path None: %s",
            len(missing_masks),
            format_paths(missing_masks, limit=3),
        )
    if not any(record.label for record in test):
        logger.warning("MVTec AD category %s has no anomalous test images in %s", category, test_dir)

    return DatasetSplit(
        name=f"mvtec/{category}",
        train=train,
        test=test,
        flips=category not in _NO_FLIP_CATEGORIES["mvtec"],
        description=f"MVTec AD {category}: standard split from {category_dir}",
    )


def _read_visa_rows(csv_path: Path) -> list[dict[str, str]]:
    with open(csv_path, newline="", encoding="utf-8") as split_file:
        reader = csv.DictReader(split_file)
        columns = [name.strip() for name in (reader.fieldnames or [])]
        missing = [name for name in _VISA_COLUMNS if name not in columns]
        if missing:
            raise ValueError(
                f"VisA split file {csv_path} is missing the columns {', '.join(missing)}; "
                f"expected {','.join(_VISA_COLUMNS)} as in the VisA release's split_csv/1cls.csv"
            )
        return [{key.strip(): (value or "").strip() for key, value in row.items() if key} for row in reader]


def load_visa(root: PathLike, category: str, split_csv: Optional[PathLike] = None) -> DatasetSplit:
    """Load one category of VisA with the split from the VisA release's CSV file.

    Layout: ``root/<category>/Data/Images/{Normal,Anomaly}/`` and
    ``root/<category>/Data/Masks/Anomaly/``, plus the split file ``root/split_csv/1cls.csv``
    with the columns object, split (train or test), label (normal or anomaly), image and mask.
    Image and mask paths in it are relative to `root`.

    Args:
        root: Folder that contains the category folders (candle, capsules, ...).
        category: Category name, as in the CSV's object column.
        split_csv: Split file. None uses root/split_csv/1cls.csv.

    Returns:
        The split, named "visa/<category>". Each record's group is "good" or "anomaly". `flips`
        is False for pcb1 to pcb4.

    Raises:
        FileNotFoundError: The root, the split file, the category (the message lists those in
            the file), or a listed image or mask file is missing.
        ValueError: The split file has missing columns or invalid values, or lists an
            anomalous training image.
    """
    root_dir = require_directory(
        root, "VisA root", hint="Pass the folder that contains the category folders (candle, capsules, ...)"
    )
    csv_path = Path(split_csv) if split_csv is not None else root_dir / VISA_SPLIT_CSV
    if not csv_path.is_file():
        raise FileNotFoundError(
            f"VisA split file not found: {csv_path}. The VisA release ships it as split_csv/1cls.csv; "
            "put it at that path under the root or pass its path (split_csv=..., --split-csv)"
        )

    rows = _read_visa_rows(csv_path)
    found = sorted({row["object"] for row in rows})
    _check_category(category, found, "VisA", csv_path)

    train: list[ImageRecord] = []
    test: list[ImageRecord] = []
    missing: list[str] = []
    for line_number, row in enumerate(rows, start=2):
        if row["object"] != category:
            continue
        where = f"VisA split file {csv_path} line {line_number}"
        if row["split"] not in ("train", "test"):
            raise ValueError(f"{where}: invalid split {row['split']!r}, expected 'train' or 'test'")
        if row["label"] not in ("normal", "anomaly"):
            raise ValueError(f"{where}: invalid label {row['label']!r}, expected 'normal' or 'anomaly'")
        if not is_image_file(row["image"]):
            raise ValueError(f"{where}: {row['image']!r} is not an image file name")

        label = int(row["label"] == "anomaly")
        if row["split"] == "train" and label:
            raise ValueError(f"{where}: anomalous image {row['image']} is in the training split")
        image_path = root_dir / row["image"]
        mask_path = root_dir / row["mask"] if row["mask"] else None
        for path in (image_path, mask_path):
            if path is not None and not path.is_file():
                missing.append(str(path))

        record = ImageRecord(
            path=str(image_path),
            label=label,
            group="anomaly" if label else "good",
            mask_path=None if mask_path is None else str(mask_path),
        )
        (train if row["split"] == "train" else test).append(record)

    if missing:
        raise FileNotFoundError(
            f"{len(missing)} files listed in {csv_path} for {category} are missing under {root_dir}: "
            f"{format_paths(missing)}"
        )
    if not train:
        raise ValueError(f"VisA split file {csv_path} lists no training images for {category}")
    if not test:
        raise ValueError(f"VisA split file {csv_path} lists no test images for {category}")

    return DatasetSplit(
        name=f"visa/{category}",
        train=train,
        test=test,
        flips=category not in _NO_FLIP_CATEGORIES["visa"],
        description=f"VisA {category}: split from {csv_path}",
    )


def load_folder(
    normal_dir: PathLike,
    *,
    abnormal_dir: Optional[PathLike] = None,
    test_normal_dir: Optional[PathLike] = None,
    test_ratio: float = 0.2,
    seed: int = 0,
    flips: bool = True,
) -> DatasetSplit:
    """Build a split from folders of normal and abnormal images.

    All folders are searched recursively. Without `test_normal_dir`, the normal images are
    split by ``sklearn.model_selection.train_test_split(test_size=test_ratio, random_state=seed)``
    applied to the paths in sorted order, so the same files and seed give the same split.

    Args:
        normal_dir: Normal images.
        abnormal_dir: Anomalous test images. An image's group is the path of its subfolder
            relative to this folder, or "anomaly" for images directly in it. None gives a test
            set of normal images only.
        test_normal_dir: Normal test images. When given, every image in `normal_dir` is used
            for training and `test_ratio` is ignored.
        test_ratio: Fraction of `normal_dir` held out as test normals, in (0, 1).
        seed: Seed of the split; 0 is a seed like any other.
        flips: Whether flips keep an image normal for this data.

    Returns:
        The split, named "folder/<name of normal_dir>". Normal records have group "good".

    Raises:
        FileNotFoundError: A folder is missing.
        ValueError: A folder has no image files, `test_ratio` or `seed` is invalid, the split
            would leave the training or test set empty, or the folders share images.
    """
    # Each folder is checked under its option's name first, so a typo names the option to fix.
    for role, folder in (("normal_dir", normal_dir), ("test_normal_dir", test_normal_dir),
                         ("abnormal_dir", abnormal_dir)):
        if folder is not None:
            require_directory(folder, f"{role} folder (--{role.replace('_', '-')})")
    normal_paths = list_image_files(normal_dir, recursive=True)
    normals = [ImageRecord(path=str(path), label=0, group="good") for path in normal_paths]

    if test_normal_dir is not None:
        train = normals
        test_normals = [
            ImageRecord(path=str(path), label=0, group="good")
            for path in list_image_files(test_normal_dir, recursive=True)
        ]
        split_text = f"test normals from {test_normal_dir}"
    else:
        train, test_normals = _split_normals(normals, normal_dir, test_ratio, seed)
        split_text = f"{test_ratio:g} of the normals held out as test normals with seed {seed}"

    anomalies: list[ImageRecord] = []
    if abnormal_dir is not None:
        abnormal_root = Path(abnormal_dir)
        for path in list_image_files(abnormal_root, recursive=True):
            group = path.parent.relative_to(abnormal_root).as_posix()
            anomalies.append(ImageRecord(path=str(path), label=1, group="anomaly" if group == "." else group))
    else:
        logger.info("no abnormal folder given: the test set of %s contains only normal images", normal_dir)

    name = f"folder/{Path(normal_dir).resolve().name}"
    test = test_normals + anomalies
    _check_disjoint(train, test, name)
    _check_disjoint(test_normals, anomalies, name)
    description = f"normals from {normal_dir}, {split_text}"
    if abnormal_dir is not None:
        description += f"; anomalies from {abnormal_dir}"
    return DatasetSplit(name=name, train=train, test=test, flips=flips, description=description)


def _split_normals(
    normals: list[ImageRecord], normal_dir: PathLike, test_ratio: float, seed: int
) -> tuple[list[ImageRecord], list[ImageRecord]]:
    from sklearn.model_selection import train_test_split

    if isinstance(test_ratio, bool) or not isinstance(test_ratio, (int, float)) or not 0 < test_ratio < 1:
        raise ValueError(f"invalid test_ratio {test_ratio!r}: expected a fraction between 0 and 1, exclusive")
    _check_seed(seed)

    # train_test_split rounds the test share up.
    test_count = math.ceil(test_ratio * len(normals))
    if test_count == 0 or test_count == len(normals):
        raise ValueError(
            f"{normal_dir} has {len(normals)} normal image(s), "
            f"too few to split with test_ratio={test_ratio:g}: "
            "the training or test set would be empty. Add images or give the test normals a folder of "
            "their own (test_normal_dir, --test-normal-dir)"
        )
    train, test = train_test_split(normals, test_size=test_ratio, random_state=seed)
    return sorted(train, key=lambda record: record.path), sorted(test, key=lambda record: record.path)
