"""``modelreg sweep --plot``: one PNG a person can read at a glance.

One row per experiment. Left: where each GPU's memory goes for the best layouts
(weights vs KV room, with the concurrent sequences that room holds). Right, for
disaggregated experiments: every replica's P→D transfer time against its
sequences per GPU, so the best trade-off sits top-left. matplotlib is an optional
extra and is imported only here.
"""

from __future__ import annotations

import io
from typing import Any

from registry.errors import UsageError
from registry.output import write_atomic

MAX_BARS = 12


def require_matplotlib() -> None:
    """Fail before any work when the plot cannot be drawn."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UsageError("--plot needs matplotlib: pip install 'modelreg[plot]'") from None


def plot_results(results: list[Any], path: str) -> None:
    """Draw the PNG in memory, then write it atomically: a failed run leaves no partial file.

    The format is PNG whatever ``path`` ends with, so the file is exactly the one named.
    """
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = max(1, len(results))
    fig, axes = plt.subplots(rows, 2, figsize=(15, 4.6 * rows), squeeze=False)
    for row, result in zip(axes, results):
        _memory_panel(row[0], result)
        _transfer_panel(row[1], result)
    fig.tight_layout()
    image = io.BytesIO()
    fig.savefig(image, format="png", dpi=110)
    plt.close(fig)
    write_atomic(path, image.getvalue(), flag="--plot")


def _memory_panel(ax: Any, result: Any) -> None:
    exp = result.experiment
    if exp.serving_mode == "agg":
        figures = result.layouts[:MAX_BARS]
    else:
        figures = [f for f in result.layouts if f.layout.role == "decode"][: MAX_BARS // 2]
        figures += [f for f in result.layouts if f.layout.role == "prefill"][: MAX_BARS // 2]
    systems = exp.system_name
    if exp.serving_mode == "disagg" and exp.decode_system_name != exp.system_name:
        systems = f"{exp.system_name} (prefill) / {exp.decode_system_name} (decode)"
    ax.set_title(f"{exp.name}: {result.model} on {systems} — memory per GPU", fontsize=10)
    if not figures:
        ax.text(
            0.5,
            0.5,
            f"no layout fits\n({len(result.dropped)} dropped: modelreg sweep --explain {exp.name})",
            ha="center",
            va="center",
            transform=ax.transAxes,
        )
        ax.set_axis_off()
        return
    labels = [f"{f.layout.role} {f.layout.label}" for f in figures]
    weights = [f.weights_bytes_per_gpu / 2**30 for f in figures]
    free = [f.free_bytes_per_gpu / 2**30 for f in figures]
    positions = range(len(figures))
    ax.barh(positions, weights, color="#8c8c8c", label="weights")
    ax.barh(positions, free, left=weights, color="#4c9be8", label="KV cache room")
    for y, f in zip(positions, figures):
        ax.text(
            f.usable_bytes_per_gpu / 2**30,
            y,
            f"  {f.concurrent_sequences} seqs ({f.sequences_per_gpu:.1f}/GPU)",
            va="center",
            fontsize=8,
        )
    ax.set_yticks(list(positions), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("GiB per GPU (usable memory after the runtime reserve)")
    ax.set_xlim(0, max(f.usable_bytes_per_gpu for f in figures) / 2**30 * 1.45)
    ax.legend(loc="lower right", fontsize=8)


def _transfer_panel(ax: Any, result: Any) -> None:
    exp = result.experiment
    if exp.serving_mode == "agg":
        ax.text(
            0.5,
            0.5,
            "aggregated serving: no prefill→decode transfer",
            ha="center",
            va="center",
            transform=ax.transAxes,
        )
        ax.set_axis_off()
        return
    ax.set_title(f"{exp.name}: P→D KV transfer per request (isl {exp.isl})", fontsize=10)
    if not result.replicas:
        ax.text(
            0.5,
            0.5,
            f"no replica can be formed: modelreg sweep --explain {exp.name}",
            ha="center",
            va="center",
            transform=ax.transAxes,
        )
        ax.set_axis_off()
        return
    for link, color in (("nvlink", "#2a9d4b"), ("inter-node", "#e07b39")):
        chosen = [r for r in result.replicas if r.link == link]
        if chosen:
            ax.scatter(
                [r.transfer_ms for r in chosen],
                [r.sequences_per_gpu for r in chosen],
                s=22,
                alpha=0.7,
                color=color,
                label=f"{link} ({chosen[0].link_gbps:g} GB/s per GPU)",
            )
    best = result.replicas[0]
    shape = best.shape
    ax.annotate(
        f"best: {shape.prefill_workers}P{shape.decode_workers}D\n"
        f"P {shape.prefill.label} / D {shape.decode.label}",
        (best.transfer_ms, best.sequences_per_gpu),
        xytext=(-12, -34),
        ha="right",
        textcoords="offset points",
        fontsize=8,
        arrowprops={"arrowstyle": "->"},
    )
    ax.set_xlabel("transfer time per request (ms)")
    ax.set_ylabel("concurrent sequences per GPU")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
