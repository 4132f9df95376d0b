"""CutSwap augmentation: saliency-guided patch swaps that turn normal images into negatives.

Each swap draws a patch size, picks two anchor pixels (top-left corners) from the cluster of
the saliency map's values with the highest centroid, and exchanges the contents of the two
equal, non-overlapping patches. Sampling and applying are separate steps: `sample_swap`
returns a `SwapParams`, and `swap_patches` applies it, so swaps can be logged and replayed.

The work runs in the Rust extension `cutswap._native`. Randomness comes from a ChaCha8
generator seeded per call, so a seed gives the same result on every machine; seed 0 is an
ordinary seed. Inputs are never modified.

Patch size: the area ratio is uniform in `area` and the aspect ratio (height / width) is
log-uniform in `aspect`. The patch has `round(sqrt(a * H * W * r))` rows and
`round(sqrt(a * H * W / r))` columns, each clamped to `[1, image side]`.

Fallbacks, tried in this order when the salient cluster has no pair of anchors whose patches
fit and do not overlap:

- ``"smaller_patch"``: the same cluster with both patch sides halved, up to two times.
- ``"next_cluster"``: the other clusters in descending centroid order, at those sizes.
- ``"anywhere"``: anchors uniform over the image, halving down to 1 x 1 if needed.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any, List, Literal, Optional, Sequence, Tuple

import numpy as np

from . import _native

Box = Tuple[int, int, int, int]
Fallback = Literal["smaller_patch", "next_cluster", "anywhere"]

DEFAULT_AREA: Tuple[float, float] = (0.02, 0.15)
DEFAULT_ASPECT: Tuple[float, float] = (0.3, 3.3)
MAX_CLUSTERS: int = _native.MAX_CLUSTERS
_MAX_SEED = 2**64 - 1


@dataclass(frozen=True)
class SwapParams:
    """The parameters of one patch swap.

    Attributes:
        box_a: First patch as (y, x, h, w): top-left row and column, height and width.
        box_b: Second patch, the same size as `box_a` and not overlapping it.
        centroid: Centroid of the cluster the anchors came from, in the map's units (0-255 for
            uint8 maps). The mean of the map for the ``"anywhere"`` fallback, and 0.0 for
            random swaps, which use no map.
        cluster_size: Number of pixels in that cluster (H * W for ``"anywhere"`` and random
            swaps).
        fallback: None when the anchors came from the salient cluster at the sampled size,
            otherwise the fallback that produced them.
    """

    box_a: Box
    box_b: Box
    centroid: float
    cluster_size: int
    fallback: Optional[Fallback] = None


def _params_from_native(raw: Any) -> SwapParams:
    box_a, box_b, centroid, cluster_size, fallback = raw
    return SwapParams(tuple(box_a), tuple(box_b), float(centroid), int(cluster_size), fallback)


def _check_int(name: str, value: Any, low: int, high: int) -> int:
    """Return `value` as an int, raising when it is not an integer in [low, high]."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got bool")
    try:
        number = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int, got {type(value).__name__}") from None
    if not low <= number <= high:
        raise ValueError(f"{name} must be an integer in [{low}, {high}], got {number}")
    return number


def _check_pair(name: str, value: Sequence[float]) -> Tuple[float, float]:
    """Return a (min, max) pair of floats; the native core checks the ranges."""
    try:
        low, high = value
        return float(low), float(high)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a (min, max) pair of numbers, got {value!r}") from None


def _check_seed(seed: Any, name: str = "seed") -> int:
    return _check_int(name, seed, 0, _MAX_SEED)


def derive_seed(base_seed: int, *indices: int) -> int:
    """Mix a base seed and indices into a new 64-bit seed.

    Typical use is `derive_seed(worker_seed, epoch, sample_index, level)`, so per-sample seeds
    do not depend on the number of data-loader workers. The mixing is splitmix64-based and
    portable: `state = mix64(base + 0x9E3779B97F4A7C15)`, then for each index
    `state = mix64((state + 0x9E3779B97F4A7C15) ^ mix64(index))`, all modulo 2**64, where
    `mix64` is the splitmix64 finaliser.

    Args:
        base_seed: Integer in [0, 2**64 - 1].
        *indices: Integers in [0, 2**64 - 1]; their order matters.

    Returns:
        An integer in [0, 2**64 - 1].

    Raises:
        ValueError: If a value is negative or does not fit in 64 bits.
        TypeError: If a value is not an integer.
    """
    base = _check_seed(base_seed, "base_seed")
    checked = [_check_seed(index, f"indices[{position}]") for position, index in enumerate(indices)]
    return int(_native.derive_seed(base, checked))


def saliency_kmeans(saliency: np.ndarray, k: int = 3) -> Tuple[np.ndarray, np.ndarray]:
    """Cluster the pixel values of a saliency map with optimal 1-D k-means.

    The clustering minimises the within-cluster sum of squares exactly (dynamic programming
    over the sorted distinct values), so it never does worse than Lloyd's algorithm and is
    deterministic. A map with fewer than `k` distinct values gets one cluster per distinct
    value, so every cluster is non-empty; a constant map gets one cluster.

    Args:
        saliency: (H, W) uint8 or float32 map. Float values must be finite; any range works,
            [0, 1] being usual. Non-contiguous arrays are copied.
        k: Maximum number of clusters, 1 <= k <= 256.

    Returns:
        (centroids, labels): centroids (m,) float32 ascending with m = min(k, distinct values),
        in the map's units; labels (H, W) uint8, the cluster index of every pixel.

    Raises:
        TypeError: If `saliency` is not a uint8 or float32 ndarray.
        ValueError: If `saliency` is not 2-D or empty, contains NaN or infinity, or `k` is out of
            range.
    """
    k = _check_int("k", k, 1, MAX_CLUSTERS)
    centroids, labels = _native.kmeans_1d(saliency, k)
    return centroids, labels


def sample_swap(
    saliency: np.ndarray,
    *,
    k: int = 3,
    area: Tuple[float, float] = DEFAULT_AREA,
    aspect: Tuple[float, float] = DEFAULT_ASPECT,
    seed: int,
) -> SwapParams:
    """Sample two equal, non-overlapping patches anchored in the most salient cluster.

    The anchor pair is uniform over all ordered pairs of pixels in the cluster with the highest
    centroid whose patches fit the image and do not overlap. The module docstring lists the
    fallbacks used when no such pair exists.

    Args:
        saliency: (H, W) uint8 or float32 map, H * W >= 2.
        k: Maximum number of k-means clusters, 1 <= k <= 256.
        area: (min, max) patch area as a fraction of the image, 0 < min <= max < 1.
        aspect: (min, max) patch height / width, 0 < min <= max, drawn log-uniformly.
        seed: Integer in [0, 2**64 - 1].

    Returns:
        The sampled `SwapParams`.

    Raises:
        TypeError: If `saliency` is not a uint8 or float32 ndarray.
        ValueError: If a shape or value is invalid; the message names the argument.
    """
    k = _check_int("k", k, 1, MAX_CLUSTERS)
    raw = _native.sample_swap(
        saliency, k, _check_pair("area", area), _check_pair("aspect", aspect), _check_seed(seed)
    )
    return _params_from_native(raw)


def sample_random_swap(
    shape: Sequence[int],
    *,
    area: Tuple[float, float] = DEFAULT_AREA,
    aspect: Tuple[float, float] = DEFAULT_ASPECT,
    seed: int,
) -> SwapParams:
    """Sample two equal, non-overlapping patches with anchors uniform over the image.

    This is the random-swap baseline: the same size rules as `sample_swap`, no saliency. When
    the sampled size cannot fit twice, the sides are halved and `fallback` is
    ``"smaller_patch"``.

    Args:
        shape: Image shape (H, W); a longer shape such as (H, W, C) uses its first two entries.
        area: (min, max) patch area as a fraction of the image, 0 < min <= max < 1.
        aspect: (min, max) patch height / width, 0 < min <= max, drawn log-uniformly.
        seed: Integer in [0, 2**64 - 1].

    Returns:
        The sampled `SwapParams`, with centroid 0.0 and cluster_size H * W.

    Raises:
        ValueError: If the shape has fewer than 2 pixels or `area` or `aspect` is invalid.
    """
    if len(shape) < 2:
        raise ValueError(f"shape must be (H, W) or (H, W, C), got {tuple(shape)!r}")
    height = _check_int("shape[0]", shape[0], 0, 2**63 - 1)
    width = _check_int("shape[1]", shape[1], 0, 2**63 - 1)
    raw = _native.sample_random_swap(
        height, width, _check_pair("area", area), _check_pair("aspect", aspect), _check_seed(seed)
    )
    return _params_from_native(raw)


def _check_box(name: str, box: Sequence[int]) -> Box:
    if len(box) != 4:
        raise ValueError(f"{name} must be (y, x, h, w), got {tuple(box)!r}")
    y, x, h, w = (_check_int(f"{name}[{i}]", value, 0, 2**63 - 1) for i, value in enumerate(box))
    return (y, x, h, w)


def swap_patches(image: np.ndarray, params: SwapParams) -> np.ndarray:
    """Return a copy of `image` with the contents of `params.box_a` and `params.box_b` exchanged.

    Args:
        image: (H, W) or (H, W, C) uint8 or float32 image. Non-contiguous arrays are copied.
        params: Boxes to swap; they must be equal in size, inside the image and disjoint.

    Returns:
        A new array with the same shape and dtype as `image`.

    Raises:
        TypeError: If `image` is not a uint8 or float32 ndarray.
        ValueError: If `image` is not 2-D or 3-D, or the boxes are invalid for it.
    """
    box_a = _check_box("box_a", params.box_a)
    box_b = _check_box("box_b", params.box_b)
    return _native.swap_patches(image, box_a, box_b)


def cutswap(
    image: np.ndarray, saliency: np.ndarray, *, seed: int, **sample_swap_options: Any
) -> Tuple[np.ndarray, SwapParams]:
    """Sample a saliency-guided swap for `image` and apply it.

    Args:
        image: (H, W) or (H, W, C) uint8 or float32 image.
        saliency: (H, W) uint8 or float32 map of the same height and width.
        seed: Integer in [0, 2**64 - 1].
        **sample_swap_options: `k`, `area` and `aspect`, as in `sample_swap`.

    Returns:
        (negative, params): a new image like `image` with two patches swapped, and the swap.

    Raises:
        TypeError: If an array has an unsupported dtype.
        ValueError: If the shapes disagree or an option is invalid.
    """
    image_shape = getattr(image, "shape", None)
    saliency_shape = getattr(saliency, "shape", None)
    if (
        image_shape is not None
        and saliency_shape is not None
        and tuple(image_shape[:2]) != tuple(saliency_shape)
    ):
        raise ValueError(
            f"saliency must have the image's height and width {tuple(image_shape[:2])}, "
            f"got shape {tuple(saliency_shape)}"
        )
    params = sample_swap(saliency, seed=seed, **sample_swap_options)
    return swap_patches(image, params), params


@dataclass(frozen=True)
class CutSwapTransform:
    """Build one CutSwap negative per saliency level of an image; picklable for data loaders.

    Attributes:
        k: Maximum number of k-means clusters per map, 1 <= k <= 256.
        area: (min, max) patch area as a fraction of the image, 0 < min <= max < 1.
        aspect: (min, max) patch height / width, 0 < min <= max.
        mode: ``"saliency"`` anchors patches in each map's most salient cluster;
            ``"random"`` anchors them uniformly and ignores the maps' values.
    """

    k: int = 3
    area: Tuple[float, float] = DEFAULT_AREA
    aspect: Tuple[float, float] = DEFAULT_ASPECT
    mode: Literal["saliency", "random"] = "saliency"

    def __post_init__(self) -> None:
        _check_int("k", self.k, 1, MAX_CLUSTERS)
        object.__setattr__(self, "area", _check_pair("area", self.area))
        object.__setattr__(self, "aspect", _check_pair("aspect", self.aspect))
        if self.mode not in ("saliency", "random"):
            raise ValueError(f"mode must be 'saliency' or 'random', got {self.mode!r}")

        # A throwaway sample on a 2 x 2 image runs the native range checks of area and aspect
        # now, not at the first call inside a data-loader worker.
        _native.sample_random_swap(2, 2, self.area, self.aspect, 0)

    def __call__(self, image: np.ndarray, maps: np.ndarray, seed: int) -> Tuple[np.ndarray, List[SwapParams]]:
        """Build the negatives of one image.

        Level `l` uses seed `derive_seed(seed, l)`.

        Args:
            image: (H, W, C) or (H, W) uint8 or float32 image, usually (H, W, 3) uint8.
            maps: (L, H, W) uint8 or float32 saliency maps, one per level.
            seed: Integer in [0, 2**64 - 1].

        Returns:
            (negatives, params): negatives (L, H, W, C) (or (L, H, W)) with the image's dtype,
            and the `SwapParams` of each level.

        Raises:
            TypeError: If an array has an unsupported dtype.
            ValueError: If the shapes disagree or a map contains NaN or infinity.
        """
        negatives, raw_params = _native.cutswap_levels(
            image, maps, self.k, self.area, self.aspect, _check_seed(seed), self.mode
        )
        return negatives, [_params_from_native(raw) for raw in raw_params]
