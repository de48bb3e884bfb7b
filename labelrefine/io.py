"""Reading and writing index-aligned arrays (.npy, .npz, .pt, .csv, .txt), and aligning stage-1 labels.

A file argument is a path, optionally followed by ``:KEY`` to pick one array of a ``.npz``
archive or of a ``.pt`` file holding a dict of tensors: ``local_labels.npz:labels``. Pickled
objects are never loaded (``allow_pickle=False``, ``torch.load(weights_only=True)``).

Stage-1 labels come from another run, often another program: :func:`align_by_name` puts
labels listed with image paths into a dataset's image order, :func:`align_by_index` checks
labels already in that order, and :func:`dataset_fingerprint` names a dataset so that labels
of other data are refused instead of being matched by position.
"""

from __future__ import annotations

import hashlib
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ._optional import import_optional
from ._validation import check_cameras, check_labels, to_numpy

__all__ = [
    "align_by_index",
    "align_by_name",
    "dataset_fingerprint",
    "import_authors_local_labels",
    "load_array",
    "load_local_labels",
    "save_array",
    "save_local_labels",
]

_SUFFIXES = (".npy", ".npz", ".pt", ".csv", ".txt")
_SAVE_SUFFIXES = (".npy", ".csv", ".txt")


def _split_key(text: str) -> tuple[Path, str | None]:
    """``file.npz:labels`` -> (file.npz, "labels"); a path without a known suffix before ``:`` is kept whole."""
    head, sep, key = text.rpartition(":")
    if sep and Path(head).suffix in _SUFFIXES and key and "/" not in key and "\\" not in key:
        return Path(head), key
    return Path(text), None


def _to_number(text: np.ndarray) -> np.ndarray | None:
    """``text`` as int64, else float64, else None."""
    for dtype in (np.int64, np.float64):
        try:
            return text.astype(dtype)
        except ValueError:
            continue
    return None


_SEPARATORS = {",": "commas", ";": "semicolons", None: "spaces or tabs"}


def _separator(path: Path) -> str | None:
    """The column separator of a text file (``,``, ``;`` or whitespace), read from its second line."""
    with open(path, encoding="utf-8") as handle:
        lines = [line.strip() for _, line in zip(range(2), handle, strict=False)]
    sample = lines[-1] if len(lines) > 1 and lines[-1] else lines[0] if lines else ""
    for sep in (",", ";"):
        if sep in sample:
            return sep
    return None if len(sample.split()) > 1 else ","


def _parse_text(path: Path, name: str) -> np.ndarray:
    """One value per line, or one row per sample separated by commas, semicolons or whitespace.

    ints if every value is an int, else floats, else strings. Trailing separators are ignored;
    a first line that is not numeric while every other line is (a header such as ``label``) is
    skipped. ``np.savetxt``'s default output (space-separated) reads back as written.
    """
    sep = _separator(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # numpy warns on empty input; we raise instead
        try:
            text = np.loadtxt(path, delimiter=sep, dtype=str, ndmin=1, encoding="utf-8")
        except ValueError as exc:
            raise ValueError(
                f"{name}: cannot read {path} as rows of values separated by {_SEPARATORS[sep]} (detected from its "
                f"first lines; one row per sample, the same separator on every line: commas, semicolons or "
                f"whitespace): {exc}"
            ) from None
    if text.size == 0:
        raise ValueError(f"{name}: {path} holds no values (an empty file)")
    text = np.char.strip(text)
    if text.ndim == 2 and sep is not None:  # trailing separators leave empty last columns
        filled = (text != "").any(axis=0)
        text = text[:, : int(np.flatnonzero(filled)[-1]) + 1] if filled.any() else text
        if text.shape[1] == 1:
            text = text[:, 0]
    numbers = _to_number(text)
    if numbers is not None:
        return numbers
    if text.shape[0] > 1:
        body = _to_number(text[1:])
        if body is not None:  # a header line above numeric rows
            return body
    return text


def _from_archive(arrays: dict[str, Any], key: str | None, path: Path, name: str, kind: str) -> Any:
    keys = sorted(arrays)
    if key is not None:
        if key not in arrays:
            raise ValueError(f"{name}: {path} has no array {key!r}; it holds {', '.join(map(repr, keys)) or 'none'}")
        return arrays[key]
    if len(keys) == 1:
        return arrays[keys[0]]
    listed = ", ".join(map(repr, keys)) or "no arrays"
    example = keys[0] if keys else "KEY"
    raise ValueError(f"{name}: {path} is a {kind} holding {listed}; pick one with {path}:{example}")


def _load_npz(path: Path, key: str | None, name: str) -> np.ndarray:
    with np.load(path, allow_pickle=False) as archive:
        return np.asarray(_from_archive({k: archive[k] for k in archive.files}, key, path, name, ".npz archive"))


def _load_pt(path: Path, key: str | None, name: str) -> np.ndarray:
    torch = import_optional("torch")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types (pickle, zip, runtime) for a foreign file
        # torch's own message advises weights_only=False, i.e. running the file's pickled code: not passed on
        raise ValueError(
            f"{name}: cannot read {path} as a torch file of tensors ({type(exc).__name__}); labelrefine reads only "
            "files written by torch.save(tensor) or torch.save({'key': tensor}), and never loads pickled objects"
        ) from None
    if isinstance(obj, dict):
        obj = _from_archive(obj, key, path, name, ".pt dict")
    elif key is not None:
        raise ValueError(f"{name}: {path} holds a single {type(obj).__name__}, not a dict: drop ':{key}'")
    if not isinstance(obj, torch.Tensor):
        raise ValueError(f"{name}: {path} must hold a tensor (or a dict of tensors), got {type(obj).__name__}")
    obj = obj.detach().cpu()
    return (obj.float() if obj.dtype == torch.bfloat16 else obj).numpy()


def _check_source(path: Path, key: str | None, name: str) -> None:
    """An existing file of a supported type; a key only for the archive types."""
    if path.is_dir():
        raise ValueError(f"{name}: {path} is a directory, expected a file ({', '.join(_SUFFIXES)})")
    if path.suffix not in _SUFFIXES:
        raise ValueError(f"{name}: unsupported file type {path.suffix!r} for {path}; use one of {', '.join(_SUFFIXES)}")
    if key is not None and path.suffix not in (".npz", ".pt"):
        raise ValueError(f"{name}: a key (':{key}') only selects an array of a .npz or .pt file, got {path}")
    if not path.is_file():
        raise FileNotFoundError(f"{name}: no such file: {path}")


def _read_by_suffix(path: Path, key: str | None, name: str) -> np.ndarray:
    if path.suffix == ".npy":
        return np.load(path, allow_pickle=False)
    if path.suffix == ".npz":
        return _load_npz(path, key, name)
    if path.suffix == ".pt":
        return _load_pt(path, key, name)
    return _parse_text(path, name)


def _unreadable(path: Path, name: str, text: str) -> ValueError:
    """The error for a reader's ValueError: numpy's pickle refusal gets its own advice."""
    if "allow_pickle" in text or "pickle" in text.lower():
        return ValueError(
            f"{name}: {path} holds pickled data (an object array, or not a numpy file at all), which "
            "labelrefine never loads: save a numeric or string array instead "
            "(np.save(path, np.asarray(values, dtype=np.int64)))"
        )
    return ValueError(f"{name}: cannot read {path}: {text}")


def load_array(path: str | Path, name: str) -> np.ndarray:
    """Load ``path`` for the argument ``name`` with errors that name both.

    Parameters
    ----------
    path : str or Path
        A ``.npy`` file; a ``.npz`` archive (its only array, or ``FILE.npz:KEY`` for one of
        several, e.g. ``local_labels.npz:labels``); a ``.pt`` file holding a tensor or a dict of
        tensors (``FILE.pt:KEY``; needs torch); or a ``.csv`` / ``.txt`` file with one value per
        line (or one row of comma-separated values per sample), optionally below one header line.
        Pickled objects are refused, never loaded.
    name : str
        The argument the file is for, used in error messages.

    Returns
    -------
    numpy.ndarray
        Never empty.

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        A directory, an unsupported suffix, a missing or ambiguous key, an empty, truncated,
        foreign or pickled file.
    ModuleNotFoundError
        A ``.pt`` file without torch installed (the message names the extra).
    """
    path, key = _split_key(str(path))
    _check_source(path, key, name)
    try:
        array = _read_by_suffix(path, key, name)
    except ValueError as exc:
        if str(exc).startswith(f"{name}: "):  # our own message, which already names the argument
            raise
        raise _unreadable(path, name, str(exc)) from None
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        raise ValueError(f"{name}: cannot read {path} (truncated or not a {path.suffix} file): {exc}") from None
    if array.size == 0:
        raise ValueError(f"{name}: {path} holds no values (an array of shape {array.shape})")
    return array


def save_array(path: str | Path, array: np.ndarray, name: str = "--output") -> Path:
    """Save to ``.npy``, or to ``.csv`` / ``.txt`` with one value (or row) per line.

    Raises
    ------
    ValueError
        An unsupported suffix, or ``path`` is an existing directory.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{name}: {path} is a directory; give a file name such as {path / 'labels.npy'}")
    if path.suffix not in _SAVE_SUFFIXES:
        raise ValueError(
            f"{name}: unsupported file type {path.suffix!r} for {path}; use one of {', '.join(_SAVE_SUFFIXES)}"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".npy":
        np.save(path, array)
    else:
        np.savetxt(path, array, delimiter=",", fmt="%d" if np.issubdtype(array.dtype, np.integer) else "%.8g")
    return path


# ----------------------------------------------------------------------------------------------
# stage-1 labels: alignment with a dataset's image order


def _basenames(keys: np.ndarray) -> np.ndarray:
    text = np.char.replace(np.asarray(keys, dtype=str), "\\", "/")
    return np.char.rpartition(text, "/")[..., 2] if text.size else text


def dataset_fingerprint(keys: Any, *, extra: str = "") -> str:
    """A short id of a dataset's training images, stored with stage-1 labels to refuse labels of other data.

    Parameters
    ----------
    keys : array-like of str, shape (N,)
        The training images' paths (or keys). Only file names count, in sorted order, so the
        id survives moving the dataset to another folder and reordering it; identities and
        labels play no part.
    extra : str, default ""
        Anything else that tells two datasets with the same file names apart: the generator's
        arguments of a synthetic set (its seed, its number of identities).

    Returns
    -------
    str
        16 hexadecimal digits (SHA-1 of the sorted file names and ``extra``).

    Examples
    --------
    >>> moved = dataset_fingerprint(["b/0002_c2.jpg", "b/0001_c1.jpg"])
    >>> dataset_fingerprint(["a/0001_c1.jpg", "a/0002_c2.jpg"]) == moved
    True
    >>> dataset_fingerprint(["0.jpg"], extra="seed=0") == dataset_fingerprint(["0.jpg"], extra="seed=1")
    False
    """
    names = np.sort(_basenames(to_numpy(keys, "keys").astype(str).reshape(-1)))
    digest = hashlib.sha1("\n".join(names.tolist()).encode("utf-8"))
    digest.update(b"\0" + str(extra).encode("utf-8"))
    return digest.hexdigest()[:16]


def align_by_name(labels: Any, keys: Any, train_keys: Any, *, source: str = "labels") -> np.ndarray:
    """Labels listed with image paths, put into the order of a dataset's training images.

    Each of ``train_keys`` gets the label of the same path in ``keys``; when no path matches
    exactly (the dataset was moved), the same file name.

    Parameters
    ----------
    labels : array-like of int, shape (M,)
        Labels, -1 = not clustered (whole-number floats accepted).
    keys : array-like of str, shape (M,)
        The image path (or file name) of each label.
    train_keys : array-like of str, shape (N,)
        The dataset's training image paths, in the order the labels are wanted (e.g.
        ``[fname for fname, _, _ in sorted(dataset.train)]``).
    source : str, default "labels"
        What the labels are, for messages (e.g. the file they came from).

    Returns
    -------
    numpy.ndarray of int64, shape (N,)
        One label per training image; -1 for images that ``keys`` does not list.

    Warns
    -----
    UserWarning
        When some training images are not listed (their label is -1).

    Raises
    ------
    ValueError
        If no key matches a training image, lengths differ, ``keys`` repeats a path, or the
        file names are not unique when matching by file name is needed.

    Examples
    --------
    >>> keys = ["old/x/0001_c1.jpg", "old/x/0002_c1.jpg"]
    >>> align_by_name([3, 5], keys, ["new/0002_c1.jpg", "new/0001_c1.jpg"]).tolist()
    [5, 3]
    """
    file_labels = check_labels(labels, "labels")
    file_keys = to_numpy(keys, "keys").astype(str)
    if file_keys.shape != file_labels.shape:
        raise ValueError(f"keys must have one entry per label ({file_labels.shape[0]}), got shape {file_keys.shape}")
    train = to_numpy(train_keys, "train_keys").astype(str).reshape(-1)
    out = np.full(train.shape[0], -1, dtype=np.int64)
    for exact in (True, False):
        a = file_keys if exact else _basenames(file_keys)
        b = train if exact else _basenames(train)
        if np.unique(a).size != a.size:
            raise ValueError(f"{source}: keys are not unique ({'paths' if exact else 'file names'} repeat)")
        if not exact and np.unique(b).size != b.size:
            raise ValueError(f"{source}: training image file names are not unique, cannot match by file name")
        order = np.argsort(a, kind="stable")
        pos = np.clip(np.searchsorted(a[order], b), 0, max(a.size - 1, 0))
        found = a[order][pos] == b if a.size else np.zeros(b.size, dtype=bool)
        if found.any():
            out[found] = file_labels[order[pos[found]]]
            missing = int((~found).sum())
            if missing:
                message = f"{source}: {missing} of {b.size} training images have no label (set to -1)"
                warnings.warn(message, UserWarning, stacklevel=2)
            return out
    raise ValueError(
        f"{source}: none of its {file_keys.size} keys matches a training image (by path or by file name); "
        "was it written for this dataset?"
    )


def align_by_index(labels: Any, train_cams: Any, *, cams: Any = None, source: str = "labels") -> np.ndarray:
    """Labels already in the dataset's image order, checked against it instead of trusted.

    Parameters
    ----------
    labels : array-like of int, shape (N,)
        One label per training image, in the dataset's order (-1 = not clustered).
    train_cams : array-like, shape (N,)
        The dataset's camera of each training image.
    cams : array-like, shape (N,), optional
        The cameras saved with the labels (stage 1 knows them). Strongly recommended: labels of
        another dataset or another image order then fail here instead of training on wrong
        labels.
    source : str, default "labels"
        What the labels are, for messages.

    Returns
    -------
    numpy.ndarray of int64, shape (N,)

    Raises
    ------
    ValueError
        If the lengths differ or a camera differs (the first such image is named).

    Examples
    --------
    >>> align_by_index([0.0, 1.0, -1.0], [1, 1, 2], cams=[1, 1, 2]).tolist()
    [0, 1, -1]
    """
    out = check_labels(labels, "labels")
    expected = to_numpy(train_cams, "train_cams").reshape(-1)
    if out.shape[0] != expected.shape[0]:
        raise ValueError(
            f"{source}: {out.shape[0]} labels for {expected.shape[0]} training images; labels aligned by index "
            "need exactly one per image, in the dataset's order (align_by_name matches by path instead)"
        )
    if cams is not None:
        given = to_numpy(cams, "cams").reshape(-1)
        check_cameras(given, "cams", n=expected.shape[0])
        differ = given.astype(str) != expected.astype(str)
        if differ.any():
            i = int(np.flatnonzero(differ)[0])
            found, wanted = given[i].item(), expected[i].item()
            raise ValueError(
                f"{source}: image {i} is from camera {found!r} in the labels but {wanted!r} in the dataset "
                f"({int(differ.sum())} images differ): the labels belong to other data or another image order"
            )
    return out


def save_local_labels(path: str | Path, labels: Any, keys: Any, cams: Any, *, fingerprint: str = "") -> Path:
    """Write stage-1 labels as ``.npz`` with arrays ``labels`` (int64), ``keys`` (str), ``cams`` (int64).

    This is the stage-1 output of ``labelrefine-calr intra``. A non-empty ``fingerprint``
    (:func:`dataset_fingerprint` of the training images) is stored too, so that
    :func:`load_local_labels` refuses the labels on other data.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = save_local_labels(pathlib.Path(tempfile.mkdtemp()) / "local_labels.npz", [0, 1, -1], ["a", "b", "c"],
    ...                          [0, 0, 1])
    >>> load_local_labels(path, ["c", "a", "b"]).tolist()
    [-1, 0, 1]
    """
    labels = check_labels(labels, "labels")
    keys_arr = np.asarray(to_numpy(keys, "keys"), dtype=str)
    cams_arr = check_cameras(cams, "cams", n=labels.shape[0])
    if keys_arr.shape != labels.shape:
        raise ValueError(f"keys must have one entry per label ({labels.shape[0]}), got shape {keys_arr.shape}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.npz")
    arrays: dict[str, Any] = {"labels": labels, "keys": keys_arr, "cams": cams_arr}
    if fingerprint:
        arrays["fingerprint"] = np.asarray(fingerprint)
    np.savez(tmp, **arrays)
    tmp.replace(path)
    return path


def load_local_labels(path: str | Path, train_keys: Any, *, fingerprint: str = "") -> np.ndarray:
    """Stage-1 labels from a file, aligned with a dataset's training images.

    Parameters
    ----------
    path : str or Path
        ``local_labels.npz`` as :func:`save_local_labels` writes it (``labelrefine-calr intra``),
        a stage-1 run folder holding one, or the authors' released per-camera ``.npy`` files (a
        file, or a folder searched for them; see :func:`import_authors_local_labels`).
    train_keys : array-like of str, shape (N,)
        The training images' paths in the order the labels are wanted, e.g.
        ``[fname for fname, _, _ in sorted(dataset.train)]`` in a Cluster-Contrast script.
    fingerprint : str, default ""
        :func:`dataset_fingerprint` of the training images; a ``.npz`` file that stores another
        one was written for other data and is refused.

    Returns
    -------
    numpy.ndarray of int64, shape (N,)
        Keys are matched exactly, else by file name (datasets moved to another folder, see
        :func:`align_by_name`); training images that the file does not list get -1.

    Raises
    ------
    FileNotFoundError
        If the file is missing.
    ValueError
        If it is not a labels file, no key matches, or the file stores a dataset fingerprint
        other than ``fingerprint`` (stage 1 ran on other data).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "local_labels.npz"
    >>> _ = save_local_labels(path, [0, 1, -1], ["x/a.jpg", "x/b.jpg", "x/c.jpg"], [0, 0, 1])
    >>> load_local_labels(path, ["y/c.jpg", "y/a.jpg", "y/b.jpg"]).tolist()
    [-1, 0, 1]
    """
    path = Path(path)
    if path.suffix == ".npy" or (
        path.is_dir() and not (path / "local_labels.npz").is_file() and any(path.rglob("*.npy"))
    ):
        return import_authors_local_labels(path, train_keys)
    if path.is_dir():
        path = path / "local_labels.npz"
    if not path.is_file():
        raise FileNotFoundError(f"local_labels file not found: {str(path)!r}")
    try:
        data = np.load(path, allow_pickle=False)
        if not hasattr(data, "files") or "labels" not in data.files or "keys" not in data.files:
            raise ValueError(f"local_labels file {str(path)!r} must be a .npz archive with arrays 'labels' and 'keys'")
        with data:
            labels = check_labels(data["labels"], "labels")
            keys = np.asarray(data["keys"], dtype=str)
            stored = str(data["fingerprint"]) if "fingerprint" in data.files else ""
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        raise ValueError(
            f"local_labels file {str(path)!r} cannot be read (truncated or not a .npz file): {exc}"
        ) from None
    except ValueError as exc:
        if "pickle" not in str(exc):
            raise
        raise ValueError(
            f"local_labels file {str(path)!r} is not a .npz archive of arrays (a pickle or a foreign file; pickles are "
            "never loaded)"
        ) from None
    if stored and fingerprint and stored != fingerprint:
        raise ValueError(
            f"local_labels file {str(path)!r} was written for other data (dataset fingerprint {stored}, this run's "
            f"data {fingerprint}): stage 1 ran on another dataset or another synthetic set (other synthetic.* "
            "settings or seed); run `labelrefine-calr intra` on this data, or pass its local_labels.npz"
        )
    return align_by_name(labels, keys, train_keys, source=f"local_labels file {str(path)!r}")


def import_authors_local_labels(files: Any, train_keys: Any) -> np.ndarray:
    """Local labels from the authors' released stage-1 output, aligned with ``train_keys``.

    The authors' intra-camera script saves, for each camera, ``np.array(pseudo_labeled_dataset)``:
    a string array of shape (n, 3) whose rows are ``(image path, local label, camera)`` for the
    images that were clustered (``-1`` images are left out).

    Parameters
    ----------
    files : path or sequence of paths
        ``.npy`` files (one per camera), or a folder searched recursively for them.
    train_keys : array-like of str
        Image paths of the training split, in training order; rows are matched by path, else by
        file name.

    Returns
    -------
    numpy.ndarray of int64
        One label per training image, unique across cameras (each file's ids are offset past the
        previous files'), -1 for images no file lists.

    Raises
    ------
    FileNotFoundError
        No file found.
    ValueError
        A file is not an (n, 3) array, its labels are not integers, or nothing matches.

    Examples
    --------
    >>> import numpy as np, tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> np.save(folder / "cam1.npy", np.array([("x/0001_c1_a.jpg", 0, 0), ("x/0002_c1_b.jpg", 0, 0)]))
    >>> np.save(folder / "cam2.npy", np.array([("x/0001_c2_c.jpg", 0, 1)]))
    >>> keys = ["/data/0001_c1_a.jpg", "/data/0001_c2_c.jpg", "/data/0002_c1_b.jpg", "/data/0003_c2_d.jpg"]
    >>> import_authors_local_labels(folder, keys).tolist()
    [0, 1, 0, -1]
    """
    if isinstance(files, (str, Path)):
        root = Path(files)
        paths = sorted(root.rglob("*.npy")) if root.is_dir() else [root]
    else:
        paths = [Path(f) for f in files]
    if not paths:
        raise FileNotFoundError(f"no .npy files of local labels found in {str(files)!r}")
    all_keys, all_labels = [], []
    offset = 0
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(f"local labels file not found: {str(path)!r}")
        try:
            rows = np.load(path, allow_pickle=False)
        except (zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
            raise ValueError(f"local labels file {str(path)!r} cannot be read as a .npy array: {exc}") from None
        if rows.ndim != 2 or rows.shape[1] != 3:
            raise ValueError(f"{str(path)!r} must hold an (n, 3) array of (path, label, camera) rows, got {rows.shape}")
        try:
            labels = rows[:, 1].astype(np.int64)
        except ValueError:
            raise ValueError(f"{str(path)!r}: the label column must hold integers") from None
        labels = np.where(labels >= 0, labels + offset, -1)
        offset = int(labels.max()) + 1 if (labels >= 0).any() else offset
        all_keys.append(rows[:, 0].astype(str))
        all_labels.append(labels)
    keys = np.concatenate(all_keys)
    source = f"authors' local labels ({len(paths)} file{'s' if len(paths) != 1 else ''})"
    return align_by_name(np.concatenate(all_labels), keys, train_keys, source=source)
