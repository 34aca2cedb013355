"""evaluate.py: the official metrics against hand-worked cases and slow reference loops, and the
CLI on generated official-format data."""

import csv
import json
import math
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

import evaluate
from data import synthetic
from data.submissions import softmax, write_charades_submission, write_epic55_submission, \
    write_epic100_submission, write_topk_submission

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ----------------------------------------------------------------------------- Charades mAP


def test_charades_map_hand_worked():
    scores = np.array([[0.9, 0.5, 0.2, 0.1],
                       [0.5, 0.5, 0.9, 0.1],
                       [0.5, 0.4, 0.1, 0.1],
                       [0.7, 0.9, 0.3, 0.1]])  # video 3 has no labels
    labels = np.array([[1, 0, 0, 0],
                       [0, 1, 1, 0],
                       [1, 1, 0, 0],
                       [0, 0, 0, 0]])
    # video 3 has no labels: it is left out (SPEC section 6), as if ranked last everywhere.
    # class 0: v0 .9 (+), v1 .5, v2 .5 (+) tie -> file order v1 then v2, v3.
    #          precision at the positives: 1/1, 2/3 -> AP = (1 + 2/3) / 2 = 5/6
    #          (v3 kept at .7 would give 1/1, 2/4 -> 3/4; ties broken v2 first would give 1)
    # class 1: v0 .5, v1 .5 (+) tie -> v0 first; v2 .4 (+): 1/2, 2/3 -> AP = 7/12
    # class 2: v1 .9 (+) first -> AP = 1
    # class 3: no positive -> NaN, out of both means
    # mAP = (5/6 + 7/12 + 1) / 3 = 29/36; wAP = (2*5/6 + 2*7/12 + 1*1) / 5 = 23/30
    result = evaluate.charades_map(scores, labels)
    assert result["mAP"] == pytest.approx(100 * 29 / 36, abs=1e-12)
    assert result["wAP"] == pytest.approx(100 * 23 / 30, abs=1e-12)
    assert result["per_class_ap"][:3] == pytest.approx([100 * 5 / 6, 100 * 7 / 12, 100.0], abs=1e-12)
    assert math.isnan(result["per_class_ap"][3])
    assert scores[3, 0] == 0.7  # the caller's array is not modified


def test_charades_missing_videos_rank_last_in_file_order():
    # annotation order: u (no labels), m (positive, missing from the submission), p (positive, 0.5).
    # u has no labels and is left out, so it cannot outrank m: the ranking is p, m.
    # precision at p = 1/1, at m = 2/2 -> AP = 1 (were u kept at -inf it would tie with m and,
    # earlier in the file, rank ahead of it: 1/1, 2/3 -> 5/6)
    (aligned,), present, missing, ignored = evaluate.align_to_annotations(
        "sub.txt", ["u", "m", "p"], ["p", "u"], [np.array([[0.5], [0.9]])], -np.inf)
    assert missing == ["m"] and present.tolist() == [True, False, True] and ignored == 0
    assert aligned[:, 0].tolist() == [0.9, -np.inf, 0.5]
    result = evaluate.charades_map(aligned, np.array([[0], [1], [1]]))
    assert result["mAP"] == pytest.approx(100.0, abs=1e-12)
    # a missing (all -inf) positive video behind labelled negatives: class 0 ranks v3 .7, v1 .5,
    # v2 .5 (+), v0 -inf (+): precision 1/3, 2/4 -> AP 5/12; class 1 ranks v3 (+), v1 (+) first -> 1
    scores = np.array([[-np.inf, -np.inf], [0.5, 0.2], [0.5, 0.1], [0.7, 0.3]])
    labels = np.array([[1, 0], [0, 1], [1, 0], [0, 1]])
    result = evaluate.charades_map(scores, labels)
    assert result["per_class_ap"] == pytest.approx([100 * 5 / 12, 100.0])
    assert result["mAP"] == pytest.approx(100 * 17 / 24)


def _slow_official_ap(scores, labels):
    """Per class: a video's rank = videos scoring higher + equal-scored videos earlier in the file;
    AP = mean over positives of (positives ranked at or before it) / (its rank + 1).
    Videos without any label are left out first (SPEC section 6)."""
    keep = [i for i in range(len(scores)) if labels[i].sum() > 0]
    scores, labels = scores[keep], labels[keep]
    n, k = scores.shape
    aps, npos = [], []
    for c in range(k):
        rank = []
        for i in range(n):
            r = 0
            for j in range(n):
                if scores[j, c] > scores[i, c] or (scores[j, c] == scores[i, c] and j < i):
                    r += 1
            rank.append(r)
        positives = [i for i in range(n) if labels[i, c] == 1]
        npos.append(len(positives))
        if not positives:
            aps.append(math.nan)
            continue
        total = 0.0
        for i in positives:
            total += sum(1 for j in positives if rank[j] <= rank[i]) / (rank[i] + 1)
        aps.append(total / len(positives))
    used = [c for c in range(k) if npos[c] > 0]
    mean_ap = sum(aps[c] for c in used) / len(used)
    weighted = sum(aps[c] * npos[c] for c in used) / sum(npos[c] for c in used)
    return aps, 100 * mean_ap, 100 * weighted


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_charades_map_matches_slow_reference(seed):
    rng = np.random.default_rng(seed)
    n, k = 30, 7
    scores = np.round(rng.random((n, k)), 1)  # one decimal: many ties
    labels = (rng.random((n, k)) < 0.25).astype(int)
    labels[:3] = 0  # videos without labels
    labels[:, 6] = 0  # a class without positives
    scores[5] = -np.inf  # a missing video
    aps, mean_ap, weighted = _slow_official_ap(scores, labels)
    result = evaluate.charades_map(scores, labels)
    assert result["mAP"] == pytest.approx(mean_ap, abs=1e-10)
    assert result["wAP"] == pytest.approx(weighted, abs=1e-10)
    assert np.allclose(result["per_class_ap"], [100 * a for a in aps], equal_nan=True, atol=1e-10)


def test_charades_map_rejects_bad_input():
    with pytest.raises(ValueError, match="NaN"):
        evaluate.charades_map(np.array([[np.nan]]), np.array([[1]]))
    with pytest.raises(ValueError, match="no class has a positive"):
        evaluate.charades_map(np.zeros((2, 3)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="both be"):
        evaluate.charades_map(np.zeros((2, 3)), np.zeros((2, 4)))


# ----------------------------------------------------------------------------- top-k


def test_topk_hand_worked_ties_and_missing():
    scores = np.array([[1.0, 3.0, 3.0, 0.0],   # label 2 ties class 1: lower index first -> 2nd
                       [0.0, 0.0, 0.0, 5.0],   # label 3 first
                       [4.0, 3.0, 2.0, 1.0]])  # label 3 fourth
    labels = np.array([2, 3, 3])
    assert evaluate.topk(scores, labels, ks=(1, 2, 5)) == pytest.approx({"top1": 100 / 3, "top2": 200 / 3,
                                                                        "top5": 100.0})
    # row 1 missing from the submission counts as wrong whatever its (filled) scores say
    assert evaluate.topk(scores, labels, present=[True, False, True]) == pytest.approx({"top1": 0.0,
                                                                                     "top5": 200 / 3})


def test_topk_matches_slow_reference():
    rng = np.random.default_rng(7)
    scores = np.round(rng.random((50, 12)), 1)
    labels = rng.integers(0, 12, 50)
    for k in (1, 3, 5):
        hits = 0
        for i in range(50):
            ahead = sum(1 for c in range(12) if scores[i, c] > scores[i, labels[i]]
                        or (scores[i, c] == scores[i, labels[i]] and c < labels[i]))
            hits += ahead < k
        assert evaluate.topk(scores, labels, ks=(k,))[f"top{k}"] == pytest.approx(100 * hits / 50)


# ----------------------------------------------------------------------------- EPIC


def test_epic_action_ranking_is_the_top_100_products_of_the_softmaxes():
    rng = np.random.default_rng(8)
    verb, noun = rng.normal(size=(3, 97)) * 2, rng.normal(size=(3, 300)) * 2
    ranking = evaluate.epic_action_ranking(verb, noun)
    assert ranking.shape == (3, 100)
    p_verb, p_noun = softmax(verb), softmax(noun)
    for row in range(3):  # all 97 x 300 products, sorted (random logits: no ties)
        products = sorted(((-p_verb[row, v] * p_noun[row, n], v * 1000 + n) for v in range(97) for n in range(300)))
        assert ranking[row].tolist() == [a for _, a in products[:100]]
    # hand case: p_verb = (.5, .3, .2), p_noun = (.6, .4): products .30 (0,0), .20 (0,1), .18 (1,0),
    # .12 (1,1) / .12 (2,0), .08 (2,1); the top 3 action ids are 0, 1, 1000
    small = evaluate.epic_action_ranking(np.log([[0.5, 0.3, 0.2]]), np.log([[0.6, 0.4]]), top_n=3)
    assert small.tolist() == [[0, 1, 1000]]


def _epic_hand_case():
    """Five segments; logits 10 where set, 0 elsewhere (so every label sits at a clear rank)."""
    verb, noun = np.zeros((5, 97)), np.zeros((5, 300))
    #            label (v, n)   predicted
    verb[0, 0] = noun[0, 0] = 10   # s0 (0, 0)  P01: all right
    verb[1, 1] = 10                # s1 (1, 2)  P03: verb right; noun 5 first, 2 second
    noun[1, 5], noun[1, 2] = 10, 9  #              action (1,5) first, (1,2) second
    verb[2, 2], verb[2, 3] = 10, 5  # s2 (3, 1)  P01: verb 2 first, 3 second; noun right
    noun[2, 1] = 10                #              action (2,1) first, (3,1) second
    verb[3, 0] = noun[3, 7] = 10   # s3 (0, 7)  P03: all right
    verb[4, 0] = noun[4, 0] = 10   # s4 (10, 10) P01: label ranks 11th (ties at 0 go by index): wrong
    verb_labels, noun_labels = np.array([0, 1, 3, 0, 10]), np.array([0, 2, 1, 7, 10])
    participants = ["P01", "P03", "P01", "P03", "P01"]
    return verb, noun, verb_labels, noun_labels, participants


def test_epic100_metrics_hand_worked():
    verb, noun, verb_labels, noun_labels, participants = _epic_hand_case()
    got = evaluate.epic100_metrics(verb, noun, verb_labels, noun_labels, None, participants, {"P03"},
                                   tail_verbs={3}, tail_nouns={7})
    expected = {
        # verb@1: s0 s1 s3 right; @5 adds s2 -> 60 / 80
        "all_verb_accuracy_at_1": 60.0, "all_verb_accuracy_at_5": 80.0,
        # noun@1: s0 s2 s3; @5 adds s1
        "all_noun_accuracy_at_1": 60.0, "all_noun_accuracy_at_5": 80.0,
        # action@1: s0 s3; @5 adds s1 (second) and s2 (second)
        "all_action_accuracy_at_1": 40.0, "all_action_accuracy_at_5": 80.0,
        # unseen (P03) = s1, s3: verb both right, noun s3, action s3
        "unseen_verb_accuracy_at_1": 100.0, "unseen_noun_accuracy_at_1": 50.0, "unseen_action_accuracy_at_1": 50.0,
        # tail verb {3}: s2 (verb wrong); tail noun {7}: s3 (right); tail action: verb OR noun tail = s2, s3
        "tail_verb_accuracy_at_1": 0.0, "tail_noun_accuracy_at_1": 100.0, "tail_action_accuracy_at_1": 50.0,
    }
    assert got == pytest.approx(expected)
    # s0 missing from the submission: it is wrong everywhere
    present = np.array([False, True, True, True, True])
    missing = evaluate.epic100_metrics(verb, noun, verb_labels, noun_labels, present)
    assert missing["all_verb_accuracy_at_1"] == pytest.approx(40.0)
    assert missing["all_action_accuracy_at_5"] == pytest.approx(60.0)
    assert "unseen_verb_accuracy_at_1" not in missing and "tail_verb_accuracy_at_1" not in missing


def test_epic55_metrics_use_the_given_action_ranking():
    verb, noun, verb_labels, noun_labels, _ = _epic_hand_case()
    verb, noun = np.pad(verb, ((0, 0), (0, 28))), np.pad(noun, ((0, 0), (0, 52)))  # 125 verbs, 352 nouns
    ranking = evaluate.epic_action_ranking(verb, noun)
    assert evaluate.epic55_metrics(verb, noun, ranking, verb_labels, noun_labels)["all_action_accuracy_at_1"] == 40.0
    ranking[4, 0] = 10 * 1000 + 10  # a submitted action list that puts s4's true pair first
    got = evaluate.epic55_metrics(verb, noun, ranking, verb_labels, noun_labels)
    assert got["all_action_accuracy_at_1"] == 60.0 and got["all_verb_accuracy_at_1"] == 60.0


def test_ensemble_average():
    a, b = np.array([[0.0, 2.0]]), np.array([[1.0, 0.0]])
    assert evaluate.ensemble_average([a, b]).tolist() == [[0.5, 1.0]]
    logits = evaluate.ensemble_average([a, b], softmax_first=True)
    assert np.allclose(softmax(logits), (softmax(a) + softmax(b)) / 2, atol=1e-15)
    with pytest.raises(ValueError, match="one shape"):
        evaluate.ensemble_average([a, np.zeros((2, 2))])


# ----------------------------------------------------------------------------- CLI on generated data


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    root = tmp_path_factory.mktemp("official")
    small = {"size": (32, 48)}
    return {
        "charades": synthetic.make_charades_ego(str(root / "charades"), num_frames=8, train_pairs=1, test_pairs=4,
                                                **small),
        "epic100": synthetic.make_epic100(str(root / "epic100"), segment_frames=4, gap_frames=2, **small),
        "epic55": synthetic.make_epic55(str(root / "epic55"), segment_frames=4, gap_frames=2, **small),
        "ssv2": synthetic.make_ssv2(str(root / "ssv2"), videos_per_class=1, val_videos_per_class=2, test_videos=1,
                                    num_frames=8, **small),
        "kinetics": synthetic.make_kinetics(str(root / "kinetics"), videos_per_class=1, val_videos_per_class=2,
                                            num_frames=8, **small),
    }


def _run_cli(*args):
    """The scorer as a user runs it: a subprocess from the repository root."""
    done = subprocess.run([sys.executable, os.path.join(ROOT, "evaluate.py"), *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    return done.returncode, done.stdout, done.stderr


def _main(capsys, *args):
    code = evaluate.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if code == 0 else None), err


def _charades_test_videos(data, first_person=True):
    with open(data["csv"]["test"], newline="") as f:
        ids = [row["id"] for row in csv.DictReader(f)]
    return [i for i in ids if i.endswith("EGO") == first_person]


def _charades_labels(data, ids):
    labels = np.zeros((len(ids), 157), int)
    for row, video_id in enumerate(ids):
        for action in data["actions"][video_id]:
            labels[row, action.label] = 1
    return labels


def test_cli_charades_ego(generated, tmp_path):
    data = generated["charades"]
    ids = _charades_test_videos(data)
    rng = np.random.default_rng(9)
    scores = rng.random((len(ids), 157))
    sub = tmp_path / "charades.txt"
    # the submission also scores the third-person videos, which --views first ignores, and lacks ids[1]
    third = _charades_test_videos(data, first_person=False)
    keep = [0] + list(range(2, len(ids)))
    write_charades_submission(sub, [ids[i] for i in keep] + third,
                              np.concatenate([scores[keep], rng.random((len(third), 157))]))
    code, out, err = _run_cli("charades_ego", "--annotations", data["csv"]["test"], sub)
    assert code == 0, err
    result = json.loads(out)
    expected_scores = scores.copy()
    expected_scores[1] = -np.inf
    expected = evaluate.charades_map(expected_scores, _charades_labels(data, ids))
    assert result["mAP"] == pytest.approx(expected["mAP"]) and result["wAP"] == pytest.approx(expected["wAP"])
    assert result["missing"] == {"count": 1, "first": [ids[1]]}
    assert result["videos"] == len(ids) and result["ignored_other_view_ids"] == len(third)
    assert result["per_class_ap"].count(None) == 157 - result["classes_with_positives"]


def test_cli_charades_ensemble_equals_scoring_the_average(generated, tmp_path, capsys):
    data = generated["charades"]
    ids = _charades_test_videos(data)
    rng = np.random.default_rng(10)
    a, b = rng.random((len(ids), 157)), rng.random((len(ids), 157))
    write_charades_submission(tmp_path / "a.txt", ids, a)
    order = np.arange(len(ids))[::-1]  # member files may list the videos in another order
    write_charades_submission(tmp_path / "b.txt", [ids[i] for i in order], b[order])
    code, result, err = _main(capsys, "charades_ego", "--annotations", data["csv"]["test"], tmp_path / "a.txt",
                              "--ensemble", tmp_path / "b.txt")
    assert code == 0, err
    expected = evaluate.charades_map((a + b) / 2, _charades_labels(data, ids))
    assert result["mAP"] == pytest.approx(expected["mAP"]) and result["missing"]["count"] == 0
    average = write_charades_submission(tmp_path / "avg.txt", ids, (a + b) / 2)
    assert average == str(tmp_path / "avg.txt")  # writers return the path they wrote
    _, averaged, _ = _main(capsys, "charades_ego", "--annotations", data["csv"]["test"], average)
    assert averaged["mAP"] == pytest.approx(result["mAP"])
    # --ensemble alone, as in `evaluate.py charades_ego --annotations A --ensemble F1 F2`
    code, alone, err = _main(capsys, "charades_ego", "--annotations", data["csv"]["test"], "--ensemble",
                             tmp_path / "a.txt", tmp_path / "b.txt")
    assert code == 0 and alone["mAP"] == pytest.approx(result["mAP"]), err
    code, _, err = _run_cli("charades_ego", "--annotations", data["csv"]["test"])
    assert code == 2 and "give at least one submission file" in err
    # the same scoring from Python (what train_finetune.py calls)
    direct = evaluate.score_charades_ego([tmp_path / "a.txt", tmp_path / "b.txt"], data["csv"]["test"])
    assert (direct["mAP"], direct["wAP"], direct["missing"]) == (result["mAP"], result["wAP"], result["missing"])


def _epic_truth(data, csv_path, id_column):
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    return [r[id_column] for r in rows], [data["segments"][r[id_column]] for r in rows]


def test_cli_epic100_with_unseen_and_tail(generated, tmp_path):
    data = generated["epic100"]
    ids, truth = _epic_truth(data, data["csv"]["validation"], "narration_id")
    verb_labels = np.array([t["verb_class"] for t in truth])
    noun_labels = np.array([t["noun_class"] for t in truth])
    rng = np.random.default_rng(11)
    verb, noun = rng.normal(size=(len(ids), 97)), rng.normal(size=(len(ids), 300))
    verb[np.arange(len(ids)), verb_labels] += 4  # mostly right, so the numbers are not all zero
    sub = tmp_path / "sub.pkl"
    write_epic100_submission(sub, ids[1:], verb[1:], noun[1:])  # the first segment is missing
    code, out, err = _run_cli("epic100", "--annotations", data["csv"]["validation"], "--unseen",
                              data["unseen"]["validation"], "--tail-verbs", data["tail"]["verbs"],
                              "--tail-nouns", data["tail"]["nouns"], sub)
    assert code == 0, err
    result = json.loads(out)
    present = np.arange(len(ids)) > 0
    stored_verb, stored_noun = verb.astype(np.float32), noun.astype(np.float32)  # the format is float32
    expected = evaluate.epic100_metrics(stored_verb, stored_noun, verb_labels, noun_labels, present,
                                        [t["participant_id"] for t in truth], {"P03"}, {3}, {4, 5, 6, 7})
    for key, value in expected.items():
        assert result[key] == pytest.approx(value), key
    assert "unseen_verb_accuracy_at_1" in result
    assert result["missing"] == {"count": 1, "first": [ids[0]]}
    assert result["segments"]["all"] == len(ids)


def test_cli_epic100_ensemble_averages_probabilities(generated, tmp_path, capsys):
    data = generated["epic100"]
    ids, truth = _epic_truth(data, data["csv"]["validation"], "narration_id")
    rng = np.random.default_rng(12)
    members = [(rng.normal(size=(len(ids), 97)), rng.normal(size=(len(ids), 300))) for _ in range(2)]
    # verbs where averaging probabilities and averaging logits disagree: member 0 is sure of the
    # label (logit 10), member 1 rules it out (-10) and mildly prefers the next class (1). Mean
    # logits: label 0, next 0.5 -> wrong; mean probabilities: label ~0.5, next ~0.01 -> right.
    rows, verb_labels = np.arange(len(ids)), np.array([t["verb_class"] for t in truth])
    members[0][0][rows, verb_labels] = 10
    members[1][0][rows, verb_labels] = -10
    members[1][0][rows, (verb_labels + 1) % 97] = 1
    for n, (verb, noun) in enumerate(members):
        write_epic100_submission(tmp_path / f"m{n}.pt", ids, verb, noun)
    code, result, err = _main(capsys, "epic100", "--annotations", data["csv"]["validation"], tmp_path / "m0.pt",
                              tmp_path / "m1.pt")
    assert code == 0, err
    stored = [(v.astype(np.float32), n.astype(np.float32)) for v, n in members]
    mean_verb = (softmax(stored[0][0]) + softmax(stored[1][0])) / 2
    mean_noun = (softmax(stored[0][1]) + softmax(stored[1][1])) / 2
    expected = evaluate.epic100_metrics(np.log(mean_verb), np.log(mean_noun),
                                        [t["verb_class"] for t in truth], [t["noun_class"] for t in truth])
    assert {k: result[k] for k in expected} == pytest.approx(expected)
    assert result["all_verb_accuracy_at_1"] == 100.0


def test_cli_epic55(generated, tmp_path, capsys):
    data = generated["epic55"]
    ids, truth = _epic_truth(data, data["csv"]["train"], "uid")
    verb_labels = np.array([t["verb_class"] for t in truth])
    noun_labels = np.array([t["noun_class"] for t in truth])
    rng = np.random.default_rng(13)
    verb, noun = rng.normal(size=(len(ids), 125)), rng.normal(size=(len(ids), 352))
    verb[np.arange(len(ids)), verb_labels] += 3
    noun[np.arange(len(ids)), noun_labels] += 3
    sub = tmp_path / "seen.json"
    write_epic55_submission(sub, ids, verb, noun)
    code, out, err = _run_cli("epic55", "--annotations", data["csv"]["train"], sub)
    assert code == 0, err
    result = json.loads(out)
    expected = evaluate.epic55_metrics(softmax(verb), softmax(noun), evaluate.epic_action_ranking(verb, noun),
                                       verb_labels, noun_labels)
    assert {k: result[k] for k in expected} == pytest.approx(expected)
    assert result["missing"]["count"] == 0 and result["segments"] == len(ids)
    assert result["all_action_accuracy_at_1"] > 0
    # the submitted "action" entries decide the action ranking: demote each segment's true pair to
    # the lowest score of its list (it stays in the top 5 only if the list has <= 5 entries: never)
    content = json.loads(sub.read_text())
    for uid, t in zip(ids, truth):
        action = content["results"][uid]["action"]
        key = f"{t['verb_class']},{t['noun_class']}"
        if key in action:
            lowest = min(action, key=action.get)
            action[key], action[lowest] = action[lowest], action[key]
    demoted = tmp_path / "demoted.json"
    demoted.write_text(json.dumps(content))
    code, changed, err = _main(capsys, "epic55", "--annotations", data["csv"]["train"], demoted)
    assert code == 0, err
    assert changed["all_action_accuracy_at_5"] == 0.0
    assert changed["all_verb_accuracy_at_1"] == result["all_verb_accuracy_at_1"]
    # an ensemble of the file with itself scores the same
    code, again, err = _main(capsys, "epic55", "--annotations", data["csv"]["train"], sub, "--ensemble", sub)
    assert code == 0, err
    assert {k: again[k] for k in expected} == pytest.approx(expected)


def test_cli_topk_ssv2_and_kinetics(generated, tmp_path, capsys):
    ssv2 = generated["ssv2"]
    with open(ssv2["json"]["validation"]) as f:
        val_ids = [entry["id"] for entry in json.load(f)]
    labels = np.array([ssv2["labels"][i] for i in val_ids])
    scores = np.random.default_rng(14).random((len(val_ids), 4))
    sub = tmp_path / "ssv2.txt"
    write_topk_submission(sub, val_ids, scores)
    code, out, err = _run_cli("topk", "--annotations", ssv2["json"]["validation"], "--labels",
                              ssv2["json"]["labels"], sub)
    assert code == 0, err
    result = json.loads(out)
    assert result["top1"] == pytest.approx(evaluate.topk(scores, labels)["top1"])
    assert result["top5"] == 100.0 and result["classes"] == 4 and result["videos"] == len(val_ids)

    kinetics = generated["kinetics"]
    val_ids = [v for v, split in kinetics["split"].items() if split == "val"]
    labels = np.array([kinetics["labels"][v] for v in val_ids])
    scores = np.eye(4)[labels] + 0.1  # all right, except the one made wrong below
    scores[0] = np.roll(scores[0], 1)
    sub = tmp_path / "kinetics.txt"
    write_topk_submission(sub, val_ids, scores)
    for annotations in (kinetics["lists"]["val"], kinetics["official_csv"]["val"]):
        code, result, err = _main(capsys, "topk", "--annotations", annotations, "--class-names",
                                  kinetics["classnames"], sub)
        assert code == 0, err
        assert result["top1"] == pytest.approx(100 * (len(val_ids) - 1) / len(val_ids)), annotations
        assert result["top5"] == 100.0


def test_cli_bad_inputs_stop_with_one_line_naming_file_and_ids(generated, tmp_path, capsys):
    data = generated["charades"]
    ids = _charades_test_videos(data)
    scores = np.random.default_rng(15).random((len(ids), 157))
    unknown = tmp_path / "unknown.txt"
    write_charades_submission(unknown, ids + ["NOTAVIDEO"], np.concatenate([scores, scores[:1]]))
    code, out, err = _run_cli("charades_ego", "--annotations", data["csv"]["test"], unknown)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert str(unknown) in err and "'NOTAVIDEO'" in err and "do not know" in err

    nan = tmp_path / "nan.txt"
    nan.write_text(f"{ids[0]} " + " ".join(["nan"] * 157) + "\n")
    code, _, err = _main(capsys, "charades_ego", "--annotations", data["csv"]["test"], nan)
    assert code == 2 and f"{nan}:1" in err and repr(ids[0]) in err

    epic = generated["epic100"]
    ids100, _ = _epic_truth(epic, epic["csv"]["validation"], "narration_id")
    wrong_classes = tmp_path / "wrong.pkl"
    with open(wrong_classes, "wb") as f:
        pickle.dump({"verb_output": np.zeros((len(ids100), 125)), "noun_output": np.zeros((len(ids100), 300)),
                     "narration_id": ids100}, f)
    code, _, err = _main(capsys, "epic100", "--annotations", epic["csv"]["validation"], wrong_classes)
    assert code == 2 and str(wrong_classes) in err and "[4, 97]" in err and len(err.strip().splitlines()) == 1

    duplicate = tmp_path / "dup.txt"
    duplicate.write_text("".join(f"{i} " + " ".join(["0.5"] * 157) + "\n" for i in [ids[0], ids[1], ids[0]]))
    code, _, err = _main(capsys, "charades_ego", "--annotations", data["csv"]["test"], duplicate)
    assert code == 2 and "duplicate id" in err and f"{duplicate}:3" in err

    other = tmp_path / "other.txt"
    write_charades_submission(other, ids[:-1], scores[:-1])
    write_charades_submission(tmp_path / "full.txt", ids, scores)
    code, _, err = _main(capsys, "charades_ego", "--annotations", data["csv"]["test"], tmp_path / "full.txt",
                         "--ensemble", other)
    assert code == 2 and str(other) in err and repr(ids[-1]) in err and "same ids" in err

    marker = tmp_path / "ran"
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(b"cos\nsystem\n(X" + len(f"touch {marker}").to_bytes(4, "little") +
                     f"touch {marker}".encode() + b"tR.")
    code, _, err = _main(capsys, "epic100", "--annotations", epic["csv"]["validation"], evil)
    assert code == 2 and "os.system" in err and str(evil) in err and not marker.exists()

    code, _, err = _main(capsys, "topk", "--annotations", generated["ssv2"]["json"]["validation"],
                         tmp_path / "full.txt")
    assert code == 2 and "--labels" in err


def test_cli_topk_scores_the_binary_ego_task_against_charades_ego(generated, tmp_path, capsys):
    """M_ego's submission: 2 scores per video, class 1 = first person, every video of the CSV."""
    data = generated["charades"]
    ids = _charades_test_videos(data) + _charades_test_videos(data, first_person=False)
    scores = np.zeros((len(ids), 2))
    scores[:, 1] = [1.0 if i.endswith("EGO") else 0.0 for i in ids]
    scores[0] = [1.0, 0.0]  # one first-person video called third person
    write_topk_submission(tmp_path / "ego.txt", ids, scores)
    code, result, err = _main(capsys, "topk", "--annotations", data["csv"]["test"], tmp_path / "ego.txt")
    assert code == 0, err
    assert result["classes"] == 2 and result["top1"] == pytest.approx(100 * (len(ids) - 1) / len(ids))
