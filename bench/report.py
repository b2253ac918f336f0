"""Figures into a table for people and JSON for tools; the machine they were measured on."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence


def add_compare_and_profile(parser: argparse.ArgumentParser, *, profiles: str) -> None:
    """`--compare DIR` (another checkout's code, in the same run) and `--profile DIR` (py-spy)."""
    parser.add_argument(
        "--compare",
        type=Path,
        metavar="DIR",
        help="also measure the API from another checkout (e.g. `git worktree add DIR main`)",
    )
    parser.add_argument("--profile", metavar="DIR", help=f"also record {profiles} there")
    parser.add_argument(
        "--profile-format", default="flamegraph", choices=("flamegraph", "raw", "speedscope")
    )


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of unsorted values; None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, round(q / 100 * len(ordered) + 0.5 - 1e-9))
    return ordered[min(rank, len(ordered)) - 1]


def ms_summary(seconds: Sequence[float], qs: Sequence[float] = (50, 95, 99)) -> dict[str, Any]:
    """p50/p95/p99/max in milliseconds, rounded for reading."""
    out: dict[str, Any] = {"n": len(seconds)}
    for q in qs:
        value = percentile(seconds, q)
        out[f"p{q:g}"] = None if value is None else round(value * 1000, 1)
    out["max"] = round(max(seconds) * 1000, 1) if seconds else None
    return out


def machine() -> dict[str, Any]:
    model = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        redis_version = subprocess.run(
            ["redis-server", "--version"], capture_output=True, text=True, check=False, timeout=5
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        redis_version = "unknown"
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "redis_server": redis_version,
    }


def write_json(results: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")


def fmt_rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}/s"


def fmt_ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.1f} ms"


def ms_per_op(cores: dict[str, float], rate: float | None) -> dict[str, float]:
    """CPU milliseconds each service process spent per operation: the cost to optimize."""
    if not rate:
        return {}
    return {k: round(v * 1000 / rate, 2) for k, v in cores.items() if k in {"api", "worker"}}


def fmt_cores(result: dict[str, Any]) -> str:
    """`api 0.67 (7.1 ms/op), worker 0.94 (10.0 ms/op), redis 0.10, bench 0.15`."""
    per_op = result.get("cpu_ms_per_op", {})
    return ", ".join(
        f"{name} {value:.2f}" + (f" ({per_op[name]:.1f} ms/op)" if name in per_op else "")
        for name, value in result.get("cpu_cores", {}).items()
    )


def table(rows: Sequence[tuple[str, str, str, str]]) -> str:
    """Columns: figure, value, target (with its verdict), CPU cores used while measuring."""
    header = ("figure", "value", "target", "CPU cores used while measuring")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(4)]
    line = "  ".join("-" * w for w in widths)
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)), line]
    out += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(s.rstrip() for s in out)
