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

from .checkpoints import find_base
from .compare import RUN_NAME


def growth_series(run: Path) -> tuple[list[int], list[float], list[tuple[int, str]]]:
    """Epochs and validation accuracies of a grown run after its base's, with the
    (epoch, "add" | "retry") marks of a dendritic run (none for the continued control)."""
    meta = json.loads((run / "config.json").read_text())
    base = json.loads((find_base(run, meta["base_run"]) / "history.json").read_text())
    grown = json.loads((run / "history.json").read_text())
    dendritic = meta.get("kind", "dendritic") == "dendritic"  # runs from before the continued control have no kind
    xs, ys = [r["epoch"] for r in base], [r["val_acc"] for r in base]
    offset = xs[-1] if xs else 0
    marks = [(offset, "add")] if dendritic else []  # growth starts with the first addition
    for r in grown[1:]:
        xs.append(offset + r["epoch"])
        ys.append(r["val_acc"])
        if dendritic and r.get("after") in ("add", "retry"):
            marks.append((offset + r["epoch"], r["after"]))
    return xs, ys, marks


def control_series(run: Path) -> tuple[list[int], list[float]]:
    hist = json.loads((run / "history.json").read_text())
    return [r["epoch"] for r in hist], [r["val_acc"] for r in hist]


# Panels, left to right: the dendritic run kinds of compare.RUN_NAME.
PANELS = {"dendritic": "gradient-descent dendrites", "dendritic-pb": "perforated dendrite phase"}


def panel_and_seed(run: Path) -> tuple[str, str]:
    """The panel title of a dendritic run and its "seedN", read from its name."""
    kind, seed = RUN_NAME.match(run.name).groups()
    return PANELS[kind], f"seed{seed}"


def plot(runs: list[Path], out: Path, controls: dict[str, Path] | None = None) -> list[str]:
    """Draw `runs` (dendritic, any method), one panel per method with a shared
    accuracy axis; `controls` maps "seedN" to that seed's control run, drawn
    dotted in that seed's colour in every panel with a run of that seed.
    Returns the panel titles, left to right."""
    controls = controls or {}
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    placed = {run: panel_and_seed(run) for run in runs}
    titles = [title for title in PANELS.values() if title in {t for t, _ in placed.values()}]
    seeds = sorted({seed for _, seed in placed.values()})
    fig, axes = plt.subplots(1, len(titles), figsize=(7 * len(titles), 5), dpi=110, sharey=True, squeeze=False)
    for ax, title in zip(axes[0], titles):
        for run in (r for r in runs if placed[r][0] == title):
            xs, ys, marks = growth_series(run)
            name = run.name
            seed = placed[run][1]
            i = seeds.index(seed)
            color = f"C{i}"
            ax.plot(xs, ys, marker=".", color=color, label=name)
            nudge = 0.12 * (i - (len(seeds) - 1) / 2)  # seeds often add at the same epoch
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
