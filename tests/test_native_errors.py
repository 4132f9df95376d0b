import numpy as np
import pytest

from cutswap.augment import (
    CutSwapTransform,
    SwapParams,
    cutswap,
    derive_seed,
    saliency_kmeans,
    sample_random_swap,
    sample_swap,
    swap_patches,
)

MAP = np.zeros((16, 16), np.uint8)
IMAGE = np.zeros((16, 16, 3), np.uint8)
MAPS = np.zeros((2, 16, 16), np.uint8)
GOOD_PARAMS = SwapParams((0, 0, 4, 4), (8, 8, 4, 4), 0.0, 256)


def nan_map():
    saliency = np.zeros((8, 8), np.float32)
    saliency[3, 4] = np.nan
    return saliency


def inf_maps():
    maps = np.zeros((2, 16, 16), np.float32)
    maps[1, 0, 0] = np.inf
    return maps


BAD_INPUTS = [
    # (call, exception, message fragment)
    (
        lambda: saliency_kmeans(np.zeros((4, 4), np.float64)),
        TypeError,
        "expected uint8 or float32, got float64",
    ),
    (lambda: saliency_kmeans(np.zeros((4, 4), np.int32)), TypeError, "got int32"),
    (lambda: saliency_kmeans([[1, 2], [3, 4]]), TypeError, "expected numpy.ndarray, got list"),
    (lambda: saliency_kmeans(np.zeros(4, np.uint8)), ValueError, "saliency: expected 2-D, got shape (4,)"),
    (lambda: saliency_kmeans(np.zeros((2, 2, 2), np.uint8)), ValueError, "got shape (2, 2, 2)"),
    (lambda: saliency_kmeans(np.zeros((0, 3), np.uint8)), ValueError, "at least one pixel"),
    (lambda: saliency_kmeans(MAP, 0), ValueError, "k must be an integer in [1, 256], got 0"),
    (lambda: saliency_kmeans(MAP, 257), ValueError, "got 257"),
    (lambda: saliency_kmeans(MAP, 2.5), TypeError, "k must be an int, got float"),
    (lambda: saliency_kmeans(nan_map()), ValueError, "finite values, got NaN at flat index 28"),
    (lambda: sample_swap(MAP, seed=-1), ValueError, "seed must be an integer in [0, 18446744073709551615]"),
    (lambda: sample_swap(MAP, seed=2**64), ValueError, "got 18446744073709551616"),
    (lambda: sample_swap(MAP, seed="1"), TypeError, "seed must be an int, got str"),
    (
        lambda: sample_swap(MAP, area=(0.2, 0.1), seed=0),
        ValueError,
        "area: expected (min, max) with 0 < min <= max < 1",
    ),
    (lambda: sample_swap(MAP, area=(0.0, 0.1), seed=0), ValueError, "got (0, 0.1)"),
    (lambda: sample_swap(MAP, area=(0.1, 1.0), seed=0), ValueError, "invalid value for area"),
    (lambda: sample_swap(MAP, area=(0.1,), seed=0), ValueError, "area must be a (min, max) pair"),
    (lambda: sample_swap(MAP, aspect=(0.0, 2.0), seed=0), ValueError, "invalid value for aspect"),
    (lambda: sample_swap(MAP, aspect=(3.0, 2.0), seed=0), ValueError, "0 < min <= max < inf"),
    (lambda: sample_swap(MAP, aspect=(1.0, float("inf")), seed=0), ValueError, "invalid value for aspect"),
    (
        lambda: sample_swap(np.zeros((1, 1), np.uint8), seed=0),
        ValueError,
        "image: expected at least 2 pixels",
    ),
    (lambda: sample_random_swap((1, 1), seed=0), ValueError, "got (1, 1)"),
    (lambda: sample_random_swap((5,), seed=0), ValueError, "shape must be (H, W) or (H, W, C)"),
    (lambda: sample_random_swap((2**20, 2**20), seed=0), ValueError, "at most 4294967296 pixels"),
    (lambda: sample_random_swap((-1, 4), seed=0), ValueError, "shape[0] must be an integer"),
    (
        lambda: swap_patches(IMAGE, SwapParams((0, 0, 4, 4), (2, 2, 4, 4), 0.0, 1)),
        ValueError,
        "boxes: expected non-overlapping boxes",
    ),
    (
        lambda: swap_patches(IMAGE, SwapParams((14, 0, 4, 4), (0, 8, 4, 4), 0.0, 1)),
        ValueError,
        "box_a: expected a non-empty box inside the 16 x 16 image, got (y=14, x=0, h=4, w=4)",
    ),
    (
        lambda: swap_patches(IMAGE, SwapParams((0, 0, 4, 4), (8, 8, 4, 3), 0.0, 1)),
        ValueError,
        "box_b: expected the size of box_a, 4 x 4, got 4 x 3",
    ),
    (
        lambda: swap_patches(IMAGE, SwapParams((0, 0, 4), (8, 8, 4, 4), 0.0, 1)),
        ValueError,
        "box_a must be (y, x, h, w)",
    ),
    (lambda: swap_patches(IMAGE, SwapParams((0, -1, 4, 4), (8, 8, 4, 4), 0.0, 1)), ValueError, "box_a[1]"),
    (
        lambda: swap_patches(IMAGE.astype(np.int16), GOOD_PARAMS),
        TypeError,
        "image: expected uint8 or float32, got int16",
    ),
    (lambda: swap_patches(np.zeros((2, 2, 2, 2), np.uint8), GOOD_PARAMS), ValueError, "expected 2-D or 3-D"),
    (lambda: cutswap(IMAGE, np.zeros((16, 15), np.uint8), seed=0), ValueError, "got shape (16, 15)"),
    (
        lambda: CutSwapTransform(mode="cutpaste"),
        ValueError,
        "mode must be 'saliency' or 'random', got 'cutpaste'",
    ),
    (lambda: CutSwapTransform(k=0), ValueError, "k must be an integer in [1, 256]"),
    (lambda: CutSwapTransform(area=(0.5, 0.4)), ValueError, "invalid value for area"),
    (lambda: CutSwapTransform()(IMAGE, MAP, 0), ValueError, "maps: expected 3-D, got shape (16, 16)"),
    (
        lambda: CutSwapTransform()(IMAGE, np.zeros((2, 16, 8), np.uint8), 0),
        ValueError,
        "expected (L, 16, 16)",
    ),
    (
        lambda: CutSwapTransform()(IMAGE, MAPS.astype(np.float64), 0),
        TypeError,
        "maps: expected uint8 or float32",
    ),
    (lambda: CutSwapTransform()(IMAGE, inf_maps(), 0), ValueError, "got inf at flat index 0"),
    (lambda: CutSwapTransform()(IMAGE, MAPS, -3), ValueError, "seed must be an integer"),
    (lambda: derive_seed(-1, 2), ValueError, "base_seed must be an integer"),
    (lambda: derive_seed(1, 2**64), ValueError, "indices[0] must be an integer"),
]


@pytest.mark.parametrize(("call", "exception", "fragment"), BAD_INPUTS)
def test_bad_input_message(call, exception, fragment):
    with pytest.raises(exception) as caught:
        call()
    assert fragment in str(caught.value)


def test_core_errors_are_not_generic():
    for call, exception, _ in BAD_INPUTS:
        with pytest.raises(Exception) as caught:
            call()
        assert type(caught.value) is exception


def test_native_k_range_checked_without_wrapper():
    from cutswap import _native

    with pytest.raises(ValueError, match=r"invalid value for k: expected an integer in \[1, 256\], got -3"):
        _native.kmeans_1d(MAP, -3)
    with pytest.raises(ValueError, match="invalid value for mode"):
        _native.cutswap_levels(IMAGE, MAPS, 3, (0.02, 0.15), (0.3, 3.3), 0, "other")
