"""Decoding image and mask files into fixed-size arrays."""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Optional, Sequence

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from tqdm.auto import tqdm

from .records import ImageRecord, PathLike, format_paths

logger = logging.getLogger(__name__)

# Exceptions Pillow raises for unreadable, truncated or corrupt files. SyntaxError and EOFError
# come from some format plugins, and DecompressionBombError from images above Pillow's pixel limit.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)

# Integer modes wider than 8 bits. Their values are clipped to [0, 65535] and scaled to [0, 255].
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")

# Modes with transparency; they are composited on black.
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")

_MAX_WORKERS = 8


class ImageReadError(ValueError):
    """One or more image files could not be read.

    Attributes:
        failures: (path, reason) for every file that failed.
    """

    def __init__(
        self, failures: list[tuple[str, str]], advice: str = "Replace or delete these files."
    ) -> None:
        self.failures = failures
        lines = [f"  {path}: {reason}" for path, reason in failures[:20]]
        if len(failures) > 20:
            lines.append(f"  ... and {len(failures) - 20} more")
        header = f"failed to read {len(failures)} image file(s):"
        super().__init__("\n".join([header, *lines, advice]))


def _check_size(size: int) -> None:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"invalid size {size!r}: expected a positive integer number of pixels")


def _describe_error(error: BaseException) -> str:
    if isinstance(error, FileNotFoundError):
        return "file not found"
    if isinstance(error, UnidentifiedImageError):
        return "not a readable image (unknown format or corrupt file)"
    return f"{type(error).__name__}: {error}"


def _open_image(path: PathLike) -> Image.Image:
    """Decode the first frame of an image file fully, with EXIF orientation applied.

    Raises:
        ImageReadError: The file is missing, unreadable, truncated or corrupt.
    """
    try:
        with Image.open(path) as image:
            image.load()
            oriented = ImageOps.exif_transpose(image)
            # exif_transpose returns the same object when there is nothing to rotate; copy it so
            # the result outlives the closed file.
            return oriented.copy() if oriented is image else oriented
    except _DECODE_ERRORS as error:
        raise ImageReadError([(os.fspath(path), _describe_error(error))]) from error


def _gray_to_float(image: Image.Image) -> np.ndarray:
    """Scale a 16-bit, 32-bit integer or float image to float32 (H, W) in [0, 255]."""
    values = np.asarray(image)
    if image.mode in _SIXTEEN_BIT_MODES:
        # Scale the full 16-bit range onto 8 bits. Pillow's own conversion clips at 255 instead.
        return np.clip(values.astype(np.float32), 0, 65535) * np.float32(255 / 65535)

    # Float images have no fixed range, so take the smallest of [0, 1], [0, 255] and [0, 65535]
    # that contains the maximum. Images of one dataset share a range, so they share a scale.
    values = np.nan_to_num(values.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    maximum = float(values.max(initial=0.0))
    if maximum <= 1.0:
        scale = 255.0
    elif maximum <= 255.0:
        scale = 1.0
    else:
        scale = 255.0 / 65535.0
    return np.clip(values * np.float32(scale), 0, 255)


def _composite_on_black(image: Image.Image) -> Image.Image:
    """Convert an image with transparency to RGB as if drawn on a black background."""
    rgba = np.asarray(image.convert("RGBA"), dtype=np.uint16)
    premultiplied = (rgba[..., :3] * rgba[..., 3:4] + 127) // 255
    return Image.fromarray(premultiplied.astype(np.uint8), mode="RGB")


def to_rgb(image: Image.Image, size: int) -> np.ndarray:
    """Convert a decoded image of any Pillow mode to RGB and resize it.

    Grayscale is replicated into three channels. Transparent images (RGBA, LA, palette with a
    transparent colour) are composited on black. 16-bit images are scaled from [0, 65535] to
    [0, 255], not clipped. The image is resized to (size, size) with bilinear interpolation,
    which Pillow antialiases when it shrinks, ignoring the aspect ratio.

    Args:
        image: Decoded image.
        size: Output side length in pixels.

    Returns:
        (size, size, 3) uint8.
    """
    mode = image.mode
    if mode == "P" and "transparency" in image.info:
        mode = "PA"
        image = image.convert("RGBA")

    if mode in _SIXTEEN_BIT_MODES or mode == "F":
        # Resize before quantising so that the extra bits improve the interpolation.
        gray = Image.fromarray(_gray_to_float(image), mode="F")
        resized = np.asarray(gray.resize((size, size), Image.Resampling.BILINEAR))
        channel = np.clip(np.rint(resized), 0, 255).astype(np.uint8)
        return np.repeat(channel[:, :, None], 3, axis=2)

    if mode in _ALPHA_MODES:
        rgb = _composite_on_black(image)
    elif mode == "RGB":
        rgb = image
    else:
        # Pillow converts the other modes (L, 1, P, CMYK, YCbCr, LAB, HSV) and copies grey into all
        # three channels.
        rgb = image.convert("RGB")
    return np.asarray(rgb.resize((size, size), Image.Resampling.BILINEAR), dtype=np.uint8)


def _read(path: PathLike, size: int) -> tuple[np.ndarray, tuple[int, int]]:
    image = _open_image(path)
    try:
        return to_rgb(image, size), image.size
    except _DECODE_ERRORS as error:
        raise ImageReadError([(os.fspath(path), _describe_error(error))]) from error


def read_image(path: PathLike, size: int) -> np.ndarray:
    """Read an image file as RGB, resized to a square.

    See `to_rgb` for how modes are converted. Only the first frame of a multi-frame file is read,
    and EXIF orientation is applied.

    Args:
        path: Image file.
        size: Output side length in pixels.

    Returns:
        (size, size, 3) uint8.

    Raises:
        ImageReadError: The file is missing, unreadable, truncated or corrupt.
        ValueError: `size` is not a positive integer.
    """
    _check_size(size)
    return _read(path, size)[0]


def read_mask(path: PathLike, size: int) -> np.ndarray:
    """Read a defect mask: every non-zero pixel is a defect pixel.

    Colour masks count a pixel as defective when any colour channel is non-zero, and an alpha
    channel is ignored. The mask is resized with nearest-neighbour interpolation.

    Args:
        path: Mask image file.
        size: Output side length in pixels.

    Returns:
        (size, size) bool.

    Raises:
        ImageReadError: The file is missing, unreadable, truncated or corrupt.
        ValueError: `size` is not a positive integer.
    """
    _check_size(size)
    image = _open_image(path)
    if image.mode == "P":
        image = image.convert("RGB")
    values = np.asarray(image)
    if values.ndim == 3:
        colour_channels = 1 if image.mode in ("LA", "La") else 3
        defect = values[:, :, :colour_channels].any(axis=2)
    else:
        defect = values != 0
    binary = Image.fromarray(defect.astype(np.uint8) * 255, mode="L")
    return np.asarray(binary.resize((size, size), Image.Resampling.NEAREST)) > 127


def read_masks(records: Sequence[ImageRecord], size: int) -> np.ndarray:
    """Read the masks of test records; records without a mask get an all-False mask.

    Args:
        records: Records whose `mask_path` to read.
        size: Output side length in pixels.

    Returns:
        (N, size, size) bool.
    """
    _check_size(size)
    masks = np.zeros((len(records), size, size), dtype=bool)
    for index, record in enumerate(records):
        if record.mask_path is not None:
            masks[index] = read_mask(record.mask_path, size)
    return masks


def read_images(
    records: Sequence[ImageRecord],
    size: int,
    *,
    on_error: str = "raise",
    progress: bool = True,
    workers: Optional[int] = None,
) -> tuple[np.ndarray, list[ImageRecord]]:
    """Read the images of many records into one array.

    Every file is attempted before any error is raised, so one error lists all bad files.
    Images smaller than `size` on either side are upscaled, with one warning per call.

    Args:
        records: Records to read, in order.
        size: Output side length in pixels.
        on_error: "raise" to raise ImageReadError listing every bad file, or "skip" to leave bad
            files out with one warning that lists them.
        progress: Whether to show a tqdm progress bar.
        workers: Decoding threads. None uses the number of CPUs, at most 8. Pillow releases
            the GIL while it decodes and resizes, and the threads end before this returns.

    Returns:
        (images, kept): (N, size, size, 3) uint8 and the N records that were read, in input
        order. N equals len(records) unless files were skipped.

    Raises:
        ImageReadError: Some files could not be read and `on_error` is "raise", or none could.
        ValueError: Invalid `size`, `on_error` or `workers`.
    """
    _check_size(size)
    if on_error not in ("raise", "skip"):
        raise ValueError(f"invalid on_error {on_error!r}: expected 'raise' or 'skip'")
    if workers is None:
        workers = min(_MAX_WORKERS, os.cpu_count() or 1)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"invalid workers {workers!r}: expected a positive integer or None")

    records = list(records)
    images = np.empty((len(records), size, size, 3), dtype=np.uint8)

    def read_one(index: int) -> tuple[Optional[tuple[int, int]], Optional[ImageReadError]]:
        try:
            images[index], original_size = _read(records[index].path, size)
        except ImageReadError as error:
            return None, error
        return original_size, None

    indices = range(len(records))
    pool = ThreadPoolExecutor(max_workers=workers) if workers > 1 and len(records) > 1 else None
    try:
        mapped = pool.map(read_one, indices) if pool is not None else map(read_one, indices)
        outcomes = list(
            tqdm(mapped, total=len(records), desc="reading images", unit="image", disable=not progress)
        )
    finally:
        if pool is not None:
            pool.shutdown()

    failures: list[tuple[str, str]] = []
    kept_indices: list[int] = []
    upscaled: list[str] = []
    for index, (original_size, error) in enumerate(outcomes):
        if error is not None:
            failures.extend(error.failures)
            continue
        kept_indices.append(index)
        if original_size is not None and min(original_size) < size:
            upscaled.append(records[index].path)

    if upscaled:
        logger.warning(
            "%d of %d images are smaller than %dx%d pixels and were upscaled: %s",
            len(upscaled),
            len(records),
            size,
            size,
            format_paths(upscaled, limit=3),
        )
    if not failures:
        return images, records

    if on_error == "raise" or not kept_indices:
        # Only a whole-list read can leave files out, so only this caller offers skipping.
        raise ImageReadError(
            failures, "Replace or delete these files, or skip them (on_error='skip', --skip-bad-images)."
        )
    logger.warning(
        "skipped %d of %d images that could not be read: %s",
        len(failures),
        len(records),
        "; ".join(f"{path} ({reason})" for path, reason in failures),
    )
    # Move the kept rows forward in place rather than allocating a second array.
    for target, source in enumerate(kept_indices):
        if target != source:
            images[target] = images[source]
    return images[: len(kept_indices)], [records[index] for index in kept_indices]


def image_sources(records: Sequence[ImageRecord]) -> list[dict]:
    """Describe the files behind records, as a cache key that changes when a file changes.

    Args:
        records: Records to describe.

    Returns:
        One {"path": absolute path, "size": bytes, "mtime_ns": modification time in
        nanoseconds} per record, in order.

    Raises:
        FileNotFoundError: A file does not exist.
    """
    sources = []
    for record in records:
        path = os.path.abspath(record.path)
        status = os.stat(path)
        sources.append({"path": path, "size": status.st_size, "mtime_ns": status.st_mtime_ns})
    return sources
