"""Command-line options that select a dataset, shared by the train, evaluate, saliency and predict tools."""

from __future__ import annotations

import argparse
from typing import Any

from .elpv import ELPV_CELL_TYPES, ELPV_VARIANTS
from .loading import DATASET_LOADERS, load_dataset
from .records import DatasetSplit

# The argparse destinations each dataset accepts. The others must stay unset.
_OPTIONS_BY_DATASET = {
    "elpv": ("elpv_variant", "cell_type", "split_seed"),
    "mvtec": ("root", "category"),
    "visa": ("root", "category", "split_csv"),
    "folder": ("normal_dir", "abnormal_dir", "test_normal_dir", "test_ratio", "split_seed"),
}
_ALL_OPTIONS = sorted({option for options in _OPTIONS_BY_DATASET.values() for option in options})


def add_dataset_arguments(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """Add the dataset options to a parser, in their own help section.

    Options: --dataset, --root, --category, --split-csv, --elpv-variant, --cell-type,
    --normal-dir, --abnormal-dir, --test-normal-dir, --test-ratio, --split-seed and
    --skip-bad-images. Read them back with `dataset_from_args` and `on_error_from_args`.

    Args:
        parser: Parser to extend.

    Returns:
        The argument group that contains the options.
    """
    group = parser.add_argument_group(
        "dataset",
        "Which images to use. Training images are normal; the test set has normal and anomalous images.",
    )
    group.add_argument(
        "--dataset",
        choices=list(DATASET_LOADERS),
        default="elpv",
        help="dataset to load: elpv (solar cells from the elpv-dataset package), mvtec (MVTec AD layout), "
        "visa (VisA layout with its split CSV) or folder (folders of normal and abnormal images) "
        "(default: %(default)s)",
    )
    group.add_argument(
        "--root",
        metavar="DIR",
        help="mvtec, visa: folder that contains the category folders (required)",
    )
    group.add_argument(
        "--category",
        metavar="NAME",
        help="mvtec, visa: category to load, e.g. bottle or candle (required; an error lists those found)",
    )
    group.add_argument(
        "--split-csv",
        metavar="FILE",
        help="visa: split file with the columns object,split,label,image,mask "
        "(default: ROOT/split_csv/1cls.csv)",
    )
    group.add_argument(
        "--elpv-variant",
        choices=ELPV_VARIANTS,
        help="elpv: 'literature' counts cells with defect probability 1 as anomalous and leaves out 1/3 and "
        "2/3; 'any_defect' counts every probability above 0 (default: literature)",
    )
    group.add_argument(
        "--cell-type",
        choices=ELPV_CELL_TYPES,
        help="elpv: keep only mono or poly cells in both the training and the test set (default: both)",
    )
    group.add_argument(
        "--normal-dir",
        metavar="DIR",
        help="folder: normal images, searched recursively (required)",
    )
    group.add_argument(
        "--abnormal-dir",
        metavar="DIR",
        help="folder: anomalous test images, searched recursively; subfolder names become defect types "
        "(default: none, so the test set is normal only)",
    )
    group.add_argument(
        "--test-normal-dir",
        metavar="DIR",
        help="folder: normal test images; then every image in --normal-dir is used for training "
        "(default: hold out --test-ratio of --normal-dir)",
    )
    group.add_argument(
        "--test-ratio",
        type=float,
        metavar="FRACTION",
        help="folder: fraction of --normal-dir held out as test normals, between 0 and 1 (default: 0.2)",
    )
    group.add_argument(
        "--split-seed",
        type=int,
        metavar="INT",
        help="elpv, folder: seed of the normal train/test split (default: 42 for elpv, the published split; "
        "0 for folder)",
    )
    group.add_argument(
        "--skip-bad-images",
        action="store_true",
        help="leave out unreadable or corrupt image files with one warning that lists them "
        "(default: stop with an error that lists them all)",
    )
    return group


def _flag(option: str) -> str:
    return "--" + option.replace("_", "-")


def dataset_from_args(args: argparse.Namespace) -> DatasetSplit:
    """Load the dataset selected by the options of `add_dataset_arguments`.

    Args:
        args: Parsed arguments.

    Returns:
        The split.

    Raises:
        ValueError: As `dataset_spec_from_args`; the loaders' own errors pass through unchanged.
    """
    name, options = dataset_spec_from_args(args)
    return load_dataset(name, **options)


def dataset_spec_from_args(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """Return the dataset name and loader options selected by the options of `add_dataset_arguments`.

    A run stores this pair, so `load_dataset(name, **options)` rebuilds the same split later.

    Args:
        args: Parsed arguments.

    Returns:
        The dataset name and the keyword arguments of its loader.

    Raises:
        ValueError: A required option is missing, or an option was given that does not apply
            to the chosen dataset. The message names the options, so a tool can pass it to
            ``parser.error``. The loaders' own errors pass through unchanged.
    """
    dataset = getattr(args, "dataset", None) or "elpv"
    if dataset not in _OPTIONS_BY_DATASET:
        raise ValueError(f"invalid --dataset {dataset!r}: expected one of {', '.join(_OPTIONS_BY_DATASET)}")
    accepted = _OPTIONS_BY_DATASET[dataset]
    values = {option: getattr(args, option, None) for option in _ALL_OPTIONS}

    stray = [
        _flag(option) for option in _ALL_OPTIONS if option not in accepted and values[option] is not None
    ]
    if stray:
        raise ValueError(f"{', '.join(stray)} does not apply to --dataset {dataset}")

    if dataset == "elpv":
        options: dict[str, Any] = {
            "variant": values["elpv_variant"] or "literature",
            "cell_type": values["cell_type"],
            "seed": 42 if values["split_seed"] is None else values["split_seed"],
        }
    elif dataset in ("mvtec", "visa"):
        if values["root"] is None:
            raise ValueError(f"--root is required with --dataset {dataset}")
        options = {"root": values["root"], "category": values["category"]}
        if dataset == "visa":
            options["split_csv"] = values["split_csv"]
    else:
        if values["normal_dir"] is None:
            raise ValueError("--normal-dir is required with --dataset folder")
        if values["test_normal_dir"] is not None and values["test_ratio"] is not None:
            raise ValueError("--test-ratio has no effect with --test-normal-dir; give one of them")
        options = {
            "normal_dir": values["normal_dir"],
            "abnormal_dir": values["abnormal_dir"],
            "test_normal_dir": values["test_normal_dir"],
            "test_ratio": 0.2 if values["test_ratio"] is None else values["test_ratio"],
            "seed": 0 if values["split_seed"] is None else values["split_seed"],
        }
    return dataset, options


def on_error_from_args(args: argparse.Namespace) -> str:
    """Return the `on_error` value for `read_images` chosen by --skip-bad-images: "skip" or "raise"."""
    return "skip" if getattr(args, "skip_bad_images", False) else "raise"
