"""data/transforms.py: hand-worked temporal indices of the three rules (kinetics, frames,
segments) and crop geometry, equivalence of box sampling with resize-then-crop, pre-crop
invariance, and load_clip end to end (decoded in the worker or left as JPEG bytes for the
training device), with each rule and with flips off."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision.io

from data.transforms import (
    KINETICS_SAMPLING,
    ClipSampling,
    SpatialTransform,
    load_clip,
    precrop_region,
    sample_clip_indices,
    sample_segment_indices,
    sample_strided_indices,
    short_side_resize,
    test_transforms as make_test_transforms,  # not a test: keep pytest from collecting it
    train_transform,
)
from data.video import VideoError, decode_frames, write_video


def sample_box(frames: torch.Tensor, box, out: int, flip: bool = False) -> torch.Tensor:
    """Reference bilinear sampler, independent of the op: [T, H, W, 3] uint8 -> float64
    [T, out, out, 3]. Output pixel c reads x0 + (c + 0.5)·w/out − 0.5 (half-pixel centres),
    clamped to the frame, through grid_sample(align_corners=False, padding_mode="border")."""
    t, h, w, _ = frames.shape
    x0, y0, bw, bh = (float(v) for v in box)
    c = torch.arange(out, dtype=torch.float64)
    xs = x0 + (c + 0.5) * bw / out - 0.5
    ys = y0 + (c + 0.5) * bh / out - 0.5
    if flip:
        xs = xs.flip(0)
    gx, gy = (2 * xs + 1) / w - 1, (2 * ys + 1) / h - 1
    grid = torch.stack(torch.meshgrid(gy, gx, indexing="ij")[::-1], dim=-1).expand(t, out, out, 2)
    image = frames.permute(0, 3, 1, 2).double()
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=False).permute(0, 2, 3, 1)


# -- temporal -------------------------------------------------------------------------------------


def test_test_windows_hand_worked():
    # 100 frames, SlowFast 8x8 (32 frames at stride 2): window 64, delta 36, start = 3.6·i.
    rng = np.random.default_rng(0)
    idx = lambda clip: sample_clip_indices(100, 32, 2, clip, 10, rng).tolist()  # noqa: E731
    # linspace(start, start + 63, 32): start + 2k + k/31, floored
    assert idx(0) == [2 * k for k in range(31)] + [63]
    assert idx(5) == [18 + 2 * k for k in range(31)] + [81]  # start 18
    # start 32.4: floor(32.4 + k/31) = 32 while k/31 < 0.6, i.e. k <= 18
    assert idx(9) == [32 + 2 * k for k in range(19)] + [33 + 2 * k for k in range(19, 32)]


def test_short_video_pads_with_its_last_frame():
    # 10 frames < window 16: start 0, linspace(0, 15, 8) = 0, 2.14, 4.29, 6.43, 8.57, 10.7, ...
    got = sample_clip_indices(10, 8, 2, 0, 10, np.random.default_rng(0))
    assert got.tolist() == [0, 2, 4, 6, 8, 9, 9, 9]
    assert got.dtype == np.int64


def test_frame_rate_scaling_of_the_window():
    # a 60 fps video sampled at target 30 fps: the window doubles to 128 frames
    got = sample_clip_indices(300, 32, 2, 0, 1, np.random.default_rng(0), fps_scale=2.0)
    assert got.tolist() == np.floor(np.linspace(0, 127, 32)).astype(int).tolist()


def test_random_window_follows_the_generator():
    seed = 7
    got = sample_clip_indices(100, 32, 2, -1, 1, np.random.default_rng(seed))
    start = np.random.default_rng(seed).uniform(0, 36)
    assert got.tolist() == torch.linspace(start, start + 63, 32).long().tolist()
    starts = [sample_clip_indices(100, 32, 2, -1, 1, np.random.default_rng(s))[0] for s in range(400)]
    assert min(starts) == 0 and max(starts) == 35  # the whole range [0, delta] is used


def test_sampling_argument_errors():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="clip_idx"):
        sample_clip_indices(100, 8, 8, 10, 10, rng)
    with pytest.raises(ValueError, match="num_frames"):
        sample_clip_indices(0, 8, 8, 0, 10, rng)


def strided(start, clip_len, stride, num_frames):
    """The "frames" rule's indices from a start: start + stride·k clamped to the segment."""
    return [min(max(start + stride * k, 0), num_frames - 1) for k in range(clip_len)]


def test_strided_test_windows_hand_worked():
    # 48 frames, 8 at stride 2: clip length 7·2 + 1 = 15, slack 33
    idx = lambda clip, n: sample_strided_indices(48, 8, 2, clip, n, np.random.default_rng(0)).tolist()  # noqa: E731
    assert [idx(v, 2) for v in range(2)] == [strided(0, 8, 2, 48), strided(33, 8, 2, 48)]  # gap 33
    assert idx(1, 2) == [33, 35, 37, 39, 41, 43, 45, 47]  # the last window ends on the last frame
    # 3 windows: gap 16.5, round(16.5) = 16 (halves go to even, as Python's round)
    assert [idx(v, 3)[0] for v in range(3)] == [0, 16, 33]
    assert idx(0, 1) == strided(16, 8, 2, 48)  # one window: the centred one, floor(33 / 2)
    # 20 frames, 4 at stride 3: clip length 10, slack 10, 5 windows: gap 2.5, starts
    # round(0, 2.5, 5, 7.5, 10) = 0, 2, 5, 8, 10
    starts = [sample_strided_indices(20, 4, 3, v, 5, np.random.default_rng(0))[0] for v in range(5)]
    assert starts == [0, 2, 5, 8, 10]
    assert sample_strided_indices(20, 4, 3, 4, 5, np.random.default_rng(0)).tolist() == [10, 13, 16, 19]
    assert sample_strided_indices(48, 8, 2, 0, 2, np.random.default_rng(0)).dtype == np.int64


def test_strided_training_start_follows_the_generator():
    # 100 frames, 8 at stride 4: clip length 29, start uniform over the integers [0, 71]
    starts = set()
    for seed in range(600):
        got = sample_strided_indices(100, 8, 4, -1, 10, np.random.default_rng(seed)).tolist()
        start = int(np.random.default_rng(seed).integers(0, 72))
        assert got == strided(start, 8, 4, 100)
        starts.add(start)
    assert starts == set(range(72))


def test_strided_short_segment_clamps():
    # 10 frames < clip length 15: test windows start at 0; training starts are drawn from
    # [10 - 15, 0] = [-5, 0], the frames before 0 clamped to frame 0
    assert sample_strided_indices(10, 8, 2, 1, 2, np.random.default_rng(0)).tolist() == [0, 2, 4, 6, 8, 9, 9, 9]
    starts = set()
    for seed in range(200):
        start = int(np.random.default_rng(seed).integers(-5, 1))
        assert sample_strided_indices(10, 8, 2, -1, 1, np.random.default_rng(seed)).tolist() == strided(start, 8, 2, 10)
        starts.add(start)
    assert starts == set(range(-5, 1))
    assert sample_strided_indices(1, 4, 2, -1, 1, np.random.default_rng(0)).tolist() == [0, 0, 0, 0]


def segment_bounds(num_frames, clip_len):
    """Segment i of the "segments" rule: [round(i·size), round((i + 1)·size)], size = (L - 1) / T."""
    size = (num_frames - 1) / clip_len
    return [(int(np.round(size * i)), int(np.round(size * (i + 1)))) for i in range(clip_len)]


def test_segment_test_frames_hand_worked():
    # 32 frames, 8 segments: size 31/8 = 3.875, bounds round(3.875·i): 0, 4, 8, 12, 16 (15.5 to
    # even), 19, 23, 27, 31; the middles (s + e) // 2
    assert segment_bounds(32, 8) == [(0, 4), (4, 8), (8, 12), (12, 16), (16, 19), (19, 23), (23, 27), (27, 31)]
    got = sample_segment_indices(32, 8, 0, 1, np.random.default_rng(0))
    assert got.tolist() == [2, 6, 10, 14, 17, 21, 25, 29] and got.dtype == np.int64
    # 10 frames, 4 segments: size 2.25, bounds 0, 2, 4 (4.5 to even), 7, 9
    assert sample_segment_indices(10, 4, 0, 1, np.random.default_rng(0)).tolist() == [1, 3, 5, 8]
    # fewer frames than segments: size 0.5, bounds 0, 0 (0.5 to even), 1, 2 (1.5 to even), 2:
    # segments [0, 0], [0, 1], [1, 2], [2, 2]
    assert sample_segment_indices(3, 4, 0, 1, np.random.default_rng(0)).tolist() == [0, 0, 1, 2]
    assert sample_segment_indices(1, 4, 0, 1, np.random.default_rng(0)).tolist() == [0, 0, 0, 0]


def test_segment_test_windows_of_the_multi_view_option():
    # window v of N at fraction (v + 1/2)/N through each segment, floored
    bounds = segment_bounds(32, 8)
    for v in range(10):
        got = sample_segment_indices(32, 8, v, 10, np.random.default_rng(0)).tolist()
        assert got == [s + (e - s) * (2 * v + 1) // 20 for s, e in bounds]
    assert sample_segment_indices(32, 8, 0, 10, np.random.default_rng(0)).tolist() == [s for s, _ in bounds]
    assert sample_segment_indices(32, 8, 9, 10, np.random.default_rng(0)).tolist() == [3, 7, 11, 15, 18, 22, 26, 30]


def test_segment_training_frames_follow_the_generator():
    bounds = segment_bounds(32, 8)
    seen = [set() for _ in bounds]
    for seed in range(300):
        got = sample_segment_indices(32, 8, -1, 1, np.random.default_rng(seed)).tolist()
        low, high = np.array(bounds).T
        assert got == np.random.default_rng(seed).integers(low, high + 1).tolist()
        for i, frame in enumerate(got):
            seen[i].add(frame)
    assert seen == [set(range(s, e + 1)) for s, e in bounds]  # both ends of each segment included


def test_clip_sampling_fields_left_to_the_data_set():
    default = ClipSampling()
    assert (default.temporal, default.flip, default.num_clips, default.num_crops) == (None, None, None, None)
    with pytest.raises(ValueError, match="num_views"):
        default.num_views
    filled = default.filled(**KINETICS_SAMPLING)
    assert (filled.temporal, filled.flip, filled.num_views) == ("kinetics", True, 30)
    mine = ClipSampling(num_clips=2, flip=False).filled(temporal="segments", flip=True, num_clips=1, num_crops=1)
    assert (mine.temporal, mine.flip, mine.num_clips, mine.num_crops) == ("segments", False, 2, 1)
    with pytest.raises(ValueError, match="temporal should be one of"):
        ClipSampling(temporal="uniform")
    with pytest.raises(ValueError, match="num_crops should be 1 or 3"):
        ClipSampling(num_crops=2)
    with pytest.raises(ValueError, match="target_fps rescales the 'kinetics' window only"):
        ClipSampling(target_fps=30).filled(temporal="frames", flip=True, num_clips=10, num_crops=3)


# -- spatial --------------------------------------------------------------------------------------


def test_short_side_resize_hand_worked():
    assert short_side_resize(240, 320, 256) == ((256, 341), 341 / 320)  # floor(320/240·256) = 341
    assert short_side_resize(320, 240, 256) == ((341, 256), 341 / 320)  # portrait
    assert short_side_resize(256, 455, 256) == ((256, 455), 1.0)  # already there: untouched
    assert short_side_resize(300, 300, 256) == ((256, 256), 256 / 300)


def test_source_box_hand_worked():
    t = SpatialTransform((240, 320), (256, 341), 341 / 320, (10, 20), 224, True)
    x0, y0, w, h = t.source_box()
    assert x0 == pytest.approx(10 * 320 / 341) and y0 == pytest.approx(18.75)  # 20·240/256
    assert w == pytest.approx(224 * 320 / 341) and h == pytest.approx(210.0)  # 224·240/256


@pytest.mark.parametrize("flip", [False, True])
def test_box_sampling_equals_resize_then_crop_then_flip(flip):
    # What PySlowFast does to the pixels, step by step, vs sampling source_box() directly.
    frames = torch.randint(0, 256, (2, 30, 40, 3), dtype=torch.uint8)
    t = SpatialTransform((30, 40), (32, 42), 42 / 40, (5, 3), 24, flip)  # 30x40 -> short side 32
    resized = F.interpolate(frames.permute(0, 3, 1, 2).double(), size=(32, 42), mode="bilinear", align_corners=False)
    crop = resized[:, :, 3:27, 5:29].permute(0, 2, 3, 1)
    if flip:
        crop = crop.flip(2)
    torch.testing.assert_close(sample_box(frames, t.source_box(), 24, flip), crop, rtol=0, atol=1e-9)


def test_train_transform_ranges():
    sizes, flips = set(), []
    for seed in range(3000):
        t = train_transform(240, 320, np.random.default_rng(seed))
        (rh, rw), scale = t.resized_size, t.scale
        assert rh == min(rh, rw) and (rh, rw) == short_side_resize(240, 320, rh)[0]
        assert scale == rw / 320
        x0, y0 = t.crop_offset
        assert 0 <= x0 <= rw - 224 and 0 <= y0 <= rh - 224 and t.crop_size == 224
        sizes.add(rh)
        flips.append(t.flip)
    assert sizes == set(range(256, 321))  # every integer short side in [256, 320]
    assert 0.45 < np.mean(flips) < 0.55
    with pytest.raises(ValueError, match="crop_size"):
        train_transform(240, 320, np.random.default_rng(0), min_size=200)


def test_train_transform_without_flips_draws_the_same_crops():
    flipped = 0
    for seed in range(200):
        with_flips, without = np.random.default_rng(seed), np.random.default_rng(seed)
        a = train_transform(240, 320, with_flips)
        b = train_transform(240, 320, without, flip=False)
        assert not b.flip and b == SpatialTransform(a.frame_size, a.resized_size, a.scale, a.crop_offset,
                                                    a.crop_size, False)
        assert with_flips.random() == without.random()  # the same draws were made
        flipped += a.flip
    assert 60 < flipped < 140


def test_test_crops_positions():
    # 320x240 landscape -> 341x256: x offsets 0, ceil(85/2) = 43, 85
    land = make_test_transforms(240, 320, 256, 3)
    assert [t.crop_offset for t in land] == [(0, 0), (43, 0), (85, 0)]
    assert all(t.crop_size == 256 and not t.flip and t.resized_size == (256, 341) for t in land)
    port = make_test_transforms(320, 240, 256, 3)  # portrait: top / centre / bottom
    assert [t.crop_offset for t in port] == [(0, 0), (0, 43), (0, 85)]
    assert [t.crop_offset for t in make_test_transforms(240, 320, 256, 1)] == [(43, 0)]
    x0, _, w, _ = land[2].source_box()
    assert x0 + w == pytest.approx(320)  # the right crop ends at the frame's right edge


# -- pre-crop -------------------------------------------------------------------------------------


def _boxes(h, w, rng):
    yield from (t.source_box() for t in make_test_transforms(h, w, 256, 3))
    for seed in range(20):
        yield train_transform(h, w, np.random.default_rng(seed)).source_box()
    for _ in range(20):  # arbitrary boxes, some past the frame's edges
        bw, bh = rng.uniform(5, w), rng.uniform(5, h)
        yield (rng.uniform(-3, w - bw + 3), rng.uniform(-3, h - bh + 3), bw, bh)


@pytest.mark.parametrize("size", [(240, 320), (320, 240)])
def test_precrop_does_not_change_what_is_sampled(size):
    h, w = size
    rng = np.random.default_rng(0)
    frames = torch.randint(0, 256, (2, h, w, 3), dtype=torch.uint8)
    for box in _boxes(h, w, rng):
        x0, y0, x1, y1 = precrop_region(box, h, w)
        assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
        shifted = (box[0] - x0, box[1] - y0, box[2], box[3])
        full = sample_box(frames, box, 16)
        cropped = sample_box(frames[:, y0:y1, x0:x1], shifted, 16)
        torch.testing.assert_close(cropped, full, rtol=0, atol=1e-9, msg=f"box {box}")


def test_precrop_region_hand_worked():
    # box x in [9.38, 219.59): pixels floor(9.38) - 1 = 8 .. ceil(219.59) + 1 = 221 (exclusive)
    assert precrop_region((9.384, 18.75, 210.205, 210.0), 240, 320) == (8, 17, 221, 230)
    assert precrop_region((0.0, 0.0, 320.0, 240.0), 240, 320) == (0, 0, 320, 240)


# -- load_clip ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clip_video(tmp_path_factory):
    root = tmp_path_factory.mktemp("clip")
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (40, 60, 80, 3), dtype=np.uint8)
    path = str(root / "v.mp4")
    write_video(path, frames, 30, crf=10)
    folder = []
    for i, frame in enumerate(frames):
        folder.append(str(root / f"frame_{i + 1:010d}.png"))
        torchvision.io.write_png(torch.from_numpy(frame).permute(2, 0, 1), folder[-1])
    return path, folder, frames


SMALL = ClipSampling(clip_len=8, stride=2, min_size=64, max_size=72, crop_size=56, test_size=64, num_clips=4, num_crops=3)


def test_load_clip_training_sample(clip_video):
    path, _, _ = clip_video
    sample = load_clip(path, SMALL, np.random.default_rng(3))
    # replay the same generator draws by hand
    rng = np.random.default_rng(3)
    indices = sample_clip_indices(40, 8, 2, -1, 4, rng)
    transform = train_transform(60, 80, rng, 64, 72, 56)
    assert sample["frame_indices"].tolist() == indices.tolist()
    assert sample["transform"] == transform and sample["flip"] == transform.flip
    full = torch.from_numpy(decode_frames(path, indices))
    frames, box = sample["frames"], sample["box"]
    assert frames.dtype == torch.uint8 and box.dtype == torch.float32
    assert frames.shape[1] < 60 or frames.shape[2] < 80  # pre-cropped
    torch.testing.assert_close(
        sample_box(frames, box.tolist(), 56, sample["flip"]),
        sample_box(full, transform.source_box(), 56, transform.flip),
        rtol=0, atol=1e-2,  # box is float32: ~1e-6 px, times up to 255 levels per px
    )


def test_load_clip_test_views_and_segments(clip_video):
    path, folder, frames = clip_video
    for view in (0, 7, 11):
        sample = load_clip(path, SMALL, np.random.default_rng(0), view=view, first_frame=4, num_frames=30, precrop=False)
        clip_idx, crop_idx = divmod(view, 3)
        expected = 4 + sample_clip_indices(30, 8, 2, clip_idx, 4, np.random.default_rng(0))
        assert sample["frame_indices"].tolist() == expected.tolist()
        assert sample["transform"] == make_test_transforms(60, 80, 64, 3)[crop_idx]
        assert sample["box"].tolist() == pytest.approx(sample["transform"].source_box())
        assert not sample["flip"] and sample["frames"].shape == (8, 60, 80, 3)
        # the frame folder gives the same clip from the same files, losslessly
        from_folder = load_clip(folder, SMALL, np.random.default_rng(0), view=view, first_frame=4, num_frames=30, precrop=False)
        assert from_folder["frame_indices"].tolist() == expected.tolist()
        np.testing.assert_array_equal(from_folder["frames"].numpy(), frames[expected])
    # a segment running past the end of the source stops at its last frame
    late = load_clip(folder, SMALL, np.random.default_rng(0), view=3, first_frame=35, num_frames=20)
    assert late["frame_indices"].max() == 39


def test_load_clip_frames_rule_on_videos_and_folders(clip_video):
    path, folder, frames = clip_video
    sampling = ClipSampling(**{**SMALL.__dict__, "temporal": "frames"})
    # segment of 30 frames from frame 4: clip length 15, slack 15, 4 windows: gap 5
    for view in (0, 7, 11):
        clip_idx = view // 3
        expected = [4 + i for i in strided(5 * clip_idx, 8, 2, 30)]
        for source in (path, folder):
            sample = load_clip(source, sampling, np.random.default_rng(0), view=view, first_frame=4, num_frames=30,
                               precrop=False)
            assert sample["frame_indices"].tolist() == expected
        np.testing.assert_array_equal(sample["frames"].numpy(), frames[expected])
    # training: the start first, then the spatial draws, from the one generator
    for seed in range(5):
        sample = load_clip(path, sampling, np.random.default_rng(seed), first_frame=4, num_frames=30)
        rng = np.random.default_rng(seed)
        start = int(rng.integers(0, 16))
        assert sample["frame_indices"].tolist() == [4 + i for i in strided(start, 8, 2, 30)]
        assert sample["transform"] == train_transform(60, 80, rng, 64, 72, 56)


def test_load_clip_segments_rule_without_flips(clip_video):
    path, folder, frames = clip_video
    sampling = ClipSampling(**{**SMALL.__dict__, "temporal": "segments", "flip": False})
    middles = [(s + e) // 2 for s, e in segment_bounds(40, 8)]  # the whole 40-frame video
    for source in (path, folder):
        sample = load_clip(source, ClipSampling(**{**sampling.__dict__, "num_clips": 1}), np.random.default_rng(0),
                           view=2, precrop=False)
        assert sample["frame_indices"].tolist() == middles and not sample["flip"]
        assert sample["transform"] == make_test_transforms(60, 80, 64, 3)[2]
    np.testing.assert_array_equal(sample["frames"].numpy(), frames[middles])
    flips_if_allowed = 0
    for seed in range(12):
        sample = load_clip(path, sampling, np.random.default_rng(seed))
        rng = np.random.default_rng(seed)
        low, high = np.array(segment_bounds(40, 8)).T
        assert sample["frame_indices"].tolist() == rng.integers(low, high + 1).tolist()
        allowed = train_transform(60, 80, rng, 64, 72, 56)
        assert not sample["flip"] and not sample["transform"].flip
        assert sample["transform"].crop_offset == allowed.crop_offset
        flips_if_allowed += allowed.flip
    assert flips_if_allowed > 0  # with flips on, some of these clips would have been flipped


def test_kinetics_rule_spelled_out_is_the_default(clip_video):
    path, _, _ = clip_video
    spelled = ClipSampling(**{**SMALL.__dict__, "temporal": "kinetics", "flip": True})
    for seed in range(3):
        a = load_clip(path, SMALL, np.random.default_rng(seed))
        b = load_clip(path, spelled, np.random.default_rng(seed))
        assert a["frame_indices"].tolist() == b["frame_indices"].tolist() and a["transform"] == b["transform"]
        assert torch.equal(a["frames"], b["frames"])


def test_load_clip_argument_errors(clip_video):
    path, folder, _ = clip_video
    rng = np.random.default_rng(0)
    with pytest.raises(VideoError, match="frame_0000000001.png: not a JPEG"):
        load_clip(folder, SMALL, rng, view=0, decode_on_device=True)  # PNG frames cannot stay encoded
    with pytest.raises(ValueError, match="view"):
        load_clip(path, SMALL, rng, view=12)
    with pytest.raises(ValueError, match="starts at frame 40"):
        load_clip(path, SMALL, rng, first_frame=40)
    with pytest.raises(ValueError, match="target_fps"):
        load_clip(folder, ClipSampling(target_fps=30), rng)


def test_target_fps_widens_the_window(clip_video):
    path, _, _ = clip_video  # a 30 fps video sampled as if at 15 fps: window 8·2·2 = 32 frames
    sampling = ClipSampling(clip_len=8, stride=2, test_size=64, num_clips=1, num_crops=1, target_fps=15)
    sample = load_clip(path, sampling, np.random.default_rng(0), view=0)  # the one test window starts at 0
    assert sample["frame_indices"].tolist() == torch.linspace(0, 31, 8).long().tolist()  # 0, 4, 8, 13, ...


@pytest.fixture(scope="module")
def jpeg_folder(tmp_path_factory, clip_video):
    root = tmp_path_factory.mktemp("jpeg")
    paths = []
    for i, frame in enumerate(clip_video[2]):
        paths.append(str(root / f"frame_{i + 1:010d}.jpg"))
        torchvision.io.write_jpeg(torch.from_numpy(frame).permute(2, 0, 1), paths[-1], quality=90)
    return paths


@pytest.mark.parametrize("view", [None, 0, 5, 10])
def test_decode_on_device_leaves_the_same_clip_encoded(jpeg_folder, view):
    # Same rng draws, so the same window, transform and flip as decoding here; the bytes are the
    # sampled files' own, and the box is the transform's box in full-frame pixels (no pre-crop).
    decoded = load_clip(jpeg_folder, SMALL, np.random.default_rng(4), view=view, first_frame=2, num_frames=30)
    encoded = load_clip(jpeg_folder, SMALL, np.random.default_rng(4), view=view, first_frame=2, num_frames=30,
                        decode_on_device=True)
    assert "frames" not in encoded and "jpeg" not in decoded
    assert encoded["frame_indices"].tolist() == decoded["frame_indices"].tolist()
    assert encoded["transform"] == decoded["transform"] and encoded["flip"] == decoded["flip"]
    assert encoded["transform"].frame_size == (60, 80)  # from the JPEG headers
    assert encoded["box"].tolist() == pytest.approx(encoded["transform"].source_box())
    assert encoded["box"].dtype == torch.float32
    files = [open(jpeg_folder[i], "rb").read() for i in encoded["frame_indices"].tolist()]
    assert [bytes(data.numpy()) for data in encoded["jpeg"]] == files
    assert encoded["fps"] is None and decoded["fps"] is None


def test_load_clip_reports_the_video_frame_rate(clip_video):
    path, _, _ = clip_video
    assert load_clip(path, SMALL, np.random.default_rng(0), view=0)["fps"] == pytest.approx(30.0)
    # a video file is decoded here whatever decode_on_device says
    sample = load_clip(path, SMALL, np.random.default_rng(0), view=0, decode_on_device=True)
    assert "jpeg" not in sample and sample["frames"].dtype == torch.uint8 and sample["fps"] == pytest.approx(30.0)
