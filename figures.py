"""Figures of the supplementary material, drawn from score files (PNG, matplotlib on Agg).

`classes` (supp. Fig. S3): per-class Charades-Ego AP of a baseline submission (Third-only) and
of one or more variants (e.g. the Ego-Score, Object-Score and Interaction-Map models), all in the
official Charades text format (`id s_0 ... s_156` per line) and all scoring the same videos.
AP is in percent and computed as evaluate.py does (`evaluate.charades_map` over the annotated
first-person videos by default, a video a file lacks ranked last). A variant improves class c
when AP_variant(c) > AP_baseline(c) + min_gain (AP points); a class without a positive video
has no AP and never counts. The figure shows which classes each variant improves and the
overlaps: a Venn diagram for 1-3 variants, an UpSet-style chart (one bar per non-empty
exclusive intersection, a dot matrix naming its variants) for more.

    python figures.py classes --annotations CharadesEgo_v1_test.csv --baseline third_only.txt \
        --variant "Ego-Score=ego.txt" --variant "Object-Score=obj.txt" \
        --variant "Interaction-Map=int.txt" --out fig_s3.png [--json per_class.json] \
        [--min-gain 0] [--views first] [--class-names Charades_v1_classes.txt]

`fraction` (supp. Fig. S1): one metric (e.g. EPIC-100 `all_verb_accuracy_at_1`) of each method
against the fraction of training videos it was fine-tuned on, read from metrics files (one
JSON object, as evaluate.py prints it, or train_finetune.py's metrics.jsonl: its last line), with the absolute gain of every other method
over the baseline on a second axis (the paper's orange curve). Every method needs a file for
every fraction any method has.

    python figures.py fraction --metric all_verb_accuracy_at_1 \
        --run "0.1=third_only:res_10_third.json" --run "10%=Ego-Exo:res_10_egoexo.json" ... \
        --baseline third_only --out fig_s1.png
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from data.annotations import (CHARADES_NUM_CLASSES, AnnotationError, read_charades_ego,
                              read_class_names)
from data.datasets import charades_multi_hot
from data.submissions import SubmissionError, read_charades_submission
from evaluate import EvaluationError, align_to_annotations, charades_map


class FigureInputError(ValueError):
    """A score or metrics file, or a command-line entry, cannot make the figure asked for."""


def _pyplot():
    """matplotlib's pyplot on the Agg backend (files only, no display), imported on first use so
    the rest of the project never needs matplotlib."""
    try:
        import matplotlib
    except ImportError:
        raise FigureInputError("figures need matplotlib: pip install matplotlib") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


# ----------------------------------------------------------------------------- Fig. S3


@dataclass(frozen=True)
class CharadesGroundTruth:
    """The videos evaluate.py scores for one view selection, in annotation-file order."""
    video_ids: list[str]
    labels: np.ndarray     # int64 [N, 157], the union of each video's action classes
    other_view: set[str]   # ids of the annotated videos of the other view, ignored if submitted


def charades_ground_truth(annotations_csv, views: str = "first") -> CharadesGroundTruth:
    """Ground truth of the first-person, third-person or both views' videos."""
    videos = read_charades_ego(annotations_csv)
    wanted = {"first": lambda v: v.first_person, "third": lambda v: not v.first_person,
              "both": lambda v: True}[views]
    selected = [v for v in videos if wanted(v)]
    if not selected:
        raise FigureInputError(f"{annotations_csv}: no {views}-person videos")
    labels = np.stack([charades_multi_hot(v.actions).numpy() for v in selected]).astype(np.int64)
    return CharadesGroundTruth([v.video_id for v in selected], labels,
                               {v.video_id for v in videos} - {v.video_id for v in selected})


def per_class_ap(submission, truth: CharadesGroundTruth) -> tuple[np.ndarray, np.ndarray]:
    """(bool [N]: which ground-truth videos the file scores, per-class AP [157] in percent, NaN
    for a class with no positive) of one Charades submission, exactly as evaluate.py scores it:
    videos the file lacks rank last, ids of the other view are ignored."""
    ids, scores = read_charades_submission(submission)
    (aligned,), present, _, _ = align_to_annotations(os.fspath(submission), truth.video_ids, ids,
                                                     [scores], -np.inf, truth.other_view)
    return present, np.asarray(charades_map(aligned, truth.labels)["per_class_ap"], np.float64)


def improved_classes(baseline_ap: np.ndarray, variant_aps: dict[str, np.ndarray],
                     min_gain: float = 0.0) -> dict[str, set[int]]:
    """For each variant, the classes with AP > baseline AP + min_gain (NaN APs never count)."""
    return {name: {int(c) for c in np.flatnonzero(~np.isnan(baseline_ap) & ~np.isnan(ap)
                                                  & (ap > baseline_ap + min_gain))}
            for name, ap in variant_aps.items()}


def exclusive_regions(improved: dict[str, set[int]]) -> dict[tuple[str, ...], list[int]]:
    """The regions of the Venn diagram: for every non-empty combination of variants (names in
    the given order), the sorted classes improved by exactly those variants and no other."""
    members: dict[int, list[str]] = {}
    for name, classes in improved.items():
        for c in classes:
            members.setdefault(c, []).append(name)
    regions: dict[tuple[str, ...], list[int]] = {}
    for c in sorted(members):
        regions.setdefault(tuple(members[c]), []).append(c)
    return regions


def _class_label(c: int, class_names: Sequence[str] | None) -> str:
    return class_names[c] if class_names is not None else f"c{c:03d}"


def _region_text(classes: list[int], class_names, limit: int = 40) -> str:
    """A region's class list: ids four to a line, or one name per line (names are long)."""
    labels = [_class_label(c, class_names) for c in classes[:limit]]
    if class_names is None:
        lines = [" ".join(labels[i:i + 4]) for i in range(0, len(labels), 4)]
    else:
        lines = [label if len(label) <= 28 else label[:25] + "..." for label in labels]
    if len(classes) > limit:
        lines.append(f"... +{len(classes) - limit} more")
    return "\n".join(lines)


# Circle centres (radius 1) and a point inside each exclusive region, by number of variants;
# a region is named by the indices of its variants.
_VENN_LAYOUT = {
    1: ([(0.0, 0.0)], {(0,): (0.0, 0.0)}),
    2: ([(-0.55, 0.0), (0.55, 0.0)], {(0,): (-0.95, 0.0), (1,): (0.95, 0.0), (0, 1): (0.0, 0.0)}),
    3: ([(-0.6, 0.35), (0.6, 0.35), (0.0, -0.65)],
        {(0,): (-1.05, 0.6), (1,): (1.05, 0.6), (2,): (0.0, -1.2), (0, 1): (0.0, 0.8),
         (0, 2): (-0.62, -0.4), (1, 2): (0.62, -0.4), (0, 1, 2): (0.0, 0.02)}),
}
_COLOURS = ("tab:red", "tab:blue", "tab:green", "tab:purple", "tab:brown", "tab:pink", "tab:olive")


def draw_improvement_venn(improved: dict[str, set[int]], out, class_names=None,
                          title: str = "") -> None:
    """Venn diagram of 1-3 variants' improved classes, each region listing its classes."""
    if not 1 <= len(improved) <= 3:
        raise FigureInputError(f"a Venn diagram takes 1 to 3 variants, got {len(improved)}")
    plt = _pyplot()
    names = list(improved)
    centres, anchors = _VENN_LAYOUT[len(names)]
    fig, ax = plt.subplots(figsize=(11, 10))
    for name, centre, colour in zip(names, centres, _COLOURS):
        ax.add_patch(plt.Circle(centre, 1.0, facecolor=colour, alpha=0.15, edgecolor=colour,
                                linewidth=2, label=f"{name} ({len(improved[name])} classes)"))
    # Names are long: fewer of them fit in a region than ids.
    if class_names is None:
        limit = 80 if len(names) < 3 else 40
    else:
        limit = 24 if len(names) < 3 else 14
    regions = exclusive_regions(improved)
    for members, (x, y) in anchors.items():  # every region, "0" where no class falls
        classes = regions.get(tuple(names[i] for i in members), [])
        ax.text(x, y, f"{len(classes)}\n" + _region_text(classes, class_names, limit),
                ha="center", va="center", fontsize=7 if class_names is None else 5.5,
                linespacing=1.15)
    xs, ys = [x for x, _ in centres], [y for _, y in centres]
    ax.set_xlim(min(xs) - 1.1, max(xs) + 1.1)
    ax.set_ylim(min(ys) - 1.1, max(ys) + 1.1)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=len(names), frameon=False,
              fontsize=11)
    ax.set_title(title, fontsize=12, pad=30)
    fig.savefig(out, dpi=120, bbox_inches="tight")
    plt.close(fig)


def draw_improvement_upset(improved: dict[str, set[int]], out, title: str = "") -> None:
    """UpSet-style chart: one bar per non-empty exclusive intersection (largest first), and under
    it a dot matrix marking the variants of that intersection."""
    plt = _pyplot()
    names = list(improved)
    regions = sorted(exclusive_regions(improved).items(), key=lambda kv: (-len(kv[1]), kv[0]))
    if not regions:  # a real outcome, drawn as such rather than refused
        fig, ax = plt.subplots(figsize=(6, 2))
        ax.axis("off")
        ax.text(0.5, 0.5, "no variant improves any class", ha="center", va="center")
        ax.set_title(title, fontsize=11)
        fig.savefig(out, dpi=120, bbox_inches="tight")
        plt.close(fig)
        return
    fig, (bars, matrix) = plt.subplots(
        2, 1, sharex=True, figsize=(max(6.0, 0.45 * len(regions) + 3), 4 + 0.35 * len(names)),
        gridspec_kw={"height_ratios": [3, 0.4 + 0.25 * len(names)], "hspace": 0.05})
    xs = np.arange(len(regions))
    sizes = [len(classes) for _, classes in regions]
    bars.bar(xs, sizes, color="0.3")
    for x, size in zip(xs, sizes):
        bars.text(x, size, str(size), ha="center", va="bottom", fontsize=8)
    bars.set_ylabel("classes improved by exactly these variants")
    bars.set_title(title, fontsize=11)
    for x, (region, _) in zip(xs, regions):
        rows = sorted(names.index(n) for n in region)
        matrix.scatter([x] * len(names), range(len(names)), color="0.85", s=40)
        matrix.scatter([x] * len(rows), rows, color="0.1", s=40, zorder=3)
        matrix.plot([x, x], [rows[0], rows[-1]], color="0.1", linewidth=2)
    matrix.set_yticks(range(len(names)),
                      [f"{n} ({len(improved[n])})" for n in names])
    matrix.set_ylim(len(names) - 0.5, -0.5)
    matrix.set_xticks([])
    for side in ("top", "right", "bottom"):
        matrix.spines[side].set_visible(False)
        bars.spines[side].set_visible(side == "bottom")
    fig.savefig(out, dpi=120, bbox_inches="tight")
    plt.close(fig)


def _name_and_path(entry: str, option: str) -> tuple[str, str]:
    name, sep, path = entry.partition("=")
    if not sep or not name.strip() or not path.strip():
        raise FigureInputError(f"{option} {entry!r}: expected NAME=PATH")
    return name.strip(), path.strip()


def compare_classes(args) -> None:
    variants = dict(_name_and_path(v, "--variant") for v in args.variant)
    if len(variants) != len(args.variant):
        raise FigureInputError("--variant: each variant name must be given once")
    class_names = read_class_names(args.class_names) if args.class_names else None
    if class_names is not None and len(class_names) != CHARADES_NUM_CLASSES:
        raise FigureInputError(f"{args.class_names}: expected {CHARADES_NUM_CLASSES} class names, "
                               f"got {len(class_names)}")
    truth = charades_ground_truth(args.annotations, args.views)
    baseline_present, baseline_ap = per_class_ap(args.baseline, truth)
    variant_aps = {}
    for name, path in variants.items():
        present, variant_aps[name] = per_class_ap(path, truth)
        if (present != baseline_present).any():
            ids = np.array(truth.video_ids)
            lacks, extra = ids[baseline_present & ~present], ids[present & ~baseline_present]
            raise FigureInputError(
                f"{path}: scores other videos than the baseline {args.baseline} (lacks "
                f"{len(lacks)}, e.g. {', '.join(lacks[:3])}; has {len(extra)} more, e.g. "
                f"{', '.join(extra[:3])}); per-class AP is only comparable on the same videos")
    improved = improved_classes(baseline_ap, variant_aps, args.min_gain)
    regions = exclusive_regions(improved)

    print_class_table(baseline_ap, variant_aps, class_names)
    scored = int(np.sum(~np.isnan(baseline_ap)))
    print(f"\nimproved over {args.baseline} by more than {args.min_gain:g} AP points "
          f"({scored} classes have a positive video):")
    for name, classes in improved.items():
        print(f"  {name}: {len(classes)} classes")
    for region, classes in regions.items():
        print(f"  exactly {' & '.join(region)}: {len(classes)}: "
              f"{' '.join(f'c{c:03d}' for c in classes)}")

    title = (f"Charades-Ego classes improved over {os.path.basename(args.baseline)} "
             f"(AP gain > {args.min_gain:g} points)")
    if len(variants) <= 3:
        draw_improvement_venn(improved, args.out, class_names, title)
    else:
        draw_improvement_upset(improved, args.out, title)
    print(f"wrote {args.out}")

    if args.json:
        def ap_or_none(ap: float) -> float | None:
            return None if math.isnan(ap) else float(ap)

        report = {
            "baseline": args.baseline, "variants": variants, "min_gain": args.min_gain,
            "classes": [{"class": f"c{c:03d}", **({"name": class_names[c]} if class_names else {}),
                         "baseline_ap": ap_or_none(baseline_ap[c]),
                         "variant_ap": {n: ap_or_none(ap[c]) for n, ap in variant_aps.items()}}
                        for c in range(CHARADES_NUM_CLASSES)],
            "improved": {n: [f"c{c:03d}" for c in sorted(cs)] for n, cs in improved.items()},
            "regions": [{"variants": list(r), "classes": [f"c{c:03d}" for c in cs]}
                        for r, cs in regions.items()],
        }
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=1)
        print(f"wrote {args.json}")


def print_class_table(baseline_ap: np.ndarray, variant_aps: dict[str, np.ndarray],
                      class_names=None) -> None:
    """One row per class and a last mAP row: baseline AP, then each variant's AP and delta, in
    AP points ("-" where a class has no positive video)."""
    def points(x: float, signed: bool = False) -> str:
        return "-" if math.isnan(x) else f"{x:+.2f}" if signed else f"{x:.2f}"

    width = 30 if class_names else 6
    print(f"{'class':<{width}} {'base':>7}" + "".join(f" {n[:15]:>15} {'delta':>7}"
                                                       for n in variant_aps))
    rows = [(_class_label(c, class_names)[:width], baseline_ap[c],
             [ap[c] for ap in variant_aps.values()]) for c in range(CHARADES_NUM_CLASSES)]
    rows.append(("mAP", np.nanmean(baseline_ap), [np.nanmean(ap) for ap in variant_aps.values()]))
    for label, base, variants in rows:
        print(f"{label:<{width}} {points(base):>7}" + "".join(
            f" {points(ap):>15} {points(ap - base, signed=True):>7}" for ap in variants))


# ----------------------------------------------------------------------------- Fig. S1


def parse_run(entry: str) -> tuple[float, str, str]:
    """`FRACTION=METHOD:PATH` -> (fraction in (0, 1], method, path); FRACTION is 0.1 or 10%."""
    fraction_text, sep, rest = entry.partition("=")
    method, sep2, path = rest.partition(":")
    if not (sep and sep2 and method.strip() and path.strip()):
        raise FigureInputError(f"--run {entry!r}: expected FRACTION=METHOD:PATH, "
                               f"e.g. 0.1=third_only:res_10.json")
    text = fraction_text.strip()
    try:
        fraction = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        fraction = math.nan
    if not 0 < fraction <= 1:
        raise FigureInputError(f"--run {entry!r}: the fraction should be in (0, 1] or a "
                               f"percentage like 10%, got {text!r}")
    return fraction, method.strip(), path.strip()


def read_metric(path, metric: str) -> float:
    """One metric from a metrics file: one JSON object (evaluate.py's output), or JSON lines
    (train_finetune.py's metrics.jsonl, one object per evaluation), whose last line counts."""
    if not os.path.isfile(path):
        raise FigureInputError(f"{path}: metrics file not found")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    lines = [line for line in text.splitlines() if line.strip()]
    line_no = 1
    if os.fspath(path).endswith(".jsonl"):
        line_no, text = len(lines), lines[-1] if lines else ""
    try:
        metrics = json.loads(text)
    except json.JSONDecodeError as e:
        raise FigureInputError(f"{path}:{e.lineno + line_no - 1}: invalid JSON at column {e.colno} "
                               f"({e.msg}); expected one JSON object of metrics") from None
    if not isinstance(metrics, dict):
        raise FigureInputError(f"{path}: expected one JSON object of metrics, "
                               f"got {type(metrics).__name__}")
    if metric not in metrics:
        raise FigureInputError(f"{path}: no metric {metric!r}; the file has "
                               f"{', '.join(map(str, metrics)) or 'no keys'}")
    value = metrics[metric]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise FigureInputError(f"{path}: metric {metric!r} should be a finite number, "
                               f"got {value!r}")
    return float(value)


def fraction_table(runs: Sequence[tuple[float, str, str]], metric: str,
                   baseline: str) -> tuple[list[float], dict[str, list[float]]]:
    """(sorted fractions, {method: metric per fraction}), baseline first. Every method must have
    exactly one file per fraction, and all methods the same fractions."""
    values: dict[str, dict[float, float]] = {}
    sources: dict[tuple[str, float], str] = {}
    for fraction, method, path in runs:
        if (method, fraction) in sources:
            raise FigureInputError(f"{path}: method {method!r} at fraction {fraction:g} is already "
                                   f"given by {sources[method, fraction]}")
        sources[method, fraction] = path
        values.setdefault(method, {})[fraction] = read_metric(path, metric)
    if baseline not in values:
        raise FigureInputError(f"--baseline {baseline!r}: unknown method; the runs name "
                               f"{', '.join(values) or 'none'}")
    fractions = sorted({f for per_method in values.values() for f in per_method})
    for method, per_method in values.items():
        missing = [f"{f:g}" for f in fractions if f not in per_method]
        if missing:
            given = ", ".join(f"{sources[method, f]} at {f:g}" for f in sorted(per_method))
            raise FigureInputError(f"method {method!r} has no run at fraction(s) "
                                   f"{', '.join(missing)}, which other methods have (its runs: "
                                   f"{given}); add --run FRACTION={method}:FILE")
    order = [baseline] + [m for m in values if m != baseline]
    return fractions, {m: [values[m][f] for f in fractions] for m in order}


def draw_fraction_curve(fractions: Sequence[float], table: dict[str, list[float]], baseline: str,
                        metric: str, out) -> None:
    """Metric of each method against the training fraction (left axis) and, on a twin right
    axis, each other method's absolute gain over the baseline (orange for the first)."""
    plt = _pyplot()
    xs = [100 * f for f in fractions]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    line_colours = iter(("tab:blue", "tab:green", "tab:red", "tab:purple", "tab:brown"))
    gain_colours = iter(("tab:orange", "gold", "chocolate", "salmon", "peru"))
    for method, ys in table.items():
        ax.plot(xs, ys, marker="o", color="0.45" if method == baseline else next(line_colours),
                label=method)
    ax.set_xlabel("training videos used (%)")
    ax.set_ylabel(metric)
    ax.set_xticks(xs)
    ax.grid(alpha=0.3)
    gain_ax = ax.twinx()
    all_gains = [0.0]
    for method, ys in table.items():
        if method != baseline:
            gains = [y - b for y, b in zip(ys, table[baseline])]
            all_gains += gains
            colour = next(gain_colours)
            gain_ax.plot(xs, gains, marker="s", linestyle="--", color=colour,
                         label=f"{method} - {baseline}")
            for x, g in zip(xs, gains):
                gain_ax.annotate(f"{g:+.2f}", (x, g), textcoords="offset points", xytext=(9, 4),
                                 ha="left", fontsize=7, color=colour)
    # The gain axis starts at zero (or below, for a loss) so the curve's height reads as a gain.
    low, high = min(all_gains), max(all_gains)
    gain_ax.set_ylim(low - 0.05 * (high - low + 1e-9), high + 0.15 * (high - low + 1e-9))
    gain_ax.axhline(0.0, color="tab:orange", linewidth=0.6, alpha=0.5)
    gain_ax.set_ylabel(f"absolute gain in {metric}", color="tab:orange")
    gain_ax.tick_params(axis="y", colors="tab:orange")
    handles = ax.get_legend_handles_labels()[0] + gain_ax.get_legend_handles_labels()[0]
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=3,
              fontsize=8, frameon=False)
    ax.set_title(f"{metric} against the fraction of training videos", fontsize=11)
    fig.savefig(out, dpi=120, bbox_inches="tight")
    plt.close(fig)


def compare_fractions(args) -> None:
    runs = [parse_run(entry) for entry in args.run]
    fractions, table = fraction_table(runs, args.metric, args.baseline)
    others = [m for m in table if m != args.baseline]
    print(f"{'fraction':>8}" + "".join(f" {m[:14]:>14}" for m in table)
          + "".join(f" {'gain ' + m[:9]:>14}" for m in others))
    for i, fraction in enumerate(fractions):
        print(f"{100 * fraction:7.0f}%" + "".join(f" {table[m][i]:14.2f}" for m in table)
              + "".join(f" {table[m][i] - table[args.baseline][i]:+14.2f}" for m in others))
    draw_fraction_curve(fractions, table, args.baseline, args.metric, args.out)
    print(f"wrote {args.out}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    classes = commands.add_parser("classes",
                                  help="Fig. S3: Charades-Ego classes each variant improves")
    classes.add_argument("--annotations", required=True, help="CharadesEgo_v1_test.csv")
    classes.add_argument("--baseline", required=True, help="baseline submission (Third-only)")
    classes.add_argument("--variant", action="append", required=True, metavar="NAME=PATH",
                         help="a variant's submission; repeat for each variant")
    classes.add_argument("--out", required=True, help="PNG to write")
    classes.add_argument("--json", help="also write per-class AP and the improved sets here")
    classes.add_argument("--min-gain", type=float, default=0.0,
                         help="AP percentage points a variant must gain to count (default 0)")
    classes.add_argument("--views", choices=("first", "third", "both"), default="first",
                         help="which videos of the annotations are scored (as evaluate.py)")
    classes.add_argument("--class-names", help="Charades_v1_classes.txt, to name the classes "
                         "(one `c000 Holding some clothes` per line)")
    fraction = commands.add_parser("fraction",
                                   help="Fig. S1: a metric against the training fraction")
    fraction.add_argument("--metric", required=True, help="key of the metrics JSON, e.g. verb_top1")
    fraction.add_argument("--run", action="append", required=True, metavar="FRACTION=METHOD:PATH",
                          help="one metrics file; repeat for each method and fraction")
    fraction.add_argument("--baseline", required=True, help="the method gains are measured against")
    fraction.add_argument("--out", required=True, help="PNG to write")
    args = parser.parse_args(argv)
    try:
        (compare_classes if args.command == "classes" else compare_fractions)(args)
    except (FigureInputError, AnnotationError, SubmissionError, EvaluationError) as e:
        sys.exit(f"figures.py {args.command}: {e}")


if __name__ == "__main__":
    main()
