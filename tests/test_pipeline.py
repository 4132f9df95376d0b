import pickle

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from cutswap.config import TrainConfig, preset
from cutswap.pipeline import NegativeDataset, _shift, num_negative_classes, weak_augment


def _images(count=6, size=48, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(count, size, size, 3), dtype=np.uint8)


def _maps(count=6, levels=3, size=48, seed=1):
    rng = np.random.default_rng(seed)
    maps = np.zeros((count, levels, size, size), dtype=np.uint8)
    # A bright square per level, so the salient cluster is a known region.
    for level in range(levels):
        top = 4 + 8 * level
        maps[:, level, top : top + 16, 10:30] = 200 + rng.integers(0, 50, size=(count, 16, 20))
    return maps


def _config(**overrides):
    values = {"image_size": 48, "num_workers": 0, "batch_size": 2, "steps": 1}
    values.update(overrides)
    return preset("smoke", **values)


@pytest.mark.parametrize(
    "augmentation, head, expected",
    [
        ("cutswap", "multiclass", 3),
        ("cutswap", "binary", 1),
        ("random_swap", "multiclass", 1),
        ("cutpaste", "multiclass", 1),
        ("cutpaste_scar", "multiclass", 1),
        ("cutpaste_3way", "multiclass", 2),
    ],
)
def test_item_shapes_and_labels(augmentation, head, expected):
    config = _config(augmentation=augmentation, head=head)
    maps = _maps() if augmentation == "cutswap" else None
    dataset = NegativeDataset(_images(), maps, config, flips=True)

    images, labels = dataset[0]

    assert num_negative_classes(config, 3) == expected
    assert images.shape == (1 + expected, 48, 48, 3)
    assert images.dtype == torch.uint8
    assert labels[0] == 0
    assert sorted(labels[1:].tolist()) == (list(range(1, expected + 1)) if expected > 1 else [1])


def test_negatives_differ_from_normal_view():
    dataset = NegativeDataset(_images(), _maps(), _config(), flips=False)

    images, _ = dataset[1]

    for negative in images[1:]:
        assert not torch.equal(negative, images[0])


def test_cutswap_negative_keeps_pixel_multiset():
    config = _config(translate=0.0, color_jitter=0.0)
    dataset = NegativeDataset(_images(), _maps(), config, flips=False)

    images, _ = dataset[2]

    normal = np.sort(images[0].numpy().ravel())
    for negative in images[1:]:
        assert np.array_equal(np.sort(negative.numpy().ravel()), normal)


def test_same_epoch_same_item_and_new_epoch_differs():
    dataset = NegativeDataset(_images(), _maps(), _config(), flips=True)

    first, _ = dataset[3]
    again, _ = dataset[3]
    dataset.set_epoch(1)
    later, _ = dataset[3]

    assert torch.equal(first, again)
    assert not torch.equal(first, later)


def test_batches_do_not_depend_on_worker_count():
    dataset = NegativeDataset(_images(count=8), _maps(count=8), _config(), flips=True)

    def collect(workers):
        loader = DataLoader(dataset, batch_size=4, shuffle=False, num_workers=workers)
        return [batch for batch, _ in loader]

    single = collect(0)
    several = collect(2)

    assert len(single) == len(several)
    for left, right in zip(single, several):
        assert torch.equal(left, right)


def test_dataset_pickles():
    dataset = NegativeDataset(_images(), _maps(), _config(), flips=True)

    restored = pickle.loads(pickle.dumps(dataset))

    assert torch.equal(restored[0][0], dataset[0][0])


def test_weak_augment_moves_maps_with_image():
    image = np.zeros((32, 32, 3), dtype=np.uint8)
    image[2:6, 20:30] = 255
    maps = np.zeros((2, 32, 32), dtype=np.uint8)
    maps[:, 2:6, 20:30] = 255

    for seed in range(20):
        out, out_maps = weak_augment(
            image, maps, np.random.default_rng(seed), flips=True, translate=0.1, color_jitter=0.0
        )

        bright = out[..., 0] == 255
        assert np.array_equal(bright, out_maps[0] == 255)
        assert np.array_equal(bright, out_maps[1] == 255)


def _padded_shift(array, dy, dx, first_axis):
    """The shift as a crop of np.pad's reflect padding, the definition `_shift` must match."""
    height, width = array.shape[first_axis : first_axis + 2]
    pad = [(0, 0)] * array.ndim
    pad[first_axis] = (abs(dy), abs(dy))
    pad[first_axis + 1] = (abs(dx), abs(dx))
    window = [slice(None)] * array.ndim
    window[first_axis] = slice(abs(dy) - dy, abs(dy) - dy + height)
    window[first_axis + 1] = slice(abs(dx) - dx, abs(dx) - dx + width)
    return np.pad(array, pad, mode="reflect")[tuple(window)]


@pytest.mark.parametrize("height, width", [(5, 7), (2, 3), (1, 4), (16, 9)])
def test_shift_matches_reflect_padding(height, width):
    rng = np.random.default_rng(height * 100 + width)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    maps = rng.integers(0, 256, (2, height, width), dtype=np.uint8)
    # Shifts up to twice the side cover the slice path and the repeated-reflection path.
    dys = range(-2 * height, 2 * height + 1) if height > 1 else [0]
    for dy in dys:
        for dx in range(-2 * width, 2 * width + 1):
            assert np.array_equal(_shift(image, dy, dx, first_axis=0), _padded_shift(image, dy, dx, 0))
            assert np.array_equal(_shift(maps, dy, dx, first_axis=1), _padded_shift(maps, dy, dx, 1))


def test_weak_augment_leaves_input_unchanged():
    image = _images(count=1)[0]
    maps = _maps(count=1)[0]
    image_before = image.copy()
    maps_before = maps.copy()

    weak_augment(image, maps, np.random.default_rng(0), flips=True, translate=0.1, color_jitter=0.2)

    assert np.array_equal(image, image_before)
    assert np.array_equal(maps, maps_before)


@pytest.mark.parametrize(
    "images, maps, augmentation, message",
    [
        (np.zeros((2, 8, 8), np.uint8), None, "random_swap", r"images must be \(N, S, S, 3\) uint8"),
        (np.zeros((2, 8, 8, 3), np.float32), None, "random_swap", r"images must be \(N, S, S, 3\) uint8"),
        (np.zeros((2, 8, 8, 3), np.uint8), None, "cutswap", "needs saliency maps"),
        (
            np.zeros((2, 8, 8, 3), np.uint8),
            np.zeros((3, 1, 8, 8), np.uint8),
            "cutswap",
            "to match the images",
        ),
        (np.zeros((2, 8, 8, 3), np.uint8), None, "none", "trains nothing"),
    ],
)
def test_bad_dataset_inputs(images, maps, augmentation, message):
    config = TrainConfig(augmentation=augmentation)

    with pytest.raises(ValueError, match=message):
        NegativeDataset(images, maps, config, flips=True)
