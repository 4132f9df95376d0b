"""Multi-level LayerCAM saliency maps for whole datasets, with an on-disk cache and a CLI.

The saliency network is frozen, so each training image's maps are computed once and stored as a
uint8 (N, L, S, S) ``.npy`` file that training opens memory-mapped. Run
``python -m cutswap.saliency --help`` for the command-line tool.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
import uuid
from importlib import metadata
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from .backbones import BACKBONES, create_backbone, default_layers, normalize_images
from .layercam import LayerCAM

# Named explicitly: run as `python -m cutswap.saliency`, __name__ would be "__main__".
logger = logging.getLogger("cutswap.saliency")

# Version of the cache layout and key; a change makes every older cache miss.
CACHE_FORMAT = 1


def _resolve_device(device: Optional[str]) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _check_images(images: np.ndarray) -> None:
    if not isinstance(images, np.ndarray):
        raise TypeError(f"images must be a numpy array (N, S, S, 3) uint8, got {type(images).__name__}")
    if images.dtype != np.uint8:
        raise TypeError(f"images must be uint8 (N, S, S, 3), got dtype {images.dtype}")
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must have shape (N, S, S, 3), got {images.shape}")


def _check_batch_size(batch_size: int) -> None:
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")


def _compute_into(
    out: np.ndarray,
    images: np.ndarray,
    model: torch.nn.Module,
    layers: Sequence[str],
    batch_size: int,
    device: torch.device,
    progress: bool,
) -> None:
    """Fill ``out`` (N, L, H, W) uint8 with the maps of ``images`` (N, H, W, 3) uint8, batch by batch."""
    count = images.shape[0]
    with LayerCAM(model, layers) as cam:
        bar = tqdm(total=count, desc="saliency", unit="img", disable=not progress)
        try:
            for start in range(0, count, batch_size):
                batch = torch.from_numpy(np.ascontiguousarray(images[start : start + batch_size]))
                maps = cam(normalize_images(batch.to(device)))
                scaled = (maps * 255.0).round_().to(torch.uint8)
                out[start : start + batch.shape[0]] = scaled.cpu().numpy()
                bar.update(batch.shape[0])
        finally:
            bar.close()


def compute_saliency(
    images: np.ndarray,
    *,
    backbone: str = "efficientnet_lite0",
    layers: Optional[Sequence[str]] = None,
    batch_size: int = 16,
    device: Optional[str] = None,
    progress: bool = True,
    model: Optional[torch.nn.Module] = None,
) -> np.ndarray:
    """Compute LayerCAM saliency maps at several layers for the top-1 ImageNet class of each image.

    Args:
        images: (N, S, S, 3) uint8 RGB images. Non-square (N, H, W, 3) images work too.
        backbone: Backbone name for :func:`cutswap.backbones.create_backbone`.
        layers: Module names, one map per name in this order. None uses
            ``default_layers(backbone)``, deepest first.
        batch_size: Images per forward and backward pass.
        device: Torch device, e.g. ``"cuda"``. None picks CUDA when available, else the CPU.
        progress: Show a tqdm progress bar.
        model: An already created classifier to use instead of ``create_backbone(backbone)``.
            It is moved to ``device``; put it in eval mode first.

    Returns:
        (N, L, S, S) uint8 maps: each map min-max scaled to 0..255, all zero where a level has no
        positive evidence.

    Raises:
        TypeError: ``images`` is not a uint8 numpy array.
        ValueError: ``images`` is not (N, H, W, 3), or ``batch_size`` or ``backbone`` is invalid.
    """
    _check_images(images)
    _check_batch_size(batch_size)
    layers = list(layers) if layers is not None else default_layers(backbone)
    torch_device = _resolve_device(device)
    if model is None:
        model = create_backbone(backbone)
    model = model.to(torch_device)

    out = np.empty((images.shape[0], len(layers), *images.shape[1:3]), dtype=np.uint8)
    _compute_into(out, images, model, layers, batch_size, torch_device, progress)
    return out


def package_version() -> str:
    """Return the installed cutswap version, or ``"0+unknown"`` when it is not installed."""
    try:
        return metadata.version("cutswap")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def _images_digest(images: np.ndarray) -> str:
    digest = hashlib.blake2b(digest_size=16)
    for image in images:
        digest.update(np.ascontiguousarray(image).data)
    return digest.hexdigest()


def cache_key(
    images: np.ndarray,
    sources: Sequence[Dict[str, Any]],
    *,
    backbone: str,
    layers: Sequence[str],
    size: int,
) -> Dict[str, Any]:
    """Build the metadata that identifies a saliency cache. Any change to it forces a recompute.

    The key contains the cache format, the cutswap version, the backbone, its layers, the image size,
    the image count, a BLAKE2b digest of the pixels and the sources as given.
    """
    return {
        "format": CACHE_FORMAT,
        "package_version": package_version(),
        "backbone": backbone,
        "layers": list(layers),
        "size": size,
        "count": int(images.shape[0]),
        "images_blake2b": _images_digest(images),
        "sources": [dict(source) for source in sources],
    }


def _cache_paths(cache_dir: str, key: Dict[str, Any]) -> tuple:
    encoded = json.dumps(key, sort_keys=True).encode()
    stem = f"saliency-{key['backbone']}-{key['size']}-{hashlib.sha256(encoded).hexdigest()[:16]}"
    return os.path.join(cache_dir, stem + ".npy"), os.path.join(cache_dir, stem + ".json")


def _open_cached(
    array_path: str, metadata_path: str, key: Dict[str, Any], shape: tuple
) -> Optional[np.ndarray]:
    """Open a complete cache read-only, or return None when it is missing, stale or damaged."""
    if not (os.path.isfile(metadata_path) and os.path.isfile(array_path)):
        return None
    try:
        with open(metadata_path, encoding="utf-8") as file:
            stored = json.load(file)
    except (OSError, ValueError) as error:
        logger.warning("ignoring unreadable saliency cache metadata %s: %s", metadata_path, error)
        return None
    if stored.get("key") != json.loads(json.dumps(key)):
        return None

    try:
        array = np.lib.format.open_memmap(array_path, mode="r")
    except (OSError, ValueError) as error:
        logger.warning("ignoring damaged saliency cache %s: %s", array_path, error)
        return None
    if array.shape != shape or array.dtype != np.uint8:
        logger.warning(
            "ignoring saliency cache %s: shape %s %s, expected %s uint8",
            array_path,
            array.shape,
            array.dtype,
            shape,
        )
        return None
    return array


def _write_json_atomic(path: str, payload: Dict[str, Any]) -> None:
    temporary = f"{path}.{os.getpid()}.{uuid.uuid4().hex}.tmp"
    try:
        with open(temporary, "w", encoding="utf-8") as file:
            json.dump(payload, file, indent=1)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def saliency_cache(
    cache_dir: str,
    images: np.ndarray,
    sources: Sequence[Dict[str, Any]],
    *,
    backbone: str = "efficientnet_lite0",
    layers: Optional[Sequence[str]] = None,
    size: Optional[int] = None,
    batch_size: int = 16,
    device: Optional[str] = None,
    progress: bool = True,
    model: Optional[torch.nn.Module] = None,
) -> np.ndarray:
    """Return cached saliency maps for ``images``, computing and storing them on a miss.

    Files are ``saliency-<backbone>-<size>-<hash>.npy`` and ``.json`` in ``cache_dir``; the hash
    covers the whole key (see :func:`cache_key`), so caches for other settings stay side by side.
    A hit needs the metadata key to match exactly and the array to have the expected shape.

    A write never leaves a file that passes for a complete cache: old metadata is removed first,
    the array is written under a temporary name, flushed and renamed, and the metadata is
    written last, also through a temporary file.

    Args:
        cache_dir: Folder for the cache files; created if missing.
        images: (N, S, S, 3) uint8 images.
        sources: One JSON-serialisable identity per image, e.g. ``{"path": str, "size": int,
            "mtime_ns": int}`` from ``cutswap.data.image_sources``.
        backbone: Backbone name.
        layers: Module names; None uses ``default_layers(backbone)``.
        size: Image side length S; None takes it from ``images``.
        batch_size: Images per pass when computing.
        device: Torch device; None picks CUDA when available.
        progress: Show a tqdm progress bar while computing.
        model: An already created classifier for ``backbone``, used on a miss.

    Returns:
        Read-only memory-mapped (N, L, S, S) uint8 array.

    Raises:
        TypeError: ``images`` is not uint8, or ``sources`` are not JSON-serialisable.
        ValueError: Shapes disagree with ``size`` or ``len(sources)``.
    """
    _check_images(images)
    _check_batch_size(batch_size)
    if size is None:
        size = int(images.shape[1])
    if images.shape[1:3] != (size, size):
        raise ValueError(f"images must have shape (N, {size}, {size}, 3) for size={size}, got {images.shape}")
    if len(sources) != images.shape[0]:
        raise ValueError(f"sources must describe each of the {images.shape[0]} images, got {len(sources)}")

    layers = list(layers) if layers is not None else default_layers(backbone)
    key = cache_key(images, sources, backbone=backbone, layers=layers, size=size)
    try:
        json.dumps(key)
    except TypeError as error:
        raise TypeError(f"sources must be JSON-serialisable dicts: {error}") from error

    array_path, metadata_path = _cache_paths(cache_dir, key)
    shape = (images.shape[0], len(layers), size, size)
    cached = _open_cached(array_path, metadata_path, key, shape)
    if cached is not None:
        logger.info("saliency cache hit: %s", array_path)
        return cached

    logger.info("computing saliency maps for %d images into %s", images.shape[0], array_path)
    os.makedirs(cache_dir, exist_ok=True)
    if os.path.exists(metadata_path):
        os.remove(metadata_path)

    torch_device = _resolve_device(device)
    if model is None:
        model = create_backbone(backbone)
    model = model.to(torch_device)

    temporary = os.path.join(
        cache_dir, f".{os.path.basename(array_path)}.{os.getpid()}.{uuid.uuid4().hex}.tmp"
    )
    try:
        out = np.lib.format.open_memmap(temporary, mode="w+", dtype=np.uint8, shape=shape)
        _compute_into(out, images, model, layers, batch_size, torch_device, progress)
        out.flush()
        del out
        with open(temporary, "rb+") as file:
            os.fsync(file.fileno())
        os.replace(temporary, array_path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise

    _write_json_atomic(metadata_path, {"key": key, "shape": list(shape), "dtype": "uint8"})
    return np.lib.format.open_memmap(array_path, mode="r")


def _salient_cluster(level_map: np.ndarray) -> np.ndarray:
    """Return the (H, W) bool mask of the k-means cluster (k = 3) with the highest centroid."""
    try:
        from .augment import saliency_kmeans
    except ImportError:
        return _salient_cluster_sklearn(level_map)

    centroids, labels = saliency_kmeans(level_map, k=3)
    return np.asarray(labels) == int(np.argmax(centroids))


def _salient_cluster_sklearn(level_map: np.ndarray) -> np.ndarray:
    # NOTE: this fallback runs only when cutswap.augment (and its Rust extension) cannot be
    # imported. Its clusters can differ from those of the Rust k-means that training uses.
    from sklearn.cluster import KMeans

    values = level_map.reshape(-1, 1).astype(np.float32)
    clusters = min(3, len(np.unique(values)))
    if clusters < 2:
        return np.zeros(level_map.shape, dtype=bool)

    kmeans = KMeans(n_clusters=clusters, n_init=3, random_state=0).fit(values)
    top = int(np.argmax(kmeans.cluster_centers_[:, 0]))
    return (kmeans.labels_ == top).reshape(level_map.shape)


def save_grid(path: str, images: np.ndarray, maps: np.ndarray, layers: Sequence[str]) -> None:
    """Save a PNG with one row per image: the image, then each level's map over it.

    Each overlay outlines, in white, the salient k-means cluster (k = 3, highest centroid) that
    CutSwap draws its anchor points from.

    Args:
        path: Output PNG path.
        images: (N, S, S, 3) uint8 images.
        maps: (N, L, S, S) uint8 maps of those images.
        layers: The L layer names, used as column titles.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, levels = maps.shape[:2]
    figure, axes = plt.subplots(rows, levels + 1, figsize=(2.0 * (levels + 1), 2.0 * rows), squeeze=False)
    for row in range(rows):
        axes[row, 0].imshow(images[row])
        for level in range(levels):
            axis = axes[row, level + 1]
            axis.imshow(images[row])
            axis.imshow(maps[row, level], cmap="jet", alpha=0.45, vmin=0, vmax=255)
            mask = _salient_cluster(maps[row, level])
            if mask.any() and not mask.all():
                axis.contour(mask.astype(np.float32), levels=[0.5], colors="white", linewidths=1.0)
            if row == 0:
                axis.set_title(layers[level], fontsize=9)
        if row == 0:
            axes[row, 0].set_title("image", fontsize=9)
    for axis in axes.ravel():
        axis.set_axis_off()

    figure.tight_layout()
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    figure.savefig(path, dpi=72)
    plt.close(figure)


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser of ``python -m cutswap.saliency``."""
    from .data import add_dataset_arguments

    parser = argparse.ArgumentParser(
        prog="python -m cutswap.saliency",
        description="Compute multi-level LayerCAM saliency maps for a dataset split, cache them and "
        "optionally draw an example grid.",
    )
    add_dataset_arguments(parser)
    parser.add_argument(
        "--split",
        choices=("train", "test", "all"),
        default="train",
        help="which images of the split to process (default: %(default)s, the normal training images)",
    )
    parser.add_argument(
        "--size", type=int, default=224, help="image side length in pixels (default: %(default)s)"
    )
    parser.add_argument(
        "--backbone",
        choices=BACKBONES,
        default="efficientnet_lite0",
        help="ImageNet backbone (default: %(default)s)",
    )
    parser.add_argument(
        "--layers",
        metavar="NAMES",
        help="comma-separated module names, one map each, in this order (default: the backbone's default "
        "layers, deepest first)",
    )
    parser.add_argument("--batch-size", type=int, default=16, help="images per pass (default: %(default)s)")
    parser.add_argument(
        "--cache",
        metavar="DIR",
        help="cache folder; maps are computed only when missing or stale (default: no cache)",
    )
    parser.add_argument("--device", help="torch device, e.g. cpu or cuda:0 (default: cuda when available)")
    parser.add_argument("--grid", metavar="PNG", help="save a grid of example images with their maps here")
    parser.add_argument(
        "--grid-count", type=int, default=4, metavar="N", help="images in the --grid (default: %(default)s)"
    )
    parser.add_argument(
        "--limit", type=int, metavar="N", help="process only the first N images (for quick runs)"
    )
    parser.add_argument(
        "--download",
        action="store_true",
        help="resnet18 only: download the ImageNet weights when they are not in the torch hub cache",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Run the saliency command-line tool; return the exit status (0, or 2 on bad input)."""
    try:
        return _main(argv)
    except (FileNotFoundError, ValueError, ImportError) as error:
        # Bad paths, unreadable images and missing weights get one line, not a traceback.
        logger.error("%s", error)
        return 2


def _main(argv: Optional[List[str]]) -> int:
    from .data import dataset_from_args, image_sources, on_error_from_args, read_images

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.cache is None and args.grid is None:
        parser.error("nothing to do: give --cache DIR, --grid PNG or both")
    for option in ("size", "batch_size", "grid_count"):
        if getattr(args, option) < 1:
            parser.error(
                f"--{option.replace('_', '-')} must be a positive integer, got {getattr(args, option)}"
            )
    if args.limit is not None and args.limit < 1:
        parser.error(f"--limit must be a positive integer, got {args.limit}")

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        split = dataset_from_args(args)
    except ValueError as error:
        parser.error(str(error))
    # A missing folder is reported by main() as one line.

    records = {"train": split.train, "test": split.test, "all": split.train + split.test}[args.split]
    if args.limit is not None:
        records = records[: args.limit]
    if not records:
        parser.error(f"the {args.split} split of {split.name} has no images")

    layers = [name.strip() for name in args.layers.split(",") if name.strip()] if args.layers else None
    progress = not args.no_progress
    images, kept_records = read_images(
        records, args.size, on_error=on_error_from_args(args), progress=progress
    )
    model = create_backbone(args.backbone, download=args.download)
    options = dict(
        backbone=args.backbone,
        layers=layers,
        batch_size=args.batch_size,
        device=args.device,
        progress=progress,
    )
    if args.cache is not None:
        maps = saliency_cache(
            args.cache, images, image_sources(kept_records), size=args.size, model=model, **options
        )
    else:
        count = min(args.grid_count, len(images))
        images = images[:count]
        maps = compute_saliency(images, model=model, **options)

    layer_names = layers if layers is not None else default_layers(args.backbone)
    print(f"saliency maps: {maps.shape} uint8, layers {', '.join(layer_names)}")
    if args.cache is not None:
        print(f"cache: {os.path.abspath(getattr(maps, 'filename', args.cache))}")
    if args.grid is not None:
        count = min(args.grid_count, len(images))
        save_grid(args.grid, images[:count], np.asarray(maps[:count]), layer_names)
        print(f"grid: {os.path.abspath(args.grid)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
