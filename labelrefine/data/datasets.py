"""Readers for the standard re-identification benchmarks and for generic folders of crops.

Every reader returns a :class:`ReIDData`: three index-aligned :class:`Split` s (``train``,
``query``, ``gallery``), each holding ``paths`` (str), ``pids`` (int64) and ``cams`` (int64,
0-based). This module is pure Python/numpy: it lists folders and parses file names and list
files, it never opens an image and never imports torch.

Identity conventions (those of torchreid and Cluster-Contrast):

- Train pids are kept as written in the file names / list files (no relabelling: making them
  contiguous is the trainer's job, and in unsupervised training they are only used to report
  cluster quality).
- Market-1501-style names (Market-1501, DukeMTMC-reID, VeRi-776, SynthReID): pid ``-1`` marks
  junk images (bad detections) and pid ``0000`` marks distractors. Train drops both; query
  and gallery drop ``-1`` and keep the ``0000`` distractors (they must be ranked below true
  matches, so they belong in the evaluation).
- MSMT17: pids are the labels of the list files (0-based; pid 0 is a real identity).
"""

from __future__ import annotations

import os
import re
import types
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._validation import check_cameras, check_choice, check_int
from ._records import ReIDData, Split

__all__ = [
    "DATASETS",
    "IMAGE_EXTENSIONS",
    "ReIDData",
    "Split",
    "load_dataset",
    "read_dukemtmcreid",
    "read_folder",
    "read_market1501",
    "read_msmt17",
    "read_synthreid",
    "read_veri",
    "register_dataset",
    "unregister_dataset",
]

IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
"""File extensions (lower case) that the folder readers treat as images."""

_MARKET_PATTERN = r"^(?P<pid>-?\d+)_c(?P<cam>\d+)"
_DEFAULT_FOLDER_PATTERN = r"(?P<pid>-?\d+)_c(?P<cam>\d+)"


def _compile(pattern: str | re.Pattern[str], name: str = "pattern") -> re.Pattern[str]:
    if isinstance(pattern, re.Pattern):
        return pattern
    if not isinstance(pattern, str):
        raise TypeError(f"{name} must be a regular expression string, got {type(pattern).__name__}")
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"{name} must be a valid regular expression, got {pattern!r}: {exc}") from None


_GLOBAL_FLAGS = re.compile(r"^\(\?[aiLmsux]+\)")


def _match_names(names: np.ndarray, regex: re.Pattern[str], where: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Search ``regex`` in every name; returns (matched mask, {group: values of the matched names}).

    All names are joined into one string and scanned by a single ``findall`` (each match is
    anchored to one whole line), which keeps the loop over files inside the regex engine.
    """
    groups = list(regex.groupindex)
    if names.size == 0:
        return np.zeros(0, dtype=bool), {g: np.array([], dtype=str) for g in groups}
    body = _GLOBAL_FLAGS.sub("", regex.pattern)
    if regex.flags & re.VERBOSE:
        body += "\n"  # end a trailing comment of a verbose pattern before the wrapper resumes
    line = "_labelrefine_line"
    wrapped = re.compile(rf"^(?P<{line}>[^\n]*?(?:{body})[^\n]*)$", regex.flags | re.MULTILINE)
    found = wrapped.findall("\n".join(names.tolist()))
    columns = [line, *groups]
    order = [wrapped.groupindex[c] - 1 for c in columns]
    table = np.array(found, dtype=str).reshape(len(found), -1)[:, order] if found else np.empty((0, len(columns)), str)
    if table.shape[0] == names.shape[0] and np.array_equal(table[:, 0], names):
        mask = np.ones(names.shape[0], dtype=bool)
    else:
        mask = np.isin(names, table[:, 0])
        if int(mask.sum()) != table.shape[0]:
            raise ValueError(
                f"pattern must match within a single file name, got {regex.pattern!r}, which matched across "
                f"names in {where}"
            )
    return mask, {g: table[:, i + 1] for i, g in enumerate(groups)}


def _list_images(directory: Path, extensions: Sequence[str], recursive: bool) -> np.ndarray:
    """Sorted relative paths of the image files in ``directory`` (unicode array)."""
    if recursive:
        found: list[np.ndarray] = []
        for dirpath, dirnames, filenames in os.walk(directory):  # loop over folders, not files
            dirnames.sort()
            rel = os.path.relpath(dirpath, directory)
            files = np.array(filenames, dtype=str)
            found.append(files if rel == "." or files.size == 0 else np.char.add(rel + os.sep, files))
        names = np.concatenate(found).astype(str) if found else np.array([], dtype=str)
    else:
        names = np.array(os.listdir(directory), dtype=str)
    if names.size == 0:
        return names.astype(str)
    lower = np.char.lower(names)
    keep = np.zeros(names.shape[0], dtype=bool)
    for ext in extensions:  # a handful of extensions
        keep |= np.char.endswith(lower, ext.lower())
    keep &= np.char.find(names, "\n") < 0
    return np.sort(names[keep])


def _to_int(values: np.ndarray, what: str, where: str) -> np.ndarray:
    try:
        return values.astype(np.int64)
    except (ValueError, OverflowError):
        bad = values[~np.char.isdigit(np.char.lstrip(values, "-"))]
        example = bad[0] if bad.size else values[0]
        raise ValueError(f"{what} must be an integer in every file name of {where}, got {str(example)!r}") from None


def _join(directory: Path, names: np.ndarray) -> np.ndarray:
    if names.size == 0:
        return names.astype(str)
    return np.char.add(str(directory) + os.sep, names)


# ----------------------------------------------------------------------------------------------
# layout checks


def _layout_error(dataset: str, missing: Path, kind: str, layout: str) -> FileNotFoundError:
    return FileNotFoundError(f"{dataset}: {kind} {str(missing)!r} not found. Expected layout:\n{layout.rstrip()}")


def _check_root(root: Any) -> Path:
    if not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"root must be a path (str or os.PathLike), got {type(root).__name__}")
    path = Path(root)
    if not path.is_dir():
        raise FileNotFoundError(f"root must be an existing folder, got {str(path)!r}")
    return path


def _find_base(root: Path, names: Sequence[str], marker: str) -> Path:
    """``root`` when it holds ``marker``, else ``root/<name>`` for the first name that exists, else ``root``."""
    if (root / marker).is_dir():
        return root
    for name in names:
        if (root / name).is_dir():
            return root / name
    return root


def _require(base: Path, folders: Sequence[str], files: Sequence[str], dataset: str, layout: str) -> None:
    if not base.is_dir():
        raise _layout_error(dataset, base, "folder", layout)
    for folder in folders:
        if not (base / folder).is_dir():
            raise _layout_error(dataset, base / folder, "folder", layout)
    for file in files:
        if not (base / file).is_file():
            raise _layout_error(dataset, base / file, "list file", layout)


def _read_market_dir(directory: Path, *, train: bool, where: str) -> Split:
    names = _list_images(directory, IMAGE_EXTENSIONS, recursive=False)
    mask, groups = _match_names(names, re.compile(_MARKET_PATTERN), where)
    if not mask.all():
        raise ValueError(
            f"file names in {where} must follow the Market-1501 scheme '0002_c1s1_000451_03.jpg' "
            f"(pid_c<camera>...), got {str(names[~mask][0])!r}"
        )
    pids = _to_int(groups["pid"], "pid", where)
    cams = _to_int(groups["cam"], "camera", where) - 1
    if cams.size and cams.min() < 0:
        raise ValueError(f"camera numbers in {where} must be 1-based ('c1' = first camera), got 'c0'")
    keep = pids > 0 if train else pids != -1
    return Split(_join(directory, names[keep]), pids[keep], cams[keep])


def _read_market_like(
    root: Any, dataset: str, name: str, base_names: Sequence[str], folders: Sequence[str], layout: str
) -> ReIDData:
    root = _check_root(root)
    base = _find_base(root, base_names, folders[0])
    _require(base, folders, (), dataset, layout)
    splits = [
        _read_market_dir(base / folder, train=(i == 0), where=f"{dataset} folder {str(base / folder)!r}")
        for i, folder in enumerate(folders)
    ]
    return ReIDData(splits[0], splits[1], splits[2], name)


_MARKET_LAYOUT = """\
<root>/
  Market-1501-v15.09.15/      (this level is optional)
    bounding_box_train/       0002_c1s1_000451_03.jpg ...  (pid_c<camera>s<seq>_<frame>_<box>.jpg)
    query/                    0001_c1s1_001051_00.jpg ...
    bounding_box_test/        -1_c1s1_000401_03.jpg, 0000_c1s1_000151_01.jpg, 0001_c1s1_001051_03.jpg ...
"""

_DUKE_LAYOUT = """\
<root>/
  DukeMTMC-reID/              (this level is optional)
    bounding_box_train/       0001_c2_f0046182.jpg ...  (pid_c<camera>_f<frame>.jpg)
    query/                    0005_c2_f0046985.jpg ...
    bounding_box_test/        0002_c1_f0044158.jpg ...
"""

_VERI_LAYOUT = """\
<root>/
  VeRi/                       (this level is optional)
    image_train/              0001_c001_00016450_0.jpg ...  (vid_c<camera>_<frame>_<n>.jpg)
    image_query/              0002_c002_00030600_0.jpg ...
    image_test/               0002_c002_00030615_1.jpg ...
"""

_SYNTH_LAYOUT = """\
<root>/
  SynthReID/                  (this level is optional; written by labelrefine.data.make_synthreid)
    bounding_box_train/       0001_c1s1_000000_01.jpg ...
    query/
    bounding_box_test/
"""

_MSMT_LAYOUT = """\
<root>/
  MSMT17_V1/                  (or MSMT17_V2/ with mask_train_v2/ and mask_test_v2/)
    train/                    0000/0000_000_01_0303morning_0015_0.jpg ...
    test/                     0000/0000_000_01_0303morning_0036_1.jpg ...
    list_train.txt            lines '0000/0000_000_01_0303morning_0015_0.jpg 0'
    list_val.txt
    list_query.txt
    list_gallery.txt
"""


def read_market1501(root: str | os.PathLike[str]) -> ReIDData:
    """Read Market-1501 (Zheng et al., 2015).

    Parameters
    ----------
    root : str or os.PathLike
        The folder that holds ``Market-1501-v15.09.15/`` (or the dataset folder itself).

    Returns
    -------
    ReIDData
        ``train`` from ``bounding_box_train`` (12,936 images, 751 ids), ``query`` from
        ``query`` (3,368), ``gallery`` from ``bounding_box_test`` (15,913 after dropping the
        3,819 junk ``-1`` images of its 19,732; the 2,793 ``0000`` distractors are kept). Cameras 0-based.

    Raises
    ------
    FileNotFoundError
        If ``root`` or one of the three folders is missing; the message shows the expected layout.
    ValueError
        If a file name does not follow the ``0002_c1s1_000451_03.jpg`` scheme.

    Notes
    -----
    Train drops pid ``-1`` (junk) and ``0`` (distractors); query/gallery drop ``-1`` only.
    Train pids are not relabelled. Any file with an extension in :data:`IMAGE_EXTENSIONS` is read.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> for folder, name in [("bounding_box_train", "0002_c1s1_000451_03.jpg"),
    ...                      ("query", "0001_c2s1_001051_00.jpg"),
    ...                      ("bounding_box_test", "0001_c1s1_001051_03.jpg")]:
    ...     (root / folder).mkdir()
    ...     (root / folder / name).touch()
    >>> data = read_market1501(root)
    >>> data.train.pids.tolist(), data.query.cams.tolist()
    ([2], [1])
    """
    return _read_market_like(
        root,
        "Market-1501",
        "market1501",
        ("Market-1501-v15.09.15", "Market-1501", "market1501"),
        ("bounding_box_train", "query", "bounding_box_test"),
        _MARKET_LAYOUT,
    )


def read_dukemtmcreid(root: str | os.PathLike[str]) -> ReIDData:
    """Read DukeMTMC-reID (Zheng et al., 2017).

    Parameters
    ----------
    root : str or os.PathLike
        The folder that holds ``DukeMTMC-reID/`` (or the dataset folder itself).

    Returns
    -------
    ReIDData
        ``train`` (16,522 images, 702 ids), ``query`` (2,228), ``gallery`` (17,661) from
        ``bounding_box_train``, ``query``, ``bounding_box_test``; 8 cameras, 0-based.

    Raises
    ------
    FileNotFoundError
        If ``root`` or one of the three folders is missing; the message shows the expected layout.
    ValueError
        If a file name does not follow the ``0001_c2_f0046182.jpg`` scheme.

    Notes
    -----
    Same identity rules as :func:`read_market1501` (DukeMTMC-reID has no junk images).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp()) / "DukeMTMC-reID"
    >>> for folder in ("bounding_box_train", "query", "bounding_box_test"):
    ...     (root / folder).mkdir(parents=True)
    >>> (root / "bounding_box_train" / "0001_c2_f0046182.jpg").touch()
    >>> read_dukemtmcreid(root.parent).train.cams.tolist()
    [1]
    """
    return _read_market_like(
        root,
        "DukeMTMC-reID",
        "dukemtmcreid",
        ("DukeMTMC-reID",),
        ("bounding_box_train", "query", "bounding_box_test"),
        _DUKE_LAYOUT,
    )


def read_veri(root: str | os.PathLike[str]) -> ReIDData:
    """Read VeRi-776 (Liu et al., 2016), the vehicle re-identification benchmark.

    Parameters
    ----------
    root : str or os.PathLike
        The folder that holds ``VeRi/`` (or the dataset folder itself).

    Returns
    -------
    ReIDData
        ``train`` from ``image_train`` (37,778 images, 576 vehicles), ``query`` from
        ``image_query`` (1,678), ``gallery`` from ``image_test`` (11,579); 20 cameras, 0-based
        (``c001`` is camera 0).

    Raises
    ------
    FileNotFoundError
        If ``root`` or one of the three folders is missing; the message shows the expected layout.
    ValueError
        If a file name does not follow the ``0001_c001_00016450_0.jpg`` scheme.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> for folder in ("image_train", "image_query", "image_test"):
    ...     (root / "VeRi" / folder).mkdir(parents=True)
    >>> (root / "VeRi" / "image_query" / "0002_c002_00030600_0.jpg").touch()
    >>> data = read_veri(root)
    >>> data.query.pids.tolist(), data.query.cams.tolist()
    ([2], [1])
    """
    return _read_market_like(
        root,
        "VeRi-776",
        "veri",
        ("VeRi", "VeRi-776", "VeRi776"),
        ("image_train", "image_query", "image_test"),
        _VERI_LAYOUT,
    )


def read_synthreid(root: str | os.PathLike[str]) -> ReIDData:
    """Read a SynthReID dataset written by :func:`labelrefine.data.make_synthreid`.

    Parameters
    ----------
    root : str or os.PathLike
        The folder that holds ``SynthReID/`` (the ``root`` given to ``make_synthreid``), or the
        dataset folder itself (the path ``make_synthreid`` returns).

    Returns
    -------
    ReIDData
        Market-1501 layout and identity rules, name ``"synthreid"``.

    Raises
    ------
    FileNotFoundError
        If the folders are missing; the message shows the expected layout.

    Examples
    --------
    >>> import tempfile
    >>> from labelrefine.data import make_synthreid
    >>> path = make_synthreid(tempfile.mkdtemp(), num_ids=8, num_cams=3, rng=0)
    >>> data = read_synthreid(path.parent)
    >>> data.train.num_pids, data.train.num_cams
    (4, 3)
    """
    return _read_market_like(
        root,
        "SynthReID",
        "synthreid",
        ("SynthReID",),
        ("bounding_box_train", "query", "bounding_box_test"),
        _SYNTH_LAYOUT,
    )


_MSMT_LINE = re.compile(
    r"^[ \t]*(?P<path>(?:[^\s/]*/)*[^_\s/]+_[^_\s/]+_(?P<cam>\d+)_\S*)[ \t]+(?P<pid>-?\d+)[ \t]*\r?$", re.MULTILINE
)
_NONBLANK_LINE = re.compile(r"^[ \t]*\S", re.MULTILINE)


def _read_msmt_list(list_file: Path, image_dir: Path) -> Split:
    text = list_file.read_text()
    found = _MSMT_LINE.findall(text)
    n_lines = len(_NONBLANK_LINE.findall(text))
    if len(found) != n_lines:
        raise ValueError(
            f"lines of MSMT17 list file {str(list_file)!r} must read '<folder>/<pid>_<n>_<camera>_... <label>' "
            f"(e.g. '0000/0000_000_01_0303morning_0015_0.jpg 0'), got {n_lines - len(found)} of {n_lines} "
            "lines that do not"
        )
    if not found:
        return Split.empty()
    gi = _MSMT_LINE.groupindex
    table = np.array(found, dtype=str)
    rel = table[:, gi["path"] - 1]
    cams = table[:, gi["cam"] - 1].astype(np.int64) - 1
    pids = table[:, gi["pid"] - 1].astype(np.int64)
    if cams.min() < 0:
        raise ValueError(f"cameras in {str(list_file)!r} must be 1-based (third field of the file name), got 0")
    return Split(_join(image_dir, np.char.replace(rel, "/", os.sep)), pids, cams)


def read_msmt17(root: str | os.PathLike[str], *, version: str | None = None, include_val: bool = True) -> ReIDData:
    """Read MSMT17 (Wei et al., 2018), V1 (``train``/``test`` folders) or V2 (``mask_*_v2``).

    Parameters
    ----------
    root : str or os.PathLike
        The folder that holds ``MSMT17_V1/`` or ``MSMT17_V2/`` (or one of those folders itself).
    version : {"V1", "V2"} or None, default None
        Which release to read. ``None`` picks the one found (``MSMT17_V1`` first).
    include_val : bool, default True
        Add ``list_val.txt`` to the training split. The unsupervised literature (and CALR)
        trains on train + val: 32,621 images of 1,041 identities. ``False`` gives the
        30,248 images of ``list_train.txt`` only (torchreid's default).

    Returns
    -------
    ReIDData
        ``train``, ``query`` (11,659 images) and ``gallery`` (82,161 images); 15 cameras,
        0-based. Pids are the list-file labels; the camera is the third ``_``-separated field
        of the file name (1-based in the file, 0-based here).

    Raises
    ------
    FileNotFoundError
        If a folder or list file is missing; the message shows the expected layout.
    ValueError
        If ``version`` is not one of the choices or a list file line is malformed.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> base = pathlib.Path(tempfile.mkdtemp()) / "MSMT17_V1"
    >>> for folder in ("train", "test"):
    ...     (base / folder).mkdir(parents=True)
    >>> lines = {"list_train.txt": "0000/0000_000_01_0303morning_0015_0.jpg 0\\n", "list_val.txt": "",
    ...          "list_query.txt": "0000/0000_000_07_0303noon_0050_1.jpg 0\\n",
    ...          "list_gallery.txt": "0000/0000_001_15_0303noon_0120_0.jpg 0\\n"}
    >>> for file, text in lines.items():
    ...     _ = (base / file).write_text(text)
    >>> data = read_msmt17(base.parent)
    >>> data.train.cams.tolist(), data.query.cams.tolist(), data.gallery.cams.tolist()
    ([0], [6], [14])
    """
    root = _check_root(root)
    if version is not None:
        version = check_choice(version, "version", ("V1", "V2"))
    if not isinstance(include_val, (bool, np.bool_)):
        raise TypeError(f"include_val must be a bool, got {type(include_val).__name__}")
    folders = {"V1": ("train", "test"), "V2": ("mask_train_v2", "mask_test_v2")}
    if version is None:
        if (root / "train").is_dir() or root.name.upper().endswith("V1"):
            version, base = "V1", root
        elif (root / "mask_train_v2").is_dir() or root.name.upper().endswith("V2"):
            version, base = "V2", root
        elif (root / "MSMT17_V2").is_dir() and not (root / "MSMT17_V1").is_dir():
            version, base = "V2", root / "MSMT17_V2"
        else:
            version, base = "V1", root / "MSMT17_V1"
    else:
        name = f"MSMT17_{version}"
        base = root if (root / folders[version][0]).is_dir() or root.name == name else root / name
    train_dir, test_dir = folders[version]
    lists = ["list_train.txt", "list_val.txt", "list_query.txt", "list_gallery.txt"]
    _require(base, (train_dir, test_dir), lists if include_val else [lists[0], *lists[2:]], "MSMT17", _MSMT_LAYOUT)
    train = _read_msmt_list(base / "list_train.txt", base / train_dir)
    if include_val:
        val = _read_msmt_list(base / "list_val.txt", base / train_dir)
        train = Split(
            np.concatenate([train.paths, val.paths]).astype(str),
            np.concatenate([train.pids, val.pids]),
            np.concatenate([train.cams, val.cams]),
        )
    query = _read_msmt_list(base / "list_query.txt", base / test_dir)
    gallery = _read_msmt_list(base / "list_gallery.txt", base / test_dir)
    return ReIDData(train, query, gallery, "msmt17")


def _read_folder_split(
    directory: Path, regex: re.Pattern[str], extensions: Sequence[str], recursive: bool, on_mismatch: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    where = f"folder {str(directory)!r}"
    names = _list_images(directory, extensions, recursive)
    mask, groups = _match_names(names, regex, where)
    if not mask.all():
        if on_mismatch == "raise":
            raise ValueError(
                f"every image name in {where} must match pattern {regex.pattern!r} "
                f"(or pass on_mismatch='skip'), got {str(names[~mask][0])!r}"
            )
        names = names[mask]
    pids = _to_int(groups["pid"], "pid", where) if "pid" in groups else np.full(names.shape[0], -1, np.int64)
    if pids.size and pids.min() < -1:
        raise ValueError(f"pids in {where} must be >= -1 (-1 = unknown), got {pids.min()}")
    return _join(directory, names), pids, groups["cam"]


def read_folder(
    root: str | os.PathLike[str],
    pattern: str | re.Pattern[str] = _DEFAULT_FOLDER_PATTERN,
    *,
    train: str | None = ".",
    query: str | None = None,
    gallery: str | None = None,
    cam_offset: int = 1,
    extensions: Sequence[str] = IMAGE_EXTENSIONS,
    recursive: bool = False,
    on_mismatch: str = "raise",
    name: str = "folder",
) -> ReIDData:
    """Read folders of crops whose file names encode the camera (and optionally the identity).

    Parameters
    ----------
    root : str or os.PathLike
        Dataset folder.
    pattern : str or re.Pattern, default ``r"(?P<pid>-?\\d+)_c(?P<cam>\\d+)"``
        Regular expression searched in each file name (relative path when ``recursive``).
        It must have a named group ``cam``; the named group ``pid`` is optional: without it
        every pid is ``-1`` (unlabeled crops).
    train, query, gallery : str or None, default ".", None, None
        Sub-folders of ``root`` for each split (``"."`` = ``root`` itself); ``None`` gives an
        empty split.
    cam_offset : int, default 1
        Subtracted from numeric camera values (1 for ``c1`` = camera 0; 0 for 0-based names).
        When some camera value is not a number, cameras are instead coded 0..C-1 by sorted
        value over all splits together.
    extensions : sequence of str, default :data:`IMAGE_EXTENSIONS`
        File extensions to read (case-insensitive).
    recursive : bool, default False
        Also read images in sub-folders.
    on_mismatch : {"raise", "skip"}, default "raise"
        What to do with an image whose name does not match ``pattern``.
    name : str, default "folder"
        Name of the returned dataset.

    Returns
    -------
    ReIDData
        All images are kept, whatever their pid (no junk rule): filter with :meth:`Split.select`.

    Raises
    ------
    FileNotFoundError
        If ``root`` or a named sub-folder is missing.
    ValueError
        If ``pattern`` is invalid or lacks the ``cam`` group, a name does not match
        (``on_mismatch="raise"``), a pid is not an integer >= -1, or a camera is negative
        after ``cam_offset``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> for n in ("cam1_frame7.png", "cam2_frame3.png", "notes.txt"):
    ...     (root / n).touch()
    >>> data = read_folder(root, r"cam(?P<cam>\\d+)")
    >>> data.train.pids.tolist(), data.train.cams.tolist()
    ([-1, -1], [0, 1])
    """
    root = _check_root(root)
    regex = _compile(pattern)
    if "cam" not in regex.groupindex:
        raise ValueError(f"pattern must have a named group 'cam' (e.g. 'c(?P<cam>\\d+)'), got {regex.pattern!r}")
    cam_offset = check_int(cam_offset, "cam_offset")
    on_mismatch = check_choice(on_mismatch, "on_mismatch", ("raise", "skip"))
    if isinstance(extensions, str) or not all(isinstance(e, str) for e in extensions):
        raise TypeError(f"extensions must be a sequence of strings like ('.jpg', '.png'), got {extensions!r}")
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for arg, sub in (("train", train), ("query", query), ("gallery", gallery)):  # three splits
        if sub is None:
            parts.append((np.array([], str), np.array([], np.int64), np.array([], str)))
            continue
        if not isinstance(sub, (str, os.PathLike)):
            raise TypeError(f"{arg} must be a sub-folder name or None, got {type(sub).__name__}")
        directory = root / sub
        if not directory.is_dir():
            raise FileNotFoundError(
                f"{arg} folder {str(directory)!r} not found. Expected layout:\n{root}/\n  {sub}/    "
                f"image files whose names match {regex.pattern!r}"
            )
        parts.append(_read_folder_split(directory, regex, extensions, recursive, on_mismatch))
    raw = np.concatenate([p[2] for p in parts]).astype(str)
    if raw.size and np.char.isdigit(raw).all():
        codes = raw.astype(np.int64) - cam_offset
        if codes.min() < 0:
            raise ValueError(
                f"cam_offset must not exceed the smallest camera number, got cam_offset={cam_offset} "
                f"and camera {codes.min() + cam_offset}"
            )
    else:
        codes = check_cameras(raw, "cams")
    bounds = np.cumsum([0] + [p[0].shape[0] for p in parts])
    splits = [Split(p[0], p[1], codes[bounds[i] : bounds[i + 1]]) for i, p in enumerate(parts)]
    return ReIDData(splits[0], splits[1], splits[2], name)


_READERS: dict[str, Callable[..., ReIDData]] = {}
_ALIASES = {
    "market": "market1501",
    "duke": "dukemtmcreid",
    "dukemtmc": "dukemtmcreid",
    "msmt": "msmt17",
    "veri776": "veri",
}

DATASETS: Mapping[str, Callable[..., ReIDData]] = types.MappingProxyType(_READERS)
"""The dataset registry, name -> reader (read-only; :func:`register_dataset` adds one).

Names accepted by :func:`load_dataset`; the CALR recipe's ``data.dataset`` choices and its
help read it too, so one reader and one registration add a dataset everywhere.
"""


def register_dataset(name: str, reader: Callable[..., ReIDData], *, replace: bool = False) -> None:
    """Add a dataset reader ``reader(root, **kwargs) -> ReIDData`` under ``name``.

    ``name`` is lower case without ``-`` or ``_`` (as :func:`load_dataset` normalises names).
    Raises ``ValueError`` when it is taken (unless ``replace``) or not normalised, ``TypeError``
    when ``reader`` is not callable.

    Examples
    --------
    >>> import tempfile
    >>> register_dataset("mine", read_folder)
    >>> load_dataset("mine", tempfile.mkdtemp()).name
    'folder'
    >>> unregister_dataset("mine")
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be a non-empty string, got {name!r}")
    if name != name.lower().replace("-", "").replace("_", ""):
        raise ValueError(f"name must be lower case without '-' or '_' (load_dataset's normal form), got {name!r}")
    if not callable(reader):
        raise TypeError(f"reader must be callable, got {reader!r}")
    if name in _READERS and not replace:
        raise ValueError(f"name {name!r} is already a registered dataset; pass replace=True to replace it")
    _READERS[name] = reader


def unregister_dataset(name: str) -> None:
    """Remove the dataset ``name`` (``ValueError`` for an unknown name)."""
    check_choice(name, "name", tuple(_READERS))
    del _READERS[name]


for _name, _reader in (
    ("market1501", read_market1501),
    ("dukemtmcreid", read_dukemtmcreid),
    ("msmt17", read_msmt17),
    ("veri", read_veri),
    ("synthreid", read_synthreid),
    ("folder", read_folder),
):
    register_dataset(_name, _reader)
del _name, _reader


def load_dataset(name: str, root: str | os.PathLike[str], **kwargs: Any) -> ReIDData:
    """Read a dataset by registry name.

    Parameters
    ----------
    name : str
        A name of :data:`DATASETS`: ``"market1501"``, ``"dukemtmcreid"``, ``"msmt17"``,
        ``"veri"``, ``"synthreid"``, ``"folder"`` or one added with :func:`register_dataset`
        (case, ``-`` and ``_`` are ignored; ``"market"``, ``"duke"``, ``"msmt"`` and
        ``"veri776"`` are aliases).
    root : str or os.PathLike
        Passed to the reader.
    **kwargs
        Passed to the reader (e.g. ``version`` for MSMT17, ``pattern`` for ``"folder"``).

    Returns
    -------
    ReIDData

    Raises
    ------
    ValueError
        If ``name`` is unknown.
    FileNotFoundError
        If the reader does not find the expected layout.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> (root / "0001_c3.jpg").touch()
    >>> load_dataset("folder", root).train.cams.tolist()
    [2]
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a dataset name (str), got {type(name).__name__}")
    key = name.lower().replace("-", "").replace("_", "")
    key = _ALIASES.get(key, key)
    check_choice(key, "name", tuple(DATASETS))
    return _READERS[key](root, **kwargs)
