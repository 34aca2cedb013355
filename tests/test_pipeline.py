"""The pieces joined as training joins them: generated Kinetics (official layout, 100DOH-style
detections converted into a detection store) -> KineticsDataset -> DataLoader(collate_clips) -> clips_to_device (fused crop op)
-> model -> batch_interaction_targets (fused map op) -> egoexo_loss -> backward.

The targets are checked against SPEC's per-box reference run on the generator's *true* boxes,
so the whole chain (detection file, store, score threshold, rescale, frame mapping, transform,
rasterisation, slow subsampling) is tested, not just each link."""
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from data.collate import collate_clips
from data.crop_normalize import clips_to_device, crop_normalize_reference
from data.datasets import KineticsDataset
from data.synthetic import make_kinetics
from data.transforms import ClipSampling
from losses.distillation import egoexo_loss
from losses.interaction_map import batch_interaction_targets, interaction_map_reference
from models import build_model
from models.resnet3d import slow_frame_index


@pytest.fixture(scope="module")
def kinetics(tmp_path_factory):
    return make_kinetics(str(tmp_path_factory.mktemp("kinetics")), num_classes=2, videos_per_class=2,
                         val_videos_per_class=1, size=(48, 64), num_frames=24)


# Small crops (64 -> 2x2 maps) keep a full-size R50 cheap on the CPU.
SAMPLING = ClipSampling(clip_len=8, stride=2, min_size=64, max_size=80, crop_size=64, test_size=64,
                        num_clips=2, num_crops=3)


def true_targets(kinetics, batch, num_frames, map_size):
    """SPEC's per-box reference on the generator's ground-truth boxes (hard mode: the
    generator's scores are random, the geometry is what is checked)."""
    rows = {"b": [], "t": [], "boxes": [], "kinds": []}
    for b, video_id in enumerate(batch["video_id"]):
        truth = kinetics["boxes"][video_id]
        for t, frame in enumerate(batch["frame_indices"][b].tolist()):
            for kind, name in ((0, "hand"), (1, "object")):
                box = truth[name][frame]
                if box[2] > box[0] and box[3] > box[1]:
                    rows["b"].append(b), rows["t"].append(t), rows["kinds"].append(kind)
                    rows["boxes"].append(box)
    n = len(rows["b"])
    return interaction_map_reference(
        torch.tensor(rows["b"]), torch.tensor(rows["t"]), torch.tensor(np.array(rows["boxes"])).view(n, 4),
        torch.ones(n), torch.tensor(rows["kinds"]), scale=batch["scale"], crop_offset=batch["crop_offset"],
        crop_size=batch["crop_size"], flip=batch["flip"], num_frames=num_frames, map_size=map_size, hard=True)


@pytest.mark.parametrize("arch", ["slow_8x8_r50", "slowfast_8x8_r50"])
def test_training_step_on_generated_kinetics(kinetics, arch):
    torch.manual_seed(0)
    model = build_model(arch, 2, interaction_head=True, dropout=0.0)
    spec = model.input_spec
    clip_len = spec.num_frames
    sampling = ClipSampling(**{**SAMPLING.__dict__, "clip_len": clip_len})
    dataset = KineticsDataset(True, list_path=kinetics["lists"]["train"], video_root=kinetics["video_root"],
                              num_classes=2, sampling=sampling, detections=kinetics["detection_store"])
    loader = DataLoader(dataset, batch_size=4, shuffle=True, num_workers=2, collate_fn=collate_clips)
    batch = next(iter(loader))
    assert batch["failed"] == [] and batch["errors"] == []
    assert batch["label"].tolist() == [kinetics["labels"][v] for v in batch["video_id"]]

    clips = clips_to_device(batch, "cpu")
    assert clips.shape == (4, 3, clip_len, 64, 64)
    expected = crop_normalize_reference(batch["frames"], batch["sizes"], batch["boxes"], batch["flip"], 64)
    torch.testing.assert_close(clips, expected, atol=1e-4, rtol=0)

    out = model(spec.pack(clips))
    targets = batch_interaction_targets(batch, out["interaction"], hard=True)
    assert targets.shape == out["interaction"].shape == (4, 2, spec.pathway_frames[0], 2, 2)
    full = true_targets(kinetics, batch, clip_len, 2)
    assert torch.equal(targets, full.index_select(2, slow_frame_index(clip_len, spec.pathway_frames[0])))
    assert targets.sum() > 0  # the generated hands and objects are inside the crops

    terms = egoexo_loss(out, {"label": batch["label"], "interaction_targets": targets})
    terms["loss"].backward()
    grad = model.interaction_head.projection.weight.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_corrupt_video_is_retried_in_training_and_reported_in_evaluation(kinetics, tmp_path):
    import shutil

    from data.synthetic import corrupt_video

    root = tmp_path / "videos"
    shutil.copytree(kinetics["video_root"], root)
    broken = sorted(root.rglob("*.mp4"))[0]
    corrupt_video(str(broken), "truncate")
    train = KineticsDataset(True, list_path=kinetics["lists"]["train"], video_root=str(root), num_classes=2,
                            sampling=SAMPLING)
    loader = DataLoader(train, batch_size=len(train), shuffle=False, num_workers=0, collate_fn=collate_clips)
    batch = next(iter(loader))
    assert len(batch["video_id"]) == len(train)  # every slot filled, by a retry where needed
    assert len(batch["failed"]) >= 1 and broken.stem in batch["failed"][0]
    assert broken.stem not in batch["video_id"] or len(batch["failed"]) > 1

    test = KineticsDataset(False, list_path=kinetics["lists"]["train"], video_root=str(root), num_classes=2,
                           sampling=SAMPLING)
    batch = collate_clips([test[i] for i in range(len(test))])
    assert len(batch["errors"]) == SAMPLING.num_views  # every view of the broken video, none zero-filled
    assert all(video_id == broken.stem for video_id, _, _ in batch["errors"])
    assert len(batch["video_id"]) == len(test) - SAMPLING.num_views
