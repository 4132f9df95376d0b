"""Helpers shared by the benchmark scripts: table formatting, statistics, hardware and doc rewriting.

docs/benchmarks.md keeps hand-written prose outside marker comments and generated tables inside
them::

    <!-- BEGIN GENERATED: accuracy -->
    ...replaced by benchmarks/run_all.py...
    <!-- END GENERATED: accuracy -->

`replace_generated` swaps the text between one pair of markers and leaves everything else as it is.
"""

from __future__ import annotations

import json
import math
import os
import platform
import re
import statistics
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence

import numpy as np


def begin_marker(name: str) -> str:
    return f"<!-- BEGIN GENERATED: {name} -->"


def end_marker(name: str) -> str:
    return f"<!-- END GENERATED: {name} -->"


def replace_generated(text: str, name: str, content: str) -> str:
    """Return `text` with the lines between the `name` markers replaced by `content`.

    Raises:
        ValueError: a marker of `name` is missing, appears more than once, or the end marker comes
            before the begin marker.
    """
    begin, end = begin_marker(name), end_marker(name)
    for marker in (begin, end):
        count = text.count(marker)
        if count != 1:
            state = "missing" if count == 0 else f"present {count} times"
            raise ValueError(
                f"marker {marker!r} is {state} in the document; add exactly one {begin!r} and one "
                f"{end!r} line where the generated {name!r} section belongs"
            )
    start = text.index(begin) + len(begin)
    stop = text.index(end)
    if stop < start:
        raise ValueError(f"marker {end!r} comes before {begin!r}; put the begin marker first")
    body = content.strip("\n")
    return text[:start] + "\n" + (body + "\n" if body else "") + text[stop:]


def update_document(path: Path, sections: Mapping[str, str]) -> None:
    """Rewrite the generated sections of a Markdown file in place (atomically).

    Every section is checked before the file is written, so a missing marker leaves the file as
    it was.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"document {path} not found; pass --doc with the benchmarks page to rewrite")
    text = path.read_text(encoding="utf-8")
    for name, content in sections.items():
        text = replace_generated(text, name, content)
    atomic_write_text(path, text)


def atomic_write_text(path: Path, text: str) -> None:
    """Write text to a temporary file beside `path`, then rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def write_json(path: Path, data: Any) -> None:
    """Write `data` as indented JSON, atomically."""
    atomic_write_text(Path(path), json.dumps(data, indent=2, sort_keys=True) + "\n")


def save_results(path: Path, result: Dict[str, Any]) -> None:
    """Stamp `result` with today's UTC date and this machine's hardware, then write it as JSON, atomically.

    Every benchmark saves through here, so run_all.py can head each section with when and where
    it was measured.
    """
    from datetime import datetime, timezone

    result["date"] = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    result["hardware"] = hardware()
    write_json(path, result)
    print(f"results written to {path}")


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def mean_std(values: Sequence[float], digits: int = 3) -> str:
    """Format values as ``mean ± std`` (sample standard deviation, n - 1).

    One value is printed alone, because its spread is unknown; no values give ``n/a``.
    """
    values = [float(value) for value in values if value is not None and not math.isnan(float(value))]
    if not values:
        return "n/a"
    mean = statistics.fmean(values)
    if len(values) == 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], align: Optional[str] = None) -> str:
    """Return a GitHub Markdown table; `align` has one letter per column, ``l`` or ``r``."""
    align = align or "l" * len(headers)
    if len(align) != len(headers):
        raise ValueError(f"align has {len(align)} letters for {len(headers)} columns")
    separator = ["---:" if letter == "r" else "---" for letter in align]
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(separator) + " |"]
    for row in rows:
        if len(row) != len(headers):
            raise ValueError(f"row {list(row)} has {len(row)} cells for {len(headers)} columns")
        lines.append("| " + " | ".join(str(cell) for cell in row) + " |")
    return "\n".join(lines)


def cpu_model() -> str:
    """Return the CPU model name from /proc/cpuinfo, or the platform's description elsewhere."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.lower().startswith("model name"):
                return re.sub(r"\s+", " ", line.split(":", 1)[1]).strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def hardware() -> Dict[str, Any]:
    """Describe the machine: CPU model, cores usable by this process, torch version and GPU."""
    import torch

    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 0
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "cpu": cpu_model(),
        "cores": cores,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "gpu": gpu,
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
    }


def describe_hardware(info: Mapping[str, Any]) -> str:
    """Return a one-line description of `hardware()` output."""
    gpu = info.get("gpu") or "no GPU"
    return f"{info['cpu']}, {info['cores']} cores, {gpu}, torch {info['torch']}, Python {info['python']}"


def fit_scaling(pixels: Sequence[float], seconds: Sequence[float]) -> Dict[str, float]:
    """Fit how time grows with the pixel count.

    Returns:
        A dict with ``slope`` and ``log_r2``, the slope and R² of the least-squares line of
        log(time) against log(pixels), where a slope of 1 means linear growth. ``linear_r2`` is
        the R² of the least-squares line of time against pixels, and ``per_pixel_ns`` is that
        line's slope in nanoseconds per pixel.
    """
    x = np.asarray(pixels, dtype=np.float64)
    y = np.asarray(seconds, dtype=np.float64)
    if x.shape != y.shape or x.size < 2:
        raise ValueError(
            f"need at least two (pixels, seconds) pairs of equal length, got {x.size} and {y.size}"
        )
    if np.any(x <= 0) or np.any(y <= 0):
        raise ValueError("pixels and seconds must be positive for the log-log fit")
    slope, log_r2 = _least_squares(np.log(x), np.log(y))
    per_pixel, linear_r2 = _least_squares(x, y)
    return {"slope": slope, "log_r2": log_r2, "linear_r2": linear_r2, "per_pixel_ns": per_pixel * 1e9}


def _least_squares(x: np.ndarray, y: np.ndarray) -> tuple:
    """Return (slope, R²) of the least-squares line y = a + b x."""
    slope, intercept = np.polyfit(x, y, 1)
    residual = y - (intercept + slope * x)
    total = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - float((residual**2).sum()) / total if total > 0 else 1.0
    return float(slope), r2


def generated_header(info: Mapping[str, Any], command: str, date: str, note: str = "") -> str:
    """Return the italic line that opens every generated section: date, hardware and command."""
    line = f"_Measured {date} on {describe_hardware(info)} with `{command}`._"
    return line + (f" {note}" if note else "")

