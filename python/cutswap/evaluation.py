"""Test-set metrics, thresholds and plots of a run."""

from __future__ import annotations

import csv
import io
import logging
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from .data import ImageRecord
from .runs import METRICS_FILE, atomic_write_bytes, atomic_write_json
from .scoring import classification_metrics

logger = logging.getLogger(__name__)


def group_masks(records: Sequence[ImageRecord]) -> Dict[str, np.ndarray]:
    """Return, per group, the test images its AUROC is computed on.

    Where the normal test images carry groups of their own (ELPV cell types), a group's AUROC
    compares the normals and anomalies of that group. Where every normal is in one group (MVTec AD's
    "good"), each anomalous group (a defect type) is compared with all normals.
    """
    labels = np.array([record.label for record in records])
    groups = np.array([record.group for record in records])
    normal_groups = sorted(set(groups[labels == 0]))
    anomalous_groups = sorted(set(groups[labels == 1]))
    masks: Dict[str, np.ndarray] = {}
    if len(normal_groups) > 1:
        for group in sorted(set(normal_groups) | set(anomalous_groups)):
            masks[group] = groups == group
    else:
        for group in anomalous_groups:
            masks[group] = (labels == 0) | (groups == group)
    return masks


def evaluate_scores(
    records: Sequence[ImageRecord],
    scores: np.ndarray,
    train_scores: np.ndarray,
    threshold_quantile: float,
) -> Dict[str, Any]:
    """Compute image metrics overall and per group, and the two decision thresholds.

    Returns:
        ``image_auroc``, ``image_aupr``, ``f1`` and ``threshold`` (F1-optimal on the test set),
        ``thresholds`` (``f1`` and ``train_quantile``, the `threshold_quantile` quantile of
        `train_scores`, which should be held-out scores of the training normals), ``per_group``
        and the label counts.
    """
    labels = np.array([record.label for record in records])
    metrics: Dict[str, Any] = dict(classification_metrics(labels, scores))
    quantile_threshold = float(np.quantile(train_scores, threshold_quantile))
    metrics["thresholds"] = {
        "f1": metrics["threshold"],
        "train_quantile": quantile_threshold,
        "train_quantile_level": threshold_quantile,
    }
    metrics["num_test_normal"] = int((labels == 0).sum())
    metrics["num_test_anomalous"] = int((labels == 1).sum())
    per_group: Dict[str, Dict[str, float]] = {}
    for group, mask in group_masks(records).items():
        values = classification_metrics(labels[mask], scores[mask])
        per_group[group] = {
            "image_auroc": values["image_auroc"],
            "image_aupr": values["image_aupr"],
            "num_normal": int((labels[mask] == 0).sum()),
            "num_anomalous": int((labels[mask] == 1).sum()),
        }
    metrics["per_group"] = per_group
    return metrics


def write_scores_csv(path: Path, records: Sequence[ImageRecord], scores: np.ndarray) -> None:
    """Write one row per test image: path, label, group and score."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["path", "label", "group", "score"])
    for record, score in zip(records, scores):
        writer.writerow([record.path, record.label, record.group, f"{float(score):.6f}"])
    atomic_write_bytes(path, buffer.getvalue().encode("utf-8"))


def write_evaluation(
    output: Path,
    metrics: Dict[str, Any],
    records: Sequence[ImageRecord],
    scores: np.ndarray,
    negatives: Optional[List[Tuple[torch.Tensor, torch.Tensor]]],
    *,
    prefix: str = "",
) -> None:
    """Write metrics JSON, per-image scores and the plots into a run directory.

    `prefix` names the files of an evaluation on another dataset (``eval-<name>-``), so the
    training run's own files are kept.
    """
    output = Path(output)
    write_scores_csv(output / f"{prefix}scores.csv", records, scores)
    labels = np.array([record.label for record in records])
    try:
        plot_roc(output / f"{prefix}roc.png", labels, scores, metrics["image_auroc"])
        plot_histograms(output / f"{prefix}scores.png", labels, scores, metrics["thresholds"])
        if negatives:
            plot_negatives(output / "negatives.png", negatives)
    except Exception as error:  # a plot must never cost the metrics of a finished run
        logger.warning("could not write plots: %s", error)
    # The metrics are written last: their presence marks the run as finished.
    atomic_write_json(output / (f"{prefix}metrics.json" if prefix else METRICS_FILE), metrics)


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(figure: Any, path: Path) -> None:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    atomic_write_bytes(path, buffer.getvalue())


def plot_roc(path: Path, labels: np.ndarray, scores: np.ndarray, auroc: float) -> None:
    """Plot the ROC curve of the test scores."""
    from sklearn.metrics import roc_curve

    if len(np.unique(labels)) < 2:
        return
    plt = _figure()
    false_positive, true_positive, _ = roc_curve(labels, scores)
    figure, axes = plt.subplots(figsize=(4.5, 4.5))
    axes.plot(false_positive, true_positive, label=f"AUROC {auroc:.4f}")
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8)
    axes.set_xlabel("false positive rate")
    axes.set_ylabel("true positive rate")
    axes.set_title("Image-level ROC")
    axes.legend(loc="lower right")
    _save(figure, path)
    plt.close(figure)


def plot_histograms(path: Path, labels: np.ndarray, scores: np.ndarray, thresholds: Dict[str, float]) -> None:
    """Plot score histograms of normal and anomalous test images with the thresholds."""
    plt = _figure()
    figure, axes = plt.subplots(figsize=(6, 3.5))
    bins = np.histogram_bin_edges(scores, bins=40)
    axes.hist(scores[labels == 0], bins=bins, alpha=0.6, label="normal", density=True)
    if (labels == 1).any():
        axes.hist(scores[labels == 1], bins=bins, alpha=0.6, label="anomalous", density=True)
    for name, style in (("f1", "-"), ("train_quantile", "--")):
        value = thresholds.get(name)
        if value is not None and np.isfinite(value):
            axes.axvline(value, color="black", linestyle=style, linewidth=1, label=f"threshold: {name}")
    axes.set_xlabel("anomaly score")
    axes.set_ylabel("density")
    axes.legend()
    _save(figure, path)
    plt.close(figure)


def plot_negatives(path: Path, samples: List[Tuple[torch.Tensor, torch.Tensor]]) -> None:
    """Plot a grid: one row per training image, its normal view then one negative per class."""
    plt = _figure()
    rows = len(samples)
    columns = int(samples[0][0].shape[0])
    figure, axes = plt.subplots(rows, columns, figsize=(2 * columns, 2 * rows), squeeze=False)
    for row, (images, labels) in enumerate(samples):
        for column in range(columns):
            axis = axes[row][column]
            axis.imshow(images[column].numpy())
            axis.set_axis_off()
            if row == 0:
                label = int(labels[column])
                axis.set_title("normal" if label == 0 else f"negative {label}", fontsize=9)
    _save(figure, path)
    plt.close(figure)
