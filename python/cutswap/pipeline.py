"""The training batch pipeline: weak augmentation of normal images and the negatives made from them.

`NegativeDataset` runs inside DataLoader workers. Every random draw of a sample comes from a seed
derived from the run seed, the epoch and the sample index. A batch is therefore the same whatever
the number of workers, and a resumed run gets the batches an uninterrupted run would have got.
"""

from __future__ import annotations

import logging
from typing import Optional, Tuple

import numpy as np
import torch
from torch.utils.data import Dataset

from .augment import CutSwapTransform, derive_seed
from .config import TrainConfig
from .cutpaste import cutpaste_normal, cutpaste_scar

logger = logging.getLogger(__name__)

# Streams of derive_seed below the sample index, so the draws of one sample never share a seed.
_STREAM_WEAK = 0
_STREAM_NEGATIVE = 1
_STREAM_CHOICE = 2


def num_negative_classes(config: TrainConfig, num_levels: int) -> int:
    """Return the number of negative classes the classifier learns besides the normal class."""
    if config.head == "binary" or config.augmentation in ("random_swap", "cutpaste", "cutpaste_scar"):
        return 1
    if config.augmentation == "cutpaste_3way":
        return 2
    if config.augmentation == "cutswap":
        return num_levels
    raise ValueError(f"augmentation {config.augmentation!r} makes no negatives")


def weak_augment(
    image: np.ndarray,
    maps: Optional[np.ndarray],
    rng: np.random.Generator,
    *,
    flips: bool,
    translate: float,
    color_jitter: float,
) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """Apply the weak, label-preserving augmentation to an image and its saliency maps together.

    Flips and translation move the maps with the image, so the salient regions stay where the
    image content is. Brightness and contrast jitter touch the image alone.

    Args:
        image: (H, W, 3) uint8.
        maps: (L, H, W) uint8 saliency maps of the image, or None.
        rng: the sample's generator.
        flips: whether horizontal and vertical flips preserve the label for this dataset.
        translate: maximum shift as a fraction of the side; the border is reflected.
        color_jitter: maximum relative change of brightness and of contrast.

    Returns:
        New (H, W, 3) uint8 image and (L, H, W) uint8 maps (None when `maps` is None).
    """
    height, width = image.shape[:2]
    out = image
    out_maps = maps

    if flips:
        if rng.random() < 0.5:
            out = out[:, ::-1]
            out_maps = None if out_maps is None else out_maps[:, :, ::-1]
        if rng.random() < 0.5:
            out = out[::-1]
            out_maps = None if out_maps is None else out_maps[:, ::-1]

    if translate > 0:
        max_dy = int(round(translate * height))
        max_dx = int(round(translate * width))
        dy = int(rng.integers(-max_dy, max_dy + 1))
        dx = int(rng.integers(-max_dx, max_dx + 1))
        if dy or dx:
            out = _shift(out, dy, dx, first_axis=0)
            out_maps = None if out_maps is None else _shift(out_maps, dy, dx, first_axis=1)

    if color_jitter > 0:
        brightness = 1.0 + rng.uniform(-color_jitter, color_jitter)
        contrast = 1.0 + rng.uniform(-color_jitter, color_jitter)
        mean = float(out.mean())
        # The jitter maps each of the 256 values the same way, so a lookup table replaces
        # per-pixel float arithmetic.
        table = (np.arange(256, dtype=np.float32) - mean) * contrast + mean * brightness
        table = np.clip(table + 0.5, 0, 255).astype(np.uint8)
        out = table[out]

    out = np.ascontiguousarray(out)
    if out_maps is not None:
        out_maps = np.ascontiguousarray(out_maps)
    return out, out_maps


def _shift(array: np.ndarray, dy: int, dx: int, *, first_axis: int) -> np.ndarray:
    """Shift the height and width axes, `first_axis` and the next, by (dy, dx), reflecting at the border.

    The result equals cropping ``np.pad(array, ..., mode="reflect")``, built from slice copies,
    which have less per-call overhead than `np.pad`.
    """
    return _shift_axis(_shift_axis(array, dy, first_axis), dx, first_axis + 1)


def _shift_axis(array: np.ndarray, shift: int, axis: int) -> np.ndarray:
    """Return ``out`` with ``out[i] = array[reflect(i - shift)]`` along `axis`.

    The reflection does not repeat the edge, as in ``np.pad(mode="reflect")``.
    """
    length = array.shape[axis]
    if shift == 0:
        return array
    if abs(shift) >= length:
        # A shift this large reflects more than once, which np.pad handles.
        pad = [(0, 0)] * array.ndim
        pad[axis] = (abs(shift), abs(shift))
        window = [slice(None)] * array.ndim
        window[axis] = slice(abs(shift) - shift, abs(shift) - shift + length)
        return np.pad(array, pad, mode="reflect")[tuple(window)]

    def along(start: Optional[int], stop: Optional[int], step: int = 1) -> Tuple[slice, ...]:
        index = [slice(None)] * array.ndim
        index[axis] = slice(start, stop, step)
        return tuple(index)

    out = np.empty_like(array)
    if shift > 0:
        out[along(shift, None)] = array[along(0, length - shift)]
        # out[i] for i < shift is array[shift - i]: array[shift], ..., array[1].
        out[along(0, shift)] = array[along(shift, 0, -1)]
    else:
        back = -shift
        out[along(0, length - back)] = array[along(back, None)]
        # out[i] for i >= length - back is array[2 * length - 2 - back - i]:
        # array[length - 2], ..., array[length - 1 - back].
        stop = length - 2 - back
        out[along(length - back, None)] = array[along(length - 2, stop if stop >= 0 else None, -1)]
    return out


class NegativeDataset(Dataset):
    """Normal training images, each returned with its negatives and their class labels.

    Args:
        images: (N, S, S, 3) uint8 training normals.
        maps: (N, L, S, S) uint8 saliency maps, needed by ``cutswap`` only (may be a memory map).
        config: the run configuration (augmentation, head, k, patch ranges, weak augmentation).
        flips: whether flips preserve the label for this dataset.

    Each item is ``(images (1 + M, S, S, 3) uint8 tensor, labels (1 + M,) int64 tensor)``: the
    weakly augmented normal image with label 0 followed by its M negatives. For ``cutswap`` with
    the multiclass head, M is the number of levels and the negative of level l has label l + 1.
    """

    def __init__(
        self, images: np.ndarray, maps: Optional[np.ndarray], config: TrainConfig, *, flips: bool
    ) -> None:
        if images.ndim != 4 or images.shape[3] != 3 or images.dtype != np.uint8:
            raise ValueError(
                f"images must be (N, S, S, 3) uint8, got shape {images.shape} and dtype {images.dtype}"
            )
        if config.augmentation == "none":
            raise ValueError("augmentation 'none' trains nothing, so it needs no NegativeDataset")
        if config.augmentation == "cutswap":
            if maps is None:
                raise ValueError("augmentation 'cutswap' needs saliency maps, got None")
            if maps.shape[0] != images.shape[0] or maps.shape[2:] != images.shape[1:3]:
                raise ValueError(
                    f"maps must be (N, L, S, S) = ({images.shape[0]}, L, {images.shape[1]}, "
                    f"{images.shape[2]}) "
                    f"to match the images, got {maps.shape}"
                )
        self.images = images
        self.maps = maps
        self.config = config
        self.flips = flips
        self.epoch = 0
        self.num_levels = 0 if maps is None else int(maps.shape[1])
        self.transform = None
        if config.augmentation in ("cutswap", "random_swap"):
            self.transform = CutSwapTransform(
                k=config.k,
                area=tuple(config.area),
                aspect=tuple(config.aspect),
                mode="saliency" if config.augmentation == "cutswap" else "random",
            )

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose random draws `__getitem__` makes."""
        self.epoch = epoch

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, index: int) -> Tuple[torch.Tensor, torch.Tensor]:
        config = self.config
        seed = self.config.seed
        weak_rng = np.random.default_rng(derive_seed(seed, self.epoch, index, _STREAM_WEAK))
        maps = None if self.maps is None else np.asarray(self.maps[index])
        image, maps = weak_augment(
            self.images[index],
            maps,
            weak_rng,
            flips=self.flips,
            translate=config.translate,
            color_jitter=config.color_jitter,
        )
        negative_seed = derive_seed(seed, self.epoch, index, _STREAM_NEGATIVE)
        negatives, labels = self._negatives(
            image, maps, negative_seed, derive_seed(seed, self.epoch, index, _STREAM_CHOICE)
        )

        # Channels stay last: the training loop permutes the batch on its device, which saves a
        # copy of every image in the worker.
        stack = np.concatenate([image[None], negatives], axis=0)
        return torch.from_numpy(stack), torch.tensor([0] + labels, dtype=torch.int64)

    def _negatives(self, image: np.ndarray, maps: Optional[np.ndarray], seed: int, choice_seed: int):
        augmentation = self.config.augmentation
        if augmentation == "cutswap":
            assert self.transform is not None and maps is not None
            if self.config.head == "binary":
                level = int(np.random.default_rng(choice_seed).integers(self.num_levels))
                negatives, _ = self.transform(image, maps[level : level + 1], seed)
                return negatives, [1]
            negatives, _ = self.transform(image, maps, seed)
            return negatives, list(range(1, self.num_levels + 1))
        if augmentation == "random_swap":
            assert self.transform is not None
            blank = np.zeros((1,) + image.shape[:2], dtype=np.uint8)
            negatives, _ = self.transform(image, blank, seed)
            return negatives, [1]
        if augmentation == "cutpaste":
            return cutpaste_normal(image, seed)[None], [1]
        if augmentation == "cutpaste_scar":
            return cutpaste_scar(image, seed)[None], [1]
        if augmentation == "cutpaste_3way":
            normal = cutpaste_normal(image, seed)
            scar = cutpaste_scar(image, derive_seed(seed, 1))
            if self.config.head == "binary":
                pick = int(np.random.default_rng(choice_seed).integers(2))
                return (normal if pick == 0 else scar)[None], [1]
            return np.stack([normal, scar]), [1, 2]
        raise ValueError(f"augmentation {augmentation!r} makes no negatives")


def worker_init(worker_id: int) -> None:
    """Keep each DataLoader worker on one torch thread; the batch work runs in Rust and NumPy."""
    del worker_id
    torch.set_num_threads(1)
