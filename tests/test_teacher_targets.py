"""Teacher-score, teacher-embedding and detection files: format round trips, validation errors,
the row rules (strict reads refuse a bad row; strict=False reads fail only its lookup, naming
file, row and video), and the clip detections mapping on hand-worked cases."""

import math
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from data.teacher_targets import (TeacherTargetError, average_clip_log_probs, clip_detections,
                                  load_detections, load_teacher_embeddings, load_teacher_scores,
                                  save_detections, save_teacher_embeddings, save_teacher_scores)


def test_average_clip_log_probs_hand_worked():
    # clip softmaxes [1/4, 3/4] and [3/4, 1/4] average to [1/2, 1/2]; a single clip of
    # logits [0, log 3] gives log([1/4, 3/4])
    logits = torch.tensor([[[0.0, math.log(3)], [math.log(3), 0.0]], [[0.0, math.log(3)], [0.0, math.log(3)]]])
    out = average_clip_log_probs(logits)
    expected = torch.log(torch.tensor([[0.5, 0.5], [0.25, 0.75]]))
    torch.testing.assert_close(out, expected)


def ego_scores(n):
    return average_clip_log_probs(torch.randn(n, 2, 2, generator=torch.Generator().manual_seed(0)))


def test_scores_round_trip_with_metadata(tmp_path):
    scores = ego_scores(3)
    save_teacher_scores(tmp_path / "ego.pt", "ego", ["a", "b", "c"], scores, model="slow_r50", clips=2)
    loaded = load_teacher_scores(tmp_path / "ego.pt", teacher="ego")
    assert loaded.video_ids == ["a", "b", "c"] and loaded.metadata == {"model": "slow_r50", "clips": 2}
    torch.testing.assert_close(loaded["b"], scores[1])
    assert loaded.missing(["a", "x", "y"]) == ["x", "y"]
    with pytest.raises(TeacherTargetError, match="holds 'ego' teacher scores, expected 'object'"):
        load_teacher_scores(tmp_path / "ego.pt", teacher="object")


@pytest.mark.parametrize("key, value", [("clips", np.int64(2)), ("source", Path("k400.csv"))])
def test_metadata_the_reader_cannot_load_is_refused_at_write_time(tmp_path, key, value):
    # the reader loads with weights_only=True: a numpy scalar or a Path would make the file unreadable
    with pytest.raises(TeacherTargetError, match=rf"ego\.pt: metadata {key!r} .*{type(value).__name__}"):
        save_teacher_scores(tmp_path / "ego.pt", "ego", ["a", "b"], ego_scores(2), **{key: value})
    assert not (tmp_path / "ego.pt").exists()


def test_object_scores_need_1000_classes(tmp_path):
    good = torch.log_softmax(torch.randn(2, 1000), dim=1)
    save_teacher_scores(tmp_path / "obj.pt", "object", ["a", "b"], good)
    assert load_teacher_scores(tmp_path / "obj.pt").scores.shape == (2, 1000)
    with pytest.raises(TeacherTargetError, match=r"scores should be a float tensor \[N, 1000\] \(N >= 1 videos\) for "
                                                 r"the 'object' teacher, got torch\.float32 \(2, 10\)"):
        save_teacher_scores(tmp_path / "bad.pt", "object", ["a", "b"], torch.log_softmax(torch.randn(2, 10), 1))


def write_raw(path, **blob):
    torch.save(blob, path)
    return path


LOG_HALF = math.log(0.5)


@pytest.mark.parametrize("change, message", [
    (dict(scores=torch.tensor([[0.5, 0.5], [0.2, 0.8]])), "not log-probabilities"),
    (dict(scores=torch.tensor([[float("nan"), 0.0], [-0.7, -0.7]])), "NaN or inf"),
    # a float64 row float32 cannot hold: -1e300 becomes -inf, which would make the KD loss NaN
    (dict(scores=torch.tensor([[0.0, -1e300], [LOG_HALF, LOG_HALF]], dtype=torch.float64)),
     r"1 of 2 row\(s\) are unusable as targets, e\.g\. row 0 \(video 'a'\) contains NaN or inf \(as float32\)"),
    (dict(scores=torch.tensor([[0, -1000], [0, -1000]])), r"scores should be a float tensor .*got torch\.int64"),
    (dict(scores=torch.zeros(0, 2), video_ids=[]), r"N >= 1 videos.*got torch\.float32 \(0, 2\)"),
    (dict(video_ids=["a"]), "one per score row"),
    (dict(video_ids=["a", "a"]), "duplicate video ids"),
    (dict(video_ids=["a", ["b"]]), r"not non-empty strings: entry 1 = \['b'\]"),  # unhashable: no TypeError
    (dict(kind="probs"), "kind should be 'log_probs'"),
    (dict(teacher="hand"), "teacher should be one of"),
])
def test_bad_score_files_are_rejected(tmp_path, change, message):
    blob = dict(teacher="ego", kind="log_probs", video_ids=["a", "b"], scores=ego_scores(2))
    blob.update(change)
    path = write_raw(tmp_path / "s.pt", **blob)
    with pytest.raises(TeacherTargetError, match=message):
        load_teacher_scores(path)


def test_lenient_scores_fail_only_the_bad_rows_lookups(tmp_path):
    # rows: a good log-distribution, NaN, probabilities instead of log-probabilities, good
    good = [LOG_HALF, LOG_HALF]
    rows = torch.tensor([good, [float("nan"), 0.0], [0.25, 0.75], [math.log(0.25), math.log(0.75)]])
    path = write_raw(tmp_path / "s.pt", teacher="ego", kind="log_probs", video_ids=["a", "b", "c", "d"], scores=rows)
    with pytest.raises(TeacherTargetError, match=r"s\.pt: 2 of 4 row\(s\) are unusable as targets, e\.g\. row 1 "
                                                 r"\(video 'b'\) contains NaN or inf"):
        load_teacher_scores(path)  # strict by default
    scores = load_teacher_scores(path, teacher="ego", strict=False)
    assert scores["a"].tolist() == rows[0].tolist() and scores["d"].tolist() == rows[3].tolist()
    assert sorted(scores.bad_rows) == [1, 2] and list(scores.unusable(["a", "b", "c", "x"])) == ["b", "c"]
    with pytest.raises(TeacherTargetError, match=r"s\.pt: row 1 \(video 'b'\) contains NaN or inf \(as float32\)"):
        scores["b"]
    # logsumexp(0.25, 0.75) = log(e^0.25 + e^0.75) = log(1.2840 + 2.1170) = log(3.4010) = 1.224
    with pytest.raises(TeacherTargetError, match=r"s\.pt: row 2 \(video 'c'\) is not log-probabilities \(logsumexp "
                                                 r"= 1\.224, not 0"):
        scores["c"]
    assert scores.unusable(["b"]) == {"b": f"{path}: row 1 (video 'b') contains NaN or inf (as float32)"}
    # a file with no usable row is unusable as a whole (probabilities stored instead of their logs)
    probs = write_raw(tmp_path / "p.pt", teacher="ego", kind="log_probs", video_ids=["a", "b"],
                      scores=torch.tensor([[0.5, 0.5], [0.25, 0.75]]))
    with pytest.raises(TeacherTargetError, match=r"p\.pt: 2 of 2 row\(s\) are unusable as targets"):
        load_teacher_scores(probs, strict=False)


def test_lenient_embeddings_fail_only_the_bad_rows_lookups(tmp_path):
    rows = torch.tensor([[1.0, 2.0], [1e300, 0.0], [3.0, 4.0]], dtype=torch.float64)
    path = write_raw(tmp_path / "e.pt", teacher="ego", kind="embeddings", video_ids=["a", "b", "c"], embeddings=rows)
    table = load_teacher_embeddings(path, strict=False)
    assert table["c"].tolist() == [3.0, 4.0] and table["c"].dtype == torch.float32
    assert table.unusable(["a", "b", "c"]) == {"b": f"{path}: row 1 (video 'b') contains NaN or inf (as float32)"}
    with pytest.raises(TeacherTargetError, match=r"e\.pt: row 1 \(video 'b'\) contains NaN or inf"):
        table["b"]


def test_missing_score_file(tmp_path):
    with pytest.raises(TeacherTargetError, match=r"nope\.pt: teacher-score file not found"):
        load_teacher_scores(tmp_path / "nope.pt")


def test_embeddings_round_trip_with_metadata(tmp_path):
    rows = torch.randn(3, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    save_teacher_embeddings(tmp_path / "emb.pt", "interaction", ["a", "b", "c"], rows, model="slow_r50", layer="pool5")
    loaded = load_teacher_embeddings(tmp_path / "emb.pt", teacher="interaction", dim=5)
    assert loaded.teacher == "interaction" and loaded.video_ids == ["a", "b", "c"] and loaded.dim == 5
    assert loaded.metadata == {"model": "slow_r50", "layer": "pool5"}
    assert loaded.embeddings.dtype == torch.float32 and loaded["c"].tolist() == rows[2].float().tolist()
    assert loaded.missing(["b", "x"]) == ["x"]
    raw = torch.load(tmp_path / "emb.pt", weights_only=True)  # the stored file is plain tensors and lists
    assert raw["kind"] == "embeddings" and raw["embeddings"].dtype == torch.float32
    with pytest.raises(TeacherTargetError, match=r"emb\.pt: holds 'interaction' teacher embeddings, expected 'ego'"):
        load_teacher_embeddings(tmp_path / "emb.pt", teacher="ego")
    with pytest.raises(TeacherTargetError, match=r"emb\.pt: embeddings are 5-dimensional, expected 8"):
        load_teacher_embeddings(tmp_path / "emb.pt", dim=8)


@pytest.mark.parametrize("change, message", [
    (dict(embeddings=torch.tensor([[1.0, float("inf")], [0.0, 0.0]])),
     r"1 of 2 row\(s\) are unusable as targets, e\.g\. row 0 \(video 'a'\) contains NaN or inf"),
    (dict(embeddings=torch.tensor([[1e300, 0.0], [0.0, 0.0]], dtype=torch.float64)),
     r"row 0 \(video 'a'\) contains NaN or inf \(as float32\)"),
    (dict(embeddings=torch.zeros(2)), r"float tensor \[N, D\].*got torch\.float32 \(2,\)"),
    (dict(embeddings=torch.zeros(2, 0)), r"D >= 1, got torch\.float32 \(2, 0\)"),
    (dict(embeddings=torch.zeros(2, 3, dtype=torch.int64)), r"float tensor .*torch\.int64"),
    (dict(embeddings=[[0.0, 1.0], [1.0, 0.0]]), r"float tensor .*got list"),
    (dict(video_ids=["a"]), "one per embedding row"),
    (dict(video_ids=["a", "a"]), r"duplicate video ids \['a'\]"),
    (dict(video_ids=["a", ""]), r"not non-empty strings: entry 1 = ''"),
    (dict(video_ids=["a", 7]), r"not non-empty strings: entry 1 = 7"),
    (dict(kind="log_probs"), "kind should be 'embeddings'"),
    (dict(teacher=""), "teacher should be a non-empty name"),
])
def test_bad_embedding_files_are_rejected(tmp_path, change, message):
    blob = dict(teacher="ego", kind="embeddings", video_ids=["a", "b"], embeddings=torch.zeros(2, 3))
    blob.update(change)
    path = write_raw(tmp_path / "e.pt", **blob)
    with pytest.raises(TeacherTargetError, match=r"e\.pt: .*" + message):  # names the file
        load_teacher_embeddings(path)
    if "kind" not in change:  # the writer refuses what the reader would
        with pytest.raises(TeacherTargetError, match=message):
            save_teacher_embeddings(tmp_path / "w.pt", blob["teacher"], blob["video_ids"], blob["embeddings"])
        assert not (tmp_path / "w.pt").exists()


def test_embedding_files_that_are_not_embedding_dicts(tmp_path):
    with pytest.raises(TeacherTargetError, match=r"nope\.pt: teacher-embedding file not found"):
        load_teacher_embeddings(tmp_path / "nope.pt")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(TeacherTargetError, match=r"junk\.pt: not a readable torch\.save file"):
        load_teacher_embeddings(tmp_path / "junk.pt")
    scores = write_raw(tmp_path / "scores.pt", teacher="ego", kind="log_probs", video_ids=["a"],
                       scores=torch.log(torch.tensor([[0.5, 0.5]])))
    with pytest.raises(TeacherTargetError,
                       match=r"scores\.pt: expected a dict with keys teacher, kind, video_ids, embeddings"):
        load_teacher_embeddings(scores)
    with pytest.raises(TeacherTargetError, match=r"e\.pt: metadata 'clips' is a int64"):
        save_teacher_embeddings(tmp_path / "e.pt", "ego", ["a"], torch.zeros(1, 2), clips=np.int64(2))


def det_row(x1, y1, x2, y2, score):
    return [x1, y1, x2, y2, score, 3, 0.1, 0.01, -0.02, 1]


def test_detections_round_trip_and_clip_mapping(tmp_path):
    # the detector ran on 480x640 frames; we decode at 240x320, so every coordinate halves
    frames = {
        7: {"hand_dets": np.array([det_row(100, 50, 300, 250, 0.9), det_row(0, 0, 10, 10, 0.3)]),
            "obj_dets": None},
        9: {"hand_dets": None, "obj_dets": np.array([det_row(20, 40, 60, 80, 0.5)])},
        11: {"hand_dets": np.array([det_row(1, 1, 2, 2, 0.99)]), "obj_dets": None},
    }
    save_detections(tmp_path / "vid.pkl", (480, 640), frames)
    dets = load_detections(tmp_path / "vid.pkl")
    assert dets.frame_size == (480, 640) and sorted(dets.frames) == [7, 9, 11]

    out = clip_detections(dets, [5, 7, 7, 9], decoded_size=(240, 320))
    assert out["frame"].tolist() == [1, 2, 3]  # frame 7 sampled twice, low-score hand dropped
    torch.testing.assert_close(out["boxes"], torch.tensor([[50.0, 25, 150, 125], [50, 25, 150, 125],
                                                           [10, 20, 30, 40]]))
    torch.testing.assert_close(out["scores"], torch.tensor([0.9, 0.9, 0.5]))
    assert out["kinds"].tolist() == [0, 0, 1]
    assert out["boxes"].dtype == torch.float32 and out["frame"].dtype == torch.int64

    strict = clip_detections(dets, np.array([9, 7]), decoded_size=(480, 640), score_threshold=0.6)
    assert strict["frame"].tolist() == [1] and strict["boxes"].tolist() == [[100, 50, 300, 250]]
    empty = clip_detections(dets, [0, 1], decoded_size=(240, 320))
    assert empty["boxes"].shape == (0, 4) and empty["frame"].shape == (0,)


def test_detection_file_validation_names_file_and_frame(tmp_path):
    with pytest.raises(TeacherTargetError, match=r"bad\.pkl: frame 4 obj_dets should be K x 10"):
        save_detections(tmp_path / "bad.pkl", (10, 10), {4: {"hand_dets": None, "obj_dets": np.zeros((2, 5))}})
    (tmp_path / "raw.pkl").write_bytes(pickle.dumps(
        {"frame_size": (10, 10), "frames": {3: {"hand_dets": np.zeros(10), "obj_dets": None}}}))
    with pytest.raises(TeacherTargetError, match=r"raw\.pkl: frame 3 hand_dets should be K x 10"):
        load_detections(tmp_path / "raw.pkl")
    (tmp_path / "keys.pkl").write_bytes(pickle.dumps({"frame_size": (10, 10), "frames": {2: {"hand_dets": None}}}))
    with pytest.raises(TeacherTargetError, match=r"keys\.pkl: frame 2 should be a dict with 'hand_dets'"):
        load_detections(tmp_path / "keys.pkl")
    (tmp_path / "size.pkl").write_bytes(pickle.dumps({"frame_size": (0, 10), "frames": {}}))
    with pytest.raises(TeacherTargetError, match=r"size\.pkl: frame_size should be positive"):
        load_detections(tmp_path / "size.pkl")
    (tmp_path / "junk.pkl").write_bytes(b"not a pickle")
    with pytest.raises(TeacherTargetError, match=r"junk\.pkl: detection file is not a readable pickle"):
        load_detections(tmp_path / "junk.pkl")
