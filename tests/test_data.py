import argparse
import io
import logging
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cutswap.data import (
    DatasetSplit,
    ImageReadError,
    ImageRecord,
    add_dataset_arguments,
    dataset_from_args,
    image_sources,
    list_image_files,
    load_dataset,
    load_elpv,
    load_folder,
    load_mvtec,
    load_visa,
    on_error_from_args,
    read_image,
    read_images,
    read_mask,
    read_masks,
)

SIZE = 16


# ---------------------------------------------------------------- fixture helpers


def save(path: Path, image: Image.Image, **options) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **options)
    return path


def rgb(value: tuple[int, int, int], size: tuple[int, int] = (24, 24)) -> Image.Image:
    return Image.new("RGB", size, value)


def noise(seed: int, size: tuple[int, int] = (24, 24)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def write_bytes(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def make_mvtec(root: Path) -> Path:
    """bottle: 4 train (mixed sizes and modes), test good 2, broken 2 with masks, crack 1 without."""
    bottle = root / "bottle"
    save(bottle / "train/good/000.png", noise(0))
    save(bottle / "train/good/001.png", noise(1, (40, 30)))
    save(bottle / "train/good/002.png", noise(2).convert("L"))
    save(bottle / "train/good/003.jpg", noise(3))
    write_bytes(bottle / "train/good/notes.txt", b"not an image")
    save(bottle / "test/good/000.png", noise(4))
    save(bottle / "test/good/001.png", noise(5))
    for name in ("000", "001"):
        save(bottle / f"test/broken/{name}.png", noise(6))
        mask = np.zeros((24, 24), dtype=np.uint8)
        mask[4:12, 4:12] = 255
        save(bottle / f"ground_truth/broken/{name}_mask.png", Image.fromarray(mask))
    save(bottle / "test/crack/000.png", noise(7))
    # Other categories, listed in the error for an unknown category.
    (root / "cable/train/good").mkdir(parents=True)
    (root / "metal_nut/train/good").mkdir(parents=True)
    return root


def make_visa(root: Path, rows: list[str] | None = None) -> Path:
    candle = root / "candle/Data"
    for index in range(4):
        save(candle / f"Images/Normal/{index:04d}.JPG", noise(index))
    for index in range(2):
        save(candle / f"Images/Anomaly/{index:03d}.JPG", noise(10 + index))
        mask = np.zeros((24, 24), dtype=np.uint8)
        mask[:6] = 1
        save(candle / f"Masks/Anomaly/{index:03d}.png", Image.fromarray(mask))
    if rows is None:
        rows = [
            "candle,train,normal,candle/Data/Images/Normal/0000.JPG,",
            "candle,train,normal,candle/Data/Images/Normal/0001.JPG,",
            "candle,train,normal,candle/Data/Images/Normal/0002.JPG,",
            "candle,test,normal,candle/Data/Images/Normal/0003.JPG,",
            "candle,test,anomaly,candle/Data/Images/Anomaly/000.JPG,candle/Data/Masks/Anomaly/000.png",
            "candle,test,anomaly,candle/Data/Images/Anomaly/001.JPG,candle/Data/Masks/Anomaly/001.png",
            "capsules,train,normal,capsules/Data/Images/Normal/0000.JPG,",
        ]
    csv_path = root / "split_csv/1cls.csv"
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    csv_path.write_text("object,split,label,image,mask\n" + "\n".join(rows) + "\n")
    return root


def make_folder(root: Path, normals: int = 20) -> Path:
    for index in range(normals):
        save(root / f"normal/{index:03d}.png", noise(index))
    save(root / "abnormal/crack/a.png", noise(100))
    save(root / "abnormal/crack/b.PNG", noise(101))
    save(root / "abnormal/c.bmp", noise(102))
    write_bytes(root / "abnormal/readme.md", b"# notes")
    return root


# ---------------------------------------------------------------- read_image: modes and sizes


def uniform(mode: str, value, size=(20, 12)) -> Image.Image:
    return Image.new(mode, size, value)


def palette_image() -> Image.Image:
    image = Image.new("P", (20, 12), 1)
    image.putpalette([0, 0, 0, 10, 200, 30] + [0] * (254 * 3))
    return image


def transparent_palette_image() -> Image.Image:
    image = palette_image()
    image.info["transparency"] = 1
    return image


def sixteen_bit(value: int) -> Image.Image:
    image = Image.fromarray(np.full((12, 20), value, dtype=np.uint16))
    assert image.mode == "I;16"
    return image


MODE_CASES = [
    # (id, image, file suffix, expected RGB of every output pixel)
    ("rgb", lambda: uniform("RGB", (10, 20, 30)), ".png", (10, 20, 30)),
    ("grayscale", lambda: uniform("L", 100), ".png", (100, 100, 100)),
    ("bilevel", lambda: uniform("1", 1), ".png", (255, 255, 255)),
    ("rgba opaque", lambda: uniform("RGBA", (10, 20, 30, 255)), ".png", (10, 20, 30)),
    ("rgba transparent", lambda: uniform("RGBA", (10, 20, 30, 0)), ".png", (0, 0, 0)),
    ("rgba half", lambda: uniform("RGBA", (200, 100, 50, 128)), ".png", (100, 50, 25)),
    ("gray alpha", lambda: uniform("LA", (200, 128)), ".png", (100, 100, 100)),
    ("palette", palette_image, ".png", (10, 200, 30)),
    ("palette transparent", transparent_palette_image, ".png", (0, 0, 0)),
    ("16-bit max", lambda: sixteen_bit(65535), ".png", (255, 255, 255)),
    ("16-bit mid", lambda: sixteen_bit(32896), ".png", (128, 128, 128)),
    ("16-bit low not clipped", lambda: sixteen_bit(1028), ".png", (4, 4, 4)),
    (
        "32-bit int",
        lambda: Image.fromarray(np.full((12, 20), 65535, dtype=np.int32)),
        ".tif",
        (255, 255, 255),
    ),
    (
        "float unit range",
        lambda: Image.fromarray(np.full((12, 20), 0.5, dtype=np.float32)),
        ".tif",
        (128,) * 3,
    ),
    (
        "float 8-bit range",
        lambda: Image.fromarray(np.full((12, 20), 77.0, dtype=np.float32)),
        ".tif",
        (77,) * 3,
    ),
    ("cmyk jpeg", lambda: uniform("CMYK", (0, 0, 0, 0)), ".jpg", (255, 255, 255)),
    ("jpeg", lambda: uniform("RGB", (255, 255, 255)), ".jpg", (255, 255, 255)),
    ("bmp", lambda: uniform("RGB", (1, 2, 3)), ".bmp", (1, 2, 3)),
    ("webp lossless", lambda: uniform("RGB", (1, 2, 3)), ".webp", (1, 2, 3)),
]


@pytest.mark.parametrize(
    ("make", "suffix", "expected"), [case[1:] for case in MODE_CASES], ids=[case[0] for case in MODE_CASES]
)
def test_read_image_mode(tmp_path, make, suffix, expected):
    options = {"lossless": True} if suffix == ".webp" else {}
    path = save(tmp_path / f"image{suffix}", make(), **options)

    image = read_image(path, SIZE)

    assert image.shape == (SIZE, SIZE, 3)
    assert image.dtype == np.uint8
    difference = np.abs(image.astype(int) - np.array(expected)).max()
    assert difference <= 1, f"expected every pixel {expected}, got {image[0, 0].tolist()}"


def test_read_image_16bit_keeps_gradations(tmp_path):
    values = np.array([[0, 1000, 20000, 65535]], dtype=np.uint16).repeat(4, axis=0)
    path = save(tmp_path / "ramp.png", Image.fromarray(values))

    image = read_image(path, 4)

    assert image[0, :, 0].tolist() == [0, 4, 78, 255]


def test_read_image_non_square_and_tiny(tmp_path):
    wide = save(tmp_path / "wide.png", noise(0, (60, 20)))
    tiny = save(tmp_path / "tiny.png", noise(1, (3, 3)))

    assert read_image(wide, SIZE).shape == (SIZE, SIZE, 3)
    assert read_image(tiny, SIZE).shape == (SIZE, SIZE, 3)


def test_read_image_uses_first_frame(tmp_path):
    frames = [uniform("RGB", (255, 0, 0)), uniform("RGB", (0, 0, 255))]
    path = tmp_path / "stack.tif"
    frames[0].save(path, save_all=True, append_images=frames[1:])

    image = read_image(path, SIZE)

    assert image[0, 0].tolist() == [255, 0, 0]


def test_read_image_applies_exif_orientation(tmp_path):
    pixels = np.zeros((10, 20, 3), dtype=np.uint8)
    pixels[:, :10] = 255  # left half white
    image = Image.fromarray(pixels)
    exif = Image.Exif()
    exif[0x0112] = 6  # display after rotating 90 degrees clockwise
    path = save(tmp_path / "rotated.jpg", image, exif=exif, quality=95)

    result = read_image(path, SIZE).astype(int)

    # The white left half ends at the top after the rotation.
    assert result[:4].mean() > 200
    assert result[-4:].mean() < 50


def test_read_image_invalid_size(tmp_path):
    path = save(tmp_path / "a.png", noise(0))
    for size in (0, -3, 2.5, True, "16"):
        with pytest.raises(ValueError, match="invalid size"):
            read_image(path, size)


# ---------------------------------------------------------------- bad files

BAD_FILES = [
    # (id, file name, content, expected reason in the message)
    ("random bytes", "noise.png", np.random.default_rng(0).bytes(300), "not a readable image"),
    ("empty file", "empty.png", b"", "not a readable image"),
    ("truncated png", "truncated.png", png_bytes(noise(0, (64, 64)))[:2000], "truncated"),
    ("text as png", "text.png", b"hello, this is text", "not a readable image"),
    ("png header only", "header.png", png_bytes(noise(0))[:40], "not a readable image"),
]


@pytest.mark.parametrize(
    ("name", "content", "reason"), [case[1:] for case in BAD_FILES], ids=[case[0] for case in BAD_FILES]
)
def test_read_image_bad_file(tmp_path, name, content, reason):
    path = write_bytes(tmp_path / name, content)

    with pytest.raises(ImageReadError) as caught:
        read_image(path, SIZE)

    message = str(caught.value)
    assert str(path) in message
    assert reason in message
    # A single read cannot skip the file, so the message does not offer to.
    assert "--skip-bad-images" not in message
    assert caught.value.failures[0][0] == str(path)


def test_read_image_missing_file(tmp_path):
    with pytest.raises(ImageReadError, match="file not found"):
        read_image(tmp_path / "absent.png", SIZE)


def records_for(paths, label=0):
    return [ImageRecord(path=str(path), label=label, group="good") for path in paths]


@pytest.fixture
def mixed_records(tmp_path):
    good = [save(tmp_path / f"good{index}.png", noise(index, (20 + index, 24))) for index in range(4)]
    corrupt = write_bytes(tmp_path / "corrupt.png", np.random.default_rng(1).bytes(200))
    truncated = write_bytes(tmp_path / "truncated.png", png_bytes(noise(9, (64, 64)))[:1500])
    paths = [good[0], corrupt, good[1], good[2], truncated, good[3]]
    return records_for(paths), good, [corrupt, truncated]


def test_read_images_raise_lists_all_bad(mixed_records):
    records, _, bad = mixed_records

    with pytest.raises(ImageReadError) as caught:
        read_images(records, SIZE, progress=False)

    message = str(caught.value)
    assert "failed to read 2 image file(s)" in message
    assert "--skip-bad-images" in message
    for path in bad:
        assert str(path) in message
    assert [path for path, _ in caught.value.failures] == [str(path) for path in bad]


def test_read_images_skip_warns_once(mixed_records, caplog):
    records, good, bad = mixed_records

    with caplog.at_level(logging.WARNING, logger="cutswap.data"):
        images, kept = read_images(records, SIZE, on_error="skip", progress=False)

    assert [record.path for record in kept] == [str(path) for path in good]
    assert images.shape == (len(good), SIZE, SIZE, 3)
    for row, path in zip(images, good):
        assert np.array_equal(row, read_image(path, SIZE))
    skip_messages = [record.getMessage() for record in caplog.records if "skipped" in record.getMessage()]
    assert len(skip_messages) == 1
    for path in bad:
        assert str(path) in skip_messages[0]


def test_read_images_skip_all_bad_raises(tmp_path):
    records = records_for([write_bytes(tmp_path / "a.png", b"x"), write_bytes(tmp_path / "b.jpg", b"y")])

    with pytest.raises(ImageReadError, match="failed to read 2"):
        read_images(records, SIZE, on_error="skip", progress=False)


def test_read_images_warns_once_when_upscaling(tmp_path, caplog):
    paths = [save(tmp_path / f"{index}.png", noise(index, (8, 8))) for index in range(3)]
    paths.append(save(tmp_path / "big.png", noise(5, (32, 32))))

    with caplog.at_level(logging.WARNING, logger="cutswap.data"):
        images, _ = read_images(records_for(paths), SIZE, progress=False)

    assert images.shape == (4, SIZE, SIZE, 3)
    upscale_messages = [record.getMessage() for record in caplog.records if "upscaled" in record.getMessage()]
    assert len(upscale_messages) == 1
    assert upscale_messages[0].startswith("3 of 4 images are smaller than 16x16")


def test_read_images_workers_agree(mixed_records):
    _, good, _ = mixed_records
    records = records_for(good)

    serial, _ = read_images(records, SIZE, progress=False, workers=1)
    threaded, _ = read_images(records, SIZE, progress=False, workers=3)

    assert np.array_equal(serial, threaded)


def test_read_images_empty():
    images, kept = read_images([], SIZE, progress=False)

    assert images.shape == (0, SIZE, SIZE, 3)
    assert kept == []


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"on_error": "ignore"}, "invalid on_error 'ignore'"),
        ({"workers": 0}, "invalid workers 0"),
        ({"workers": 1.5}, "invalid workers 1.5"),
    ],
)
def test_read_images_invalid_options(tmp_path, options, message):
    records = records_for([save(tmp_path / "a.png", noise(0))])

    with pytest.raises(ValueError, match=message):
        read_images(records, SIZE, progress=False, **options)


# ---------------------------------------------------------------- masks and sources


MASK_CASES = [
    ("binary 255", lambda a: Image.fromarray(a * 255)),
    ("binary 1", lambda a: Image.fromarray(a)),
    ("rgb", lambda a: Image.fromarray(np.stack([a * 255, a * 0, a * 0], axis=2))),
    ("16-bit", lambda a: Image.fromarray(a.astype(np.uint16) * 65535)),
    ("bilevel", lambda a: Image.fromarray(a * 255).convert("1")),
]


@pytest.mark.parametrize("make", [case[1] for case in MASK_CASES], ids=[case[0] for case in MASK_CASES])
def test_read_mask_formats(tmp_path, make):
    defect = np.zeros((32, 32), dtype=np.uint8)
    defect[8:24, 16:32] = 1
    path = save(tmp_path / "mask.png", make(defect))

    mask = read_mask(path, 16)

    assert mask.dtype == bool
    assert mask.shape == (16, 16)
    assert np.array_equal(mask, defect[::2, ::2].astype(bool))


def test_read_masks_fill_missing(tmp_path):
    defect = np.full((8, 8), 255, dtype=np.uint8)
    mask_path = save(tmp_path / "m.png", Image.fromarray(defect))
    records = [
        ImageRecord(path="a.png", label=0, group="good"),
        ImageRecord(path="b.png", label=1, group="crack", mask_path=str(mask_path)),
    ]

    masks = read_masks(records, 4)

    assert masks.shape == (2, 4, 4)
    assert not masks[0].any()
    assert masks[1].all()


def test_image_sources_change_with_file(tmp_path):
    path = save(tmp_path / "a.png", noise(0))
    records = records_for([path])

    before = image_sources(records)
    os.utime(path, ns=(1, 1))
    after = image_sources(records)

    assert before[0]["path"] == str(path.resolve())
    assert before[0]["size"] == path.stat().st_size
    assert set(before[0]) == {"path", "size", "mtime_ns"}
    assert after[0]["mtime_ns"] == 1
    assert after != before


# ---------------------------------------------------------------- folder listing


def test_list_image_files_filters(tmp_path, caplog):
    for name in ("b.PNG", "a.jpeg", "c.Tif", "d.webp", "e.bmp", "f.JPG", "g.tiff"):
        write_bytes(tmp_path / name, b"")
    for name in ("notes.txt", ".hidden.png", "Thumbs.db"):
        write_bytes(tmp_path / name, b"")
    write_bytes(tmp_path / "sub/h.png", b"")

    with caplog.at_level(logging.DEBUG, logger="cutswap.data"):
        flat = list_image_files(tmp_path)
    deep = list_image_files(tmp_path, recursive=True)

    assert [path.name for path in flat] == ["a.jpeg", "b.PNG", "c.Tif", "d.webp", "e.bmp", "f.JPG", "g.tiff"]
    assert deep[-1] == tmp_path / "sub/h.png"
    assert any("notes.txt" in record.getMessage() for record in caplog.records)


def test_list_image_files_empty_names_other_files(tmp_path):
    write_bytes(tmp_path / "readme.txt", b"")

    with pytest.raises(ValueError, match=r"no image files .* only other files: readme.txt"):
        list_image_files(tmp_path)


# ---------------------------------------------------------------- MVTec AD


def test_load_mvtec_layout(tmp_path):
    root = make_mvtec(tmp_path)

    split = load_mvtec(root, "bottle")

    assert split.name == "mvtec/bottle"
    assert [Path(record.path).name for record in split.train] == ["000.png", "001.png", "002.png", "003.jpg"]
    assert all(record.label == 0 and record.group == "good" for record in split.train)
    assert [(record.group, record.label) for record in split.test] == [
        ("broken", 1),
        ("broken", 1),
        ("crack", 1),
        ("good", 0),
        ("good", 0),
    ]
    broken = split.test[0]
    assert broken.mask_path == str(root / "bottle/ground_truth/broken/000_mask.png")
    assert split.test[2].mask_path is None
    assert split.flips


def test_load_mvtec_reads_mixed_images(tmp_path):
    split = load_mvtec(make_mvtec(tmp_path), "bottle")

    images, kept = read_images(split.train + split.test, SIZE, progress=False)
    masks = read_masks(split.test, SIZE)

    assert images.shape == (9, SIZE, SIZE, 3)
    assert len(kept) == 9
    # Nearest resizing from 24 to 16 samples source row floor((i + 0.5) * 1.5), so the 8x8 square
    # at rows and columns 4..11 becomes output rows and columns 3..7.
    assert masks[0].sum() == 25
    assert masks[0][3:8, 3:8].all()
    assert not masks[3].any()


def test_load_mvtec_flip_sensitive_category(tmp_path):
    root = make_mvtec(tmp_path)
    save(root / "metal_nut/train/good/000.png", noise(0))
    save(root / "metal_nut/test/good/000.png", noise(1))

    assert not load_mvtec(root, "metal_nut").flips


@pytest.mark.parametrize(
    ("change", "category", "error", "message"),
    [
        (
            "none",
            "carpet",
            FileNotFoundError,
            r"category 'carpet' not found .* categories found: bottle, cable, metal_nut",
        ),
        ("none", None, ValueError, r"needs a category \(--category\); categories found: bottle"),
        ("no root", "bottle", FileNotFoundError, r"MVTec AD root not found: .*category folders"),
        ("root is file", "bottle", FileNotFoundError, r"MVTec AD root is a file, not a folder"),
        (
            "empty train",
            "bottle",
            ValueError,
            r"no image files .* found in .*train/good; it contains only other files",
        ),
        ("no test", "bottle", FileNotFoundError, r"MVTec AD test folder not found: .*bottle/test"),
        ("empty test", "bottle", ValueError, r"no test images found in the subfolders of"),
    ],
)
def test_load_mvtec_errors(tmp_path, change, category, error, message):
    root = make_mvtec(tmp_path / "mvtec")
    if change == "no root":
        root = tmp_path / "absent"
    elif change == "root is file":
        root = write_bytes(tmp_path / "file", b"")
    elif change == "empty train":
        for path in (root / "bottle/train/good").glob("*.*g"):
            path.unlink()
    elif change in ("no test", "empty test"):
        for path in sorted((root / "bottle/test").rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
        if change == "no test":
            (root / "bottle/test").rmdir()

    with pytest.raises(error, match=message):
        load_mvtec(root, category)


# ---------------------------------------------------------------- VisA


def test_load_visa_csv(tmp_path):
    root = make_visa(tmp_path)

    split = load_visa(root, "candle")

    assert split.name == "visa/candle"
    assert len(split.train) == 3
    assert [record.label for record in split.test] == [0, 1, 1]
    assert [record.group for record in split.test] == ["good", "anomaly", "anomaly"]
    assert split.test[0].mask_path is None
    assert split.test[1].mask_path == str(root / "candle/Data/Masks/Anomaly/000.png")
    assert read_masks(split.test, 12)[1][:3].all()


def test_load_visa_custom_csv(tmp_path):
    root = make_visa(tmp_path)
    custom = tmp_path / "mine.csv"
    (root / "split_csv/1cls.csv").rename(custom)

    assert len(load_visa(root, "candle", split_csv=custom).test) == 3


@pytest.mark.parametrize(
    ("rows", "category", "error", "message"),
    [
        (
            None,
            "pcb9",
            FileNotFoundError,
            r"VisA category 'pcb9' not found .* categories found: candle, capsules",
        ),
        (
            ["candle,train,anomaly,candle/Data/Images/Anomaly/000.JPG,"],
            "candle",
            ValueError,
            r"line 2: anomalous image .* is in the training split",
        ),
        (
            ["candle,val,normal,candle/Data/Images/Normal/0000.JPG,"],
            "candle",
            ValueError,
            r"invalid split 'val'",
        ),
        (
            ["candle,test,bad,candle/Data/Images/Normal/0000.JPG,"],
            "candle",
            ValueError,
            r"invalid label 'bad'",
        ),
        (
            ["candle,test,normal,candle/Data/Images/Normal/9999.JPG,"],
            "candle",
            FileNotFoundError,
            r"1 files listed in .* are missing .*9999.JPG",
        ),
        (["candle,test,normal,candle/Data/readme.txt,"], "candle", ValueError, r"is not an image file name"),
        (
            ["candle,test,normal,candle/Data/Images/Normal/0000.JPG,"],
            "candle",
            ValueError,
            r"lists no training images for candle",
        ),
    ],
)
def test_load_visa_errors(tmp_path, rows, category, error, message):
    root = make_visa(tmp_path, rows)

    with pytest.raises(error, match=message):
        load_visa(root, category)


def test_load_visa_missing_csv_names_path(tmp_path):
    root = make_visa(tmp_path)
    (root / "split_csv/1cls.csv").unlink()

    with pytest.raises(FileNotFoundError) as caught:
        load_visa(root, "candle")

    assert str(root / "split_csv/1cls.csv") in str(caught.value)
    assert "--split-csv" in str(caught.value)


def test_load_visa_missing_columns(tmp_path):
    root = make_visa(tmp_path)
    (root / "split_csv/1cls.csv").write_text("object,split,image\ncandle,train,x.JPG\n")

    with pytest.raises(ValueError, match="is missing the columns label, mask"):
        load_visa(root, "candle")


# ---------------------------------------------------------------- plain folders


def test_load_folder_split(tmp_path):
    root = make_folder(tmp_path)

    split = load_folder(root / "normal", abnormal_dir=root / "abnormal", test_ratio=0.25, seed=0)

    assert len(split.train) == 15
    assert sum(1 for record in split.test if record.label == 0) == 5
    anomalies = [(Path(record.path).name, record.group) for record in split.test if record.label == 1]
    assert anomalies == [("c.bmp", "anomaly"), ("a.png", "crack"), ("b.PNG", "crack")]
    train_paths = {record.path for record in split.train}
    assert not train_paths & {record.path for record in split.test}


def test_load_folder_seed_reproducible(tmp_path):
    root = make_folder(tmp_path)

    def test_paths(seed):
        split = load_folder(root / "normal", seed=seed)
        return [record.path for record in split.test]

    assert test_paths(0) == test_paths(0)
    assert test_paths(7) == test_paths(7)
    assert test_paths(0) != test_paths(1)
    assert test_paths(0) != test_paths(7)


def test_load_folder_test_normal_dir(tmp_path):
    root = make_folder(tmp_path)
    for index in range(3):
        save(root / f"test_normal/{index}.png", noise(50 + index))

    split = load_folder(root / "normal", test_normal_dir=root / "test_normal")

    assert len(split.train) == 20
    assert len(split.test) == 3
    assert all(record.label == 0 for record in split.test)


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"test_ratio": 0.0}, ValueError, r"invalid test_ratio 0.0"),
        ({"test_ratio": 1.0}, ValueError, r"invalid test_ratio 1.0"),
        ({"seed": -1}, ValueError, r"invalid seed -1"),
        ({"normal_dir": "single"}, ValueError, r"has 1 normal image\(s\), too few to split"),
        ({"normal_dir": "absent"}, FileNotFoundError, r"normal_dir folder \(--normal-dir\) not found"),
        ({"abnormal_dir": "absent"}, FileNotFoundError, r"abnormal_dir folder \(--abnormal-dir\) not found"),
        ({"test_normal_dir": "absent"}, FileNotFoundError,
         r"test_normal_dir folder \(--test-normal-dir\) not found"),
        ({"abnormal_dir": "empty"}, ValueError, r"no image files .* found in .*empty or its subfolders"),
        ({"normal_dir": "."}, ValueError, r"images are in both the training and the test set"),
        ({"test_normal_dir": "normal"}, ValueError, r"20 images are in both"),
    ],
)
def test_load_folder_errors(tmp_path, options, error, message):
    root = make_folder(tmp_path)
    save(root / "single/0.png", noise(0))
    (root / "empty").mkdir()
    options = {key: root / value if key.endswith("_dir") else value for key, value in options.items()}
    normal_dir = options.pop("normal_dir", root / "normal")
    if normal_dir == root / ".":
        options["abnormal_dir"] = root / "abnormal"

    with pytest.raises(error, match=message):
        load_folder(normal_dir, **options)


# ---------------------------------------------------------------- ELPV


def test_elpv_literature_counts():
    split = load_elpv()

    assert split.name == "elpv"
    assert len(split.train) == 1131
    assert sum(record.label == 0 for record in split.test) == 377
    assert sum(record.label == 1 for record in split.test) == 715
    assert split.flips
    assert {record.group for record in split.train} == {"mono", "poly"}
    assert not {record.path for record in split.train} & {record.path for record in split.test}
    assert os.path.isfile(split.train[0].path)


def test_elpv_cell_types_partition_split():
    full = load_elpv()
    mono = load_elpv(cell_type="mono")
    poly = load_elpv(cell_type="poly")

    assert len(mono.train) + len(poly.train) == 1131
    assert len(mono.test) + len(poly.test) == 377 + 715
    assert {record.path for record in mono.train} | {record.path for record in poly.train} == {
        record.path for record in full.train
    }
    assert all(record.group == "mono" for record in mono.train + mono.test)
    assert all(record.group == "poly" for record in poly.train + poly.test)
    assert mono.name == "elpv-mono"


def test_elpv_any_defect_counts():
    literature = load_elpv()
    any_defect = load_elpv(variant="any_defect")

    assert [record.path for record in any_defect.train] == [record.path for record in literature.train]
    assert sum(record.label == 0 for record in any_defect.test) == 377
    assert sum(record.label == 1 for record in any_defect.test) == 715 + 295 + 106
    assert any_defect.name == "elpv-any-defect"
    assert "above 0" in any_defect.description
    mono = load_elpv(variant="any_defect", cell_type="mono")
    poly = load_elpv(variant="any_defect", cell_type="poly")
    assert len(mono.test) + len(poly.test) == 377 + 1116


def test_elpv_split_seed():
    default = [record.path for record in load_elpv().train]
    again = [record.path for record in load_elpv(seed=42).train]
    zero = load_elpv(seed=0)

    assert default == again
    assert len(zero.train) == 1131
    assert [record.path for record in zero.train] != default


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"variant": "strict"}, r"invalid ELPV variant 'strict'"),
        ({"cell_type": "thin"}, r"invalid ELPV cell type 'thin'"),
        ({"seed": -5}, r"invalid seed -5"),
    ],
)
def test_elpv_invalid_options(options, message):
    with pytest.raises(ValueError, match=message):
        load_elpv(**options)


def test_elpv_missing_package(monkeypatch):
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "elpv_dataset" else real_find_spec(name, *a),
    )

    with pytest.raises(ModuleNotFoundError, match=r'pip install "cutswap\[elpv\]"'):
        load_elpv()


# ---------------------------------------------------------------- records, load_dataset, CLI options


def test_records_validate_and_pickle():
    with pytest.raises(ValueError, match="invalid label 2"):
        ImageRecord(path="a.png", label=2, group="good")
    anomalous = ImageRecord(path="a.png", label=1, group="crack")
    with pytest.raises(ValueError, match="must contain only normal images"):
        DatasetSplit(name="x", train=[anomalous], test=[])

    split = DatasetSplit(name="x", train=[], test=[anomalous], description="d")
    assert pickle.loads(pickle.dumps(split)) == split
    assert split.summary() == "x: 0 training normals; test 0 normal + 1 anomalous"


def test_load_dataset_dispatch(tmp_path):
    root = make_mvtec(tmp_path)

    assert load_dataset("mvtec", root=root, category="bottle").name == "mvtec/bottle"
    with pytest.raises(ValueError, match="unknown dataset 'imagenet'"):
        load_dataset("imagenet")


def parse(argv):
    parser = argparse.ArgumentParser()
    add_dataset_arguments(parser)
    return parser.parse_args(argv)


def test_dataset_arguments_defaults_to_elpv():
    args = parse([])

    split = dataset_from_args(args)

    assert split.name == "elpv"
    assert len(split.train) == 1131
    assert on_error_from_args(args) == "raise"
    assert on_error_from_args(parse(["--skip-bad-images"])) == "skip"


def test_dataset_arguments_each_layout(tmp_path):
    mvtec = make_mvtec(tmp_path / "mvtec")
    visa = make_visa(tmp_path / "visa")
    folder = make_folder(tmp_path / "folder")

    loaded = [
        dataset_from_args(parse(["--dataset", "mvtec", "--root", str(mvtec), "--category", "bottle"])),
        dataset_from_args(parse(["--dataset", "visa", "--root", str(visa), "--category", "candle"])),
        dataset_from_args(
            parse(
                [
                    "--dataset",
                    "folder",
                    "--normal-dir",
                    str(folder / "normal"),
                    "--abnormal-dir",
                    str(folder / "abnormal"),
                    "--test-ratio",
                    "0.5",
                    "--split-seed",
                    "3",
                ]
            )
        ),
        dataset_from_args(
            parse(["--elpv-variant", "any_defect", "--cell-type", "poly", "--split-seed", "42"])
        ),
    ]

    assert [split.name for split in loaded] == [
        "mvtec/bottle",
        "visa/candle",
        "folder/normal",
        "elpv-any-defect-poly",
    ]
    assert len(loaded[2].train) == 10


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--dataset", "mvtec", "--category", "bottle"], r"--root is required with --dataset mvtec"),
        (["--dataset", "folder"], r"--normal-dir is required with --dataset folder"),
        (
            ["--dataset", "mvtec", "--root", "r", "--cell-type", "mono"],
            r"--cell-type does not apply to --dataset mvtec",
        ),
        (
            ["--normal-dir", "n", "--split-csv", "s"],
            r"--normal-dir, --split-csv does not apply to --dataset elpv",
        ),
        (
            ["--dataset", "folder", "--normal-dir", "n", "--test-normal-dir", "t", "--test-ratio", "0.3"],
            r"--test-ratio has no effect with --test-normal-dir",
        ),
    ],
)
def test_dataset_arguments_errors(argv, message):
    with pytest.raises(ValueError, match=message):
        dataset_from_args(parse(argv))


def test_dataset_arguments_help_states_defaults():
    parser = argparse.ArgumentParser()
    add_dataset_arguments(parser)

    text = parser.format_help()

    for phrase in ("(default: elpv)", "(default: 0.2)", "(default: literature)", "split_csv/1cls.csv"):
        assert phrase in text
