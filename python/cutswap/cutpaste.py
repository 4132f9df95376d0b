"""CutPaste augmentations in NumPy.

Source: Li et al., "CutPaste: Self-Supervised Learning for Anomaly Detection and
Localization", CVPR 2021.

- `cutpaste_normal`: cut a rectangle with area ratio uniform in [0.02, 0.15] and aspect ratio
  log-uniform in [0.3, 3.3], jitter its colours, paste it at a random place.
- `cutpaste_scar`: cut a thin rectangle 2-16 pixels wide and 10-25 pixels tall, jitter its
  colours, rotate it by an angle uniform in [-45, 45] degrees, paste it at a random place.

The colour jitter scales brightness, contrast and saturation by factors uniform in
[0.9, 1.1] and rotates the hue by up to 0.1 of a turn. The hue rotation turns the chroma
plane of the YIQ colour space, a linear approximation of the HSV hue shift that torchvision's
`ColorJitter` applies.

Both functions take a (H, W, 3) uint8 image and a seed for `numpy.random.default_rng`. They
return a new (H, W, 3) uint8 image and leave the input unchanged.
"""

from __future__ import annotations

import math
from typing import Tuple

import numpy as np

NORMAL_AREA = (0.02, 0.15)
NORMAL_ASPECT = (0.3, 3.3)
SCAR_WIDTH = (2, 16)
SCAR_HEIGHT = (10, 25)
SCAR_ANGLE_DEGREES = (-45.0, 45.0)
JITTER = 0.1

_RGB_TO_YIQ = np.array(
    [
        [0.299, 0.587, 0.114],
        [0.595716, -0.274453, -0.321263],
        [0.211456, -0.522591, 0.311135],
    ]
)
_YIQ_TO_RGB = np.linalg.inv(_RGB_TO_YIQ)
_LUMA = _RGB_TO_YIQ[0]


def _check_image(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray):
        raise TypeError(f"image must be a numpy.ndarray, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise TypeError(f"image must have dtype uint8, got {image.dtype}")
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"image must have shape (H, W, 3) with H, W >= 1, got {image.shape}")


def color_jitter(patch: np.ndarray, rng: np.random.Generator, strength: float = JITTER) -> np.ndarray:
    """Jitter the colours of an (h, w, 3) uint8 patch.

    Brightness, contrast and saturation are scaled by factors uniform in
    [1 - strength, 1 + strength], applied in a random order, then the hue is rotated by an
    angle uniform in [-strength, strength] turns.

    Args:
        patch: (h, w, 3) uint8 patch.
        rng: Generator for the factors.
        strength: Jitter strength in [0, 1).

    Returns:
        A new (h, w, 3) uint8 patch.
    """
    pixels = patch.astype(np.float64)
    factors = rng.uniform(1.0 - strength, 1.0 + strength, size=3)

    for operation in rng.permutation(3):
        factor = factors[operation]
        if operation == 0:
            pixels = pixels * factor
        elif operation == 1:
            mean_luma = float((pixels @ _LUMA).mean())
            pixels = (pixels - mean_luma) * factor + mean_luma
        else:
            luma = (pixels @ _LUMA)[..., None]
            pixels = (pixels - luma) * factor + luma
        pixels = np.clip(pixels, 0.0, 255.0)

    angle = 2.0 * math.pi * rng.uniform(-strength, strength)
    cosine, sine = math.cos(angle), math.sin(angle)
    rotation = np.array([[1.0, 0.0, 0.0], [0.0, cosine, -sine], [0.0, sine, cosine]])
    yiq = pixels @ _RGB_TO_YIQ.T
    pixels = yiq @ rotation.T @ _YIQ_TO_RGB.T
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)


def _normal_patch_size(rng: np.random.Generator, height: int, width: int) -> Tuple[int, int]:
    area = rng.uniform(*NORMAL_AREA) * height * width
    aspect = math.exp(rng.uniform(math.log(NORMAL_ASPECT[0]), math.log(NORMAL_ASPECT[1])))
    patch_height = min(max(round(math.sqrt(area * aspect)), 1), height)
    patch_width = min(max(round(math.sqrt(area / aspect)), 1), width)
    return patch_height, patch_width


def cutpaste_normal(image: np.ndarray, seed: int) -> np.ndarray:
    """Apply CutPaste (normal): paste a colour-jittered copy of one rectangle elsewhere.

    Args:
        image: (H, W, 3) uint8 image.
        seed: Seed for `numpy.random.default_rng`.

    Returns:
        A new (H, W, 3) uint8 image.

    Raises:
        TypeError: If `image` is not a uint8 ndarray.
        ValueError: If `image` is not (H, W, 3).
    """
    _check_image(image)
    rng = np.random.default_rng(seed)
    height, width = image.shape[:2]
    patch_height, patch_width = _normal_patch_size(rng, height, width)

    source_y = int(rng.integers(height - patch_height + 1))
    source_x = int(rng.integers(width - patch_width + 1))
    patch = image[source_y : source_y + patch_height, source_x : source_x + patch_width]
    patch = color_jitter(patch, rng)

    target_y = int(rng.integers(height - patch_height + 1))
    target_x = int(rng.integers(width - patch_width + 1))
    output = image.copy()
    output[target_y : target_y + patch_height, target_x : target_x + patch_width] = patch
    return output


def _rotate_patch(patch: np.ndarray, angle_degrees: float) -> Tuple[np.ndarray, np.ndarray]:
    """Rotate a patch about its centre with nearest-neighbour sampling.

    Returns:
        (rotated, mask): rotated (H', W', 3) uint8 over the bounding box of the rotated
        rectangle, and mask (H', W') bool marking the pixels that come from the patch.
    """
    height, width = patch.shape[:2]
    angle = math.radians(angle_degrees)
    cosine, sine = math.cos(angle), math.sin(angle)
    box_height = max(math.ceil(abs(height * cosine) + abs(width * sine) - 1e-9), 1)
    box_width = max(math.ceil(abs(height * sine) + abs(width * cosine) - 1e-9), 1)

    rows, columns = np.mgrid[0:box_height, 0:box_width].astype(np.float64)
    rows -= (box_height - 1) / 2.0
    columns -= (box_width - 1) / 2.0

    # Each output pixel samples the patch at its position rotated back by the angle.
    source_rows = np.rint(cosine * rows + sine * columns + (height - 1) / 2.0).astype(np.int64)
    source_columns = np.rint(-sine * rows + cosine * columns + (width - 1) / 2.0).astype(np.int64)
    mask = (source_rows >= 0) & (source_rows < height) & (source_columns >= 0) & (source_columns < width)

    rotated = np.zeros((box_height, box_width, 3), dtype=np.uint8)
    rotated[mask] = patch[source_rows[mask], source_columns[mask]]
    return rotated, mask


def cutpaste_scar(image: np.ndarray, seed: int) -> np.ndarray:
    """Apply CutPaste (scar): paste a thin, rotated, colour-jittered strip elsewhere.

    On images smaller than the drawn strip, its sides are clamped to the image.

    Args:
        image: (H, W, 3) uint8 image.
        seed: Seed for `numpy.random.default_rng`.

    Returns:
        A new (H, W, 3) uint8 image.

    Raises:
        TypeError: If `image` is not a uint8 ndarray.
        ValueError: If `image` is not (H, W, 3).
    """
    _check_image(image)
    rng = np.random.default_rng(seed)
    height, width = image.shape[:2]
    scar_width = min(int(rng.integers(SCAR_WIDTH[0], SCAR_WIDTH[1] + 1)), width)
    scar_height = min(int(rng.integers(SCAR_HEIGHT[0], SCAR_HEIGHT[1] + 1)), height)
    angle = rng.uniform(*SCAR_ANGLE_DEGREES)

    source_y = int(rng.integers(height - scar_height + 1))
    source_x = int(rng.integers(width - scar_width + 1))
    patch = image[source_y : source_y + scar_height, source_x : source_x + scar_width]
    rotated, mask = _rotate_patch(color_jitter(patch, rng), angle)

    # The rotated bounding box can exceed a small image; crop it to fit.
    rotated = rotated[:height, :width]
    mask = mask[:height, :width]
    box_height, box_width = mask.shape
    target_y = int(rng.integers(height - box_height + 1))
    target_x = int(rng.integers(width - box_width + 1))

    output = image.copy()
    region = output[target_y : target_y + box_height, target_x : target_x + box_width]
    region[mask] = rotated[mask]
    return output
