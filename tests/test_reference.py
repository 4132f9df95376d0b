import numpy as np
import pytest

from cutswap.augment import CutSwapTransform, SwapParams, saliency_kmeans, sample_swap, swap_patches
from cutswap.reference import (
    reference_cutswap_levels,
    reference_kmeans,
    reference_sample_swap,
    reference_swap_patches,
)


@pytest.mark.parametrize("shape", [(20, 30), (20, 30, 1), (20, 30, 3)])
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_reference_swap_matches_native(shape, dtype):
    rng = np.random.default_rng(0)
    image = (rng.random(shape) * 255).astype(dtype)
    for seed in range(20):
        params = sample_swap(rng.random(shape[:2], dtype=np.float32), seed=seed)
        expected = reference_swap_patches(image, params.box_a, params.box_b)
        np.testing.assert_array_equal(swap_patches(image, params), expected)


def test_reference_boxes_replay_in_native():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
    saliency = rng.integers(0, 256, (48, 48), dtype=np.uint8)
    params = reference_sample_swap(saliency, seed=4)
    np.testing.assert_array_equal(
        swap_patches(image, params), reference_swap_patches(image, params.box_a, params.box_b)
    )


def test_reference_kmeans_agrees_on_separated_values():
    rng = np.random.default_rng(2)
    saliency = rng.choice(np.array([10, 11, 120, 121, 240, 241], np.uint8), size=(30, 30))
    centroids, labels = saliency_kmeans(saliency, 3)
    reference_centroids, reference_labels = reference_kmeans(saliency, 3)
    np.testing.assert_allclose(centroids, reference_centroids, rtol=1e-6)
    np.testing.assert_array_equal(labels, reference_labels)


def test_reference_levels_valid():
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    maps = rng.integers(0, 256, (2, 32, 32), dtype=np.uint8)
    negatives, params = reference_cutswap_levels(image, maps, seed=0)
    native, native_params = CutSwapTransform()(image, maps, 0)
    assert negatives.shape == native.shape
    assert all(isinstance(level, SwapParams) for level in params)
    for level, level_params in enumerate(params):
        _, labels = reference_kmeans(maps[level], 3)
        if level_params.fallback is None:
            for y, x, _, _ in (level_params.box_a, level_params.box_b):
                assert labels[y, x] == labels.max()
