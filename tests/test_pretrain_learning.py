"""A short (6-epoch) Ego-Exo pre-training on generated data learns its auxiliary signals: every loss term
falls, and the interaction head's maps on held-out videos rank the cells that hold a hand or an
object clearly above the rest (average precision well over a constant map's, which is the
positive rate). The teacher scores depend on the video's class, so the KD terms are learnable;
the hands and objects are drawn in the pixels, where the detections say they are."""
import json
import os
import subprocess
import sys

import pytest
import torch
from torch.utils.data import DataLoader

from data.annotations import read_kinetics_list
from data.collate import collate_clips
from data.datasets import KineticsDataset
from data.synthetic import make_kinetics
from data.teacher_targets import save_teacher_scores
from data.transforms import ClipSampling
from engine import model_inputs
from losses.interaction_map import batch_interaction_targets
from models import load_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TERMS = ("action", "ego", "object", "hand_map", "object_map")


def average_precision(scores: torch.Tensor, positives: torch.Tensor) -> float:
    """Mean over the positives of the precision at their rank (scores ranked high to low)."""
    hits = positives[scores.argsort(descending=True)].float()
    precision = hits.cumsum(0) / torch.arange(1, len(hits) + 1)
    return float((precision * hits).sum() / hits.sum())


def test_average_precision_hand_worked():
    # ranked: pos, neg, pos -> precisions 1/1 and 2/3 at the positives
    assert average_precision(torch.tensor([0.9, 0.1, 0.5]), torch.tensor([True, True, False])) == pytest.approx(5 / 6)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("learn")
    k = make_kinetics(str(root / "k"), num_classes=4, videos_per_class=6, val_videos_per_class=2, size=(64, 80),
                      num_frames=32)
    ids = [c.video_id for c in read_kinetics_list(k["lists"]["train"], k["video_root"])]
    labels = torch.tensor([k["labels"][v] for v in ids])
    g = torch.Generator().manual_seed(0)
    for teacher, classes in (("ego", 2), ("object", 1000)):
        per_class = torch.randn(4, classes, generator=g) * 2
        save_teacher_scores(root / f"{teacher}.pt", teacher, ids, per_class[labels].log_softmax(-1))
    out = root / "run"
    settings = dict(preset="ego_exo", train_list=k["lists"]["train"], video_root=k["video_root"], num_classes=4,
                    detections=k["detection_store"], ego_scores=root / "ego.pt", object_scores=root / "object.pt",
                    arch="slow_8x8_r50", min_size=80, max_size=88, crop_size=80, epochs=6, batch_size=4,
                    base_lr=0.05, base_lr_batch=4, warmup_epochs=0.5, num_workers=2, log_every=6, device="cpu",
                    progress=False, out_dir=out)
    done = subprocess.run([sys.executable, os.path.join(ROOT, "train_pretrain.py")]
                          + [f"--{a}={b}" for a, b in settings.items()], cwd=ROOT, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    return k, out


def test_every_loss_term_falls(trained):
    _, out = trained
    epochs = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    epochs = [e["loss"] for e in epochs if e["kind"] == "epoch"]
    assert len(epochs) == 6
    for term in TERMS:
        first, last = epochs[0][term], (epochs[-1][term] + epochs[-2][term]) / 2
        assert last < 0.9 * first, (term, [e[term] for e in epochs])


def test_held_out_maps_beat_a_constant_map(trained):
    k, out = trained
    model, _ = load_model(out / "final.pyth")
    model.eval()
    spec = model.input_spec
    sampling = ClipSampling(clip_len=spec.num_frames, stride=spec.sampling_rate, min_size=80, max_size=88,
                            crop_size=80, test_size=80, num_clips=2, num_crops=1)
    val = KineticsDataset(False, list_path=k["lists"]["val"], video_root=k["video_root"], num_classes=4,
                          sampling=sampling, detections=k["detection_store"])
    predicted, target = [], []
    with torch.no_grad():
        for batch in DataLoader(val, batch_size=4, collate_fn=collate_clips):
            logits = model(model_inputs(batch, model, torch.device("cpu")))["interaction"]
            predicted.append(logits.sigmoid())
            target.append(batch_interaction_targets(batch, logits))
    predicted, target = torch.cat(predicted), torch.cat(target)
    assert predicted.shape[0] == 16 and predicted.shape[-1] == 3  # 8 videos x 2 views, 3 x 3 maps at an 80 crop
    for channel, name in enumerate(("hand", "object")):
        positives = target[:, channel].flatten() > 0
        constant = float(positives.float().mean())  # a constant map's AP: the positive rate
        ap = average_precision(predicted[:, channel].flatten(), positives)
        print(f"{name}: AP {ap:.3f}, constant map {constant:.3f}")
        assert 0.05 < constant < 0.8 and ap > constant + 0.12, (name, ap, constant)
