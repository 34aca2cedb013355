"""Generated data: the official-format files parse, the ground truth matches what was painted,
the detection files carry the true boxes (plus droppable distractors), and the CLI and the
corruption helper work."""

import csv
import hashlib
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from data import synthetic
from data.annotations import (CharadesAction, read_charades_ego, read_epic_segments, read_epic_tail_classes,
                              read_epic_unseen_participants, read_kinetics_csv, read_kinetics_list,
                              read_ssv2_labels, read_ssv2_split)
from data.synthetic import (MOTIONS, PALETTE, SKIN, corrupt_video, main, make_charades_ego, make_epic100,
                            make_kinetics, render_charades_interaction_view, render_charades_view,
                            render_interaction)
from data.teacher_targets import clip_detections, detections_path, load_detections
from data.video import VideoError, decode_frames, probe_video, read_frame_folder


def colour_bbox(frame, colour):
    """x1, y1, x2, y2 (pixel edges) of the pixels painted exactly `colour`."""
    ys, xs = np.nonzero((frame == np.asarray(colour, np.uint8)).all(axis=-1))
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)


@pytest.mark.parametrize("motion", MOTIONS)
def test_rendered_boxes_match_the_painted_pixels(motion):
    rng = np.random.default_rng(1)
    frames, hands, objects, _, _ = render_interaction(motion, 12, (96, 128), rng, colour=PALETTE[2])
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
        objects = render_interaction(motion, 10, (96, 128), rng).objects
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


# ----------------------------------------------------------------------------- the two options


def digest(*arrays):
    h = hashlib.sha256()
    for array in arrays:
        h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()[:16]


def detection_arrays(folder, video_ids):
    """Every video's detector frame size and per-frame hand/object rows, in a fixed order."""
    out = []
    for video_id in sorted(video_ids):
        d = load_detections(detections_path(folder, video_id))
        out += [np.array(d.frame_size)] + [rows for t in sorted(d.frames) for rows in d.frames[t]]
    return out


def overlaps(a, b):
    """Whether two x1, y1, x2, y2 boxes share some area."""
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


# Digests of what the generators produced before `distractors` and `interaction_classes`
# existed (numpy's PCG64 streams are fixed across versions): with the options off, the
# pixels, boxes and detection files must stay exactly these.
BEFORE_THE_OPTIONS = {"render_interaction": "76b0ea4c719559fb", "charades_third": "0c7493197a4cfec4",
                      "charades_first": "e0cf32b4cb6f2820", "kinetics": "a727c36060721da2",
                      "charades": "c73241d34f51989d"}


def small_kinetics(root, **options):
    return make_kinetics(str(root), num_classes=2, videos_per_class=1, val_videos_per_class=0, size=(24, 32),
                         num_frames=6, **options)


def kinetics_truth_digest(k):
    ids = sorted(k["labels"])
    return digest(*[k["boxes"][v][part] for v in ids for part in ("hand", "object")],
                  *detection_arrays(k["detections"], ids))


def test_with_the_options_off_the_output_is_as_before(tmp_path):
    video = render_interaction("circling", 6, (24, 32), np.random.default_rng(5), shake=1)
    assert digest(video.frames, video.hands, video.objects) == BEFORE_THE_OPTIONS["render_interaction"]
    assert video.distractors.shape == (6, 0, 4) and video.distractor_colours.shape == (0, 3)
    actions = (CharadesAction(0, 0.0, 0.1), CharadesAction(156, 0.05, 0.2))
    for first_person, key in ((False, "charades_third"), (True, "charades_first")):
        rng = np.random.default_rng(7)
        background = synthetic._background(rng, 24 + 24, 32 + 24)
        frames, boxes = render_charades_view(first_person, actions, 6, 24.0, (24, 32), rng,
                                             {0: PALETTE[0], 156: PALETTE[1]}, background)
        assert digest(frames, *[a for t in sorted(boxes) for a in boxes[t]]) == BEFORE_THE_OPTIONS[key]
    k = small_kinetics(tmp_path / "k")
    assert sorted(k["labels"]) == ["I04pgNkIdIJ_000186_000196", "ogRTCEBL0p6_000255_000265"]
    assert kinetics_truth_digest(k) == BEFORE_THE_OPTIONS["kinetics"]
    assert set(k["boxes"]["I04pgNkIdIJ_000186_000196"]) == {"hand", "object"}
    c = make_charades_ego(str(tmp_path / "c"), num_classes=3, train_pairs=1, test_pairs=1, size=(24, 32),
                          num_frames=6, unpaired_first_person=0, interaction_classes=False)
    assert c["actions"]["TR000"] == (CharadesAction(156, 0.01, 0.08), CharadesAction(78, 0.12, 0.25))
    assert digest(*detection_arrays(os.path.join(c["root"], "detections"), c["actions"])) == \
        BEFORE_THE_OPTIONS["charades"]
    assert "boxes" not in c and "object_boxes" not in c


def test_distractors_are_drawn_in_other_colours_and_leave_the_rest_as_it_was():
    plain = render_interaction("left_to_right", 16, (64, 80), np.random.default_rng(2), shake=1)
    video = render_interaction("left_to_right", 16, (64, 80), np.random.default_rng(2), shake=1, distractors=3,
                               distractor_rng=np.random.default_rng(11))
    np.testing.assert_array_equal(video.hands, plain.hands)
    np.testing.assert_array_equal(video.objects, plain.objects)
    object_colour = plain.frames[0][int(plain.objects[0, 1]) + 1, int(plain.objects[0, 2]) - 2]
    colours = video.distractor_colours.astype(np.uint8)
    assert video.distractors.shape == (16, 3, 4) and len({tuple(c) for c in colours}) == 3
    assert all(any((c == p).all() for p in PALETTE.astype(np.uint8)) for c in colours)
    assert not any((c == object_colour).all() for c in colours)
    for t in range(16):
        outside = np.ones((64, 80), bool)
        for k in range(3):
            painted = (video.frames[t] == colours[k]).all(axis=-1)
            box = video.distractors[t, k]
            assert painted.sum() > 0.5 * (box[2] - box[0]) * (box[3] - box[1])  # mostly off the pair's path
            np.testing.assert_allclose(colour_bbox(video.frames[t], colours[k]), box, atol=1.0)
            x1, y1, x2, y2 = np.round(box).astype(int)
            outside[y1:y2, x1:x2] = False
        # outside the squares every pixel is the one drawn without them, and the pair is drawn over them
        pair = (plain.frames[t] == SKIN.astype(np.uint8)).all(axis=-1) | (plain.frames[t] == object_colour).all(axis=-1)
        np.testing.assert_array_equal(video.frames[t][outside | pair], plain.frames[t][outside | pair])
    # static or slowly drifting: at most 0.08 * H per axis over the clip
    assert np.abs(video.distractors[-1] - video.distractors[0]).max() <= 0.08 * 64 + 1e-3
    with pytest.raises(ValueError, match="distractor_rng"):
        render_interaction("left_to_right", 4, (64, 80), np.random.default_rng(0), distractors=1)
    with pytest.raises(ValueError, match="distractors should be 0..7"):
        make_kinetics("unused", distractors=8)


def test_kinetics_distractors_stay_out_of_the_detections(tmp_path):
    k = small_kinetics(tmp_path / "k", distractors=2)
    # the pair, its detections and the detection files are exactly those without distractors
    assert kinetics_truth_digest(k) == BEFORE_THE_OPTIONS["kinetics"]
    for video_id in k["labels"]:
        truth = k["boxes"][video_id]
        assert truth["distractors"].shape == (6, 2, 4) and truth["distractor_colours"].shape == (2, 3)
        dets = clip_detections(load_detections(detections_path(k["detections"], video_id)), np.arange(6),
                               decoded_size=(24, 32))
        kept = dets["boxes"].numpy()
        assert len(kept) == 12  # one hand and one object per frame, the squares nowhere
        for box in truth["distractors"].reshape(-1, 4):
            assert not (np.abs(kept - box).max(axis=1) < 1e-3).any()


INTERACTION_ACTIONS = (CharadesAction(0, 0.0, 0.5), CharadesAction(52, 0.25, 1.0))
# at 24 fps, frames t = 0..31 are at t / 24 s: class 0 is active on frames 0-12, class 52 on 6-24
INTERACTION_ACTIVE = {t: {0} for t in range(0, 6)} | {t: {0, 52} for t in range(6, 13)} | \
    {t: {52} for t in range(13, 25)} | {t: set() for t in range(25, 32)}


@pytest.mark.parametrize("first_person", [True, False])
@pytest.mark.parametrize("num_classes", [4, 8])
def test_interaction_classes_show_every_colour_and_touch_the_active_ones(first_person, num_classes):
    class_ids = [0, 52, 104, 156, 10, 20, 30, 40][:num_classes]
    colours = {c: PALETTE[i] for i, c in enumerate(class_ids)}
    rng = np.random.default_rng(3)
    background = synthetic._background(rng, 64 + 24, 80 + 24)
    frames, boxes, object_boxes = render_charades_interaction_view(first_person, INTERACTION_ACTIONS, 32, 24.0,
                                                                   (64, 80), rng, colours, background)
    assert frames.shape == (32, 64, 80, 3) and sorted(object_boxes) == sorted(class_ids)
    for t in range(32):
        hands, touched = boxes[t]
        assert hands.shape == (2, 4)
        for label in class_ids:
            box = object_boxes[label][t]
            painted = (frames[t] == colours[label].astype(np.uint8)).all(axis=-1)
            # every colour is on screen in every frame, inside its object's box, at least a fifth visible
            assert painted.sum() >= 0.2 * (box[2] - box[0]) * (box[3] - box[1]) > 0
            inside = colour_bbox(frames[t], colours[label])
            assert (inside[:2] >= box[:2] - 1).all() and (inside[2:] <= box[2:] + 1).all()
            touching = [overlaps(box, hand) for hand in hands]
            assert any(touching) == (label in INTERACTION_ACTIVE[t]), (t, label)
            if len(INTERACTION_ACTIVE[t]) == 2 and label in INTERACTION_ACTIVE[t]:
                assert sum(touching) == 1  # one hand each
        expected = [object_boxes[a.label][t] for a in INTERACTION_ACTIONS if a.label in INTERACTION_ACTIVE[t]]
        np.testing.assert_array_equal(touched, np.array(expected, np.float32).reshape(-1, 4))
    # the order of the row is shuffled per recording
    lefts = [tuple(sorted(class_ids, key=lambda c: object_boxes[c][0, 0]))]
    for seed in (4, 5, 6):
        rng = np.random.default_rng(seed)
        _, _, other = render_charades_interaction_view(first_person, (), 2, 24.0, (64, 80), rng, colours,
                                                       synthetic._background(rng, 88, 104))
        lefts.append(tuple(sorted(class_ids, key=lambda c: other[c][0, 0])))
    assert len(set(lefts)) > 1


def test_interaction_classes_refuse_what_two_hands_cannot_do():
    colours = {0: PALETTE[0], 52: PALETTE[1], 104: PALETTE[2]}
    three = INTERACTION_ACTIONS + (CharadesAction(104, 0.3, 0.4),)
    background = np.zeros((88, 104, 3), np.float32)
    with pytest.raises(ValueError, match="frame 8 has 3 actions active"):
        render_charades_interaction_view(True, three, 32, 24.0, (64, 80), np.random.default_rng(0), colours,
                                         background)
    with pytest.raises(ValueError, match=r"action classes \[52\] have no colour"):
        render_charades_interaction_view(False, INTERACTION_ACTIONS, 32, 24.0, (64, 80), np.random.default_rng(0),
                                         {0: PALETTE[0]}, background)


def test_charades_interaction_classes_detections_are_the_hands_and_the_touched_objects(tmp_path):
    c = make_charades_ego(str(tmp_path / "c"), train_pairs=2, test_pairs=1, size=(64, 80), num_frames=24,
                          interaction_classes=True)
    rows = read_charades_ego(c["csv"]["train"]) + read_charades_ego(c["csv"]["test"])
    assert sorted(r.video_id for r in rows) == sorted(c["paths"]) == sorted(c["boxes"]) == sorted(c["object_boxes"])
    probe = probe_video(c["paths"]["TR000EGO"])
    assert (probe.num_frames, probe.height, probe.width) == (24, 64, 80)
    for r in rows:
        assert r.actions == c["actions"][r.video_id]  # the CSV is the truth the renderer used
        detections = load_detections(detections_path(os.path.join(c["root"], "detections"), r.video_id))
        assert detections.frame_size == (64, 80) and sorted(detections.frames) == list(range(24))
        for t in range(24):
            active = [a.label for a in r.actions if a.overlaps(t / 24, t / 24)]
            hands, touched = c["boxes"][r.video_id][t]
            hand_dets, obj_dets = detections.frames[t]
            np.testing.assert_array_equal(hand_dets[:, :4], hands)
            np.testing.assert_array_equal(obj_dets[:, :4], touched)
            np.testing.assert_array_equal(touched, np.array([c["object_boxes"][r.video_id][label][t]
                                                             for label in active], np.float32).reshape(-1, 4))
            assert (hand_dets[:, 4] >= 0.6).all() and len(hand_dets) == 2
            for label, boxes in c["object_boxes"][r.video_id].items():
                assert any(overlaps(boxes[t], hand) for hand in hands) == (label in active)


def test_cli_passes_the_options_on(tmp_path, monkeypatch):
    calls = {}

    def recorder(name):
        def make(root, **kwargs):
            calls[name] = kwargs
            return {"paths": {}, "root": root}
        return make

    monkeypatch.setattr(synthetic, "MAKERS", {n: recorder(n) for n in ("kinetics", "charades_ego")})
    main(["--out", str(tmp_path), "--kinetics-distractors", "3", "--charades-interaction-classes"])
    assert calls == {"kinetics": {"seed": 0, "distractors": 3},
                     "charades_ego": {"seed": 0, "as_frames": False, "interaction_classes": True}}
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path), "--kinetics-distractors", "8"])
