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

`ego_distribution` (supp. Fig. S2): the histogram of the Ego-Scores of a data set, P(egocentric)
= exp of the log-probability of class 1 that score_teachers.py stores per video, over equal
bins of [0, 1] (the last one closed); prints the mean, the median and the share at >= 0.5.

    python figures.py ego_distribution --scores runs/teachers/ego_scores.pt --out fig_s2.png \
        [--bins 20] [--log-y] [--json hist.json]

`extremes` (supp. Fig. S4): for each score file, a row of the videos that score highest and a
row of those that score lowest, each shown as a few frames at the centres of equal segments of
the video (read with data/video.py). Ego-Scores rank by P(egocentric), Object-Scores by the
probability of the video's most likely ImageNet class. The videos are found through the list
the scores were made from; one that cannot be decoded is skipped for the next.

    python figures.py extremes --scores runs/teachers/ego_scores.pt \
        --scores runs/teachers/object_scores.pt --video-list k400/val.csv \
        --video-root k400/videos --out fig_s4.png [--top 4] [--frames 4]

`curves`: the loss curves of one or more training runs from their JSON-lines logs
(`OUT_DIR/log.jsonl` of train_pretrain.py / train_finetune.py, the format in
docs/training_log.md): a panel per loss term, one of the learning rate, and one per evaluation
metric, x = progress in epochs, one line per log (labelled by --labels or the log's folder). A
resumed run appends to the same log and repeats what came after its checkpoint; the curves show
what the final run computed (`final_run_lines`). The plotted numbers are also written as JSON
beside the PNG (same stem, .json). --smooth N draws the trailing mean of N logged points over
the raw loss values. Bad input exits with status 2 and one line naming the file and line.

    python figures.py curves runs/pre_a/log.jsonl runs/pre_b/log.jsonl --out curves.png \
        [--labels a,b] [--terms loss,action,ego] [--smooth 5]
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
import torch

from data.annotations import (CHARADES_NUM_CLASSES, AnnotationError, kinetics_csv_class_names, read_charades_ego,
                              read_kinetics_csv, read_kinetics_list,
                              read_class_names)
from data.datasets import charades_multi_hot
from data.submissions import SubmissionError, read_charades_submission
from data.teacher_targets import TeacherScores, TeacherTargetError, load_teacher_scores
from data.video import VideoError, VideoReader
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
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except UnicodeDecodeError:
        raise FigureInputError(f"{path}: not UTF-8 text; expected JSON metrics (evaluate.py's output or a "
                               f"metrics.jsonl)") from None
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


# ----------------------------------------------------------------------------- Fig. S2


def ego_probabilities(scores: TeacherScores) -> np.ndarray:
    """Ego-Score of each video: P(egocentric) = exp of the stored log-probability of class 1."""
    return scores.scores[:, 1].double().exp().numpy()


def ego_score_histogram(scores: TeacherScores, bins: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """(bin edges [bins + 1] over [0, 1], videos per bin [bins]); the last bin holds 1.0."""
    if bins < 1:
        raise FigureInputError(f"--bins should be >= 1, got {bins}")
    counts, edges = np.histogram(ego_probabilities(scores), bins=bins, range=(0.0, 1.0))
    return edges, counts


def draw_ego_distribution(edges: np.ndarray, counts: np.ndarray, out, title: str = "",
                          log_y: bool = False) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.bar(edges[:-1], counts, width=np.diff(edges), align="edge", color="tab:blue", edgecolor="white")
    ax.set_xlim(0, 1)
    ax.set_xlabel("Ego-Score (probability of egocentric, M_ego)")
    ax.set_ylabel("videos")
    if log_y:
        ax.set_yscale("log")
    ax.set_title(title, fontsize=11)
    ax.grid(axis="y", alpha=0.3)
    fig.savefig(out, dpi=120, bbox_inches="tight")
    plt.close(fig)


def ego_distribution(args) -> None:
    scores = _load_scores(args.scores, "ego")
    edges, counts = ego_score_histogram(scores, args.bins)
    ego = ego_probabilities(scores)
    print(f"{len(ego)} videos in {args.scores}: mean Ego-Score {ego.mean():.4f}, median {np.median(ego):.4f}, "
          f"{100 * np.mean(ego >= 0.5):.1f}% at >= 0.5")
    print(f"{'bin':>13} {'videos':>8}")
    for low, high, count in zip(edges[:-1], edges[1:], counts):
        print(f"[{low:.2f}, {high:.2f}{']' if high == 1 else ')'} {count:8d}")
    draw_ego_distribution(edges, counts, args.out, f"Distribution of Ego-Scores ({len(ego)} videos)", args.log_y)
    print(f"wrote {args.out}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"scores": args.scores, "videos": len(ego), "bin_edges": edges.tolist(),
                       "counts": counts.tolist(), "mean": float(ego.mean()), "median": float(np.median(ego))},
                      f, indent=1)
        print(f"wrote {args.json}")


def _load_scores(path: str, teacher: str | None = None) -> TeacherScores:
    try:
        return load_teacher_scores(path, teacher=teacher)
    except TeacherTargetError as e:
        raise FigureInputError(str(e)) from None


# ----------------------------------------------------------------------------- Fig. S4

# How each teacher's scores rank the videos, and what the number shown means.
TEACHER_RANKING = {
    "ego": ("Ego-Score", "P(egocentric)"),
    "object": ("Object-Score", "top ImageNet class probability"),
}


def teacher_values(scores: TeacherScores) -> np.ndarray:
    """One number per video to sort by: P(egocentric) for Ego-Scores; for Object-Scores the
    probability of the most likely ImageNet class (how prominently one object features)."""
    if scores.teacher == "ego":
        return ego_probabilities(scores)
    return scores.scores.double().exp().max(dim=1).values.numpy()


def extreme_videos(scores: TeacherScores, top: int, among: set[str] | None = None
                   ) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
    """([(video_id, value)] of the `top` highest-valued videos, highest first; the same of the
    `top` lowest, lowest first), over the videos in `among` (default all); ties keep file order."""
    if top < 1:
        raise FigureInputError(f"--top should be >= 1, got {top}")
    values = teacher_values(scores)
    rows = [i for i, v in enumerate(scores.video_ids) if among is None or v in among]
    if not rows:
        raise FigureInputError(f"{scores.path}: none of its {len(scores.video_ids)} videos is in the video list "
                               f"(e.g. {scores.video_ids[:3]}); give the list the scores were made from")
    by_value = sorted(rows, key=lambda i: values[i])
    lowest = [(scores.video_ids[i], float(values[i])) for i in by_value[:top]]
    highest = sorted(rows, key=lambda i: -values[i])[:top]
    return [(scores.video_ids[i], float(values[i])) for i in highest], lowest


def list_video_paths(video_list: str, video_root: str = "") -> dict[str, str]:
    """video_id -> path of a Kinetics list: PySlowFast `path label` lines or the official CSV
    (the keys score_teachers.py stores)."""
    with open(video_list, encoding="utf-8-sig") as f:
        official = f.readline().startswith("label,")
    if official:
        clips = read_kinetics_csv(video_list, video_root, kinetics_csv_class_names(video_list))
    else:
        clips = read_kinetics_list(video_list, video_root)
    return {c.video_id: c.path for c in clips}


def video_strip(path: str, frames: int, height: int = 96) -> np.ndarray:
    """`frames` frames at the centres of equal segments of the video, scaled to `height` and
    placed side by side with a 2-pixel white gap: uint8 [height, W, 3]."""
    with VideoReader(path) as reader:
        count = reader.num_frames
        images = reader.decode((2 * np.arange(frames) + 1) * count // (2 * frames))
    h, w = images.shape[1:3]
    width = max(1, round(w * height / h))
    scaled = torch.nn.functional.interpolate(torch.from_numpy(images).permute(0, 3, 1, 2).float(),
                                             size=(height, width), mode="bilinear", antialias=True,
                                             align_corners=False)
    scaled = scaled.round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()
    gap = np.full((height, 2, 3), 255, np.uint8)
    return np.concatenate([part for image in scaled for part in (image, gap)][:-1], axis=1)


def draw_extremes(panels: list[tuple[str, str, list, list]], strips: dict[str, np.ndarray], out) -> None:
    """Two rows per teacher, its highest-valued videos over its lowest, each cell a strip of
    frames titled with the value and the video id; the title says what each value is."""
    plt = _pyplot()
    top = max(max(len(high), len(low)) for _, _, high, low in panels)
    aspect = max(s.shape[0] / s.shape[1] for s in strips.values())
    cell_w = 3.2
    fig, axes = plt.subplots(2 * len(panels), top, squeeze=False,
                             figsize=(cell_w * top + 0.8, (cell_w * aspect + 0.45) * 2 * len(panels) + 0.5))
    for p, (name, _, highest, lowest) in enumerate(panels):
        for r, (label, chosen) in enumerate((("highest", highest), ("lowest", lowest))):
            row = axes[2 * p + r]
            for c, ax in enumerate(row):
                ax.set_xticks([])
                ax.set_yticks([])
                if c >= len(chosen):
                    ax.axis("off")
                    continue
                video_id, value = chosen[c]
                ax.imshow(strips[video_id])
                ax.set_title(f"{value:.3f}  {video_id}", fontsize=7)
            row[0].set_ylabel(f"{name}\n{label}", fontsize=9)
    fig.suptitle("; ".join(f"{name}: {meaning}" for name, meaning, _, _ in panels), fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=120, bbox_inches="tight")
    plt.close(fig)


def extremes(args) -> None:
    try:
        paths = list_video_paths(args.video_list, args.video_root)
    except OSError as e:
        raise FigureInputError(f"{args.video_list}: {e}") from None
    panels, strips = [], {}
    for path in args.scores:
        scores = _load_scores(path)
        name, meaning = TEACHER_RANKING[scores.teacher]
        readable, skipped = set(paths), []
        while True:  # an unreadable video gives its place to the next one
            if skipped and not readable & set(scores.video_ids):
                raise FigureInputError(f"{path}: none of the listed videos it scores can be decoded "
                                       f"({len(skipped)} tried, e.g. {skipped[:3]})")
            highest, lowest = extreme_videos(scores, args.top, readable)
            unread = [v for v, _ in highest + lowest if v not in strips]
            failed = []
            for video_id in unread:
                try:
                    strips[video_id] = video_strip(paths[video_id], args.frames)
                except VideoError as e:
                    print(f"skipped {video_id}: {e}")
                    failed.append(video_id)
            if not failed:
                break
            readable -= set(failed)
            skipped += failed
        panels.append((name, meaning, highest, lowest))
        print(f"{name} ({path}, {meaning}):")
        for label, chosen in (("highest", highest), ("lowest", lowest)):
            print(f"  {label}: " + ", ".join(f"{v} {value:.4f}" for v, value in chosen))
    draw_extremes(panels, strips, args.out)
    print(f"wrote {args.out}")


# ----------------------------------------------------------------------------- training curves

# The record kinds the curves read, and what each must hold (docs/training_log.md); other kinds
# and other keys are left alone, so a newer writer's logs still draw.
_LOG_FIELDS = {
    "train": ("progress", "lr", "loss"),
    "epoch": ("progress", "loss"),
    "eval": ("progress", "metrics"),
}


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _log_record_problem(record: dict) -> str | None:
    """What is wrong with a parsed log object as far as this module reads it, or None."""
    kind = record.get("kind")
    if not isinstance(kind, str):
        return (f'expected an object with a "kind" string (train, epoch, eval, start), '
                f"got {'no kind' if kind is None else f'kind {kind!r}'}")
    for field in _LOG_FIELDS.get(kind, ()):
        if field not in record:
            return f'a "{kind}" line needs "{field}"'
        value = record[field]
        if field == "progress":
            if not _is_number(value) or not math.isfinite(value) or value < 0:
                return f'"progress" should be a finite number of epochs >= 0, got {value!r}'
        elif field == "lr":
            if value is not None and not _is_number(value):
                return f'"lr" should be a number or null, got {value!r}'
        else:  # a flat name -> number (or null for a non-finite value) map
            if not isinstance(value, dict):
                return f'"{field}" should be an object of name -> number, got {value!r}'
            for name, number in value.items():
                if number is not None and not _is_number(number):
                    return f'"{field}" entry {name!r} should be a number or null, got {number!r}'
    return None


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not JSON (a non-finite value is written as null)")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 parses as inf
        raise ValueError(f"{text} is out of the range of a float (a non-finite value is written as null)")
    return value


def read_training_log(path) -> list[dict]:
    """The objects of a training log (JSON lines, docs/training_log.md), in file order, as
    parsed; blank lines are skipped. Every line must be a strict-JSON object with a "kind"
    string, and train / epoch / eval lines must hold the fields the curves read; anything else
    stops with a FigureInputError naming the file and the line. Unknown kinds and keys are
    returned unchecked. One exception: a line cut short where a run was killed mid-write (not
    JSON, and the file's last line or followed by the resumed run's "start" line) is skipped."""
    records = []
    try:
        with open(path, "rb") as f:
            raws = f.read().split(b"\n")
            for line_no, raw in enumerate(raws, start=1):
                following = next((r for r in raws[line_no:] if r.strip()), None)
                cut_short = following is None or following.startswith(b'{"kind": "start"')
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError:
                    raise FigureInputError(f"{path}:{line_no}: not UTF-8 text; expected one JSON "
                                           f"object per line") from None
                if not line.strip():
                    continue
                try:
                    record = json.loads(line.rstrip("\r\n"), parse_constant=_refuse_constant,
                                        parse_float=_finite_float)
                except json.JSONDecodeError as e:
                    if cut_short:
                        continue
                    raise FigureInputError(f"{path}:{line_no}: not JSON ({e.msg} at column {e.colno}); "
                                           f"expected one JSON object per line") from None
                except ValueError as e:  # NaN, Infinity or 1e999, refused above
                    raise FigureInputError(f"{path}:{line_no}: {e}") from None
                if not isinstance(record, dict):
                    raise FigureInputError(f"{path}:{line_no}: expected a JSON object, got "
                                           f"{type(record).__name__}")
                problem = _log_record_problem(record)
                if problem:
                    raise FigureInputError(f"{path}:{line_no}: {problem}")
                records.append(record)
    except FileNotFoundError:
        raise FigureInputError(f"{path}: training log not found") from None
    except OSError as e:
        raise FigureInputError(f"{path}: cannot read the training log ({e.strerror or e})") from None
    return records


def final_run_lines(records: Sequence[dict]) -> tuple[list[dict], list[dict]]:
    """(train lines, eval lines) of what the final run computed, each in increasing progress.

    A resumed run appends to the log and repeats what came after its checkpoint, so a line at
    progress p supersedes what an earlier run logged past p: a train line drops the earlier
    train and eval lines at progress >= p (the model evaluated there has been trained again), an
    eval line drops the earlier eval lines at >= p and the train lines at > p (the training that
    led up to p stays). Other kinds are not drawn."""
    train: list[dict] = []
    evals: list[dict] = []
    for record in records:
        kind, p = record["kind"], record.get("progress")
        if kind == "train":
            while train and train[-1]["progress"] >= p:
                train.pop()
            while evals and evals[-1]["progress"] >= p:
                evals.pop()
            train.append(record)
        elif kind == "eval":
            while evals and evals[-1]["progress"] >= p:
                evals.pop()
            while train and train[-1]["progress"] > p:
                train.pop()
            evals.append(record)
    return train, evals


def _named_series(lines: Sequence[dict], field: str, first: Sequence[str] = ()) -> dict[str, dict]:
    """{name: {"progress": [...], "value": [...]}} of a name -> number map of each line (a
    line without the name has no point for it; null stays null); names in the order of
    `first`, then of first appearance."""
    series: dict[str, dict] = {name: {"progress": [], "value": []} for name in first}
    for line in lines:
        for name, value in line[field].items():
            points = series.setdefault(name, {"progress": [], "value": []})
            points["progress"].append(line["progress"])
            points["value"].append(value)
    return {name: points for name, points in series.items() if points["progress"]}


def curve_series(train: Sequence[dict], evals: Sequence[dict]) -> dict:
    """The curves of one log from its final run's lines (final_run_lines), as figures.py curves
    plots them and writes them to JSON: {"loss": {term: series}, "lr": series, "eval": {metric:
    series}}, each series {"progress": [epochs], "value": [number or None]}; the weighted sum
    "loss" comes first, the other terms and the metrics in order of first appearance."""
    return {"loss": _named_series(train, "loss", first=("loss",)),
            "lr": {"progress": [line["progress"] for line in train],
                   "value": [line["lr"] for line in train]},
            "eval": _named_series(evals, "metrics")}


def trailing_mean(values: Sequence[float | None], window: int) -> list[float | None]:
    """The mean of the finite values among each point and the window - 1 before it (fewer at
    the start); a null point stays null, so a non-finite loss still shows as a gap."""
    if window < 1:
        raise FigureInputError(f"--smooth should be >= 1, got {window}")
    smoothed = []
    for i, value in enumerate(values):
        if value is None:
            smoothed.append(None)
            continue
        finite = [v for v in values[max(0, i - window + 1):i + 1] if v is not None]
        smoothed.append(sum(finite) / len(finite))
    return smoothed


def _as_floats(values: Sequence[float | None]) -> list[float]:
    return [math.nan if v is None else float(v) for v in values]


def draw_training_curves(report: dict, out) -> None:
    """One panel per loss term, one of the learning rate, one per eval metric, from the JSON
    report figures.py curves writes (a line per run; with smoothing, the raw values faint under
    the smoothed ones)."""
    plt = _pyplot()
    panels = ([("loss", term, f"{term} loss" if term != "loss" else "loss (weighted sum)")
               for term in report["loss"]]
              + [("lr", None, "learning rate")]
              + [("eval", metric, f"eval {metric}") for metric in report["eval"]])
    columns = min(3, len(panels))
    rows = math.ceil(len(panels) / columns)
    fig, axes = plt.subplots(rows, columns, squeeze=False, figsize=(4.6 * columns, 3.3 * rows))
    colours = dict(zip((run["label"] for run in report["runs"]), _cycle_colours(len(report["runs"]))))
    for ax, (kind, name, title) in zip(axes.flat, panels):
        by_run = report[kind] if name is None else report[kind][name]
        for label, points in by_run.items():
            xs, colour = points["progress"], colours[label]
            # A point between two non-finite ones is no line segment: short series get markers.
            marker = "o" if kind == "eval" else "." if len(xs) <= 60 else None
            if "smoothed" in points:
                ax.plot(xs, _as_floats(points["value"]), color=colour, alpha=0.25, linewidth=0.8)
                ax.plot(xs, _as_floats(points["smoothed"]), color=colour, marker=marker, label=label)
            else:
                ax.plot(xs, _as_floats(points["value"]), color=colour, marker=marker, label=label)
            non_finite = [x for x, v in zip(xs, points["value"]) if v is None]
            if non_finite:  # marked on the x axis, where the curve has its gap
                ax.plot(non_finite, [0.0] * len(non_finite), transform=ax.get_xaxis_transform(),
                        linestyle="none", marker="x", markersize=7, color=colour, clip_on=False)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if kind == "lr":
            ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    # One legend for all panels, from the runs (a panel may lack a run that has no such term).
    handles = [plt.Line2D([], [], color=colour, label=label) for label, colour in colours.items()]
    fig.legend(handles=handles, loc="upper center", ncol=min(len(handles), 4), frameon=False,
               bbox_to_anchor=(0.5, 1.0))
    smoothing = f", trailing mean of {report['smooth']} points" if report["smooth"] > 1 else ""
    fig.suptitle(f"training curves{smoothing}", fontsize=11, y=1.0 + 0.04 / rows)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.08 / rows))
    fig.savefig(out, dpi=110, bbox_inches="tight")
    plt.close(fig)


def _cycle_colours(count: int) -> list[str]:
    palette = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown",
               "tab:pink", "tab:gray", "tab:olive", "tab:cyan")
    return [palette[i % len(palette)] for i in range(count)]


def _run_labels(logs: Sequence[str], labels: str | None) -> list[str]:
    """--labels split on commas, or each log's folder name; labels must differ."""
    if labels is None:
        names = [os.path.basename(os.path.dirname(os.path.abspath(log))) or log for log in logs]
        source = "the logs' folder names"
    else:
        names = [name.strip() for name in labels.split(",")]
        if len(names) != len(logs) or not all(names):
            raise FigureInputError(f"--labels {labels!r}: expected {len(logs)} non-empty "
                                   f"comma-separated labels, one per log")
        source = "--labels"
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise FigureInputError(f"{source} repeat {', '.join(repeated)}; give one label per log "
                               f"with --labels")
    return names


def training_curves(args) -> None:
    out = os.fspath(args.out)
    stem, extension = os.path.splitext(out)
    if extension.lower() != ".png":
        raise FigureInputError(f"--out {out!r}: expected a .png path (the numbers go beside it "
                               f"as .json)")
    json_out = stem + ".json"
    labels = _run_labels(args.logs, args.labels)
    if args.smooth < 1:
        raise FigureInputError(f"--smooth should be >= 1, got {args.smooth}")
    per_run = {}
    for label, log in zip(labels, args.logs):
        records = read_training_log(log)
        train, evals = final_run_lines(records)
        if not train:
            raise FigureInputError(f"{log}: no \"train\" lines yet, nothing to draw")
        per_run[label] = curve_series(train, evals)
        superseded = sum(r["kind"] in ("train", "eval") for r in records) - len(train) - len(evals)
        print(f"{label} ({log}): {len(train)} logged intervals up to epoch "
              f"{train[-1]['progress']:g}, {len(evals)} evaluations, {superseded} lines "
              f"superseded by a resumed run")

    found = list(dict.fromkeys(term for series in per_run.values() for term in series["loss"]))
    terms = found
    if args.terms is not None:
        terms = [term.strip() for term in args.terms.split(",")]
        unknown = [term for term in terms if term not in found]
        if unknown:
            raise FigureInputError(f"--terms {args.terms!r}: no log has the loss term(s) "
                                   f"{', '.join(map(repr, unknown))}; they have {', '.join(found)}")
    metrics = list(dict.fromkeys(m for series in per_run.values() for m in series["eval"]))

    def with_smoothing(points: dict) -> dict:
        if args.smooth == 1:
            return points
        return {**points, "smoothed": trailing_mean(points["value"], args.smooth)}

    report = {
        "runs": [{"label": label, "log": os.fspath(log)} for label, log in zip(labels, args.logs)],
        "smooth": args.smooth,
        "loss": {term: {label: with_smoothing(series["loss"][term])
                        for label, series in per_run.items() if term in series["loss"]}
                 for term in terms},
        "lr": {label: series["lr"] for label, series in per_run.items()},
        "eval": {metric: {label: series["eval"][metric]
                          for label, series in per_run.items() if metric in series["eval"]}
                 for metric in metrics},
    }
    try:
        draw_training_curves(report, out)
        with open(json_out, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=1, allow_nan=False)
    except OSError as e:
        raise FigureInputError(f"{e.filename or out}: cannot write ({e.strerror or e})") from None
    print(f"wrote {out}")
    print(f"wrote {json_out}")


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
    distribution = commands.add_parser("ego_distribution",
                                       help="Fig. S2: histogram of the Ego-Scores of a data set")
    distribution.add_argument("--scores", required=True, help="score_teachers.py's ego_scores.pt")
    distribution.add_argument("--out", required=True, help="PNG to write")
    distribution.add_argument("--bins", type=int, default=20, help="bins over [0, 1] (default 20)")
    distribution.add_argument("--log-y", action="store_true", help="logarithmic count axis")
    distribution.add_argument("--json", help="also write the bin edges and counts here")
    extreme = commands.add_parser("extremes",
                                  help="Fig. S4: frames of the highest- and lowest-scoring videos")
    extreme.add_argument("--scores", action="append", required=True,
                         help="a score_teachers.py score file (ego or object); repeat for each teacher")
    extreme.add_argument("--video-list", required=True,
                         help="the Kinetics list the scores were made from (PySlowFast list or official CSV)")
    extreme.add_argument("--video-root", default="", help="folder the list's video paths are joined to")
    extreme.add_argument("--out", required=True, help="PNG to write")
    extreme.add_argument("--top", type=int, default=4, help="videos per row (default 4)")
    extreme.add_argument("--frames", type=int, default=4, help="frames shown per video (default 4)")
    curves = commands.add_parser("curves", help="loss, LR and eval curves from training logs "
                                 "(log.jsonl, docs/training_log.md)")
    curves.add_argument("logs", nargs="+", metavar="LOG.jsonl", help="a run's log.jsonl; one line each")
    curves.add_argument("--out", required=True, help="PNG to write; the plotted numbers go beside it "
                        "as .json")
    curves.add_argument("--labels", help="comma-separated label per log (default: each log's folder name)")
    curves.add_argument("--terms", help="comma-separated loss terms to draw, e.g. loss,action,ego "
                        "(default: every term the logs have)")
    curves.add_argument("--smooth", type=int, default=1,
                        help="draw the trailing mean of N logged points over the raw loss (default 1: raw)")
    args = parser.parse_args(argv)
    commands_by_name = {"classes": compare_classes, "fraction": compare_fractions,
                        "ego_distribution": ego_distribution, "extremes": extremes,
                        "curves": training_curves}
    try:
        commands_by_name[args.command](args)
    except (FigureInputError, AnnotationError, SubmissionError, EvaluationError) as e:
        if args.command == "curves":  # bad input exits 2 with one line, as argparse's own errors
            print(f"figures.py {args.command}: {e}", file=sys.stderr)
            sys.exit(2)
        sys.exit(f"figures.py {args.command}: {e}")


if __name__ == "__main__":
    main()
