"""A pure NumPy + scikit-learn reference of CutSwap, for tests and the benchmark.

It follows the same steps as the Rust core (`cutswap.augment`): k-means on the pixel values,
anchors from the cluster with the highest centroid, the same patch-size rule and fallback
order, and the same swap. It uses NumPy's generator, so its random draws differ from the
native ones; given the same boxes, `reference_swap_patches` gives the same image as
`cutswap.augment.swap_patches`.

Differences from the native core: k-means is scikit-learn's Lloyd's algorithm (a local
optimum, not the exact one), and anchor pairs come from rejection sampling followed by a
search over candidates in random order, which is not exactly uniform over pairs.
"""

from __future__ import annotations

import math
import warnings
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning

from .augment import DEFAULT_AREA, DEFAULT_ASPECT, Box, SwapParams

_HALVINGS = 2
_REJECTION_TRIES = 64


def reference_kmeans(
    saliency: np.ndarray, k: int = 3, *, seed: int = 0, n_init: Union[int, str] = "auto"
) -> Tuple[np.ndarray, np.ndarray]:
    """Cluster pixel values with scikit-learn's `KMeans`, as most CutSwap code would.

    Args:
        saliency: (H, W) uint8 or float map.
        k: Number of clusters; reduced to the number of distinct values when larger.
        seed: `random_state` of `KMeans`.
        n_init: `n_init` of `KMeans`.

    Returns:
        (centroids, labels): centroids (m,) float32 ascending, labels (H, W) int64 indexing
        them.
    """
    values = np.asarray(saliency, dtype=np.float64).reshape(-1, 1)
    clusters = min(k, len(np.unique(values)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = KMeans(n_clusters=clusters, n_init=n_init, random_state=seed).fit(values)

    order = np.argsort(model.cluster_centers_[:, 0])
    rank = np.empty_like(order)
    rank[order] = np.arange(clusters)
    centroids = model.cluster_centers_[order, 0].astype(np.float32)
    labels = rank[model.labels_].reshape(np.shape(saliency))
    return centroids, labels


def reference_patch_size(
    rng: np.random.Generator, height: int, width: int, area: Sequence[float], aspect: Sequence[float]
) -> Tuple[int, int]:
    """Draw a patch size: area ratio uniform, aspect ratio log-uniform, sides clamped."""
    area_ratio = rng.uniform(area[0], area[1])
    ratio = math.exp(rng.uniform(math.log(aspect[0]), math.log(aspect[1])))
    patch_area = area_ratio * height * width
    patch_height = min(max(round(math.sqrt(patch_area * ratio)), 1), height)
    patch_width = min(max(round(math.sqrt(patch_area / ratio)), 1), width)
    return patch_height, patch_width


def _halved(height: int, width: int, halvings: int) -> List[Tuple[int, int]]:
    sizes = [(height, width)]
    for _ in range(halvings):
        if (height, width) == (1, 1):
            break
        height, width = max(height // 2, 1), max(width // 2, 1)
        sizes.append((height, width))
    return sizes


def _sample_pair(
    rng: np.random.Generator, mask: np.ndarray, patch_height: int, patch_width: int
) -> Optional[Tuple[Box, Box]]:
    """Draw two non-overlapping boxes whose top-left corners lie in `mask`, or None."""
    height, width = mask.shape
    if patch_height > height or patch_width > width:
        return None
    anchors = np.argwhere(mask[: height - patch_height + 1, : width - patch_width + 1])
    if len(anchors) < 2:
        return None

    def disjoint(first: np.ndarray, second: np.ndarray) -> np.ndarray:
        return (np.abs(first[..., 0] - second[..., 0]) >= patch_height) | (
            np.abs(first[..., 1] - second[..., 1]) >= patch_width
        )

    for _ in range(_REJECTION_TRIES):
        first, second = anchors[rng.integers(len(anchors), size=2)]
        if disjoint(first, second):
            return _boxes(first, second, patch_height, patch_width)

    for index in rng.permutation(len(anchors)):
        partners = anchors[disjoint(anchors, anchors[index])]
        if len(partners):
            return _boxes(anchors[index], partners[rng.integers(len(partners))], patch_height, patch_width)
    return None


def _boxes(first: np.ndarray, second: np.ndarray, patch_height: int, patch_width: int) -> Tuple[Box, Box]:
    return (
        (int(first[0]), int(first[1]), patch_height, patch_width),
        (int(second[0]), int(second[1]), patch_height, patch_width),
    )


def reference_sample_swap(
    saliency: np.ndarray,
    *,
    k: int = 3,
    area: Tuple[float, float] = DEFAULT_AREA,
    aspect: Tuple[float, float] = DEFAULT_ASPECT,
    seed: int,
    n_init: Union[int, str] = "auto",
) -> SwapParams:
    """Sample swap boxes like `cutswap.augment.sample_swap`, with scikit-learn k-means.

    Args:
        saliency: (H, W) uint8 or float map with at least 2 pixels.
        k: Maximum number of clusters.
        area: (min, max) area ratio.
        aspect: (min, max) aspect ratio, drawn log-uniformly.
        seed: Seed of the NumPy generator and of `KMeans`.
        n_init: `n_init` of `KMeans`.

    Returns:
        The sampled `SwapParams`.
    """
    height, width = saliency.shape
    rng = np.random.default_rng(seed)
    centroids, labels = reference_kmeans(saliency, k, seed=seed % 2**32, n_init=n_init)
    patch_height, patch_width = reference_patch_size(rng, height, width, area, aspect)
    limited = _halved(patch_height, patch_width, _HALVINGS)

    top = len(centroids) - 1
    for attempt, (h, w) in enumerate(limited):
        pair = _sample_pair(rng, labels == top, h, w)
        if pair is not None:
            fallback = "smaller_patch" if attempt else None
            return SwapParams(*pair, float(centroids[top]), int((labels == top).sum()), fallback)

    for cluster in range(top - 1, -1, -1):
        for h, w in limited:
            pair = _sample_pair(rng, labels == cluster, h, w)
            if pair is not None:
                size = int((labels == cluster).sum())
                return SwapParams(*pair, float(centroids[cluster]), size, "next_cluster")

    everywhere = np.ones((height, width), dtype=bool)
    for h, w in _halved(patch_height, patch_width, 64):
        pair = _sample_pair(rng, everywhere, h, w)
        if pair is not None:
            return SwapParams(*pair, float(np.mean(saliency)), height * width, "anywhere")
    raise ValueError(f"image of shape {(height, width)} cannot hold two non-overlapping patches")


def reference_swap_patches(image: np.ndarray, box_a: Box, box_b: Box) -> np.ndarray:
    """Return a copy of a (H, W) or (H, W, C) image with two equal, disjoint boxes swapped."""
    y_a, x_a, h, w = box_a
    y_b, x_b, _, _ = box_b
    output = image.copy()
    output[y_a : y_a + h, x_a : x_a + w] = image[y_b : y_b + h, x_b : x_b + w]
    output[y_b : y_b + h, x_b : x_b + w] = image[y_a : y_a + h, x_a : x_a + w]
    return output


def reference_cutswap_levels(
    image: np.ndarray,
    maps: np.ndarray,
    *,
    k: int = 3,
    area: Tuple[float, float] = DEFAULT_AREA,
    aspect: Tuple[float, float] = DEFAULT_ASPECT,
    seed: int,
    n_init: Union[int, str] = "auto",
) -> Tuple[np.ndarray, List[SwapParams]]:
    """Build one negative per level of (L, H, W) maps, like `CutSwapTransform` does.

    Returns:
        (negatives (L, H, W, C) like `image`, the `SwapParams` of each level).
    """
    negatives = []
    params = []
    for level, level_map in enumerate(maps):
        level_params = reference_sample_swap(
            level_map, k=k, area=area, aspect=aspect, seed=seed * 1000 + level, n_init=n_init
        )
        negatives.append(reference_swap_patches(image, level_params.box_a, level_params.box_b))
        params.append(level_params)
    return np.stack(negatives), params
