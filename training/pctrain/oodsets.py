"""Out-of-distribution image sets, made here with no download, deterministic by seed.

Every set is a uint8 array [N, 28, 28] in the model's input polarity (light
item on black). Sets that start from a larger picture (text, symbols,
photographs) go through `service_pipeline`, a port of what the service does to
an uploaded image (src/preprocess/preprocessor.ts and fashion-convert.ts):

  1. photos larger than 112 px are shrunk to fit inside 112x112 (sharp's
     default Lanczos-3; here PIL's Lanczos) and turned to grayscale
     (libvips' sRGB -> B_W: luminance in linear light, re-encoded as sRGB);
  2. the background is the median of the four corner pixels (mean of the
     middle two); the image is trimmed to the bounding box of the pixels
     farther than 5% of 255 from it;
  3. the longest edge is resized to 28 by nearest-neighbour sampling;
  4. libvips' sharpen (sigma 1, sharp's m1=1, m2=2, x1=2, y2=10, y3=20) on
     the L* channel: an integer 5-tap Gaussian [3,12,20,12,3]/50 applied
     separably with edge replication, the difference through the piecewise
     linear look-up of vips_sharpen, added back;
  5. padded centered to 28x28 with the (rounded) background;
  6. negated when the background is light (> 127).

A 28x28 upload with a dark background skips 2-6 (the service's passthrough).
`pipeline_agreement` (`/usr/bin/python3 -m pctrain.oodsets`, needs node and the
built service) measures how closely this port matches the service's own output
(sharp 0.35, libvips 8.18); docs/ood.md gives the numbers. The conversion steps
2-6 agree within one gray level; the Lanczos shrink of step 1 is PIL's, not
libvips', so a big upload can trim a pixel row differently.

Sets (`make_sets`):
  far OOD   uniform-noise, gaussian-noise, blank, text, symbols, photos
  near OOD  inverted, blurred, noisy, occluded (from Fashion-MNIST images:
            the validation split for the dev generation, the test split for
            the report generation, so choosing a method never sees test)

Two generations: DEV_SEED for choosing the method, REPORT_SEED (other crops,
strings, noise) for the reported numbers. Photographs come from Debian's
wallpaper packages mate-backgrounds and lomiri-wallpapers-16.04/-20.04 (the
photographs among them, listed in PHOTO_FILES); fonts from fonts-dejavu-core;
rendering with PIL (python3-pil).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

SIZE = 28
WORKING_SIZE = 112
TRIM_TOLERANCE = 0.05 * 255
DEV_SEED = 1001
REPORT_SEED = 2002

FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
FONT_PACKAGE = "fonts-dejavu-core"
BACKGROUND_DIR = Path("/usr/share/backgrounds")
PHOTO_PACKAGES = ["mate-backgrounds", "lomiri-wallpapers-16.04", "lomiri-wallpapers-20.04"]
# The photographs among those packages' pictures (the rest are drawings or gradients).
PHOTO_FILES = [
    "mate/nature/Aqua.jpg", "mate/nature/Blinds.jpg", "mate/nature/Dune.jpg",
    "mate/nature/FreshFlower.jpg", "mate/nature/Garden.jpg", "mate/nature/GreenMeadow.jpg",
    "mate/nature/LadyBird.jpg", "mate/nature/RainDrops.jpg", "mate/nature/Storm.jpg",
    "mate/nature/TwoWings.jpg", "mate/nature/Wood.jpg", "mate/nature/YellowFlower.jpg",
    "Bridge_by_Sander_Klootwijk.jpg", "Dragonfly_by_Bolly.jpg", "Picture_0B_by_freespace.jpg",
    "Picture_1A_by_freespace.jpg", "Wine_by_Jakkub_Mede.jpg", "aitzgorri_by_Aitzol_Berasategi.jpg",
    "analogpattern_by_Peter_Nerlich.jpg", "free_by_Peter_Nerlich.jpg", "friends_by_Aitzol_Berasategi.jpg",
    "greentock_by_Peter_Nerlich.jpg", "life_by_Aitzol_Berasategi.jpg", "picosdeeuropa_by_Aitzol_Berasategi.jpg",
    "seeding_by_Clements_Engelhardt.jpg", "sunset_by_Aitzol_Berasategi.jpg", "Infinite-Sea_by_Aury88.jpg",
    "Kleiber_by_Lukas_Baubkus.jpg",
]

FAR_SETS = ["uniform-noise", "gaussian-noise", "blank", "text", "symbols", "photos"]
NEAR_SETS = ["inverted", "blurred", "noisy", "occluded"]


class MissingSource(RuntimeError):
    """A Debian package a set is made from is not installed."""


# ---- the service's photo pipeline -----------------------------------------
def _srgb_to_linear(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64) / 255.0
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def _linear_to_srgb(v: np.ndarray) -> np.ndarray:
    v = np.clip(v, 0.0, 1.0)
    return 255.0 * np.where(v <= 0.0031308, v * 12.92, 1.055 * v ** (1 / 2.4) - 0.055)


def to_gray(rgb: np.ndarray) -> np.ndarray:
    """libvips' sRGB -> B_W: Rec.709 luminance in linear light, re-encoded as 8-bit sRGB."""
    if rgb.ndim == 2:
        return rgb.astype(np.uint8)
    lin = _srgb_to_linear(rgb[..., :3])
    y = lin @ np.array([0.2126, 0.7152, 0.0722])
    return np.clip(np.rint(_linear_to_srgb(y)), 0, 255).astype(np.uint8)


def shrink_to_working_size(img: np.ndarray, working: int = WORKING_SIZE) -> np.ndarray:
    """Fit inside working x working, never enlarging, as the service decodes big uploads: like
    libvips' resize, a box-average shrink by the integer part of factor / 2, then Lanczos-3
    (PIL's) for the rest."""
    h, w = img.shape[:2]
    if w <= working and h <= working:
        return img
    from PIL import Image

    factor = max(w, h) / working
    nw, nh = max(1, _js_round(w / factor)), max(1, _js_round(h / factor))
    k = int(factor // 2)
    if k >= 2:
        hh, ww = (h // k) * k, (w // k) * k
        blocks = img[:hh, :ww].astype(np.float64).reshape(hh // k, k, ww // k, k, *img.shape[2:])
        img = np.rint(blocks.mean(axis=(1, 3))).astype(np.uint8)
    return np.asarray(Image.fromarray(img).resize((nw, nh), Image.LANCZOS))


def corner_color(img: np.ndarray) -> float:
    c = sorted(int(v) for v in (img[0, 0], img[0, -1], img[-1, 0], img[-1, -1]))
    return (c[1] + c[2]) / 2


def trim_box(img: np.ndarray, background: float) -> tuple[int, int, int, int]:
    """(top, left, height, width) of the pixels farther than 5% of 255 from the background."""
    mask = np.abs(img.astype(np.float64) - background) > TRIM_TOLERANCE
    if not mask.any():
        return 0, 0, img.shape[0], img.shape[1]
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return int(rows[0]), int(cols[0]), int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)


def _js_round(x: float) -> int:
    return int(np.floor(x + 0.5))


def fit_longest_edge(width: int, height: int, target: int) -> tuple[int, int]:
    scale = target / max(width, height)
    return max(1, _js_round(width * scale)), max(1, _js_round(height * scale))


def _nearest_index(n_in: int, n_out: int) -> np.ndarray:
    """Which input pixel each output pixel takes in libvips' nearest-neighbour resize.

    Shrinking (libvips reduceh/reducev with one tap): s = in/out, X starts at
    0.5*s - 0.5 - hoffset with hoffset = (1 + out*s - in)/2 - 1, output i takes
    int(X), then X += s, all in double precision. Enlarging (affine, nearest):
    floor(i * in / out). Checked against sharp 0.35 for every in <= 112 and
    out <= 28: exact for 97-99% of the (in, out) pairs with in/out <= 4 (the
    service's case: a trimmed image of at most 112 px fitted to 28); the rest
    differ by one input pixel at a few outputs (floating-point knife edges),
    and shrinks by more than 4, which libvips does in two stages, differ more.
    """
    if n_out >= n_in:
        return np.minimum((np.arange(n_out) * n_in) // n_out, n_in - 1)
    step = n_in / n_out
    x = 0.5 * step - 0.5 - ((1 + (n_out * step - n_in)) / 2.0 - 1)
    idx = []
    for _ in range(n_out):
        idx.append(min(max(int(x), 0), n_in - 1))
        x += step
    return np.array(idx, dtype=np.int64)


def resize_nearest(img: np.ndarray, width: int, height: int) -> np.ndarray:
    return img[_nearest_index(img.shape[0], height)][:, _nearest_index(img.shape[1], width)]


def _gray_to_labs_l(g: np.ndarray) -> np.ndarray:
    """8-bit gray (sRGB) -> L* scaled to 0..32767 (libvips LabS), rounded."""
    y = _srgb_to_linear(g)
    f = np.where(y > (6 / 29) ** 3, np.cbrt(y), y / (3 * (6 / 29) ** 2) + 4 / 29)
    lstar = 116 * f - 16
    return np.rint(lstar * 327.67).astype(np.int64)


def _labs_l_to_gray(l: np.ndarray) -> np.ndarray:
    lstar = l / 327.67
    fy = (lstar + 16) / 116
    y = np.where(fy > 6 / 29, fy ** 3, 3 * (6 / 29) ** 2 * (fy - 4 / 29))
    return np.clip(np.rint(_linear_to_srgb(y)), 0, 255).astype(np.uint8)


def _sharpen_lut(m1=1.0, m2=2.0, x1=2.0, y2=10.0, y3=20.0) -> np.ndarray:
    v = (np.arange(65536) - 32767) / 327.67
    y = np.where(v < -x1, (v + x1) * m2 - x1 * m1, np.where(v < x1, v * m1, (v - x1) * m2 + x1 * m1))
    y = np.clip(y, -y3, y2)
    return np.rint(y * 327.67).astype(np.int64)


_LUT = _sharpen_lut()
_MASK = np.array([3, 12, 20, 12, 3], dtype=np.int64)  # vips_gaussmat(sigma 1, min_ampl 0.2, integer)


def _conv1d_int(a: np.ndarray, axis: int) -> np.ndarray:
    r = len(_MASK) // 2
    pad = [(0, 0), (0, 0)]
    pad[axis] = (r, r)
    p = np.pad(a, pad, mode="edge")
    n = a.shape[axis]
    acc = sum(_MASK[k] * np.take(p, np.arange(k, k + n), axis=axis) for k in range(len(_MASK)))
    scale = int(_MASK.sum())
    return (acc + scale // 2) // scale


def sharpen(gray: np.ndarray) -> np.ndarray:
    """libvips sharpen(sigma=1) with sharp's defaults, on one 8-bit gray image."""
    l = _gray_to_labs_l(gray)
    blur = _conv1d_int(_conv1d_int(l, 1), 0)
    out = np.clip(l + _LUT[(l - blur) + 32768], 0, 32767)
    return _labs_l_to_gray(out)


def pad_center(img: np.ndarray, width: int, height: int, background: float) -> np.ndarray:
    out = np.full((height, width), _js_round(background), dtype=np.uint8)
    dy, dx = (height - img.shape[0]) // 2, (width - img.shape[1]) // 2
    out[dy:dy + img.shape[0], dx:dx + img.shape[1]] = img
    return out


def to_fashion_mnist(gray: np.ndarray, size: int = SIZE) -> np.ndarray:
    """fashion-convert.ts toFashionMnist: trim, fit, sharpen, pad, negate on a light background."""
    background = corner_color(gray)
    top, left, h, w = trim_box(gray, background)
    trimmed = gray[top:top + h, left:left + w]
    nw, nh = fit_longest_edge(w, h, size)
    resized = sharpen(resize_nearest(trimmed, min(nw, size), min(nh, size)))
    padded = pad_center(resized, size, size, background)
    return 255 - padded if background > 127 else padded


def service_pipeline(img: np.ndarray, size: int = SIZE) -> np.ndarray:
    """What the service makes of an uploaded picture (uint8 gray [H,W] or RGB [H,W,3])."""
    gray = to_gray(shrink_to_working_size(img))
    if gray.shape == (size, size) and corner_color(gray) <= 127:
        return gray.copy()  # passthrough: already a Fashion-MNIST-style image
    return to_fashion_mnist(gray, size)


# ---- far OOD ---------------------------------------------------------------
def uniform_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Pixel arrays of uniform noise on a random range [lo, hi] per image (half of them the full 0..255)."""
    lo = np.where(rng.random(n) < 0.5, 0, rng.integers(0, 128, n))
    hi = np.where(rng.random(n) < 0.5, 255, rng.integers(128, 256, n))
    u = rng.random((n, SIZE, SIZE))
    return np.rint(lo[:, None, None] + u * (hi - lo)[:, None, None]).astype(np.uint8)


def gaussian_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise, random mean (20..230) and standard deviation (10..90) per image, clipped to 0..255."""
    mean = rng.uniform(20, 230, n)[:, None, None]
    std = rng.uniform(10, 90, n)[:, None, None]
    return np.clip(np.rint(mean + std * rng.standard_normal((n, SIZE, SIZE))), 0, 255).astype(np.uint8)


def blank(n: int, rng: np.random.Generator) -> np.ndarray:
    """Constant images of a random value, half of them with a faint noise (std 2) as a camera gives."""
    c = rng.integers(0, 256, n)[:, None, None].astype(np.float64)
    faint = (rng.random(n) < 0.5)[:, None, None] * 2.0 * rng.standard_normal((n, SIZE, SIZE))
    return np.clip(np.rint(c + faint), 0, 255).astype(np.uint8)


def _fonts() -> list[Path]:
    fonts = sorted(p for p in FONT_DIR.glob("DejaVu*.ttf") if "MathTeX" not in p.name) if FONT_DIR.is_dir() else []
    if not fonts:
        raise MissingSource(f"no DejaVu fonts in {FONT_DIR}: apt-get install {FONT_PACKAGE}")
    return fonts


WORDS = ("sale new price size color shipping return order free fashion shirt shoe bag dress coat "
         "invoice total qty item sku delivery label cotton wool leather summer winter discount "
         "hello world model product photo upload error none test sample quick brown fox jumps").split()
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
SYMBOLS = ("←↑→↓↔↕⇐⇒⇔∀∂∃∅∇∈∉∏∑−√∞∧∨∩∪∫≈≠≡≤≥⊂⊃⊕⊗⌘⌚⌛■□▲△▶▼◆◇○◎●◐◑★☆☀☁☂☃☎☑☒☕☘☠☢☣☮☯"
           "☹☺☻♀♂♠♣♥♦♩♪♫♬⚓⚔⚙⚛⚠⚡✂✈✉✋✌✎✓✔✕✖✗✘✚✝✠✡✦✧✩✪✱✲✳✴✵✶✷✸✹✺✻✼✽✾✿❀❁❂❃❄❅❆❇❈❉❊❋"
           "@#$%&§¶©®™€£¥¢αβγδεζηθλμπσφψωΩΣΔΓΘΛΞΠΦΨ")


def _render(text: str, font_path: Path, px: int, dark_on_light: bool, rng: np.random.Generator) -> np.ndarray:
    """Text drawn on a canvas a little larger than it, as a photographed label or screenshot would be."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype(str(font_path), px)
    lines = text.split("\n")
    box = [font.getbbox(line) for line in lines]
    tw = max(b[2] - b[0] for b in box) + 1
    th = int(sum(b[3] for b in box) * 1.15) + 1
    margin = int(rng.integers(2, max(3, px)))
    bg, fg = (int(rng.integers(190, 256)), int(rng.integers(0, 70))) if dark_on_light else \
        (int(rng.integers(0, 60)), int(rng.integers(180, 256)))
    im = Image.new("L", (tw + 2 * margin, th + 2 * margin), bg)
    draw = ImageDraw.Draw(im)
    y = margin
    for line, b in zip(lines, box):
        draw.text((margin - b[0], y), line, fill=fg, font=font)
        y += int(b[3] * 1.15)
    return np.asarray(im)


def text_pictures(n: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Words, codes and short paragraphs in DejaVu fonts, dark on light or light on dark (before the pipeline)."""
    fonts = _fonts()
    out = []
    for _ in range(n):
        kind = rng.integers(0, 4)
        if kind == 0:
            s = str(rng.choice(WORDS))
        elif kind == 1:
            s = " ".join(rng.choice(WORDS, size=int(rng.integers(2, 4))))
        elif kind == 2:
            s = "".join(rng.choice(list(LETTERS), size=int(rng.integers(1, 4))))
        else:
            s = "\n".join(" ".join(rng.choice(WORDS, size=int(rng.integers(1, 4)))) for _ in range(int(rng.integers(2, 5))))
        out.append(_render(s, fonts[rng.integers(len(fonts))], int(rng.integers(14, 64)), rng.random() < 0.7, rng))
    return out


def text_images(n: int, rng: np.random.Generator) -> np.ndarray:
    """text_pictures through the service pipeline."""
    return np.stack([service_pipeline(p) for p in text_pictures(n, rng)]) if n else np.empty((0, SIZE, SIZE), np.uint8)


def covered_symbols(font_path: Path) -> list[str]:
    """The SYMBOLS the font draws itself (not as its missing-glyph box)."""
    from PIL import ImageFont

    font = ImageFont.truetype(str(font_path), 40)
    missing = bytes(font.getmask("\ue000"))
    return [c for c in SYMBOLS if bytes(font.getmask(c)) != missing]


def symbol_pictures(n: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Single symbols, arrows, dingbats and Greek letters (DejaVu Sans/Serif), before the pipeline."""
    fonts = [f for f in _fonts() if "Mono" not in f.name]
    covered = {f: covered_symbols(f) for f in fonts}
    out = []
    for _ in range(n):
        font = fonts[rng.integers(len(fonts))]
        s = "".join(rng.choice(covered[font], size=int(rng.integers(1, 3))))
        out.append(_render(s, font, int(rng.integers(20, 96)), rng.random() < 0.7, rng))
    return out


def symbol_images(n: int, rng: np.random.Generator) -> np.ndarray:
    """symbol_pictures through the service pipeline."""
    return np.stack([service_pipeline(p) for p in symbol_pictures(n, rng)]) if n else np.empty((0, SIZE, SIZE), np.uint8)


def photo_paths(base: Path = BACKGROUND_DIR) -> list[Path]:
    paths = [base / f for f in PHOTO_FILES if (base / f).is_file()]
    if not paths:
        raise MissingSource(f"no wallpaper photographs under {base}: apt-get install {' '.join(PHOTO_PACKAGES)}")
    return paths


def _load_photo(path: Path, max_side: int = 1600) -> np.ndarray:
    """RGB array of a photo, reduced (Lanczos) so its longest side is at most max_side for speed."""
    from PIL import Image

    im = Image.open(path).convert("RGB")
    im.draft("RGB", (max_side, max_side))
    if max(im.size) > max_side:
        im.thumbnail((max_side, max_side), Image.LANCZOS)
    return np.asarray(im)


def photo_pictures(n: int, rng: np.random.Generator, paths: list[Path] | None = None) -> list[np.ndarray]:
    """Random RGB crops of the wallpaper photographs at several scales (8%..100% of the short side,
    aspect 0.5..2), as a client would upload them."""
    paths = paths or photo_paths()
    photos = [_load_photo(p) for p in paths]
    out = []
    for _ in range(n):
        img = photos[rng.integers(len(photos))]
        h, w = img.shape[:2]
        side = min(h, w) * float(np.exp(rng.uniform(np.log(0.08), 0.0)))
        aspect = float(np.exp(rng.uniform(np.log(0.5), np.log(2.0))))
        ch, cw = min(h, max(8, int(side / np.sqrt(aspect)))), min(w, max(8, int(side * np.sqrt(aspect))))
        y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        out.append(np.ascontiguousarray(img[y:y + ch, x:x + cw]))
    return out


def photo_crops(n: int, rng: np.random.Generator, paths: list[Path] | None = None) -> np.ndarray:
    """photo_pictures through the service pipeline."""
    return np.stack([service_pipeline(p) for p in photo_pictures(n, rng, paths)]) if n else np.empty((0, SIZE, SIZE), np.uint8)


# ---- how close the port is to the service ----------------------------------------
NODE_PIPELINE = r"""
const fs = require('fs');
const sharp = require(process.argv[1] + '/node_modules/sharp');
const { Preprocessor } = require(process.argv[1] + '/dist/src/preprocess/preprocessor.js');
(async () => {
  const items = JSON.parse(fs.readFileSync(0, 'utf8'));
  const pre = new Preprocessor({ maxImageBytes: 1e9, maxImagePixels: 1e9 });
  const out = [];
  for (const it of items) {
    const png = await sharp(Buffer.from(it.data, 'base64'), { raw: { width: it.w, height: it.h, channels: it.c } }).png().toBuffer();
    out.push(Array.from((await pre.toPixels({ kind: 'encoded', bytes: png }, 28, 28)).pixels));
  }
  process.stdout.write(JSON.stringify(out));
})();
"""


def service_outputs(pictures: list[np.ndarray], repo: Path) -> np.ndarray:
    """The service's own preprocessing (dist/ build, sharp) of each picture, sent as a lossless PNG."""
    import base64
    import json
    import subprocess

    items = [{"w": p.shape[1], "h": p.shape[0], "c": 1 if p.ndim == 2 else p.shape[2],
              "data": base64.b64encode(np.ascontiguousarray(p).tobytes()).decode()} for p in pictures]
    proc = subprocess.run(["node", "-e", NODE_PIPELINE, str(repo)], input=json.dumps(items),
                          capture_output=True, text=True, cwd=repo, timeout=600)
    if proc.returncode:
        raise RuntimeError(proc.stderr)
    return np.array(json.loads(proc.stdout), dtype=np.int64).reshape(-1, SIZE, SIZE)


def pipeline_agreement(repo: Path, n: int = 100, seed: int = 77) -> dict:
    """Port vs service on n text, symbol and photo uploads each: share of images within 1 gray level
    everywhere, share of pixels within 1 and 8, mean absolute difference."""
    out = {}
    for k, (name, make) in enumerate((("text", text_pictures), ("symbols", symbol_pictures), ("photos", photo_pictures))):
        pics = make(n, np.random.default_rng([seed, k]))
        ours = np.stack([service_pipeline(p) for p in pics]).astype(np.int64)
        d = np.abs(service_outputs(pics, repo) - ours)
        out[name] = {"images": n, "imagesWithin1": round(float((d.reshape(n, -1).max(1) <= 1).mean()), 3),
                     "pixelsWithin1": round(float((d <= 1).mean()), 4), "pixelsWithin8": round(float((d <= 8).mean()), 4),
                     "meanAbsDiff": round(float(d.mean()), 3)}
    return out


# ---- near OOD (from Fashion-MNIST images) ------------------------------------
def inverted(images: np.ndarray) -> np.ndarray:
    return (255 - images).astype(np.uint8)


def _gauss_kernel(sigma: float) -> np.ndarray:
    r = max(1, int(np.ceil(3 * sigma)))
    k = np.exp(-np.arange(-r, r + 1) ** 2 / (2 * sigma ** 2))
    return k / k.sum()


def blurred(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Gaussian blur, sigma 1.5..3 per image (zero padding, as off-image is background)."""
    out = np.empty_like(images)
    for i, img in enumerate(images.astype(np.float64)):
        k = _gauss_kernel(float(rng.uniform(1.5, 3.0)))
        r = len(k) // 2
        p = np.pad(img, r)
        t = sum(k[j] * p[:, j:j + SIZE] for j in range(len(k)))
        t = sum(k[j] * t[j:j + SIZE, :] for j in range(len(k)))
        out[i] = np.clip(np.rint(t), 0, 255)
    return out


def noisy(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Heavy additive Gaussian noise, standard deviation 50..100 per image, clipped."""
    std = rng.uniform(50, 100, len(images))[:, None, None]
    return np.clip(np.rint(images + std * rng.standard_normal(images.shape)), 0, 255).astype(np.uint8)


def occluded(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A rectangle covering 30..60% of the image, filled black, white or with noise."""
    out = images.copy()
    for i in range(len(out)):
        area = rng.uniform(0.3, 0.6) * SIZE * SIZE
        aspect = float(np.exp(rng.uniform(np.log(0.5), np.log(2.0))))
        h = int(min(SIZE, max(4, round(np.sqrt(area / aspect)))))
        w = int(min(SIZE, max(4, round(area / h))))
        y, x = int(rng.integers(0, SIZE - h + 1)), int(rng.integers(0, SIZE - w + 1))
        fill = rng.integers(0, 3)
        out[i, y:y + h, x:x + w] = 0 if fill == 0 else 255 if fill == 1 else rng.integers(0, 256, (h, w))
    return out


# ---- the sets ----------------------------------------------------------------
@dataclass(frozen=True)
class OodSet:
    name: str
    kind: str  # "far" or "near"
    images: np.ndarray  # uint8 [N, 28, 28]
    description: str


DESCRIPTIONS = {
    "uniform-noise": "uniform noise pixel arrays, random range per image",
    "gaussian-noise": "Gaussian noise pixel arrays, random mean and spread",
    "blank": "constant images (half with faint noise), any gray level",
    "text": "DejaVu-rendered words and lines through the service pipeline",
    "symbols": "DejaVu-rendered symbols, arrows, dingbats through the pipeline",
    "photos": "crops of Debian wallpaper photographs through the pipeline",
    "inverted": "Fashion-MNIST images negated (dark item on light)",
    "blurred": "Fashion-MNIST images, Gaussian blur sigma 1.5-3",
    "noisy": "Fashion-MNIST images, additive Gaussian noise sd 50-100",
    "occluded": "Fashion-MNIST images, 30-60% covered by a black/white/noise box",
}


def make_sets(seed: int, n: int, source_images: np.ndarray, names: list[str] | None = None,
              skip_missing: bool = False) -> list[OodSet]:
    """The OOD sets of one generation. `source_images` are the Fashion-MNIST images the near-OOD sets
    are made from (validation for dev, test for report); each set draws from its own stream of `seed`."""
    names = names or FAR_SETS + NEAR_SETS
    sets = []
    for k, name in enumerate(FAR_SETS + NEAR_SETS):
        if name not in names:
            continue
        rng = np.random.default_rng([seed, k])
        if name in NEAR_SETS:
            src = source_images[rng.choice(len(source_images), size=min(n, len(source_images)), replace=False)]
        try:
            imgs = {
                "uniform-noise": lambda: uniform_noise(n, rng),
                "gaussian-noise": lambda: gaussian_noise(n, rng),
                "blank": lambda: blank(n, rng),
                "text": lambda: text_images(n, rng),
                "symbols": lambda: symbol_images(n, rng),
                "photos": lambda: photo_crops(n, rng),
                "inverted": lambda: inverted(src),
                "blurred": lambda: blurred(src, rng),
                "noisy": lambda: noisy(src, rng),
                "occluded": lambda: occluded(src, rng),
            }[name]()
        except MissingSource:
            if skip_missing:
                continue
            raise
        sets.append(OodSet(name, "near" if name in NEAR_SETS else "far", imgs, DESCRIPTIONS[name]))
    return sets


if __name__ == "__main__":
    import json
    import sys

    repo = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2]
    print(json.dumps(pipeline_agreement(repo), indent=1))
