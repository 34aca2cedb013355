"""Standalone scorer of submission files against the official annotation files (SPEC section 6).
numpy only at scoring time; no training code, no GPU.

    python evaluate.py charades_ego --annotations CharadesEgo_v1_test.csv SUB.txt [--views first|third|both]
    python evaluate.py epic100 --annotations EPIC_100_validation.csv [--unseen EPIC_100_unseen_participant_ids_validation.csv]
                       [--tail-verbs EPIC_100_tail_verbs.csv --tail-nouns EPIC_100_tail_nouns.csv] SUB.pkl|SUB.pt
    python evaluate.py epic55 --annotations EPIC_train_action_labels.csv (or a labelled split of it) SUB.json
    python evaluate.py topk --annotations LIST|CSV [--class-names F] SUB.txt           (Kinetics)
    python evaluate.py topk --annotations something-something-v2-validation.json --labels labels.json SUB.txt
    python evaluate.py topk --annotations CharadesEgo_v1_test.csv SUB.txt                 (M_ego: 1st vs 3rd person)

Submission formats: data/submissions.py. Several submission files (positional, or after
`--ensemble`) are averaged before scoring; they must hold the same ids:
  charades_ego, topk  the mean of the given scores (the project writes clip-pooled probabilities);
  epic100             log(mean over files of softmax(scores)), so the scorer's own softmax gives
                      back the averaged probabilities exactly;
  epic55              the mean of the stored verb / noun probabilities (the rows must be
                      distributions, as the project's writer stores them), and the action pairs
                      re-ranked by the products of the averaged probabilities; stored "action"
                      entries of the members are not used.
Prints one JSON object: the metrics (percentages), counts, and "missing": {"count", "first"}
for annotated ids the submission lacks. Bad input (wrong class counts, ids the annotations do
not know, duplicate ids, NaN/inf scores, unsafe pickles) stops with one line naming the file
and the ids, exit status 2.

What the official scorers do, and what is reproduced here:
* Charades_v1_classify.m (the Charades/Charades-Ego release; read through the code search,
  repositories chenyr0021/multimodal-human-action-recognotion feature_extraction/Charades/ and
  gsig/charades-algorithms pytorch/utils/map.py, its Python port): a test matrix initialised
  to -inf for every ground-truth video, filled with the submission's rows; videos whose
  `actions` field is empty carry no labels and are left out here, as SPEC section 6 says (the
  Python port sets their rows to -inf instead; both agree unless a labelled video is missing,
  which an unlabelled video must not outrank). Ranked last with no positives, they would
  not change any AP. Per class `[~, order] = sort(-scores)` (Matlab's sort is stable: ties
  keep file order), precision at each rank, AP = sum of the precisions at the positives /
  number of positives; mAP = mean of the APs; wAP = sum_c AP_c * npos_c / sum_c npos_c
  ("weighted by size of each class"). A class without positives has AP 0/0 = NaN there; here it
  is left out of both means (the released test sets have positives for every class). Missing
  videos keep their -inf row, i.e. rank last in file order. Ranking uses a stable sort on the
  negated scores, exactly as Matlab's.
* C1-Action-Recognition evaluate.py + utils/{scoring,metrics}.py (epic-kitchens): top-1/top-5
  of verb, noun and action over all segments, top-1 over the segments of unseen participants,
  and tail top-1: verbs over segments whose verb is a tail verb, nouns over segments whose noun
  is a tail noun, actions over segments whose verb is a tail verb OR whose noun is a tail noun.
  Action scores: the 100 (v, n) pairs of highest softmax(v) * softmax(n) (the script takes
  softmax over the top-100 verb and noun scores of the whole array at once, which rescales the
  products by a constant and so ranks pairs the same way), action id = verb * 1000 + noun.
  Output keys follow that script: `{all,unseen,tail}_{verb,noun,action}_accuracy_at_{1,5}`.
  The script scores `labels.loc[submitted ids]`, i.e. only the segments submitted (and fails
  on an id it does not know); here every annotated segment counts and a missing one counts as
  wrong, so an incomplete submission cannot score higher than a complete one.
* EPIC-55 leaderboard: the submitted "action" entries when present, else the top 100 pairs of
  softmax(verb) * softmax(noun) of the submitted scores (format description of the
  EPIC-Kitchens-55 starter kit); verb/noun/action top-1/top-5, missing segments wrong.
Ties in top-k rankings go to the lower class index, and equal action products to the pair of
the higher-ranked verb, then noun (data.submissions.top_action_pairs); the official scripts use
numpy's default, unstable argsort there, which fixes no order for ties.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Sequence

import numpy as np

from data.annotations import CHARADES_NUM_CLASSES, EPIC55_NUM_NOUNS, EPIC55_NUM_VERBS, EPIC100_NUM_NOUNS, \
    EPIC100_NUM_VERBS, AnnotationError, kinetics_csv_class_names, read_charades_ego, read_class_names, \
    read_epic_segments, read_epic_tail_classes, read_epic_unseen_participants, read_kinetics_csv, \
    read_kinetics_list, read_ssv2_labels, read_ssv2_split
from data.safe_pickle import CorruptPickleError, UnsafePickleError
from data.submissions import ACTION_VERB_MULTIPLIER, EPIC_ACTION_TOP_N, SHOW_IDS, SubmissionError, \
    read_charades_submission, read_epic55_submission, read_epic100_submission, read_topk_submission, softmax, \
    top_action_pairs


class EvaluationError(ValueError):
    """Submission and annotations do not fit together (unknown ids, different ensemble ids, ...)."""


# ----------------------------------------------------------------------------- metrics


def charades_map(scores, labels) -> dict:
    """Official Charades mAP (module docstring). scores float [N, K] (-inf allowed: a video the
    submission lacks), labels {0, 1} [N, K] in ground-truth file order.

    Returns {"mAP": percent, "wAP": percent, "per_class_ap": K floats in percent, NaN for a
    class without positives}.
    """
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    if scores.ndim != 2 or scores.shape != labels.shape:
        raise ValueError(f"charades_map: scores {list(scores.shape)} and labels {list(labels.shape)} should "
                         f"both be [videos, classes]")
    if np.isnan(scores).any() or np.isposinf(scores).any():
        raise ValueError("charades_map: scores contain NaN or +inf")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError("charades_map: labels should be 0 or 1")
    truth = labels.astype(bool)
    # Videos without labels are left out (SPEC section 6): the official scorer never enters them
    # in its ground truth, so they cannot rank ahead of a labelled video the submission lacks.
    labelled = truth.any(axis=1)
    scores, truth = scores[labelled], truth[labelled]
    order = np.argsort(-scores, axis=0, kind="stable")  # descending; ties keep file order (Matlab sort)
    hits = np.take_along_axis(truth, order, axis=0)
    precision = np.cumsum(hits, axis=0) / np.arange(1, len(scores) + 1)[:, None]
    positives = truth.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        ap = (precision * hits).sum(axis=0) / positives
    ap[positives == 0] = np.nan
    has = positives > 0
    if not has.any():
        raise ValueError("charades_map: no class has a positive video")
    # Charades_v1_classify.m: map = mean(ap_all); wap = sum(ap_all .* npos) / sum(npos)
    return {"mAP": 100.0 * float(ap[has].mean()),
            "wAP": 100.0 * float((ap[has] * positives[has]).sum() / positives[has].sum()),
            "per_class_ap": [100.0 * float(a) for a in ap]}


def ranked_classes(scores, k: int) -> np.ndarray:
    """int64 [N, min(k, K)]: each row's classes by descending score, ties to the lower index."""
    scores = np.asarray(scores, dtype=np.float64)
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def accuracy_at(ranked: np.ndarray, labels, ks: Sequence[int], present=None) -> dict[int, float]:
    """{k: percent of rows whose label is among the first k of `ranked`}; rows with
    present False count as wrong."""
    labels = np.asarray(labels)
    if len(ranked) == 0 or len(ranked) != len(labels):
        raise ValueError(f"accuracy_at: {len(ranked)} ranked rows for {len(labels)} labels")
    hits = ranked == labels[:, None]
    if present is not None:
        hits &= np.asarray(present, bool)[:, None]
    return {k: 100.0 * float(hits[:, :k].any(axis=1).mean()) for k in ks}


def topk(scores, labels, ks: Sequence[int] = (1, 5), present=None) -> dict[str, float]:
    """Top-k accuracy in percent, {"top1": ..., "top5": ...}; rows with present False are wrong."""
    accuracy = accuracy_at(ranked_classes(scores, max(ks)), labels, ks, present)
    return {f"top{k}": accuracy[k] for k in ks}


def epic_action_ranking(verb_scores, noun_scores, top_n: int = EPIC_ACTION_TOP_N) -> np.ndarray:
    """int64 [N, top_n] action ids (verb * 1000 + noun), best first: the top_n pairs of
    softmax(verb) * softmax(noun)."""
    verbs, nouns, _ = top_action_pairs(softmax(verb_scores), softmax(noun_scores), top_n)
    return verbs * ACTION_VERB_MULTIPLIER + nouns


def _epic_accuracies(verb_ranked, noun_ranked, action_ranked, verb_labels, noun_labels, present,
                     subsets: dict[str, dict[str, np.ndarray]]) -> dict[str, float]:
    """The official key layout: all_* at 1 and 5; each subset's tasks at 1 (a task whose subset
    is empty is left out, as the official script leaves out an empty unseen set)."""
    verb_labels, noun_labels = np.asarray(verb_labels), np.asarray(noun_labels)
    present = np.ones(len(verb_labels), bool) if present is None else np.asarray(present, bool)
    tasks = {"verb": (verb_ranked, verb_labels), "noun": (noun_ranked, noun_labels),
             "action": (action_ranked, verb_labels * ACTION_VERB_MULTIPLIER + noun_labels)}
    out = {}
    for task, (ranked, labels) in tasks.items():
        for k, value in accuracy_at(ranked, labels, (1, 5), present).items():
            out[f"all_{task}_accuracy_at_{k}"] = value
    for subset, masks in subsets.items():
        for task, mask in masks.items():
            if mask.any():
                ranked, labels = tasks[task]
                out[f"{subset}_{task}_accuracy_at_1"] = accuracy_at(ranked[mask], labels[mask], (1,), present[mask])[1]
    return out


def epic_subset_masks(verb_labels, noun_labels, participant_ids=None, unseen_participants=None,
                      tail_verbs=None, tail_nouns=None) -> dict[str, dict[str, np.ndarray]]:
    """Boolean masks of the official subsets: "unseen" (the same segments for every task) and
    "tail" (verb: tail verb; noun: tail noun; action: tail verb or tail noun)."""
    verb_labels, noun_labels = np.asarray(verb_labels), np.asarray(noun_labels)
    subsets = {}
    if unseen_participants is not None:
        unseen_set = set(unseen_participants)
        unseen = np.array([p in unseen_set for p in participant_ids], bool)
        subsets["unseen"] = {"verb": unseen, "noun": unseen, "action": unseen}
    if tail_verbs is not None and tail_nouns is not None:
        tail_verb = np.isin(verb_labels, sorted(tail_verbs))
        tail_noun = np.isin(noun_labels, sorted(tail_nouns))
        subsets["tail"] = {"verb": tail_verb, "noun": tail_noun, "action": tail_verb | tail_noun}
    return subsets


def epic100_metrics(verb_scores, noun_scores, verb_labels, noun_labels, present=None, participant_ids=None,
                    unseen_participants=None, tail_verbs=None, tail_nouns=None) -> dict[str, float]:
    """Official EPIC-100 C1 accuracies (module docstring) from verb/noun scores [N, V] / [N, Nn]
    (logits or log-probabilities) aligned with the labels; rows with present False are wrong."""
    subsets = epic_subset_masks(verb_labels, noun_labels, participant_ids, unseen_participants, tail_verbs,
                                tail_nouns)
    return _epic_accuracies(ranked_classes(verb_scores, 5), ranked_classes(noun_scores, 5),
                            epic_action_ranking(verb_scores, noun_scores), verb_labels, noun_labels, present, subsets)


def epic55_metrics(verb_scores, noun_scores, action_ranking, verb_labels, noun_labels, present=None) -> dict[str, float]:
    """EPIC-55 verb/noun/action top-1/top-5; `action_ranking` int [N, <=100] action ids best first
    (the submitted "action" entries, or `epic_action_ranking`)."""
    return _epic_accuracies(ranked_classes(verb_scores, 5), ranked_classes(noun_scores, 5),
                            np.asarray(action_ranking), verb_labels, noun_labels, present, {})


def ensemble_average(score_arrays: Sequence, softmax_first: bool = False) -> np.ndarray:
    """Mean of equally shaped score arrays; with `softmax_first`, log(mean of their row
    softmaxes), so that a scorer applying softmax gets the averaged probabilities back."""
    arrays = [np.asarray(a, dtype=np.float64) for a in score_arrays]
    if not arrays or any(a.shape != arrays[0].shape for a in arrays):
        raise ValueError(f"ensemble_average: needs arrays of one shape, got {[list(a.shape) for a in arrays]}")
    if not softmax_first:
        return np.mean(arrays, axis=0)
    with np.errstate(divide="ignore"):  # a probability that underflows in every member: log 0 = -inf
        return np.log(np.mean([softmax(a) for a in arrays], axis=0))


# ----------------------------------------------------------------------------- submission vs annotations


def _listing(items: Sequence) -> str:
    shown = ", ".join(repr(x) for x in items[:SHOW_IDS])
    return shown + (f" and {len(items) - SHOW_IDS} more" if len(items) > SHOW_IDS else "")


def _check_unique(where: str, ids: Sequence[str], what: str) -> None:
    seen, dup = set(), []
    for i in ids:
        if i in seen:
            dup.append(i)
        seen.add(i)
    if dup:
        raise EvaluationError(f"{where}: {len(dup)} duplicate {what}: {_listing(dup)}")


def combine_submissions(files: Sequence[str], submissions: Sequence[tuple]) -> tuple[list[str], list[list]]:
    """(ids of the first file, per array the members' arrays reordered to those ids) for
    submissions `(ids, array, array, ...)`; every file must hold the same ids."""
    ids = submissions[0][0]
    position = {i: n for n, i in enumerate(ids)}
    members = [[] for _ in submissions[0][1:]]
    for file, (other_ids, *arrays) in zip(files, submissions):
        extra = [i for i in other_ids if i not in position]
        lacking = sorted(set(ids) - set(other_ids))
        if extra or lacking:
            detail = "; ".join(part for part in (
                f"{len(extra)} id(s) not in {files[0]}: {_listing(extra)}" if extra else "",
                f"lacks {len(lacking)} id(s) of {files[0]}: {_listing(lacking)}" if lacking else "") if part)
            raise EvaluationError(f"{file}: ensemble members must hold the same ids; {detail}")
        order = np.argsort([position[i] for i in other_ids], kind="stable")
        for slot, array in zip(members, arrays):
            slot.append(array[order] if isinstance(array, np.ndarray) else [array[j] for j in order])
    return list(ids), members


def align_to_annotations(where: str, annotation_ids: Sequence[str], submission_ids: Sequence[str],
                         arrays: Sequence[np.ndarray], fill: float, ignore: set | frozenset = frozenset()):
    """Rows of `arrays` (one per submission id) reordered to the annotation ids, `fill` where the
    submission lacks an id. Returns (aligned arrays, present mask, missing ids, ignored count);
    ids in `ignore` are dropped, any other id the annotations do not know is an error."""
    row_of = {i: n for n, i in enumerate(annotation_ids)}
    unknown = [i for i in submission_ids if i not in row_of and i not in ignore]
    if unknown:
        raise EvaluationError(f"{where}: {len(unknown)} id(s) that the annotations do not know: {_listing(unknown)}")
    kept = [(row_of[i], n) for n, i in enumerate(submission_ids) if i in row_of]
    rows = np.array([r for r, _ in kept], np.int64)
    sources = np.array([n for _, n in kept], np.int64)
    present = np.zeros(len(annotation_ids), bool)
    present[rows] = True
    aligned = []
    for array in arrays:
        out = np.full((len(annotation_ids),) + array.shape[1:], fill, dtype=array.dtype)
        out[rows] = array[sources]
        aligned.append(out)
    missing = [i for i, p in zip(annotation_ids, present) if not p]
    return aligned, present, missing, len(submission_ids) - len(kept)


def _missing_report(missing: Sequence[str]) -> dict:
    return {"count": len(missing), "first": list(missing[:SHOW_IDS])}


# ----------------------------------------------------------------------------- datasets


def _as_files(submissions) -> list[str]:
    """One path or several (an ensemble) as a list of str."""
    files = [submissions] if isinstance(submissions, (str, os.PathLike)) else list(submissions)
    if not files:
        raise EvaluationError("no submission file given")
    return [os.fspath(f) for f in files]


def score_charades_ego(submissions, annotations, views: str = "first") -> dict:
    """Score one Charades-Ego submission file, or the average of several, against
    CharadesEgo_v1_*.csv; `views` selects first-person (ids ending in EGO), third-person or
    both views' videos of the annotation file. Returns what the CLI prints."""
    if views not in ("first", "third", "both"):
        raise EvaluationError(f"views should be first, third or both, got {views!r}")
    videos = read_charades_ego(annotations)
    wanted = {"first": lambda v: v.first_person, "third": lambda v: not v.first_person, "both": lambda v: True}
    selected = [v for v in videos if wanted[views](v)]
    ids = [v.video_id for v in selected]
    _check_unique(annotations, ids, "video id(s) in the annotations")
    if not selected:
        raise EvaluationError(f"{annotations}: no {views}-person videos to evaluate")
    labels = np.zeros((len(selected), CHARADES_NUM_CLASSES), np.int64)
    for row, video in enumerate(selected):  # test target = union of the video's action classes
        for action in video.actions:
            labels[row, action.label] = 1
    files = _as_files(submissions)
    sub_ids, (members,) = combine_submissions(files, [read_charades_submission(f) for f in files])
    scores = ensemble_average(members)
    other_view = {v.video_id for v in videos} - set(ids)
    (aligned,), _, missing, ignored = align_to_annotations(files[0], ids, sub_ids, [scores], -np.inf, other_view)
    metrics = charades_map(aligned, labels)
    return {**metrics, "videos": len(ids), "videos_without_labels": int((labels.sum(axis=1) == 0).sum()),
            "classes_with_positives": int((labels.sum(axis=0) > 0).sum()), "views": views,
            "ignored_other_view_ids": ignored, "missing": _missing_report(missing), "submissions": files}


def _labelled_segments(path, num_verbs: int, num_nouns: int):
    segments = read_epic_segments(path, num_verbs, num_nouns)
    unlabelled = [s.segment_id for s in segments if s.verb_class < 0 or s.noun_class < 0]
    if unlabelled:
        raise EvaluationError(f"{path}: {len(unlabelled)} segment(s) without verb_class/noun_class (a test "
                              f"timestamps file has no labels to score against): {_listing(unlabelled)}")
    if not segments:
        raise EvaluationError(f"{path}: no segments")
    ids = [s.segment_id for s in segments]
    _check_unique(path, ids, "segment id(s) in the annotations")
    return segments, ids


def score_epic100(submissions, annotations, unseen=None, tail_verbs=None, tail_nouns=None) -> dict:
    """Score one EPIC-100 submission (.pt/.pkl), or the average of several, against a labelled
    EPIC_100_*.csv|.pkl; `unseen`, `tail_verbs`, `tail_nouns` are the official id files (the
    tail files go together). Returns what the CLI prints."""
    segments, ids = _labelled_segments(annotations, EPIC100_NUM_VERBS, EPIC100_NUM_NOUNS)
    if (tail_verbs is None) != (tail_nouns is None):
        raise EvaluationError("--tail-verbs and --tail-nouns go together (tail actions need both)")
    files = _as_files(submissions)
    sub_ids, (verbs, nouns) = combine_submissions(files, [read_epic100_submission(f) for f in files])
    ensembled = len(files) > 1
    verb = ensemble_average(verbs, softmax_first=ensembled)
    noun = ensemble_average(nouns, softmax_first=ensembled)
    (verb, noun), present, missing, _ = align_to_annotations(files[0], ids, sub_ids, [verb, noun], 0.0)
    verb_labels = np.array([s.verb_class for s in segments])
    noun_labels = np.array([s.noun_class for s in segments])
    unseen = read_epic_unseen_participants(unseen) if unseen else None
    tail_verbs = read_epic_tail_classes(tail_verbs) if tail_verbs else None
    tail_nouns = read_epic_tail_classes(tail_nouns) if tail_nouns else None
    participants = [s.participant_id for s in segments]
    metrics = epic100_metrics(verb, noun, verb_labels, noun_labels, present, participants, unseen, tail_verbs,
                              tail_nouns)
    counts = {"all": len(ids)}
    for subset, masks in epic_subset_masks(verb_labels, noun_labels, participants, unseen, tail_verbs,
                                           tail_nouns).items():
        counts.update({f"{subset}_{task}": int(mask.sum()) for task, mask in masks.items()})
    return {**metrics, "segments": counts, "missing": _missing_report(missing), "submissions": files}


def _epic55_action_ranking(verb, noun, actions) -> np.ndarray:
    """Action ids best first: a segment's submitted "action" entries (ties to the lower (v, n)),
    else the top 100 of softmax(verb) * softmax(noun) of its submitted scores."""
    ranking = epic_action_ranking(verb, noun)
    for row, action in enumerate(actions):
        if action is not None:
            pairs = sorted(action.items(), key=lambda item: (-item[1], item[0]))
            ranking[row, :len(pairs)] = [v * ACTION_VERB_MULTIPLIER + n for (v, n), _ in pairs]
    return ranking


def _require_distributions(file: str, uids: Sequence[str], *arrays: np.ndarray) -> None:
    bad = set()
    for array in arrays:
        bad.update(np.flatnonzero((array < 0).any(axis=1) | (np.abs(array.sum(axis=1) - 1.0) > 1e-3)).tolist())
    if bad:
        rows = sorted(bad)
        raise EvaluationError(f"{file}: an EPIC-55 ensemble averages stored verb/noun probabilities, but "
                              f"{len(rows)} entry(ies) are not distributions (negative or not summing to "
                              f"1): {_listing([uids[r] for r in rows])}")


def score_epic55(submissions, annotations) -> dict:
    """Score one EPIC-55 leaderboard JSON, or the average of several, against a labelled
    EPIC-55 CSV (EPIC_train_action_labels.csv or a split of it). Returns what the CLI prints."""
    segments, ids = _labelled_segments(annotations, EPIC55_NUM_VERBS, EPIC55_NUM_NOUNS)
    files = _as_files(submissions)
    read = [read_epic55_submission(f) for f in files]
    sub_ids, (verbs, nouns, actions) = combine_submissions(files, read)
    if len(files) > 1:
        for file, (uids, verb, noun, _) in zip(files, read):
            _require_distributions(file, uids, verb, noun)
        verb, noun = ensemble_average(verbs), ensemble_average(nouns)
        pair_verbs, pair_nouns, _ = top_action_pairs(verb, noun)
        ranking = pair_verbs * ACTION_VERB_MULTIPLIER + pair_nouns
    else:
        verb, noun = verbs[0], nouns[0]
        ranking = _epic55_action_ranking(verb, noun, actions[0])
    (verb, noun, ranking), present, missing, _ = align_to_annotations(files[0], ids, sub_ids,
                                                                      [verb, noun, ranking], 0)
    metrics = epic55_metrics(verb, noun, ranking, [s.verb_class for s in segments],
                             [s.noun_class for s in segments], present)
    return {**metrics, "segments": len(ids), "missing": _missing_report(missing), "submissions": files}


def _is_kinetics_csv(path) -> bool:
    """An official Kinetics CSV starts with a header naming `youtube_id`; a PySlowFast list has none."""
    if not os.path.isfile(path):
        raise EvaluationError(f"{path}: annotation file not found")
    with open(path, encoding="utf-8") as f:
        first = next((line for line in f if line.strip()), "")
    return "youtube_id" in [c.strip() for c in first.split(",")]


def _is_charades_ego_csv(path) -> bool:
    with open(path, encoding="utf-8-sig", errors="replace") as f:
        first = f.readline()
    return {"id", "egocentric", "charades_video"} <= {c.strip() for c in first.split(",")}


def _topk_ground_truth(annotations, class_names, labels_file) -> tuple[list[str], np.ndarray, int | None]:
    """(video ids, labels, number of classes or None when only the submission can tell)."""
    if os.fspath(annotations).endswith(".json"):
        if not labels_file:
            raise EvaluationError(f"{annotations}: an SSv2 split needs --labels something-something-v2-labels.json")
        labels = read_ssv2_labels(labels_file)
        videos = read_ssv2_split(annotations, labels)
        unlabelled = [v.video_id for v in videos if v.label < 0]
        if unlabelled:
            raise EvaluationError(f"{annotations}: {len(unlabelled)} video(s) without a template (the test "
                                  f"list has no labels to score against): {_listing(unlabelled)}")
        return [v.video_id for v in videos], np.array([v.label for v in videos], np.int64), len(labels)
    if _is_charades_ego_csv(annotations):  # M_ego's binary task: 1 = first person (ids ending in EGO)
        videos = read_charades_ego(annotations)
        return [v.video_id for v in videos], np.array([int(v.first_person) for v in videos], np.int64), 2
    if _is_kinetics_csv(annotations):
        names = read_class_names(class_names) if class_names else kinetics_csv_class_names(annotations)
        clips = read_kinetics_csv(annotations, "", names)
        num_classes = len(names)
    else:
        num_classes = len(read_class_names(class_names)) if class_names else None
        clips = read_kinetics_list(annotations, num_classes=num_classes)
    return [c.video_id for c in clips], np.array([c.label for c in clips], np.int64), num_classes


def score_topk(submissions, annotations, class_names=None, labels=None) -> dict:
    """Score one top-k text submission, or the average of several, against a Kinetics list or
    official CSV (`class_names`: the class-names file; a CSV defaults to its sorted label names),
    an SSv2 split JSON (`labels`: something-something-v2-labels.json), or a Charades-Ego CSV for
    the binary first-vs-third-person task of M_ego (class 1 = first person, every video of the
    file). Returns what the CLI prints."""
    ids, truth, num_classes = _topk_ground_truth(annotations, class_names, labels)
    if not ids:
        raise EvaluationError(f"{annotations}: no videos")
    _check_unique(annotations, ids, "video id(s) in the annotations")
    files = _as_files(submissions)
    read = []
    for f in files:
        read.append(read_topk_submission(f, num_classes))
        num_classes = read[-1][1].shape[1]  # a plain list does not say K: the first file does
    too_high = [i for i, label in zip(ids, truth) if label >= num_classes]
    if too_high:
        raise EvaluationError(f"{files[0]}: has {num_classes} scores per line, but {len(too_high)} annotated "
                              f"video(s) have a label >= {num_classes}: {_listing(too_high)}")
    sub_ids, (members,) = combine_submissions(files, read)
    (scores,), present, missing, _ = align_to_annotations(files[0], ids, sub_ids, [ensemble_average(members)], 0.0)
    return {**topk(scores, truth, (1, 5), present), "videos": len(ids), "classes": num_classes,
            "missing": _missing_report(missing), "submissions": files}


# ----------------------------------------------------------------------------- CLI

COMMANDS = {
    "charades_ego": lambda files, a: score_charades_ego(files, a.annotations, a.views),
    "epic100": lambda files, a: score_epic100(files, a.annotations, a.unseen, a.tail_verbs, a.tail_nouns),
    "epic55": lambda files, a: score_epic55(files, a.annotations),
    "topk": lambda files, a: score_topk(files, a.annotations, a.class_names, a.labels),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="evaluate.py", description="\n\n".join(__doc__.split("\n\n")[:3]),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    helps = {"charades_ego": "Charades-Ego mAP / wAP (Charades_v1_classify)",
             "epic100": "EPIC-Kitchens-100 C1 accuracies (all / unseen / tail)",
             "epic55": "EPIC-Kitchens-55 verb / noun / action top-1 and top-5",
             "topk": "Kinetics / SSv2 top-1 and top-5"}
    for name, text in helps.items():
        command = commands.add_parser(name, help=text, description=text)
        command.add_argument("--annotations", required=True, help="the official annotation file")
        command.add_argument("submissions", nargs="*", help="submission file(s); several are averaged")
        command.add_argument("--ensemble", nargs="+", metavar="SUB", help="more submission files to average in")
        if name == "charades_ego":
            command.add_argument("--views", choices=("first", "third", "both"), default="first",
                                 help="which videos of the annotation file to evaluate (first person: ids "
                                      "ending in EGO)")
        if name == "epic100":
            command.add_argument("--unseen", help="EPIC_100_unseen_participant_ids_{validation,test}.csv")
            command.add_argument("--tail-verbs", help="EPIC_100_tail_verbs.csv")
            command.add_argument("--tail-nouns", help="EPIC_100_tail_nouns.csv")
        if name == "topk":
            command.add_argument("--class-names", help="Kinetics class names (one per line, or {name: index} "
                                                       "JSON); a CSV's default is its sorted label names")
            command.add_argument("--labels", help="something-something-v2-labels.json (for an SSv2 split)")
    return parser


def json_ready(value):
    """NaN (a class without positives) and inf as null, so the output is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.submissions and not args.ensemble:
        parser.error(f"{args.command}: give at least one submission file (positional or after --ensemble)")
    try:
        result = COMMANDS[args.command](list(args.submissions) + list(args.ensemble or []), args)
    except (AnnotationError, SubmissionError, UnsafePickleError, CorruptPickleError, EvaluationError) as e:
        print(f"evaluate.py {args.command}: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"evaluate.py {args.command}: error: {e.filename}: {e.strerror}", file=sys.stderr)
        return 2
    print(json.dumps(json_ready({"dataset": args.command, **result}), allow_nan=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
