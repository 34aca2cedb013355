"""Generated data: the official-format files parse, the ground truth matches what was painted,
the detection files carry the true boxes (plus droppable distractors), and the CLI and the
corruption helper work."""

import csv
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from data.annotations import (read_charades_ego, read_epic_segments, read_epic_tail_classes,
                              read_epic_unseen_participants, read_kinetics_csv, read_kinetics_list,
                              read_ssv2_labels, read_ssv2_split)
from data.synthetic import (MOTIONS, PALETTE, SKIN, corrupt_video, main, make_charades_ego, make_epic100,
                            make_kinetics, render_interaction)
from data.teacher_targets import clip_detections, detections_path, load_detections
from data.video import VideoError, decode_frames, probe_video, read_frame_folder


def colour_bbox(frame, colour):
    """x1, y1, x2, y2 (pixel edges) of the pixels painted exactly `colour`."""
    ys, xs = np.nonzero((frame == np.asarray(colour, np.uint8)).all(axis=-1))
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)


@pytest.mark.parametrize("motion", MOTIONS)
def test_rendered_boxes_match_the_painted_pixels(motion):
    rng = np.random.default_rng(1)
    frames, hands, objects = render_interaction(motion, 12, (96, 128), rng, colour=PALETTE[2])
    for t in (0, 5, 11):
        np.testing.assert_allclose(colour_bbox(frames[t], SKIN), hands[t], atol=1.0)
        # the hand covers part of the object's lower-left corner, never its top-right one
        obj = colour_bbox(frames[t], PALETTE[2])
        np.testing.assert_allclose(obj[[1, 2]], objects[t][[1, 2]], atol=1.0)


def test_motions_move_the_way_their_names_say():
    rng = np.random.default_rng(0)
    centre = lambda b: ((b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2)  # noqa: E731
    moves = {}
    for motion in MOTIONS:
        _, _, objects = render_interaction(motion, 10, (96, 128), rng)
        (x, y), area = centre(objects), (objects[:, 2] - objects[:, 0]) * (objects[:, 3] - objects[:, 1])
        moves[motion] = (x[-1] - x[0], y[-1] - y[0], area[-1] - area[0])
    assert moves["left_to_right"][0] > 40 and moves["right_to_left"][0] < -40
    assert moves["up_to_down"][1] > 30 and moves["down_to_up"][1] < -30
    assert moves["growing"][2] > 500 and moves["shrinking"][2] < -500
    assert moves["diagonal"][0] > 30 and moves["diagonal"][1] > 30
    assert abs(moves["circling"][0]) < 5 and abs(moves["circling"][1]) < 5  # a full turn


@pytest.fixture(scope="module")
def kinetics(tmp_path_factory):
    return make_kinetics(str(tmp_path_factory.mktemp("k") / "kinetics"), num_classes=4, videos_per_class=2,
                         val_videos_per_class=1, num_frames=20)


def test_kinetics_files_parse_to_the_ground_truth(kinetics):
    k = kinetics
    for split in ("train", "val"):
        listed = read_kinetics_list(k["lists"][split], k["video_root"], num_classes=4)
        from_csv = read_kinetics_csv(k["official_csv"][split], k["video_root"], k["class_names"])
        truth = {v: label for v, label in k["labels"].items() if k["split"][v] == split}
        assert {c.video_id: c.label for c in listed} == {c.video_id: c.label for c in from_csv} == truth
        assert all(os.path.isfile(c.path) for c in from_csv)
    assert k["class_names"] == sorted(k["class_names"]) and len(set(k["labels"].values())) == 4
    info = probe_video(next(iter(k["paths"].values())))
    assert (info.num_frames, info.height, info.width, info.fps) == (20, 96, 128, 24.0)


def test_kinetics_detection_files_hold_true_boxes_and_distractors(kinetics):
    video_id = next(iter(k for k in kinetics["labels"]))
    path = detections_path(kinetics["detections"], video_id)
    with open(path, "rb") as f:
        raw = pickle.load(f)
    assert raw["frame_size"] == (192, 256)  # written as if the detector saw 2x frames
    low = [d for entry in raw["frames"].values() for d in (entry["hand_dets"], entry["obj_dets"])
           if d is not None for d in d if d[4] < 0.5]
    assert len(low) == 7  # one distractor every third frame of 20
    dets = clip_detections(load_detections(path), np.arange(20), decoded_size=(96, 128))
    truth = kinetics["boxes"][video_id]
    np.testing.assert_allclose(dets["boxes"][dets["kinds"] == 0].numpy(), truth["hand"], atol=1e-4)
    np.testing.assert_allclose(dets["boxes"][dets["kinds"] == 1].numpy(), truth["object"], atol=1e-4)


def test_decoded_video_shows_the_true_boxes(kinetics):
    video_id = next(iter(kinetics["labels"]))
    frame = decode_frames(kinetics["paths"][video_id], [10])[0].astype(int)
    x1, y1, x2, y2 = np.round(kinetics["boxes"][video_id]["hand"][10]).astype(int)
    cy, cx = (y1 + y2) // 2, (x1 + x2) // 2
    assert np.abs(frame[cy, cx] - SKIN).max() < 20  # the hand's centre is skin-toned after H.264


def test_charades_ego_files_and_frame_folders(tmp_path):
    c = make_charades_ego(str(tmp_path / "c"), train_pairs=2, test_pairs=1, num_frames=24, as_frames=True)
    train = read_charades_ego(c["csv"]["train"])
    assert [r.video_id for r in train] == ["TR000", "TR000EGO", "TR001", "TR001EGO", "TR002EGO"]
    assert all(r.actions == c["actions"][r.video_id] and r.length == 1.0 for r in train)
    assert train[0].actions == train[1].actions and train[0].pair_id == train[1].pair_id
    assert {a.label for r in train for a in r.actions} <= set(c["class_ids"])
    folder = c["paths"]["TR000EGO"]
    assert sorted(os.listdir(folder))[:2] == ["TR000EGO-000001.jpg", "TR000EGO-000002.jpg"]
    assert len(os.listdir(folder)) == 24
    assert read_frame_folder([os.path.join(folder, "TR000EGO-000024.jpg")]).shape == (1, 96, 128, 3)


def test_generated_csv_headers_are_the_released_ones(tmp_path):
    # As released: CharadesEgo_v1_*.csv has Charades' `objects` column after `script` (13
    # columns); EPIC_100_test_timestamps.csv keeps `narration_timestamp`.
    c = make_charades_ego(str(tmp_path / "c"), train_pairs=1, test_pairs=1, num_frames=4, as_frames=True)
    with open(c["csv"]["train"], newline="") as f:
        assert next(csv.reader(f)) == ["id", "subject", "scene", "quality", "relevance", "verified", "script",
                                       "objects", "descriptions", "actions", "length", "egocentric",
                                       "charades_video"]
    e = make_epic100(str(tmp_path / "e"), size=(32, 32), segment_frames=2, gap_frames=1, segments_per_video=1)
    with open(e["csv"]["test"], newline="") as f:
        assert next(csv.reader(f)) == ["narration_id", "participant_id", "video_id", "narration_timestamp",
                                       "start_timestamp", "stop_timestamp", "start_frame", "stop_frame"]


def test_cli_writes_every_dataset(tmp_path, capsys):
    main(["--out", str(tmp_path), "--dataset", "all"])
    printed = capsys.readouterr().out
    assert all(name in printed for name in ("kinetics", "charades_ego", "epic100", "epic55", "ssv2"))
    epic = tmp_path / "epic100"
    segments = read_epic_segments(epic / "EPIC_100_train.csv", 97, 300)
    assert len(segments) == 20 and {s.participant_id for s in segments} == {"P01", "P02"}
    for s in segments[:3]:
        frames = epic / s.participant_id / "rgb_frames" / s.video_id
        assert (frames / f"frame_{s.stop_frame:010d}.jpg").is_file()
    assert read_epic_unseen_participants(epic / "EPIC_100_unseen_participant_ids_validation.csv") == {"P03"}
    assert read_epic_tail_classes(epic / "EPIC_100_tail_verbs.csv") == {3}
    assert read_epic_tail_classes(epic / "EPIC_100_tail_nouns.csv") == {4, 5, 6, 7}
    assert {s.participant_id for s in read_epic_segments(epic / "EPIC_100_validation.csv", 97, 300)} == {"P01", "P03"}
    assert all(s.verb_class == -1 for s in read_epic_segments(epic / "EPIC_100_test_timestamps.csv", 97, 300))
    assert len(read_epic_segments(tmp_path / "epic55" / "EPIC_train_action_labels.csv", 125, 352)) == 12
    assert len(read_epic_segments(tmp_path / "epic55" / "EPIC_test_s2_timestamps.csv", 125, 352)) == 2
    ssv2 = tmp_path / "ssv2"
    labels = read_ssv2_labels(ssv2 / "something-something-v2-labels.json")
    assert len(labels) == 4 and len(read_ssv2_split(ssv2 / "something-something-v2-train.json", labels)) == 16
    webm = next((ssv2 / "videos").iterdir())
    assert webm.suffix == ".webm" and probe_video(webm).num_frames == 32


@pytest.mark.parametrize("mode", ["truncate", "garbage", "empty"])
def test_corrupt_video_breaks_decoding(kinetics, tmp_path, mode):
    source = next(iter(kinetics["paths"].values()))
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(Path(source).read_bytes())
    corrupt_video(str(broken), mode)
    with pytest.raises(VideoError, match="broken.mp4"):
        decode_frames(broken, list(range(20)))


def test_corrupt_frame_folder(tmp_path):
    c = make_charades_ego(str(tmp_path / "c"), train_pairs=1, test_pairs=1, num_frames=4, as_frames=True)
    folder = c["paths"]["TE000"]
    corrupt_video(folder, "truncate", keep_fraction=0.1)
    with pytest.raises(VideoError, match="TE000-000001.jpg"):
        read_frame_folder([os.path.join(folder, "TE000-000001.jpg")])
