"""Validation accuracy over epochs, with the dendrite additions marked.

    python3 -m pctrain.plot --runs runs --out results/dendrite-growth.png

Each dendritic run is drawn after its base run: the base's epochs, then the
growth epochs, a vertical line where dendrites were added (solid) or retried
with fresh ones (dashed); gradient-descent and perforated runs get a panel
each, since both grow on the same base runs and would hide each other. The
parameter-matched control of the same seed, if it has run, is drawn dotted
in the same colour: it had the gradient-descent run's epoch budget, so in
that panel the two curves end at the same epoch. Needs Debian's
python3-matplotlib.
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


METHODS = (("dendritic-pb", "perforated dendrite phase"), ("dendritic", "gradient-descent dendrites"))


def method_of(run: Path) -> str:
    """The panel title of a dendritic run, from its name (dendritic-pb-seedN or dendritic-seedN)."""
    return next(title for prefix, title in METHODS if run.name.startswith(prefix + "-"))


def plot(runs: list[Path], out: Path, controls: dict[str, Path] | None = None) -> list[str]:
    """Draw `runs` (dendritic, any method), one panel per method with a shared
    accuracy axis; `controls` maps "seedN" to that seed's control run, drawn
    dotted in that seed's colour in every panel with a run of that seed.
    Returns the panel titles, left to right."""
    controls = controls or {}
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    titles = [title for _, title in reversed(METHODS) if any(method_of(r) == title for r in runs)]
    seeds = sorted({r.name.rsplit("-", 1)[-1] for r in runs})
    fig, axes = plt.subplots(1, len(titles), figsize=(7 * len(titles), 5), dpi=110, sharey=True, squeeze=False)
    for ax, title in zip(axes[0], titles):
        for run in (r for r in runs if method_of(r) == title):
            xs, ys, marks, name = series(run)
            seed = name.rsplit("-", 1)[-1]
            color = f"C{seeds.index(seed)}"
            ax.plot(xs, ys, marker=".", color=color, label=name)
            nudge = 0.12 * (seeds.index(seed) - (len(seeds) - 1) / 2)  # seeds often add at the same epoch
            for x, kind in marks:
                ax.axvline(x + nudge, color=color, alpha=0.6, linestyle="-" if kind == "add" else "--")
            if seed in controls:
                cx, cy = control_series(controls[seed])
                ax.plot(cx, cy, linestyle=":", color=color, label=controls[seed].name)
        ax.set_title(title)
        ax.set_xlabel("epoch (base training, then dendrite growth)")
        ax.set_ylim(0.92, None)  # the growth is what matters; the early base epochs run lower
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")
    axes[0][0].set_ylabel("validation accuracy (5,000 held-out training images)")
    fig.suptitle("Validation accuracy; vertical lines: dendrites added (solid), fresh dendrites retried (dashed); "
                 "dotted: parameter-matched control")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return titles


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=Path, default=Path("runs"))
    p.add_argument("--out", type=Path, default=Path("results/dendrite-growth.png"))
    a = p.parse_args(argv)
    runs = sorted(d for d in a.runs.glob("dendritic*-seed*") if (d / "history.json").exists())
    controls = {d.name.removeprefix("control-"): d for d in a.runs.glob("control-seed*") if (d / "history.json").exists()}
    print(json.dumps({"plot": str(a.out), "runs": [r.name for r in runs], "controls": sorted(c.name for c in controls.values())}))
    plot(runs, a.out, controls)


if __name__ == "__main__":
    main()
