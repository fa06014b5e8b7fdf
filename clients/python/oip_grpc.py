#!/usr/bin/env python3
"""Classify 28x28 product images with the Open Inference Protocol v2 over gRPC (grpcio).

    python3 oip_grpc.py [--target localhost:50051] [--model baseline] [--version V]
                        [--input pixels|image] [--raw] [--json] image.png [...]

Calls inference.GRPCInferenceService: ServerReady, ModelMetadata, then one
ModelInfer per image, and prints the label, its probability and the
prediction id (a receipt for POST /v1/feedback).

The input sent (see docs/api.md, "Open Inference Protocol v2"):
  --input pixels (default)  "pixels", UINT8 [1,28,28]: the PNG decoded here
                            (zlib and the five PNG row filters, no imaging
                            library) to raw 0..255 grayscale, white item on
                            black as in Fashion-MNIST. The image must be 28x28.
  --input image             "image", BYTES [1]: the file as it is; the service
                            decodes and converts it (any size or format).
With --raw the tensor travels in raw_input_contents (little-endian bytes)
instead of typed contents, and the service answers in raw_output_contents.

The stubs are generated at run time from proto/inference/v2/grpc_predict_v2.proto
(see generate_stubs.py); needs python3-grpcio and python3-grpc-tools.
A gRPC error is printed with its status code and the service's x-error-code
trailer, and the exit status is 1.
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
import zlib
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

__all__ = ["PngError", "decode_png_gray", "infer", "main"]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class PngError(ValueError):
    """The file is not a PNG this decoder reads."""


# --- PNG decoding ----------------------------------------------------------------------------------


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def _unfilter(data: bytes, width: int, height: int, bpp: int) -> List[bytearray]:
    """The rows of a non-interlaced image, with the filter type byte of each row undone (PNG spec, 9.2)."""
    stride = width * bpp
    if len(data) != height * (stride + 1):
        raise PngError(f"image data is {len(data)} bytes; {width}x{height} needs {height * (stride + 1)}")
    rows: List[bytearray] = []
    prev = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind = data[start]
        line = bytearray(data[start + 1 : start + 1 + stride])
        if kind == 0:  # None
            pass
        elif kind == 1:  # Sub: plus the byte bpp to the left
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 0xFF
        elif kind == 2:  # Up: plus the byte above
            for i in range(stride):
                line[i] = (line[i] + prev[i]) & 0xFF
        elif kind == 3:  # Average of left and above, rounded down
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 0xFF
        elif kind == 4:  # Paeth predictor of left, above and upper left
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                upleft = prev[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + _paeth(left, prev[i], upleft)) & 0xFF
        else:
            raise PngError(f"row {y} has unknown filter type {kind}")
        rows.append(line)
        prev = line
    return rows


def decode_png_gray(data: bytes) -> Tuple[int, int, bytes]:
    """(width, height, pixels): an 8-bit PNG as 8-bit grayscale, row-major, one byte per pixel.

    Reads grayscale (the Fashion-MNIST fixtures), gray+alpha, RGB and RGBA, 8 bits
    per channel, not interlaced. Colour becomes gray with the ITU-R 601 weights
    (as the service's converter does); alpha is dropped.
    """
    if not data.startswith(PNG_SIGNATURE):
        raise PngError("not a PNG file (no PNG signature)")
    pos = len(PNG_SIGNATURE)
    header = None
    idat = []
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        crc = data[pos + 8 + length : pos + 12 + length]
        if len(body) != length or len(crc) != 4:
            raise PngError(f"chunk {kind!r} is cut short")
        if struct.unpack(">I", crc)[0] != zlib.crc32(kind + body) & 0xFFFFFFFF:
            raise PngError(f"chunk {kind!r} fails its CRC check")
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    if header is None or not idat:
        raise PngError("no IHDR or no IDAT chunk")
    width, height, depth, color, _compression, _filter, interlace = header
    channels = {0: 1, 4: 2, 2: 3, 6: 4}.get(color)
    if channels is None or depth != 8:
        raise PngError(f"PNG colour type {color} at bit depth {depth} is not read here (8-bit gray, RGB or RGBA)")
    if interlace:
        raise PngError("interlaced PNG is not read here")
    try:
        raw = zlib.decompress(b"".join(idat))
    except zlib.error as err:
        raise PngError(f"corrupt image data: {err}") from None
    rows = _unfilter(raw, width, height, channels)
    if channels <= 2:  # gray or gray+alpha: the first byte of each pixel
        return width, height, b"".join(bytes(r[::channels]) for r in rows)
    out = bytearray()
    for r in rows:
        for i in range(0, len(r), channels):
            out.append((299 * r[i] + 587 * r[i + 1] + 114 * r[i + 2] + 500) // 1000)
    return width, height, bytes(out)


# --- the OIP calls ---------------------------------------------------------------------------------


def _split_length_prefixed(buf: bytes) -> List[bytes]:
    """BYTES elements in raw form: each one a 4-byte little-endian length, then the bytes."""
    items, off = [], 0
    while off < len(buf):
        (n,) = struct.unpack_from("<I", buf, off)
        items.append(buf[off + 4 : off + 4 + n])
        off += 4 + n
    return items


def _decode_outputs(response) -> Dict[str, list]:
    """Each output's values as a flat list, from contents or from raw_output_contents."""
    out: Dict[str, list] = {}
    raw = list(response.raw_output_contents)
    for i, t in enumerate(response.outputs):
        if raw:
            buf = raw[i]
            if t.datatype == "FP32":
                values: list = list(struct.unpack(f"<{len(buf) // 4}f", buf))
            elif t.datatype == "INT64":
                values = list(struct.unpack(f"<{len(buf) // 8}q", buf))
            else:
                values = _split_length_prefixed(buf)
        elif t.datatype == "FP32":
            values = list(t.contents.fp32_contents)
        elif t.datatype == "INT64":
            values = list(t.contents.int64_contents)
        else:
            values = list(t.contents.bytes_contents)
        if t.datatype == "BYTES":
            values = [v.decode("utf-8") for v in values]
        out[t.name] = values
    return out


def infer(stub, pb2, model: str, path: str, input_kind: str = "pixels", raw: bool = False,
          version: str = "", timeout: float = 30.0) -> Dict[str, object]:
    """One ModelInfer for one image file; returns label, label_index, probability, probabilities, prediction_id."""
    data = Path(path).read_bytes()
    request = pb2.ModelInferRequest(model_name=model, model_version=version, id=Path(path).name)
    if input_kind == "pixels":
        width, height, pixels = decode_png_gray(data)
        if (width, height) != (28, 28):
            raise PngError(f"the image is {width}x{height}; the pixels input takes 28x28")
        tensor = request.inputs.add(name="pixels", datatype="UINT8", shape=[1, 28, 28])
        if raw:
            request.raw_input_contents.append(pixels)
        else:
            tensor.contents.uint_contents.extend(pixels)
    else:
        tensor = request.inputs.add(name="image", datatype="BYTES", shape=[1])
        if raw:
            request.raw_input_contents.append(struct.pack("<I", len(data)) + data)
        else:
            tensor.contents.bytes_contents.append(data)
    response = stub.ModelInfer(request, timeout=timeout)
    outputs = _decode_outputs(response)
    probabilities = outputs["probabilities"]
    index = int(outputs["label_index"][0])
    return {
        "file": path,
        "model": response.model_name,
        "version": response.model_version,
        "id": response.id,
        "label": outputs["label"][0],
        "label_index": index,
        "probability": probabilities[index],
        "probabilities": probabilities,
        "prediction_id": outputs["prediction_id"][0],
    }


def _describe_rpc_error(err) -> str:
    code = err.code().name if err.code() else "UNKNOWN"
    service_code = dict(err.trailing_metadata() or ()).get("x-error-code")
    extra = f" (x-error-code {service_code})" if service_code and service_code != code else ""
    return f"{code}{extra}: {err.details()}"


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="OIP v2 over gRPC: ServerReady, ModelMetadata, ModelInfer.")
    parser.add_argument("images", nargs="+", metavar="image", help="28x28 8-bit PNG files (any image with --input image)")
    parser.add_argument("--target", default="localhost:50051", help="gRPC host:port (default %(default)s)")
    parser.add_argument("--model", default="baseline", help="model name (default %(default)s)")
    parser.add_argument("--version", default="", help="model version (default: the highest loaded)")
    parser.add_argument("--input", choices=["pixels", "image"], default="pixels", dest="input_kind",
                        help="send decoded UINT8 pixels (default) or the encoded file as BYTES")
    parser.add_argument("--raw", action="store_true", help="send the tensor in raw_input_contents")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per call (default %(default)s)")
    parser.add_argument("--json", action="store_true", help="print one JSON object per image instead of text")
    parser.add_argument("--protoc", choices=["auto", "system", "bundled"], default="auto",
                        help="compiler for the message stubs (see generate_stubs.py)")
    parser.add_argument("--stubs-cache", type=Path, help="where generated stubs are kept (default ~/.cache/...)")
    args = parser.parse_args(argv)

    try:
        import grpc
    except ImportError:
        print("error: grpcio is not installed: apt-get install python3-grpcio python3-grpc-tools", file=sys.stderr)
        return 1
    from generate_stubs import StubError, load_stubs

    try:
        pb2, pb2_grpc = load_stubs(args.stubs_cache, args.protoc)
    except StubError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1

    failed = False
    with grpc.insecure_channel(args.target) as channel:
        stub = pb2_grpc.GRPCInferenceServiceStub(channel)
        try:
            ready = stub.ServerReady(pb2.ServerReadyRequest(), timeout=args.timeout).ready
            meta = stub.ModelMetadata(pb2.ModelMetadataRequest(name=args.model, version=args.version),
                                      timeout=args.timeout)
        except grpc.RpcError as err:
            print(f"error: {args.target}: {_describe_rpc_error(err)}", file=sys.stderr)
            return 1
        if not args.json:
            print(f"server ready: {ready}")
            tensors = ", ".join(f"{t.name} {t.datatype} {list(t.shape)}" for t in meta.inputs)
            print(f"model {meta.name}: versions {', '.join(meta.versions)}; platform {meta.platform}; inputs {tensors}")
        for path in args.images:
            try:
                result = infer(stub, pb2, args.model, path, args.input_kind, args.raw, args.version, args.timeout)
            except OSError as err:
                print(f"error: {path}: cannot read the file: {err.strerror or err}", file=sys.stderr)
                failed = True
                continue
            except PngError as err:
                print(f"error: {path}: {err} (--input image sends the file as it is)", file=sys.stderr)
                failed = True
                continue
            except grpc.RpcError as err:
                print(f"error: {path}: {_describe_rpc_error(err)}", file=sys.stderr)
                failed = True
                continue
            if args.json:
                print(json.dumps({"ready": ready, "platform": meta.platform, **result}))
            else:
                print(f"{path}: {result['label']} (label_index {result['label_index']}, "
                      f"probability {result['probability']:.4f})")
                print(f"  model {result['model']} version {result['version']} predictionId {result['prediction_id']}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
