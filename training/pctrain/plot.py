"""Validation accuracy over epochs, with the dendrite additions marked.

    python3 -m pctrain.plot --runs runs --out results/dendrite-growth.png

Each dendritic run is drawn after its base run: the base's epochs, then the
growth epochs, a vertical line where dendrites were added (solid) or retried
with fresh ones (dashed). The parameter-matched control of the same seed, if
it has run, is drawn dotted in the same colour: it had the same epoch budget,
so the two curves end at the same epoch. Needs Debian's python3-matplotlib.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def series(run: Path) -> tuple[list[int], list[float], list[tuple[int, str]], str]:
    """Epochs, validation accuracies and (epoch, event) marks of a dendritic run and its base."""
    meta = json.loads((run / "config.json").read_text())
    base = Path(meta["base_run"])
    if not base.is_absolute():
        base = run.parent / base.name
    base_hist = json.loads((base / "history.json").read_text())
    grow_hist = json.loads((run / "history.json").read_text())
    xs = [r["epoch"] for r in base_hist]
    ys = [r["val_acc"] for r in base_hist]
    offset = xs[-1] if xs else 0
    marks = [(offset, "add")]  # growth starts with the first addition
    for r in grow_hist[1:]:
        xs.append(offset + r["epoch"])
        ys.append(r["val_acc"])
        if r.get("after") in ("add", "retry"):
            marks.append((offset + r["epoch"], r["after"]))
    return xs, ys, marks, run.name


def control_series(run: Path) -> tuple[list[int], list[float]]:
    hist = json.loads((run / "history.json").read_text())
    return [r["epoch"] for r in hist], [r["val_acc"] for r in hist]


def plot(runs: list[Path], out: Path, controls: dict[str, Path] | None = None) -> None:
    """Draw `runs` (dendritic, any method); `controls` maps "seedN" to that seed's control run."""
    controls = dict(controls or {})
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5), dpi=110)
    for i, run in enumerate(runs):
        xs, ys, marks, name = series(run)
        color = f"C{i}"
        ax.plot(xs, ys, marker=".", color=color, label=name)
        for x, kind in marks:
            ax.axvline(x, color=color, alpha=0.5, linestyle="-" if kind == "add" else "--")
        control = controls.pop(name.rsplit("-", 1)[-1], None)  # once per seed
        if control is not None:
            cx, cy = control_series(control)
            ax.plot(cx, cy, linestyle=":", color=color, label=control.name)
    ax.set_xlabel("epoch (base training, then dendrite growth)")
    ax.set_ylabel("validation accuracy (5,000 held-out training images)")
    ax.set_ylim(0.88, None)
    ax.grid(alpha=0.3)
    ax.set_title("Dendritic growth: solid line = dendrites added, dashed = fresh dendrites retried")
    ax.legend(loc="lower right")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=Path, default=Path("runs"))
    p.add_argument("--out", type=Path, default=Path("results/dendrite-growth.png"))
    a = p.parse_args(argv)
    # gradient-descent runs first, so each seed's control takes their colour
    runs = sorted((d for d in a.runs.glob("dendritic*-seed*") if (d / "history.json").exists()),
                  key=lambda d: (d.name.startswith("dendritic-pb"), d.name))
    controls = {d.name.removeprefix("control-"): d for d in a.runs.glob("control-seed*") if (d / "history.json").exists()}
    print(json.dumps({"plot": str(a.out), "runs": [r.name for r in runs], "controls": sorted(c.name for c in controls.values())}))
    plot(runs, a.out, controls)


if __name__ == "__main__":
    main()
