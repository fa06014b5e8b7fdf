"""Offline tests of the Python clients: multipart encoding, PNG decoding, stub generation.

    cd clients/python && /usr/bin/python3 -m unittest -v test_clients

(pytest runs them too). No service is needed; the tests against the
running service are test/e2e/python-client.test.ts, which also runs this
file in CI.
"""

from __future__ import annotations

import email.parser
import email.policy
import importlib.util
import json
import os
import random
import struct
import subprocess
import sys
import tempfile
import unittest
import zlib
from pathlib import Path
from unittest import mock

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import classify_http  # noqa: E402
import oip_grpc  # noqa: E402

FIXTURES = HERE.parent.parent / "test" / "fixtures" / "fashion-mnist"


# --- a PNG encoder with a chosen filter per row, independent of the decoder -----------------------


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else (b if pb <= pc else c)


def encode_png(width: int, height: int, channels: int, pixels: bytes, filters, color_type=None, chunks=1) -> bytes:
    """A PNG with row y filtered by filters[y % len(filters)]; IDAT split into `chunks` chunks."""
    color_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels] if color_type is None else color_type
    stride = width * channels
    out = bytearray()
    prev = bytes(stride)
    for y in range(height):
        row = pixels[y * stride : (y + 1) * stride]
        kind = filters[y % len(filters)]
        out.append(kind)
        for i in range(stride):
            left = row[i - channels] if i >= channels else 0
            up = prev[i]
            upleft = prev[i - channels] if i >= channels else 0
            pred = [0, left, up, (left + up) // 2, _paeth(left, up, upleft)][kind]
            out.append((row[i] - pred) & 0xFF)
        prev = row
    data = zlib.compress(bytes(out), 9)
    step = max(1, -(-len(data) // chunks))
    idats = b"".join(_chunk(b"IDAT", data[i : i + step]) for i in range(0, len(data), step))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"tEXt", b"Comment\x00test") + idats + _chunk(b"IEND", b"")


class PngDecoding(unittest.TestCase):
    def setUp(self):
        self.rng = random.Random(7)

    def random_pixels(self, n: int) -> bytes:
        return bytes(self.rng.randrange(256) for _ in range(n))

    def test_every_filter_type_on_grayscale(self):
        pixels = self.random_pixels(28 * 28)
        for filters in ([0], [1], [2], [3], [4], [0, 1, 2, 3, 4], [4, 3, 2, 1, 0]):
            with self.subTest(filters=filters):
                png = encode_png(28, 28, 1, pixels, filters, chunks=3)
                self.assertEqual(oip_grpc.decode_png_gray(png), (28, 28, pixels))

    def test_non_square_and_multichannel(self):
        w, h = 13, 5
        gray = self.random_pixels(w * h)
        ga = bytes(b for g in gray for b in (g, self.rng.randrange(256)))
        self.assertEqual(oip_grpc.decode_png_gray(encode_png(w, h, 2, ga, [1, 4, 3])), (w, h, gray))
        rgb = self.random_pixels(w * h * 3)
        want = bytes((299 * rgb[i] + 587 * rgb[i + 1] + 114 * rgb[i + 2] + 500) // 1000 for i in range(0, len(rgb), 3))
        self.assertEqual(oip_grpc.decode_png_gray(encode_png(w, h, 3, rgb, [2, 3, 4, 1, 0])), (w, h, want))
        rgba = bytes(b for i in range(0, len(rgb), 3) for b in (*rgb[i : i + 3], 255))
        self.assertEqual(oip_grpc.decode_png_gray(encode_png(w, h, 4, rgba, [4])), (w, h, want))

    def test_gray_ramp_equals_a_gray_rgb_image(self):
        gray = bytes(range(256))
        rgb = bytes(b for g in gray for b in (g, g, g))
        self.assertEqual(oip_grpc.decode_png_gray(encode_png(16, 16, 3, rgb, [4]))[2], gray)

    def test_fixtures_decode_to_28x28(self):
        labels = json.loads((FIXTURES / "labels.json").read_text())["images"]
        for item in labels[:20]:
            w, h, pixels = oip_grpc.decode_png_gray((FIXTURES / item["file"]).read_bytes())
            self.assertEqual((w, h, len(pixels)), (28, 28, 784))
            # Fashion-MNIST: a bright item on a black background, so the corners are dark.
            self.assertLess(max(pixels[0], pixels[27], pixels[-28], pixels[-1]), 64, item["file"])
            self.assertGreater(max(pixels), 128, item["file"])

    @unittest.skipUnless(importlib.util.find_spec("PIL"), "Pillow (python3-pil) is not installed")
    def test_agrees_with_pillow(self):
        import io

        from PIL import Image

        for mode in ("L", "LA", "RGB", "RGBA"):
            with self.subTest(mode=mode):
                n = len(mode)
                img = Image.frombytes(mode, (31, 17), self.random_pixels(31 * 17 * n))
                buf = io.BytesIO()
                img.save(buf, "PNG", optimize=True)
                w, h, pixels = oip_grpc.decode_png_gray(buf.getvalue())
                want = img.getchannel(0).tobytes() if mode in ("L", "LA") else img.convert("RGB").convert("L").tobytes()
                self.assertEqual((w, h), (31, 17))
                # Pillow's gray conversion rounds in fixed point: the same weights, at most 1 apart.
                self.assertLessEqual(max(abs(a - b) for a, b in zip(pixels, want)), 0 if n <= 2 else 1)

    def test_rejections_say_why(self):
        good = encode_png(4, 4, 1, bytes(16), [0])
        cases = {
            "no PNG signature": b"GIF89a....",
            "CRC check": good[:40] + bytes([good[40] ^ 1]) + good[41:],
            "bit depth 16": good.replace(
                _chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 4, 8, 0, 0, 0, 0)),
                _chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 4, 16, 0, 0, 0, 0)),
            ),
            "interlaced": good.replace(
                _chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 4, 8, 0, 0, 0, 0)),
                _chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 4, 8, 0, 0, 0, 1)),
            ),
            "colour type 3": encode_png(4, 4, 1, bytes(16), [0], color_type=3),
            "filter type 7": good.replace(
                _chunk(b"IDAT", zlib.compress(bytes(4 * 5), 9)),
                _chunk(b"IDAT", zlib.compress(b"\x07" + bytes(4) + bytes(15), 9)),
            ),
            "cut short": good[:-20],
        }
        for why, data in cases.items():
            with self.subTest(why=why):
                with self.assertRaises(oip_grpc.PngError) as ctx:
                    oip_grpc.decode_png_gray(data)
                self.assertIn(why, str(ctx.exception))


# --- multipart/form-data ----------------------------------------------------------------------------


def parse_multipart(body: bytes, content_type: str):
    """The parts as (name, filename, content type, payload), parsed by the standard library's MIME parser."""
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body
    )
    assert msg.is_multipart(), content_type
    return [
        (p.get_param("name", header="content-disposition"), p.get_filename(), p.get_content_type(), p.get_payload(decode=True))
        for p in msg.iter_parts()
    ]


class Multipart(unittest.TestCase):
    def test_fields_and_file_round_trip(self):
        png = (FIXTURES / "t10k-00001.png").read_bytes()
        body, ctype = classify_http.encode_multipart([("model", "baseline"), ("topK", "2")], [("image", "shoe.png", png, "image/png")])
        self.assertTrue(ctype.startswith('multipart/form-data; boundary="product-classifier-'))
        parts = parse_multipart(body, ctype)
        self.assertEqual(parts[0][0], "model")
        self.assertEqual(parts[0][3], b"baseline")
        self.assertEqual(parts[1][0], "topK")
        self.assertEqual(parts[2][:3], ("image", "shoe.png", "image/png"))
        self.assertEqual(parts[2][3], png)
        boundary = ctype.split('boundary="')[1].rstrip('"').encode()
        self.assertTrue(body.startswith(b"--" + boundary + b"\r\n"))
        self.assertTrue(body.endswith(b"\r\n--" + boundary + b"--\r\n"))

    def test_binary_content_with_crlf_and_dashes_survives(self):
        content = b"\r\n--\r\n--x\r\n\r\n" + bytes(range(256)) + b"\r\n"
        body, ctype = classify_http.encode_multipart([], [("image", "a.bin", content, "application/octet-stream")])
        self.assertEqual(parse_multipart(body, ctype)[0][3], content)

    def test_a_random_boundary_found_in_the_content_is_replaced(self):
        clash = "product-classifier-" + "ab" * 16
        fresh = "cd" * 16
        content = b"before --" + clash.encode() + b" after"
        with mock.patch.object(classify_http.secrets, "token_hex", side_effect=["ab" * 16, fresh]):
            body, ctype = classify_http.encode_multipart([], [("image", "x.png", content, "image/png")])
        self.assertIn(fresh, ctype)
        self.assertNotIn(clash, ctype)
        self.assertEqual(parse_multipart(body, ctype)[0][3], content)

    def test_a_given_boundary_is_checked(self):
        with self.assertRaises(ValueError):
            classify_http.encode_multipart([], [("image", "x", b"--abc--", "image/png")], boundary="abc")
        with self.assertRaises(ValueError):
            classify_http.encode_multipart([], [], boundary="bad\r\nboundary")
        with self.assertRaises(ValueError):
            classify_http.encode_multipart([], [], boundary="x" * 71)
        body, ctype = classify_http.encode_multipart([("a", "1")], [], boundary="simple")
        self.assertEqual(body, b'--simple\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n--simple--\r\n')
        self.assertEqual(ctype, 'multipart/form-data; boundary="simple"')

    def test_file_names_cannot_break_the_header(self):
        body, _ = classify_http.encode_multipart([], [("image", 'a"b\r\nX-Evil: 1.png', b"x", "image/png")], boundary="BOUNDARY")
        head = body.split(b"\r\n\r\n")[0].decode()
        self.assertIn('filename="a%22b%0D%0AX-Evil: 1.png"', head)
        self.assertEqual(len(head.split("\r\n")), 3)  # delimiter, disposition, type

    def test_unicode_file_names_are_utf8(self):
        body, ctype = classify_http.encode_multipart([], [("image", "chaussure-é.png", b"x", "image/png")])
        self.assertIn("chaussure-é.png".encode("utf-8"), body)

    def test_unreachable_service_is_a_service_error(self):
        with self.assertRaises(classify_http.ServiceError) as ctx:
            classify_http.classify("http://127.0.0.1:1", str(FIXTURES / "t10k-00001.png"), timeout=5)
        self.assertEqual(ctx.exception.code, "UNREACHABLE")


# --- stub generation --------------------------------------------------------------------------------


@unittest.skipUnless(
    importlib.util.find_spec("grpc") and importlib.util.find_spec("grpc_tools"),
    "grpcio or grpc_tools is not installed (apt-get install python3-grpcio python3-grpc-tools)",
)
class Stubs(unittest.TestCase):
    # Each in its own interpreter: two generated copies of one proto cannot share
    # protobuf's default descriptor pool in one process.
    def check(self, protoc: str, implementation: str | None = None) -> str:
        with tempfile.TemporaryDirectory() as cache:
            code = (
                "import sys; sys.path.insert(0, %r)\n"
                "from pathlib import Path\n"
                "from generate_stubs import load_stubs\n"
                "pb2, grpc_mod = load_stubs(Path(%r), %r)\n"
                "r = pb2.ModelInferRequest(model_name='baseline')\n"
                "r.inputs.add(name='pixels', datatype='UINT8', shape=[1, 28, 28]).contents.uint_contents.extend(range(10))\n"
                "r.parameters['p'].string_param = 'x'\n"
                "back = pb2.ModelInferRequest.FromString(r.SerializeToString())\n"
                "assert back == r and back.parameters['p'].string_param == 'x'\n"
                "assert hasattr(grpc_mod, 'GRPCInferenceServiceStub')\n"
                "print((Path(pb2.__file__).parents[2] / 'GENERATED_BY').read_text().strip())\n"
            ) % (str(HERE), cache, protoc)
            env = dict(os.environ)
            if implementation:
                env["PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION"] = implementation
            res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
            self.assertEqual(res.returncode, 0, res.stderr)
            return res.stdout.strip()

    def test_grpc_tools_bundled_protoc(self):
        self.assertIn("bundled", self.check("bundled"))

    def test_grpc_tools_bundled_protoc_pure_python_protobuf(self):
        self.assertIn("bundled", self.check("bundled", "python"))

    def test_auto(self):
        from generate_stubs import system_protoc

        self.assertIn("system protoc" if system_protoc() else "bundled", self.check("auto"))

    def test_system_protoc(self):
        from generate_stubs import system_protoc

        if not system_protoc():
            self.skipTest("no protoc on PATH that suits the protobuf runtime (apt-get install protobuf-compiler)")
        self.assertIn("system protoc", self.check("system"))


if __name__ == "__main__":
    unittest.main()
