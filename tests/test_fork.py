import multiprocessing

import numpy as np
import pytest

from cutswap.augment import CutSwapTransform, saliency_kmeans

pytestmark = pytest.mark.skipif(
    "fork" not in multiprocessing.get_all_start_methods(), reason="the fork start method is POSIX-only"
)


def run_in_child(queue):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    maps = rng.integers(0, 256, (2, 64, 64), dtype=np.uint8)
    negatives, params = CutSwapTransform()(image, maps, 9)
    centroids, _ = saliency_kmeans(rng.random((64, 64), dtype=np.float32), 3)
    queue.put((negatives.sum(dtype=np.int64).item(), params[0].box_a, len(centroids)))


def test_extension_works_after_fork():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    maps = rng.integers(0, 256, (2, 64, 64), dtype=np.uint8)
    negatives, params = CutSwapTransform()(image, maps, 9)

    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=run_in_child, args=(queue,))
    child.start()
    child.join(timeout=60)
    if child.is_alive():
        child.kill()
        child.join()
        pytest.fail("the forked child did not finish within 60 s")
    assert child.exitcode == 0
    total, box_a, clusters = queue.get(timeout=5)
    assert total == negatives.sum(dtype=np.int64).item()
    assert box_a == params[0].box_a
    assert clusters == 3
