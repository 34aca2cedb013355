"""Datasets on generated data in each official format: labels against the generator's ground
truth, each data set's sampling rule with hand-worked frame indices, Charades clip targets and
no-pair selection, EPIC fractions, detections on clip frames, teacher-score and teacher-embedding
joins, bad-input handling, frame folders left as JPEG bytes for decoding on the training
device, and teacher entries unusable for one video (score, embedding and detection rows, clips
past the detections' frames): that video's samples fail, named once each, and the replaced
batch goes through collate and the fused Interaction-Map op."""

import json
import os
import re
import shutil

import numpy as np
import pytest
import torch

from data.annotations import AnnotationError, CharadesAction
from data.collate import collate_clips
from data.datasets import (CharadesEgoDataset, ClipDataset, EpicKitchensDataset, KineticsDataset, SSv2Dataset,
                           VideoItem, charades_multi_hot, fraction_of_videos, select_one_view_per_pair)
from data.detection_store import DetectionStoreError, build_detection_store
from data.synthetic import (corrupt_video, make_charades_ego, make_epic55, make_epic100, make_kinetics,
                            make_ssv2)
from data.teacher_targets import (TeacherTargetError, average_clip_log_probs, detections_path, load_detections,
                                  save_detections, save_teacher_embeddings, save_teacher_scores)
from data.transforms import ClipSampling

# small clips: 8 frames at stride 2 (a 16-frame Kinetics window, a 15-frame Charades/EPIC clip),
# 2 test windows x 3 crops; the temporal rule and flips are left to each data set
SAMPLING = ClipSampling(clip_len=8, stride=2, min_size=64, max_size=80, crop_size=56, test_size=64,
                        num_clips=2, num_crops=3)


def strided(start, num_frames, clip_len=8, stride=2):
    """The "frames" rule's indices: start + stride·k clamped to [0, num_frames - 1]."""
    return [min(max(start + stride * k, 0), num_frames - 1) for k in range(clip_len)]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("generated")
    return {
        "kinetics": make_kinetics(str(root / "kinetics"), num_classes=3, videos_per_class=2, val_videos_per_class=1),
        "charades": make_charades_ego(str(root / "charades"), train_pairs=4, test_pairs=2),
        "charades_frames": make_charades_ego(str(root / "charades_frames"), train_pairs=2, test_pairs=1,
                                             as_frames=True, seed=1),
        "epic100": make_epic100(str(root / "epic100")),
        "epic100_videos": make_epic100(str(root / "epic100_videos"), as_videos=True, seed=2),
        "epic55": make_epic55(str(root / "epic55")),
        "ssv2": make_ssv2(str(root / "ssv2"), videos_per_class=1, val_videos_per_class=1, test_videos=1),
    }


def kinetics(data, training, **kw):
    k = data["kinetics"]
    return KineticsDataset(training, list_path=k["lists"]["train" if training else "val"],
                           video_root=k["video_root"], num_classes=3, sampling=SAMPLING, **kw)


# ----------------------------------------------------------------------------- Kinetics


def test_kinetics_both_list_formats_give_the_generator_labels(data):
    k = data["kinetics"]
    from_list = kinetics(data, False)
    from_csv = KineticsDataset(False, csv_path=k["official_csv"]["val"], video_root=k["video_root"],
                               class_names=k["classnames"], sampling=SAMPLING)
    truth = {v: label for v, label in k["labels"].items() if k["split"][v] == "val"}
    for ds in (from_list, from_csv):
        assert {v.video_id: v.label for v in ds.videos} == truth
        assert len(ds) == len(truth) * 6
    assert [v.source for v in from_list.videos] == [v.source for v in from_csv.videos]


def test_kinetics_test_views_hand_worked_indices(data):
    ds = kinetics(data, False)
    # 48-frame video, window 16: delta 32; clip 0 starts at 0, clip 1 at 32 * 1/2 = 16;
    # linspace(start, start + 15, 8) floored
    expected = {0: [0, 2, 4, 6, 8, 10, 12, 15], 1: [16, 18, 20, 22, 24, 26, 28, 31]}
    for view in range(6):
        sample = ds[6 + view]  # second video
        assert sample["index"] == 6 + view and sample["view"] == view
        assert sample["video_id"] == ds.videos[1].video_id
        assert sample["frame_indices"].tolist() == expected[view // 3]
        assert sample["label"].item() == ds.videos[1].label and sample["label"].dtype == torch.int64
        # 96x128 -> 64x85: left, centre ceil(21 / 2), right crop offsets
        assert sample["transform"].crop_offset == ([0, 11, 21][view % 3], 0)


def test_kinetics_training_sample_fields(data):
    torch.manual_seed(0)
    ds = kinetics(data, True)
    assert len(ds) == 6
    sample = ds[2]
    idx = sample["frame_indices"]
    assert sample["failed"] == [] and sample["view"] == 0 and sample["index"] == 2
    assert idx.shape == (8,) and 0 <= idx.min() and idx.max() <= 47
    assert set(np.diff(idx.numpy()).tolist()) <= {2, 3}
    frames, box = sample["frames"], sample["box"]
    assert frames.dtype == torch.uint8 and frames.shape[0] == 8 and frames.shape[-1] == 3
    assert 0 <= box[0] and box[0] + box[2] <= frames.shape[2] + 1e-4
    batch = collate_clips([ds[i] for i in range(3)])
    assert batch["frames"].shape[:2] == (3, 8) and batch["label"].shape == (3,)


def test_kinetics_detections_land_on_the_right_clip_frames(data):
    k = data["kinetics"]
    ds = kinetics(data, False, detections=k["detection_store"])
    sample = ds[3]
    det, truth = sample["detections"], k["boxes"][sample["video_id"]]
    assert (det["scores"] >= 0.5).all()  # the generator's < 0.45 distractors are dropped
    # one hand and one object per sampled frame, at the right t, rescaled from 2x back to 1x
    assert det["frame"].tolist() == [t for t in range(8) for _ in range(2)]
    for row, (t, kind) in enumerate(zip(det["frame"].tolist(), det["kinds"].tolist())):
        frame = sample["frame_indices"][t].item()
        expected = truth["hand" if kind == 0 else "object"][frame]
        torch.testing.assert_close(det["boxes"][row], torch.from_numpy(expected), atol=1e-3, rtol=0)


def test_teacher_score_join(data, tmp_path):
    ds = kinetics(data, True)
    ids = [v.video_id for v in ds.videos]
    scores = average_clip_log_probs(torch.randn(len(ids), 2, 2))
    save_teacher_scores(tmp_path / "ego.pt", "ego", ids[1:], scores[1:])
    with pytest.raises(TeacherTargetError) as e:
        kinetics(data, True, ego_scores=str(tmp_path / "ego.pt"))
    assert ids[0] in str(e.value) and "1 missing" in str(e.value)
    joined = kinetics(data, True, ego_scores=str(tmp_path / "ego.pt"), skip_videos_without_targets=True)
    assert [v.video_id for v in joined.videos] == ids[1:]
    torch.manual_seed(0)
    sample = joined[2]
    torch.testing.assert_close(sample["ego_score"], scores[ids.index(sample["video_id"])])
    assert collate_clips([joined[0], joined[1]])["ego_score"].shape == (2, 2)


def test_teacher_embeddings_are_concatenated_in_order(data, tmp_path):
    ds = kinetics(data, False)
    ids = [v.video_id for v in ds.videos]
    ego = torch.arange(len(ids) * 2, dtype=torch.float32).view(-1, 2)
    obj = -torch.arange(len(ids) * 3, dtype=torch.float32).view(-1, 3)
    save_teacher_embeddings(tmp_path / "ego.pt", "ego", ids, ego)
    save_teacher_embeddings(tmp_path / "obj.pt", "object", ids[::-1], obj.flip(0))  # rows in another order
    joined = kinetics(data, False, embeddings=[str(tmp_path / "ego.pt"), str(tmp_path / "obj.pt")])
    samples = [joined[i] for i in (0, 7, 13)]
    for sample in samples:
        row = ids.index(sample["video_id"])
        assert sample["extra_features"].dtype == torch.float32
        assert sample["extra_features"].tolist() == ego[row].tolist() + obj[row].tolist()
    batch = collate_clips(samples)
    assert batch["extra_features"].shape == (3, 5)
    assert batch["extra_features"][1].tolist() == ego[1].tolist() + obj[1].tolist()  # index 7: video 1
    swapped = kinetics(data, False, embeddings=[str(tmp_path / "obj.pt"), str(tmp_path / "ego.pt")])
    assert swapped[0]["extra_features"].tolist() == obj[0].tolist() + ego[0].tolist()
    assert "extra_features" not in ds[0]


def test_videos_missing_from_an_embedding_file_are_listed(data, tmp_path):
    ds = kinetics(data, True)
    ids = [v.video_id for v in ds.videos]
    save_teacher_embeddings(tmp_path / "full.pt", "ego", ids, torch.ones(len(ids), 4))
    save_teacher_embeddings(tmp_path / "part.pt", "interaction", ids[2:], torch.ones(len(ids) - 2, 4))
    files = [str(tmp_path / "full.pt"), str(tmp_path / "part.pt")]
    with pytest.raises(TeacherTargetError) as e:
        kinetics(data, True, embeddings=files)
    message = str(e.value)
    assert "part.pt (interaction embeddings): 2 missing" in message and "full.pt" not in message
    assert ids[0] in message and ids[1] in message
    kept = kinetics(data, True, embeddings=files, skip_videos_without_targets=True)
    assert [v.video_id for v in kept.videos] == ids[2:]
    assert kept[0]["extra_features"].shape == (8,)
    with pytest.raises(ValueError, match="list of one or more teacher-embedding files"):
        kinetics(data, True, embeddings=files[0])  # one path, not a list of them


def test_videos_missing_from_the_detection_store_are_listed(data, tmp_path):
    k = data["kinetics"]
    ids = [v.video_id for v in kinetics(data, True).videos]
    store = build_detection_store({v: detections_path(k["detections"], v) for v in ids[2:]}, str(tmp_path / "store"))
    with pytest.raises(TeacherTargetError) as e:
        kinetics(data, True, detections=store["store"])
    assert "store (detection store, by recording): 2 missing" in str(e.value)
    assert ids[0] in str(e.value) and ids[1] in str(e.value) and ids[2] not in str(e.value)
    kept = kinetics(data, True, detections=store["store"], skip_videos_without_targets=True)
    assert [v.video_id for v in kept.videos] == ids[2:] and len(kept[0]["detections"]["frame"]) > 0
    # up to 20 are named, with the count
    items = [VideoItem(video_id=f"v{i:02d}", source="unread.mp4", label=0) for i in range(25)]
    with pytest.raises(TeacherTargetError) as e:
        ClipDataset(items, True, detections=store["store"])
    message = str(e.value)
    assert "25 missing" in message and "'v19'" in message and "'v20'" not in message and "..." in message
    # the per-video pickle folder is not a store, and a threshold under the store's cannot be met
    with pytest.raises(DetectionStoreError, match="not a detection store .* looks like a folder of per-video"):
        kinetics(data, True, detections=k["detections"])
    with pytest.raises(ValueError, match=r"detection_threshold 0\.3 is below the threshold 0\.5"):
        kinetics(data, True, detections=store["store"], detection_threshold=0.3)


def test_malformed_list_line_reaches_the_caller(tmp_path):
    bad = tmp_path / "train.csv"
    bad.write_text("a.mp4 0\nb.mp4\n")
    with pytest.raises(AnnotationError, match=r"train\.csv:2:"):
        KineticsDataset(True, list_path=str(bad), sampling=SAMPLING)


# ----------------------------------------------------------------------------- bad input


@pytest.fixture
def damaged_kinetics(data, tmp_path):
    """A copy of the generated Kinetics set with one truncated and one garbage video."""
    root = tmp_path / "kinetics"
    shutil.copytree(data["kinetics"]["root"], root)
    ds = KineticsDataset(True, list_path=str(root / "lists" / "train.csv"), video_root=str(root / "videos"),
                         num_classes=3, sampling=SAMPLING)
    corrupt_video(ds.videos[0].source, "truncate")
    corrupt_video(ds.videos[1].source, "garbage")
    return root, ds


def test_training_retries_and_records_bad_videos(damaged_kinetics):
    root, ds = damaged_kinetics
    torch.manual_seed(0)
    for index in (0, 1):
        sample = ds[index]
        assert len(sample["failed"]) >= 1 and ds.videos[index].source in sample["failed"][0]
        loaded = ds.videos[sample["index"]].source
        assert loaded not in (ds.videos[0].source, ds.videos[1].source)
        assert all(any(ds.videos[i].source in m for i in (0, 1)) for m in sample["failed"])
    batch = collate_clips([ds[0], ds[2]])
    assert len(batch["failed"]) >= 1 and batch["frames"].shape[0] == 2


def test_training_gives_up_after_max_retries(damaged_kinetics):
    root, _ = damaged_kinetics
    bad_only = root / "lists" / "bad.csv"
    lines = (root / "lists" / "train.csv").read_text().splitlines()[:2]
    bad_only.write_text("\n".join(lines) + "\n")
    ds = KineticsDataset(True, list_path=str(bad_only), video_root=str(root / "videos"), num_classes=3,
                         sampling=SAMPLING, max_retries=3)
    with pytest.raises(RuntimeError, match="4 training samples in a row failed to load"):
        ds[0]


def test_evaluation_returns_error_records(damaged_kinetics, tmp_path):
    root, train = damaged_kinetics
    listing = root / "lists" / "eval.csv"
    listing.write_text((root / "lists" / "train.csv").read_text() + "train/growing/missing_000001_000011.mp4 1\n")
    ds = KineticsDataset(False, list_path=str(listing), video_root=str(root / "videos"), num_classes=3,
                         sampling=SAMPLING)
    first, second, good, missing = ds[0], ds[6 + 4], ds[12], ds[len(ds) - 1]
    assert first == {"index": 0, "video_id": ds.videos[0].video_id, "view": 0, "error": first["error"]}
    assert ds.videos[0].source in first["error"] and ds.videos[1].source in second["error"]
    assert second["view"] == 4 and "frames" not in second
    assert "missing_000001_000011.mp4" in missing["error"] and "no such file" in missing["error"]
    batch = collate_clips([first, good, second])
    assert batch["frames"].shape[0] == 1 and [e[:2] for e in batch["errors"]] == [
        (ds.videos[0].video_id, 0), (ds.videos[1].video_id, 4)]


def test_corrupt_frame_folder_is_an_error_record(data, tmp_path):
    c = data["charades_frames"]
    root = tmp_path / "charades"
    shutil.copytree(c["root"], root)
    video_id = next(v for v in c["paths"] if v.startswith("TE") and v.endswith("EGO"))
    corrupt_video(str(root / "frames" / video_id), "garbage")
    ds = CharadesEgoDataset(False, csv_path=str(root / "CharadesEgo_v1_test.csv"), data_root=str(root / "frames"),
                            sampling=SAMPLING)
    sample = ds[0]
    assert sample["video_id"] == video_id and video_id in sample["error"]


# ----------------------------------------------------------------------------- Charades-Ego


def test_charades_clip_union_hand_worked(data):
    # 24 fps: frames 0..15 span [0, 0.625] s, 30..46 span [1.25, 1.917] s, 16..29 span
    # [0.667, 1.208] s (touches c020's end 0.7 and c010's start 1.2), 16..28 ends at 1.167 s
    actions = (CharadesAction(5, 0.0, 0.5), CharadesAction(10, 1.2, 1.8), CharadesAction(20, 0.6, 0.7))
    assert charades_multi_hot(actions, 0 / 24, 15 / 24).nonzero().flatten().tolist() == [5, 20]
    assert charades_multi_hot(actions, 30 / 24, 46 / 24).nonzero().flatten().tolist() == [10]
    assert charades_multi_hot(actions, 16 / 24, 29 / 24).nonzero().flatten().tolist() == [10, 20]
    assert charades_multi_hot(actions, 16 / 24, 28 / 24).nonzero().flatten().tolist() == [20]
    assert charades_multi_hot(actions).nonzero().flatten().tolist() == [5, 10, 20]


@pytest.mark.parametrize("source", ["charades", "charades_frames"])
def test_charades_targets_follow_the_clip(data, source):
    c = data[source]
    torch.manual_seed(0)
    train = CharadesEgoDataset(True, csv_path=c["csv"]["train"], data_root=c["data_root"], views="both",
                               sampling=SAMPLING)
    for index in range(len(train)):
        sample = train[index]
        idx = sample["frame_indices"].float()
        expected = charades_multi_hot(c["actions"][sample["video_id"]], idx.min() / 24, idx.max() / 24)
        assert torch.equal(sample["label"], expected) and sample["label"].dtype == torch.float32
    test = CharadesEgoDataset(False, csv_path=c["csv"]["test"], data_root=c["data_root"], sampling=SAMPLING)
    for video in range(len(test.videos)):
        sample = test[video * 6 + 5]
        assert torch.equal(sample["label"], charades_multi_hot(c["actions"][sample["video_id"]]))


def test_charades_views_and_ego_task(data):
    c = data["charades"]
    kw = dict(csv_path=c["csv"]["train"], data_root=c["data_root"], sampling=SAMPLING)
    first = CharadesEgoDataset(True, views="first", **kw)
    third = CharadesEgoDataset(True, views="third", **kw)
    both = CharadesEgoDataset(True, views="both", task="ego", **kw)
    assert all(v.video_id.endswith("EGO") for v in first.videos) and len(first.videos) == 5  # 4 pairs + 1
    assert not any(v.video_id.endswith("EGO") for v in third.videos) and len(third.videos) == 4
    assert len(both.videos) == 9 and both.num_classes == 2
    torch.manual_seed(0)
    for i in range(len(both)):
        sample = both[i]
        assert sample["label"].item() == int(sample["video_id"].endswith("EGO"))
    with pytest.raises(ValueError, match="no_pair .* needs views='both'"):
        CharadesEgoDataset(True, views="first", no_pair=True, **kw)


def test_no_pair_keeps_one_view_per_recording(data):
    c = data["charades"]
    kw = dict(csv_path=c["csv"]["train"], data_root=c["data_root"], views="both", task="ego", sampling=SAMPLING)
    chosen = [sorted(v.video_id for v in CharadesEgoDataset(True, no_pair=True, pair_seed=s, **kw).videos)
              for s in range(8)]
    assert chosen[3] == sorted(v.video_id for v in CharadesEgoDataset(True, no_pair=True, pair_seed=3, **kw).videos)
    for ids in chosen:
        pairs = [i.removesuffix("EGO") for i in ids]
        assert len(pairs) == len(set(pairs)) == 5  # 4 pairs -> one view each, the unpaired one kept
        assert "TR004EGO" in ids  # the recording with a first-person view only
    kept_views = {i for ids in chosen for i in ids}
    assert any(i.endswith("EGO") and i != "TR004EGO" for i in kept_views)  # both views get picked
    assert any(not i.endswith("EGO") for i in kept_views)


def test_no_pair_selection_ignores_row_order(data):
    from data.annotations import read_charades_ego
    records = read_charades_ego(data["charades"]["csv"]["train"])
    forward = {r.video_id for r in select_one_view_per_pair(records, 5)}
    backward = {r.video_id for r in select_one_view_per_pair(records[::-1], 5)}
    assert forward == backward


# ----------------------------------------------------------------------------- EPIC


@pytest.mark.parametrize("source", ["epic100", "epic100_videos"])
def test_epic100_labels_indices_and_participants(data, source):
    e = data[source]
    ds = EpicKitchensDataset(False, annotations=e["csv"]["validation"], data_root=e["root"], sampling=SAMPLING)
    assert len(ds.videos) == 4 and len(ds) == 24
    for video, item in enumerate(ds.videos):
        truth = e["segments"][item.video_id]
        # segment frames start-1 .. stop-1 (24 frames), "frames" rule: clip length 15, slack 9,
        # 2 windows: gap 9, starts 0 and 9, frames 2 apart
        first = truth["start_frame"] - 1
        for view, offsets in ((0, [0, 2, 4, 6, 8, 10, 12, 14]), (4, [9, 11, 13, 15, 17, 19, 21, 23])):
            sample = ds[video * 6 + view]
            assert sample["frame_indices"].tolist() == [first + o for o in offsets]
            assert {k: v.item() for k, v in sample["label"].items()} == {
                "verb": truth["verb_class"], "noun": truth["noun_class"]}
            assert sample["participant_id"] == truth["participant_id"] and sample["video_id"] == item.video_id
    torch.manual_seed(0)
    train = EpicKitchensDataset(True, annotations=e["csv"]["train"], data_root=e["root"], sampling=SAMPLING)
    for i in range(0, len(train), 5):
        sample = train[i]
        truth = e["segments"][sample["video_id"]]
        start = sample["frame_indices"][0].item() - (truth["start_frame"] - 1)
        assert 0 <= start <= 9 and sample["frame_indices"].tolist() == [truth["start_frame"] - 1 + i
                                                                          for i in strided(start, 24)]


def test_epic_test_split_has_unknown_labels(data):
    e = data["epic100"]
    ds = EpicKitchensDataset(False, annotations=e["csv"]["test"], data_root=e["root"], sampling=SAMPLING)
    assert {k: v.item() for k, v in ds[0]["label"].items()} == {"verb": -1, "noun": -1}


def test_epic55_loads(data):
    e = data["epic55"]
    ds = EpicKitchensDataset(False, annotations=e["csv"]["train"], data_root=e["root"], version=55,
                             sampling=SAMPLING)
    assert (ds.num_verbs, ds.num_nouns) == (125, 352)
    sample = ds[7]
    truth = e["segments"][sample["video_id"]]
    assert sample["label"]["verb"].item() == truth["verb_class"]
    assert sample["frame_indices"].min() >= truth["start_frame"] - 1


def test_epic_fraction_is_nested_and_deterministic(data):
    ids = [f"P{p:02d}_{v:02d}" for p in range(1, 5) for v in range(1, 6)]  # 20 videos
    fractions = [0.1, 0.2, 0.5, 1.0]
    kept = [fraction_of_videos(ids * 2, f, seed=3) for f in fractions]
    assert [len(k) for k in kept] == [2, 4, 10, 20]
    for small, large in zip(kept, kept[1:]):
        assert set(small) <= set(large)
    assert fraction_of_videos(ids, 0.5, seed=3) == kept[2]
    assert fraction_of_videos(list(reversed(ids)), 0.5, seed=3) == kept[2]
    assert fraction_of_videos(ids, 0.5, seed=4) != kept[2]
    e = data["epic100"]
    half = EpicKitchensDataset(True, annotations=e["csv"]["train"], data_root=e["root"], train_fraction=0.5,
                               fraction_seed=1, sampling=SAMPLING)
    train_videos = [row[2] for row in e["rows"]["train"]]  # 10 videos, 2 segments each
    assert {s.video_id for s in half.segments} == set(fraction_of_videos(train_videos, 0.5, 1))
    assert len(half.videos) == 10 and len({s.video_id for s in half.segments}) == 5


# ----------------------------------------------------------------------------- SSv2


def ssv2(data, training, split=None, **kw):
    s = data["ssv2"]
    return SSv2Dataset(training, labels=s["json"]["labels"], split=s["json"][split or ("train" if training else
                                                                                     "validation")],
                       video_root=s["video_root"], **kw)


def test_ssv2_segments_rule_one_view_by_default(data):
    s = data["ssv2"]
    ds = ssv2(data, False, sampling=ClipSampling(clip_len=8, test_size=64))  # views left to the data set: 1 x 1
    assert ds.num_classes == 4 and len(ds.videos) == 4 and len(ds) == 4
    # 32 frames, 8 segments of size 31/8: bounds 0, 4, 8, 12, 16, 19, 23, 27, 31, middles (s + e) // 2
    for video, item in enumerate(ds.videos):
        sample = ds[video]
        assert sample["label"].item() == s["labels"][item.video_id]
        assert sample["frame_indices"].tolist() == [2, 6, 10, 14, 17, 21, 25, 29]
        assert sample["transform"].crop_offset == (11, 0)  # 96x128 -> 64x85, the centre crop
    assert ssv2(data, False, split="test", sampling=SAMPLING)[0]["label"].item() == -1


def test_ssv2_ten_by_three_option(data):
    ds = ssv2(data, False, sampling=ClipSampling(clip_len=8, test_size=64, num_clips=10, num_crops=3))
    assert len(ds) == 4 * 30
    bounds = [(0, 4), (4, 8), (8, 12), (12, 16), (16, 19), (19, 23), (23, 27), (27, 31)]
    for view in (0, 14, 29):
        v = view // 3
        sample = ds[30 + view]
        assert sample["frame_indices"].tolist() == [s + (e - s) * (2 * v + 1) // 20 for s, e in bounds]
        assert sample["transform"].crop_offset == ([0, 11, 21][view % 3], 0)


def test_ssv2_training_never_flips(data):
    ds = ssv2(data, True, sampling=SAMPLING)
    assert (ds.sampling.temporal, ds.sampling.flip) == ("segments", False)
    flipped_if_allowed = ssv2(data, True, sampling=ClipSampling(**{**SAMPLING.__dict__, "flip": True}))
    bounds = [(0, 4), (4, 8), (8, 12), (12, 16), (16, 19), (19, 23), (23, 27), (27, 31)]
    flips = 0
    for epoch in range(4):
        ds.set_epoch(epoch)
        flipped_if_allowed.set_epoch(epoch)
        for index in range(len(ds)):
            sample, other = ds[index], flipped_if_allowed[index]
            assert not sample["flip"] and not sample["transform"].flip
            assert all(s <= f <= e for f, (s, e) in zip(sample["frame_indices"].tolist(), bounds))
            assert torch.equal(sample["frame_indices"], other["frame_indices"])  # same draws otherwise
            flips += other["flip"]
    assert flips > 0  # the same clips with flips allowed do get flipped


def test_ssv2_training_split_needs_labels(data):
    with pytest.raises(AnnotationError, match="template"):
        ssv2(data, True, split="test")


# ----------------------------------------------------------------------------- rules per data set


def test_each_data_set_picks_its_release_rule(data):
    c, e = data["charades"], data["epic100"]
    picked = {
        "kinetics": KineticsDataset(False, list_path=data["kinetics"]["lists"]["val"],
                                    video_root=data["kinetics"]["video_root"], num_classes=3),
        "charades": CharadesEgoDataset(False, csv_path=c["csv"]["test"], data_root=c["data_root"]),
        "epic": EpicKitchensDataset(False, annotations=e["csv"]["validation"], data_root=e["root"]),
        "ssv2": ssv2(data, False, sampling=SAMPLING),
    }
    rules = {name: (ds.sampling.temporal, ds.sampling.flip, ds.sampling.num_clips, ds.sampling.num_crops)
             for name, ds in picked.items()}
    assert rules == {"kinetics": ("kinetics", True, 10, 3), "charades": ("frames", True, 10, 3),
                     "epic": ("frames", True, 10, 3), "ssv2": ("segments", False, 2, 3)}  # SAMPLING's views
    # a caller's choice wins over the data set's
    mine = ClipSampling(**{**SAMPLING.__dict__, "temporal": "kinetics", "flip": True})
    overridden = ssv2(data, False, sampling=mine)
    assert overridden.sampling == mine.filled(temporal="segments", flip=False, num_clips=1, num_crops=1)
    assert overridden[0]["frame_indices"].tolist() == [0, 2, 4, 6, 8, 10, 12, 15]  # the Kinetics window


@pytest.mark.parametrize("source", ["charades", "charades_frames"])
def test_charades_test_windows_hand_worked(data, source):
    c = data[source]
    ds = CharadesEgoDataset(False, csv_path=c["csv"]["test"], data_root=c["data_root"], sampling=SAMPLING)
    # 48 frames at 24 fps, video or folder alike: clip length 15, slack 33, 2 windows: starts 0, 33
    for view in range(6):
        sample = ds[view]
        assert sample["frame_indices"].tolist() == strided([0, 33][view // 3], 48)
        assert sample["transform"].crop_offset == ([0, 11, 21][view % 3], 0)


def test_training_clips_depend_on_seed_epoch_and_index_only(data):
    c = data["charades_frames"]
    kw = dict(csv_path=c["csv"]["train"], data_root=c["data_root"], views="both", sampling=SAMPLING)
    first, second = CharadesEgoDataset(True, **kw), CharadesEgoDataset(True, **kw)
    second[3]  # a different history of calls does not matter
    for ds in (first, second):
        ds.set_epoch(2)
    a, b = first[1], second[1]
    assert torch.equal(a["frame_indices"], b["frame_indices"]) and a["transform"] == b["transform"]
    assert torch.equal(a["frames"], b["frames"]) and torch.equal(a["label"], b["label"])
    start = a["frame_indices"][0].item()
    assert 0 <= start <= 33 and a["frame_indices"].tolist() == strided(start, 48)
    clips = set()
    for epoch in range(6):
        first.set_epoch(epoch)
        sample = first[1]
        clips.add((tuple(sample["frame_indices"].tolist()), sample["transform"]))
    assert len(clips) > 1


# ----------------------------------------------------------------------------- JPEG bytes for the device


def _frame_folder_dataset(data, name, training, **kw):
    if name == "charades_frames":
        c = data[name]
        return CharadesEgoDataset(training, csv_path=c["csv"]["train" if training else "test"],
                                  data_root=c["data_root"], views="both", sampling=SAMPLING, **kw)
    e = data[name]
    return EpicKitchensDataset(training, annotations=e["csv"]["train" if training else "validation"],
                               data_root=e["root"], sampling=SAMPLING, **kw)


def _write_line_detections(folder, recordings, num_frames):
    """Per frame f one hand box (2f, 4, 2f + 20, 40), score 0.9, given at twice the decoded
    size (192x256): in decoded pixels (f, 2, f + 10, 20). Returns the store built from them."""
    for recording in recordings:
        frames = {f: {"hand_dets": np.array([[2 * f, 4, 2 * f + 20, 40, 0.9, 3, 0, 0, 0, 1]], np.float32),
                      "obj_dets": None} for f in range(num_frames)}
        save_detections(detections_path(folder, recording), (192, 256), frames)
    return build_detection_store({r: detections_path(folder, r) for r in recordings},
                                 os.path.join(folder, "store"))["store"]


@pytest.mark.parametrize("name", ["charades_frames", "epic100"])
@pytest.mark.parametrize("training", [True, False])
def test_frame_folders_can_stay_encoded_for_the_device(data, tmp_path, name, training):
    recordings = {v.recording for v in _frame_folder_dataset(data, name, training).videos}
    store = _write_line_detections(str(tmp_path), recordings, 100)  # the recordings are <= 64 frames long
    decoded = _frame_folder_dataset(data, name, training, detections=store)
    encoded = _frame_folder_dataset(data, name, training, detections=store, decode_on_device=True)
    samples = []
    for index in range(0, len(decoded), max(1, len(decoded) // 5)):
        torch.manual_seed(index)
        want = decoded[index]
        torch.manual_seed(index)
        got = encoded[index]
        assert "frames" not in got and len(got["jpeg"]) == 8 and "jpeg" not in want
        assert got["transform"] == want["transform"] and got["transform"].frame_size == (96, 128)
        assert torch.equal(got["frame_indices"], want["frame_indices"]) and got["flip"] == want["flip"]
        assert got["video_id"] == want["video_id"] and got["index"] == want["index"]
        if isinstance(want["label"], dict):  # EPIC verb/noun
            assert {k: v.item() for k, v in got["label"].items()} == {k: v.item() for k, v in want["label"].items()}
        else:  # Charades: in training, the classes active in the clip's time span
            assert torch.equal(got["label"], want["label"])
        assert got["fps"] == want["fps"] == (24.0 if name == "charades_frames" else None)
        det = got["detections"]  # the header size maps the detector's boxes like the decoded size
        frames = got["frame_indices"][det["frame"]].float()
        expected = torch.stack([frames, torch.full_like(frames, 2), frames + 10, torch.full_like(frames, 20)], 1)
        assert det["frame"].tolist() == list(range(8))
        torch.testing.assert_close(det["boxes"], expected)
        for key in det:
            assert torch.equal(det[key], want["detections"][key])
        samples.append(got)
    batch = collate_clips(samples)
    assert "frames" not in batch and batch["sizes"].tolist() == [[96, 128]] * len(samples)
    assert batch["detections"]["batch_index"].tolist() == [b for b in range(len(samples)) for _ in range(8)]


def test_videos_ignore_decode_on_device(data):
    c = data["charades"]
    ds = CharadesEgoDataset(False, csv_path=c["csv"]["test"], data_root=c["data_root"], sampling=SAMPLING,
                            decode_on_device=True)
    sample = ds[0]
    assert "jpeg" not in sample and sample["frames"].dtype == torch.uint8 and sample["fps"] == pytest.approx(24.0)


def test_charades_video_targets_open_the_video_once(data, monkeypatch):
    # The clip's time span needs the frame rate, which load_clip reports from the one open.
    import data.transforms as transforms  # (`data` is the fixture here)

    opened = []

    class CountingReader(transforms.VideoReader):
        def __init__(self, path, *args, **kw):
            opened.append(path)
            super().__init__(path, *args, **kw)

    monkeypatch.setattr(transforms, "VideoReader", CountingReader)
    c = data["charades"]
    train = CharadesEgoDataset(True, csv_path=c["csv"]["train"], data_root=c["data_root"], sampling=SAMPLING)
    torch.manual_seed(0)
    sample = train[1]
    assert opened == [train.videos[sample["index"]].source]
    idx = sample["frame_indices"].float()
    expected = charades_multi_hot(c["actions"][sample["video_id"]], idx.min() / 24, idx.max() / 24)
    assert torch.equal(sample["label"], expected) and sample["fps"] == pytest.approx(24.0)


# ----------------------------------------------------------------------------- unusable teacher entries
# An entry wrong for one video fails that video's samples (replaced and named once in "failed" in
# training, an error view in testing); nothing of it reaches collate or the Interaction-Map op.

LOG_HALF = float(np.log(0.5))


def raw_ego_scores(path, ids, bad=None):
    """An ego score file for `ids` written as a broken tool might: rows log([0.5, 0.5]) except
    bad = (video id, row) whose row is stored as given (float64, so overflow stays in the file)."""
    scores = torch.full((len(ids), 2), LOG_HALF, dtype=torch.float64)
    if bad is not None:
        scores[ids.index(bad[0])] = torch.tensor(bad[1], dtype=torch.float64)
    torch.save({"teacher": "ego", "kind": "log_probs", "video_ids": list(ids), "scores": scores}, path)
    return str(path)


def assert_replaced_once(ds, index, bad_id, *names):
    """ds[index] (a training sample of video bad_id) comes from another video, and its "failed"
    list is one message naming bad_id and each of `names`."""
    assert ds.videos[index].video_id == bad_id
    sample = ds[index]
    assert ds.videos[sample["index"]].video_id != bad_id and sample["video_id"] != bad_id
    assert len(sample["failed"]) == 1, sample["failed"]
    message = sample["failed"][0]
    assert message.startswith(f"{bad_id}: ") and all(name in message for name in names), message
    return sample, message


def targets_of(batch, like):
    """The batch's Interaction-Map targets through the fused op, and by the SPEC reference."""
    from losses.interaction_map import batch_interaction_targets, interaction_map_reference

    det = batch["detections"]
    want = interaction_map_reference(det["batch_index"], det["frame"], det["boxes"], det["scores"], det["kinds"],
                                     scale=batch["scale"], crop_offset=batch["crop_offset"],
                                     crop_size=batch["crop_size"], flip=batch["flip"],
                                     num_frames=batch["frame_indices"].shape[1], map_size=like.shape[-1])
    return batch_interaction_targets(batch, like), want


BAD_SCORE_ROWS = [
    ("NaN", [float("nan"), 0.0], "contains NaN or inf"),
    ("inf", [float("inf"), LOG_HALF], "contains NaN or inf"),
    ("-inf", [0.0, float("-inf")], "contains NaN or inf"),  # log of an exact zero: KD would give 0 * -inf = NaN
    ("beyond float32", [0.0, -1e300], r"contains NaN or inf \(as float32\)"),
    ("probabilities", [0.5, 0.5], r"is not log-probabilities \(logsumexp = 1\.193"),  # 0.5 + log 2 = 1.1931
    ("unnormalised logits", [2.0, -1.0], r"is not log-probabilities \(logsumexp = 2\.049"),  # log(7.389 + 0.368)
]


@pytest.mark.parametrize("row, reason", [b[1:] for b in BAD_SCORE_ROWS], ids=[b[0] for b in BAD_SCORE_ROWS])
def test_a_bad_score_row_fails_only_its_videos_samples(data, tmp_path, row, reason):
    ids = sorted(data["kinetics"]["labels"])  # train and val videos
    train = kinetics(data, True)
    bad_id = train.videos[2].video_id
    path = raw_ego_scores(tmp_path / "ego.pt", ids, (bad_id, row))
    with pytest.warns(UserWarning, match=r"ego\.pt \(ego_score\): 1 unusable, e\.g\. .*ego\.pt: row \d+ \(video "
                                         rf"'{bad_id}'\) " + reason):
        ds = kinetics(data, True, ego_scores=path)
    sample, message = assert_replaced_once(ds, 2, bad_id, path, f"row {ids.index(bad_id)} (video '{bad_id}')")
    assert re.search(reason, message)
    assert sample["ego_score"].tolist() == torch.full((2,), LOG_HALF).tolist()  # float32, as loaded
    batch = collate_clips([sample, ds[0]])
    assert batch["ego_score"].shape == (2, 2) and torch.isfinite(batch["ego_score"]).all()
    assert batch["failed"] == [message]
    # skip_videos_without_targets drops the video instead
    kept = kinetics(data, True, ego_scores=path, skip_videos_without_targets=True)
    assert bad_id not in [v.video_id for v in kept.videos] and len(kept.videos) == len(train.videos) - 1


def test_a_bad_score_row_is_an_error_view_in_testing(data, tmp_path):
    ids = sorted(data["kinetics"]["labels"])
    val = kinetics(data, False)
    bad_id = val.videos[1].video_id
    path = raw_ego_scores(tmp_path / "ego.pt", ids, (bad_id, [float("nan"), 0.0]))
    with pytest.warns(UserWarning, match="unusable"):
        ds = kinetics(data, False, ego_scores=path)
    views = [ds[6 + view] for view in range(6)]  # video 1's views
    for view, sample in enumerate(views):
        assert sample == {"index": 6 + view, "video_id": bad_id, "view": view, "error": sample["error"]}
        assert sample["error"] == f"{path}: row {ids.index(bad_id)} (video '{bad_id}') contains NaN or inf (as float32)"
    batch = collate_clips([ds[0], views[4], ds[12]])
    assert batch["ego_score"].shape == (2, 2) and batch["errors"] == [(bad_id, 4, views[4]["error"])]


def test_score_files_unusable_as_a_whole_stop_the_construction(data, tmp_path):
    ids = sorted(data["kinetics"]["labels"])
    wide = tmp_path / "wide.pt"
    torch.save({"teacher": "ego", "kind": "log_probs", "video_ids": ids,
                "scores": torch.full((len(ids), 3), float(np.log(1 / 3)))}, wide)
    with pytest.raises(TeacherTargetError, match=r"wide\.pt: scores should be a float tensor \[N, 2\]"):
        kinetics(data, True, ego_scores=str(wide))
    probs = tmp_path / "probs.pt"  # every row probabilities: the file, not a row, is wrong
    torch.save({"teacher": "ego", "kind": "log_probs", "video_ids": ids, "scores": torch.full((len(ids), 2), 0.5)},
               probs)
    with pytest.raises(TeacherTargetError, match=rf"probs\.pt: {len(ids)} of {len(ids)} row\(s\) are unusable"):
        kinetics(data, True, ego_scores=str(probs))
    with pytest.raises(TeacherTargetError, match=r"junk\.pt: not a readable torch\.save file"):
        (tmp_path / "junk.pt").write_bytes(b"\x80\x02junk")
        kinetics(data, True, ego_scores=str(tmp_path / "junk.pt"))


def test_a_bad_embedding_row_fails_only_its_videos_samples(data, tmp_path):
    ids = sorted(data["kinetics"]["labels"])
    train = kinetics(data, True)
    bad_id = train.videos[4].video_id
    rows = torch.ones(len(ids), 3)
    rows[ids.index(bad_id), 1] = float("nan")
    path = str(tmp_path / "emb.pt")
    torch.save({"teacher": "object", "kind": "embeddings", "video_ids": ids, "embeddings": rows}, path)
    with pytest.warns(UserWarning, match=r"emb\.pt \(object embeddings\): 1 unusable"):
        ds = kinetics(data, True, embeddings=[path])
    sample, _ = assert_replaced_once(ds, 4, bad_id, path, f"row {ids.index(bad_id)}", "NaN or inf")
    assert sample["extra_features"].tolist() == [1.0, 1.0, 1.0]


# the store's rows of one video, changed after the build as a flipped bit or a hand edit would
STORE_ROW_CHANGES = [
    ("NaN box", "boxes", lambda a, r: a.__setitem__((r, 0), np.nan), "has a NaN/inf box"),
    ("inf box", "boxes", lambda a, r: a.__setitem__((r, 3), np.inf), "has a NaN/inf box"),
    ("x2 < x1", "boxes", lambda a, r: a.__setitem__((r, 2), a[r, 0] - 5), r"x1 > x2 or y1 > y2"),
    ("negative height", "boxes", lambda a, r: a.__setitem__((r, 3), a[r, 1] - 1), r"x1 > x2 or y1 > y2"),
    ("far outside the frame", "boxes", lambda a, r: a.__setitem__((r, 2), 1e9), "outside its video's frame_size"),
    ("unknown kind", "kinds", lambda a, r: a.__setitem__(r, 2), "has a kind other than 0"),
    ("score above 1", "scores", lambda a, r: a.__setitem__(r, 3.0), r"has a score outside \[0\.5, 1\]"),
    ("frame past the recording", "frames", lambda a, r: a.__setitem__(r, 48), "has a frame outside its video"),
    ("frames out of order", "frames", lambda a, r: a.__setitem__(r, a[r + 4]), "comes after a later frame"),
]


def tampered_store(data, tmp_path, video_id, name, change):
    """A copy of the generated Kinetics store with `change(array, row)` applied to the array
    `name` at the middle row of `video_id`'s rows; returns (store, row)."""
    store = str(tmp_path / "store")
    shutil.copytree(data["kinetics"]["detection_store"], store)
    with open(os.path.join(store, "index.json")) as f:
        start, end = json.load(f)["videos"][video_id]["rows"]
    row = (start + end) // 2
    path = os.path.join(store, f"{name}.npy")
    array = np.load(path)
    change(array, row)
    np.save(path, array)
    return store, row


@pytest.mark.parametrize("name, change, rule", [c[1:] for c in STORE_ROW_CHANGES],
                         ids=[c[0] for c in STORE_ROW_CHANGES])
def test_a_bad_detection_row_fails_only_its_videos_samples(data, tmp_path, name, change, rule):
    train = kinetics(data, True)
    bad_id = train.videos[3].video_id
    store, row = tampered_store(data, tmp_path, bad_id, name, change)
    with pytest.warns(UserWarning, match=r"store \(detection store, by recording\): 1 unusable"):
        ds = kinetics(data, True, detections=store)
    sample, message = assert_replaced_once(ds, 3, bad_id, store, f"video '{bad_id}'")
    assert re.search(rf"store: row \d+ \(video '{bad_id}', frame -?\d+, .*\) .*{rule}", message), message
    if name != "frames":
        assert f"row {row} " in message
    # the replaced batch goes through collate and the fused op, whose maps are the reference's
    batch = collate_clips([ds[0], sample, ds[5]])
    assert batch["failed"] == [message] and batch["detections"]["boxes"].isfinite().all()
    got, want = targets_of(batch, torch.zeros(3, 2, 8, 7, 7))
    assert got.shape == (3, 2, 8, 7, 7) and torch.equal(got, want) and (got[:, 0].amax((1, 2, 3)) > 0).all()
    # in testing the video's views are error entries naming the same row
    val_store, _ = tampered_store(data, tmp_path / "val", kinetics(data, False).videos[0].video_id, name, change)
    with pytest.warns(UserWarning, match="unusable"):
        val = kinetics(data, False, detections=val_store)
    assert all(re.search(rule, val[view]["error"]) for view in range(6)) and "error" not in val[6]


def test_detections_past_the_decoded_video_fail_the_sample(data, tmp_path):
    # detections made for a 20-frame cut of a 48-frame video: a clip past frame 19 is not theirs
    k = data["kinetics"]
    train = kinetics(data, True)
    bad_id = train.videos[1].video_id
    files = {v: detections_path(k["detections"], v) for v in k["labels"]}
    short = load_detections(files[bad_id])
    files[bad_id] = str(tmp_path / f"{bad_id}.pkl")
    save_detections(files[bad_id], short.frame_size,
                    {f: {"hand_dets": h, "obj_dets": o} for f, (h, o) in short.frames.items() if f < 20})
    counts = {v: 20 if v == bad_id else k["num_frames"] for v in files}
    store = build_detection_store(files, str(tmp_path / "store"), num_frames=counts)["store"]
    ds = kinetics(data, True, detections=store)
    failures = 0
    for epoch in range(20):  # video 1's random 16-frame window of 48 often reaches past frame 19
        ds.set_epoch(epoch)
        sample = ds[1]
        for message in sample["failed"]:  # one per load of a clip of video 1 past frame 19
            assert re.fullmatch(rf"{bad_id}: .*store: video '{bad_id}': clip frame (2\d|3\d|4[0-7]) \(position \d\) is "
                                r"outside the 20 frames \(0-based 0\.\.19\) its detections were made for: the decoded "
                                r"video is not the one the detector ran on", message)
        failures += len(sample["failed"])
        if sample["video_id"] == bad_id:  # drawn first, or again as a replacement: then a clip inside frame 19
            assert sample["frame_indices"].max() < 20
    assert failures > 0


def test_a_truncated_store_stops_the_construction(data, tmp_path):
    store = str(tmp_path / "store")
    shutil.copytree(data["kinetics"]["detection_store"], store)
    path = os.path.join(store, "scores.npy")
    os.truncate(path, os.path.getsize(path) - 4)
    with pytest.raises(DetectionStoreError, match=r"scores\.npy: cannot memory-map this detection-store array"):
        kinetics(data, True, detections=store)


def test_unusable_entries_fail_the_same_way_in_data_loader_workers(data, tmp_path):
    # the workers get pickled copies of the lenient tables and store: same failures, same batch
    ids = sorted(data["kinetics"]["labels"])
    train = kinetics(data, True)
    bad_score, bad_boxes = train.videos[0].video_id, train.videos[5].video_id
    scores = raw_ego_scores(tmp_path / "ego.pt", ids, (bad_score, [float("nan"), 0.0]))
    store, _ = tampered_store(data, tmp_path, bad_boxes, "boxes", lambda a, r: a.__setitem__((r, 0), np.nan))
    with pytest.warns(UserWarning, match=r"ego\.pt \(ego_score\): 1 unusable(.|\n)*store \(detection store"):
        ds = kinetics(data, True, ego_scores=scores, detections=store)
    in_process = [collate_clips([ds[i] for i in range(3)]), collate_clips([ds[i] for i in range(3, 6)])]
    loader = torch.utils.data.DataLoader(ds, batch_size=3, num_workers=1, collate_fn=collate_clips)
    batches = list(loader)
    failed = [m for b in batches for m in b["failed"]]
    # (a replacement may be drawn among the bad two again: one message per failed load)
    assert {m.split(":")[0] for m in failed} == {bad_score, bad_boxes} and len(failed) >= 2
    assert failed == [m for b in in_process for m in b["failed"]]
    for got, want in zip(batches, in_process):
        assert got["video_id"] == want["video_id"] and torch.equal(got["ego_score"], want["ego_score"])
        assert bad_score not in got["video_id"] and bad_boxes not in got["video_id"]
        assert torch.equal(got["detections"]["boxes"], want["detections"]["boxes"])


# ----------------------------------------------------------------------------- test views in batches


def _same_sample(got: dict, want: dict) -> bool:
    if got.keys() != want.keys():
        return False
    for key, value in want.items():
        other = got[key]
        if isinstance(value, dict):
            if not _same_sample(other, value):
                return False
        elif isinstance(value, torch.Tensor):
            if not torch.equal(other, value):
                return False
        elif isinstance(value, list) and value and isinstance(value[0], torch.Tensor):  # JPEG bytes
            if len(other) != len(value) or not all(torch.equal(a, b) for a, b in zip(other, value)):
                return False
        elif other != value:
            return False
    return True


@pytest.mark.parametrize("name", ["kinetics", "charades", "charades_frames", "epic100", "epic100_videos", "ssv2"])
def test_a_batch_of_test_views_decodes_each_source_once(data, monkeypatch, name):
    # Every multi-view evaluation goes through ClipDataset's test views: a DataLoader batch of a
    # video's views (here all of them) is what the views give one by one, from one open of the
    # video (or one read of each frame file) instead of one per view.
    import data.transforms as transforms  # (`data` is the fixture here)
    import torchvision.io

    sets = {
        "kinetics": lambda: kinetics(data, False),
        "charades": lambda: CharadesEgoDataset(False, csv_path=data["charades"]["csv"]["test"],
                                               data_root=data["charades"]["data_root"], sampling=SAMPLING),
        "charades_frames": lambda: _frame_folder_dataset(data, "charades_frames", False),
        "epic100": lambda: _frame_folder_dataset(data, "epic100", False, decode_on_device=True),
        "epic100_videos": lambda: EpicKitchensDataset(False, annotations=data["epic100_videos"]["csv"]["validation"],
                                                      data_root=data["epic100_videos"]["root"], sampling=SAMPLING),
        "ssv2": lambda: ssv2(data, False, sampling=SAMPLING),
    }
    ds = sets[name]()
    one_by_one = [ds[i] for i in range(len(ds))]
    opened, reads = [], []

    class CountingReader(transforms.VideoReader):
        def __init__(self, path, *args, **kw):
            opened.append(path)
            super().__init__(path, *args, **kw)

    real_read = torchvision.io.read_file
    monkeypatch.setattr(transforms, "VideoReader", CountingReader)
    monkeypatch.setattr(torchvision.io, "read_file", lambda path: reads.append(path) or real_read(path))
    loader = torch.utils.data.DataLoader(ds, batch_size=ds.num_views, collate_fn=list)
    together = [sample for batch in loader for sample in batch]
    assert len(together) == len(one_by_one) == len(ds.videos) * ds.num_views
    assert all("error" not in s for s in together)
    for index, (got, want) in enumerate(zip(together, one_by_one)):
        assert _same_sample(got, want), f"{name} index {index}"
    if ds.videos[0].frame_name is None:
        assert opened == [v.source for v in ds.videos]
    else:  # frame folders: each file a video's views need is read once
        needed = {(s["video_id"], int(i)) for s in together for i in s["frame_indices"]}
        assert len(reads) == len(needed)
