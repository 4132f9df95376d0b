import numpy as np
import pytest

from cutswap.cutpaste import color_jitter, cutpaste_normal, cutpaste_scar

AUGMENTATIONS = [cutpaste_normal, cutpaste_scar]


def random_image(height=64, width=64, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.mark.parametrize("augment", AUGMENTATIONS)
def test_output_shape_dtype_and_input_unchanged(augment):
    image = random_image()
    before = image.copy()
    output = augment(image, 0)
    assert output.shape == image.shape
    assert output.dtype == np.uint8
    assert output is not image
    np.testing.assert_array_equal(image, before)


@pytest.mark.parametrize("augment", AUGMENTATIONS)
def test_same_seed_same_output(augment):
    image = random_image()
    np.testing.assert_array_equal(augment(image, 3), augment(image, 3))
    assert any(not np.array_equal(augment(image, 3), augment(image, seed)) for seed in range(4, 8))


@pytest.mark.parametrize("augment", AUGMENTATIONS)
def test_changes_image(augment):
    image = random_image()
    changed = sum(int(np.any(augment(image, seed) != image)) for seed in range(10))
    assert changed >= 9


def test_normal_changes_one_rectangle_within_area_range():
    image = random_image(100, 100)
    for seed in range(20):
        changed = np.any(cutpaste_normal(image, seed) != image, axis=-1)
        rows, columns = np.nonzero(changed)
        if rows.size == 0:
            continue
        box_area = (np.ptp(rows) + 1) * (np.ptp(columns) + 1)
        assert box_area <= 0.15 * 100 * 100 * 1.05


def test_scar_changes_small_region():
    image = random_image(100, 100)
    for seed in range(20):
        changed = np.any(cutpaste_scar(image, seed) != image, axis=-1)
        # A 16 x 25 strip rotated by 45 degrees covers at most about 16 * 25 pixels.
        assert changed.sum() <= 16 * 25 + 40
        rows, columns = np.nonzero(changed)
        if rows.size:
            # The bounding box of a 16 x 25 strip rotated by 45 degrees is about 29 pixels.
            assert np.ptp(rows) + 1 <= 30
            assert np.ptp(columns) + 1 <= 30


@pytest.mark.parametrize("augment", AUGMENTATIONS)
@pytest.mark.parametrize("shape", [(1, 1, 3), (5, 3, 3), (8, 40, 3)])
def test_small_images(augment, shape):
    image = np.full(shape, 100, np.uint8)
    assert augment(image, 0).shape == shape


@pytest.mark.parametrize(
    ("image", "exception", "fragment"),
    [
        (np.zeros((8, 8, 3), np.float32), TypeError, "dtype uint8, got float32"),
        (np.zeros((8, 8), np.uint8), ValueError, "shape (H, W, 3) with H, W >= 1, got (8, 8)"),
        (np.zeros((8, 8, 4), np.uint8), ValueError, "got (8, 8, 4)"),
        ([[0]], TypeError, "numpy.ndarray, got list"),
    ],
)
@pytest.mark.parametrize("augment", AUGMENTATIONS)
def test_rejects_bad_images(augment, image, exception, fragment):
    with pytest.raises(exception) as caught:
        augment(image, 0)
    assert fragment in str(caught.value)


def test_color_jitter_keeps_gray_near_gray_and_bounds():
    rng = np.random.default_rng(0)
    patch = np.full((4, 4, 3), 128, np.uint8)
    jittered = color_jitter(patch, rng)
    assert jittered.dtype == np.uint8
    assert np.abs(jittered.astype(int) - 128).max() <= 20
    zero_strength = color_jitter(random_image(4, 4), np.random.default_rng(1), strength=0.0)
    np.testing.assert_allclose(zero_strength, random_image(4, 4), atol=1)
