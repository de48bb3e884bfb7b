"""Dataset readers: fake trees with the real naming schemes, checked against a plain loop parser."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labelrefine.data import (
    DATASETS,
    ReIDData,
    Split,
    load_dataset,
    read_dukemtmcreid,
    read_folder,
    read_market1501,
    read_msmt17,
    read_veri,
)

# ----------------------------------------------------------------------------------------------
# helpers: write fake trees, and parse them back with obviously-correct loops


def touch(folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).touch()


def leading_int(text: str) -> int:
    """The integer at the start of ``text`` (digits after an optional '-')."""
    sign, i = 1, 0
    if text.startswith("-"):
        sign, i = -1, 1
    j = i
    while j < len(text) and text[j].isdigit():
        j += 1
    return sign * int(text[i:j])


def reference_market_dir(folder: Path, train: bool) -> tuple[list[str], list[int], list[int]]:
    """Market/Duke/VeRi rule, one file at a time: pid_c<cam>..., drop -1 (and 0 for train)."""
    paths, pids, cams = [], [], []
    for name in sorted(os.listdir(folder)):
        if not name.lower().endswith((".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")):
            continue
        fields = name.split("_")
        pid = int(fields[0])
        assert fields[1][0] == "c"
        cam = leading_int(fields[1][1:]) - 1
        if pid == -1 or (train and pid == 0):
            continue
        paths.append(str(folder / name))
        pids.append(pid)
        cams.append(cam)
    return paths, pids, cams


def assert_split(split: Split, expected: tuple[list[str], list[int], list[int]]) -> None:
    paths, pids, cams = expected
    assert split.paths.tolist() == paths
    assert split.pids.tolist() == pids
    assert split.cams.tolist() == cams
    assert split.pids.dtype == np.int64 and split.cams.dtype == np.int64


def market_name(pid: int, cam: int, frame: int, box: int) -> str:
    return (
        f"{pid:04d}_c{cam}s{cam % 6 + 1}_{frame:06d}_{box:02d}.jpg"
        if pid >= 0
        else f"-1_c{cam}s1_{frame:06d}_{box:02d}.jpg"
    )


# ----------------------------------------------------------------------------------------------
# Market-1501


def make_market(root: Path) -> Path:
    base = root / "Market-1501-v15.09.15"
    touch(
        base / "bounding_box_train",
        [
            "0002_c1s1_000451_03.jpg",
            "0002_c3s1_000551_01.jpg",
            "0007_c2s3_070952_01.jpg",
            "1500_c6s3_086567_01.jpg",
            "Thumbs.db",
        ],
    )
    touch(base / "query", ["0001_c1s1_001051_00.jpg", "0003_c5s1_015492_00.jpg"])
    touch(
        base / "bounding_box_test",
        ["-1_c1s1_000401_03.jpg", "0000_c1s1_000151_01.jpg", "0001_c2s1_000301_01.jpg", "0003_c4s2_009087_02.jpg"],
    )
    return base


def test_market_matches_loop_reference(tmp_path: Path) -> None:
    base = make_market(tmp_path)
    data = read_market1501(tmp_path)
    assert isinstance(data, ReIDData) and data.name == "market1501"
    assert_split(data.train, reference_market_dir(base / "bounding_box_train", train=True))
    assert_split(data.query, reference_market_dir(base / "query", train=False))
    assert_split(data.gallery, reference_market_dir(base / "bounding_box_test", train=False))
    # junk -1 dropped, distractor 0000 kept in the gallery, cameras 0-based
    assert data.gallery.pids.tolist() == [0, 1, 3]
    assert data.train.cams.tolist() == [0, 2, 1, 5]
    assert (data.train.num_pids, data.train.num_cams) == (3, 4)


def test_market_dataset_folder_itself_and_registry(tmp_path: Path) -> None:
    base = make_market(tmp_path)
    a, b = read_market1501(base), load_dataset("Market-1501", tmp_path)
    assert a.train.paths.tolist() == b.train.paths.tolist()
    assert load_dataset("market", tmp_path).name == "market1501"


@settings(max_examples=30, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(-1, 1501), st.integers(1, 6), st.integers(0, 999999), st.integers(0, 9)),
        min_size=0,
        max_size=25,
        unique_by=lambda t: (t[2], t[3]),
    )
)
def test_market_random_trees(entries: list[tuple[int, int, int, int]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        names = [market_name(*e) for e in entries]
        half = len(names) // 2
        touch(root / "bounding_box_train", names[:half])
        touch(root / "query", [])
        touch(root / "bounding_box_test", names[half:])
        data = read_market1501(root)
        assert_split(data.train, reference_market_dir(root / "bounding_box_train", train=True))
        assert_split(data.gallery, reference_market_dir(root / "bounding_box_test", train=False))
        assert len(data.query) == 0


@pytest.mark.parametrize("missing", ["bounding_box_train", "query", "bounding_box_test"])
def test_market_missing_folder_names_it_and_shows_layout(tmp_path: Path, missing: str) -> None:
    for folder in ("bounding_box_train", "query", "bounding_box_test"):
        if folder != missing:
            (tmp_path / folder).mkdir()
    with pytest.raises(
        FileNotFoundError, match=rf"Market-1501: folder .*{missing}' not found\. Expected layout:\n<root>/"
    ):
        read_market1501(tmp_path)


def test_market_bad_name_raises(tmp_path: Path) -> None:
    make_market(tmp_path)
    (tmp_path / "Market-1501-v15.09.15" / "query" / "img_0001.jpg").touch()
    with pytest.raises(ValueError, match=r"must follow the Market-1501 scheme .*got 'img_0001.jpg'"):
        read_market1501(tmp_path)


def test_market_camera_zero_raises(tmp_path: Path) -> None:
    make_market(tmp_path)
    (tmp_path / "Market-1501-v15.09.15" / "query" / "0001_c0s1_001051_00.jpg").touch()
    with pytest.raises(ValueError, match=r"camera numbers .* must be 1-based"):
        read_market1501(tmp_path)


def test_missing_root_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"root must be an existing folder, got '.*nowhere'"):
        read_market1501(tmp_path / "nowhere")
    with pytest.raises(TypeError, match=r"root must be a path \(str or os.PathLike\), got int"):
        read_market1501(3)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------------
# DukeMTMC-reID and VeRi-776


def test_duke_matches_loop_reference(tmp_path: Path) -> None:
    base = tmp_path / "DukeMTMC-reID"
    touch(base / "bounding_box_train", ["0001_c2_f0046182.jpg", "0001_c6_f0059311.jpg", "0702_c8_f0151000.jpg"])
    touch(base / "query", ["0005_c2_f0046985.jpg"])
    touch(base / "bounding_box_test", ["0002_c1_f0044158.jpg", "0005_c7_f0100200.jpg"])
    data = read_dukemtmcreid(tmp_path)
    for split, folder, train in [
        (data.train, "bounding_box_train", True),
        (data.query, "query", False),
        (data.gallery, "bounding_box_test", False),
    ]:
        assert_split(split, reference_market_dir(base / folder, train))
    assert data.train.cams.tolist() == [1, 5, 7]
    assert load_dataset("duke", tmp_path).name == "dukemtmcreid"


def test_veri_matches_loop_reference(tmp_path: Path) -> None:
    base = tmp_path / "VeRi"
    touch(base / "image_train", ["0001_c001_00016450_0.jpg", "0001_c019_00016520_1.jpg", "0776_c020_00088888_0.jpg"])
    touch(base / "image_query", ["0002_c002_00030600_0.jpg"])
    touch(base / "image_test", ["0002_c002_00030615_1.jpg", "0002_c014_00055555_0.jpg"])
    touch(base, ["name_train.txt"])
    data = read_veri(tmp_path)
    for split, folder, train in [
        (data.train, "image_train", True),
        (data.query, "image_query", False),
        (data.gallery, "image_test", False),
    ]:
        assert_split(split, reference_market_dir(base / folder, train))
    assert data.train.cams.tolist() == [0, 18, 19]
    assert data.name == "veri"


def test_veri_missing_folder(tmp_path: Path) -> None:
    touch(tmp_path / "VeRi" / "image_train", [])
    with pytest.raises(FileNotFoundError, match=r"VeRi-776: folder .*image_query' not found\. Expected layout"):
        read_veri(tmp_path)


# ----------------------------------------------------------------------------------------------
# MSMT17


MSMT_LISTS = {
    "list_train.txt": [
        "0000/0000_000_01_0303morning_0015_0.jpg 0",
        "0000/0000_001_05_0303noon_0020_1.jpg 0",
        "0001/0001_000_15_0303afternoon_0200_0.jpg 1",
    ],
    "list_val.txt": ["0002/0002_003_09_0113morning_0811_1.jpg 2"],
    "list_query.txt": ["0000/0000_000_07_0303noon_0050_1.jpg 0"],
    "list_gallery.txt": ["0000/0000_001_15_0303noon_0120_0.jpg 0", "0003/0003_010_12_0113noon_0901_0.jpg 3"],
}


def make_msmt(root: Path, version: str, lists: dict[str, list[str]] = MSMT_LISTS) -> Path:
    base = root / f"MSMT17_{version}"
    train_dir, test_dir = ("train", "test") if version == "V1" else ("mask_train_v2", "mask_test_v2")
    (base / train_dir).mkdir(parents=True)
    (base / test_dir).mkdir(parents=True)
    for file, lines in lists.items():
        (base / file).write_text("\n".join(lines) + "\n")
    return base


def reference_msmt(list_file: Path, image_dir: Path) -> tuple[list[str], list[int], list[int]]:
    paths, pids, cams = [], [], []
    for line in list_file.read_text().splitlines():
        if not line.strip():
            continue
        rel, label = line.split()
        paths.append(str(image_dir / rel))
        pids.append(int(label))
        cams.append(int(rel.split("/")[-1].split("_")[2]) - 1)
    return paths, pids, cams


@pytest.mark.parametrize("version", ["V1", "V2"])
def test_msmt_matches_loop_reference(tmp_path: Path, version: str) -> None:
    base = make_msmt(tmp_path, version)
    train_dir, test_dir = ("train", "test") if version == "V1" else ("mask_train_v2", "mask_test_v2")
    data = read_msmt17(tmp_path)
    tr = reference_msmt(base / "list_train.txt", base / train_dir)
    va = reference_msmt(base / "list_val.txt", base / train_dir)
    assert_split(data.train, (tr[0] + va[0], tr[1] + va[1], tr[2] + va[2]))
    assert_split(data.query, reference_msmt(base / "list_query.txt", base / test_dir))
    assert_split(data.gallery, reference_msmt(base / "list_gallery.txt", base / test_dir))
    assert data.train.cams.tolist() == [0, 4, 14, 8]
    only_train = read_msmt17(base, version=version, include_val=False)
    assert_split(only_train.train, tr)
    assert load_dataset("msmt17", tmp_path, version=version).name == "msmt17"


def test_msmt_missing_list_file(tmp_path: Path) -> None:
    lists = {k: v for k, v in MSMT_LISTS.items() if k != "list_query.txt"}
    make_msmt(tmp_path, "V1", lists)
    with pytest.raises(FileNotFoundError, match=r"MSMT17: list file .*list_query\.txt' not found\. Expected layout"):
        read_msmt17(tmp_path)


def test_msmt_val_list_not_needed_without_val(tmp_path: Path) -> None:
    lists = {k: v for k, v in MSMT_LISTS.items() if k != "list_val.txt"}
    make_msmt(tmp_path, "V1", lists)
    assert len(read_msmt17(tmp_path, include_val=False).train) == 3
    with pytest.raises(FileNotFoundError, match=r"list_val\.txt' not found"):
        read_msmt17(tmp_path)


def test_msmt_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"MSMT17: folder .*MSMT17_V1' not found\. Expected layout"):
        read_msmt17(tmp_path)
    (tmp_path / "MSMT17_V2" / "mask_train_v2").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"MSMT17: folder .*mask_test_v2' not found"):
        read_msmt17(tmp_path)


def test_msmt_bad_line(tmp_path: Path) -> None:
    lists = dict(MSMT_LISTS, **{"list_query.txt": ["0000/0000_000_07_0303noon_0050_1.jpg 0", "garbage"]})
    make_msmt(tmp_path, "V1", lists)
    with pytest.raises(ValueError, match=r"lines of MSMT17 list file .*list_query\.txt' must read .*got 1 of 2"):
        read_msmt17(tmp_path)


def test_msmt_bad_version_and_include_val(tmp_path: Path) -> None:
    make_msmt(tmp_path, "V1")
    with pytest.raises(ValueError, match=r"version must be one of 'V1', 'V2'; got 'V3'"):
        read_msmt17(tmp_path, version="V3")
    with pytest.raises(TypeError, match=r"include_val must be a bool, got str"):
        read_msmt17(tmp_path, include_val="yes")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------------
# generic folder reader


def test_folder_default_pattern_and_splits(tmp_path: Path) -> None:
    touch(tmp_path / "train", ["0001_c1_a.png", "-1_c2_b.png", "0002_c3_x.jpg", "readme.md"])
    touch(tmp_path / "q", ["0001_c2_z.png"])
    data = read_folder(tmp_path, train="train", query="q", name="mine")
    assert data.name == "mine"
    assert data.train.paths.tolist() == [
        str(tmp_path / "train" / n) for n in ["-1_c2_b.png", "0001_c1_a.png", "0002_c3_x.jpg"]
    ]
    assert data.train.pids.tolist() == [-1, 1, 2]  # no junk rule
    assert data.train.cams.tolist() == [1, 0, 2]
    assert data.query.cams.tolist() == [1] and len(data.gallery) == 0


def test_folder_unlabeled_crops_pid_minus_one(tmp_path: Path) -> None:
    touch(tmp_path, ["cam4_007.jpg", "cam0_001.jpg", "cam2_000.JPG"])
    data = read_folder(tmp_path, r"cam(?P<cam>\d+)_", cam_offset=0)
    assert data.train.pids.tolist() == [-1, -1, -1]
    assert data.train.cams.tolist() == [0, 2, 4]
    assert data.train.num_pids == 0


@settings(max_examples=30, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(-1, 50), st.sampled_from(["north", "south", "gate", "lobby"]), st.integers(0, 10**6)),
        max_size=20,
        unique_by=lambda t: t[2],
    )
)
def test_folder_string_cameras_coded_jointly(entries: list[tuple[int, str, int]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        names = [f"id{pid}_{cam}_{n}.png" for pid, cam, n in entries]
        touch(root / "a", names[::2])
        touch(root / "b", names[1::2])
        data = read_folder(root, r"^id(?P<pid>-?\d+)_(?P<cam>[a-z]+)_", train="a", gallery="b")
        all_cams = sorted({cam for _, cam, _ in entries})
        for split, folder in [(data.train, "a"), (data.gallery, "b")]:
            exp_paths, exp_pids, exp_cams = [], [], []
            for name in sorted(os.listdir(root / folder)):
                pid_text, cam, _ = name[2:].split("_")
                exp_paths.append(str(root / folder / name))
                exp_pids.append(int(pid_text))
                exp_cams.append(all_cams.index(cam))
            assert_split(split, (exp_paths, exp_pids, exp_cams))


def test_folder_recursive(tmp_path: Path) -> None:
    touch(tmp_path, ["0001_c1.jpg", "sub/0002_c2.jpg", "sub/deeper/0003_c3.jpg"])
    flat = read_folder(tmp_path)
    deep = read_folder(tmp_path, recursive=True)
    assert flat.train.pids.tolist() == [1]
    assert sorted(deep.train.pids.tolist()) == [1, 2, 3]
    assert set(deep.train.paths.tolist()) == {
        str(tmp_path / n)
        for n in ["0001_c1.jpg", os.path.join("sub", "0002_c2.jpg"), os.path.join("sub", "deeper", "0003_c3.jpg")]
    }


def test_folder_mismatch_raise_and_skip(tmp_path: Path) -> None:
    touch(tmp_path, ["0001_c1.jpg", "poster.jpg"])
    with pytest.raises(ValueError, match=r"every image name in folder .* must match pattern .*got 'poster.jpg'"):
        read_folder(tmp_path)
    assert read_folder(tmp_path, on_mismatch="skip").train.pids.tolist() == [1]
    with pytest.raises(ValueError, match=r"on_mismatch must be one of 'raise', 'skip'; got 'ignore'"):
        read_folder(tmp_path, on_mismatch="ignore")


def test_folder_pattern_errors(tmp_path: Path) -> None:
    touch(tmp_path, ["0001_c1.jpg"])
    with pytest.raises(ValueError, match=r"pattern must have a named group 'cam'.*got '\(\?P<pid>\\\\d\+\)'"):
        read_folder(tmp_path, r"(?P<pid>\d+)")
    with pytest.raises(ValueError, match=r"pattern must be a valid regular expression, got '\(\?P<cam>'"):
        read_folder(tmp_path, "(?P<cam>")
    with pytest.raises(TypeError, match=r"pattern must be a regular expression string, got int"):
        read_folder(tmp_path, 5)  # type: ignore[arg-type]


def test_folder_pattern_across_names(tmp_path: Path) -> None:
    touch(tmp_path, ["a.jpg", "b5.jpg"])  # joined, the names read 'a.jpg\nb5.jpg'
    with pytest.raises(ValueError, match=r"pattern must match within a single file name, got 'jpg\\\\sb"):
        read_folder(tmp_path, r"jpg\sb(?P<cam>\d)")


def test_folder_pid_and_camera_values(tmp_path: Path) -> None:
    touch(tmp_path, ["0001_c0.jpg"])
    with pytest.raises(ValueError, match=r"cam_offset must not exceed the smallest camera number, got cam_offset=1"):
        read_folder(tmp_path)
    assert read_folder(tmp_path, cam_offset=0).train.cams.tolist() == [0]
    with pytest.raises(TypeError, match=r"cam_offset must be an integer, got '1'"):
        read_folder(tmp_path, cam_offset="1")  # type: ignore[arg-type]
    touch(tmp_path / "bad", ["ab_c1.jpg"])
    with pytest.raises(ValueError, match=r"pid must be an integer in every file name of folder .*got 'ab'"):
        read_folder(tmp_path, r"(?P<pid>[a-z]+)_c(?P<cam>\d+)", train="bad")
    touch(tmp_path / "neg", ["-5_c1.jpg"])
    with pytest.raises(ValueError, match=r"pids in folder .* must be >= -1 \(-1 = unknown\), got -5"):
        read_folder(tmp_path, r"(?P<pid>-\d+)_c(?P<cam>\d+)", train="neg")


def test_folder_argument_errors(tmp_path: Path) -> None:
    touch(tmp_path, ["0001_c1.jpg"])
    with pytest.raises(FileNotFoundError, match=r"query folder .*nope' not found\. Expected layout"):
        read_folder(tmp_path, query="nope")
    with pytest.raises(TypeError, match=r"gallery must be a sub-folder name or None, got int"):
        read_folder(tmp_path, gallery=3)  # type: ignore[arg-type]
    with pytest.raises(
        TypeError, match=r"extensions must be a sequence of strings like \('.jpg', '.png'\), got '.jpg'"
    ):
        read_folder(tmp_path, extensions=".jpg")
    with pytest.raises(TypeError, match=r"name must be a str, got int"):
        read_folder(tmp_path, name=1)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------------
# registry, Split, ReIDData


def test_registry_names_and_errors(tmp_path: Path) -> None:
    assert tuple(DATASETS) == ("market1501", "dukemtmcreid", "msmt17", "veri", "synthreid", "folder")
    with pytest.raises(ValueError, match=r"name must be one of 'market1501', .*'folder'; got 'cuhk03'"):
        load_dataset("cuhk03", tmp_path)
    with pytest.raises(TypeError, match=r"name must be a dataset name \(str\), got int"):
        load_dataset(1, tmp_path)  # type: ignore[arg-type]
    touch(tmp_path, ["0004_c2.jpg"])
    assert load_dataset("folder", tmp_path).train.pids.tolist() == [4]


def test_split_copies_and_is_read_only() -> None:
    paths = np.array(["a", "b"])
    pids = np.array([3, -1])
    cams = [0, 2]
    split = Split(paths, pids, cams)
    assert not split.pids.flags.writeable and not split.paths.flags.writeable
    assert pids.flags.writeable and not np.shares_memory(split.pids, pids)
    pids[0] = 7  # the caller's array is not aliased
    assert split.pids.tolist() == [3, -1]
    assert (split.num_pids, split.num_cams, len(split)) == (1, 2, 2)
    assert split.select(np.array([False, True])).paths.tolist() == ["b"]
    assert len(Split.empty()) == 0 and Split.empty().num_cams == 0
    assert "n=2" in repr(split)


def test_split_errors() -> None:
    with pytest.raises(ValueError, match=r"arguments must have the same length .*paths=2, pids=1, cams=2"):
        Split(["a", "b"], [1], [0, 0])
    with pytest.raises(ValueError, match=r"cams must be >= 0 \(0-based camera indices\), got minimum -1"):
        Split(["a"], [1], [-1])
    with pytest.raises(TypeError, match=r"cams must hold 0-based integer camera indices, got dtype <U1"):
        Split(["a"], [1], ["x"])
    with pytest.raises(ValueError, match=r"cams must be 1-D \(one camera per image\), got shape \(1, 1\)"):
        Split(["a"], [1], [[0]])
    with pytest.raises(TypeError, match=r"pids must hold integers"):
        Split(["a"], [1.5], [0])
    with pytest.raises(TypeError, match=r"paths must hold strings, got dtype int64"):
        Split([1], [1], [0])
    with pytest.raises(ValueError, match=r"paths must be 1-D \(one path per image\), got shape \(1, 1\)"):
        Split([["a"]], [1], [0])


def test_reiddata_errors_and_summary() -> None:
    s = Split(["a", "b"], [1, 2], [0, 1])
    with pytest.raises(TypeError, match=r"query must be a Split, got list"):
        ReIDData(s, [], s, "x")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"name must be a str, got int"):
        ReIDData(s, s, s, 3)  # type: ignore[arg-type]
    text = ReIDData(s, Split.empty(), s, "toy").summary().splitlines()
    assert text[1].split() == ["train", "2", "2", "2"] and text[2].split() == ["query", "0", "0", "0"]


def test_import_does_not_load_torch() -> None:
    code = "import sys, labelrefine.data as d; d.PKSampler; d.read_market1501; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_folder_compiled_verbose_and_inline_flag_patterns(tmp_path: Path) -> None:
    touch(tmp_path, ["0001_c1.jpg", "0002_C3.jpg"])
    verbose = re.compile(
        r"""(?P<pid>\d+)   # identity
        _[cC](?P<cam>\d+)  # camera""",
        re.VERBOSE,
    )
    assert read_folder(tmp_path, verbose).train.cams.tolist() == [0, 2]
    assert read_folder(tmp_path, r"(?i)(?P<pid>\d+)_c(?P<cam>\d+)").train.pids.tolist() == [1, 2]
