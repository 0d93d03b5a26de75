"""The decoded-image cache: one .npy file per dataset folder and image size, read a batch at a time.

Decoding writes each image straight into its row of the file (`pwrite` from the decode
threads), and training, evaluation and export read the rows they need (`preadv`): no process
ever holds every image. The file is read with preadv rather than memory-mapped because mapped
pages count as the process's resident memory once touched: after one epoch a mapping would
show the whole cache as resident, although the kernel could drop it.

Files in the cache folder, for a dataset folder D and size S:
    images-{S}px-{hash of D}-{key}.npy    (N, S, S, 3) uint8, one row per record, zeros if unreadable
    images-{S}px-{hash of D}-{key}.json   the unreadable images and why
`key` hashes the preprocessing, the size and every image's id, byte size and mtime; when it
changes the old files of the same dataset and size are deleted, not kept beside the new ones.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

from edge.preprocess import PREPROCESSING_NAME

# Rows read per system call batch when a whole view is materialized or iterated.
READ_CHUNK = 256


class PixelFile:
    """Rows of an (N, S, S, 3) uint8 .npy file, read on demand with preadv (no mapping)."""

    def __init__(self, path: Path):
        header = np.load(path, mmap_mode="r")  # parses the header; touches no pixel page
        self.path = Path(path)
        self.shape: tuple[int, ...] = header.shape
        self.offset = int(header.offset)
        self.row_bytes = int(np.prod(self.shape[1:]))
        del header
        self._fd = os.open(path, os.O_RDONLY)

    def __len__(self) -> int:
        return self.shape[0]

    def rows(self, index: np.ndarray) -> np.ndarray:
        """A new array with the given rows, in the given order.

        Raises:
            OSError: the file is shorter than its header says (truncated cache).
        """
        out = np.empty((len(index), *self.shape[1:]), np.uint8)
        for j, i in enumerate(np.asarray(index, dtype=np.int64)):
            got = os.preadv(self._fd, [memoryview(out[j]).cast("B")], self.offset + int(i) * self.row_bytes)
            if got != self.row_bytes:
                raise OSError(f"{self.path} is truncated at row {i}; delete it to decode again")
        return out

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __del__(self):
        self.close()


class ArrayRows:
    """The PixelFile interface over an in-memory array (decoding without a cache folder)."""

    def __init__(self, array: np.ndarray):
        self.array = array
        self.shape = array.shape

    def __len__(self) -> int:
        return len(self.array)

    def rows(self, index: np.ndarray) -> np.ndarray:
        return self.array[np.asarray(index, dtype=np.int64)]


class Pixels:
    """A read-only (n, S, S, 3) uint8 array-like: chosen rows of a PixelFile, read when indexed.

    Indexing with an int gives one image; with a slice, an index array or a boolean mask, a new
    ndarray (as numpy's fancy indexing does). `np.asarray(view)` and `astype` read every row:
    fine for a test split, not for a training split; `batches` and iteration read in chunks.
    """

    def __init__(self, source: PixelFile | ArrayRows, index: np.ndarray):
        self.source = source
        self.index = np.asarray(index, dtype=np.int64)
        self.shape: tuple[int, ...] = (len(self.index), *source.shape[1:])
        self.dtype = np.dtype(np.uint8)
        self.ndim = len(self.shape)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            return self.source.rows(self.index[[key]])[0]
        return self.source.rows(self.index[key])

    def subset(self, key) -> Pixels:
        """Another lazy view: the rows `key` (slice, index array or mask) of this one."""
        return Pixels(self.source, self.index[key])

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        whole = self.source.rows(self.index)
        return whole if dtype is None else whole.astype(dtype)

    def astype(self, dtype) -> np.ndarray:
        return np.asarray(self, dtype=dtype)

    def batches(self, size: int) -> Iterator[np.ndarray]:
        for start in range(0, len(self), size):
            yield self[start:start + size]

    def __iter__(self) -> Iterator[np.ndarray]:
        for chunk in self.batches(READ_CHUNK):
            yield from chunk


def dataset_id(records: pd.DataFrame) -> str:
    """Which dataset folder the records come from (the folder holding all their images)."""
    folders = {os.path.dirname(os.path.abspath(p)) for p in records["path"]}
    return hashlib.sha256(os.path.commonpath(sorted(folders)).encode()).hexdigest()[:8] if folders else "empty"


def content_key(records: pd.DataFrame, size: int) -> str:
    """Changes when the preprocessing, the size or any image (id, bytes, mtime) changes."""
    h = hashlib.sha256(f"{PREPROCESSING_NAME}:{size}".encode())
    for image_id, path in zip(records["image_id"], records["path"], strict=True):
        stat = Path(path).stat()
        h.update(f"{image_id}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return h.hexdigest()[:20]


def cache_stem(records: pd.DataFrame, size: int) -> tuple[str, str]:
    """(prefix shared by every cache of this dataset and size, full stem of the current one)."""
    prefix = f"images-{size}px-{dataset_id(records)}"
    return prefix, f"{prefix}-{content_key(records, size)}"


@contextmanager
def locked(cache_dir: Path, prefix: str):
    """Hold an exclusive lock for one dataset and size: one process decodes, the others wait."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    with open(cache_dir / f"{prefix}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def read_cache(cache_dir: Path, stem: str) -> tuple[PixelFile, dict[str, str]] | None:
    """The cached pixels and unreadable-image reasons, or None when there is no complete cache."""
    npy, meta = cache_dir / f"{stem}.npy", cache_dir / f"{stem}.json"
    if not (npy.is_file() and meta.is_file()):
        return None
    return PixelFile(npy), json.loads(meta.read_text())["corrupt"]


def write_cache(cache_dir: Path, stem: str, shape: tuple[int, ...],
                fill: Callable[[Callable[[int, np.ndarray], None]], dict[str, str]]) -> tuple[PixelFile, dict[str, str]]:
    """Create the .npy, let `fill(write_row)` write every row, then publish it atomically.

    `fill` returns the reasons of the unreadable images (image id -> reason); their rows stay zero.
    """
    tmp = cache_dir / f"{stem}.tmp-{os.getpid()}.npy"
    np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape).flush()  # header + sparse file
    layout = PixelFile(tmp)
    fd = os.open(tmp, os.O_WRONLY)
    try:
        def write_row(i: int, pixels: np.ndarray) -> None:
            os.pwrite(fd, np.ascontiguousarray(pixels, np.uint8).data, layout.offset + i * layout.row_bytes)

        corrupt = fill(write_row)
        os.fsync(fd)
    finally:
        os.close(fd)
        layout.close()
    (cache_dir / f"{stem}.json").write_text(json.dumps({"shape": list(shape), "corrupt": corrupt}) + "\n")
    final = tmp.replace(cache_dir / f"{stem}.npy")
    return PixelFile(final), corrupt


def remove_stale(cache_dir: Path, prefix: str, keep: str, size: int) -> list[Path]:
    """Delete this dataset's caches at this size other than `keep`, and pre-.npy caches of the size."""
    stale = [p for p in cache_dir.glob(f"{prefix}-*") if p.name not in (f"{keep}.npy", f"{keep}.json")]
    stale += list(cache_dir.glob(f"images-{size}-*.npz"))  # the former single-archive format
    for path in stale:
        path.unlink(missing_ok=True)
    return stale
