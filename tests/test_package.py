"""Packaging rules: import weight, optional-dependency errors, the command line and array files."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import labelrefine
from labelrefine._optional import import_optional
from labelrefine.cli import main
from labelrefine.io import load_array, save_array


def test_import_does_not_load_torch_faiss_or_infomap():
    code = (
        "import sys, labelrefine; from labelrefine import refine, cluster_report, knn, infomap_cluster; "
        "print(sorted(m for m in ('torch', 'faiss', 'infomap', 'torchvision') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_public_names_resolve():
    for name in labelrefine.__all__:
        assert getattr(labelrefine, name) is not None
    eager = {"RefineResult", "refine", "refine_with_pivots", "relabel", "__version__"}
    assert set(labelrefine.__all__) == set(labelrefine._EXPORTS) | eager
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        labelrefine.nope  # noqa: B018


def test_refine_stays_the_function_after_its_module_is_imported():
    code = "import labelrefine.refine, labelrefine.cluster; from labelrefine import refine; print(callable(refine))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "True"


def test_missing_optional_dependency_names_the_extra():
    with pytest.raises(ModuleNotFoundError, match=r'pip install "labelrefine\[no_such_module\]"'):
        import_optional("no_such_module")


def test_array_files_round_trip(tmp_path):
    labels = np.array([3, -1, 0, 7])
    for suffix in (".npy", ".csv", ".txt"):
        path = save_array(tmp_path / f"labels{suffix}", labels)
        np.testing.assert_array_equal(load_array(path, "--labels"), labels)
    (tmp_path / "cams.csv").write_text("north\nsouth\nnorth\n")
    assert load_array(tmp_path / "cams.csv", "--cams").tolist() == ["north", "south", "north"]


def test_array_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="--global: no such file: .*missing.npy"):
        load_array(tmp_path / "missing.npy", "--global")
    with pytest.raises(ValueError, match="--global: unsupported file type '.json'"):
        load_array(tmp_path / "labels.json", "--global")


def test_cli_demo_prints_the_table_and_refinement_raises_precision(capsys, tmp_path):
    pytest.importorskip("infomap")
    assert main(["demo", "--ids", "80", "--cams", "4", "--plot", str(tmp_path / "demo.png")]) == 0
    out = capsys.readouterr().out
    rows = {line.split("|")[1].strip(): line.split("|") for line in out.splitlines() if line.startswith("| ")}
    assert {"global", "local", "refined"} <= set(rows)
    precision = {name: float(rows[name][3]) for name in ("global", "refined")}
    assert precision["refined"] > precision["global"]
    assert (tmp_path / "demo.png").stat().st_size > 0


def test_cli_refine_and_report_round_trip(tmp_path, capsys):
    from labelrefine import cluster_report, refine
    from labelrefine.synthetic import make_camera_biased

    data = make_camera_biased(n_ids=20, n_cams=3, rng=0)
    merged = data.pids // 2  # two identities per global cluster: refinement has something to cut
    np.save(tmp_path / "g.npy", merged)
    np.save(tmp_path / "l.npy", data.local_labels)
    np.savetxt(tmp_path / "c.csv", data.cams, fmt="%d")
    np.save(tmp_path / "f.npy", data.feats)
    np.save(tmp_path / "t.npy", data.pids)
    args = ["refine", "--global", str(tmp_path / "g.npy"), "--local", str(tmp_path / "l.npy")]
    args += ["--cams", str(tmp_path / "c.csv"), "--feats", str(tmp_path / "f.npy"), "-o", str(tmp_path / "r.npy")]
    assert main(args) == 0
    refined = np.load(tmp_path / "r.npy")
    expected = refine(merged, data.local_labels, data.cams, data.feats).labels
    assert (expected != merged).any()  # the library call does refine these labels...
    np.testing.assert_array_equal(refined, expected)  # ...and the command writes exactly its result
    capsys.readouterr()
    assert main(["report", "--true", str(tmp_path / "t.npy"), "--pred", str(tmp_path / "r.npy")]) == 0
    rows = dict(line.strip("| ").split(" | ") for line in capsys.readouterr().out.splitlines()[2:])
    report = cluster_report(data.pids, expected)
    assert float(rows["pairwise_precision"]) == pytest.approx(report.pairwise_precision, abs=1e-4)
    assert int(rows["n_clusters"]) == report.n_clusters


def test_cli_errors_are_reported_not_raised(tmp_path, capsys):
    np.save(tmp_path / "g.npy", np.zeros(5, dtype=int))
    np.save(tmp_path / "l.npy", np.zeros(4, dtype=int))
    args = ["refine", "--global", str(tmp_path / "g.npy"), "--local", str(tmp_path / "l.npy"), "--cams"]
    args += [str(tmp_path / "g.npy"), "--feats", str(tmp_path / "nope.npy"), "-o", str(tmp_path / "o.npy")]
    assert main(args) == 2
    assert "--feats: no such file" in capsys.readouterr().err
    args[-3] = str(tmp_path / "g.npy")
    args[args.index("--feats")] = "--knn-indices"
    assert main(args) == 2
    assert "--knn-indices and --knn-distances must be given together" in capsys.readouterr().err
