"""Which frames and which region of them make a clip: temporal sampling and spatial augmentation.

Nothing here touches pixels except slicing. The spatial part only *decides* the augmentation
(short-side resize, crop, flip) as a SpatialTransform; the fused op in data/crop_normalize.py
later samples the matching box straight from the decoded uint8 frames, so clips stay uint8 and
small all the way from the worker to the training device. Rules follow PySlowFast, which the
authors' release builds on, one temporal rule per family of its data set loaders
(ClipSampling.temporal; each dataset picks its own, data/README.md has the table):
  * "kinetics" (Kinetics): a window of clip_len·stride frames, random in training, the i-th of
    N evenly placed windows in testing; clip_len indices spread over it by linspace, floored,
    clamped (sample_clip_indices).
  * "frames" (Charades-Ego, EPIC-Kitchens): clip_len frames at exactly `stride` apart from an
    integer start, random in training, round(i·gap) in testing (sample_strided_indices).
  * "segments" (Something-Something v2): clip_len equal segments of the whole video, one frame
    from each, random in training, the middle in testing (sample_segment_indices).
  * spatial: short side -> size, long side -> floor(long/short·size); random crop + flip
    (unless ClipSampling.flip is False: SSv2) in training; left/centre/right
    (top/centre/bottom for portrait) crops in testing.
All rules work on a segment [first_frame, first_frame + num_frames) of a video file or a frame
folder, in the source's own frames; the random draws come from the generator passed in, in a
fixed order (temporal, then short side, crop x, crop y, flip), so a dataset that seeds it from
(seed, epoch, index) gets the same clip in any worker.

`load_clip` puts both together for one video or frame folder and returns the per-sample fields
of the data contract, so the datasets stay thin; `load_views` does it for any set of a video's
test views at once: their windows, overlapping or not, come from one decoding pass over the
source (each frame decoded and converted once) and every crop is cut from those frames,
exactly the samples load_clip gives view by view. A JPEG frame folder can instead be left
encoded (`decode_on_device`): the worker then reads only the files' bytes and their header
sizes, and the frames are decoded on the training device (data/crop_normalize.py), with the
same frame indices and transform as if the worker had decoded them.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from data.video import VideoReader, read_frame_folder, read_jpeg_folder


# -- temporal ----------------------------------------------------------------------------------

# The temporal rules (ClipSampling.temporal), one per family of data sets in the release.
TEMPORAL_RULES = ("kinetics", "frames", "segments")


def sample_clip_indices(
    num_frames: int,
    clip_len: int,
    stride: int,
    clip_idx: int,
    num_clips: int,
    rng: np.random.Generator,
    fps_scale: float = 1.0,
) -> np.ndarray:
    """The "kinetics" rule: int64 [clip_len] frame indices (0-based, within [0, num_frames-1]).

    The window spans clip_len·stride·fps_scale frames (fps_scale = video fps / target fps
    keeps a clip's duration in seconds fixed across frame rates, PySlowFast's TARGET_FPS).
    clip_idx == -1: window start uniform in [0, num_frames - window] (training);
    otherwise start = (num_frames - window)·clip_idx/num_clips (PySlowFast's test rule).
    Indices are linspace(start, start + window - 1, clip_len) in float32, clamped to the video
    and floored, exactly as PySlowFast's temporal_sampling; videos shorter than the window
    repeat their last frame.
    """
    _check_temporal_args(num_frames, clip_len, stride, clip_idx, num_clips)
    window = clip_len * stride * fps_scale
    delta = max(num_frames - window, 0.0)
    start = rng.uniform(0.0, delta) if clip_idx == -1 else delta * clip_idx / num_clips
    index = torch.linspace(start, start + window - 1, clip_len, dtype=torch.float32)
    return index.clamp(0, num_frames - 1).long().numpy()


def sample_strided_indices(
    num_frames: int,
    clip_len: int,
    stride: int,
    clip_idx: int,
    num_clips: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """The "frames" rule (the release's Charades and EPIC loaders): int64 [clip_len] indices
    start + stride·k, k = 0 .. clip_len-1, clamped to [0, num_frames - 1].

    The clip covers clip_length = (clip_len - 1)·stride + 1 frames at the source's own rate
    (no frame-rate rescaling: EPIC's 50/60 fps frames are taken as they are).
    clip_idx == -1 (training): start is a uniform integer in [0, num_frames - clip_length];
      a segment shorter than the clip draws it from [num_frames - clip_length, 0] instead, so
      the clamping to frame 0 falls at a random place, as the release does.
    otherwise (test window clip_idx of num_clips): start = round(clip_idx·gap) with
      gap = max(num_frames - clip_length, 0) / (num_clips - 1), Python's round (halves to
      even) as the release's int(round(...)). The release divides by zero for num_clips = 1;
      here the single window is the centred one, start = floor(max(num_frames -
      clip_length, 0) / 2), as PySlowFast's offset sampling takes it.
    """
    _check_temporal_args(num_frames, clip_len, stride, clip_idx, num_clips)
    clip_length = (clip_len - 1) * stride + 1
    slack = num_frames - clip_length
    if clip_idx == -1:
        start = int(rng.integers(min(slack, 0), max(slack, 0) + 1))
    elif num_clips == 1:
        start = max(slack, 0) // 2
    else:
        start = int(round(clip_idx * (max(slack, 0) / (num_clips - 1))))
    index = start + stride * np.arange(clip_len, dtype=np.int64)
    return np.clip(index, 0, num_frames - 1)


def sample_segment_indices(
    num_frames: int,
    clip_len: int,
    clip_idx: int,
    num_clips: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """The "segments" rule (PySlowFast's Something-Something v2 loader): int64 [clip_len]
    indices, one frame from each of clip_len equal segments of the whole source.

    Segment i runs from s_i = round(i·size) to e_i = round((i + 1)·size), both inclusive, with
    size = (num_frames - 1) / clip_len as a float and numpy's round (halves to even), so
    neighbouring segments share their boundary frame, as in the release.
    clip_idx == -1 (training): a uniform integer in [s_i, e_i] for each segment, drawn with
      one rng.integers call over all segments.
    otherwise: s_i + floor((e_i - s_i)·(2·clip_idx + 1) / (2·num_clips)). For num_clips = 1
      that is (s_i + e_i) // 2, the release's middle frame; the release ignores the view
      number, so its 10 test windows would be one clip ten times: here window v of N sits
      at fraction (v + 1/2)/N through every segment instead.
    The stride plays no part: clip_len frames spread over the whole video.
    """
    _check_temporal_args(num_frames, clip_len, 1, clip_idx, num_clips)
    size = (num_frames - 1) / clip_len
    starts = np.round(size * np.arange(clip_len)).astype(np.int64)
    ends = np.round(size * np.arange(1, clip_len + 1)).astype(np.int64)
    if clip_idx == -1:
        return rng.integers(starts, ends + 1).astype(np.int64)
    return starts + (ends - starts) * (2 * clip_idx + 1) // (2 * num_clips)


def _check_temporal_args(num_frames: int, clip_len: int, stride: int, clip_idx: int, num_clips: int) -> None:
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if clip_len < 1 or stride < 1:
        raise ValueError(f"clip_len and stride must be >= 1, got {clip_len}, {stride}")
    if not (clip_idx == -1 or 0 <= clip_idx < num_clips):
        raise ValueError(f"clip_idx must be -1 or in [0, {num_clips}), got {clip_idx}")


# -- spatial -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpatialTransform:
    """What was done to a clip's frames, so boxes and detections can follow exactly.

    Order: short-side resize of the (H, W) frame to resized_size, crop of crop_size×crop_size at
    crop_offset (x0, y0) in resized pixels, then a horizontal flip of the crop if `flip`.
    """

    frame_size: tuple[int, int]  # (H, W) as decoded
    resized_size: tuple[int, int]  # (H', W') after the short-side resize
    scale: float  # new_long / long: how box coordinates scale (SPEC section 3)
    crop_offset: tuple[int, int]  # (x0, y0) in resized pixels
    crop_size: int
    flip: bool

    def source_box(self) -> tuple[float, float, float, float]:
        """The crop as (x0, y0, w, h) in decoded-frame pixels.

        Bilinear resizing (half-pixel centres, no antialias, as PySlowFast's interpolate) then
        cropping equals sampling this box straight to crop_size×crop_size: output pixel c sits
        at (x0' + c + 0.5)·W/W' − 0.5 in the source either way.
        """
        (h, w), (rh, rw) = self.frame_size, self.resized_size
        x0, y0 = self.crop_offset
        sx, sy = w / rw, h / rh
        return (x0 * sx, y0 * sy, self.crop_size * sx, self.crop_size * sy)


def short_side_resize(height: int, width: int, size: int) -> tuple[tuple[int, int], float]:
    """((H', W'), scale): short side -> size, long side -> floor(long/short·size).

    scale = new_long / long; a frame whose short side already equals `size` is left alone
    (scale 1), as PySlowFast does.
    """
    if height < 1 or width < 1 or size < 1:
        raise ValueError(f"need positive sizes, got frame {height}x{width}, size {size}")
    if min(height, width) == size:
        return (height, width), 1.0
    if width < height:
        new_h = int(math.floor(height / width * size))
        return (new_h, size), new_h / height
    new_w = int(math.floor(width / height * size))
    return (size, new_w), new_w / width


def train_transform(
    height: int,
    width: int,
    rng: np.random.Generator,
    min_size: int = 256,
    max_size: int = 320,
    crop_size: int = 224,
    flip: bool = True,
) -> SpatialTransform:
    """Short side jittered uniformly over the integers [min_size, max_size], a uniformly placed
    crop_size crop, horizontal flip with probability 0.5 (never with flip=False).

    The flip's coin is drawn either way, so switching flips off changes nothing else a
    generator gives (sizes, crops, later samples)."""
    if not crop_size <= min_size <= max_size:
        raise ValueError(f"need crop_size <= min_size <= max_size, got {crop_size}, {min_size}, {max_size}")
    size = int(rng.integers(min_size, max_size + 1))
    (rh, rw), scale = short_side_resize(height, width, size)
    x0 = int(rng.integers(0, rw - crop_size + 1))
    y0 = int(rng.integers(0, rh - crop_size + 1))
    heads = bool(rng.random() < 0.5)
    return SpatialTransform((height, width), (rh, rw), scale, (x0, y0), crop_size, heads and flip)


def test_transforms(height: int, width: int, size: int = 256, num_crops: int = 3) -> list[SpatialTransform]:
    """The test crops at short side `size` (crop = size, PySlowFast's testing setting).

    num_crops = 3: left/centre/right along the long side (top/centre/bottom for portrait
    frames), centred across; num_crops = 1: the centre crop. Centre offsets round up, as
    PySlowFast's uniform_crop.
    """
    if num_crops not in (1, 3):
        raise ValueError(f"num_crops must be 1 or 3, got {num_crops}")
    (rh, rw), scale = short_side_resize(height, width, size)
    cy, cx = math.ceil((rh - size) / 2), math.ceil((rw - size) / 2)
    if rh > rw:  # portrait: move along y
        offsets = [(cx, 0), (cx, cy), (cx, rh - size)]
    else:
        offsets = [(0, cy), (cx, cy), (rw - size, cy)]
    if num_crops == 1:
        offsets = offsets[1:2]
    return [SpatialTransform((height, width), (rh, rw), scale, off, size, False) for off in offsets]


def precrop_region(
    box: tuple[float, float, float, float], height: int, width: int
) -> tuple[int, int, int, int]:
    """Integer (x0, y0, x1, y1) slice of an H×W frame holding every pixel that bilinear
    sampling of `box` can touch: the box widened by one pixel each side, clamped to the frame.

    Sample points lie within [x0 − 0.5, x0 + w − 0.5]; bilinear reads floor(x) and floor(x) + 1,
    so [floor(x0) − 1, ceil(x0 + w)] suffices. Where the box reaches the frame border the slice
    reaches it too, so border clamping is the same with or without the pre-crop.
    """
    bx, by, bw, bh = box
    x0 = max(math.floor(bx) - 1, 0)
    y0 = max(math.floor(by) - 1, 0)
    x1 = min(math.ceil(bx + bw) + 1, width)
    y1 = min(math.ceil(by + bh) + 1, height)
    return x0, y0, x1, y1


# -- one clip, as a dataset worker loads it ---------------------------------------------------


# What each data set's loader in the release does, for the ClipSampling fields a caller leaves
# as None (ClipSampling.filled); the datasets in data/datasets.py pick theirs.
KINETICS_SAMPLING = {"temporal": "kinetics", "flip": True, "num_clips": 10, "num_crops": 3}
FRAMES_SAMPLING = {"temporal": "frames", "flip": True, "num_clips": 10, "num_crops": 3}  # Charades-Ego, EPIC
SEGMENTS_SAMPLING = {"temporal": "segments", "flip": False, "num_clips": 1, "num_crops": 1}  # SSv2


@dataclass(frozen=True)
class ClipSampling:
    """How clips are cut from a video; the defaults are SlowFast 8×8 at Kinetics settings.

    The fields left as None are the data set's to choose (its `*_SAMPLING` above, filled in by
    the dataset, or KINETICS_SAMPLING when load_clip is called on its own):
      temporal: "kinetics" (sample_clip_indices), "frames" (sample_strided_indices) or
        "segments" (sample_segment_indices; clip_len frames over the whole video, stride unused).
      flip: random horizontal flips in training (off for SSv2, whose labels name directions).
      num_clips, num_crops: test windows per video and crops per window (1 or 3).
    """

    clip_len: int = 32  # frames per clip: the model's input T (SlowFast: the fast pathway's)
    stride: int = 2
    min_size: int = 256  # training short-side jitter range
    max_size: int = 320
    crop_size: int = 224  # training crop
    test_size: int = 256  # test short side = test crop
    num_clips: int | None = None
    num_crops: int | None = None
    target_fps: float | None = None  # "kinetics" rule, video files only: scale the window by fps / target_fps
    temporal: str | None = None
    flip: bool | None = None

    def __post_init__(self):
        if self.temporal is not None and self.temporal not in TEMPORAL_RULES:
            raise ValueError(f"ClipSampling.temporal should be one of {TEMPORAL_RULES} or None, got {self.temporal!r}")
        if self.flip is not None and not isinstance(self.flip, bool):
            raise ValueError(f"ClipSampling.flip should be True, False or None, got {self.flip!r}")
        if self.num_clips is not None and self.num_clips < 1:
            raise ValueError(f"ClipSampling.num_clips should be >= 1, got {self.num_clips}")
        if self.num_crops is not None and self.num_crops not in (1, 3):
            raise ValueError(f"ClipSampling.num_crops should be 1 or 3, got {self.num_crops}")
        if self.target_fps and self.temporal not in (None, "kinetics"):
            raise ValueError(f"ClipSampling.target_fps rescales the 'kinetics' window only; the "
                             f"{self.temporal!r} rule takes frames at the source's own rate")

    def filled(self, temporal: str, flip: bool, num_clips: int, num_crops: int) -> ClipSampling:
        """A copy with the fields left as None set to these (a data set's `*_SAMPLING`)."""
        given = {"temporal": temporal, "flip": flip, "num_clips": num_clips, "num_crops": num_crops}
        return replace(self, **{k: v for k, v in given.items() if getattr(self, k) is None})

    @property
    def num_views(self) -> int:
        if self.num_clips is None or self.num_crops is None:
            raise ValueError("ClipSampling.num_views: num_clips / num_crops are left to the data set "
                             "(None); ask the dataset's .sampling, or fill them in with .filled(...)")
        return self.num_clips * self.num_crops


def load_clip(
    source: str | os.PathLike | Sequence[str | os.PathLike],
    sampling: ClipSampling,
    rng: np.random.Generator,
    view: int | None = None,
    first_frame: int = 0,
    num_frames: int | None = None,
    precrop: bool = True,
    threads: int = 1,
    decode_on_device: bool = False,
) -> dict:
    """Decode and place one clip; returns the contract's sample fields.

    source: a video file, or the ordered image files of a frame folder (index i = source[i]).
    sampling: the clip's settings; fields left as None take KINETICS_SAMPLING (the datasets
      fill in their own first). The temporal rule picks the frames within the segment, at
      the source's frame rate (a video's own, a folder's extraction rate).
    view: None for a training clip (random window, jitter/crop/flip); else the test view
      number in [0, num_clips·num_crops): window view // num_crops, crop view % num_crops
      (PySlowFast's order).
    first_frame, num_frames: sample from this segment only (EPIC actions); num_frames None
      means to the end. Indices past the segment's end repeat its last frame (and past the
      source's end, the source's last frame).
    precrop: slice the frames down to the region the op will sample (plus a 1-pixel margin) so
      less is copied between processes; "box" is shifted to match.
    decode_on_device: frame folders of JPEGs only: do not decode here; return the sampled
      files' bytes as "jpeg" (list of T 1-D uint8 tensors) instead of "frames", for
      data/crop_normalize.py's decode_jpeg_frames to decode on the training device (batched
      nvJPEG on a GPU). The frame size comes from the JPEG headers, so the rng draws, frame
      indices and transform are exactly those of the decoded path; nothing is pre-cropped and
      "box" is in full-frame pixels. Video files ignore it: they are always decoded here, on
      the CPU, because GPU video decoding does not pay at these frame sizes (SPEC section 8).

    Returns {"frames": uint8 [T, h, w, 3] (or "jpeg", above), "box": float32 [4] (x0, y0, w, h)
    within "frames", "flip": bool, "transform": SpatialTransform, "frame_indices": int64 [T]
    absolute, "fps": the video's frame rate, None for a frame folder (its data set knows the
    extraction rate)}.
    """
    if view is not None:
        return load_views(source, sampling, [view], first_frame, num_frames, precrop, threads, decode_on_device)[0]
    sampling = sampling.filled(**KINETICS_SAMPLING)
    (indices,), (pixels,), (height, width), fps = _read_windows(
        source, sampling, [-1], rng, first_frame, num_frames, threads, decode_on_device)
    transform = train_transform(
        height, width, rng, sampling.min_size, sampling.max_size, sampling.crop_size, sampling.flip
    )
    return _place(pixels, transform, indices, fps, precrop)


def load_views(
    source: str | os.PathLike | Sequence[str | os.PathLike],
    sampling: ClipSampling,
    views: Sequence[int],
    first_frame: int = 0,
    num_frames: int | None = None,
    precrop: bool = True,
    threads: int = 1,
    decode_on_device: bool = False,
) -> list[dict]:
    """The test views `views` of one source (e.g. all num_clips·num_crops of them), in that
    order, each the dict load_clip(..., view=v) returns, bit for bit.

    The views' windows are decoded together: the source is opened once, each frame any window
    needs is decoded and converted once, in one pass from the keyframe before the first one
    (overlapping windows share their frames), and the crops of a window are cut from the same
    frames. Peak memory is the windows' frames at full size (at most num_clips·clip_len frames)
    plus the views themselves. Anything that stops the decoding (a missing, truncated or
    damaged file) raises for all the views at once; a caller that wants the views that do not
    need the bad part can load the rest one by one.
    """
    sampling = sampling.filled(**KINETICS_SAMPLING)
    views = [int(v) for v in views]
    if not views:
        raise ValueError("load_views needs at least one view")
    for view in views:
        if not 0 <= view < sampling.num_views:
            raise ValueError(f"view must be in [0, {sampling.num_views}), got {view}")
    windows = sorted({view // sampling.num_crops for view in views})
    indices, pixels, (height, width), fps = _read_windows(
        source, sampling, windows, None, first_frame, num_frames, threads, decode_on_device)
    crops = test_transforms(height, width, sampling.test_size, sampling.num_crops)
    slot = {window: k for k, window in enumerate(windows)}
    samples = []
    for view in views:
        window, crop = divmod(view, sampling.num_crops)
        k = slot[window]
        samples.append(_place(pixels[k], crops[crop], indices[k], fps, precrop))
    return samples


def _read_windows(source, sampling: ClipSampling, clip_indices: Sequence[int], rng: np.random.Generator | None,
                  first_frame: int, num_frames: int | None, threads: int, decode_on_device: bool):
    """The frames of the temporal windows `clip_indices` (-1: a random training window drawn
    from rng; else test window i of num_clips, which draws nothing) of one source, read in one
    pass. Returns (per window: int64 [T] absolute indices; per window: uint8 [T, H, W, 3] frames,
    or the T files' bytes with decode_on_device; (H, W); fps, None for a frame folder)."""
    if first_frame < 0:
        raise ValueError(f"first_frame must be >= 0, got {first_frame}")
    if isinstance(source, (str, os.PathLike)):
        with VideoReader(source, threads=threads) as reader:
            total = reader.num_frames
            fps = reader.fps
            fps_scale = fps / sampling.target_fps if sampling.target_fps else 1.0
            length = _segment_length(source, total, first_frame, num_frames)
            # a segment may overrun the video
            indices = [np.minimum(first_frame + temporal_offsets(sampling, length, clip_idx, rng, fps_scale), total - 1)
                       for clip_idx in clip_indices]
            frames = reader.decode(np.concatenate(indices))
        return indices, _split(frames, indices), frames.shape[1:3], fps
    if sampling.target_fps:
        raise ValueError("target_fps needs a video file: a frame folder has no frame rate")
    if len(source) == 0:
        raise ValueError("load_clip: empty frame list")
    length = _segment_length(f"frame folder of {os.fspath(source[0])}", len(source), first_frame, num_frames)
    indices = [np.minimum(first_frame + temporal_offsets(sampling, length, clip_idx, rng), len(source) - 1)
               for clip_idx in clip_indices]
    files = [source[i] for i in np.concatenate(indices)]  # each file is read (and decoded) once
    if decode_on_device:
        jpeg, size = read_jpeg_folder(files)
        return indices, _split(jpeg, indices), size, None
    frames = read_frame_folder(files)
    return indices, _split(frames, indices), frames.shape[1:3], None


def _split(frames, indices: list[np.ndarray]) -> list:
    """The windows' consecutive slices of one array (or list) of all their frames."""
    bounds = np.cumsum([0] + [len(i) for i in indices])
    return [frames[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


def _place(pixels, transform: SpatialTransform, indices: np.ndarray, fps: float | None, precrop: bool) -> dict:
    """The sample fields of one clip: its frames (pre-cropped) or JPEG bytes and where to sample them."""
    box = transform.source_box()
    sample = {}
    if isinstance(pixels, list):  # JPEG bytes, decoded whole on the device: the box stays in full-frame pixels
        sample["jpeg"] = pixels
    else:
        if precrop:
            height, width = pixels.shape[1:3]
            x0, y0, x1, y1 = precrop_region(box, height, width)
            pixels = np.ascontiguousarray(pixels[:, y0:y1, x0:x1])
            box = (box[0] - x0, box[1] - y0, box[2], box[3])
        sample["frames"] = torch.from_numpy(pixels)
    sample.update(
        box=torch.tensor(box, dtype=torch.float32),
        flip=transform.flip,
        transform=transform,
        frame_indices=torch.from_numpy(indices.astype(np.int64)),
        fps=fps,
    )
    return sample


def temporal_offsets(
    sampling: ClipSampling, num_frames: int, clip_idx: int, rng: np.random.Generator, fps_scale: float = 1.0
) -> np.ndarray:
    """int64 [clip_len] indices within a num_frames-long segment by `sampling.temporal`'s rule
    (fields left as None: KINETICS_SAMPLING); fps_scale applies to the "kinetics" rule only."""
    sampling = sampling.filled(**KINETICS_SAMPLING)
    if sampling.temporal == "kinetics":
        return sample_clip_indices(num_frames, sampling.clip_len, sampling.stride, clip_idx, sampling.num_clips,
                                   rng, fps_scale)
    if sampling.temporal == "frames":
        return sample_strided_indices(num_frames, sampling.clip_len, sampling.stride, clip_idx, sampling.num_clips,
                                      rng)
    return sample_segment_indices(num_frames, sampling.clip_len, clip_idx, sampling.num_clips, rng)


def _segment_length(name: str | os.PathLike, total: int, first_frame: int, num_frames: int | None) -> int:
    """Frames in the segment [first_frame, first_frame + num_frames) of a `total`-frame source."""
    if first_frame >= total:
        raise ValueError(f"{os.fspath(name)}: segment starts at frame {first_frame} but the source has {total} frames")
    if num_frames is None:
        return total - first_frame
    if num_frames < 1:
        raise ValueError(f"{os.fspath(name)}: segment length must be >= 1, got {num_frames}")
    return num_frames
