"""Write the service's test fixtures: official test images as 28x28 PNG files.

    python3 -m pctrain.fixtures --out ../test/fixtures/fashion-mnist --per-class 30

Images are drawn (fixed seed, stratified) from the first 1,024 test images,
the ones every artifact's parity/reference.json records PyTorch
probabilities for, so the end-to-end tests can compare the service's answer
for each PNG with the training code's own prediction for the same image.
"""
from __future__ import annotations

import argparse
import json
import struct
import zlib
from pathlib import Path

import numpy as np

from . import data as fdata

POOL = 1024


def png_gray8(img: np.ndarray) -> bytes:
    """A minimal 8-bit grayscale PNG (no dependency beyond zlib)."""
    h, w = img.shape
    raw = b"".join(b"\x00" + img[y].astype(np.uint8).tobytes() for y in range(h))

    def chunk(tag: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def write_fixtures(out: Path, per_class: int, seed: int = 7, data_dir: str | None = None) -> list[dict]:
    _, test = fdata.load_official(data_dir)
    labels = test.labels[:POOL]
    idx = fdata.stratified_holdout(labels, per_class, seed)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in idx:
        name = f"t10k-{i:05d}.png"
        (out / name).write_bytes(png_gray8(test.images[i]))
        rows.append({"file": name, "testIndex": int(i), "labelIndex": int(test.labels[i]), "label": fdata.LABELS[test.labels[i]]})
    (out / "labels.json").write_text(json.dumps({
        "source": "Fashion-MNIST official test set (t10k), Debian dataset-fashion-mnist",
        "generatedBy": "python3 -m pctrain.fixtures", "images": rows}, indent=1) + "\n")
    return rows


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--per-class", type=int, default=30)
    p.add_argument("--data-dir", default=None)
    a = p.parse_args(argv)
    rows = write_fixtures(a.out, a.per_class, data_dir=a.data_dir)
    print(f"wrote {len(rows)} PNG fixtures to {a.out}")


if __name__ == "__main__":
    main()
