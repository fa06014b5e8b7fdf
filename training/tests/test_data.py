"""The official split: shapes, class balance, checksums and the error paths."""
import gzip
import shutil

import numpy as np
import pytest

from pctrain import data


def test_official_split_shapes_and_balance():
    train, test = data.load_official()
    assert train.images.shape == (60000, 28, 28) and train.images.dtype == np.uint8
    assert test.images.shape == (10000, 28, 28)
    assert np.bincount(train.labels, minlength=10).tolist() == [6000] * 10
    assert np.bincount(test.labels, minlength=10).tolist() == [1000] * 10


def test_validation_split_is_stratified_disjoint_and_fixed():
    ds = data.load(val_per_class=500)
    assert ds.train.images.shape[0] == 55000 and ds.val.images.shape[0] == 5000
    assert np.bincount(ds.val.labels, minlength=10).tolist() == [500] * 10
    assert np.bincount(ds.train.labels, minlength=10).tolist() == [5500] * 10
    again = data.load(val_per_class=500)
    assert np.array_equal(ds.val.images, again.val.images)


def test_missing_files_name_the_apt_package(tmp_path):
    with pytest.raises(data.DatasetError, match="apt-get install dataset-fashion-mnist"):
        data.load_official(str(tmp_path))


def test_altered_bytes_fail_the_checksum(tmp_path):
    for stem, _ in data.FILES.values():
        shutil.copy(f"{data.DEFAULT_DIR}/{stem}.gz", tmp_path / f"{stem}.gz")
    raw = bytearray(gzip.decompress((tmp_path / "t10k-labels-idx1-ubyte.gz").read_bytes()))
    raw[100] = (raw[100] + 1) % 10  # one label changed
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(data.DatasetError, match="does not match the official"):
        data.load_official(str(tmp_path))


def test_env_var_selects_another_directory(tmp_path, monkeypatch):
    for stem, _ in data.FILES.values():  # upstream layout, decompressed files
        (tmp_path / stem).write_bytes(gzip.decompress(open(f"{data.DEFAULT_DIR}/{stem}.gz", "rb").read()))
    monkeypatch.setenv(data.ENV_DIR, str(tmp_path))
    train, _ = data.load_official()
    assert train.images.shape == (60000, 28, 28)


def test_parse_idx_rejects_a_short_payload():
    header = bytes([0, 0, 8, 1]) + (5).to_bytes(4, "big")
    with pytest.raises(data.DatasetError, match="declares"):
        data.parse_idx(header + b"\x01\x02")
