"""IDX files (MNIST, Fashion-MNIST): find, download with checksums, parse, split.

Format (LeCun's MNIST page): a big-endian header ``0x00 0x00 <type> <ndim>`` followed by
``ndim`` uint32 sizes, then the payload in C order. Images are type 0x08 (unsigned byte),
ndim 3 (n, rows, cols); labels are type 0x08, ndim 1 (n,). Pixels are scaled by
``1/255`` in float32 exactly as TensorFlow's tutorial loader did
(``numpy.multiply(images, 1.0 / 255.0)``), and flattened to ``rows * cols``.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
import tempfile
import threading
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

import numpy as np
import numpy.typing as npt

from app.training.datasets.base import DatasetError, DatasetUnavailableError

IDX_UBYTE = 0x08
_HEADER_MAX = 4 + 4 * 3  # magic + up to three uint32 sizes


@dataclass(frozen=True)
class IdxFile:
    """One canonical file of an IDX dataset and the checksums of its ``.gz`` on the mirrors."""

    stem: str  # "train-images-idx3-ubyte"
    ndim: int  # 3 for images, 1 for labels
    count: int  # number of items the canonical file holds
    gz_bytes: int  # size of the canonical .gz (download size cap is a bit above)
    sha256: str | None
    md5: str | None

    @property
    def gz_name(self) -> str:
        return self.stem + ".gz"

    @property
    def alt_stem(self) -> str:
        """The name some unpackers give the raw file: ``train-images.idx3-ubyte``."""
        head, _, tail = self.stem.rpartition("-idx")
        return f"{head}.idx{tail}"


@dataclass(frozen=True)
class IdxSpec:
    """An IDX dataset: its files, image size, classes, mirrors and where it may live."""

    name: str
    train_images: IdxFile
    train_labels: IdxFile
    test_images: IdxFile
    test_labels: IdxFile
    rows: int
    cols: int
    n_classes: int
    mirrors: tuple[str, ...]
    system_dirs: tuple[Path, ...]  # read-only places searched after data_dir/<name>
    source: str  # for docs and listings

    def files(self, *, test: bool) -> tuple[IdxFile, ...]:
        pair = (self.train_images, self.train_labels)
        return (*pair, self.test_images, self.test_labels) if test else pair


# Checksums: MNIST SHA-256 and MD5 of the .gz files as served by both mirrors (the
# torchvision/TFDS values); Fashion-MNIST MD5 from zalandoresearch/fashion-mnist's README
# (the project publishes no SHA-256).
MNIST = IdxSpec(
    name="mnist",
    train_images=IdxFile(
        "train-images-idx3-ubyte",
        3,
        60_000,
        9_912_422,
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    ),
    train_labels=IdxFile(
        "train-labels-idx1-ubyte",
        1,
        60_000,
        28_881,
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "d53e105ee54ea40749a09fcbcd1e9432",
    ),
    test_images=IdxFile(
        "t10k-images-idx3-ubyte",
        3,
        10_000,
        1_648_877,
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "9fb629c4189551a2d022fa330f9573f3",
    ),
    test_labels=IdxFile(
        "t10k-labels-idx1-ubyte",
        1,
        10_000,
        4_542,
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        "ec29112dd5afa0611ce80d1b7f02629c",
    ),
    rows=28,
    cols=28,
    n_classes=10,
    mirrors=(
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
    system_dirs=(),
    source="LeCun, Cortes & Burges, THE MNIST DATABASE of handwritten digits",
)

FASHION_MNIST = IdxSpec(
    name="fashion-mnist",
    train_images=IdxFile(
        "train-images-idx3-ubyte", 3, 60_000, 26_421_880, None, "8d4fb7e6c68d591d4c3dfef9ec88bf0d"
    ),
    train_labels=IdxFile(
        "train-labels-idx1-ubyte", 1, 60_000, 29_515, None, "25c81989df183df01b3e8a0aad5dffbe"
    ),
    test_images=IdxFile(
        "t10k-images-idx3-ubyte", 3, 10_000, 4_422_102, None, "bef4ecab320f06d8554ea6380940ec79"
    ),
    test_labels=IdxFile(
        "t10k-labels-idx1-ubyte", 1, 10_000, 5_148, None, "bb300cfdad3c16e7a12a480ee83cd310"
    ),
    rows=28,
    cols=28,
    n_classes=10,
    mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    # Debian/Ubuntu package dataset-fashion-mnist (recompressed: its .gz checksums differ
    # from the mirror's, the decompressed IDX payload is the same).
    system_dirs=(Path("/usr/share/datasets/fashion-mnist"),),
    source="Xiao, Rasul & Vollgraf 2017, Fashion-MNIST (arXiv:1708.07747)",
)

IDX_SPECS: dict[str, IdxSpec] = {s.name: s for s in (MNIST, FASHION_MNIST)}

# A download is refused once it passes this many bytes over the canonical size.
_DOWNLOAD_SLACK = 1 << 20
_CHUNK = 1 << 20


# ---------------------------------------------------------------------------------------
# Locating files


def _candidates(directory: Path, f: IdxFile) -> tuple[Path, ...]:
    return (
        directory / f.gz_name,
        directory / f.stem,
        directory / f.alt_stem,
        directory / (f.alt_stem + ".gz"),
    )


def find_file(directory: Path, f: IdxFile) -> Path | None:
    """The first existing spelling of ``f`` in ``directory`` (``.gz`` first), or None."""
    for path in _candidates(directory, f):
        if path.is_file():
            return path
    return None


def search_dirs(spec: IdxSpec, data_dir: Path) -> tuple[Path, ...]:
    """Where ``spec``'s files are looked for, in order: ``data_dir/<name>``, system dirs."""
    return (Path(data_dir) / spec.name, *spec.system_dirs)


def locate(spec: IdxSpec, data_dir: Path, *, test: bool) -> dict[str, Path] | None:
    """Paths of all needed files from the first directory that has every one, else None."""
    for directory in search_dirs(spec, data_dir):
        found = {f.stem: find_file(directory, f) for f in spec.files(test=test)}
        if all(p is not None for p in found.values()):
            return {k: p for k, p in found.items() if p is not None}
    return None


def _put_files(spec: IdxSpec, data_dir: Path, *, test: bool) -> str:
    """``put <files> (gzipped or not) into <dir> (searched: ...)`` [, or install ...]."""
    target = Path(data_dir) / spec.name
    names = ", ".join(f.gz_name for f in spec.files(test=test))
    where = " or ".join(str(d) for d in search_dirs(spec, data_dir))
    text = f"put {names} (gzipped or not) into {target} (searched: {where})"
    if spec.name == "fashion-mnist":
        text += ", or install the Debian package dataset-fashion-mnist"
    return text


def unavailable_message(spec: IdxSpec, data_dir: Path, *, test: bool) -> str:
    """Downloads are disabled: say exactly which files to put in which directory."""
    return (
        f"dataset {spec.name!r} is not available: {_put_files(spec, data_dir, test=test)}; "
        f"or enable downloads (INITLAB_ALLOW_DOWNLOADS=true) to fetch them from "
        f"{spec.mirrors[0]}"
    )


def download_hint(spec: IdxSpec, data_dir: Path, *, test: bool, mirrors: Sequence[str] = ()) -> str:
    """Downloads are enabled but the files are absent: what a job will do, and the way
    around a machine without network."""
    bases = ", ".join(tuple(mirrors) or spec.mirrors)
    return (
        f"the files of dataset {spec.name!r} are not on this machine; a job that uses it "
        f"downloads them into {Path(data_dir) / spec.name} first (from {bases}). Without "
        f"network access, {_put_files(spec, data_dir, test=test)}"
    )


def download_failed_message(
    spec: IdxSpec, data_dir: Path, f: IdxFile, errors: Sequence[str], *, test: bool
) -> str:
    """Every mirror failed for ``f``: where to put the files by hand first (a truncated
    job error keeps it), then each URL tried with its error."""
    tried = "; ".join(errors) if errors else "no mirror configured"
    return (
        f"dataset {spec.name!r} could not be downloaded; instead, "
        f"{_put_files(spec, data_dir, test=test)}. {f.gz_name} failed from every mirror "
        f"({len(errors)} tried: {tried})"
    )


# ---------------------------------------------------------------------------------------
# Downloading


class DownloadError(Exception):
    """One mirror failed (network, size or checksum); the message says which and why."""


def _download_one(url: str, f: IdxFile, dest: Path, timeout: float) -> None:
    """Stream ``url`` to a temp file beside ``dest``, verify, then atomically rename."""
    limit = f.gz_bytes + _DOWNLOAD_SLACK
    dest.parent.mkdir(parents=True, exist_ok=True)
    sha, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{f.gz_name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=timeout) as resp:
                    total = 0
                    while chunk := resp.read(_CHUNK):
                        total += len(chunk)
                        if total > limit:
                            raise DownloadError(f"{url}: more than {limit} bytes, refused")
                        sha.update(chunk)
                        md5.update(chunk)
                        out.write(chunk)
            except (urllib.error.URLError, OSError, ValueError) as exc:
                raise DownloadError(f"{url}: {exc}") from exc
            out.flush()
            os.fsync(out.fileno())
        if f.sha256 is not None and sha.hexdigest() != f.sha256:
            raise DownloadError(
                f"{url}: SHA-256 mismatch (expected {f.sha256}, got {sha.hexdigest()})"
            )
        if f.md5 is not None and md5.hexdigest() != f.md5:
            raise DownloadError(f"{url}: MD5 mismatch (expected {f.md5}, got {md5.hexdigest()})")
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


_download_lock = threading.Lock()


def download(
    spec: IdxSpec,
    data_dir: Path,
    *,
    test: bool,
    mirrors: Sequence[str] | None = None,
    timeout: float = 60.0,
) -> dict[str, Path]:
    """Fetch the missing files of ``spec`` into ``data_dir/<name>``; verified, atomic.

    Tries each mirror in turn per file. Raises :class:`DatasetUnavailableError` naming every
    failure (and where to put the files by hand) when no mirror delivers a verified file.
    """
    target = Path(data_dir) / spec.name
    bases = tuple(mirrors) if mirrors else spec.mirrors
    paths: dict[str, Path] = {}
    with _download_lock:
        for f in spec.files(test=test):
            existing = find_file(target, f)
            if existing is not None:
                paths[f.stem] = existing
                continue
            errors: list[str] = []
            for base in bases:
                url = base.rstrip("/") + "/" + f.gz_name
                try:
                    _download_one(url, f, target / f.gz_name, timeout)
                except DownloadError as exc:
                    errors.append(str(exc))
                    continue
                paths[f.stem] = target / f.gz_name
                break
            else:
                raise DatasetUnavailableError(
                    "dataset.name",
                    spec.name,
                    download_failed_message(spec, data_dir, f, errors, test=test),
                )
    return paths


# ---------------------------------------------------------------------------------------
# Parsing


def _open(path: Path) -> IO[bytes]:
    with path.open("rb") as probe:
        gz = probe.read(2) == b"\x1f\x8b"
    return cast(IO[bytes], gzip.open(path, "rb")) if gz else path.open("rb")


def _bad(path: Path, msg: str) -> DatasetError:
    return DatasetError("dataset.name", str(path), f"{path}: {msg}")


def _read_header(stream: IO[bytes], path: Path, ndim: int) -> tuple[int, ...]:
    head = stream.read(4)
    if len(head) < 4 or head[0] != 0 or head[1] != 0:
        raise _bad(path, "not an IDX file (bad magic number)")
    if head[2] != IDX_UBYTE:
        raise _bad(path, f"IDX data type 0x{head[2]:02x}, expected 0x08 (unsigned byte)")
    if head[3] != ndim:
        raise _bad(path, f"IDX file has {head[3]} dimensions, expected {ndim}")
    dims_raw = stream.read(4 * ndim)
    if len(dims_raw) < 4 * ndim:
        raise _bad(path, "truncated IDX header")
    return tuple(struct.unpack(f">{ndim}I", dims_raw))


def read_header(path: Path, f: IdxFile) -> tuple[int, ...]:
    """The dimensions in ``path``'s header (reads at most 16 bytes of payload)."""
    try:
        with _open(path) as stream:
            return _read_header(stream, path, f.ndim)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise _bad(path, f"cannot read: {exc}") from exc


def read_idx(path: Path, f: IdxFile, *, rows: int, cols: int) -> npt.NDArray[np.uint8]:
    """Parse one IDX file into uint8 ``(n, rows*cols)`` (images) or ``(n,)`` (labels).

    Checks the magic number, the dimensions and that the payload has exactly the declared
    size before allocating more than the header says.
    """
    try:
        with _open(path) as stream:
            dims = _read_header(stream, path, f.ndim)
            if f.ndim == 3 and dims[1:] != (rows, cols):
                raise _bad(path, f"images are {dims[1]}x{dims[2]}, expected {rows}x{cols}")
            n = dims[0]
            if n > f.count:
                raise _bad(path, f"{n} items, more than the {f.count} of the canonical file")
            size = n * (rows * cols if f.ndim == 3 else 1)
            payload = stream.read(size + 1)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise _bad(path, f"cannot read: {exc}") from exc
    if len(payload) != size:
        raise _bad(
            path,
            f"payload is {len(payload)} bytes{'+' if len(payload) > size else ''},"
            f" the header says {size}",
        )
    arr = np.frombuffer(payload, dtype=np.uint8)
    return arr.reshape(n, rows * cols) if f.ndim == 3 else arr


# Parsed uint8 arrays by (path, mtime, size): workers load the same files for every run.
_cache: dict[tuple[str, int, int], npt.NDArray[np.uint8]] = {}
_cache_lock = threading.Lock()
_CACHE_MAX = 8


def read_idx_cached(path: Path, f: IdxFile, *, rows: int, cols: int) -> npt.NDArray[np.uint8]:
    st = path.stat()
    key = (str(path.resolve()), st.st_mtime_ns, st.st_size)
    with _cache_lock:
        hit = _cache.get(key)
    if hit is not None:
        return hit
    arr = read_idx(path, f, rows=rows, cols=cols)
    arr.flags.writeable = False
    with _cache_lock:
        if len(_cache) >= _CACHE_MAX:
            _cache.pop(next(iter(_cache)))
        _cache[key] = arr
    return arr


def scale_pixels(u8: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    """uint8 → float32 in [0, 1]: ``x * float32(1/255)``, as the TF tutorial loader."""
    out = np.empty(u8.shape, dtype=np.float32)
    np.multiply(u8, np.float32(1.0 / 255.0), out=out, dtype=np.float32)
    return out


def load_arrays(spec: IdxSpec, paths: Mapping[str, Path], *, test: bool) -> dict[str, Any]:
    """uint8 images and int64 labels for train (and test), counts checked."""
    out: dict[str, Any] = {}
    for split, (fi, fl) in {
        "train": (spec.train_images, spec.train_labels),
        "test": (spec.test_images, spec.test_labels),
    }.items():
        if split == "test" and not test:
            continue
        images = read_idx_cached(paths[fi.stem], fi, rows=spec.rows, cols=spec.cols)
        labels = read_idx_cached(paths[fl.stem], fl, rows=spec.rows, cols=spec.cols)
        if len(images) != len(labels):
            raise _bad(paths[fl.stem], f"{len(labels)} labels for {len(images)} images in {split}")
        if labels.size and int(labels.max()) >= spec.n_classes:
            raise _bad(paths[fl.stem], f"label {int(labels.max())} outside [0, {spec.n_classes})")
        out[f"x_{split}"] = images
        out[f"y_{split}"] = labels
    return out
