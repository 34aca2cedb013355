"""data/collate.py: padding, stacking and bookkeeping of a batch, and its fit with the op; batches
of JPEG bytes (decode_on_device) and their decoding into the same normalised clips."""

import numpy as np
import pytest
import torch

from data.collate import collate_clips
from data.transforms import SpatialTransform


def make_sample(index, t=4, h=6, w=5, label=1, value=None, **extra):
    frames = torch.full((t, h, w, 3), index + 1 if value is None else value, dtype=torch.uint8)
    transform = SpatialTransform((h, w), (2 * h, 2 * w), 2.0, (index, 2 * index), 3, bool(index % 2))
    sample = {
        "frames": frames,
        "box": torch.tensor([0.5, 0.25, 3.0, 2.0]) + index,
        "flip": bool(index % 2),
        "transform": transform,
        "frame_indices": torch.arange(t) + 10 * index,
        "label": label,
        "video_id": f"v{index}",
        "index": index,
        "view": 2 * index,
    }
    sample.update(extra)
    return sample


def test_frames_are_padded_top_left_with_their_sizes():
    batch = collate_clips([make_sample(0, h=6, w=5), make_sample(1, h=3, w=8)])
    frames = batch["frames"]
    assert frames.dtype == torch.uint8 and frames.shape == (2, 4, 6, 8, 3)
    assert batch["sizes"].tolist() == [[6, 5], [3, 8]]
    assert (frames[0, :, :6, :5] == 1).all() and (frames[0, :, :, 5:] == 0).all()
    assert (frames[1, :, :3, :8] == 2).all() and (frames[1, :, 3:] == 0).all()


def test_geometry_bookkeeping_and_labels():
    batch = collate_clips([make_sample(0, label=3), make_sample(1, label=7)])
    assert batch["boxes"].dtype == torch.float32
    assert batch["boxes"].tolist() == [[0.5, 0.25, 3.0, 2.0], [1.5, 1.25, 4.0, 3.0]]
    assert batch["flip"].tolist() == [False, True] and batch["flip"].dtype == torch.bool
    assert batch["scale"].tolist() == [2.0, 2.0]
    assert batch["crop_offset"].tolist() == [[0.0, 0.0], [1.0, 2.0]]
    assert batch["crop_size"].tolist() == [3, 3] and batch["crop_size"].dtype == torch.int64
    assert batch["frame_indices"].tolist() == [[0, 1, 2, 3], [10, 11, 12, 13]]
    assert batch["label"].tolist() == [3, 7] and batch["label"].dtype == torch.int64
    assert batch["video_id"] == ["v0", "v1"]
    assert batch["index"].tolist() == [0, 1] and batch["view"].tolist() == [0, 2]
    assert batch["failed"] == [] and batch["errors"] == []
    assert "ego_score" not in batch and "detections" not in batch


def test_multi_hot_and_multi_task_labels():
    multi_hot = [make_sample(i, label=torch.tensor([1.0, 0.0, float(i)])) for i in range(2)]
    assert collate_clips(multi_hot)["label"].tolist() == [[1, 0, 0], [1, 0, 1]]
    tasks = [make_sample(i, label={"verb": torch.tensor(i), "noun": torch.tensor(5 + i)}) for i in range(2)]
    label = collate_clips(tasks)["label"]
    assert label["verb"].tolist() == [0, 1] and label["noun"].tolist() == [5, 6]
    with pytest.raises(ValueError, match="v1"):
        collate_clips([make_sample(0, label=1), make_sample(1, label=torch.ones(3))])


def test_teacher_scores_and_detections():
    def det(n, k):
        return {"frame": torch.arange(n), "boxes": torch.full((n, 4), float(k)),
                "scores": torch.full((n,), 0.5 + k / 10), "kinds": torch.ones(n, dtype=torch.int64) * k}

    samples = [make_sample(i, ego_score=torch.full((2,), -float(i)), object_score=torch.zeros(1000) + i,
                           detections=det(n, i)) for i, n in enumerate([2, 0, 3])]
    batch = collate_clips(samples)
    assert batch["ego_score"].shape == (3, 2) and batch["ego_score"][2].tolist() == [-2, -2]
    assert batch["object_score"].shape == (3, 1000) and batch["object_score"][1, 0] == 1
    d = batch["detections"]
    assert d["batch_index"].tolist() == [0, 0, 2, 2, 2]
    assert d["frame"].tolist() == [0, 1, 0, 1, 2]
    assert d["boxes"].shape == (5, 4) and d["boxes"][:, 0].tolist() == [0, 0, 2, 2, 2]
    assert d["kinds"].tolist() == [0, 0, 2, 2, 2] and d["scores"].dtype == torch.float32
    with pytest.raises(ValueError, match="ego_score"):
        collate_clips([make_sample(0, ego_score=torch.zeros(2)), make_sample(1)])
    with pytest.raises(ValueError, match="detections"):
        collate_clips([make_sample(0, detections=det(1, 0)), make_sample(1)])


def test_teacher_embeddings_stack_to_batch_rows():
    samples = [make_sample(i, extra_features=torch.arange(6, dtype=torch.float32) + 10 * i) for i in range(3)]
    batch = collate_clips(samples)
    assert batch["extra_features"].shape == (3, 6) and batch["extra_features"].dtype == torch.float32
    assert batch["extra_features"][:, 0].tolist() == [0, 10, 20] and batch["extra_features"][2, 5] == 25
    with pytest.raises(ValueError, match=r"'v1'.*'extra_features' of shape \(4,\).*\(6,\)"):
        collate_clips([make_sample(0, extra_features=torch.zeros(6)), make_sample(1, extra_features=torch.zeros(4))])
    with pytest.raises(ValueError, match="'v1'.*no 'extra_features'"):
        collate_clips([make_sample(0, extra_features=torch.zeros(6)), make_sample(1)])


def test_failed_samples_are_listed_not_batched():
    error = {"index": 5, "video_id": "broken", "view": 3, "error": "broken.mp4: cannot open"}
    samples = [make_sample(0, failed=["x.mp4: truncated"]), error, make_sample(1, failed=["y.mp4: no such file"])]
    batch = collate_clips(samples)
    assert batch["frames"].shape[0] == 2 and batch["index"].tolist() == [0, 1]
    assert batch["errors"] == [("broken", 3, "broken.mp4: cannot open")]
    assert batch["failed"] == ["x.mp4: truncated", "y.mp4: no such file"]
    only_errors = collate_clips([error])
    assert only_errors["frames"].shape[0] == 0 and only_errors["index"].numel() == 0
    assert only_errors["errors"] == [("broken", 3, "broken.mp4: cannot open")]


def test_bad_samples_are_named():
    with pytest.raises(ValueError, match="'v1'.*3 frames"):
        collate_clips([make_sample(0, t=4), make_sample(1, t=3)])
    bad = make_sample(1)
    bad["frames"] = bad["frames"].float()
    with pytest.raises(ValueError, match="'v1'.*uint8"):
        collate_clips([make_sample(0), bad])


def test_pin_memory():
    if torch.cuda.is_available():
        assert collate_clips([make_sample(0)], pin_memory=True)["frames"].is_pinned()
    else:
        with pytest.raises(ValueError, match="CUDA"):
            collate_clips([make_sample(0)], pin_memory=True)


class _Samples(torch.utils.data.Dataset):
    def __len__(self):
        return 5

    def __getitem__(self, i):
        return make_sample(i, h=4 + i, w=9 - i)


@pytest.mark.parametrize("workers", [0, 1])  # in a worker, frames are collated into shared memory
def test_dataloader_batches_through_collate(workers):
    loader = torch.utils.data.DataLoader(_Samples(), batch_size=2, collate_fn=collate_clips, num_workers=workers)
    batches = list(loader)
    assert [b["frames"].shape for b in batches] == [(2, 4, 5, 9, 3), (2, 4, 7, 7, 3), (1, 4, 8, 5, 3)]
    assert torch.cat([b["index"] for b in batches]).tolist() == list(range(5))
    for b in batches:
        for row, (h, w) in enumerate(b["sizes"].tolist()):
            clip = b["frames"][row]
            assert (clip[:, :h, :w] == b["index"][row] + 1).all()
            assert clip[:, h:].sum() == 0 and clip[:, :, w:].sum() == 0  # padding is zero


def test_batch_feeds_the_crop_normalize_op(tmp_path):
    # Samples pre-cropped by load_clip, padded by collate_clips: the op's reference must give each
    # sample's clip as if sampled from its full decoded frames.
    from data.crop_normalize import crop_normalize_reference
    from data.transforms import ClipSampling, load_clip
    from data.video import decode_frames, write_video

    rng = np.random.default_rng(0)
    paths = []
    for i, (h, w) in enumerate([(60, 80), (80, 60)]):
        paths.append(str(tmp_path / f"{i}.mp4"))
        write_video(paths[-1], rng.integers(0, 256, (20, h, w, 3), dtype=np.uint8), 25, crf=10)
    sampling = ClipSampling(clip_len=4, stride=2, min_size=64, max_size=72, crop_size=56)
    samples = []
    for i, path in enumerate(paths):
        sample = load_clip(path, sampling, np.random.default_rng(i))
        samples.append(dict(sample, label=i, video_id=str(i), index=i, view=0))
    batch = collate_clips(samples)
    got = crop_normalize_reference(batch["frames"], batch["sizes"], batch["boxes"], batch["flip"], 56)
    for b, (path, sample) in enumerate(zip(paths, samples)):
        full = torch.from_numpy(decode_frames(path, sample["frame_indices"].numpy()))
        box = torch.tensor([sample["transform"].source_box()], dtype=torch.float32)
        size = torch.tensor([full.shape[1:3]])
        want = crop_normalize_reference(full[None], size, box, torch.tensor([sample["flip"]]), 56)
        torch.testing.assert_close(got[b : b + 1], want, rtol=0, atol=1e-3)


def test_padding_is_zeroed_whatever_the_buffer_held(monkeypatch):
    import data.collate

    monkeypatch.setattr(data.collate, "_shared_buffer", lambda shape: torch.full(shape, 255, dtype=torch.uint8))
    batch = collate_clips([make_sample(0, h=6, w=5), make_sample(1, h=3, w=8)])
    assert (batch["frames"][0, :, :, 5:] == 0).all() and (batch["frames"][1, :, 3:] == 0).all()
    assert (batch["frames"][0, :, :6, :5] == 1).all() and (batch["frames"][1, :, :3, :8] == 2).all()


# -- JPEG bytes, decoded on the training device ---------------------------------------------------


@pytest.fixture(scope="module")
def jpeg_folders(tmp_path_factory):
    """Two JPEG frame folders, landscape 60x80 and portrait 80x60, of 20 frames."""
    import torchvision.io

    root = tmp_path_factory.mktemp("jpeg_folders")
    rng = np.random.default_rng(1)
    folders = []
    for i, (h, w) in enumerate([(60, 80), (80, 60)]):
        folders.append([])
        for t in range(20):
            folders[-1].append(str(root / f"{i}_{t:03d}.jpg"))
            frame = torch.from_numpy(rng.integers(0, 256, (3, h, w), dtype=np.uint8))
            torchvision.io.write_jpeg(frame, folders[-1][-1], quality=90)
    return folders


def _folder_samples(folders, view, decode_on_device, first_frame=0):
    from data.transforms import ClipSampling, load_clip

    sampling = ClipSampling(clip_len=4, stride=2, min_size=64, max_size=72, crop_size=56, test_size=64,
                            num_clips=2, num_crops=3)
    return [dict(load_clip(paths, sampling, np.random.default_rng(i), view=view, first_frame=first_frame,
                           decode_on_device=decode_on_device), label=i, video_id=str(i), index=i, view=view or 0)
            for i, paths in enumerate(folders)]


@pytest.mark.parametrize("view", [None, 4])
def test_jpeg_batch_gives_the_clips_of_the_decoded_path(jpeg_folders, view):
    # Decoding in the worker (pre-cropped frames) vs on the device (whole frames from the bytes):
    # the same rng gives the same clip, and the op gives the same normalised input.
    from data.crop_normalize import crop_normalize, decode_jpeg_frames

    decoded = collate_clips(_folder_samples(jpeg_folders, view, False))
    encoded = collate_clips(_folder_samples(jpeg_folders, view, True))
    assert "frames" not in encoded and len(encoded["jpeg"]) == 2 and [len(c) for c in encoded["jpeg"]] == [4, 4]
    assert encoded["sizes"].tolist() == [[60, 80], [80, 60]]  # the JPEG headers' sizes
    frames, sizes = decode_jpeg_frames(encoded["jpeg"], "cpu")
    assert torch.equal(sizes, encoded["sizes"]) and frames.shape == (2, 4, 80, 80, 3)
    for key in ("frame_indices", "flip", "scale", "crop_offset", "crop_size", "label"):
        assert torch.equal(encoded[key], decoded[key]), key
    assert encoded["transform"] == decoded["transform"]
    assert decoded["frames"].shape[2:4] != frames.shape[2:4]  # the worker's frames were pre-cropped
    want = crop_normalize(decoded["frames"], decoded["sizes"], decoded["boxes"], decoded["flip"], 56)
    got = crop_normalize(frames, sizes, encoded["boxes"], encoded["flip"], 56)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-3)  # box offsets: float32 rounding only


def test_jpeg_bytes_share_one_buffer(jpeg_folders):
    # A segment starting near the end pads with its last frame: that file is stored once.
    samples = _folder_samples(jpeg_folders, 0, True, first_frame=17)
    # 3 frames left, window 8: linspace(0, 7, 4) = 0, 2.3, 4.7, 7 clamped to 2
    assert samples[0]["frame_indices"].tolist() == [17, 19, 19, 19]
    batch = collate_clips(samples)
    views = [data for clip in batch["jpeg"] for data in clip]
    assert len({data.untyped_storage().data_ptr() for data in views}) == 1
    assert views[1].data_ptr() == views[2].data_ptr() == views[3].data_ptr()
    stored = sum(v.numel() for v in views) - 2 * views[1].numel() - 2 * views[5].numel()
    assert views[0].untyped_storage().nbytes() == stored
    for clip, sample in zip(batch["jpeg"], samples):
        assert all(torch.equal(a, b) for a, b in zip(clip, sample["jpeg"]))


def test_jpeg_and_decoded_samples_do_not_mix(jpeg_folders):
    encoded = _folder_samples(jpeg_folders, 0, True)
    decoded = _folder_samples(jpeg_folders, 0, False)
    with pytest.raises(ValueError, match="sample '1' .* holds JPEG bytes .* sample '0' .* holds decoded frames"):
        collate_clips([decoded[0], encoded[1]])
    short = dict(encoded[1], jpeg=encoded[1]["jpeg"][:3])
    with pytest.raises(ValueError, match="sample '1'.*jpeg must be a non-empty list .* \\(4\\), got list of length 3"):
        collate_clips([encoded[0], short])
    wrong = dict(encoded[1], jpeg=[data.long() for data in encoded[1]["jpeg"]])
    with pytest.raises(ValueError, match="sample '1'.*jpeg frame 0 must be the file's bytes"):
        collate_clips([encoded[0], wrong])
    error = {"index": 5, "video_id": "broken", "view": 0, "error": "broken: cannot read"}
    assert collate_clips([error, encoded[0]])["errors"] == [("broken", 0, "broken: cannot read")]


class _JpegSamples(torch.utils.data.Dataset):
    def __init__(self, folders):
        self.folders = folders

    def __len__(self):
        return 2

    def __getitem__(self, i):
        return _folder_samples(self.folders, 3, True)[i]


def test_jpeg_batch_crosses_from_a_worker(jpeg_folders):
    from data.crop_normalize import decode_jpeg_frames

    loader = torch.utils.data.DataLoader(_JpegSamples(jpeg_folders), batch_size=2, collate_fn=collate_clips,
                                         num_workers=1)
    (batch,) = list(loader)
    local = collate_clips([_JpegSamples(jpeg_folders)[i] for i in range(2)])
    assert [[bytes(d.numpy()) for d in clip] for clip in batch["jpeg"]] == [
        [bytes(d.numpy()) for d in clip] for clip in local["jpeg"]]
    frames, sizes = decode_jpeg_frames(batch["jpeg"], "cpu")
    assert torch.equal(sizes, batch["sizes"]) and torch.equal(frames, decode_jpeg_frames(local["jpeg"], "cpu")[0])
