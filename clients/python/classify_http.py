#!/usr/bin/env python3
"""Classify product photos with product-classifier's HTTP API, standard library only.

    python3 classify_http.py --url http://localhost:8080 [--model NAME] [--routing-key KEY]
                             [--top-k N] [--feedback LABEL] [--json] image.png [...]

Each image goes to POST /v1/classify as a multipart/form-data upload (field
"image"); the answer's label, confidence, model, version, A/B arm and
predictionId are printed. With --feedback LABEL, the true label is sent to
POST /v1/feedback for each answer's predictionId. An error from the service
({"error": {"code", "message"}}) is printed to stderr with its HTTP status
and the exit status is 1; the other images are still classified.

The functions classify() and send_feedback() can be imported:

    from classify_http import classify, send_feedback, ServiceError
    answer = classify("http://localhost:8080", "shoe.png", top_k=1)
    send_feedback("http://localhost:8080", answer["predictionId"], "Sneaker")
"""

from __future__ import annotations

import argparse
import json
import mimetypes
import os
import secrets
import sys
import urllib.error
import urllib.request
from typing import Any, Iterable, Mapping, Optional, Sequence, Tuple

__all__ = ["ServiceError", "classify", "send_feedback", "encode_multipart", "main"]

USER_AGENT = "product-classifier-python-example/1"


class ServiceError(Exception):
    """The service answered with an error (or could not be reached: status 0, code "UNREACHABLE")."""

    def __init__(self, status: int, code: str, message: str, request_id: Optional[str] = None):
        super().__init__(f"{code} (HTTP {status}): {message}" if status else f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.request_id = request_id


# --- multipart/form-data -------------------------------------------------------------------------


def _quote_disposition(value: str) -> str:
    # The HTML form encoding (WHATWG "multipart/form-data encoding algorithm"): in a
    # Content-Disposition parameter, '"' becomes %22 and CR and LF become %0D and %0A, so
    # a file name can neither close the quoted string nor start a header line of its own.
    return value.replace("\r", "%0D").replace("\n", "%0A").replace('"', "%22")


def encode_multipart(
    fields: Iterable[Tuple[str, str]],
    files: Iterable[Tuple[str, str, bytes, str]],
    boundary: Optional[str] = None,
) -> Tuple[bytes, str]:
    """A multipart/form-data body and its Content-Type header value.

    fields: (name, value) text fields; files: (field name, file name, content, content type).
    The boundary is random (or the one given) and must not occur in any part: a
    delimiter is CRLF "--" boundary, so a boundary found inside a file's bytes would
    cut the file short. A random boundary found in a part is replaced by a fresh one;
    a given boundary that occurs in a part is an error.
    """
    fields = list(fields)
    files = list(files)
    parts = []
    for name, value in fields:
        parts.append(
            (f'Content-Disposition: form-data; name="{_quote_disposition(name)}"\r\n\r\n').encode("utf-8")
            + value.encode("utf-8")
        )
    for name, filename, content, content_type in files:
        head = (
            f'Content-Disposition: form-data; name="{_quote_disposition(name)}"; '
            f'filename="{_quote_disposition(filename)}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n"
        )
        parts.append(head.encode("utf-8") + content)

    def clashes(b: str) -> bool:
        token = b.encode("ascii")
        return any(token in p for p in parts)

    if boundary is None:
        boundary = "product-classifier-" + secrets.token_hex(16)
        while clashes(boundary):  # 128 random bits: practically never, but then it is certain
            boundary = "product-classifier-" + secrets.token_hex(16)
    else:
        # RFC 2046: 1 to 70 characters from a restricted set, not ending in a space.
        allowed = set("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'()+_,-./:=? ")
        if not 1 <= len(boundary) <= 70 or not set(boundary) <= allowed or boundary.endswith(" "):
            raise ValueError(f"invalid multipart boundary {boundary!r}")
        if clashes(boundary):
            raise ValueError(f"the boundary {boundary!r} occurs in a part; choose another")

    delimiter = b"--" + boundary.encode("ascii")
    body = b"".join(delimiter + b"\r\n" + p + b"\r\n" for p in parts) + delimiter + b"--\r\n"
    return body, f'multipart/form-data; boundary="{boundary}"'


# --- HTTP ------------------------------------------------------------------------------------------


def _request(
    url: str, body: bytes, content_type: str, headers: Mapping[str, str], timeout: float
) -> Any:
    req = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={"Content-Type": content_type, "Accept": "application/json", "User-Agent": USER_AGENT, **headers},
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as res:
            return json.load(res)
    except urllib.error.HTTPError as err:
        raw = err.read()
        request_id = err.headers.get("X-Request-Id")
        try:
            error = json.loads(raw)["error"]
            if isinstance(error, dict):  # /v1 routes: {"error": {"code", "message"}}
                raise ServiceError(err.code, str(error.get("code")), str(error.get("message")), request_id) from None
            raise ServiceError(err.code, f"HTTP_{err.code}", str(error), request_id) from None  # OIP routes
        except (ValueError, KeyError, TypeError):
            # Not the service's JSON (a proxy's HTML page, say): show the start of what came.
            text = raw[:300].decode("utf-8", "replace").strip() or err.reason
            raise ServiceError(err.code, f"HTTP_{err.code}", text, request_id) from None
    except urllib.error.URLError as err:
        raise ServiceError(0, "UNREACHABLE", f"cannot reach {url}: {err.reason}") from None
    except (ConnectionError, TimeoutError) as err:
        raise ServiceError(0, "UNREACHABLE", f"{url}: {err}") from None


def _join(base: str, path: str) -> str:
    return base.rstrip("/") + path


def classify(
    url: str,
    path: str,
    model: Optional[str] = None,
    version: Optional[str] = None,
    routing_key: Optional[str] = None,
    top_k: Optional[int] = None,
    timeout: float = 30.0,
) -> dict:
    """POST one image file to {url}/v1/classify; returns the service's answer (a dict).

    Raises ServiceError for an error answer, OSError when the file cannot be read.
    """
    with open(path, "rb") as f:
        content = f.read()
    fields = []
    if model is not None:
        fields.append(("model", model))
    if version is not None:
        fields.append(("version", version))
    if top_k is not None:
        fields.append(("topK", str(top_k)))
    content_type = mimetypes.guess_type(path)[0] or "application/octet-stream"
    body, multipart_type = encode_multipart(fields, [("image", os.path.basename(path), content, content_type)])
    headers = {"X-Routing-Key": routing_key} if routing_key is not None else {}
    return _request(_join(url, "/v1/classify"), body, multipart_type, headers, timeout)


def send_feedback(url: str, prediction_id: str, label: str, timeout: float = 30.0) -> dict:
    """POST the true label (a name such as "Sneaker", or an index "0".."9") for an answer's predictionId."""
    payload: dict = {"predictionId": prediction_id}
    if label.isdigit():
        payload["labelIndex"] = int(label)
    else:
        payload["label"] = label
    body = json.dumps(payload).encode("utf-8")
    return _request(_join(url, "/v1/feedback"), body, "application/json", {}, timeout)


# --- command line ----------------------------------------------------------------------------------


def _print_answer(path: str, answer: dict, feedback: Optional[dict]) -> None:
    print(f"{path}: {answer['label']} (confidence {answer['confidence']:.4f})")
    print(f"  model {answer['model']} version {answer['version']} arm {answer['arm']}")
    top = ", ".join(f"{t['label']} {t['confidence']:.4f}" for t in answer.get("top", []))
    if top:
        print(f"  top: {top}")
    print(f"  predictionId {answer['predictionId']}")
    if feedback is not None:
        verdict = "correct" if feedback.get("correct") else f"wrong, predicted {feedback.get('predicted')}"
        state = "accepted" if feedback.get("accepted") else "not accepted (already given)"
        print(f"  feedback {feedback.get('label')}: {state}, {verdict}")


def _print_error(path: str, err: ServiceError) -> None:
    where = f" (request {err.request_id})" if err.request_id else ""
    print(f"error: {path}: {err}{where}", file=sys.stderr)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="Classify product photos with product-classifier over HTTP.")
    parser.add_argument("images", nargs="+", metavar="image", help="image files (PNG, JPEG, WebP, GIF, TIFF, AVIF)")
    parser.add_argument("--url", default="http://localhost:8080", help="the service (default %(default)s)")
    parser.add_argument("--model", help="force a model, bypassing the A/B experiment (arm 'explicit')")
    parser.add_argument("--version", dest="model_version", help="force a version of --model")
    parser.add_argument("--routing-key", help="A/B routing key: the same key always gets the same arm")
    parser.add_argument("--top-k", type=int, help="how many classes to list (service default 3)")
    parser.add_argument("--feedback", metavar="LABEL", help="send this true label for each answer's predictionId")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per request (default %(default)s)")
    parser.add_argument("--json", action="store_true", help="print one JSON object per image instead of text")
    args = parser.parse_args(argv)
    if args.model_version and not args.model:
        parser.error("--version needs --model")

    failed = False
    for path in args.images:
        try:
            answer = classify(
                args.url, path, model=args.model, version=args.model_version,
                routing_key=args.routing_key, top_k=args.top_k, timeout=args.timeout,
            )
        except OSError as err:
            print(f"error: {path}: cannot read the file: {err.strerror or err}", file=sys.stderr)
            failed = True
            continue
        except ServiceError as err:
            _print_error(path, err)
            failed = True
            if err.code == "UNREACHABLE":
                break  # the next images would only fail the same way
            continue
        feedback = None
        if args.feedback is not None:
            try:
                feedback = send_feedback(args.url, answer["predictionId"], args.feedback, timeout=args.timeout)
            except ServiceError as err:
                _print_error(f"{path}: feedback", err)
                failed = True
        if args.json:
            print(json.dumps({"file": path, "classification": answer, "feedback": feedback}))
        else:
            _print_answer(path, answer, feedback)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
