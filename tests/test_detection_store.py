"""The detection store (data/detection_store.py): the three input formats, every ingest rule
with its message, the trust flag of the pickle reader, the threshold, hand-worked clip
lookups and random clips against `teacher_targets.clip_detections` on the source files,
atomic builds, tampered stores refused at open (or, opened with strict=False, only the
tampered video's lookups refused), the per-frame box limit, clip frames outside the video,
pickling for workers, and a Kinetics data set reading a store built from the generator's
pickles."""

import json
import os
import pickle
import re
import shutil

import numpy as np
import pytest
import torch

from data.datasets import KineticsDataset
from data.detection_store import DetectionStore, DetectionStoreError, build_detection_store, read_detection_file
from data.synthetic import make_kinetics
from data.teacher_targets import TeacherTargetError, clip_detections, detections_path, load_detections, save_detections
from data.transforms import ClipSampling


def det_row(x1, y1, x2, y2, score):
    return [x1, y1, x2, y2, score, 3, 0.1, 0.01, -0.02, 1]


# the hand-worked video of tests/test_teacher_targets.py: the detector ran on 480x640 frames
HAND_WORKED = {
    7: {"hand_dets": np.array([det_row(100, 50, 300, 250, 0.9), det_row(0, 0, 10, 10, 0.3)], np.float32),
        "obj_dets": None},
    9: {"hand_dets": None, "obj_dets": np.array([det_row(20, 40, 60, 80, 0.5)], np.float32)},
    11: {"hand_dets": np.array([det_row(1, 1, 2, 2, 0.99)], np.float32), "obj_dets": None},
}


def write_json(path, frame_size, frames):
    blob = {"frame_size": list(frame_size),
            "frames": {str(f): {k: None if v is None else np.asarray(v).tolist() for k, v in entry.items()}
                       for f, entry in frames.items()}}
    path.write_text(json.dumps(blob))
    return str(path)


def write_npz(path, frame_size, frames):
    frame, kind, dets = [], [], []
    for f, entry in frames.items():
        for k, key in enumerate(("hand_dets", "obj_dets")):
            for row in [] if entry[key] is None else np.asarray(entry[key]):
                frame.append(f), kind.append(k), dets.append(row)
    np.savez(path, frame_size=np.array(frame_size), frame=np.array(frame, np.int64),
             kind=np.array(kind, np.int64), dets=np.array(dets, np.float32).reshape(-1, 10))
    return str(path)


def write_pickle(path, frame_size, frames, protocol=pickle.HIGHEST_PROTOCOL):
    """A pickle written the way a 100DOH script would: plain pickle.dump of numpy arrays."""
    with open(path, "wb") as f:
        pickle.dump({"frame_size": tuple(frame_size), "frames": frames}, f, protocol=protocol)
    return str(path)


def assert_same_detections(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert a[key].dtype == b[key].dtype and torch.equal(a[key], b[key]), key


def no_leftovers(folder):
    return [n for n in os.listdir(folder) if n.startswith(".")] == []


# ----------------------------------------------------------------------------- input formats and trust


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_plain_100doh_pickle_loads_without_trust(tmp_path, protocol):
    path = write_pickle(tmp_path / "v.pkl", (480, 640), HAND_WORKED, protocol)
    dets = read_detection_file(path)  # the restricted unpickler: numpy arrays and dicts only
    assert dets.frame_size == (480, 640) and sorted(dets.frames) == [7, 9, 11]
    np.testing.assert_array_equal(dets.frames[7][0], HAND_WORKED[7]["hand_dets"])
    assert dets.frames[7][1].shape == (0, 10) and dets.frames[9][1].tolist() == HAND_WORKED[9]["obj_dets"].tolist()


class _RunsAShellCommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_pickle_with_code_is_refused_unless_trusted(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pkl"
    with open(path, "wb") as f:
        pickle.dump({"frame_size": (10, 10), "frames": {}, "extra": _RunsAShellCommand(marker)}, f)
    with pytest.raises(TeacherTargetError, match=r"evil\.pkl: detection file refers to (posix|os)\.system, which "
                                                 r"is not allowed.*nothing from the file was run.*trusted=True"):
        read_detection_file(str(path))
    assert not marker.exists()
    with pytest.raises(DetectionStoreError, match=r"posix\.system|os\.system"):
        build_detection_store({"v": str(path)}, str(tmp_path / "store"))
    assert not marker.exists() and not (tmp_path / "store").exists()
    # trusted=True is plain pickle: the file's code runs (the blob itself is then a valid video)
    dets = read_detection_file(str(path), trusted=True)
    assert marker.exists() and dets.frames == {}


def test_json_npz_and_pickle_give_the_same_detections(tmp_path):
    files = {"pkl": write_pickle(tmp_path / "v.pkl", (480, 640), HAND_WORKED),
             "json": write_json(tmp_path / "v.json", (480, 640), HAND_WORKED),
             "npz": write_npz(tmp_path / "v.npz", (480, 640), HAND_WORKED)}
    read = {name: read_detection_file(path) for name, path in files.items()}
    for dets in read.values():
        assert dets.frame_size == (480, 640) and sorted(dets.frames) == [7, 9, 11]
        for frame in (7, 9, 11):
            for got, key in zip(dets.frames[frame], ("hand_dets", "obj_dets")):
                want = HAND_WORKED[frame][key]
                np.testing.assert_array_equal(got, np.zeros((0, 10)) if want is None else want)
    stores = {name: DetectionStore(build_detection_store({"v": path}, str(tmp_path / f"store_{name}"))["store"])
              for name, path in files.items()}
    for store in stores.values():
        assert_same_detections(store.clip("v", [7, 9, 11], (240, 320)), stores["pkl"].clip("v", [7, 9, 11], (240, 320)))


def test_npz_keeps_file_order_within_a_frame_and_kind(tmp_path):
    dets = np.array([det_row(5, 5, 6, 6, 0.7), det_row(1, 1, 2, 2, 0.8), det_row(3, 3, 4, 4, 0.9)], np.float32)
    np.savez(tmp_path / "v.npz", frame_size=np.array([10, 10]), frame=np.array([4, 2, 4]), kind=np.array([1, 0, 1]),
             dets=dets)
    read = read_detection_file(str(tmp_path / "v.npz"))
    assert sorted(read.frames) == [2, 4]
    assert read.frames[4][1][:, 4].tolist() == pytest.approx([0.7, 0.9]) and read.frames[4][0].shape == (0, 10)


# ----------------------------------------------------------------------------- validation on ingest


def one_frame(rows, key="hand_dets", frame=3):
    other = "obj_dets" if key == "hand_dets" else "hand_dets"
    return {frame: {key: np.array(rows, np.float32), other: None}}


# (rule, frame_size, frames, build kwargs, message)
RULES = [
    ("shape", (96, 128), {4: {"hand_dets": None, "obj_dets": np.zeros((2, 5))}}, {},
     r"frame 4 obj_dets should be K x 10"),
    ("finite", (96, 128), one_frame([det_row(1, 1, 5, 5, 0.9), det_row(1, np.nan, 5, 5, 0.9)]), {},
     r"frame 3 hand_dets row 1 \[x1, y1, x2, y2, score\] = \[1, nan, 5, 5, 0\.9\] has NaN/inf"),
    ("score above 1", (96, 128), one_frame([det_row(1, 1, 5, 5, 1.5)], "obj_dets"), {},
     r"frame 3 obj_dets row 0 .* has a score outside \[0, 1\]"),
    ("score below 0", (96, 128), one_frame([det_row(1, 1, 5, 5, -0.1)]), {},
     r"frame 3 hand_dets row 0 .* has a score outside \[0, 1\]"),
    ("x1 > x2", (96, 128), one_frame([det_row(9, 1, 5, 5, 0.9)]), {},
     r"frame 3 hand_dets row 0 \[x1, y1, x2, y2, score\] = \[9, 1, 5, 5, 0\.9\] is not a box with x1 <= x2 and "
     r"y1 <= y2"),
    ("y1 > y2", (96, 128), one_frame([det_row(1, 9, 5, 5, 0.9)]), {}, r"frame 3 hand_dets row 0 .* is not a box"),
    ("outside the frame", (96, 128), one_frame([det_row(1, 1, 5, 5, 0.9), det_row(100, 10, 129.5, 20, 0.9)]), {},
     r"frame 3 hand_dets row 1 .* lies outside the frame: coordinates should be pixels of frame_size \(H, W\) = "
     r"\(96, 128\), within \[0, 128\] x \[0, 96\] \(\+-1 px\)"),
    ("below the frame", (96, 128), one_frame([det_row(-1.5, 1, 5, 5, 0.9)]), {},
     r"frame 3 hand_dets row 0 .* lies outside the frame"),
    ("negative frame", (96, 128), {-1: {"hand_dets": None, "obj_dets": None}}, {},
     r"frame key -1 should be a 0-based frame number"),
    ("frame beyond the video", (96, 128), {**one_frame([det_row(1, 1, 5, 5, 0.9)]), 48: {"hand_dets": None,
                                           "obj_dets": None}, 60: {"hand_dets": None, "obj_dets": None}},
     {"num_frames": {"v": 48}},
     r"frame 48 is beyond the video's 48 frames \(0-based 0\.\.47\) \(2 such frames\)"),
    ("swapped frame size", (128, 96), one_frame([det_row(1, 1, 5, 5, 0.9)]), {"video_sizes": {"v": (96, 128)}},
     r"frame_size \(128, 96\) is the video's \(H, W\) = \(96, 128\) swapped: frame_size must be \(height, width\)"),
    ("other aspect", (96, 96), one_frame([det_row(1, 1, 5, 5, 0.9)]), {"video_sizes": {"v": (96, 128)}},
     r"frame_size \(96, 96\) is not the video's \(H, W\) = \(96, 128\) or a uniform rescale of it"),
    ("zero frame size", (0, 128), {}, {}, r"frame_size should be positive whole pixels"),
    ("too many boxes on a frame", (96, 128), one_frame([det_row(1, 1, 5, 5, 0.9)] * 1001), {},
     r"frame 3 has 1001 boxes with score >= 0\.5, more than the 1000 a frame may hold"),
]


@pytest.mark.parametrize("rule, frame_size, frames, kwargs, message", RULES, ids=[r[0] for r in RULES])
def test_every_ingest_rule_names_file_frame_and_rule(tmp_path, rule, frame_size, frames, kwargs, message):
    path = write_pickle(tmp_path / "v.pkl", frame_size, frames)
    good = write_pickle(tmp_path / "good.pkl", (96, 128), one_frame([det_row(1, 1, 5, 5, 0.9)]))
    store = tmp_path / "store"
    with pytest.raises(DetectionStoreError) as e:
        build_detection_store({"v": path, "good": good}, str(store), **kwargs)
    text = str(e.value)
    assert "1 of 2 detection files are invalid; nothing was written" in text
    assert re.search(r"v\.pkl: " + message, text), text
    assert [f["key"] for f in e.value.failures] == ["v"] and e.value.failures[0]["file"] == path
    assert not store.exists() and no_leftovers(tmp_path)


def test_the_box_limit_counts_the_kept_rows_of_a_frame(tmp_path):
    # 1000 kept boxes on frame 3 plus 5 under the threshold, and 1000 more on frame 4: accepted
    rows = [det_row(1, 1, 5, 5, 0.9)] * 1000 + [det_row(1, 1, 5, 5, 0.2)] * 5
    frames = {**one_frame(rows), **one_frame(rows[:1000], key="obj_dets", frame=4)}
    report = build_detection_store({"v": write_pickle(tmp_path / "v.pkl", (96, 128), frames)}, str(tmp_path / "s"))
    assert report["boxes_kept"] == 2000 and report["boxes_dropped"] == 5
    store = DetectionStore(report["store"])
    assert len(store.clip("v", [3, 4, 4], (96, 128))["frame"]) == 3000


def test_skip_invalid_builds_without_the_bad_videos(tmp_path):
    bad = write_pickle(tmp_path / "bad.pkl", (96, 128), one_frame([det_row(9, 1, 5, 5, 0.9)]))
    good = write_pickle(tmp_path / "good.pkl", (96, 128), one_frame([det_row(1, 1, 5, 5, 0.9)]))
    report = build_detection_store({"bad": bad, "good": good, "gone": str(tmp_path / "gone.pkl")},
                                   str(tmp_path / "store"), skip_invalid=True)
    assert report["videos"] == 1 and report["boxes_kept"] == 1
    assert {f["key"] for f in report["failures"]} == {"bad", "gone"}
    assert "gone.pkl: detection file not found" in {f["key"]: f["error"] for f in report["failures"]}["gone"]
    assert DetectionStore(report["store"]).keys() == ["good"]


@pytest.mark.parametrize("frame_size, video_size", [((192, 256), (96, 128)), ((49, 65), (97, 129)),
                                                    ((96, 128), (96, 128)), ((360, 640), (240, 427))])
def test_uniformly_rescaled_detector_frames_are_accepted(tmp_path, frame_size, video_size):
    path = write_pickle(tmp_path / "v.pkl", frame_size, one_frame([det_row(0, 0, frame_size[1] + 0.5, 2, 0.9)]))
    report = build_detection_store({"v": path}, str(tmp_path / "store"), video_sizes={"v": video_size},
                                   num_frames={"v": 4})
    assert report["failures"] == [] and report["boxes_kept"] == 1  # and +0.5 px past the border is within tolerance


def test_json_and_npz_specific_errors(tmp_path):
    (tmp_path / "dup.json").write_text('{"frame_size": [10, 10], "frames": {"3": {"hand_dets": null, '
                                       '"obj_dets": null}, "3": {"hand_dets": null, "obj_dets": null}}}')
    with pytest.raises(DetectionStoreError, match=r"dup\.json: key '3' appears twice"):
        read_detection_file(str(tmp_path / "dup.json"))
    (tmp_path / "bad.json").write_text('{"frame_size": [10, 10],\n "frames": {')
    with pytest.raises(DetectionStoreError, match=r"bad\.json: not valid JSON \(line 2, column"):
        read_detection_file(str(tmp_path / "bad.json"))
    (tmp_path / "key.json").write_text('{"frame_size": [10, 10], "frames": {"-2": {"hand_dets": null, '
                                       '"obj_dets": null}}}')
    with pytest.raises(DetectionStoreError, match=r"key\.json: frame key '-2' should be a 0-based frame number"):
        read_detection_file(str(tmp_path / "key.json"))
    np.savez(tmp_path / "kind.npz", frame_size=np.array([10, 10]), frame=np.array([0, 1]), kind=np.array([0, 2]),
             dets=np.zeros((2, 10), np.float32))
    with pytest.raises(DetectionStoreError, match=r"kind\.npz: row 1: 'kind' = 2, expected 0 \(hand\) or 1"):
        read_detection_file(str(tmp_path / "kind.npz"))
    np.savez(tmp_path / "rows.npz", frame_size=np.array([10, 10]), frame=np.array([0, 1]), kind=np.array([0, 1]),
             dets=np.zeros((3, 10), np.float32))
    with pytest.raises(DetectionStoreError, match=r"rows\.npz: 'dets' should be a numeric array \[R, 10\] with R = "
                                                  r"len\(frame\) = 2, got float32 \(3, 10\)"):
        read_detection_file(str(tmp_path / "rows.npz"))
    np.savez(tmp_path / "objects.npz", frame_size=np.array([10, 10]), frame=np.array([0], object),
             kind=np.array([0]), dets=np.zeros((1, 10)))
    with pytest.raises(DetectionStoreError, match=r"objects\.npz: not a readable \.npz of plain arrays"):
        read_detection_file(str(tmp_path / "objects.npz"))
    (tmp_path / "v.txt").write_text("")
    with pytest.raises(DetectionStoreError, match=r"v\.txt: unknown detection file type '\.txt'"):
        read_detection_file(str(tmp_path / "v.txt"))


# ----------------------------------------------------------------------------- lookups


def test_hand_worked_clip_from_the_store(tmp_path):
    path = write_pickle(tmp_path / "v.pkl", (480, 640), HAND_WORKED)
    report = build_detection_store({"vid": path}, str(tmp_path / "store"), source="hand-worked")
    assert (report["boxes_kept"], report["boxes_dropped"]) == (3, 1)  # the 0.3 hand is dropped at build
    store = DetectionStore(report["store"])
    assert store.keys() == ["vid"] and "vid" in store and "other" not in store and len(store) == 1
    assert store.frame_size("vid") == (480, 640) and store.missing(["vid", "other"]) == ["other"]
    assert (store.threshold, store.detector, store.source, store.num_rows) == (0.5, "100DOH", "hand-worked", 3)
    # decoded at 240x320: every coordinate halves; frame 7 sampled twice gives its box twice
    out = store.clip("vid", torch.tensor([5, 7, 7, 9]), decoded_size=(240, 320))
    assert out["frame"].tolist() == [1, 2, 3] and out["frame"].dtype == torch.int64
    assert out["boxes"].tolist() == [[50, 25, 150, 125], [50, 25, 150, 125], [10, 20, 30, 40]]
    assert out["scores"].tolist() == pytest.approx([0.9, 0.9, 0.5]) and out["kinds"].tolist() == [0, 0, 1]
    strict = store.clip("vid", np.array([9, 7]), decoded_size=(480, 640), score_threshold=0.6)
    assert strict["frame"].tolist() == [1] and strict["boxes"].tolist() == [[100, 50, 300, 250]]
    empty = store.clip("vid", [0, 1], decoded_size=(240, 320))
    assert empty["boxes"].shape == (0, 4) and empty["frame"].shape == (0,) and empty["boxes"].dtype == torch.float32
    with pytest.raises(DetectionStoreError, match=r"holds only boxes with score >= 0\.5; cannot select score >= 0\.3"):
        store.clip("vid", [7], (240, 320), score_threshold=0.3)
    with pytest.raises(DetectionStoreError, match=r"no detections for video 'other'"):
        store.clip("other", [7], (240, 320))
    with pytest.raises(DetectionStoreError, match=r"video 'vid': detections made on 480x640 frames do not fit its "
                                                  r"decoded 320x240 frames: .* swapped"):
        store.clip("vid", [7], (320, 240))


def random_frames(rng, num_frames, size):
    h, w = size
    frames = {}
    for f in range(num_frames):
        if rng.random() < 0.2:
            continue  # no entry: no detections on that frame
        entry = {}
        for key in ("hand_dets", "obj_dets"):
            k = int(rng.integers(0, 4))
            if k == 0 and rng.random() < 0.5:
                entry[key] = None
                continue
            x1, y1 = rng.uniform(0, w, k), rng.uniform(0, h, k)
            rows = np.zeros((k, 10))
            rows[:, :5] = np.stack([x1, y1, np.minimum(x1 + rng.uniform(0, w / 2, k), w),
                                    np.minimum(y1 + rng.uniform(0, h / 2, k), h), rng.uniform(0, 1, k)], 1)
            rows[:, 4][rng.random(k) < 0.1] = 0.5  # exactly on the threshold: kept
            entry[key] = rows.astype(np.float32)
        frames[f] = entry
    return frames


@pytest.mark.parametrize("threshold", [0.5, 0.25])
def test_random_clips_match_clip_detections_on_the_pickles(tmp_path, threshold):
    rng = np.random.default_rng(0)
    sizes = {"a": (120, 160), "b": (240, 320), "c": (97, 129), "d": (50, 50)}
    decoded = {"a": (60, 80), "b": (240, 320), "c": (194, 258), "d": (100, 100)}
    files, counts = {}, {}
    for key, size in sizes.items():
        counts[key] = int(rng.integers(1, 40))
        save_detections(tmp_path / f"{key}.pkl", size, random_frames(rng, counts[key], size))
        files[key] = str(tmp_path / f"{key}.pkl")
    report = build_detection_store(files, str(tmp_path / "store"), video_sizes=decoded, num_frames=counts,
                                   threshold=threshold)
    rows = [load_detections(p).frames for p in files.values()]
    all_scores = np.concatenate([a[:, 4] for frames in rows for pair in frames.values() for a in pair])
    assert report["boxes_kept"] == (all_scores >= threshold).sum()
    assert report["boxes_dropped"] == (all_scores < threshold).sum()
    store = DetectionStore(report["store"])
    assert store.keys() == sorted(sizes)
    for _ in range(60):
        key = str(rng.choice(list(sizes)))
        indices = rng.integers(0, counts[key], size=int(rng.integers(1, 12)))  # repeats, frames without boxes
        for score_threshold in (threshold, 0.5, 0.8):
            if score_threshold < threshold:
                continue
            want = clip_detections(load_detections(files[key]), indices, decoded[key], score_threshold)
            assert_same_detections(store.clip(key, torch.from_numpy(indices), decoded[key], score_threshold), want)
    # a frame past the video's num_frames (or negative) is not looked up as "no boxes": it is refused
    for key, bad in (("a", counts["a"]), ("b", -1)):
        with pytest.raises(DetectionStoreError, match=rf"store: video {key!r}: clip frame {bad} \(position 1\) is "
                                                      rf"outside "):
            store.clip(key, [0, bad], decoded[key])


# ----------------------------------------------------------------------------- atomic writes


def test_a_failed_or_killed_build_leaves_no_half_store(tmp_path, monkeypatch):
    good = write_pickle(tmp_path / "good.pkl", (96, 128), one_frame([det_row(1, 1, 5, 5, 0.9)]))
    other = write_pickle(tmp_path / "other.pkl", (96, 128), one_frame([det_row(2, 2, 6, 6, 0.8)], frame=1))
    bad = write_pickle(tmp_path / "bad.pkl", (96, 128), one_frame([det_row(1, 1, 5, 5, 2.0)]))
    out = tmp_path / "stores" / "k400"
    build_detection_store({"good": good}, str(out))
    before = {n: (out / n).read_bytes() for n in os.listdir(out)}
    # an invalid file: nothing replaced, nothing left over
    with pytest.raises(DetectionStoreError, match="bad.pkl"):
        build_detection_store({"good": good, "bad": bad}, str(out))
    assert {n: (out / n).read_bytes() for n in os.listdir(out)} == before and no_leftovers(out.parent)
    # killed while writing the arrays: the old store is untouched
    import data.detection_store as module
    real = module._write_npy
    calls = []

    def dies_on_the_third(*args):
        calls.append(args)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(module, "_write_npy", dies_on_the_third)
    with pytest.raises(KeyboardInterrupt):
        build_detection_store({"good": good, "other": other}, str(out))
    monkeypatch.setattr(module, "_write_npy", real)
    assert {n: (out / n).read_bytes() for n in os.listdir(out)} == before and no_leftovers(out.parent)
    assert DetectionStore(out).keys() == ["good"]
    # a complete rebuild replaces it
    build_detection_store({"good": good, "other": other}, str(out))
    assert DetectionStore(out).keys() == ["good", "other"] and no_leftovers(out.parent)
    # a folder that is not a store is never replaced
    (tmp_path / "dets").mkdir()
    shutil.copy(good, tmp_path / "dets" / "good.pkl")
    with pytest.raises(DetectionStoreError, match=r"dets: exists and is not a detection store \(no index\.json\); "
                                                  r"refusing to replace it"):
        build_detection_store({"good": good}, str(tmp_path / "dets"))
    assert os.listdir(tmp_path / "dets") == ["good.pkl"]


# ----------------------------------------------------------------------------- tampered stores


@pytest.fixture(scope="module")
def built_store(tmp_path_factory):
    root = tmp_path_factory.mktemp("built")
    rng = np.random.default_rng(1)
    files = {}
    for key in ("v0", "v1", "v2"):
        save_detections(root / f"{key}.pkl", (120, 160), random_frames(rng, 20, (120, 160)))
        files[key] = str(root / f"{key}.pkl")
    return build_detection_store(files, str(root / "store"), num_frames={k: 20 for k in files})["store"]


def edit_array(store, name, change):
    path = os.path.join(store, f"{name}.npy")
    array = np.load(path)
    array = change(array)
    np.save(path, array)


def edit_index(store, change):
    path = os.path.join(store, "index.json")
    with open(path) as f:
        index = json.load(f)
    change(index)
    with open(path, "w") as f:
        json.dump(index, f)


def _set(array, at, value):
    array[at] = value
    return array


TAMPERING = [
    ("score > 1", lambda s: edit_array(s, "scores", lambda a: _set(a, 5, 1.5)),
     r"row 5 .* has a score outside \[0\.5, 1\]"),
    ("score under the threshold", lambda s: edit_array(s, "scores", lambda a: _set(a, 0, 0.1)),
     r"row 0 .* has a score outside \[0\.5, 1\]"),
    ("x1 > x2", lambda s: edit_array(s, "boxes", lambda a: _set(a, (3, 0), a[3, 2] + 1)),
     r"row 3 .* has a box with x1 > x2 or y1 > y2"),
    ("NaN box", lambda s: edit_array(s, "boxes", lambda a: _set(a, (4, 1), np.nan)), r"row 4 .* has a NaN/inf box"),
    ("huge box", lambda s: edit_array(s, "boxes", lambda a: _set(a, (4, 2), 3e38)), r"row 4 .* outside its video's"),
    ("kind 3", lambda s: edit_array(s, "kinds", lambda a: _set(a, 2, 3)), r"row 2 .* has a kind other than 0"),
    ("frame beyond the video", lambda s: edit_array(s, "frames", lambda a: _set(a, -1, 20)),
     r"frame 20.* has a frame outside its video"),
    ("frames out of order",
     lambda s: edit_array(s, "frames", lambda a: _set(a, 1, a[0] - 1) if a[0] > 0 else _set(a, 0, 5)),
     r"comes after a later frame of its video|frame outside"),
    ("wrong dtype", lambda s: edit_array(s, "scores", lambda a: a.astype(np.float64)),
     r"scores\.npy: expected a C-ordered float32 array of shape \(\d+,\) \(num_rows from index\.json\), got float64"),
    ("rows cut off", lambda s: edit_array(s, "frames", lambda a: a[:-1]), r"frames\.npy: expected a C-ordered int32"),
    ("not an npy", lambda s: open(os.path.join(s, "kinds.npy"), "wb").write(b"junk"),
     r"kinds\.npy: cannot memory-map this detection-store array"),
    ("index not JSON", lambda s: open(os.path.join(s, "index.json"), "w").write("{"),
     r"index\.json: malformed detection-store index, not valid JSON"),
    ("index version", lambda s: edit_index(s, lambda i: i.update(version=2)), r"index\.json: malformed .*version 2"),
    ("index rows overlap", lambda s: edit_index(s, lambda i: i["videos"]["v1"].update(rows=[0, 3])),
     r"video 'v1' rows \[0, 3\] should be \[start, end\] with start = \d+ \(the previous video's end\)"),
    ("index frame size", lambda s: edit_index(s, lambda i: i["videos"]["v0"].update(frame_size=[120])),
     r"video 'v0' frame_size \[120\] should be \[H, W\]"),
    ("index threshold", lambda s: edit_index(s, lambda i: i.update(threshold=1.5)), r"'threshold' should be a number"),
    ("index unsorted", lambda s: edit_index(s, lambda i: i["videos"].update(a=i["videos"].pop("v2"))),
     r"video key 'a' is empty or out of order \(keys are unique and sorted\)"),
]


@pytest.mark.parametrize("change, message", [t[1:] for t in TAMPERING], ids=[t[0] for t in TAMPERING])
def test_a_tampered_store_is_refused_at_open(built_store, tmp_path, change, message):
    store = str(tmp_path / "copy")
    shutil.copytree(built_store, store)
    DetectionStore(store)  # the copy itself is fine
    change(store)
    with pytest.raises(DetectionStoreError, match=message):
        DetectionStore(store)


# the tamperings that break rows of one video, not the whole store
ROW_TAMPERING = [t for t in TAMPERING if t[0] in (
    "score > 1", "score under the threshold", "x1 > x2", "NaN box", "huge box", "kind 3", "frame beyond the video",
    "frames out of order")]
STORE_TAMPERING = [t for t in TAMPERING if t not in ROW_TAMPERING]


@pytest.mark.parametrize("change, message", [t[1:] for t in ROW_TAMPERING], ids=[t[0] for t in ROW_TAMPERING])
def test_a_bad_row_fails_only_its_video_when_opened_leniently(built_store, tmp_path, change, message):
    store = str(tmp_path / "copy")
    shutil.copytree(built_store, store)
    change(store)
    opened = DetectionStore(store, strict=False)
    unusable = opened.unusable(opened.keys())
    assert len(unusable) == 1, unusable
    (key, reason), = unusable.items()
    assert re.search(message, reason) and reason.startswith(f"{store}: row ")
    # the row named lies in the rows of the video named (index.json)
    row = int(re.match(rf"{re.escape(store)}: row (\d+) \(video {key!r}", reason).group(1))
    with open(os.path.join(store, "index.json")) as f:
        start, end = json.load(f)["videos"][key]["rows"]
    assert start <= row < end
    with pytest.raises(DetectionStoreError) as e:
        opened.clip(key, np.arange(20), (120, 160))
    assert str(e.value) == reason
    # the other videos read as before, and the lenient store still pickles for workers
    pristine = DetectionStore(built_store)
    for other in set(opened.keys()) - {key}:
        assert_same_detections(opened.clip(other, np.arange(20), (60, 80)),
                               pristine.clip(other, np.arange(20), (60, 80)))
    with pytest.raises(DetectionStoreError, match=re.escape(reason)):
        pickle.loads(pickle.dumps(opened)).clip(key, [0], (120, 160))


@pytest.mark.parametrize("change, message", [t[1:] for t in STORE_TAMPERING], ids=[t[0] for t in STORE_TAMPERING])
def test_a_store_unusable_as_a_whole_is_refused_even_leniently(built_store, tmp_path, change, message):
    store = str(tmp_path / "copy")
    shutil.copytree(built_store, store)
    change(store)
    with pytest.raises(DetectionStoreError, match=message):
        DetectionStore(store, strict=False)


def test_a_truncated_array_is_refused_naming_the_file(built_store, tmp_path):
    store = str(tmp_path / "copy")
    shutil.copytree(built_store, store)
    path = os.path.join(store, "boxes.npy")
    os.truncate(path, os.path.getsize(path) - 16)  # the last row's bytes lost
    with pytest.raises(DetectionStoreError, match=r"boxes\.npy: cannot memory-map this detection-store array .* "
                                                  r"truncated or not a \.npy; rebuild the store"):
        DetectionStore(store, strict=False)


def test_a_clip_frame_with_too_many_rows_is_refused(built_store, monkeypatch):
    import data.detection_store as detection_store

    store = DetectionStore(built_store)
    clip = store.clip("v0", np.arange(20), (120, 160))
    frame = int(np.bincount(clip["frame"].numpy()).argmax())  # the clip's most crowded frame
    rows = int((clip["frame"] == frame).sum())
    assert rows >= 2
    # a store built before the limit (or edited) may hold more than a frame may: lowered here to rows - 1
    monkeypatch.setattr(detection_store, "MAX_BOXES_PER_FRAME", rows - 1)
    with pytest.raises(DetectionStoreError, match=rf"video 'v0': frame {frame} holds {rows} rows, more than the "
                                                  rf"{rows - 1} a frame may hold"):
        store.clip("v0", np.arange(20), (120, 160))


def test_a_folder_of_pickles_is_not_a_store(built_store):
    folder = os.path.dirname(built_store)
    with pytest.raises(DetectionStoreError, match=r"not a detection store \(no index\.json\) -- it looks like a folder "
                                                  r"of per-video detection files: convert them once"):
        DetectionStore(folder)


def test_pickles_without_the_arrays_and_reopens_lazily(built_store, tmp_path):
    store = DetectionStore(built_store)
    blob = pickle.dumps(store)
    assert len(blob) < 2000 and store.num_rows > 50  # the index only, never the rows
    copy = pickle.loads(blob)
    assert copy._arrays is None
    for key in store.keys():
        assert_same_detections(copy.clip(key, np.arange(20), (60, 80)), store.clip(key, np.arange(20), (60, 80)))
    # a store rebuilt after the parent checked it is not read unchecked by a worker
    moved = str(tmp_path / "store")
    shutil.copytree(built_store, moved)
    opened = DetectionStore(moved)
    edit_array(moved, "scores", lambda a: _set(a, 0, 7.0))
    with pytest.raises(DetectionStoreError, match=r"scores\.npy: changed since the store was opened and checked"):
        pickle.loads(pickle.dumps(opened)).clip("v0", [0], (120, 160))


# ----------------------------------------------------------------------------- a data set on a store


def test_kinetics_dataset_reads_a_store_built_from_the_generator_pickles(tmp_path):
    k = make_kinetics(str(tmp_path / "k"), num_classes=2, videos_per_class=2, val_videos_per_class=1, size=(48, 64),
                      num_frames=24)
    files = {v: detections_path(k["detections"], v) for v in k["labels"]}
    report = build_detection_store(files, str(tmp_path / "store"), video_sizes={v: k["size"] for v in files},
                                   num_frames={v: k["num_frames"] for v in files}, source=k["detections"])
    assert report["failures"] == [] and report["videos"] == 6 and report["boxes_dropped"] == 6 * 8  # every third frame
    sampling = ClipSampling(clip_len=8, stride=2, min_size=48, max_size=56, crop_size=48, test_size=48, num_clips=2,
                            num_crops=1)
    for training in (True, False):
        ds = KineticsDataset(training, list_path=k["lists"]["train"], video_root=k["video_root"], num_classes=2,
                             sampling=sampling, detections=report["store"])
        for index in range(len(ds)):
            sample = ds[index]
            want = clip_detections(load_detections(files[sample["video_id"]]), sample["frame_indices"],
                                   sample["transform"].frame_size)
            assert_same_detections(sample["detections"], want)
            assert len(want["frame"]) > 0
