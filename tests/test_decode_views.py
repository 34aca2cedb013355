"""Test views from one decode per video (data/transforms.load_views, ClipDataset.__getitems__):
every view bit-identical to the reference cut from a full sequential decode and to load_clip's
view by view, on files with and without B-frames, a rotation, VFR WebM, a segment, frame
folders (decoded and left encoded); the video opened once and each frame decoded once; error
views naming video and view for broken and half-truncated videos exactly as view by view; the
batch contract and engine.evaluate's results unchanged through a DataLoader."""

from fractions import Fraction

import av
import numpy as np
import pytest
import torch
import torchvision.io

import data.transforms as transforms
import engine
import plumbing
from data.collate import collate_clips
from data.datasets import ClipDataset, VideoItem
from data.transforms import ClipSampling, load_clip, load_views, precrop_region, temporal_offsets
from data.video import VideoError, VideoReader, rotate_frame, write_video

N = 60
H, W = 48, 64


def panning(n: int = N, height: int = H, width: int = W, seed: int = 0) -> np.ndarray:
    """A steady pan over a blocky texture with noise: B-frames for x264, every frame distinct."""
    rng = np.random.default_rng(seed)
    texture = np.kron(rng.integers(0, 256, (height // 4 + 10, width // 4 + 20, 3)), np.ones((4, 4, 1)))
    frames = np.empty((n, height, width, 3), np.uint8)
    for t in range(n):
        frames[t] = np.clip(texture[t // 2 : t // 2 + height, t : t + width] + rng.normal(0, 3, (height, width, 1)),
                            0, 255)
    return frames


def sequential_decode(path: str) -> np.ndarray:
    with av.open(path) as container:
        frames = [(f.to_ndarray(format="rgb24"), f.rotation) for f in container.decode(video=0)]
    return np.stack([rotate_frame(image, rotation) for image, rotation in frames])


VFR_TIMES = np.concatenate([[0.0], np.cumsum([0.02, 0.05, 0.033] * 20)])[:N].tolist()


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("views")
    frames = panning()
    paths = {name: str(root / name) for name in ("bframes.mp4", "no_bframes.mp4", "portrait.mp4", "vfr.webm")}
    write_video(paths["bframes.mp4"], frames, 25, crf=20, gop=24)
    with av.open(paths["no_bframes.mp4"], "w") as c:  # the same content, I/P pictures only
        stream = c.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.options = {"x264-params": "bframes=0:keyint=24"}
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            c.mux(stream.encode(frame))
        c.mux(stream.encode(None))
    write_video(paths["portrait.mp4"], frames, 25, crf=20, gop=24, rotation=90)
    write_video(paths["vfr.webm"], frames, 25, "libvpx-vp9", crf=30, timestamps=VFR_TIMES)
    return paths


# 5 windows of 8 frames at stride 3 over 60 frames: 24-frame windows 9 frames apart, overlapping
KINETICS = ClipSampling(clip_len=8, stride=3, test_size=32, num_clips=5, num_crops=3, temporal="kinetics")
FRAMES = ClipSampling(clip_len=6, stride=2, test_size=32, num_clips=4, num_crops=3, temporal="frames")
SEGMENTS = ClipSampling(clip_len=8, test_size=32, num_clips=2, num_crops=1, temporal="segments", flip=False)


def reference_view(frames: np.ndarray, fps: float, sampling: ClipSampling, view: int, first_frame: int = 0,
                   num_frames: int | None = None) -> dict:
    """View `view` cut by hand from every frame of the source: the window's indices by the
    temporal rule, the test crop, the pre-crop slice and the box shifted into it."""
    sampling = sampling.filled(temporal="kinetics", flip=True, num_clips=10, num_crops=3)
    window, crop = divmod(view, sampling.num_crops)
    length = len(frames) - first_frame if num_frames is None else num_frames
    indices = np.minimum(first_frame + temporal_offsets(sampling, length, window, None), len(frames) - 1)
    height, width = frames.shape[1:3]
    transform = transforms.test_transforms(height, width, sampling.test_size, sampling.num_crops)[crop]
    box = transform.source_box()
    x0, y0, x1, y1 = precrop_region(box, height, width)
    return {"frames": frames[indices][:, y0:y1, x0:x1], "box": (box[0] - x0, box[1] - y0, box[2], box[3]),
            "transform": transform, "frame_indices": indices, "fps": fps}


def assert_same_view(got: dict, want: dict, what: str) -> None:
    np.testing.assert_array_equal(got["frames"].numpy(), want["frames"], err_msg=what)
    assert got["box"].tolist() == pytest.approx(list(want["box"])), what
    assert got["transform"] == want["transform"] and got["flip"] is False, what
    assert got["frame_indices"].tolist() == list(want["frame_indices"]), what
    assert got["fps"] == pytest.approx(want["fps"]) if want["fps"] is not None else got["fps"] is None


CASES = {  # name: (file, sampling, first_frame, num_frames)
    "kinetics rule, B-frames": ("bframes.mp4", KINETICS, 0, None),
    "kinetics rule, no B-frames": ("no_bframes.mp4", KINETICS, 0, None),
    "kinetics rule, rotated to portrait": ("portrait.mp4", KINETICS, 0, None),
    "kinetics rule, VFR webm": ("vfr.webm", KINETICS, 0, None),
    "frames rule, a segment": ("bframes.mp4", FRAMES, 17, 30),
    "segments rule": ("bframes.mp4", SEGMENTS, 0, None),
}


@pytest.mark.parametrize("case", list(CASES))
def test_every_view_matches_the_reference_and_load_clip(videos, case):
    name, sampling, first_frame, num_frames = CASES[case]
    path = videos[name]
    frames = sequential_decode(path)
    with VideoReader(path) as reader:
        fps = reader.fps
    views = list(range(sampling.num_views))
    together = load_views(path, sampling, views, first_frame=first_frame, num_frames=num_frames)
    assert len(together) == len(views)
    for view, got in zip(views, together):
        want = reference_view(frames, fps, sampling, view, first_frame, num_frames)
        assert_same_view(got, want, f"{case} view {view}")
        alone = load_clip(path, sampling, np.random.default_rng(view), view=view, first_frame=first_frame,
                          num_frames=num_frames)
        assert_same_view(alone, want, f"{case} view {view} alone")
    if case == "kinetics rule, rotated to portrait":
        assert together[0]["transform"].resized_size[0] > together[0]["transform"].resized_size[1]


def test_any_subset_of_views_in_any_order(videos):
    path = videos["bframes.mp4"]
    everything = load_views(path, KINETICS, range(KINETICS.num_views))
    subset = [14, 2, 2, 7]
    for view, got in zip(subset, load_views(path, KINETICS, subset)):
        assert torch.equal(got["frames"], everything[view]["frames"])
        assert got["transform"] == everything[view]["transform"]
    with pytest.raises(ValueError, match=r"view must be in \[0, 15\), got 15"):
        load_views(path, KINETICS, [0, 15])
    with pytest.raises(ValueError, match="at least one view"):
        load_views(path, KINETICS, [])


class CountingReader(VideoReader):
    """VideoReader that records every open and decode call, and the packets decoded."""
    opened: list = []
    decodes: list = []
    packets: list = []

    def __init__(self, path, *args, **kw):
        CountingReader.opened.append(str(path))
        super().__init__(path, *args, **kw)

    def decode(self, frame_indices):
        CountingReader.decodes.append(len(frame_indices))
        return super().decode(frame_indices)

    def close(self):
        CountingReader.packets.append(self.packets_decoded)
        super().close()


@pytest.fixture
def counting(monkeypatch):
    for log in (CountingReader.opened, CountingReader.decodes, CountingReader.packets):
        log.clear()
    monkeypatch.setattr(transforms, "VideoReader", CountingReader)
    return CountingReader


def test_all_views_open_the_video_once_and_decode_each_packet_at_most_once(videos, counting):
    path = videos["bframes.mp4"]
    load_views(path, KINETICS, range(KINETICS.num_views))
    assert counting.opened == [path] and counting.decodes == [KINETICS.num_views // 3 * KINETICS.clip_len]
    assert counting.packets[0] <= N  # one pass: no packet twice
    counting.opened.clear()
    counting.packets.clear()
    for view in range(KINETICS.num_views):  # what view-by-view items do
        load_clip(path, KINETICS, np.random.default_rng(0), view=view)
    assert len(counting.opened) == KINETICS.num_views and sum(counting.packets) > 3 * N


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("folder")
    paths = []
    for i, image in enumerate(panning(40)):
        path = str(root / f"frame_{i + 1:06d}.jpg")
        torchvision.io.write_file(path, torchvision.io.encode_jpeg(torch.from_numpy(image).permute(2, 0, 1), 90))
        paths.append(path)
    return paths


def test_frame_folder_views_read_each_file_once(folder, monkeypatch):
    decoded = np.stack([torchvision.io.decode_image(torchvision.io.read_file(p)).permute(1, 2, 0).numpy()
                        for p in folder])
    reads = []
    real_read = torchvision.io.read_file

    def counting_read(path):
        reads.append(path)
        return real_read(path)

    monkeypatch.setattr(torchvision.io, "read_file", counting_read)
    views = list(range(FRAMES.num_views))
    together = load_views(folder, FRAMES, views, first_frame=5, num_frames=30)
    wanted = {int(i) for sample in together for i in sample["frame_indices"]}
    assert sorted(reads) == sorted(folder[i] for i in wanted)  # each needed file read once
    for view, got in zip(views, together):
        want = reference_view(decoded, None, FRAMES, view, first_frame=5, num_frames=30)
        assert_same_view(got, want, f"frame folder view {view}")
    encoded = load_views(folder, FRAMES, views, first_frame=5, num_frames=30, decode_on_device=True)
    for got, alone in zip(encoded, (load_clip(folder, FRAMES, None, view=v, first_frame=5, num_frames=30,
                                              decode_on_device=True) for v in views)):
        assert [bytes(t.numpy()) for t in got["jpeg"]] == [bytes(t.numpy()) for t in alone["jpeg"]]
        assert got["box"].tolist() == alone["box"].tolist() and got["transform"] == alone["transform"]
    # frames one clip shares are the same tensor, so a batch carries their bytes once
    batch = collate_clips([dict(s, label=0, video_id="f", index=i, view=i) for i, s in enumerate(encoded)])
    assert batch["sizes"].tolist() == [[H, W]] * len(views)


# -- the dataset and the DataLoader ------------------------------------------------------------


def _write_faststart(path: str, frames: np.ndarray) -> None:
    """MP4 with the index in front, so a copy cut short still lists every frame."""
    with av.open(path, "w", options={"movflags": "+faststart"}) as c:
        stream = c.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 25)
        stream.options = {"x264-params": "keyint=12"}
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            c.mux(stream.encode(frame))
        c.mux(stream.encode(None))


@pytest.fixture(scope="module")
def dataset_files(videos, tmp_path_factory):
    root = tmp_path_factory.mktemp("dataset")
    garbage = root / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8).tobytes())
    whole = str(root / "whole.mp4")
    _write_faststart(whole, panning(seed=1))
    data = open(whole, "rb").read()
    (root / "half.mp4").write_bytes(data[: len(data) * 4 // 5])  # about 40 of the 60 frames
    return [VideoItem(video_id="good", source=videos["bframes.mp4"], label=0),
            VideoItem(video_id="garbage", source=str(garbage), label=1),
            VideoItem(video_id="half", source=str(root / "half.mp4"), label=2),
            VideoItem(video_id="webm", source=videos["vfr.webm"], label=1),
            VideoItem(video_id="missing", source=str(root / "missing.mp4"), label=0)]


def assert_same_sample(got: dict, want: dict) -> None:
    assert got.keys() == want.keys()
    for key, value in want.items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(got[key], value), key
        else:
            assert got[key] == value, key


def test_a_batch_of_views_is_what_the_views_give_one_by_one(dataset_files):
    ds = ClipDataset(dataset_files, False, KINETICS)
    views = ds.num_views
    batch = ds.__getitems__(list(range(len(ds))))
    for index, got in enumerate(batch):
        assert_same_sample(got, ds[index])
    by_video = {v.video_id: batch[k * views : (k + 1) * views] for k, v in enumerate(ds.videos)}
    assert all("error" not in s for s in by_video["good"] + by_video["webm"])
    for video_id in ("garbage", "missing"):  # one error view each, naming video, view and file
        assert [(s["video_id"], s["view"]) for s in by_video[video_id]] == [(video_id, v) for v in range(views)]
        assert all(ds.videos[[v.video_id for v in ds.videos].index(video_id)].source in s["error"]
                   for s in by_video[video_id])
    half = by_video["half"]
    loaded = [s["view"] for s in half if "error" not in s]
    assert 0 < len(loaded) < views and loaded == list(range(len(loaded)))  # the windows before the cut
    # a sample list in any order, with repeats, is answered in that order
    mixed = [37, 2, 2, 0, 70]
    for index, got in zip(mixed, ds.__getitems__(mixed)):
        assert_same_sample(got, ds[index])
    with pytest.raises(IndexError, match="out of range"):
        ds.__getitems__([0, len(ds)])


def test_whole_video_batches_decode_each_video_once(dataset_files, counting):
    good = [dataset_files[0], dataset_files[3]]
    ds = ClipDataset(good, False, KINETICS)
    shard = plumbing.video_shard(len(ds.videos), ds.num_views, plumbing.Processes(False, 0, 1, torch.device("cpu")))
    loader = torch.utils.data.DataLoader(ds, batch_size=ds.num_views, sampler=shard, collate_fn=collate_clips)
    batches = list(loader)
    assert counting.opened == [v.source for v in good] and len(counting.decodes) == 2
    for k, batch in enumerate(batches):
        want = collate_clips([ds[k * ds.num_views + v] for v in range(ds.num_views)])
        assert batch.keys() == want.keys()
        assert torch.equal(batch["frames"], want["frames"]) and torch.equal(batch["boxes"], want["boxes"])
        assert batch["video_id"] == want["video_id"] and torch.equal(batch["view"], want["view"])


def clip_pixels(batch, model, device, *layout) -> list[torch.Tensor]:
    """Stands in for engine.model_inputs: each clip's own pixels (its top-left sizes[b] corner
    of the padded batch), as float64 channel sums per frame, [B, T, 3]."""
    return [torch.stack([batch["frames"][b, :, :h, :w].double().sum(dim=(1, 2))
                         for b, (h, w) in enumerate(batch["sizes"].tolist())])]


class PixelModel(torch.nn.Module):
    """Logits from the clip's pixels through a fixed matrix: any difference in the frames a
    view carries changes its scores."""

    def __init__(self):
        super().__init__()
        self.register_buffer("weights", torch.tensor([[1.0, -2.0, 0.5], [0.3, 0.2, -1.0], [-0.7, 1.1, 0.4]],
                                                     dtype=torch.float64))

    def forward(self, xs, extra_features=None):
        per_frame = xs[0] / (255 * 32 * 32)  # [B, T, 3]
        return {"action": (per_frame * torch.arange(1, per_frame.shape[1] + 1)[:, None]).sum(1) @ self.weights}


def test_evaluation_results_do_not_depend_on_how_views_are_batched(dataset_files, monkeypatch):
    monkeypatch.setattr(engine, "model_inputs", clip_pixels)
    ds = ClipDataset(dataset_files, False, KINETICS)
    model = PixelModel()
    results = []
    for batch_size in (1, ds.num_views, 4):  # view by view (as before), whole videos, misaligned
        loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, collate_fn=collate_clips,
                                             sampler=list(range(len(ds))))
        results.append(engine.evaluate(model, loader, device=torch.device("cpu"), autocast_dtype=None,
                                       tasks=["action"]))
    first = results[0]
    assert first["video_ids"] == ["good", "half", "webm"] and first["views"] < len(ds)
    for other in results[1:]:
        assert other["video_ids"] == first["video_ids"] and other["views"] == first["views"]
        assert torch.equal(other["scores"]["action"], first["scores"]["action"])
        assert sorted(other["errors"]) == sorted(first["errors"])
    assert first["views"] + len(first["errors"]) == len(ds)  # every view scored or named


def test_a_broken_video_is_an_error_for_load_views(dataset_files):
    with pytest.raises(VideoError, match="garbage.mp4"):
        load_views(dataset_files[1].source, KINETICS, range(3))
