"""Export a run's scoring model to ONNX: `python -m cutswap.export RUN_DIR model.onnx`.

The exported graph takes a batch of RGB images as a uint8 (B, 3, S, S) tensor, channels first and
already resized to the run's image size S (with bilinear interpolation, as
`cutswap.data.read_image` does). It returns the (B,) float64 anomaly scores that `Detector.score`
returns. Inside are the ImageNet normalisation, the backbone embedding(s), the Mahalanobis
distance(s) in float64 and, for runs with two embeddings, their standardised sum. The batch axis
is dynamic and the image size is fixed.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Optional, Sequence

import torch
from torch import nn

from .runs import _temporary_beside

# Named explicitly: run as `python -m cutswap.export`, __name__ would be "__main__".
logger = logging.getLogger("cutswap.export")

#: Opset of the exported graph; onnxruntime 1.16 and later run it.
OPSET_VERSION = 17


class ScoringModule(nn.Module):
    """The whole scoring path of a `Detector` as one torch module.

    Input: (B, 3, S, S) uint8 images. Output: (B,) float64 anomaly scores.
    """

    def __init__(self, detector) -> None:
        super().__init__()
        self.net = detector.net
        self.reference = detector.reference
        self.names = list(detector.density.densities)
        for index, name in enumerate(self.names):
            density = detector.density.densities[name]
            normalizer = detector.density.normalizers[name]
            self.register_buffer(f"mean_{index}", torch.from_numpy(density.mean.copy()))
            self.register_buffer(f"precision_{index}", torch.from_numpy(density.precision.copy()))
            self.register_buffer(f"score_mean_{index}", torch.tensor(normalizer.mean, dtype=torch.float64))
            self.register_buffer(f"score_std_{index}", torch.tensor(normalizer.std, dtype=torch.float64))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Return the (B,) float64 scores of (B, 3, S, S) uint8 images."""
        embeddings = {}
        trained, _ = self.net.stage_outputs(images)
        embeddings["trained"] = trained
        if self.reference is not None:
            embeddings["frozen"] = self.reference(self.net, images)

        parts = []
        for index, name in enumerate(self.names):
            centered = embeddings[name].double() - getattr(self, f"mean_{index}")
            squared = ((centered @ getattr(self, f"precision_{index}")) * centered).sum(dim=1)
            distance = squared.clamp_min(0.0).sqrt()
            if len(self.names) > 1:
                mean = getattr(self, f"score_mean_{index}")
                distance = (distance - mean) / getattr(self, f"score_std_{index}")
            parts.append(distance)
        return torch.stack(parts, dim=0).sum(dim=0)


def export_onnx(detector, path: Path, *, opset_version: int = OPSET_VERSION) -> None:
    """Write the scoring model of a loaded `Detector` to an ONNX file, atomically.

    The graph has one input ``images`` (uint8 (B, 3, S, S)) and one output ``scores``
    ((B,) float64), with a dynamic batch axis ``batch``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module = ScoringModule(detector).cpu().eval()
    size = detector.image_size
    example = torch.zeros((2, 3, size, size), dtype=torch.uint8)
    temporary = _temporary_beside(path)
    try:
        with torch.no_grad():
            # The TorchScript-based exporter needs no extra package; the dynamo one needs onnxscript.
            torch.onnx.export(
                module,
                (example,),
                temporary,
                input_names=["images"],
                output_names=["scores"],
                dynamic_axes={"images": {0: "batch"}, "scores": {0: "batch"}},
                opset_version=opset_version,
                dynamo=False,
            )
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    finally:
        # The detector's modules were moved to the CPU for tracing; move them back.
        detector.net.to(detector.device)
        if detector.reference is not None:
            detector.reference.to(detector.device)
    logger.info("exported the scoring model of %s to %s (input uint8 (B, 3, %d, %d))",
                detector.run.directory, path, size, size)


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of `python -m cutswap.export`."""
    parser = argparse.ArgumentParser(
        prog="python -m cutswap.export",
        description="Export a trained run's scoring model (normalisation, backbone, Mahalanobis "
        "distances) to ONNX. Input: uint8 (B, 3, S, S) RGB images resized to the run's image size; "
        "output: (B,) float64 scores.",
    )
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR",
                        help="run directory written by cutswap.train")
    parser.add_argument("output", type=Path, metavar="MODEL_ONNX", help="ONNX file to write")
    parser.add_argument("--opset", type=int, default=OPSET_VERSION,
                        help=f"ONNX opset version (default: {OPSET_VERSION})")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line; return the exit status (0, or 2 on errors)."""
    from .detector import Detector
    from .train import configure_console_logging

    args = build_parser().parse_args(argv)
    configure_console_logging(args.verbose)
    try:
        detector = Detector.load(args.run_dir, device="cpu")
        export_onnx(detector, args.output, opset_version=args.opset)
    except (FileNotFoundError, ValueError) as error:
        logger.error("%s", error)
        return 2
    print(f"wrote {args.output} (input images: uint8 (B, 3, {detector.image_size}, {detector.image_size}))")
    return 0


if __name__ == "__main__":
    sys.exit(main())
