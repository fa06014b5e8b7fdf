#!/usr/bin/env python3
"""Python stubs for the Open Inference Protocol, generated from the repository's proto file.

    python3 generate_stubs.py [--out DIR] [--protoc auto|system|bundled] [--proto-dir DIR]

Nothing generated is committed: oip_grpc.py calls load_stubs(), which
generates inference/v2/grpc_predict_v2_pb2.py (messages) and
grpc_predict_v2_pb2_grpc.py (the service stub) from
proto/inference/v2/grpc_predict_v2.proto into a cache directory
(~/.cache/product-classifier/oip-stubs/<hash of the proto and the tools>)
the first time and imports them from there. Run this file to generate them
into a directory of your own.

Which compiler makes which file, and why (Debian 12's packages):

- The service stub (--grpc_python_out) comes from python3-grpc-tools
  (`python3 -m grpc_tools.protoc`), the only packaged gRPC Python plugin.
- The message module (--python_out) comes from Debian's `protoc` (package
  protobuf-compiler, libprotoc 3.21) when it is installed and not newer than
  the protobuf runtime (python3-protobuf 3.21, whose Python package is
  protobuf 4.21): its code builds the descriptors the way the runtime
  expects. This is what `--protoc auto` picks when it can.
- Without it, the message module comes from the protoc bundled in
  grpc_tools 1.14, which is years older (protobuf 3.6). Its code creates
  each descriptor directly (`_descriptor.Descriptor(...)`), and the C++
  implementation of python3-protobuf 4.21 allows that only when the caller
  is a file whose name ends in `_pb2.py`; anywhere else (say, generated
  source exec'd from a string) it raises "TypeError: Descriptors should not
  be created directly, but only retrieved from their parent". So the stubs
  are always written as real files and imported as modules, which works
  with both compilers and with the C++ (default) and pure-Python
  (PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python) implementations alike.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Optional, Tuple

PROTO_FILE = "inference/v2/grpc_predict_v2.proto"
MODULE = "inference.v2.grpc_predict_v2_pb2"
# clients/python/ -> the repository root -> proto/
DEFAULT_PROTO_DIR = Path(__file__).resolve().parent.parent.parent / "proto"


class StubError(Exception):
    """The stubs could not be generated or imported (a tool is missing or failed)."""


def _protoc_minor(version_text: str) -> Optional[int]:
    # "libprotoc 3.21.12" -> 21; from protobuf 22 on, protoc says "libprotoc 25.1" -> 25.
    m = re.search(r"(\d+)\.(\d+)", version_text)
    if not m:
        return None
    major, minor = int(m.group(1)), int(m.group(2))
    return minor if major == 3 else major


def _runtime_minor() -> Optional[int]:
    # The protobuf Python package is 3.x or 4.x (matching protoc 3.x/21.x) or 5.x+ (protoc 25+).
    try:
        import google.protobuf
    except ImportError:
        return None
    m = re.match(r"(\d+)\.(\d+)", google.protobuf.__version__)
    return int(m.group(2)) if m else None


def system_protoc() -> Optional[Tuple[str, str]]:
    """Debian's protoc (path, version) when it is on PATH and not newer than the protobuf runtime."""
    path = shutil.which("protoc")
    if not path:
        return None
    try:
        version = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    ours, runtime = _protoc_minor(version), _runtime_minor()
    if ours is None or runtime is None or ours > runtime:
        return None  # its code could need a newer runtime than the one installed
    return path, version


def _grpc_tools_version() -> str:
    try:
        from importlib.metadata import version

        return version("grpcio-tools")
    except Exception:  # noqa: BLE001 - only for the cache key
        return "unknown"


def _run(cmd, what: str) -> None:
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise StubError(f"{what} failed ({' '.join(cmd)}):\n{res.stderr.strip() or res.stdout.strip()}")


def generate(out_dir: Path, protoc: str = "auto", proto_dir: Path = DEFAULT_PROTO_DIR) -> str:
    """Writes the package inference/v2/ with both modules into out_dir; returns which protoc made the messages."""
    proto = proto_dir / PROTO_FILE
    if not proto.is_file():
        raise StubError(f"{proto} not found; pass --proto-dir (the repository's proto/ directory)")
    try:
        import grpc_tools  # noqa: F401  (python3-grpc-tools)
    except ImportError:
        raise StubError("grpc_tools is not installed: apt-get install python3-grpc-tools") from None
    grpc_tools_cmd = [sys.executable, "-W", "ignore", "-m", "grpc_tools.protoc", f"-I{proto_dir}"]

    found = system_protoc() if protoc in ("auto", "system") else None
    if protoc == "system" and not found:
        raise StubError("no usable protoc on PATH (apt-get install protobuf-compiler)")
    out_dir.mkdir(parents=True, exist_ok=True)
    if found:
        _run([found[0], f"-I{proto_dir}", f"--python_out={out_dir}", PROTO_FILE], "protoc --python_out")
        used = f"system protoc ({found[1]})"
    else:
        _run(grpc_tools_cmd + [f"--python_out={out_dir}", PROTO_FILE], "grpc_tools.protoc --python_out")
        used = f"grpc_tools {_grpc_tools_version()} bundled protoc"
    _run(grpc_tools_cmd + [f"--grpc_python_out={out_dir}", PROTO_FILE], "grpc_tools.protoc --grpc_python_out")
    # Regular packages, so that no other "inference" on sys.path gets mixed in.
    for pkg in (out_dir / "inference", out_dir / "inference" / "v2"):
        (pkg / "__init__.py").touch()
    return used


def default_cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "product-classifier" / "oip-stubs"


def _cache_key(protoc: str, proto_dir: Path) -> str:
    h = hashlib.sha256()
    h.update((proto_dir / PROTO_FILE).read_bytes())
    found = system_protoc() if protoc in ("auto", "system") else None
    h.update(repr((found[1] if found else "bundled", _grpc_tools_version(), sys.version_info[:2])).encode())
    return h.hexdigest()[:16]


def load_stubs(
    cache_root: Optional[Path] = None, protoc: str = "auto", proto_dir: Path = DEFAULT_PROTO_DIR
) -> Tuple[ModuleType, ModuleType]:
    """(messages, service stub) modules, generated into the cache on first use."""
    proto = proto_dir / PROTO_FILE
    if not proto.is_file():
        raise StubError(f"{proto} not found; pass --proto-dir (the repository's proto/ directory)")
    root = Path(cache_root) if cache_root else default_cache_root()
    target = root / _cache_key(protoc, proto_dir)
    if not (target / "inference" / "v2" / "grpc_predict_v2_pb2_grpc.py").is_file():
        root.mkdir(parents=True, exist_ok=True)
        # Generated beside the cache entry and renamed into place: a run that is
        # interrupted, or two runs at once, never leave a half-written entry.
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=root))
        try:
            used = generate(tmp, protoc, proto_dir)
            (tmp / "GENERATED_BY").write_text(used + "\n")
            try:
                os.rename(tmp, target)
            except OSError:
                if not target.is_dir():  # not "another run got there first"
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    sys.path.insert(0, str(target))
    try:
        return importlib.import_module(MODULE), importlib.import_module(MODULE + "_grpc")
    except ImportError as err:
        raise StubError(f"cannot import the stubs generated in {target}: {err}") from err
    finally:
        sys.path.remove(str(target))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Generate the OIP v2 gRPC Python stubs from the repository's proto.")
    parser.add_argument("--out", type=Path, help="generate into this directory (default: the cache oip_grpc.py uses)")
    parser.add_argument("--protoc", choices=["auto", "system", "bundled"], default="auto",
                        help="compiler for the message module: Debian's protoc, grpc_tools' bundled one, or auto")
    parser.add_argument("--proto-dir", type=Path, default=DEFAULT_PROTO_DIR, help="the directory holding inference/v2/")
    args = parser.parse_args(argv)
    try:
        if args.out:
            used = generate(args.out, args.protoc, args.proto_dir)
            print(f"{args.out}: messages by {used}; service stub by grpc_tools")
        else:
            messages, _ = load_stubs(None, args.protoc, args.proto_dir)
            where = Path(messages.__file__).parent.parent.parent
            print(f"{where}: {(where / 'GENERATED_BY').read_text().strip()}")
    except StubError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
