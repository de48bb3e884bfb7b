"""Draw the figures of the documentation with the library, into docs/img/.

Usage: python docs/make_figures.py [--out DIR]

Needs the ``plot`` and ``infomap`` extras (matplotlib, infomap). Everything is seeded, so a rerun
draws the same pictures (up to the platform's floating point):

- ``embedding.png``: camera-biased synthetic features in 2-D (t-SNE), coloured by camera, before
  and after removing each camera's mean feature, with the camera / identity make-up of every
  sample's nearest neighbours;
- ``cluster-quality.png``: cluster quality of global, local and refined labels, drawn by
  ``labelrefine demo --plot`` (the paper's Fig. 4 on synthetic data);
- ``schedules.png``: the decay schedules of the discard probability p (paper Table IV);
- ``refine-quality.png``: impurities removed against discard precision of every pivot rule in
  every cell, drawn by ``benchmarks/refine_quality.py`` (3 seeds, the study the docs quote; about
  7 minutes; ``--skip-study`` leaves it as it is).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import subprocess
import sys
from pathlib import Path

import numpy as np

from labelrefine.cli import main as labelrefine_cli
from labelrefine.neighbors import knn
from labelrefine.schedules import SCHEDULES, cosine
from labelrefine.synthetic import make_camera_biased

HERE = Path(__file__).resolve().parent


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def neighbour_makeup(feats: np.ndarray, pids: np.ndarray, cams: np.ndarray, k: int = 10) -> tuple[float, float]:
    """Fraction of each sample's k nearest other samples from its own camera, and with its own identity."""
    indices, _ = knn(feats, k)
    others = indices[:, 1:]
    return float((cams[others] == cams[:, None]).mean()), float((pids[others] == pids[:, None]).mean())


def align_cameras(feats: np.ndarray, cams: np.ndarray) -> np.ndarray:
    """Subtract each camera's mean feature and renormalise (a feature-space proxy for camera alignment)."""
    centred = feats.astype(np.float64).copy()
    for cam in np.unique(cams):  # a handful of cameras, each step vectorised
        centred[cams == cam] -= centred[cams == cam].mean(axis=0)
    return centred / np.linalg.norm(centred, axis=1, keepdims=True)


def embedding_figure(path: Path) -> None:
    """t-SNE of camera-biased features before and after per-camera centring, coloured by camera."""
    from sklearn.manifold import TSNE

    plt = _pyplot()
    data = make_camera_biased(n_ids=60, n_cams=4, rng=3)
    views = {
        "raw features (camera-biased)": data.feats,
        "after removing each camera's mean": align_cameras(data.feats, data.cams),
    }
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.6))
    colours = plt.get_cmap("tab10")
    for ax, (title, feats) in zip(axes, views.items(), strict=True):
        xy = TSNE(n_components=2, init="pca", perplexity=30, random_state=0).fit_transform(feats)
        for cam in np.unique(data.cams):
            mask = data.cams == cam
            ax.scatter(xy[mask, 0], xy[mask, 1], s=9, color=colours(int(cam)), label=f"camera {cam}", alpha=0.8)
        same_cam, same_id = neighbour_makeup(feats, data.pids, data.cams)
        ax.set_title(f"{title}\n10-NN: {same_cam:.0%} same camera, {same_id:.0%} same identity", fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0].legend(loc="best", fontsize=8, markerscale=2)
    fig.suptitle(
        f"{len(data)} synthetic images of {int(data.pids.max()) + 1} identities in 4 cameras (t-SNE)", fontsize=11
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def cluster_quality_figure(path: Path) -> None:
    """The bars of ``labelrefine demo --plot`` (its table goes to stdout)."""
    with contextlib.redirect_stdout(io.StringIO()) as table:
        status = labelrefine_cli(["demo", "--plot", str(path)])
    if status != 0:
        raise RuntimeError(f"labelrefine demo failed with status {status}")
    print(table.getvalue())


def schedules_figure(path: Path, epochs: int = 50) -> None:
    """p over epochs for each schedule of Table IV, and the authors' cosine with span 3."""
    plt = _pyplot()
    epoch = np.arange(epochs)
    fig, ax = plt.subplots(figsize=(8, 3.6))
    for name, schedule in SCHEDULES.items():
        ax.plot(epoch, [schedule(int(e), epochs) for e in epoch], label=name)
    authors = [cosine(int(e), epochs, span=3.0) for e in epoch]
    ax.plot(epoch, authors, "k--", label="cosine, span=3.0 (commented out in the authors' code)")
    ax.set_xlabel(f"epoch (of {epochs})")
    ax.set_ylabel("discard probability p")
    ax.set_ylim(-0.03, 1.05)
    ax.set_title("Decay schedules of p (labelrefine.schedules)", fontsize=11)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def refine_quality_figure(path: Path) -> None:
    """The pivot-rule study of docs/pivot-rules.md; its tables go to stdout."""
    script = HERE.parent / "benchmarks" / "refine_quality.py"
    subprocess.run([sys.executable, str(script), "--figure", str(path)], check=True, cwd=script.parent)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "img", help="output folder (default docs/img)")
    parser.add_argument("--skip-study", action="store_true", help="do not rerun the one-minute pivot-rule study")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    embedding_figure(args.out / "embedding.png")
    cluster_quality_figure(args.out / "cluster-quality.png")
    schedules_figure(args.out / "schedules.png")
    if not args.skip_study:
        refine_quality_figure((args.out / "refine-quality.png").resolve())
    print(f"Figures written to {args.out}")


if __name__ == "__main__":
    main()
