"""Score image files with a saved run: `python -m cutswap.predict RUN_DIR IMAGE_OR_DIR...`.

Writes one row per image (path, score, anomalous, error) as JSON or CSV. An image that cannot be
read gets an ``error`` and no score; the others are still scored, and the exit status is 1.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np

from .data import ImageReadError, list_image_files, read_image
from .runs import atomic_write_bytes

# Named explicitly: run as `python -m cutswap.predict`, __name__ would be "__main__".
logger = logging.getLogger("cutswap.predict")

COLUMNS = ("path", "score", "anomalous", "error")


def expand_inputs(inputs: Sequence[str]) -> List[str]:
    """Expand folders to their image files (recursively, sorted); files are kept as given, in order."""
    paths: List[str] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            paths.extend(str(found) for found in list_image_files(path, recursive=True))
        else:
            paths.append(item)
    return paths


def parse_threshold(text: str) -> Union[str, float]:
    """Return ``f1``, ``train_quantile`` or the number written in `text`."""
    if text in ("f1", "train_quantile"):
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid threshold {text!r}: expected f1, train_quantile or a number"
        ) from None


def overlay(image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend a (S, S) heatmap in [0, 1], coloured with matplotlib's ``jet``, over a (S, S, 3) uint8 image."""
    from matplotlib import colormaps

    colours = colormaps["jet"](np.clip(heatmap, 0.0, 1.0))[:, :, :3] * 255.0
    blended = (1.0 - alpha) * image.astype(np.float32) + alpha * colours
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)


def _png_bytes(image: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def _heatmap_name(path: str, used: set) -> str:
    stem = Path(path).stem
    name = f"{stem}.png"
    counter = 1
    while name in used:
        counter += 1
        name = f"{stem}-{counter}.png"
    used.add(name)
    return name


def predict_files(
    detector: Any,
    paths: Sequence[str],
    *,
    threshold: Union[str, float] = "f1",
    batch_size: Optional[int] = None,
    heatmap_dir: Optional[Path] = None,
) -> List[Dict[str, Any]]:
    """Score image files one batch at a time, recording unreadable files instead of stopping.

    Args:
        detector: a loaded `cutswap.Detector`.
        paths: image files.
        threshold: ``f1``, ``train_quantile`` or a number.
        batch_size: images per batch (default: the detector's).
        heatmap_dir: when given, write a PNG overlay of each image's heatmap here, named after
            the image file (``name.png``, then ``name-2.png`` for a repeated name).

    Returns:
        One dict per path, in order: ``path``, ``score`` (float or None), ``anomalous`` (bool or
        None) and ``error`` (None, or why the file could not be read).
    """
    value = detector.threshold(threshold)
    step = batch_size or detector.batch_size
    size = detector.image_size
    rows: List[Dict[str, Any]] = []
    used_names: set = set()
    if heatmap_dir is not None:
        heatmap_dir.mkdir(parents=True, exist_ok=True)

    for start in range(0, len(paths), step):
        chunk = paths[start:start + step]
        images: List[np.ndarray] = []
        chunk_rows: List[Dict[str, Any]] = []
        for path in chunk:
            row: Dict[str, Any] = {"path": path, "score": None, "anomalous": None, "error": None}
            try:
                images.append(read_image(path, size))
            except ImageReadError as error:
                reason = "; ".join(f"{reason}" for _, reason in error.failures)
                row["error"] = reason
                logger.error("could not read %s: %s", path, reason)
            chunk_rows.append(row)
        readable = [row for row in chunk_rows if row["error"] is None]
        if images:
            batch = np.stack(images)
            scores = detector.score(batch, batch_size=len(batch))
            for row, score in zip(readable, scores):
                row["score"] = float(score)
                row["anomalous"] = bool(score > value)
            if heatmap_dir is not None:
                maps = detector.heatmap(batch, batch_size=len(batch))
                for row, image, heatmap in zip(readable, batch, maps):
                    target = heatmap_dir / _heatmap_name(row["path"], used_names)
                    atomic_write_bytes(target, _png_bytes(overlay(image, heatmap)))
        rows.extend(chunk_rows)
    return rows


def format_rows(rows: Sequence[Dict[str, Any]], output_format: str) -> str:
    """Render rows as a JSON list or as CSV with the columns path, score, anomalous, error."""
    if output_format == "json":
        return json.dumps(list(rows), indent=2) + "\n"
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        score = "" if row["score"] is None else repr(row["score"])
        anomalous = "" if row["anomalous"] is None else str(row["anomalous"]).lower()
        writer.writerow([row["path"], score, anomalous, row["error"] or ""])
    return buffer.getvalue()


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of `python -m cutswap.predict`."""
    parser = argparse.ArgumentParser(
        prog="python -m cutswap.predict",
        description="Score images with a trained cutswap run and flag those above a threshold. "
        "Unreadable images get an error entry; the others are still scored, and the exit status is 1.",
    )
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR",
                        help="run directory written by cutswap.train")
    parser.add_argument("inputs", nargs="+", metavar="IMAGE_OR_DIR",
                        help="image files, or folders whose image files are scored (searched recursively)")
    parser.add_argument("--threshold", type=parse_threshold, default="f1",
                        help="f1 (F1-optimal on the run's test set), train_quantile (a high quantile of the "
                        "training normals' scores, for data without known defects) or a number (default: f1)")
    parser.add_argument("--format", choices=("json", "csv"), default="json", dest="output_format",
                        help="output format (default: json)")
    parser.add_argument("--output", type=Path,
                        help="write the results to this file, atomically (default: standard output)")
    parser.add_argument("--heatmaps", type=Path, metavar="DIR",
                        help="write a PNG heatmap overlay per image into this folder")
    parser.add_argument("--batch-size", type=int, help="images per forward pass (default: the run's)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    parser.add_argument("--backbone", choices=("efficientnet_lite0", "resnet18"),
                        help="fail unless the run was trained with this backbone (default: accept any)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line; return the exit status (0, 1 when some images failed, 2 on errors)."""
    from .detector import Detector
    from .train import configure_console_logging

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.batch_size is not None and args.batch_size < 1:
        parser.error(f"--batch-size must be at least 1, got {args.batch_size}")
    configure_console_logging(args.verbose)
    try:
        paths = expand_inputs(args.inputs)
        detector = Detector.load(args.run_dir, device=args.device, backbone=args.backbone,
                                 batch_size=args.batch_size)
        rows = predict_files(detector, paths, threshold=args.threshold, heatmap_dir=args.heatmaps)
    except (FileNotFoundError, ValueError, TypeError) as error:
        logger.error("%s", error)
        return 2

    text = format_rows(rows, args.output_format)
    if args.output is not None:
        atomic_write_bytes(args.output, text.encode("utf-8"))
    else:
        sys.stdout.write(text)
    failed = sum(row["error"] is not None for row in rows)
    if failed:
        logger.error("%d of %d images could not be read", failed, len(rows))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
