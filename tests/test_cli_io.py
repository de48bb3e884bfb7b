"""The `labelrefine` command's file handling: every unclear or silent case gets one line naming the argument."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from labelrefine.cli import main
from labelrefine.io import load_array, save_array


def test_npz_single_array_and_key_syntax(tmp_path):
    np.savez(tmp_path / "one.npz", labels=np.arange(4))
    np.testing.assert_array_equal(load_array(tmp_path / "one.npz", "--global"), np.arange(4))
    # the recipe's own stage-1 file holds labels, keys and cams
    np.savez(tmp_path / "local_labels.npz", labels=np.arange(3), keys=np.array(["a", "b", "c"]), cams=np.zeros(3))
    np.testing.assert_array_equal(load_array(f"{tmp_path / 'local_labels.npz'}:labels", "--local"), np.arange(3))
    with pytest.raises(
        ValueError,
        match=r"--local: .*local_labels.npz is a .npz archive holding 'cams', 'keys', "
        r"'labels'; pick one with .*local_labels.npz:cams",
    ):
        load_array(tmp_path / "local_labels.npz", "--local")
    with pytest.raises(ValueError, match=r"--local: .* has no array 'pids'; it holds 'cams', 'keys', 'labels'"):
        load_array(f"{tmp_path / 'local_labels.npz'}:pids", "--local")
    with pytest.raises(ValueError, match=r"--cams: a key \(':x'\) only selects an array of a .npz or .pt file"):
        load_array(f"{tmp_path / 'one.npz'}:x".replace(".npz", ".npy"), "--cams")


def test_pt_tensors(tmp_path):
    torch = pytest.importorskip("torch")
    torch.save(torch.arange(5), tmp_path / "l.pt")
    torch.save({"labels": torch.arange(3), "feats": torch.ones(3, 2, dtype=torch.bfloat16)}, tmp_path / "d.pt")
    np.testing.assert_array_equal(load_array(tmp_path / "l.pt", "--global"), np.arange(5))
    assert load_array(f"{tmp_path / 'd.pt'}:feats", "--feats").dtype == np.float32
    with pytest.raises(ValueError, match=r"--feats: .*d.pt is a .pt dict holding 'feats', 'labels'; pick one"):
        load_array(tmp_path / "d.pt", "--feats")
    torch.save({"x": [1, 2]}, tmp_path / "list.pt")
    with pytest.raises(ValueError, match=r"--feats: .*list.pt must hold a tensor .*got list"):
        load_array(tmp_path / "list.pt", "--feats")


def test_pt_without_torch_names_the_extra(tmp_path, monkeypatch):
    (tmp_path / "l.pt").write_bytes(b"not used")
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ModuleNotFoundError, match=r'pip install "labelrefine\[torch\]"'):
        load_array(tmp_path / "l.pt", "--global")


def test_csv_with_a_header_and_strings(tmp_path):
    (tmp_path / "h.csv").write_text("label\n3\n-1\n4\n")
    np.testing.assert_array_equal(load_array(tmp_path / "h.csv", "--global"), [3, -1, 4])
    (tmp_path / "cams.csv").write_text("c1\nc2\nc1\n")  # strings stay strings (no header to drop)
    assert load_array(tmp_path / "cams.csv", "--cams").tolist() == ["c1", "c2", "c1"]


@pytest.mark.parametrize(
    ("write", "match"),
    [
        (lambda p: p.write_text(""), r"--global: .*e.csv holds no values \(an empty file\)"),
        (lambda p: np.save(p.with_suffix(".npy"), np.zeros(0)), r"--global: .*e.npy holds no values"),
        (
            lambda p: np.save(p.with_suffix(".npy"), np.array([{"a": 1}], dtype=object)),
            r"holds pickled data \(an object array, or not a numpy file at all\), which labelrefine never loads",
        ),
        (lambda p: p.with_suffix(".npz").write_bytes(b"PK\x03\x04 truncated"), r"truncated or not a .npz file"),
        (lambda p: p.with_suffix(".npy").write_bytes(b"\x93NUMPY\x01\x00v"), r"--global: cannot read .*e.npy"),
    ],
)
def test_unreadable_files_get_one_message(tmp_path, write, match, recwarn):
    write(tmp_path / "e.csv")
    path = next(tmp_path.iterdir())
    with pytest.raises(ValueError, match=match) as info:
        load_array(path, "--global")
    assert "allow_pickle" not in str(info.value)
    assert not [w for w in recwarn if "loadtxt" in str(w.message)]  # no numpy warning on empty input


def test_directories_as_input_or_output(tmp_path):
    (tmp_path / "d.npy").mkdir()
    with pytest.raises(ValueError, match=r"--global: .*d.npy is a directory, expected a file"):
        load_array(tmp_path / "d.npy", "--global")
    with pytest.raises(ValueError, match=r"--output: .* is a directory; give a file name such as"):
        save_array(tmp_path, np.arange(3), "--output")


def test_report_on_empty_files_fails(tmp_path, capsys):
    (tmp_path / "t.csv").write_text("")
    np.save(tmp_path / "p.npy", np.zeros(0, dtype=int))
    assert main(["report", "--true", str(tmp_path / "t.csv"), "--pred", str(tmp_path / "p.npy")]) == 2
    err = capsys.readouterr().err
    assert "labelrefine report: error: --true: " in err and "holds no values" in err


def test_refine_output_directory_is_an_error_not_a_traceback(tmp_path, capsys):
    for name, values in (("g", [0, 0, 1, 1]), ("l", [0, 1, 2, 3]), ("c", [0, 1, 0, 1])):
        np.save(tmp_path / f"{name}.npy", np.array(values))
    np.save(tmp_path / "f.npy", np.eye(4, dtype=np.float32) + 0.1)
    args = ["refine", "--global", str(tmp_path / "g.npy"), "--local", str(tmp_path / "l.npy"), "--cams"]
    args += [str(tmp_path / "c.npy"), "--feats", str(tmp_path / "f.npy"), "--k", "2", "-o", str(tmp_path)]
    assert main(args) == 2
    assert "--output: " in capsys.readouterr().err


def test_demo_reports_the_k_it_was_given(capsys):
    pytest.importorskip("infomap")
    assert main(["demo", "--ids", "10", "--cams", "2", "--k", "1000"]) == 2
    assert "got 1000" in capsys.readouterr().err


@pytest.mark.slow
def test_closed_pipe_exits_quietly():
    code = "import sys; from labelrefine.cli import main; sys.exit(main(['demo', '--ids', '20', '--cams', '2']))"
    pytest.importorskip("infomap")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader goes away at once, as `| head -0` does
    err = proc.stderr.read().decode()
    assert proc.wait() == 141
    assert "BrokenPipeError" not in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1 2\n3 4\n", [[1, 2], [3, 4]]),  # np.savetxt's default separator
        ("1;2\n3;4\n", [[1, 2], [3, 4]]),
        ("1,2,\n3,4,\n", [[1, 2], [3, 4]]),  # trailing commas
        ("5,\n6,\n", [5, 6]),
        ("a\tb\n1\t2\n3\t4\n", [[1, 2], [3, 4]]),  # a header above tab-separated rows
    ],
)
def test_text_separators(tmp_path, text, expected):
    (tmp_path / "x.txt").write_text(text)
    np.testing.assert_array_equal(load_array(tmp_path / "x.txt", "--feats"), expected)


def test_np_savetxt_default_output_reads_back(tmp_path):
    feats = np.random.default_rng(0).normal(size=(5, 3))
    np.savetxt(tmp_path / "f.txt", feats)
    np.testing.assert_array_equal(load_array(tmp_path / "f.txt", "--feats"), feats)


def test_mixed_separators_name_the_expected_one(tmp_path):
    (tmp_path / "m.csv").write_text("1,2\n3;4\n")
    expected = r"--feats: cannot read .*m.csv as rows of values separated by semicolons.*commas, semicolons or white"
    with pytest.raises(ValueError, match=expected):
        load_array(tmp_path / "m.csv", "--feats")


def test_pt_file_that_is_not_torch_gets_our_message(tmp_path):
    pytest.importorskip("torch")
    (tmp_path / "x.pt").write_bytes(b"this is not a torch file")
    with pytest.raises(ValueError, match=r"--feats: cannot read .*x.pt as a torch file of tensors") as info:
        load_array(tmp_path / "x.pt", "--feats")
    assert "weights_only" not in str(info.value)
