"""figures.py: improved-class sets and their overlaps (Fig. S3), the fraction table (Fig. S1),
and that both figures are written as valid PNGs."""

import json
import pathlib
import re
import struct
import subprocess
import sys

import numpy as np
import pytest

import figures
from data.annotations import CHARADES_NUM_CLASSES

CHARADES_HEADER = ("id,subject,scene,quality,relevance,verified,script,objects,descriptions,"
                   "actions,length,egocentric,charades_video\n")
# Four first-person test videos with classes c000..c002, and a third-person one nobody scores.
VIDEO_ACTIONS = {"V1EGO": "c000 0.0 5.0;c001 1.0 2.0", "V2EGO": "c000 3.0 4.0",
                 "V3EGO": "c001 0.0 1.0;c002 2.0 9.0", "V4EGO": "c002 0.0 3.0", "V1": "c000 0 1"}
VIDEOS = ["V1EGO", "V2EGO", "V3EGO", "V4EGO"]
# Scores of classes c000, c001, c002 for V1..V4; the other 154 classes score 0. Hand-worked
# official AP (rank by score, AP = mean over positives of precision at their rank):
SCORES = {
    # c000 ranks V1+ V3- V4- V2+: (1/1 + 2/4)/2 = 0.75; c001 ranks V2- V1+ V3+: (1/2 + 2/3)/2
    # = 7/12; c002 ranks V1- V4+ V2- V3+: (1/2 + 2/4)/2 = 0.5
    "baseline": [[0.9, 0.5, 0.9], [0.1, 0.6, 0.2], [0.8, 0.4, 0.1], [0.2, 0.3, 0.8]],
    # c000 perfect 1.0 (+25 points); c001 the baseline's ranking, 7/12 (+0: not improved);
    # c002 perfect 1.0 (+50)
    "Ego-Score": [[0.9, 0.5, 0.1], [0.8, 0.6, 0.2], [0.1, 0.4, 0.9], [0.2, 0.3, 0.8]],
    # c000 ranks V1+ V3- V2+: (1 + 2/3)/2 = 5/6 (+8.33); c001 perfect (+41.67); c002 perfect
    "Object-Score": [[0.9, 0.9, 0.1], [0.7, 0.1, 0.2], [0.8, 0.8, 0.9], [0.1, 0.2, 0.3]],
    # c000 ranks V3- V4- V2+ V1+: (1/3 + 2/4)/2 = 5/12 (worse); c001, c002 perfect
    "Interaction-Map": [[0.1, 0.9, 0.5], [0.2, 0.2, 0.2], [0.9, 0.95, 0.9], [0.8, 0.1, 0.6]],
}
EXPECTED_AP = {"baseline": [75.0, 700 / 12, 50.0], "Ego-Score": [100.0, 700 / 12, 100.0],
               "Object-Score": [500 / 6, 100.0, 100.0], "Interaction-Map": [500 / 12, 100.0, 100.0]}


def write_annotations(tmp_path):
    rows = [f"{vid},S1,Kitchen,6,7,Yes,a script,,a description,{actions},10.0,"
            f"{'Yes' if vid.endswith('EGO') else 'No'},{vid[:2]}\n"
            for vid, actions in VIDEO_ACTIONS.items()]
    path = tmp_path / "CharadesEgo_v1_test.csv"
    path.write_text(CHARADES_HEADER + "".join(rows))
    return path


def write_submission(path, rows_by_video):
    """The official Charades text format: `id s_0 ... s_156` per line."""
    with open(path, "w") as f:
        for vid, first_scores in rows_by_video.items():
            scores = list(first_scores) + [0.0] * (CHARADES_NUM_CLASSES - len(first_scores))
            f.write(vid + " " + " ".join(f"{s:.4f}" for s in scores) + "\n")
    return path


def write_submissions(tmp_path):
    return {name: write_submission(tmp_path / f"{name}.txt", dict(zip(VIDEOS, scores)))
            for name, scores in SCORES.items()}


def png_size(path):
    """(width, height) from the IHDR chunk, after checking the PNG signature."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_per_class_ap_matches_the_hand_worked_values(tmp_path):
    truth = figures.charades_ground_truth(write_annotations(tmp_path))
    assert truth.video_ids == VIDEOS and truth.other_view == {"V1"}
    for name, path in write_submissions(tmp_path).items():
        present, ap = figures.per_class_ap(path, truth)
        assert present.all()
        np.testing.assert_allclose(ap[:3], EXPECTED_AP[name], atol=1e-7, err_msg=name)
        assert np.isnan(ap[3:]).all()  # no positives: no AP


def test_improved_sets_and_their_overlaps():
    baseline = np.array(EXPECTED_AP["baseline"] + [np.nan])
    variants = {n: np.array(EXPECTED_AP[n] + [90.0]) for n in ("Ego-Score", "Object-Score",
                                                              "Interaction-Map")}
    improved = figures.improved_classes(baseline, variants)
    # Equal AP is no improvement (Ego-Score c001), a class without positives never counts (c003).
    assert improved == {"Ego-Score": {0, 2}, "Object-Score": {0, 1, 2}, "Interaction-Map": {1, 2}}
    assert figures.exclusive_regions(improved) == {
        ("Ego-Score", "Object-Score"): [0], ("Object-Score", "Interaction-Map"): [1],
        ("Ego-Score", "Object-Score", "Interaction-Map"): [2]}
    # A 20-point threshold drops Object-Score's +8.33 on c000, which leaves Ego-Score alone there.
    improved = figures.improved_classes(baseline, variants, min_gain=20)
    assert figures.exclusive_regions(improved) == {
        ("Ego-Score",): [0], ("Object-Score", "Interaction-Map"): [1],
        ("Ego-Score", "Object-Score", "Interaction-Map"): [2]}


def test_classes_command_writes_json_and_a_venn_png(tmp_path, capsys):
    files = write_submissions(tmp_path)
    out, report = tmp_path / "fig_s3.png", tmp_path / "per_class.json"
    figures.main(["classes", "--annotations", str(write_annotations(tmp_path)),
                  "--baseline", str(files["baseline"]), "--out", str(out), "--json", str(report),
                  "--min-gain", "20"]
                 + [a for n in ("Ego-Score", "Object-Score", "Interaction-Map")
                    for a in ("--variant", f"{n}={files[n]}")])
    printed = capsys.readouterr().out
    c000_row = next(line for line in printed.splitlines() if line.startswith("c000"))
    assert c000_row.split() == ["c000", "75.00", "100.00", "+25.00", "83.33", "+8.33", "41.67",
                                "-33.33"]
    saved = json.loads(report.read_text())
    assert saved["min_gain"] == 20
    assert saved["improved"] == {"Ego-Score": ["c000", "c002"], "Object-Score": ["c001", "c002"],
                                 "Interaction-Map": ["c001", "c002"]}
    assert saved["regions"] == [
        {"variants": ["Ego-Score"], "classes": ["c000"]},
        {"variants": ["Object-Score", "Interaction-Map"], "classes": ["c001"]},
        {"variants": ["Ego-Score", "Object-Score", "Interaction-Map"], "classes": ["c002"]}]
    assert saved["classes"][1]["variant_ap"]["Ego-Score"] == pytest.approx(700 / 12)
    assert saved["classes"][3]["baseline_ap"] is None
    width, height = png_size(out)
    assert 600 <= width <= 3000 and 600 <= height <= 3000


def test_more_than_three_variants_draw_an_upset_chart(tmp_path):
    improved = {"A": {0, 1, 2}, "B": {1, 2}, "C": {2, 5}, "D": {7}}
    out = tmp_path / "upset.png"
    figures.draw_improvement_upset(improved, out)
    width, height = png_size(out)
    assert 400 <= width <= 3000 and 300 <= height <= 3000


def test_a_variant_scoring_other_videos_is_refused(tmp_path):
    files = write_submissions(tmp_path)
    fewer = write_submission(tmp_path / "fewer.txt", dict(zip(VIDEOS[:3], SCORES["Ego-Score"])))
    with pytest.raises(SystemExit, match=r"fewer\.txt: scores other videos than the baseline"):
        figures.main(["classes", "--annotations", str(write_annotations(tmp_path)),
                      "--baseline", str(files["baseline"]), "--variant", f"E={fewer}",
                      "--out", str(tmp_path / "x.png")])


def test_a_bad_submission_is_reported_with_its_file_and_line(tmp_path):
    files = write_submissions(tmp_path)
    bad = tmp_path / "bad.txt"
    bad.write_text(files["Ego-Score"].read_text() + "V5EGO 0.5 0.5\n")
    with pytest.raises(SystemExit, match=r"bad\.txt.*bad\.txt:5"):
        figures.main(["classes", "--annotations", str(write_annotations(tmp_path)),
                      "--baseline", str(files["baseline"]), "--variant", f"E={bad}",
                      "--out", str(tmp_path / "x.png")])


def write_metrics(tmp_path, name, **metrics):
    """A metrics file laid out as `evaluate.py epic100` prints it."""
    path = tmp_path / name
    path.write_text(json.dumps({"dataset": "epic100", **metrics, "segments": {"all": 10},
                                "missing": {"count": 0, "first": []}, "submissions": ["s.pkl"]}))
    return str(path)


VERB, NOUN = "all_verb_accuracy_at_1", "all_noun_accuracy_at_1"  # evaluate.py's EPIC-100 keys


def fraction_runs(tmp_path):
    return [
        f"0.1=third_only:{write_metrics(tmp_path, 't10.json', **{VERB: 40.0, NOUN: 20.0})}",
        f"100%=third_only:{write_metrics(tmp_path, 't100.json', **{VERB: 61.19})}",
        f"0.5=third_only:{write_metrics(tmp_path, 't50.json', **{VERB: 55.5})}",
        f"0.1=Ego-Exo:{write_metrics(tmp_path, 'e10.json', **{VERB: 42.68})}",
        f"1.0=Ego-Exo:{write_metrics(tmp_path, 'e100.json', **{VERB: 62.83})}",
        f"0.5=Ego-Exo:{write_metrics(tmp_path, 'e50.json', **{VERB: 56.0})}",
    ]


def test_fraction_table_sorts_fractions_and_puts_the_baseline_first(tmp_path):
    runs = [figures.parse_run(r) for r in fraction_runs(tmp_path)]
    fractions, table = figures.fraction_table(runs, VERB, "third_only")
    assert fractions == [0.1, 0.5, 1.0]
    assert list(table) == ["third_only", "Ego-Exo"]
    assert table == {"third_only": [40.0, 55.5, 61.19], "Ego-Exo": [42.68, 56.0, 62.83]}


def test_fraction_command_prints_gains_and_writes_a_png(tmp_path, capsys):
    out = tmp_path / "fig_s1.png"
    figures.main(["fraction", "--metric", VERB, "--baseline", "third_only", "--out", str(out)]
                 + [a for r in fraction_runs(tmp_path) for a in ("--run", r)])
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == ["10%", "40.00", "42.68", "+2.68"]
    assert lines[3].split() == ["100%", "61.19", "62.83", "+1.64"]
    width, height = png_size(out)
    assert 500 <= width <= 2000 and 350 <= height <= 1500


def test_fraction_errors_name_the_file_fraction_or_method(tmp_path):
    runs = [figures.parse_run(r) for r in fraction_runs(tmp_path)]
    with pytest.raises(figures.FigureInputError, match=rf"t100\.json: no metric '{NOUN}'"):
        figures.fraction_table(runs, NOUN, "third_only")
    with pytest.raises(figures.FigureInputError, match=r"t10\.json: metric 'missing' should be "
                                                       r"a finite number"):
        figures.fraction_table(runs, "missing", "third_only")
    with pytest.raises(figures.FigureInputError,
                       match=r"method 'Ego-Exo' has no run at fraction\(s\) 0\.5, which other "
                             r"methods have \(its runs: .*e10\.json at 0\.1, .*e100\.json at 1\)"):
        figures.fraction_table([r for r in runs if r[:2] != (0.5, "Ego-Exo")], VERB, "third_only")
    with pytest.raises(figures.FigureInputError, match=r"--baseline 'Third-only': unknown method; "
                                                       r"the runs name third_only, Ego-Exo"):
        figures.fraction_table(runs, VERB, "Third-only")
    with pytest.raises(figures.FigureInputError, match=r"t10\.json: method 'Ego-Exo' at "
                                                       r"fraction 0\.1 is already given by .*e10"):
        figures.fraction_table(runs + [(0.1, "Ego-Exo", runs[0][2])], VERB, "third_only")
    with pytest.raises(figures.FigureInputError, match=r"expected FRACTION=METHOD:PATH"):
        figures.parse_run("0.1=third_only")
    with pytest.raises(figures.FigureInputError, match=r"fraction should be in \(0, 1\]"):
        figures.parse_run("150%=third_only:x.json")


def test_missing_matplotlib_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    with pytest.raises(figures.FigureInputError, match="pip install matplotlib"):
        figures._pyplot()


def test_fraction_reads_the_last_line_of_a_metrics_jsonl(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text(json.dumps({"epoch": 10, "all_verb_accuracy_at_1": 40.0}) + "\n"
                    + json.dumps({"epoch": 20, "all_verb_accuracy_at_1": 52.5}) + "\n")
    assert figures.read_metric(str(path), "all_verb_accuracy_at_1") == 52.5
    (tmp_path / "sub.pkl").write_bytes(b"\x80\x05\x95\xff\xfe")
    with pytest.raises(figures.FigureInputError, match=r"sub.pkl: not UTF-8 text"):
        figures.read_metric(str(tmp_path / "sub.pkl"), "all_verb_accuracy_at_1")
    path.write_text(json.dumps({"epoch": 10}) + "\n{oops\n")
    with pytest.raises(figures.FigureInputError, match=r"metrics.jsonl:2: invalid JSON"):
        figures.read_metric(str(path), "all_verb_accuracy_at_1")


# ----------------------------------------------------------------------------- Figs. S2, S4


def write_ego_scores(path, ego_probabilities, video_ids=None):
    """A score_teachers.py-style Ego-Score file holding log([1 - p, p]) per video."""
    from data.teacher_targets import save_teacher_scores
    import torch
    p = torch.tensor(ego_probabilities, dtype=torch.float64)
    ids = video_ids or [f"v{i}" for i in range(len(p))]
    save_teacher_scores(path, "ego", ids, torch.stack([1 - p, p], dim=1).log().float())
    return str(path)


EGO_PROBABILITIES = [0.02, 0.07, 0.12, 0.55, 0.97, 0.999]


def test_ego_histogram_counts_by_hand(tmp_path):
    scores = figures._load_scores(write_ego_scores(tmp_path / "ego.pt", EGO_PROBABILITIES))
    edges, counts = figures.ego_score_histogram(scores, bins=10)
    np.testing.assert_allclose(edges, np.linspace(0, 1, 11))
    # [0, .1): 0.02, 0.07; [.1, .2): 0.12; [.5, .6): 0.55; [.9, 1]: 0.97, 0.999
    assert counts.tolist() == [2, 1, 0, 0, 0, 1, 0, 0, 0, 2]
    from data.teacher_targets import save_teacher_scores
    import torch
    save_teacher_scores(tmp_path / "one.pt", "ego", ["sure"], torch.tensor([[-100.0, 0.0]]))  # P(ego) = 1.0
    _, counts = figures.ego_score_histogram(figures._load_scores(str(tmp_path / "one.pt")), 4)
    assert counts.tolist() == [0, 0, 0, 1]  # the last bin is closed


def test_ego_distribution_command_prints_writes_json_and_a_png(tmp_path, capsys):
    out, report = tmp_path / "fig_s2.png", tmp_path / "hist.json"
    figures.main(["ego_distribution", "--scores", write_ego_scores(tmp_path / "ego.pt", EGO_PROBABILITIES),
                  "--out", str(out), "--bins", "5", "--json", str(report)])
    printed = capsys.readouterr().out
    assert "6 videos in" in printed and "mean Ego-Score 0.4548" in printed and "50.0% at >= 0.5" in printed
    assert "[0.80, 1.00]        2" in printed
    saved = json.loads(report.read_text())
    assert saved["counts"] == [3, 0, 1, 0, 2] and saved["median"] == pytest.approx((0.12 + 0.55) / 2)
    width, height = png_size(out)
    assert 400 <= width <= 2000 and 250 <= height <= 1500


def test_ego_distribution_refuses_an_object_score_file(tmp_path):
    from data.teacher_targets import save_teacher_scores
    import torch
    path = tmp_path / "object.pt"
    save_teacher_scores(path, "object", ["a"], torch.full((1, 1000), -np.log(1000.0)))
    with pytest.raises(SystemExit, match=r"object\.pt: holds 'object' teacher scores, expected 'ego'"):
        figures.main(["ego_distribution", "--scores", str(path), "--out", str(tmp_path / "x.png")])


def test_extreme_videos_rank_by_ego_probability_and_top_object_class(tmp_path):
    import torch
    from data.teacher_targets import save_teacher_scores
    ego = figures._load_scores(write_ego_scores(tmp_path / "ego.pt", [0.3, 0.9, 0.1, 0.6],
                                                ["a", "b", "c", "d"]))
    assert figures.extreme_videos(ego, 2) == ([("b", pytest.approx(0.9)), ("d", pytest.approx(0.6))],
                                              [("c", pytest.approx(0.1)), ("a", pytest.approx(0.3))])
    assert figures.extreme_videos(ego, 1, among={"a", "c"}) == ([("a", pytest.approx(0.3))],
                                                                [("c", pytest.approx(0.1))])
    # object: the top class probability, 0.5 (x: one class at 0.5), 0.9 (y), 0.001 (z: uniform)
    probs = torch.full((3, 1000), 0.0)
    probs[0] = 0.5 / 999
    probs[0, 7] = 0.5
    probs[1] = 0.1 / 999
    probs[1, 3] = 0.9
    probs[2] = 1 / 1000
    path = tmp_path / "object.pt"
    save_teacher_scores(path, "object", ["x", "y", "z"], probs.log())
    highest, lowest = figures.extreme_videos(figures._load_scores(str(path)), 1)
    assert highest == [("y", pytest.approx(0.9, rel=1e-5))] and lowest == [("z", pytest.approx(0.001, rel=1e-4))]
    with pytest.raises(figures.FigureInputError, match=r"none of its 3 videos is in the video list"):
        figures.extreme_videos(figures._load_scores(str(path)), 1, among={"q"})


def test_extremes_command_draws_frames_of_both_teachers(tmp_path, capsys):
    import torch
    from data.synthetic import corrupt_video
    from data.teacher_targets import save_teacher_scores
    from data.video import write_video
    rng = np.random.default_rng(0)
    ids = ["vid_a", "vid_b", "vid_c", "vid_d"]
    for video_id in ids:
        write_video(tmp_path / f"{video_id}.mp4", rng.integers(0, 255, (6, 24, 32, 3), dtype=np.uint8), 12)
    corrupt_video(str(tmp_path / "vid_d.mp4"), "garbage")
    video_list = tmp_path / "list.txt"
    video_list.write_text("".join(f"{v}.mp4 0\n" for v in ids))
    ego = write_ego_scores(tmp_path / "ego.pt", [0.2, 0.8, 0.5, 0.99], ids)
    probs = torch.full((4, 1000), 1 / 1000.0)
    object_path = tmp_path / "object.pt"
    save_teacher_scores(object_path, "object", ids, probs.log())
    out = tmp_path / "fig_s4.png"
    figures.main(["extremes", "--scores", ego, "--scores", str(object_path), "--video-list", str(video_list),
                  "--video-root", str(tmp_path), "--out", str(out), "--top", "2", "--frames", "3"])
    printed = capsys.readouterr().out
    assert "skipped vid_d:" in printed  # undecodable: the next video takes its place
    assert "highest: vid_b 0.8000, vid_c 0.5000" in printed and "lowest: vid_a 0.2000, vid_c 0.5000" in printed
    width, height = png_size(out)
    assert 500 <= width <= 3000 and 400 <= height <= 3000
    strip = figures.video_strip(str(tmp_path / "vid_a.mp4"), 3, height=48)
    assert strip.shape == (48, 3 * 64 + 2 * 2, 3) and strip.dtype == np.uint8
    assert (strip[:, 64:66] == 255).all()  # the gap between frames


# ----------------------------------------------------------------------------- training curves


def train_line(progress, lr, **loss):
    """A "train" line as the training scripts write it (4 steps per epoch); None is a NaN."""
    epoch = int(progress) if progress % 1 else int(progress) - 1
    return {"kind": "train", "epoch": epoch, "step": round((progress - epoch) * 4),
            "steps_per_epoch": 4, "progress": progress, "lr": lr, "loss": loss,
            "clips_per_s": 100.0, "data_wait": 0.02, "gpu_mem_gb": None, "time": 1796120000.0}


def eval_line(progress, **metrics):
    return {"kind": "eval", "epoch": int(progress) - 1, "progress": progress, "metrics": metrics,
            "videos": 4, "views": 120, "failed_views": 0, "time": 1796120100.0}


def start_line(resumed_from=None):
    return {"kind": "start", "time": 1796119000.0, "config": {"base_lr": 0.1},
            "resumed_from": resumed_from}


# Run A: trains to 2.5 epochs with a NaN ego loss at 1.0, is killed, and resumes from its
# checkpoint at 1.0: the resumed run's lines from 1.5 on replace the first run's train lines at
# 1.5, 2.0, 2.5 and drop its evaluation at 2.0 (the model evaluated there was trained again;
# the resumed run has not evaluated it yet).
RUN_A = [
    start_line(),
    {**train_line(0.5, 0.1, loss=3.0, action=2.0, ego=1.0), "grad_norm": 5.0},  # unknown key
    train_line(1.0, 0.1, loss=2.5, action=1.5, ego=None),
    {"kind": "epoch", "epoch": 0, "progress": 1.0, "loss": {"loss": 2.75}, "failed": 0,
     "seconds": 2.0, "time": 1796120000.5},
    eval_line(1.0, top1=10.0, top5=30.0),
    train_line(1.5, 0.05, loss=2.0, action=1.2, ego=0.8),
    train_line(2.0, 0.05, loss=1.8, action=1.0, ego=0.8),
    eval_line(2.0, top1=20.0, top5=40.0),
    {"kind": "profile", "progress": "n/a"},  # an unknown kind, unchecked and not drawn
    train_line(2.5, 0.02, loss=1.7, action=0.9, ego=0.8),
    start_line({"epoch": 1, "step": 0, "path": "runs/A/checkpoints/epoch_0001.pyth"}),
    train_line(1.5, 0.05, loss=2.1, action=1.3, ego=0.8),
    train_line(2.0, 0.05, loss=1.9, action=1.1, ego=0.7),
    train_line(2.5, 0.02, loss=1.6, action=0.9, ego=0.6),
]
# Run B: killed after 1.5 epochs; the resumed run repeats the evaluation at 1.0 and is stopped
# again: its evaluation replaces the first one, and the first run's training past 1.0 goes.
RUN_B = [
    train_line(0.5, 0.1, loss=4.0, action=4.0),
    train_line(1.0, 0.1, loss=3.0, action=3.0),
    eval_line(1.0, top1=5.0),
    train_line(1.5, 0.1, loss=2.5, action=2.5),
    start_line({"epoch": 1, "step": 0, "path": "runs/B/checkpoints/epoch_0001.pyth"}),
    eval_line(1.0, top1=6.0),
]
EPOCHS_A = [0.5, 1.0, 1.5, 2.0, 2.5]


def write_log(path, records, blank_line_at=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(r, allow_nan=False) + "\n" for r in records]
    if blank_line_at is not None:
        lines.insert(blank_line_at, "\n")
    path.write_text("".join(lines))
    return str(path)


def test_final_run_lines_drop_what_a_resumed_run_repeated(tmp_path):
    records = figures.read_training_log(write_log(tmp_path / "A" / "log.jsonl", RUN_A, blank_line_at=13))
    assert records == RUN_A  # as parsed, unknown kinds and keys included; the blank line skipped
    train, evals = figures.final_run_lines(records)
    assert [r["progress"] for r in train] == EPOCHS_A
    assert [r["loss"]["loss"] for r in train] == [3.0, 2.5, 2.1, 1.9, 1.6]
    assert [r["metrics"]["top1"] for r in evals] == [10.0]
    train, evals = figures.final_run_lines(RUN_B)
    assert [(r["progress"], r["loss"]["loss"]) for r in train] == [(0.5, 4.0), (1.0, 3.0)]
    assert [(r["progress"], r["metrics"]["top1"]) for r in evals] == [(1.0, 6.0)]


def test_trailing_mean_skips_non_finite_points():
    assert figures.trailing_mean([1.0, 3.0, 5.0, 7.0], 1) == [1.0, 3.0, 5.0, 7.0]
    assert figures.trailing_mean([1.0, 3.0, 5.0, 7.0], 3) == [1.0, 2.0, 3.0, 5.0]
    # the null stays a gap, and its neighbours average the finite values of their window only
    assert figures.trailing_mean([1.0, None, 5.0, 7.0], 2) == [1.0, None, 5.0, 6.0]


def test_curves_command_writes_the_hand_worked_series_and_a_png(tmp_path, capsys):
    logs = [write_log(tmp_path / "runA" / "log.jsonl", RUN_A),
            write_log(tmp_path / "runB" / "log.jsonl", RUN_B)]
    out = tmp_path / "figs" / "curves.png"
    out.parent.mkdir()
    figures.main(["curves", *logs, "--out", str(out), "--smooth", "2"])
    printed = capsys.readouterr().out.splitlines()
    assert printed == [
        f"runA ({logs[0]}): 5 logged intervals up to epoch 2.5, 1 evaluations, 4 lines "
        f"superseded by a resumed run",
        f"runB ({logs[1]}): 2 logged intervals up to epoch 1, 1 evaluations, 2 lines "
        f"superseded by a resumed run",
        f"wrote {out}", f"wrote {tmp_path / 'figs' / 'curves.json'}"]
    width, height = png_size(out)
    assert 800 <= width <= 3000 and 400 <= height <= 2000

    saved = json.loads((tmp_path / "figs" / "curves.json").read_text())
    assert saved["runs"] == [{"label": "runA", "log": logs[0]}, {"label": "runB", "log": logs[1]}]
    assert saved["smooth"] == 2
    assert list(saved["loss"]) == ["loss", "action", "ego"]  # the weighted sum first
    a, b = saved["loss"]["loss"]["runA"], saved["loss"]["loss"]["runB"]
    assert a["progress"] == EPOCHS_A and a["value"] == [3.0, 2.5, 2.1, 1.9, 1.6]
    assert a["smoothed"] == pytest.approx([3.0, 2.75, 2.3, 2.0, 1.75])
    assert b == {"progress": [0.5, 1.0], "value": [4.0, 3.0], "smoothed": [4.0, 3.5]}
    assert saved["loss"]["action"]["runA"]["value"] == [2.0, 1.5, 1.3, 1.1, 0.9]
    assert saved["loss"]["action"]["runB"]["value"] == [4.0, 3.0]
    # run B has no ego term: no line of it in that panel; the NaN at 1.0 is a null (a gap)
    assert saved["loss"]["ego"] == {"runA": {"progress": EPOCHS_A, "value": [1.0, None, 0.8, 0.7, 0.6],
                                             "smoothed": pytest.approx([1.0, None, 0.8, 0.75, 0.65])}}
    assert saved["lr"] == {"runA": {"progress": EPOCHS_A, "value": [0.1, 0.1, 0.05, 0.05, 0.02]},
                           "runB": {"progress": [0.5, 1.0], "value": [0.1, 0.1]}}
    assert saved["eval"] == {"top1": {"runA": {"progress": [1.0], "value": [10.0]},
                                      "runB": {"progress": [1.0], "value": [6.0]}},
                             "top5": {"runA": {"progress": [1.0], "value": [30.0]}}}


def test_curves_labels_and_terms_choose_what_is_drawn(tmp_path, capsys):
    logs = [write_log(tmp_path / "x" / "log.jsonl", RUN_A), write_log(tmp_path / "y" / "log.jsonl", RUN_B)]
    out = tmp_path / "c.png"
    figures.main(["curves", *logs, "--out", str(out), "--labels", "Ego-Exo, Third-only",
                  "--terms", "ego,action"])
    saved = json.loads((tmp_path / "c.json").read_text())
    assert [run["label"] for run in saved["runs"]] == ["Ego-Exo", "Third-only"]
    assert list(saved["loss"]) == ["ego", "action"]
    assert saved["loss"]["action"]["Third-only"] == {"progress": [0.5, 1.0], "value": [4.0, 3.0]}
    assert "smoothed" not in saved["loss"]["action"]["Ego-Exo"]  # --smooth 1: raw only
    png_size(out)
    capsys.readouterr()
    for extra, message in [
            (["--terms", "action,hand_map"], r"no log has the loss term\(s\) 'hand_map'; they have "
                                             r"loss, action, ego"),
            (["--labels", "one"], r"--labels 'one': expected 2 non-empty comma-separated labels"),
            (["--labels", "a,a"], r"--labels repeat a"),
            (["--smooth", "0"], r"--smooth should be >= 1, got 0")]:
        with pytest.raises(SystemExit) as stop:
            figures.main(["curves", *logs, "--out", str(out), *extra])
        assert stop.value.code == 2
        assert re.search(message, capsys.readouterr().err), extra
    with pytest.raises(SystemExit):
        figures.main(["curves", logs[0], str(tmp_path / "z" / "log.jsonl"), "--out", str(out)])
    assert "z/log.jsonl: training log not found" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        figures.main(["curves", logs[0], "--out", str(tmp_path / "c.svg")])
    assert "expected a .png path" in capsys.readouterr().err
    only_started = write_log(tmp_path / "new" / "log.jsonl", [start_line()])
    with pytest.raises(SystemExit):
        figures.main(["curves", only_started, "--out", str(out)])
    assert 'new/log.jsonl: no "train" lines yet' in capsys.readouterr().err


GOOD_LINE = json.dumps(train_line(0.5, 0.1, loss=1.0))


@pytest.mark.parametrize("bad_line, message", [
    ('{"kind": "train", "progress": 0.5', r"not JSON \(Expecting ',' delimiter at column 34\)"),
    ('{"progress": 0.5, "lr": 0.1, "loss": {}}', r'expected an object with a "kind" string .*got no kind'),
    ('[1, 2]', r"expected a JSON object, got list"),
    ('{"kind": "train", "progress": 1.0, "lr": 0.1, "loss": {"loss": NaN}}',
     r"NaN is not JSON \(a non-finite value is written as null\)"),
    ('{"kind": "train", "progress": 1.0, "lr": 0.1, "loss": {"loss": 1e999}}',
     r"1e999 is out of the range of a float"),
    ('{"kind": "train", "progress": "1.0", "lr": 0.1, "loss": {}}',
     r'"progress" should be a finite number of epochs >= 0'),
    ('{"kind": "train", "progress": 1.0, "loss": {}}', r'a "train" line needs "lr"'),
    ('{"kind": "eval", "progress": 1.0, "metrics": {"top1": "61%"}}',
     r"\"metrics\" entry 'top1' should be a number or null, got '61%'"),
])
def test_a_bad_log_line_is_named_by_file_and_line(tmp_path, bad_line, message):
    path = tmp_path / "log.jsonl"
    path.write_text(GOOD_LINE + "\n" + bad_line + "\n" + GOOD_LINE + "\n")
    with pytest.raises(figures.FigureInputError, match=rf"log\.jsonl:2: {message}"):
        figures.read_training_log(path)


def test_a_line_cut_short_by_a_killed_run_is_skipped(tmp_path):
    path = tmp_path / "log.jsonl"
    cut = '{"kind": "train", "progr'
    path.write_text(GOOD_LINE + "\n" + cut + "\n" + '{"kind": "start", "config": {}}' + "\n" + GOOD_LINE + "\n")
    assert [r["kind"] for r in figures.read_training_log(path)] == ["train", "start", "train"]
    path.write_text(GOOD_LINE + "\n" + cut)  # the last line, as a log read while its run was killed
    assert len(figures.read_training_log(path)) == 1


def test_curves_exits_2_with_one_line_on_a_bad_log(tmp_path):
    path = tmp_path / "run" / "log.jsonl"
    path.parent.mkdir()
    path.write_text(GOOD_LINE + "\n\n" + "epoch 1 step 4/4 loss 2.3\n" + GOOD_LINE + "\n")
    repo = pathlib.Path(figures.__file__).resolve().parent
    done = subprocess.run([sys.executable, str(repo / "figures.py"), "curves", str(path),
                           "--out", str(tmp_path / "c.png")], cwd=repo, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [f"figures.py curves: {path}:3: not JSON (Expecting value at "
                                        f"column 1); expected one JSON object per line"]
    assert done.stdout == "" and not (tmp_path / "c.png").exists()
