"""score_teachers.py as a user runs it, on generated Kinetics videos: the stored Ego-Scores and
Object-Scores against a direct computation (the paper's Eqns 1 and 3 written out with
torchvision's own ImageNet preset), the metadata, the missing-weights message, the failure list,
resume after SIGKILL, the 2-process merge, the embeddings and the detection store. Then the
fine-tuning data sets (generated Charades-Ego frame folders, EPIC-Kitchens-100 segments): keys
equal to the fine-tuning datasets' video ids, rows against a direct computation over the
sample's own segment, and train_finetune.py taking the written embeddings."""
import collections
import json
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import torchvision

from data import synthetic
from data.datasets import CharadesEgoDataset, EpicKitchensDataset
from data.detection_store import DetectionStore
from data.teacher_targets import load_detections, load_teacher_embeddings, load_teacher_scores
from data.video import decode_frames
from models import build_model, load_model, save_checkpoint

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "score_teachers.py")
# Videos of 80 frames, so that M_ego's 64-frame window (Slow 8x8) has room to move.
NUM_FRAMES, SIZE = 80, (40, 48)
EGO = dict(teacher="ego", ego_clips=3, ego_test_size=32)
OBJECT = dict(teacher="object", object_arch="resnet18", object_frames=5, object_resize=64, object_crop=56)
RESNET18_CACHE_FILE = "resnet18-f37072fd.pth"  # the file name of torchvision's IMAGENET1K_V1 URL


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Four generated videos and, third in the list, a truncated one; M_ego with random but
    calibrated weights; a ResNet-18 state dict, also in a torchvision cache."""
    root = tmp_path_factory.mktemp("teachers")
    kinetics = synthetic.make_kinetics(str(root / "k"), num_classes=2, videos_per_class=2, val_videos_per_class=0,
                                       num_frames=NUM_FRAMES, size=SIZE)
    video_root = kinetics["video_root"]
    entries = [tuple(line.rsplit(" ", 1)) for line in open(kinetics["lists"]["train"]).read().splitlines()]
    corrupt_rel = os.path.join(os.path.dirname(entries[0][0]), "corruptclip_000001_000011.mp4")
    shutil.copy(os.path.join(video_root, entries[0][0]), os.path.join(video_root, corrupt_rel))
    synthetic.corrupt_video(os.path.join(video_root, corrupt_rel), "truncate", keep_fraction=0.3)
    entries.insert(2, (corrupt_rel, "0"))
    video_list = root / "list.txt"
    video_list.write_text("".join(f"{path} {label}\n" for path, label in entries))
    ids = [os.path.splitext(os.path.basename(p))[0] for p, _ in entries]

    torch.manual_seed(0)
    ego_model = build_model("slow_8x8_r50", {"action": 2})
    calibrate(ego_model)
    ego_checkpoint = root / "m_ego.pyth"
    save_checkpoint(ego_checkpoint, ego_model, config={"test_size": 32})

    torch.manual_seed(1)
    resnet = torchvision.models.resnet18()
    weights = root / "resnet18.pth"
    torch.save(resnet.state_dict(), weights)
    torch_home = root / "torch_home"
    (torch_home / "hub" / "checkpoints").mkdir(parents=True)
    shutil.copy(weights, torch_home / "hub" / "checkpoints" / RESNET18_CACHE_FILE)
    return {"root": root, "kinetics": kinetics, "video_list": str(video_list), "video_root": video_root,
            "ids": ids, "good": [v for v in ids if not v.startswith("corrupt")],
            "paths": {v: os.path.join(video_root, p) for v, (p, _) in zip(ids, entries)},
            "ego_checkpoint": str(ego_checkpoint), "ego_model": ego_model.eval(), "weights": str(weights),
            "resnet": resnet.eval(), "torch_home": str(torch_home)}


@torch.no_grad()
def calibrate(model):
    """Spread-out BatchNorm and classifier weights with running statistics from one batch, so
    that different videos get clearly different scores from an untrained model."""
    g = torch.Generator().manual_seed(0)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm3d):
            module.weight.uniform_(0.5, 1.5, generator=g)
            module.bias.normal_(0, 0.1, generator=g)
            module.momentum = None  # running statistics = this batch's
    model.head.projections["action"].weight.normal_(0, 0.05, generator=g)
    model.train()
    model([(torch.rand(4, 3, 8, 32, 32, generator=g) - 0.45) / 0.225])
    model.eval()


def command(data, out_dir, **settings):
    merged = {"video_list": data["video_list"], "video_root": data["video_root"], "out_dir": str(out_dir),
              "ego_checkpoint": data["ego_checkpoint"], "device": "cpu", "num_workers": 0, "videos_per_batch": 2,
              "save_every": 2, "poll_seconds": 0.1, **settings}
    return [sys.executable, SCRIPT] + [f"--{k}={v}" for k, v in merged.items()]


def run(cmd, env=None, expect_ok=True):
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, **(env or {})})
    if expect_ok:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


def cache_env(data):
    return {"TORCH_HOME": data["torch_home"]}


# ----------------------------------------------------------------------------- direct computation


def kinetics_test_window(num_frames, clip_len, stride, k, n):
    """The Kinetics test rule written out: window k of n starts at (L - window) * k / n and
    clip_len indices are spread over it by linspace, floored."""
    window = clip_len * stride
    start = max(num_frames - window, 0) * k / n
    return np.minimum(np.floor(np.linspace(start, start + window - 1, clip_len)), num_frames - 1).astype(np.int64)


def ego_outputs(data, read_frames, num_frames, clips=3):
    """M_ego on the clips of an L = num_frames segment by the Kinetics test rule, `read_frames`
    giving uint8 [T, 40, 48, 3] frames at segment indices: each clip's frames resized (short side
    40 -> 32, bilinear) and centre-cropped by interpolate, normalised as in training."""
    batch = []
    for k in range(clips):
        frames = torch.from_numpy(read_frames(kinetics_test_window(num_frames, 8, 8, k, clips)))
        x = frames.permute(0, 3, 1, 2).float()  # T, 3, 40, 48
        x = torch.nn.functional.interpolate(x, size=(32, 38), mode="bilinear", align_corners=False)
        x = x[:, :, :, 3:35]  # centre crop: offset ceil((38 - 32) / 2) = 3
        batch.append(((x / 255 - 0.45) / 0.225).permute(1, 0, 2, 3))
    with torch.no_grad():
        return data["ego_model"]([torch.stack(batch)])


def ego_reference(data, video_id, clips=3):
    """log(mean over the clips of softmax(M_ego(clip)))."""
    outputs = ego_outputs(data, lambda indices: decode_frames(data["paths"][video_id], indices), NUM_FRAMES, clips)
    return outputs["action"].softmax(-1).mean(0).log()


def object_frames(data, video_id, count=5):
    """The centre frames of `count` equal segments, prepared by torchvision's ImageNet preset
    (resize 64, centre crop 56 here; 256 / 224 in the paper's setting)."""
    indices = (2 * np.arange(count) + 1) * NUM_FRAMES // (2 * count)
    frames = torch.from_numpy(decode_frames(data["paths"][video_id], indices)).permute(0, 3, 1, 2)
    preset = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.transforms(crop_size=56, resize_size=64)
    return preset(frames)


def object_reference(data, video_id):
    with torch.no_grad():
        return data["resnet"](object_frames(data, video_id)).softmax(-1).mean(0).log()


def test_uniform_frame_rule_and_kinetics_window_by_hand():
    """The two sampling rules at the tests' sizes, worked by hand."""
    assert ((2 * np.arange(5) + 1) * NUM_FRAMES // 10).tolist() == [8, 24, 40, 56, 72]
    # window 64 of an 80-frame video, k = 1 of 3: start 16/3, linspace step 9
    assert kinetics_test_window(80, 8, 8, 1, 3).tolist() == [5, 14, 23, 32, 41, 50, 59, 68]


# ----------------------------------------------------------------------------- tests


@pytest.fixture(scope="module")
def ego_run(data):
    out = data["root"] / "ego"
    done = run(command(data, out, **EGO))
    return out, done.stdout + done.stderr


def test_ego_scores_match_the_direct_computation(data, ego_run):
    out, _ = ego_run
    scores = load_teacher_scores(out / "ego_scores.pt", teacher="ego")
    assert scores.video_ids == data["good"]  # list order, the corrupt video left out
    for video_id in data["good"]:
        torch.testing.assert_close(scores[video_id], ego_reference(data, video_id), atol=2e-5, rtol=1e-4)
    assert scores.scores.exp()[:, 1].std() > 0.01  # the videos got different scores
    meta = scores.metadata
    assert meta["clips_per_video"] == 3 and meta["test_size"] == 32 and meta["clip_len"] == 8 and meta["stride"] == 8
    assert meta["egocentric_class"] == 1 and meta["aggregation"].startswith("log of the clip-averaged softmax")
    assert meta["checkpoint"] == os.path.abspath(data["ego_checkpoint"])
    assert meta["videos"] == 5 and meta["failed_videos"] == 1


def test_the_corrupt_video_is_listed_counted_and_the_run_goes_on(data, ego_run):
    out, printed = ego_run
    (line,) = open(out / "ego_scores.pt.failures.jsonl").read().splitlines()
    entry = json.loads(line)
    assert entry["video_id"] == "corruptclip_000001_000011"
    assert entry["path"] == data["paths"]["corruptclip_000001_000011"]
    assert "corruptclip_000001_000011.mp4" in entry["error"]
    assert "4 of 5 videos scored, 1 failed" in printed


@pytest.fixture(scope="module")
def object_run(data):
    out = data["root"] / "object"
    done = run(command(data, out, **OBJECT), env=cache_env(data))
    return out, done.stdout + done.stderr


def test_object_scores_match_torchvisions_preset_and_the_cache_weights(data, object_run):
    out, printed = object_run
    scores = load_teacher_scores(out / "object_scores.pt", teacher="object")
    assert scores.video_ids == data["good"]
    for video_id in data["good"]:
        torch.testing.assert_close(scores[video_id], object_reference(data, video_id), atol=2e-5, rtol=1e-4)
    meta = scores.metadata
    cached = os.path.join(data["torch_home"], "hub", "checkpoints", RESNET18_CACHE_FILE)
    assert meta["weights"] == f"torchvision IMAGENET1K_V1 ({cached})" and meta["untrained_weights"] is False
    assert meta["frames_per_video"] == 5 and meta["resize"] == 64 and meta["crop"] == 56 and meta["arch"] == "resnet18"
    assert meta["mean"] == [0.485, 0.456, 0.406] and meta["std"] == [0.229, 0.224, 0.225]
    assert meta["dtype"] == "float32" and meta["failed_videos"] == 1
    assert "WARNING" not in printed


def test_missing_weights_stop_with_how_to_get_them(data, tmp_path):
    done = run(command(data, tmp_path, **OBJECT), env={"TORCH_HOME": str(tmp_path / "empty")}, expect_ok=False)
    assert done.returncode != 0
    message = done.stderr
    expected_file = os.path.join(str(tmp_path / "empty"), "hub", "checkpoints", RESNET18_CACHE_FILE)
    assert f"{expected_file} does not exist" in message
    assert "torchvision.models.resnet18(weights='IMAGENET1K_V1')" in message
    assert "https://download.pytorch.org/models/resnet18-f37072fd.pth" in message
    assert "--weights=PATH" in message and "--untrained_weights_ok=true" in message
    assert not (tmp_path / "object_scores.pt").exists()


def test_resume_after_sigkill_gives_the_uninterrupted_file(data, ego_run, tmp_path):
    """Killed once its first partial file is written, then rerun: the same final file as the
    uninterrupted run, and a log line saying how many videos were skipped. (Without
    --ego_test_size, M_ego's own test size from its checkpoint, 32, is the one used.)"""
    partial = tmp_path / "partial" / "ego_scores"
    settings = {k: v for k, v in EGO.items() if k != "ego_test_size"}
    proc = subprocess.Popen(command(data, tmp_path, **settings), cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 300
        while not (partial.is_dir() and any(f.suffix == ".pt" for f in partial.iterdir())):
            assert proc.poll() is None, "the run ended before its first partial write"
            assert time.time() < deadline
            time.sleep(0.02)
        assert proc.poll() is None, "the run finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert not (tmp_path / "ego_scores.pt").exists()
    done = run(command(data, tmp_path, **settings))
    # the kill came after the first write (videos 1-2), at most after the second (3-4, one corrupt)
    skipped = re.search(r"ego_scores: (\d) of 5 videos already scored in .* and skipped; (\d) failed before "
                        r"\(skipped; --retry_failed=true tries them again\); (\d) to score", done.stdout)
    assert skipped, done.stdout
    scored, failed, left = map(int, skipped.groups())
    assert (scored, failed, left) in ((2, 0, 3), (3, 1, 1))
    resumed = torch.load(tmp_path / "ego_scores.pt", weights_only=True)
    uninterrupted = torch.load(ego_run[0] / "ego_scores.pt", weights_only=True)
    assert resumed.keys() == uninterrupted.keys()
    for key, value in uninterrupted.items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(resumed[key], value), key  # the same batches: the same numbers
        else:
            assert resumed[key] == value, key
    assert (tmp_path / "ego_scores.pt.failures.jsonl").read_text() == \
        (ego_run[0] / "ego_scores.pt.failures.jsonl").read_text()


def test_a_rerun_with_other_settings_is_refused(data, ego_run):
    done = run(command(data, ego_run[0], **{**EGO, "ego_clips": 2}), expect_ok=False)
    assert done.returncode != 0
    assert "holds ego_scores rows made with other settings (clips_per_video: 3 then, 2 now)" in done.stderr


def test_two_processes_score_each_video_once_and_rank_0_merges(data, object_run, tmp_path):
    """torchrun with 2 gloo processes and --weights: the same rows as one process."""
    cmd = command(data, tmp_path, **OBJECT, weights=data["weights"])
    run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", *cmd[1:]])
    two = load_teacher_scores(tmp_path / "object_scores.pt")
    one = load_teacher_scores(object_run[0] / "object_scores.pt")
    assert two.video_ids == one.video_ids == data["good"]
    torch.testing.assert_close(two.scores, one.scores, atol=1e-5, rtol=1e-5)
    assert two.metadata["weights"] == os.path.abspath(data["weights"])
    writers = {f.split("-rank")[1][:3] for f in os.listdir(tmp_path / "partial" / "object_scores")
               if f.endswith(".pt")}
    assert writers == {"000", "001"}
    assert [json.loads(line)["video_id"] for line in open(tmp_path / "object_scores.pt.failures.jsonl")] == \
        ["corruptclip_000001_000011"]


def test_embeddings_of_both_teachers(data, tmp_path):
    two = tmp_path / "two.txt"
    two.write_text("".join(open(data["video_list"]).readlines()[:2]))
    run(command(data, tmp_path, **{**OBJECT, **EGO, "teacher": "embeddings"}, untrained_weights_ok=True,
                video_list=str(two)), env={"TORCH_HOME": str(tmp_path / "empty")})
    ego = load_teacher_embeddings(tmp_path / "ego_embeddings.pt", teacher="ego", dim=2048)
    obj = load_teacher_embeddings(tmp_path / "object_embeddings.pt", teacher="object", dim=512)
    assert ego.video_ids == obj.video_ids == data["good"][:2]
    assert obj.metadata["untrained_weights"] is True and obj.metadata["weights"].startswith("untrained")
    assert ego.metadata["pooling"] == "mean over the video's N clips" and ego.metadata["clips_per_video"] == 3
    # ResNet's pooled feature, averaged over the frames, with the weights of an untrained run
    torch.manual_seed(0)
    resnet = torchvision.models.resnet18().eval()
    resnet.fc = torch.nn.Identity()
    with torch.no_grad():
        expected = resnet(object_frames(data, data["good"][1])).mean(0)
    torch.testing.assert_close(obj[data["good"][1]], expected, atol=2e-5, rtol=1e-4)


def write_json_detections(pkl_path, json_path):
    dets = load_detections(pkl_path)
    frames = {str(f): {"hand_dets": hand.tolist() or None, "obj_dets": obj.tolist() or None}
              for f, (hand, obj) in dets.frames.items()}
    with open(json_path, "w") as f:
        json.dump({"frame_size": list(dets.frame_size), "frames": frames}, f)


def test_detections_become_one_store_checked_against_the_videos(data, tmp_path):
    """Pickles and a JSON file of the listed videos, a file of no listed video, and a pickle
    that the restricted unpickler refuses: without --trust_pickle the build stops naming it,
    with it the store holds every listed video's boxes with score >= 0.5."""
    folder = tmp_path / "dets"
    folder.mkdir()
    source = data["kinetics"]["detections"]
    good = data["good"]
    for video_id in good[:2]:
        shutil.copy(os.path.join(source, video_id + ".pkl"), folder)
    write_json_detections(os.path.join(source, good[2] + ".pkl"), folder / (good[2] + ".json"))
    with open(folder / (good[3] + ".pkl"), "wb") as f:  # a Counter is a dict, but not one plain pickle allows
        pickle.dump({"frame_size": (80, 96), "frames": collections.Counter()}, f)
    shutil.copy(os.path.join(source, good[0] + ".pkl"), folder / "someothervideo_000001_000011.pkl")

    refused = run(command(data, tmp_path, teacher="detections", detection_dir=str(folder)), expect_ok=False)
    assert refused.returncode != 0
    assert f"{good[3]}.pkl" in refused.stderr and "collections.Counter" in refused.stderr
    assert not (tmp_path / "detections").exists()

    done = run(command(data, tmp_path, teacher="detections", detection_dir=str(folder), trust_pickle=True))
    assert "1 files of" in done.stdout and "name no video of" in done.stdout
    store = DetectionStore(tmp_path / "detections")
    assert sorted(store.keys()) == sorted(good)
    for video_id in good[:3]:
        assert store.frame_size(video_id) == (80, 96)  # the detector ran at 2x the 40 x 48 video
    index = json.load(open(tmp_path / "detections" / "index.json"))
    assert index["threshold"] == 0.5 and index["detector"] == "100DOH"
    assert index["source"] == str(folder)
    assert all(index["videos"][v]["num_frames"] == NUM_FRAMES for v in good)
    kept = 0
    for video_id in good[:3]:
        dets = load_detections(os.path.join(source, video_id + ".pkl"))
        kept += sum(int((a[:, 4] >= 0.5).sum()) for pair in dets.frames.values() for a in pair)
    assert index["num_rows"] == kept and index["videos"][good[3]]["rows"][0] == index["videos"][good[3]]["rows"][1]
    (line,) = open(tmp_path / "detections.failures.jsonl").read().splitlines()
    assert json.loads(line)["video_id"] == "corruptclip_000001_000011"


# ----------------------------------------------------------------------------- fine-tuning data sets


def read_jpegs(paths):
    """uint8 [len(paths), H, W, 3] decoded by torchvision.io, file by file."""
    return np.stack([torchvision.io.decode_image(torchvision.io.read_file(str(p)), mode=torchvision.io.ImageReadMode.RGB)
                     .permute(1, 2, 0).numpy() for p in paths])


def imagenet_preset(frames):
    preset = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.transforms(crop_size=56, resize_size=64)
    return preset(torch.from_numpy(frames).permute(0, 3, 1, 2))


def resnet_feature(resnet, x):
    """The pooled feature: the network with its fc layer left out."""
    body = torch.nn.Sequential(*list(resnet.children())[:-1])
    with torch.no_grad():
        return torch.flatten(body(x), 1)


def dataset_command(data, out_dir, dataset, annotations, data_root, **settings):
    cmd = command(data, out_dir, dataset=dataset, annotations=",".join(annotations), data_root=data_root, **settings)
    return [part for part in cmd if not part.startswith(("--video_list=", "--video_root="))]


@pytest.fixture(scope="module")
def egocentric(tmp_path_factory):
    """Charades-Ego as 24 fps JPEG folders of 16 frames; EPIC-Kitchens-100 frame folders with
    12-frame segments after 4-frame gaps (so a segment starts at frame 5, 21, ...)."""
    root = tmp_path_factory.mktemp("egocentric")
    charades = synthetic.make_charades_ego(str(root / "charades"), num_classes=2, train_pairs=2, test_pairs=1,
                                           size=SIZE, num_frames=16, as_frames=True)
    epic = synthetic.make_epic100(str(root / "epic"), size=SIZE, segment_frames=12, gap_frames=4)
    return {"root": root, "charades": charades, "epic": epic}


@pytest.fixture(scope="module")
def charades_run(data, egocentric):
    charades = egocentric["charades"]
    out = egocentric["root"] / "charades_out"
    files = [charades["csv"]["train"], charades["csv"]["test"]]
    for teacher in ("object", "embeddings"):
        run(dataset_command(data, out, "charades_ego", files, charades["data_root"],
                            **{**OBJECT, "teacher": teacher}, embedding_teachers="object", weights=data["weights"]))
    return out, files


def test_charades_ego_object_scores_and_embeddings_are_keyed_as_fine_tuning(data, egocentric, charades_run):
    out, files = charades_run
    charades = egocentric["charades"]
    expected_ids = [v.video_id for f in files
                    for v in CharadesEgoDataset(False, csv_path=f, data_root=charades["data_root"], views="both").videos]
    assert any(v.endswith("EGO") for v in expected_ids) and any(not v.endswith("EGO") for v in expected_ids)
    scores = load_teacher_scores(out / "object_scores.pt", teacher="object")
    embeddings = load_teacher_embeddings(out / "object_embeddings.pt", teacher="object", dim=512)
    assert scores.video_ids == embeddings.video_ids == expected_ids
    assert scores.metadata["dataset"] == "charades_ego" and scores.metadata["videos"] == len(expected_ids)
    # one sample by hand: T = 5 of 16 frames -> 0-based 1, 4, 8, 11, 14 -> files 2, 5, 9, 12, 15
    video_id = expected_ids[-1]
    folder = os.path.join(charades["data_root"], video_id)
    x = imagenet_preset(read_jpegs([os.path.join(folder, f"{video_id}-{n:06d}.jpg") for n in (2, 5, 9, 12, 15)]))
    with torch.no_grad():
        torch.testing.assert_close(scores[video_id], data["resnet"](x).softmax(-1).mean(0).log(), atol=2e-5,
                                   rtol=1e-4)
    torch.testing.assert_close(embeddings[video_id], resnet_feature(data["resnet"], x).mean(0), atol=2e-5, rtol=1e-4)


@pytest.fixture(scope="module")
def epic_run(data, egocentric):
    epic = egocentric["epic"]
    out = egocentric["root"] / "epic_out"
    files = [epic["csv"]["train"], epic["csv"]["validation"]]
    run(dataset_command(data, out, "epic100", files, epic["root"], **{**OBJECT, **EGO, "teacher": "embeddings"},
                        weights=data["weights"]))
    return out, files


def test_epic_embeddings_are_keyed_by_segment_and_sampled_within_it(data, egocentric, epic_run):
    out, files = epic_run
    epic = egocentric["epic"]
    items = [v for f in files for v in EpicKitchensDataset(False, annotations=f, data_root=epic["root"]).videos]
    ego = load_teacher_embeddings(out / "ego_embeddings.pt", teacher="ego", dim=2048)
    obj = load_teacher_embeddings(out / "object_embeddings.pt", teacher="object", dim=512)
    assert ego.video_ids == obj.video_ids == [v.video_id for v in items]
    assert len(set(obj.video_ids)) == len(items) > len({v.recording for v in items})  # segments, not recordings
    assert obj.metadata["dataset"] == "epic100" and obj.metadata["frames_per_video"] == 5
    # the second segment of the first recording: 1-based frames 21..32 of its folder
    item = [v for v in items if v.recording == items[0].recording][1]
    assert (item.first_frame, item.num_frames) == (20, 12)
    folder = epic["paths"][item.recording]

    def segment_frames(offsets):  # 0-based segment offsets -> the recording's files 21 + offset
        return read_jpegs([os.path.join(folder, f"frame_{21 + int(k):010d}.jpg") for k in offsets])

    # T = 5 within the 12-frame segment: offsets floor((2k + 1) * 12 / 10) = 1, 3, 6, 8, 10
    x = imagenet_preset(segment_frames([1, 3, 6, 8, 10]))
    torch.testing.assert_close(obj[item.video_id], resnet_feature(data["resnet"], x).mean(0), atol=2e-5, rtol=1e-4)
    # M_ego: window 64 > 12, so every clip is linspace(0, 63, 8) clamped to the segment's last frame
    assert kinetics_test_window(12, 8, 8, 2, 3).tolist() == [0, 9, 11, 11, 11, 11, 11, 11]
    expected = ego_outputs(data, segment_frames, 12)["feature"].mean(0)
    # float32 sums in other batch shapes (2 videos x 3 clips there) differ by ~3e-5 here and there
    torch.testing.assert_close(ego[item.video_id], expected, atol=1e-4, rtol=1e-4)


def test_train_finetune_takes_the_epic_embeddings(egocentric, epic_run, tmp_path):
    out, files = epic_run
    cmd = [sys.executable, os.path.join(ROOT, "train_finetune.py"), "--preset=epic100",
           f"--embeddings={out / 'ego_embeddings.pt'},{out / 'object_embeddings.pt'}", "--arch=slow_8x8_r50",
           "--min_size=32", "--max_size=40", "--crop_size=32", "--test_size=32", "--num_clips=1", "--num_crops=1",
           "--batch_size=2", "--base_lr_batch=2", "--num_workers=0", "--epochs=1", "--device=cpu",
           f"--train_annotations={files[0]}", f"--val_annotations={files[1]}",
           f"--data_root={egocentric['epic']['root']}", f"--out_dir={tmp_path}"]
    run(cmd)  # every training and validation segment must have both rows, or the datasets refuse to build
    model, _ = load_model(tmp_path / "final.pyth")
    assert model.head.extra_dim == 2048 + 512  # the classifier took the appended embeddings


def test_dataset_settings_are_checked(data, egocentric, tmp_path):
    epic = egocentric["epic"]
    refused = run(command(data, tmp_path, dataset="epic100", **OBJECT), expect_ok=False)
    assert refused.returncode != 0 and "--video_list is a setting of kinetics, not of --dataset=epic100" in \
        refused.stderr
    refused = run(dataset_command(data, tmp_path, "epic100", [epic["csv"]["train"]], epic["root"],
                                  teacher="detections", detection_dir=str(tmp_path)), expect_ok=False)
    assert refused.returncode != 0 and "--dataset=kinetics only" in refused.stderr
