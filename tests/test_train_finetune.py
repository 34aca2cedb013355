"""train_finetune.py as a user runs it, on generated data in the official formats: every data set
and initialisation mode trains a few steps, writes its official submission file, and that file
scores the same through evaluate.py; Ego-Exo*, "append", the data fraction and the binary
no-pair task run; two gloo processes evaluate every video once; a killed run resumes exactly."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import torchvision

from data import synthetic
from data.teacher_targets import save_teacher_embeddings
from models import build_model, save_checkpoint

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = dict(arch="slow_8x8_r50", min_size=32, max_size=40, crop_size=32, test_size=32, num_clips=2, num_crops=1,
             batch_size=2, base_lr=0.01, base_lr_batch=2, num_workers=0, log_every=1, device="cpu", epochs=1,
             eval_every=1)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("ft")
    small = dict(size=(40, 48))
    return {"charades": synthetic.make_charades_ego(str(root / "c"), num_classes=3, train_pairs=3, test_pairs=2,
                                                    num_frames=24, as_frames=True, **small),
            "epic100": synthetic.make_epic100(str(root / "e100"), segment_frames=12, gap_frames=4, **small),
            "epic55": synthetic.make_epic55(str(root / "e55"), segment_frames=12, gap_frames=4, **small),
            "ssv2": synthetic.make_ssv2(str(root / "s"), videos_per_class=1, val_videos_per_class=1, num_frames=16,
                                        **small),
            "kinetics": synthetic.make_kinetics(str(root / "k"), num_classes=2, videos_per_class=2,
                                                val_videos_per_class=1, num_frames=24, **small)}


def command(out_dir, **settings):
    merged = {**SMALL, "out_dir": str(out_dir), "keep_checkpoints": 1, **settings}
    return [sys.executable, os.path.join(ROOT, "train_finetune.py")] + [f"--{k}={v}" for k, v in merged.items()]


def run(cmd, timeout=600):
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def metrics_of(out_dir) -> list[dict]:
    with open(os.path.join(out_dir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def scored(*argv) -> dict:
    done = subprocess.run([sys.executable, os.path.join(ROOT, "evaluate.py"), *argv], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def same_metrics(script: dict, standalone: dict) -> None:
    for key, value in standalone.items():
        if isinstance(value, float):
            assert script[key] == pytest.approx(value, abs=1e-9), key


def charades(data, **settings):
    c = data["charades"]
    return {"preset": "charades_ego", "train_annotations": c["csv"]["train"], "val_annotations": c["csv"]["test"],
            "data_root": c["data_root"], **settings}


def test_charades_ego_from_scratch_writes_the_official_submission(data, tmp_path):
    log = run(command(tmp_path, **charades(data)))
    assert "tasks {'action': 157}" in log and "peak LR 0.01 (cosine)" in log
    (m,) = metrics_of(tmp_path)
    assert m["scored_videos"] == 2 and m["scored_views"] == 4 and m["failed_views"] == 0  # the test set's first-person videos
    lines = open(m["submission"]).read().splitlines()
    assert len(lines) == 2 and all(len(line.split()) == 158 and line.split()[0].endswith("EGO") for line in lines)
    same_metrics(m, scored("charades_ego", "--annotations", data["charades"]["csv"]["test"], m["submission"]))


def test_charades_ego_joint_from_a_pretraining_checkpoint(data, tmp_path):
    """The project's own pre-training checkpoint: every backbone tensor loads, the auxiliary
    heads are dropped and the 157-way classifier is new; the joint setting trains on both views
    and evaluates the first-person test videos."""
    pretrained = build_model("slow_8x8_r50", 400, ego_head=True, object_head=True, interaction_head=True, dropout=0.0)
    save_checkpoint(tmp_path / "pre.pyth", pretrained)
    log = run(command(tmp_path / "run", **charades(data, preset="charades_ego_joint"), init="checkpoint",
                      init_path=tmp_path / "pre.pyth"))
    backbone = [k for k in pretrained.state_dict() if k.startswith("s")]
    assert f"{len(backbone)} tensors loaded" in log
    assert "7 training samples" in log  # 3 recordings x 2 views + 1 first-person-only recording
    (m,) = metrics_of(tmp_path / "run")
    assert m["scored_videos"] == 2
    final = torch.load(tmp_path / "run" / "final.pyth", weights_only=True)["model_state"]
    assert not any(k.startswith(("interaction_head.", "head.ego_projection", "head.object_projection")) for k in final)
    assert final["head.projections.action.weight"].shape == (157, 2048)


def test_charades_ego_star_trains_the_interaction_maps(data, tmp_path):
    """Ego-Exo* on Charades-Ego: the interaction head kept from pre-training and trained with
    BCE maps (0.1 / 0.1) on detections made on the Charades-Ego videos."""
    pretrained = build_model("slow_8x8_r50", 400, interaction_head=True, dropout=0.0)
    save_checkpoint(tmp_path / "pre.pyth", pretrained)
    log = run(command(tmp_path / "run", **charades(data, preset="charades_ego_star"), init="checkpoint",
                      init_path=tmp_path / "pre.pyth", detections=data["charades"]["detection_store"]))
    assert "Ego-Exo* maps on" in log and "hand_map" in log and "object_map" in log
    final = torch.load(tmp_path / "run" / "final.pyth", weights_only=True)["model_state"]
    assert "interaction_head.projection.weight" in final
    assert not torch.equal(final["interaction_head.projection.weight"],
                           pretrained.state_dict()["interaction_head.projection.weight"])  # trained


def test_ego_classifier_binary_no_pair(data, tmp_path):
    """M_ego's training: the binary first-vs-third-person task over both views, one view per
    recording with no_pair."""
    log = run(command(tmp_path, **charades(data, preset="ego_classifier"), no_pair=True, epochs=1))
    assert "tasks {'action': 2}" in log and "slow_8x8_r50" in log
    (m,) = metrics_of(tmp_path)
    assert m["scored_videos"] == 4 and m["classes"] == 2 and 0.0 <= m["top1"] <= 100.0
    same_metrics(m, scored("topk", "--annotations", data["charades"]["csv"]["test"], m["submission"]))


def _caffe2_file(path, model):
    from tests.test_checkpoint import _write_caffe2_zoo_file
    _write_caffe2_zoo_file(path, model)


def test_epic100_caffe2_init_fraction_and_append(data, tmp_path):
    """A PySlowFast Caffe2 zoo .pkl (only with the trust flag), half the training videos, and two
    teacher-embedding files appended to the pooled feature."""
    e = data["epic100"]
    source = build_model("slow_8x8_r50", 400)
    _caffe2_file(tmp_path / "SLOW_8x8_R50.pkl", source)
    segment_ids = list(e["segments"])
    rng = np.random.default_rng(0)
    for name, dim in (("ego", 3), ("object", 5)):
        save_teacher_embeddings(tmp_path / f"{name}.pt", name, segment_ids,
                                torch.from_numpy(rng.standard_normal((len(segment_ids), dim)).astype(np.float32)))
    settings = dict(preset="epic100", train_annotations=e["csv"]["train"], val_annotations=e["csv"]["validation"],
                    data_root=e["root"], unseen_participants=e["unseen"]["validation"], tail_verbs=e["tail"]["verbs"],
                    tail_nouns=e["tail"]["nouns"], init="checkpoint", init_path=tmp_path / "SLOW_8x8_R50.pkl",
                    train_fraction=0.5, embeddings=f"{tmp_path / 'ego.pt'},{tmp_path / 'object.pt'}")
    done = subprocess.run(command(tmp_path / "refused", **settings), cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode != 0 and "SLOW_8x8_R50.pkl: a Caffe2 .pkl is a pickle" in done.stderr
    log = run(command(tmp_path / "run", **settings, trust_pickle=True))
    assert "10 training samples" in log  # 5 of the 10 training videos, 2 segments each
    assert "tasks {'verb': 97, 'noun': 300}" in log
    (m,) = metrics_of(tmp_path / "run")
    final = torch.load(tmp_path / "run" / "final.pyth", weights_only=True)["model_state"]
    assert final["head.projections.verb.weight"].shape == (97, 2048 + 8)
    backbone = [k for k in source.state_dict() if k.startswith("s") and not k.endswith("num_batches_tracked")]
    assert f"{len(backbone)} tensors loaded, 0 heads re-initialised" in log  # every backbone tensor
    same_metrics(m, scored("epic100", "--annotations", e["csv"]["validation"], "--unseen", e["unseen"]["validation"],
                           "--tail-verbs", e["tail"]["verbs"], "--tail-nouns", e["tail"]["nouns"], m["submission"]))


def test_epic55_star_from_imagenet_inflation(data, tmp_path):
    """2-D ImageNet inflation, and Ego-Exo*: the interaction head and its loss kept, trained on
    detections of the EPIC videos (weights 3.0 / 3.0)."""
    e = data["epic55"]
    resnet = torchvision.models.resnet50()
    torch.save(resnet.state_dict(), tmp_path / "resnet50.pth")
    log = run(command(tmp_path / "run", preset="epic55_star", train_annotations=e["csv"]["train"],
                      val_annotations=e["csv"]["train"], data_root=e["root"], detections=e["detection_store"],
                      init="imagenet", init_path=tmp_path / "resnet50.pth"))
    assert "inflated" in log and "Ego-Exo* maps on" in log and "hand_map" in log and "object_map" in log
    (m,) = metrics_of(tmp_path / "run")
    result = json.load(open(m["submission"]))
    assert result["version"] == "0.1" and all(len(r["action"]) == 100 for r in result["results"].values())
    same_metrics(m, scored("epic55", "--annotations", e["csv"]["train"], m["submission"]))


def test_ssv2_from_an_egoexo_release_checkpoint(data, tmp_path):
    """An Ego-Exo release `.pyth` (its names: head.projections.<i>, handobjhead.*), one view per
    video at test as the release's SSv2 config."""
    s = data["ssv2"]
    release = build_model("slow_8x8_r50", 400, ego_head=True, object_head=True, interaction_head=True).state_dict()
    renamed = {}
    for k, v in release.items():
        k = k.replace("head.projections.action.", "head.projections.0.").replace("head.ego_projection.", "head.projections.1.")
        k = k.replace("head.object_projection.", "head.projections.2.")
        k = k.replace("interaction_head.conv.", "handobjhead.pathway0_conv_fcn0.").replace(
            "interaction_head.projection.", "handobjhead.score_projection.")
        renamed["module." + k] = v
    torch.save({"model_state": renamed, "epoch": 200}, tmp_path / "egoexo.pyth")
    run(command(tmp_path / "run", preset="ssv2", train_annotations=s["json"]["train"],
                val_annotations=s["json"]["validation"], data_root=s["video_root"], labels_file=s["json"]["labels"],
                init="checkpoint", init_path=tmp_path / "egoexo.pyth", num_clips=1, num_crops=1))
    (m,) = metrics_of(tmp_path / "run")
    assert m["scored_videos"] == 4 and m["scored_views"] == 4
    same_metrics(m, scored("topk", "--annotations", s["json"]["validation"], "--labels", s["json"]["labels"],
                           m["submission"]))


def test_kinetics_evaluates_a_checkpoint_with_its_classifier(data, tmp_path):
    k = data["kinetics"]
    model = build_model("slow_8x8_r50", 2)
    save_checkpoint(tmp_path / "k.pyth", model)
    other = tmp_path / "k5.pyth"
    save_checkpoint(other, build_model("slow_8x8_r50", 5))
    done = subprocess.run(command(tmp_path / "bad", preset="kinetics", train_annotations=k["lists"]["train"],
                                  val_annotations=k["lists"]["val"], data_root=k["video_root"], num_classes=2,
                                  init="checkpoint", init_path=other, epochs=0), cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode != 0 and "has no classifier of the tasks {'action': 2}" in done.stderr, done.stderr
    run(command(tmp_path / "run", preset="kinetics", train_annotations=k["lists"]["train"],
                val_annotations=k["lists"]["val"], data_root=k["video_root"], num_classes=2, init="checkpoint",
                init_path=tmp_path / "k.pyth", num_clips=2, num_crops=1, epochs=0))
    (m,) = metrics_of(tmp_path / "run")
    assert m["epoch"] == 0 and m["scored_videos"] == 2
    final = torch.load(tmp_path / "run" / "final.pyth", weights_only=True)["model_state"]
    assert torch.equal(final["head.projections.action.weight"], model.state_dict()["head.projections.action.weight"])
    same_metrics(m, scored("topk", "--annotations", k["lists"]["val"], m["submission"]))


def test_two_gloo_processes_score_every_video_once(data, tmp_path):
    cmd = command(tmp_path, **charades(data))
    log = run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", *cmd[1:]])
    assert "2 process(es) x 2 clips" in log
    (m,) = metrics_of(tmp_path)
    assert m["scored_videos"] == 2 and m["scored_views"] == 4


def test_killed_finetuning_resumes_to_the_same_weights(data, tmp_path):
    settings = dict(**charades(data), epochs=3, checkpoint_every=1, eval_every=10)
    run(command(tmp_path / "straight", **settings))
    killed = tmp_path / "killed"
    proc = subprocess.Popen(command(killed, **settings), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    deadline = time.time() + 300
    while not list(killed.glob("checkpoint_epoch*.pyth")):
        assert proc.poll() is None and time.time() < deadline, "the run ended before its first checkpoint"
        time.sleep(0.05)
    time.sleep(1.0)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "final.pyth").exists()
    assert "resumed from" in run(command(killed, **settings))
    a = torch.load(tmp_path / "straight" / "final.pyth", weights_only=True)["model_state"]
    b = torch.load(killed / "final.pyth", weights_only=True)["model_state"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("args, message", [
    (["--init=checkpoint"], "--init=checkpoint needs an --init_path"),
    (["--dataset=imagenet"], "--dataset must be one of charades_ego, epic55"),
    (["--preset=charades"], "unknown preset 'charades'"),
    (["--epochs=ten"], "--epochs: expected an integer"),
    (["--views=sideways"], "--views must be one of first, third, both; got 'sideways'"),
    (["--lr_policy=bogus"], "--lr_policy must be one of cosine, steps"),
    (["--arch=bogus"], "--arch must be one of"),
    (["--num_crops=2"], "--num_crops must be one of 1, 3"),
    (["--no_pair=true"], "--no_pair=true needs --task=ego --views=both"),
    (["--train_fraction=0.5"], "--train_fraction is a setting of epic55 / epic100, not of charades_ego"),
    (["--preset=epic100", "--views=both"], "--views is a setting of charades_ego, not of epic100"),
    (["--preset=epic100", "--train_fraction=1.5"], "--train_fraction must be in (0, 1]"),
    (["--preset=charades_ego_star", "--train_annotations=x.csv"], "Ego-Exo* (--w_hand_map=0.1 --w_object_map=0.1) "
                                                                  "needs --detections"),
    (["--train_annotations=/nonexistent/CharadesEgo_v1_train.csv"], "CharadesEgo_v1_train.csv: annotation file not found"),
    (["--preset=kinetics", "--train_annotations=/nonexistent/k.csv"], "k.csv"),
])
def test_bad_settings_stop_at_once(args, message):
    done = subprocess.run([sys.executable, os.path.join(ROOT, "train_finetune.py"), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and message in done.stderr and "Traceback" not in done.stderr, done.stderr
