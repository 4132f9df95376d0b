"""Score new images with a saved run: `Detector.load(run_dir).score(images)`.

A detector loads the network and the Gaussian statistics of a finished run directory once. It
then scores images in batches exactly as the training run scored its test set. Each image is
decoded (paths) or taken as is (arrays) and resized to the run's image size with the bilinear
resize of `cutswap.data.read_image`. Then it is embedded and scored by Mahalanobis distance.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Union

import numpy as np
import torch
from PIL import Image

from .config import TrainConfig
from .data import load_dataset, read_image, read_images, to_rgb
from .embedding import embed_images
from .localization import PatchGaussian, anomaly_maps, fit_localization, load_localization
from .model import CutSwapNet, FrozenReference
from .runs import DENSITY_FILE, MODEL_FILE, SavedRun, load_run
from .scoring import CombinedDensity

logger = logging.getLogger(__name__)

#: One image: a path, or a uint8 array of shape (H, W, 3), (H, W, 4), (H, W, 1) or (H, W).
ImageInput = Union[str, "os.PathLike[str]", np.ndarray]

#: Images to score: a sequence of `ImageInput` (paths and arrays may be mixed), one path, or a
#: uint8 (N, H, W, 3) array.
ImagesInput = Union[Sequence[ImageInput], str, "os.PathLike[str]", np.ndarray]

THRESHOLD_NAMES = ("f1", "train_quantile")


@dataclass
class Prediction:
    """Scores and decisions for a batch of images.

    Attributes:
        scores: (N,) float64 anomaly scores, higher is more anomalous.
        anomalous: (N,) bool, ``scores > threshold``.
        threshold: the decision threshold used.
    """

    scores: np.ndarray
    anomalous: np.ndarray
    threshold: float


def _as_image(image: ImageInput, size: int, position: int) -> np.ndarray:
    """Return one input as (size, size, 3) uint8, resized like `read_image`."""
    if isinstance(image, (str, os.PathLike)):
        return read_image(image, size)
    if not isinstance(image, np.ndarray):
        raise TypeError(
            f"image {position} is a {type(image).__name__}; expected a path or a uint8 numpy array"
        )
    if image.dtype != np.uint8:
        raise TypeError(f"image {position} has dtype {image.dtype}; expected uint8 with values 0 to 255")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (3, 4))):
        raise ValueError(
            f"image {position} has shape {image.shape}; expected (H, W, 3), (H, W, 4), (H, W, 1) or (H, W)"
        )
    if image.ndim == 3 and image.shape[:2] == (size, size) and image.shape[2] == 3:
        # Pillow's resize (13.0) returns an unchanged copy when the size already matches, so skip it.
        return image
    return to_rgb(Image.fromarray(np.ascontiguousarray(image)), size)


def _as_sequence(images: ImagesInput) -> Sequence[ImageInput]:
    if isinstance(images, (str, os.PathLike)):
        return [images]
    if isinstance(images, np.ndarray):
        if images.ndim != 4:
            raise ValueError(
                f"an image array must be (N, H, W, 3), got shape {images.shape}; "
                "wrap a single (H, W, 3) image in a list"
            )
        return images
    return images


class Detector:
    """The scoring model of a finished run, loaded once.

    Use `Detector.load`; the constructor takes already loaded parts.
    """

    def __init__(
        self,
        run: SavedRun,
        config: TrainConfig,
        net: CutSwapNet,
        reference: Optional[FrozenReference],
        density: CombinedDensity,
        device: torch.device,
        batch_size: int,
    ) -> None:
        self.run = run
        self.config = config
        self.net = net
        self.reference = reference
        self.density = density
        self.device = device
        self.batch_size = batch_size
        self._localization: Optional[PatchGaussian] = None

    @classmethod
    def load(
        cls,
        run_dir: Union[str, os.PathLike[str]],
        *,
        device: str = "auto",
        backbone: Optional[str] = None,
        batch_size: Optional[int] = None,
    ) -> Detector:
        """Load the network and density of a finished run directory.

        Args:
            run_dir: the ``--output`` directory of `python -m cutswap.train`.
            device: ``auto`` (CUDA when present), ``cpu``, ``cuda`` or ``cuda:N``.
            backbone: the backbone the caller expects; a run with another one raises ValueError.
            batch_size: images per forward pass (default: the run's ``eval_batch_size``).

        Raises:
            FileNotFoundError: the directory or one of its files is missing; the message gives the
                command that finishes the run.
            ValueError: another format version, another backbone than `backbone`, or damaged files.
        """
        from .train import build_networks, resolve_device

        run = load_run(Path(run_dir))
        config = TrainConfig.from_dict(run.config["train"])
        if backbone is not None and backbone != config.backbone:
            raise ValueError(
                f"run {run.directory} was trained with backbone {config.backbone}, but {backbone} was "
                f"requested; load it with backbone={config.backbone!r} or choose a run trained with "
                f"{backbone}"
            )
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")

        layers = list(run.model.get("saliency_layers", []))
        net, reference = build_networks(config, len(layers), pretrained=False)
        model_path = run.directory / MODEL_FILE
        try:
            net.load_state_dict(run.model["net"])
            if reference is not None and config.embedding == "trained+frozen":
                # A run without fine-tuned stages has a reference without weights of its own.
                reference.load_state_dict(run.model.get("reference", {}))
            else:
                reference = None
        except (KeyError, RuntimeError, ValueError) as error:
            raise ValueError(
                f"{model_path} does not match the run's configuration ({error}); the run directory is "
                "damaged or was written by another cutswap version; retrain it"
            ) from error

        density = CombinedDensity.from_state_dict(run.density)
        expected = {"trained"} | ({"frozen"} if reference is not None else set())
        if set(density.densities) != expected:
            raise ValueError(
                f"{run.directory / DENSITY_FILE} contains densities {sorted(density.densities)} but "
                f"{model_path} gives embeddings {sorted(expected)}; the run directory is damaged, retrain it"
            )

        resolved = resolve_device(device)
        net.eval().to(resolved)
        if reference is not None:
            reference.eval().to(resolved)
        logger.info(
            "loaded run %s (%s, %s, %d px) on %s",
            run.directory,
            config.augmentation,
            config.backbone,
            config.image_size,
            resolved,
        )
        return cls(run, config, net, reference, density, resolved, batch_size or config.eval_batch_size)

    @property
    def image_size(self) -> int:
        """Side of the square images the run was trained and scored at, in pixels."""
        return self.config.image_size

    @property
    def thresholds(self) -> Dict[str, float]:
        """The run's saved thresholds: ``f1`` (F1-optimal on its test set) and ``train_quantile``."""
        saved = self.run.metrics.get("thresholds", {})
        # metrics.json stores an undefined threshold (a one-class test set) as null.
        return {
            name: float("nan") if saved[name] is None else float(saved[name])
            for name in THRESHOLD_NAMES
            if name in saved
        }

    def threshold(self, choice: Union[str, float] = "f1") -> float:
        """Resolve a threshold given by name (``f1``, ``train_quantile``) or as a number."""
        if isinstance(choice, str):
            if choice not in THRESHOLD_NAMES:
                raise ValueError(
                    f"unknown threshold {choice!r}: expected one of {', '.join(THRESHOLD_NAMES)} or a number"
                )
            value = self.thresholds.get(choice)
            if value is None or not np.isfinite(value):
                raise ValueError(
                    f"threshold {choice!r} is not defined for run {self.run.directory} (its metrics.json "
                    f"stores {value!r}, e.g. because its test set had one class); pass another threshold "
                    "name (train_quantile needs no defective images) or a number"
                )
            return value
        value = float(choice)
        if not np.isfinite(value):
            raise ValueError(f"threshold must be a finite number, got {choice!r}")
        return value

    def load_images(self, images: ImagesInput) -> np.ndarray:
        """Decode and resize images to the run's size: (N, S, S, 3) uint8."""
        return self._load(_as_sequence(images), 0)

    def _load(self, sequence: Sequence[ImageInput], first_position: int) -> np.ndarray:
        size = self.image_size
        if isinstance(sequence, np.ndarray):
            if sequence.dtype != np.uint8:
                raise TypeError(
                    f"image array has dtype {sequence.dtype}; expected uint8 with values 0 to 255"
                )
            if sequence.shape[1:] == (size, size, 3):
                return sequence
        output = np.empty((len(sequence), size, size, 3), dtype=np.uint8)
        for index, image in enumerate(sequence):
            output[index] = _as_image(image, size, first_position + index)
        return output

    def _batches(self, images: ImagesInput, batch_size: Optional[int]) -> Iterator[np.ndarray]:
        sequence = _as_sequence(images)
        step = self.batch_size if batch_size is None else batch_size
        if step < 1:
            raise ValueError(f"batch_size must be at least 1, got {step}")
        for start in range(0, len(sequence), step):
            yield self._load(sequence[start : start + step], start)

    def score(self, images: ImagesInput, *, batch_size: Optional[int] = None) -> np.ndarray:
        """Score images; paths and arrays are decoded one batch at a time.

        Args:
            images: paths, uint8 arrays, or a uint8 (N, H, W, 3) array (see `ImagesInput`).
            batch_size: images per forward pass (default: the detector's).

        Returns:
            (N,) float64 anomaly scores, higher is more anomalous.

        Raises:
            ImageReadError: a path could not be read.
            TypeError, ValueError: an array of the wrong dtype or shape.
        """
        parts: List[np.ndarray] = []
        for batch in self._batches(images, batch_size):
            embeddings = embed_images(
                self.net, self.reference, batch, batch_size=len(batch), device=self.device
            )
            parts.append(self.density.score(embeddings))
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float64)

    def predict(
        self,
        images: ImagesInput,
        threshold: Union[str, float] = "f1",
        *,
        batch_size: Optional[int] = None,
    ) -> Prediction:
        """Score images and flag those above a threshold (``f1``, ``train_quantile`` or a number)."""
        value = self.threshold(threshold)
        scores = self.score(images, batch_size=batch_size)
        return Prediction(scores=scores, anomalous=scores > value, threshold=value)

    @property
    def localization(self) -> PatchGaussian:
        """The patch Gaussian behind `heatmap`: read from the run, or fitted on its training images."""
        if self._localization is None:
            saved = load_localization(self.run.directory, self.config.backbone)
            self._localization = saved if saved is not None else self._fit_localization_from_run()
        return self._localization

    def fit_localization(self, images: ImagesInput, *, max_images: int = 256) -> PatchGaussian:
        """Fit the patch Gaussian behind `heatmap` on the given normal images and use it from now on."""
        self._localization = fit_localization(
            self.net,
            self.load_images(images),
            batch_size=self.batch_size,
            device=self.device,
            max_images=max_images,
        )
        return self._localization

    def _fit_localization_from_run(self) -> PatchGaussian:
        name = self.run.config["dataset"]["name"]
        options: Dict[str, Any] = self.run.config["dataset"]["options"]
        logger.info("fitting the localization statistics on the training images of %s (%s)", name, options)
        try:
            split = load_dataset(name, **options)
        except (FileNotFoundError, ValueError) as error:
            raise ValueError(
                f"heatmaps need the training images of run {self.run.directory}, but its dataset {name} "
                f"could not be loaded ({error}); call Detector.fit_localization(normal_images) first"
            ) from error
        records = split.train
        limit = 256
        if len(records) > limit:
            records = [records[int(i)] for i in np.linspace(0, len(records) - 1, limit).round()]
        images, _ = read_images(records, self.image_size, on_error="skip", progress=False)
        return fit_localization(
            self.net, images, batch_size=self.batch_size, device=self.device, max_images=limit
        )

    def heatmap(
        self,
        images: ImagesInput,
        *,
        raw: bool = False,
        batch_size: Optional[int] = None,
    ) -> np.ndarray:
        """Compute where each image is anomalous.

        Args:
            images: as for `score`.
            raw: return the unscaled Mahalanobis distances of the local features instead.
            batch_size: images per forward pass (default: the detector's).

        Returns:
            (N, S, S) float32 maps at the run's image size. By default on a fixed scale shared by
            all images: 0 at the median of the training normals' maps, 1 at their maximum, so
            values of 1 lie beyond anything seen on the training normals. With `raw`, the
            distances themselves (see `cutswap.localization`).
        """
        gaussian = self.localization
        parts: List[np.ndarray] = []
        for batch in self._batches(images, batch_size):
            maps = anomaly_maps(self.net, gaussian, batch, device=self.device)
            parts.append(maps if raw else gaussian.scale(maps))
        if not parts:
            return np.zeros((0, self.image_size, self.image_size), dtype=np.float32)
        return np.concatenate(parts)
