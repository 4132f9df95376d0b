import warnings

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import threadpool_limits

from cutswap.augment import saliency_kmeans


def wcss(values: np.ndarray, labels: np.ndarray) -> float:
    values = values.astype(np.float64).ravel()
    labels = labels.ravel()
    total = 0.0
    for label in np.unique(labels):
        members = values[labels == label]
        total += float(((members - members.mean()) ** 2).sum())
    return total


def sklearn_wcss(values: np.ndarray, k: int) -> float:
    flat = values.astype(np.float64).reshape(-1, 1)
    clusters = min(k, len(np.unique(flat)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = KMeans(n_clusters=clusters, n_init=10, random_state=0).fit(flat)
    return wcss(flat, model.labels_)


def adversarial_maps(rng: np.random.Generator) -> list:
    size = (24, 24)
    maps = []
    for _ in range(6):
        # Few distinct values.
        levels = rng.choice(256, size=rng.integers(1, 6), replace=False).astype(np.uint8)
        maps.append(rng.choice(levels, size=size))
        # Two spikes on a flat background.
        spikes = np.zeros(size, np.uint8)
        spikes[rng.integers(24), rng.integers(24)] = 255
        spikes[rng.integers(24), rng.integers(24)] = 128
        maps.append(spikes)
        # Heavy ties: most pixels share one value.
        ties = np.full(size, rng.integers(256), np.uint8)
        ties[rng.random(size) < 0.1] = rng.integers(256)
        maps.append(ties)
        # Float maps with a long tail and a cluster of near-duplicates.
        tail = (rng.random(size) ** 6).astype(np.float32)
        maps.append(tail)
        near = np.full(size, 0.5, np.float32) + rng.integers(0, 3, size).astype(np.float32) * 1e-6
        maps.append(near)
    maps.append(np.zeros(size, np.uint8))
    maps.append(np.full(size, 0.25, np.float32))
    return maps


def random_maps(rng: np.random.Generator, count: int) -> list:
    maps = []
    for index in range(count):
        height, width = rng.integers(2, 40, size=2)
        if index % 2:
            maps.append(rng.integers(0, 256, (height, width), dtype=np.uint8))
        else:
            maps.append(rng.random((height, width), dtype=np.float32))
    return maps


def test_kmeans_never_worse_than_sklearn():
    rng = np.random.default_rng(0)
    maps = random_maps(rng, 200) + adversarial_maps(rng)
    for index, saliency in enumerate(maps):
        k = int(rng.integers(1, 9))
        _, labels = saliency_kmeans(saliency, k)
        ours = wcss(saliency, labels)
        # One thread: OpenMP start-up dominates on maps this small.
        with threadpool_limits(limits=1):
            reference = sklearn_wcss(saliency, k)
        assert ours <= reference * (1 + 1e-9) + 1e-9, f"map {index}, k={k}: {ours} > {reference}"


def test_kmeans_centroids_are_cluster_means():
    rng = np.random.default_rng(1)
    saliency = rng.random((30, 20), dtype=np.float32)
    centroids, labels = saliency_kmeans(saliency, 4)
    assert centroids.dtype == np.float32
    assert labels.dtype == np.uint8
    assert labels.shape == saliency.shape
    assert np.all(np.diff(centroids) > 0)
    for index, centroid in enumerate(centroids):
        members = saliency[labels == index].astype(np.float64)
        assert members.size > 0
        assert centroid == pytest.approx(members.mean(), rel=1e-6)


def test_kmeans_clusters_are_value_ranges():
    rng = np.random.default_rng(2)
    saliency = rng.integers(0, 256, (50, 50), dtype=np.uint8)
    _, labels = saliency_kmeans(saliency, 5)
    for lower, upper in zip(range(4), range(1, 5)):
        assert saliency[labels == lower].max() < saliency[labels == upper].min()


@pytest.mark.parametrize(
    ("saliency", "k", "expected_centroids"),
    [
        (np.zeros((5, 5), np.uint8), 3, [0.0]),
        (np.full((4, 6), 0.7, np.float32), 1, [0.7]),
        (np.array([[0, 255], [255, 0]], np.uint8), 5, [0.0, 255.0]),
        (np.array([[0.0, 1.0, 0.5]], np.float32), 256, [0.0, 0.5, 1.0]),
    ],
)
def test_kmeans_fewer_distinct_values_than_k(saliency, k, expected_centroids):
    centroids, labels = saliency_kmeans(saliency, k)
    np.testing.assert_allclose(centroids, np.array(expected_centroids, np.float32))
    assert labels.max() == len(expected_centroids) - 1
    np.testing.assert_array_equal(centroids[labels], saliency.astype(np.float32))


def test_kmeans_uint8_and_float_agree():
    rng = np.random.default_rng(3)
    saliency = rng.integers(0, 256, (40, 40), dtype=np.uint8)
    centroids_u8, labels_u8 = saliency_kmeans(saliency, 3)
    centroids_f32, labels_f32 = saliency_kmeans(saliency.astype(np.float32) / 255, 3)
    np.testing.assert_array_equal(labels_u8, labels_f32)
    np.testing.assert_allclose(centroids_u8 / 255, centroids_f32, rtol=1e-6)


def test_kmeans_non_contiguous_input():
    rng = np.random.default_rng(4)
    saliency = rng.random((40, 60), dtype=np.float32)
    view = saliency[::2, ::3]
    centroids, labels = saliency_kmeans(view, 3)
    expected_centroids, expected_labels = saliency_kmeans(np.ascontiguousarray(view), 3)
    np.testing.assert_array_equal(centroids, expected_centroids)
    np.testing.assert_array_equal(labels, expected_labels)


def test_kmeans_deterministic_and_input_unchanged():
    rng = np.random.default_rng(5)
    saliency = rng.random((64, 64), dtype=np.float32)
    before = saliency.copy()
    first = saliency_kmeans(saliency, 8)
    second = saliency_kmeans(saliency, 8)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    np.testing.assert_array_equal(saliency, before)
