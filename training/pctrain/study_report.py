"""The dendrite study's report, recomputed from `results/study.json` and the
runs' cached test predictions and histories (nothing is retrained or
re-evaluated here).

    python3 -m pctrain.study_report --study results/study.json --runs runs --out results

Writes `study-report.json` (every figure below), `study.md` (the tables)
and three figures: `study-frontier.png` (test accuracy against parameters
and against MACs: the plain family's curve and the dendritic models with
their matched controls), `study-growth.png` (validation accuracy over
epochs for each setting, dendrite additions marked, the continued control
dotted) and `study-count.png` (the dendrite-count sweep).

Per setting, every arm (dendritic, base, continued, param-matched,
mac-matched, the plain widths, the count sweep's k) gets mean and sample
standard deviation over seeds; the dendritic arm is compared with each
control seed by seed with McNemar's exact test on the 10,000 test images,
and over seeds with a paired t-test on the accuracy differences. On the
frontier, each dendritic model is also set against the plain family's
curve, interpolated (linearly in the log of the count) at its parameters
and at its MACs.
"""
from __future__ import annotations

import argparse
import json
import math
import re
from pathlib import Path

import numpy as np

from .compare import PREDICTIONS, mcnemar, mean_std
from .data import load as load_data
from .plot import growth_series

CONTROLS = ("base", "continued", "param-matched", "mac-matched")
COUNT = re.compile(r"dendritic-k(\d+)-seed")


# ---- statistics ---------------------------------------------------------------
def _betacf(a: float, b: float, x: float) -> float:
    """The continued fraction of the regularized incomplete beta function (modified Lentz)."""
    tiny, qab, qap, qam = 1e-300, a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        for num in (m * (b - m) * x / ((qam + m2) * (a + m2)), -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """I_x(a, b), the regularized incomplete beta function."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def paired_t(differences: list[float]) -> dict:
    """Two-sided paired t-test that the mean difference is zero (df = n - 1)."""
    d = np.asarray(differences, dtype=np.float64)
    n = len(d)
    out = {"n": n, "meanDifference": float(d.mean()) if n else 0.0}
    if n < 2:
        return {**out, "t": None, "pValue": None}
    sd = float(d.std(ddof=1))
    if sd == 0.0:  # every seed the same difference: no spread to test against
        return {**out, "sd": 0.0, "t": None, "pValue": 1.0 if out["meanDifference"] == 0 else None}
    t = out["meanDifference"] / (sd / math.sqrt(n))
    df = n - 1
    return {**out, "sd": sd, "t": t, "pValue": betainc(df / 2, 0.5, df / (df + t * t))}


def interpolate_log(xs: list[float], ys: list[float], x: float) -> float | None:
    """The curve through (xs, ys), linear in log x, at x; None outside its range."""
    pts = sorted(zip(xs, ys))
    lx = math.log(x)
    for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
        if x0 <= x <= x1:
            return y0 if x1 == x0 else y0 + (y1 - y0) * (lx - math.log(x0)) / (math.log(x1) - math.log(x0))
    return None


# ---- grouping -----------------------------------------------------------------
def setting_of(row: dict) -> str:
    """The setting a row belongs to: its directory under runs/study/, else its experiment."""
    parts = row["run"].split("/")
    return parts[1] if len(parts) >= 3 and parts[0] == "study" else row["experiment"]


def arm_of(row: dict) -> str:
    if row["kind"] == "plain":
        return f"plain x{row['width']:g}"
    k = COUNT.search(row["run"])
    if row["kind"] == "dendritic" and k:
        return f"dendritic, {k.group(1)} per neuron"
    return row["kind"]


def correct(runs: Path, row: dict, labels: np.ndarray) -> np.ndarray:
    saved = json.loads((runs / row["run"] / PREDICTIONS).read_text())
    return np.asarray(saved["predictions"]) == labels


def summarize(rows: list[dict], runs: Path, labels: np.ndarray) -> dict:
    settings: dict[str, dict] = {}
    for row in rows:
        slot = settings.setdefault(setting_of(row), {}).setdefault(arm_of(row), {})
        if row["seed"] in slot:
            raise ValueError(f"{row['run']} and {slot[row['seed']]['run']} are both {arm_of(row)!r}, seed "
                             f"{row['seed']}, of setting {setting_of(row)!r}: one run per arm and seed")
        slot[row["seed"]] = row
    report = {}
    for name, arms in settings.items():
        table = []
        for arm, by_seed in arms.items():
            seeds = sorted(by_seed)
            rs = [by_seed[s] for s in seeds]
            table.append({"arm": arm, "seeds": seeds,
                          "test": mean_std([r["testAccuracy"] for r in rs]),
                          "validation": mean_std([r["validationAccuracy"] for r in rs]),
                          "parameters": float(np.mean([r["parameters"] for r in rs])),
                          "macs": float(np.mean([r["macs"] for r in rs])),
                          "dendritesPerNeuron": [r["dendritesPerNeuron"] for r in rs]})
        comparisons = []
        for arm in (a for a in arms if a.startswith("dendritic")):
            for control in (c for c in arms if c in CONTROLS):
                common = sorted(set(arms[arm]) & set(arms[control]))
                if not common:
                    continue
                per_seed, diffs = [], []
                for s in common:
                    a, b = arms[arm][s], arms[control][s]
                    m = mcnemar(correct(runs, a, labels), correct(runs, b, labels))
                    per_seed.append({"seed": s, "difference": a["testAccuracy"] - b["testAccuracy"],
                                     "dendriticRightControlWrong": m["aRightBWrong"],
                                     "dendriticWrongControlRight": m["aWrongBRight"], "pValue": m["pValue"]})
                    diffs.append(a["testAccuracy"] - b["testAccuracy"])
                comparisons.append({"arm": arm, "control": control, "perSeed": per_seed, "pairedT": paired_t(diffs)})
        report[name] = {"experiment": next(iter(next(iter(arms.values())).values()))["experiment"],
                        "arms": table, "comparisons": comparisons}
        if name == "frontier":
            report[name]["againstPlainCurve"] = against_curve(arms)
    return report


def against_curve(arms: dict) -> list[dict]:
    """Each dendritic model's test accuracy minus the plain family's (mean over seeds) at its count."""
    family = {a: v for a, v in arms.items() if a.startswith("plain") or a == "base"}
    curve = []
    for by_seed in family.values():
        rs = list(by_seed.values())
        curve.append((float(np.mean([r["parameters"] for r in rs])), float(np.mean([r["macs"] for r in rs])),
                      float(np.mean([r["testAccuracy"] for r in rs]))))
    out = []
    for seed, r in sorted(arms.get("dendritic", {}).items()):
        row = {"seed": seed, "testAccuracy": r["testAccuracy"], "parameters": r["parameters"], "macs": r["macs"]}
        for key, i in (("parameters", 0), ("macs", 1)):
            plain = interpolate_log([c[i] for c in curve], [c[2] for c in curve], r[key])
            row[f"plainAtSame{key.capitalize()}"] = plain
            row[f"liftAtSame{key.capitalize()}"] = None if plain is None else r["testAccuracy"] - plain
        out.append(row)
    return out


# ---- output -------------------------------------------------------------------
def pct(x: float | None, signed: bool = False) -> str:
    return "n/a" if x is None else f"{100 * x:+.2f}" if signed else f"{100 * x:.2f}%"


def fmt_p(p: float | None) -> str:
    return "n/a" if p is None else f"{p:.2g}" if p < 0.001 else f"{p:.3f}"


def markdown(report: dict) -> str:
    lines = []
    for name, r in report.items():
        lines += [f"## {name} ({r['experiment']})", "",
                  "| arm | seeds | test accuracy | validation accuracy | parameters | MACs / image | dendrites per neuron |",
                  "|---|---|---|---|---|---|---|"]
        for a in sorted(r["arms"], key=lambda a: a["parameters"]):
            t, v = a["test"], a["validation"]
            lines.append(f"| {a['arm']} | {', '.join(map(str, a['seeds']))} | {pct(t['mean'])} ± {100 * t['std']:.2f} "
                         f"| {pct(v['mean'])} ± {100 * v['std']:.2f} | {a['parameters']:,.0f} | "
                         f"{a['macs'] / 1e6:.2f} M | {', '.join(map(str, a['dendritesPerNeuron']))} |")
        if r["comparisons"]:
            lines += ["", "| dendritic arm vs control | test difference per seed (points) | McNemar per seed "
                      "(dendritic right/control right, p) | mean difference | paired t-test p |", "|---|---|---|---|---|"]
            for c in r["comparisons"]:
                per = c["perSeed"]
                lines.append(f"| {c['arm']} vs {c['control']} | {', '.join(pct(s['difference'], True) for s in per)} | "
                             + "; ".join(f"{s['dendriticRightControlWrong']}/{s['dendriticWrongControlRight']}, "
                                         f"{fmt_p(s['pValue'])}" for s in per)
                             + f" | {pct(c['pairedT']['meanDifference'], True)} | {fmt_p(c['pairedT']['pValue'])} |")
        if r.get("againstPlainCurve"):
            lines += ["", "| dendritic seed | test accuracy | plain curve at its parameters | lift | "
                      "plain curve at its MACs | lift |", "|---|---|---|---|---|---|"]
            for c in r["againstPlainCurve"]:
                lines.append(f"| {c['seed']} | {pct(c['testAccuracy'])} | {pct(c['plainAtSameParameters'])} | "
                             f"{pct(c['liftAtSameParameters'], True)} | {pct(c['plainAtSameMacs'])} | "
                             f"{pct(c['liftAtSameMacs'], True)} |")
        lines.append("")
    return "\n".join(lines)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_frontier(rows: list[dict], out: Path) -> bool:
    front = [r for r in rows if r["experiment"] == "frontier"]
    if not front:
        return False
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(13, 5), dpi=110, sharey=True)
    styles = {"plain": ("C0", "o", "plain network (widths x0.5 to x2)"), "base": ("C0", "o", None),
              "dendritic": ("C3", "*", "dendritic (grown on width x1)"),
              "continued": ("C2", "s", "continued training, no dendrites"),
              "param-matched": ("C1", "^", "plain, parameter-matched"),
              "mac-matched": ("C4", "v", "plain, MAC-matched")}
    for ax, key, label in ((axes[0], "parameters", "parameters"), (axes[1], "macs", "multiply-accumulates per image")):
        family: dict[float, list[dict]] = {}
        for r in front:
            if r["kind"] in ("plain", "base"):
                family.setdefault(r["width"], []).append(r)
        xs = [np.mean([r[key] for r in family[w]]) for w in sorted(family)]
        ys = [100 * np.mean([r["testAccuracy"] for r in family[w]]) for w in sorted(family)]
        ax.plot(xs, ys, color="C0", alpha=0.6)
        shown = set()
        for r in front:
            color, marker, name = styles[r["kind"]]
            lab = name if name and name not in shown else None
            shown.add(name)
            ax.scatter(r[key], 100 * r["testAccuracy"], color=color, marker=marker, s=60 if marker == "*" else 25,
                       label=lab, zorder=3)
        ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test accuracy, % (each point one seed)")
    axes[0].legend(loc="lower right", fontsize=8)
    fig.suptitle("Compression frontier: small CNN family (16-16-32-32 / 64 at width x1), three seeds")
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return True


def plot_growth(rows: list[dict], runs: Path, out: Path) -> list[str]:
    grown = [r for r in rows if r["kind"] == "dendritic" and r["experiment"] != "dendrite-count"]
    names = sorted({setting_of(r) for r in grown})
    if not names:
        return []
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(names), figsize=(6 * len(names), 4.5), dpi=110, squeeze=False)
    for ax, name in zip(axes[0], names):
        for r in sorted((r for r in grown if setting_of(r) == name), key=lambda r: r["seed"]):
            color = f"C{r['seed'] - 1}"
            xs, ys, marks = growth_series(runs / r["run"])
            ax.plot(xs, [100 * y for y in ys], color=color, marker=".", label=f"dendritic, seed {r['seed']}")
            for x, kind in marks:
                ax.axvline(x, color=color, alpha=0.5, linestyle="-" if kind == "add" else "--")
            cont = (runs / r["run"]).parent / f"continued-seed{r['seed']}"
            if (cont / "history.json").exists():
                cx, cy, _ = growth_series(cont)
                ax.plot(cx, [100 * y for y in cy], color=color, linestyle=":", label=f"continued, seed {r['seed']}")
        lows = [y for line in ax.get_lines() for y in line.get_ydata()[len(line.get_ydata()) // 2:]]
        if lows:
            ax.set_ylim(min(lows) - 0.5, None)
        ax.set_title(name)
        ax.set_xlabel("epoch (base, then growth)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    axes[0][0].set_ylabel("validation accuracy, %")
    fig.suptitle("Validation accuracy; vertical lines: dendrites added (solid) or retried (dashed); "
                 "dotted: the same cycles without dendrites")
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return names


def plot_count(rows: list[dict], out: Path) -> bool:
    sweep = [r for r in rows if r["experiment"] == "dendrite-count"]
    if not sweep:
        return False
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.5), dpi=110)
    by_k: dict[int, list[float]] = {}
    for r in sweep:
        k = COUNT.search(r["run"])
        if k:
            by_k.setdefault(int(k.group(1)), []).append(100 * r["testAccuracy"])
    ks = sorted(by_k)
    ax.errorbar(ks, [np.mean(by_k[k]) for k in ks], yerr=[np.std(by_k[k], ddof=1) if len(by_k[k]) > 1 else 0
                                                           for k in ks], marker="o", capsize=4, label="dendritic")
    cont = [100 * r["testAccuracy"] for r in sweep if r["kind"] == "continued"]
    if cont:
        ax.axhline(np.mean(cont), color="C2", linestyle=":", label="continued, no dendrites (mean)")
    ax.set_xscale("log", base=2)
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.set_xlabel("dendrites per neuron (one addition)")
    ax.set_ylabel("test accuracy, % (mean ± sd over seeds)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return True


def build(study: Path, runs: Path, out: Path, labels: np.ndarray | None = None) -> dict:
    rows = json.loads(study.read_text())
    labels = load_data().test.labels if labels is None else labels
    report = summarize(rows, runs, labels)
    out.mkdir(parents=True, exist_ok=True)
    (out / "study-report.json").write_text(json.dumps(report, indent=1) + "\n")
    (out / "study.md").write_text(markdown(report))
    figures = {"frontier": plot_frontier(rows, out / "study-frontier.png"),
               "growth": plot_growth(rows, runs, out / "study-growth.png"),
               "count": plot_count(rows, out / "study-count.png")}
    return {"settings": list(report), "figures": figures}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--study", type=Path, default=Path("results/study.json"))
    p.add_argument("--runs", type=Path, default=Path("runs"))
    p.add_argument("--out", type=Path, default=Path("results"))
    a = p.parse_args(argv)
    print(json.dumps(build(a.study, a.runs, a.out)))


if __name__ == "__main__":
    main()
