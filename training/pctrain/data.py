"""The official Fashion-MNIST split, read from Debian's dataset-fashion-mnist.

The four idx files are verified by the sha256 of their decompressed bytes, so
a model is never trained or evaluated on a silently different dataset.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DEFAULT_DIR = "/usr/share/datasets/fashion-mnist"
ENV_DIR = "FASHION_MNIST_DIR"
APT_PACKAGE = "dataset-fashion-mnist"

LABELS = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]

# sha256 of the decompressed idx files of the official release.
FILES = {
    "train-images": ("train-images-idx3-ubyte", "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"),
    "train-labels": ("train-labels-idx1-ubyte", "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"),
    "test-images": ("t10k-images-idx3-ubyte", "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"),
    "test-labels": ("t10k-labels-idx1-ubyte", "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"),
}


class DatasetError(RuntimeError):
    """The dataset files are missing, unreadable or not the official bytes."""


@dataclass(frozen=True)
class Split:
    images: np.ndarray  # uint8 [N, 28, 28]
    labels: np.ndarray  # int64 [N]


@dataclass(frozen=True)
class FashionMnist:
    train: Split
    val: Split
    test: Split
    source_dir: str


def dataset_dir(explicit: str | None = None) -> Path:
    return Path(explicit or os.environ.get(ENV_DIR) or DEFAULT_DIR)


def _read_verified(directory: Path, key: str) -> bytes:
    stem, expected = FILES[key]
    candidates = [directory / f"{stem}.gz", directory / stem]
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        raise DatasetError(
            f"Fashion-MNIST file {stem}(.gz) not found in {directory}. "
            f"Install the official split with `apt-get install {APT_PACKAGE}`, "
            f"or point --data-dir / {ENV_DIR} at a directory holding the upstream idx files."
        )
    raw = path.read_bytes()
    if path.suffix == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as err:
            raise DatasetError(f"{path} is not a readable gzip file ({err}); reinstall {APT_PACKAGE}") from err
    digest = hashlib.sha256(raw).hexdigest()
    if digest != expected:
        raise DatasetError(
            f"{path} does not match the official Fashion-MNIST release "
            f"(sha256 of decompressed bytes {digest}, expected {expected}). "
            f"Reinstall `{APT_PACKAGE}` or fetch the upstream files again."
        )
    return raw


def parse_idx(raw: bytes) -> np.ndarray:
    """Parse an idx file (unsigned bytes) into an array of its declared shape."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DatasetError("not an idx file of unsigned bytes")
    ndim = raw[3]
    dims = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise DatasetError(f"idx payload has {data.size} bytes, header declares {dims}")
    return data.reshape(dims)


def load_official(data_dir: str | None = None) -> tuple[Split, Split]:
    """The official 60k training and 10k test splits, checksum-verified."""
    directory = dataset_dir(data_dir)
    parts = {key: parse_idx(_read_verified(directory, key)) for key in FILES}
    train = Split(parts["train-images"], parts["train-labels"].astype(np.int64))
    test = Split(parts["test-images"], parts["test-labels"].astype(np.int64))
    return train, test


def stratified_holdout(labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """Indices of `per_class` examples of every class, drawn with `seed`."""
    rng = np.random.default_rng(seed)
    picked = []
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        if idx.size < per_class:
            raise ValueError(f"class {cls} has {idx.size} examples, fewer than {per_class}")
        picked.append(rng.choice(idx, size=per_class, replace=False))
    return np.sort(np.concatenate(picked))


def load(data_dir: str | None = None, val_per_class: int = 500, split_seed: int = 20260101) -> FashionMnist:
    """Train (60k minus validation), stratified validation, and the official test set.

    The validation split is fixed by `split_seed`, independent of the training
    seed, so every model of the project is chosen and calibrated on the same
    held-out images; the test set is used for the final report only.
    """
    train, test = load_official(data_dir)
    val_idx = stratified_holdout(train.labels, val_per_class, split_seed)
    mask = np.ones(train.labels.size, dtype=bool)
    mask[val_idx] = False
    return FashionMnist(
        train=Split(train.images[mask], train.labels[mask]),
        val=Split(train.images[val_idx], train.labels[val_idx]),
        test=test,
        source_dir=str(dataset_dir(data_dir)),
    )


def subset(split: Split, n: int, seed: int) -> Split:
    """A class-balanced slice of `n` images (for smoke runs and tests)."""
    per_class = max(1, n // 10)
    idx = stratified_holdout(split.labels, per_class, seed)
    return Split(split.images[idx], split.labels[idx])
