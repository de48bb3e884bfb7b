"""The paper's Fig. 6 curves from ``log.jsonl``: discard ratio, number of clusters and mAP over epochs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..._optional import import_optional
from .runtime import read_log

__all__ = ["plot_runs"]

_PANELS = (
    ("discard_ratio", "discarded samples (%)", 100.0),
    ("n_clusters", "clusters", 1.0),
    ("mAP", "mAP (%)", 100.0),
)


def plot_runs(run_dirs: Sequence[str | Path], output: str | Path | None = None) -> Path:
    """Draw Fig. 6 of the paper (discard ratio, clusters, mAP per epoch) for one or more stage-2 runs.

    Parameters
    ----------
    run_dirs : sequence of paths
        Stage-2 run folders (each with a ``log.jsonl``); several runs are overlaid, labelled by
        folder name (e.g. the ablations of Table III).
    output : path, optional
        PNG file; default ``<first run>/plots/fig6.png``.

    Returns
    -------
    pathlib.Path
        The PNG written.

    Raises
    ------
    FileNotFoundError
        A run folder without ``log.jsonl``.
    ValueError
        A log without stage-2 records.

    Examples
    --------
    >>> import json, pathlib, tempfile
    >>> run = pathlib.Path(tempfile.mkdtemp())
    >>> rows = [{"stage": "inter", "epoch": e, "discard_ratio": 0.1 / (e + 1), "n_clusters": 50 + e,
    ...          "mAP": 0.3 + e / 10} for e in range(3)]
    >>> _ = (run / "log.jsonl").write_text("".join(json.dumps(r) + "\\n" for r in rows))
    >>> plot_runs([run]).name
    'fig6.png'
    """
    if not run_dirs:
        raise ValueError("run_dirs must name at least one run folder")
    Figure = import_optional("matplotlib.figure").Figure  # no pyplot: no global state, no GUI backend
    runs = []
    for run_dir in run_dirs:
        path = Path(run_dir)
        if not (path / "log.jsonl").is_file():
            raise FileNotFoundError(f"run folder {str(path)!r} has no log.jsonl")
        records = [r for r in read_log(path) if r.get("stage") == "inter"]
        if not records:
            raise ValueError(f"log.jsonl in {str(path)!r} has no stage-2 (inter) records to plot")
        runs.append((path.name or str(path), records))
    fig = Figure(figsize=(4.2 * len(_PANELS), 3.4))
    axes = fig.subplots(1, len(_PANELS))
    for ax, (key, title, scale) in zip(axes, _PANELS, strict=True):
        for name, records in runs:
            points = [(r["epoch"], scale * r[key]) for r in records if r.get(key) is not None]
            if points:
                xs, ys = zip(*points, strict=True)
                ax.plot(xs, ys, marker="o", markersize=3, label=name)
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    if len(runs) > 1:
        axes[-1].legend(fontsize=8)
    fig.tight_layout()
    out = Path(output) if output is not None else Path(run_dirs[0]) / "plots" / "fig6.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    return out
