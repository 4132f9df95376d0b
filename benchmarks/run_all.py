"""Run every benchmark and rewrite the generated sections of docs/benchmarks.md.

    python benchmarks/run_all.py --quick      # fewer repeats, one accuracy seed, its own table
    python benchmarks/run_all.py              # full protocol: the cpu preset, seeds 0 1 2
    python benchmarks/run_all.py --only accuracy --reuse   # re-render from saved results

Each benchmark runs as its own process and writes JSON into ``--work-dir/results``; this script
turns the JSON into Markdown tables and replaces the text between the matching
``<!-- BEGIN GENERATED: name -->`` and ``<!-- END GENERATED: name -->`` comments. Prose outside
the markers is kept. Each section opens with the date, the hardware and this script's command
line. The accuracy runs are resumable, so rerunning after an interruption continues them.

``--smoke`` shrinks everything to seconds-scale settings to check the script end to end; its
numbers mean nothing, so point ``--doc`` at a scratch copy when using it.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

import bench_accuracy
import bench_dataloader
import bench_training
from common import (
    describe_hardware,
    fit_scaling,
    generated_header,
    hardware,
    markdown_table,
    read_json,
    update_document,
    write_json,
)

logger = logging.getLogger("run_all")

BENCHMARKS_DIR = Path(__file__).resolve().parent
REPOSITORY = BENCHMARKS_DIR.parent
DEFAULT_DOC = REPOSITORY / "docs" / "benchmarks.md"
DEFAULT_PLOT = REPOSITORY / "docs" / "img" / "scaling.png"
SECTIONS = ("augment", "saliency", "dataloader", "training", "detector", "scaling", "accuracy")


def output_name(section: str, mode: str) -> str:
    """Name the JSON file and document section a run writes.

    The quick accuracy table has one seed per method, so it goes to its own section and never
    replaces the three-seed table of the full protocol.
    """
    return "accuracy-quick" if section == "accuracy" and mode == "quick" else section


def benchmark_arguments(section: str, mode: str, args: argparse.Namespace, results: Path) -> List[str]:
    """Return the command line of one benchmark script in ``smoke``, ``quick`` or ``full`` mode.

    The ``augment`` run also produces the ``scaling`` data and plot.
    """
    json_path = str(results / f"{output_name(section, mode)}.json")
    if section == "augment":
        extra = {"smoke": ["--size", "64", "--seconds", "0.2", "--sides", "32", "64", "--ks", "2", "3"],
                 "quick": ["--seconds", "1"], "full": []}[mode]
        plot = args.plot or (results / "scaling.png" if mode == "smoke" else DEFAULT_PLOT)
        return ["bench_augment.py", "--scaling", "--plot", str(plot), "--json", json_path, *extra]
    if section == "saliency":
        extra = {"smoke": ["--size", "64", "--batch-size", "2", "--repeats", "1"],
                 "quick": ["--repeats", "2"], "full": []}[mode]
        return ["bench_saliency.py", "--device", args.device_name, "--json", json_path, *extra]
    if section == "dataloader":
        extra = {"smoke": ["--images", "32", "--size", "64", "--epochs", "1"],
                 "quick": ["--epochs", "1"], "full": []}[mode]
        return ["bench_dataloader.py", "--json", json_path, *extra]
    if section == "training":
        extra = {"smoke": ["--image-size", "64", "--batch-size", "2", "--warmup", "0", "--repeats", "1"],
                 "quick": ["--repeats", "2"], "full": ["--repeats", "5"]}[mode]
        if args.training_run:
            extra += ["--run", str(args.training_run)]
        if mode != "smoke":
            extra += ["--default-run", str(args.work_dir / "default-run")]
        return ["bench_training.py", "--json", json_path, *extra]
    if section == "detector":
        extra = {"smoke": ["--image-size", "64", "--images", "8", "--repeats", "1"],
                 "quick": ["--repeats", "2"], "full": []}[mode]
        return ["bench_detector.py", "--json", json_path, *extra]
    if section == "accuracy":
        extra = {"smoke": ["--image-size", "64", "--steps", "2"], "quick": ["--quick"], "full": []}[mode]
        seeds = args.seeds or ([0] if mode == "smoke" else None)
        configs = args.configs or (["none", "cutswap"] if mode == "smoke" else None)
        if seeds:
            extra += ["--seeds", *(str(seed) for seed in seeds)]
        if configs:
            extra += ["--configs", *configs]
        return ["bench_accuracy.py", "--work-dir", str(args.work_dir), "--no-progress", "--json", json_path,
                *extra]
    raise ValueError(f"unknown section {section!r}; expected one of {', '.join(SECTIONS)}")


def render_augment(result: Mapping[str, Any]) -> str:
    row = result["comparison"]
    return markdown_table(
        ["input", "Rust: images / s", "NumPy + scikit-learn: images / s", "speed-up",
         "Rust: µs per image per level"],
        [[f"{row['size']} x {row['size']} RGB, {row['levels']} levels, k={row['k']}",
          f"{row['rust_images_per_second']:.0f}", f"{row['reference_images_per_second']:.1f}",
          f"{row['speedup']:.0f}x", f"{row['rust_microseconds_per_level']:.0f}"]],
        align="lrrrr",
    )


def render_saliency(result: Mapping[str, Any]) -> str:
    rows = [[row["method"], f"{row['seconds_per_batch']:.3f}", f"{row['images_per_second']:.1f}"]
            for row in result["rows"]]
    settings = (f"{result['backbone']}, {len(result['layers'])} levels ({', '.join(result['layers'])}), "
                f"batch {result['batch_size']}, {result['size']} x {result['size']}, "
                f"device {result['device']}, "
                f"{result['threads']} threads, median of {result['repeats']} batches; "
                f"speed-up {result['speedup']:.2f}x.")
    return settings + "\n\n" + markdown_table(["method", "s / batch", "images / s"], rows, align="lrr")


def render_dataloader(result: Mapping[str, Any]) -> str:
    lines = [bench_dataloader.describe_settings(result) + ".", "", bench_dataloader.format_table(result), ""]
    for row in result["rows"]:
        verdict = "met" if row["goal_met"] else "not met"
        goal = 100 * result["goal"]
        lines.append(f"- {row['num_workers']} workers: CutSwap costs {100 * row['cost']:.1f} % of the "
                     f"weak-only throughput, so the goal of at most {goal:.0f} % is {verdict}. Returning "
                     f"{result['levels']} unchanged copies of the weak view, with the maps moved, already "
                     f"costs {100 * row['copies_cost']:.1f} %.")
    return "\n".join(lines)


def render_training(result: Mapping[str, Any]) -> str:
    step = result["step"]
    note = (f"Median of {step['repeats']} steps after {step['warmup']} warm-up, device {step['device']}, "
            f"{step['threads']} torch threads; data loading not included. The estimate multiplies the "
            "median by the step count and leaves out saliency and scoring.")
    return note + "\n\n" + bench_training.format_table(result)


def render_detector(result: Mapping[str, Any]) -> str:
    environment = result["environment"]
    rows = [[row["path"], row["image_size"], row["batch_size"], f"{row['images_per_s']:.1f}",
             f"{row['ms_per_image']:.1f}"] for row in result["rows"]]
    note = (f"{environment['run']}; {environment['torch_threads']} torch threads, "
            f"1-minute load average {environment['load_average_1min']:.2f} at the end.")
    return note + "\n\n" + markdown_table(["path", "size", "batch", "images / s", "ms / image"], rows,
                                           align="lrrrr")


def render_scaling(result: Mapping[str, Any]) -> str:
    """Tabulate time per image against side for each k, with the fits of time against pixel count."""
    rows = result["scaling"]
    sides = sorted({row["side"] for row in rows})
    table_rows = []
    for k in sorted({row["k"] for row in rows}):
        selected = sorted((row for row in rows if row["k"] == k), key=lambda row: row["side"])
        pixels = [row["side"] ** 2 for row in selected]
        fit = fit_scaling(pixels, [row["total_us"] * 1e-6 for row in selected])
        by_side = {row["side"]: row["total_us"] for row in selected}
        table_rows.append([f"k={k}", *(f"{by_side[side]:.0f}" if side in by_side else "-" for side in sides),
                           f"{fit['slope']:.2f}", f"{fit['log_r2']:.3f}", f"{fit['linear_r2']:.3f}",
                           f"{fit['per_pixel_ns']:.1f}"])
    headers = ["k", *(f"{side} px (µs)" for side in sides), "log-log slope", "log-log R²", "linear R²",
               "ns per pixel"]
    table = markdown_table(headers, table_rows, align="l" + "r" * (len(headers) - 1))
    return ("Time per image for one level (k-means + sampling + swap, Rust). A log-log slope near 1 and a "
            "linear R² near 1 mean the time grows linearly in the pixel count.\n\n" + table)


def render_accuracy(result: Mapping[str, Any]) -> str:
    return result["settings"] + ".\n\n" + bench_accuracy.format_table(result["rows"])


RENDERERS: Dict[str, Callable[[Mapping[str, Any]], str]] = {
    "augment": render_augment,
    "saliency": render_saliency,
    "dataloader": render_dataloader,
    "training": render_training,
    "detector": render_detector,
    "scaling": render_scaling,
    "accuracy": render_accuracy,
}


def render_environment(info: Mapping[str, Any], command: str, date: str, mode: str) -> str:
    rows = [["date", date], ["mode", mode], ["command", f"`{command}`"], ["CPU", info["cpu"]],
            ["cores", info["cores"]], ["GPU", info["gpu"] or "none"], ["torch", info["torch"]],
            ["torch threads", info["torch_threads"]], ["Python", info["python"]], ["system", info["system"]]]
    return markdown_table(["", "last run_all.py run"], rows)


def render_section(section: str, path: Path, info: Mapping[str, Any], command: str, mode: str) -> str:
    """Render one section from its JSON, opened by the date, hardware and command that produced it.

    The date is the JSON file's modification time, and the command and mode come from the
    ``.meta.json`` file written beside it, so a section rendered with --reuse is not dated today.
    """
    result = read_json(path)
    meta_path = path.with_name(path.stem + ".meta.json")
    if meta_path.is_file():
        meta = read_json(meta_path)
        command, mode = meta["command"], meta["mode"]
    measured = result.get("hardware")
    if not isinstance(measured, dict) or "cpu" not in measured:
        measured = info
    date = datetime.fromtimestamp(path.stat().st_mtime, timezone.utc).strftime("%Y-%m-%d")
    note = ""
    if mode == "smoke":
        note = "Smoke settings: these numbers are meaningless."
    elif section == "accuracy" and mode == "quick":
        note = "QUICK protocol: one seed per method, where the full protocol runs three."
    return generated_header(measured, command, date, note) + "\n\n" + RENDERERS[section](result)


def run_benchmark(arguments: Sequence[str]) -> float:
    """Run one benchmark script with this interpreter; return its wall time in seconds."""
    command = [sys.executable, str(BENCHMARKS_DIR / arguments[0]), *arguments[1:]]
    print(f"\n$ {shlex.join(command)}", flush=True)
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=REPOSITORY)
    return time.perf_counter() - start


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true",
                      help="reduced settings: fewer repeats and one accuracy seed (seed 0), written to the "
                           "accuracy-quick section")
    mode.add_argument("--smoke", action="store_true", help="seconds-scale settings to check this script; "
                                                           "numbers are meaningless")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS),
                        help="sections to run and rewrite (default: all)")
    parser.add_argument("--reuse", action="store_true",
                        help="render a section from its saved JSON when it exists instead of rerunning it")
    parser.add_argument("--doc", type=Path, default=DEFAULT_DOC,
                        help=f"Markdown file to rewrite (default {DEFAULT_DOC})")
    parser.add_argument("--no-doc", action="store_true", help="print the sections without rewriting any file")
    parser.add_argument("--work-dir", type=Path, default=bench_accuracy.DEFAULT_WORK_DIR,
                        help="accuracy run directories, saliency cache and results/ JSON "
                             f"(default {bench_accuracy.DEFAULT_WORK_DIR})")
    parser.add_argument("--plot", type=Path,
                        help=f"scaling plot PNG (default {DEFAULT_PLOT}; smoke: in results/)")
    parser.add_argument("--seeds", type=int, nargs="+", help="accuracy seeds (default: the mode's)")
    parser.add_argument("--configs", nargs="+", choices=list(bench_accuracy.METHODS),
                        help="accuracy methods (default: all, smoke: none cutswap)")
    parser.add_argument("--training-run", type=Path, help="finished run directory whose timings the training "
                                                          "section also reports")
    parser.add_argument("--device", dest="device_name", default="cpu",
                        help="device of the saliency benchmark (default cpu)")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    mode = "full"
    if args.smoke:
        mode = "smoke"
    elif args.quick:
        mode = "quick"
    command = shlex.join(["python", "benchmarks/run_all.py", *(sys.argv[1:] if argv is None else argv)])
    results = args.work_dir / "results"
    results.mkdir(parents=True, exist_ok=True)
    if not args.no_doc and not args.doc.is_file():
        raise SystemExit(f"document {args.doc} not found; pass --doc with the benchmarks page or --no-doc")

    info = hardware()
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    print(f"{mode} run on {describe_hardware(info)}", flush=True)
    # Each document section maps to the benchmark that produces it. The scaling data come from the
    # augmentation benchmark's run.
    sources = {section: "augment" if section == "scaling" else section for section in args.only}
    walls: Dict[str, float] = {}
    failed: List[str] = []
    for benchmark in dict.fromkeys(sources.values()):
        path = results / f"{output_name(benchmark, mode)}.json"
        if args.reuse and path.is_file():
            logger.info("reusing %s", path)
            continue
        try:
            walls[benchmark] = run_benchmark(benchmark_arguments(benchmark, mode, args, results))
            write_json(path.with_name(path.stem + ".meta.json"), {"command": command, "mode": mode})
        except subprocess.CalledProcessError as error:
            logger.error("benchmark %s failed with exit status %d; its sections are left as they were",
                         benchmark, error.returncode)
            failed.append(benchmark)

    sections: Dict[str, str] = {}
    for section, benchmark in sources.items():
        if benchmark not in failed:
            path = results / f"{output_name(benchmark, mode)}.json"
            sections[output_name(section, mode)] = render_section(section, path, info, command, mode)
    sections["environment"] = render_environment(info, command, date, mode)

    for name, text in sections.items():
        print(f"\n## {name}\n\n{text}")
    for source, seconds in walls.items():
        print(f"{source}: {seconds:.0f} s")
    print(f"total benchmark time: {sum(walls.values()):.0f} s")
    if not args.no_doc:
        update_document(args.doc, sections)
        print(f"rewrote {', '.join(sections)} in {args.doc}")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
