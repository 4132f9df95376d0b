"""Re-score a saved run on a test set: `python -m cutswap.evaluate RUN_DIR [dataset options]`.

Without dataset options the run's own test set is scored (the dataset in its config.json). The
results go into the run directory as ``eval-<dataset>-metrics.json``, ``eval-<dataset>-scores.csv``
and the ROC and histogram plots, next to the training run's own files, which are kept. On datasets
with defect masks (MVTec AD, VisA) the pixel AUROC of the heatmaps is added.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np

from .data import (
    DatasetSplit,
    add_dataset_arguments,
    dataset_spec_from_args,
    load_dataset,
    on_error_from_args,
    read_images,
    read_masks,
)
from .evaluation import evaluate_scores, write_evaluation

# Named explicitly: run as `python -m cutswap.evaluate`, __name__ would be "__main__".
logger = logging.getLogger("cutswap.evaluate")

# The dataset options of add_dataset_arguments; any of them set means "evaluate on that dataset".
_DATASET_OPTIONS = ("dataset", "root", "category", "split_csv", "elpv_variant", "cell_type", "normal_dir",
                    "abnormal_dir", "test_normal_dir", "test_ratio", "split_seed")


def file_prefix(dataset_name: str) -> str:
    """Return the file-name prefix of an evaluation, ``eval-<name>-``, with ``/`` and spaces as ``-``."""
    return "eval-" + re.sub(r"[^A-Za-z0-9_.]+", "-", dataset_name).strip("-") + "-"


def pixel_auroc(heatmaps: np.ndarray, masks: np.ndarray) -> float:
    """Return the AUROC of (N, S, S) heatmaps against (N, S, S) bool masks over all pixels.

    NaN when the masks contain only one class.
    """
    from sklearn.metrics import roc_auc_score

    labels = masks.reshape(-1)
    if labels.all() or not labels.any():
        return float("nan")
    return float(roc_auc_score(labels, heatmaps.reshape(-1)))


def evaluate_run(
    run_dir: Path,
    dataset: Optional[Tuple[str, Dict[str, Any]]] = None,
    *,
    device: str = "auto",
    batch_size: Optional[int] = None,
    on_error: str = "raise",
    progress: bool = False,
) -> Tuple[Dict[str, Any], str]:
    """Score a run on a dataset's test set and write the evaluation files into the run directory.

    Args:
        run_dir: a finished run directory.
        dataset: the dataset name and loader options (default: the run's own dataset).
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        batch_size: images per forward pass (default: the run's).
        on_error: ``raise`` on unreadable test images, or ``skip`` them with a warning.
        progress: show a progress bar while reading images.

    Returns:
        The metrics written, and the file prefix used. ``thresholds.f1`` is F1-optimal on this
        test set; ``thresholds.train_quantile`` and ``run_thresholds`` are the run's own.
        ``pixel_auroc`` is present when some test images have masks.
    """
    from .detector import Detector

    detector = Detector.load(run_dir, device=device, batch_size=batch_size)
    if dataset is None:
        dataset = (detector.run.config["dataset"]["name"], detector.run.config["dataset"]["options"])
    split: DatasetSplit = load_dataset(dataset[0], **dataset[1])
    logger.info("evaluating %s on %s", run_dir, split.summary())

    images, records = read_images(split.test, detector.image_size, on_error=on_error, progress=progress)
    scores = detector.score(images)

    run_thresholds = dict(detector.run.metrics.get("thresholds", {}))
    quantile_threshold = run_thresholds.get("train_quantile", float("nan"))
    level = run_thresholds.get("train_quantile_level", detector.config.threshold_quantile)
    # The quantile of a single score is that score, so this keeps the run's own training threshold
    # without re-scoring its training images.
    metrics = evaluate_scores(records, scores, np.array([quantile_threshold]), level)
    metrics["run_thresholds"] = run_thresholds
    metrics["run_dir"] = str(run_dir)
    metrics["dataset"] = {"name": split.name, "description": split.description,
                          "options": _jsonable(dataset[1])}
    metrics["num_test"] = len(records)

    if any(record.mask_path is not None for record in records):
        heatmaps = detector.heatmap(images, raw=True)
        masks = read_masks(records, detector.image_size)
        metrics["pixel_auroc"] = pixel_auroc(heatmaps, masks)

    prefix = file_prefix(split.name)
    write_evaluation(Path(run_dir), metrics, records, scores, None, prefix=prefix)
    return metrics, prefix


def _jsonable(options: Dict[str, Any]) -> Dict[str, Any]:
    return {key: (str(value) if isinstance(value, Path) else value) for key, value in options.items()}


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of `python -m cutswap.evaluate`."""
    parser = argparse.ArgumentParser(
        prog="python -m cutswap.evaluate",
        description="Score a trained run on its own test set or on another dataset's, and print the AUROC. "
        "Files named eval-<dataset>-* are written into the run directory.",
    )
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR",
                        help="run directory written by cutswap.train")
    add_dataset_arguments(parser)
    # Without any dataset option, the run's own dataset is used rather than the parser's elpv default.
    parser.set_defaults(dataset=None)
    parser.add_argument("--batch-size", type=int, help="images per forward pass (default: the run's)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line; return the exit status (0, or 2 on errors)."""
    from .train import configure_console_logging

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.batch_size is not None and args.batch_size < 1:
        parser.error(f"--batch-size must be at least 1, got {args.batch_size}")
    configure_console_logging(args.verbose)

    dataset = None
    given = [option for option in _DATASET_OPTIONS if getattr(args, option, None) is not None]
    if given and args.dataset is None:
        flags = ", ".join("--" + option.replace("_", "-") for option in given)
        parser.error(f"{flags} needs --dataset to say which dataset to load "
                     "(without any dataset option, the run's own is used)")
    if given:
        try:
            dataset = dataset_spec_from_args(args)
        except ValueError as error:
            parser.error(str(error))
    try:
        metrics, prefix = evaluate_run(args.run_dir, dataset, device=args.device, batch_size=args.batch_size,
                                       on_error=on_error_from_args(args), progress=not args.no_progress)
    except (FileNotFoundError, ValueError, TypeError) as error:
        logger.error("%s", error)
        return 2

    per_group = metrics["per_group"].items()
    summary = ", ".join(f"{group} {values['image_auroc']:.4f}" for group, values in per_group)
    print(f"image AUROC {metrics['image_auroc']:.4f}" + (f" ({summary})" if summary else ""))
    if "pixel_auroc" in metrics:
        print(f"pixel AUROC {metrics['pixel_auroc']:.4f}")
    print(f"metrics: {Path(args.run_dir) / (prefix + 'metrics.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
