"""Compare the throughput of cutswap's multi-layer LayerCAM with the grad-cam package.

cutswap's LayerCAM gets all L maps from one forward and one backward pass. pytorch_grad_cam's
LayerCAM takes one layer per object here, so L maps cost L forward and L backward passes, and its
backward also computes every weight gradient. Both run the same model on the same batches, one
after the other in the same process, and produce the same per-level maps resized to the input.

Example:
    python benchmarks/bench_saliency.py --backbone efficientnet_lite0 --size 224 --batch-size 16
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from common import save_results
from cutswap.backbones import BACKBONES, create_backbone, default_layers
from cutswap.layercam import LayerCAM


def _time_ours(model, layers, images, repeats):
    timings = []
    with LayerCAM(model, layers) as cam:
        cam(images)  # warm-up
        for _ in range(repeats):
            start = time.perf_counter()
            maps = cam(images)
            if maps.is_cuda:
                torch.cuda.synchronize()
            timings.append(time.perf_counter() - start)
    return timings


def _time_grad_cam(model, layers, images, repeats):
    from pytorch_grad_cam import LayerCAM as GradCamLayerCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    modules = dict(model.named_modules())
    cams = [GradCamLayerCAM(model, [modules[name]]) for name in layers]
    with torch.no_grad():
        targets = [ClassifierOutputTarget(int(c)) for c in model(images).argmax(1)]

    def run():
        for cam in cams:
            cam(images, targets=targets)

    timings = []
    try:
        run()  # warm-up
        for _ in range(repeats):
            start = time.perf_counter()
            run()
            timings.append(time.perf_counter() - start)
    finally:
        for cam in cams:
            cam.activations_and_grads.release()
        model.zero_grad(set_to_none=True)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbone", choices=BACKBONES, default="efficientnet_lite0")
    parser.add_argument("--size", type=int, default=224, help="image side length in pixels (default: 224)")
    parser.add_argument("--batch-size", type=int, default=16, help="images per batch (default: 16)")
    parser.add_argument("--repeats", type=int, default=5, help="timed batches per method (default: 5)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON here")
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = create_backbone(args.backbone, pretrained=args.backbone == "efficientnet_lite0").to(args.device)
    layers = default_layers(args.backbone)
    images = torch.randn(args.batch_size, 3, args.size, args.size, device=args.device)

    ours = _time_ours(model, layers, images, args.repeats)
    reference = _time_grad_cam(model, layers, images, args.repeats)

    rows = []
    for method, timings in (
        ("cutswap LayerCAM (1 pass)", ours),
        (f"grad-cam LayerCAM ({len(layers)} passes)", reference),
    ):
        median = statistics.median(timings)
        rows.append(
            {"method": method, "seconds_per_batch": median, "images_per_second": args.batch_size / median}
        )
    speedup = rows[1]["seconds_per_batch"] / rows[0]["seconds_per_batch"]

    print(
        f"{args.backbone}, {len(layers)} levels ({', '.join(layers)}), batch {args.batch_size}, "
        f"{args.size}x{args.size}, device {args.device}, {torch.get_num_threads()} threads, "
        f"median of {args.repeats}\n"
    )
    print("| method | s / batch | images / s |")
    print("| --- | ---: | ---: |")
    for row in rows:
        print(f"| {row['method']} | {row['seconds_per_batch']:.3f} | {row['images_per_second']:.1f} |")
    print(f"\nspeed-up: {speedup:.2f}x")

    if args.json:
        result = {
            "backbone": args.backbone,
            "layers": layers,
            "size": args.size,
            "batch_size": args.batch_size,
            "device": args.device,
            "threads": torch.get_num_threads(),
            "repeats": args.repeats,
            "machine": platform.processor() or platform.machine(),
            "rows": rows,
            "speedup": speedup,
        }
        save_results(args.json, result)


if __name__ == "__main__":
    main()
