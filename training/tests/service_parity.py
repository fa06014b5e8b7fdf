"""Run the service's parity tool on an artifact, as the service would load it."""
import json
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PARITY = REPO / "dist" / "src" / "tools" / "parity.js"


def service_parity(artifact: Path) -> dict:
    """Schema validation, sha256 of every file, then ONNX Runtime and TF.js
    against PyTorch's recorded probabilities; returns the tool's report."""
    if not PARITY.exists():
        pytest.fail(f"{PARITY} is missing: run `npm run build` before the training tests")
    proc = subprocess.run(["node", str(PARITY), str(artifact)], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert [r["format"] for r in report["results"]] == ["onnx", "tfjs"]
    assert all(r["top1Mismatches"] == 0 and r["maxAbsDiff"] <= 1e-4 for r in report["results"])
    return report
