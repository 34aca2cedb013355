"""Every pre-training preset (the paper's variants) and every backbone runs end to end through
train_pretrain.py on generated data, training exactly the terms it names; a real run refuses a
weighted term whose teacher targets were not given."""
import json
import os
import re
import subprocess
import sys

import pytest
import torch

from data.annotations import read_kinetics_list
from data.synthetic import make_kinetics
from data.teacher_targets import save_teacher_scores

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "train_pretrain.py")
ALL = ("action", "ego", "object", "hand_map", "object_map")
PRESET_TERMS = {
    "ego_exo": ALL,
    "third_only": ("action",),
    "ego_score": ("action", "ego"),
    "object_score": ("action", "object"),
    "interaction_map": ("action", "hand_map", "object_map"),
    "hand_map": ("action", "hand_map"),
    "object_map": ("action", "object_map"),
    "ego_score_no_pair": ("action", "ego"),
}
BACKBONES = ("slowfast_8x8_r50", "slowfast_8x8_r101", "i3d_8x8_r50", "tsm_r50")  # + slow_8x8_r50 above

# Runs several settings lists through the script in one interpreter (runpy), so each costs its
# training steps, not a fresh import of torch; every run's stdout goes to its own file.
DRIVER = """
import contextlib, json, runpy, sys
runs = json.loads(sys.argv[1])
for out, args in runs:
    sys.argv = [{script!r}] + args
    with open(out, "w") as f, contextlib.redirect_stdout(f):
        try:
            runpy.run_path({script!r}, run_name="__main__")
        except SystemExit as e:
            print("EXIT", e.code)
"""


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("k")
    k = make_kinetics(str(root), num_classes=2, videos_per_class=2, val_videos_per_class=1, size=(40, 48),
                      num_frames=24)
    ids = [c.video_id for c in read_kinetics_list(k["lists"]["train"], k["video_root"])]
    rng = torch.Generator().manual_seed(0)
    for name, teacher, classes in (("ego", "ego", 2), ("object", "object", 1000), ("no_pair", "ego", 2)):
        save_teacher_scores(root / f"{name}.pt", teacher, ids, torch.randn(len(ids), classes, generator=rng).log_softmax(-1))
    return k, root


def settings(data, out_dir, **extra):
    k, root = data
    values = dict(train_list=k["lists"]["train"], video_root=k["video_root"], num_classes=2,
                  detections=k["detection_store"], ego_scores=root / "ego.pt", object_scores=root / "object.pt",
                  no_pair_ego_scores=root / "no_pair.pt", min_size=32, max_size=36, crop_size=32, epochs=1,
                  batch_size=2, base_lr=0.01, base_lr_batch=2, warmup_epochs=0.5, num_workers=0, log_every=1,
                  checkpoint_every=100, keep_checkpoints=1, arch="slow_8x8_r50", device="cpu", progress=False, out_dir=out_dir)
    values.update(extra)
    return [f"--{k}={v}" for k, v in values.items()]


def run_all(runs, tmp_path):
    code = DRIVER.format(script=SCRIPT)
    done = subprocess.run([sys.executable, "-c", code, json.dumps(runs)], cwd=ROOT, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    return [open(out).read() for out, _ in runs]


def epoch_terms(log: str) -> tuple[str, ...]:
    done = next(line for line in log.splitlines() if line.startswith("epoch 0 done"))
    return tuple(t for t in ALL if re.search(rf" {t} [0-9.]+", done))


def test_every_preset_trains_its_terms(data, tmp_path):
    runs = [(str(tmp_path / f"{p}.log"), settings(data, tmp_path / p, preset=p)) for p in PRESET_TERMS]
    logs = run_all(runs, tmp_path)
    for (preset, terms), log in zip(PRESET_TERMS.items(), logs):
        assert "EXIT" not in log, (preset, log)
        assert epoch_terms(log) == terms, (preset, log)
        assert os.path.exists(tmp_path / preset / "final.pyth"), preset
        start = json.loads((tmp_path / preset / "log.jsonl").read_text().splitlines()[0])
        assert start["kind"] == "start" and start["config"]["preset"] == preset
    third = dict(zip(PRESET_TERMS, logs))["third_only"]
    assert "LossWeights(action=0.5, ego=0.0, object=0.0, hand_map=0.0, object_map=0.0)" in third
    final = torch.load(tmp_path / "third_only" / "final.pyth", weights_only=True)
    assert final["config"]["dropout"] == 0.5 and not any(k.startswith("interaction_head") for k in final["model_state"])
    no_pair = torch.load(tmp_path / "ego_score_no_pair" / "final.pyth", weights_only=True)["config"]
    assert no_pair["ego_teacher"] == "no_pair"


def test_full_preset_on_every_backbone(data, tmp_path):
    runs = [(str(tmp_path / f"{a}.log"), settings(data, tmp_path / a, arch=a)) for a in BACKBONES]
    for arch, log in zip(BACKBONES, run_all(runs, tmp_path)):
        assert "EXIT" not in log, (arch, log)
        assert epoch_terms(log) == ALL, (arch, log)


@pytest.mark.parametrize("preset, missing, says", [
    ("ego_score", "ego_scores", "--ego_scores (score_teachers.py --teacher=ego)"),
    ("object_score", "object_scores", "--object_scores"),
    ("hand_map", "detections", "--detections"),
    ("ego_score_no_pair", "no_pair_ego_scores", "--no_pair_ego_scores"),
])
def test_a_weighted_term_without_targets_is_refused(data, tmp_path, preset, missing, says):
    args = [a for a in settings(data, tmp_path / "r", preset=preset) if not a.startswith(f"--{missing}=")]
    done = subprocess.run([sys.executable, SCRIPT, *args], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and says in done.stderr, done.stderr
