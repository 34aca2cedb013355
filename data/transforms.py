"""Which frames and which region of them make a clip: temporal sampling and spatial augmentation.

Nothing here touches pixels except slicing. The spatial part only *decides* the augmentation
(short-side resize, crop, flip) as a SpatialTransform; the fused op in data/crop_normalize.py
later samples the matching box straight from the decoded uint8 frames, so clips stay uint8 and
small all the way from the worker to the training device. Rules follow PySlowFast, which the
authors' release builds on:
  * temporal: a window of clip_len·stride frames, random in training, the i-th of N evenly
    placed windows in testing; clip_len indices spread over it by linspace, floored, clamped.
  * spatial: short side -> size, long side -> floor(long/short·size); random crop + flip in
    training; left/centre/right (top/centre/bottom for portrait) crops in testing.

`load_clip` puts both together for one video or frame folder and returns the per-sample fields
of the data contract, so the datasets stay thin. A JPEG frame folder can instead be left
encoded (`decode_on_device`): the worker then reads only the files' bytes and their header
sizes, and the frames are decoded on the training device (data/crop_normalize.py), with the
same frame indices and transform as if the worker had decoded them.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from data.video import VideoReader, read_frame_folder, read_jpeg_folder


# -- temporal ----------------------------------------------------------------------------------


def sample_clip_indices(
    num_frames: int,
    clip_len: int,
    stride: int,
    clip_idx: int,
    num_clips: int,
    rng: np.random.Generator,
    fps_scale: float = 1.0,
) -> np.ndarray:
    """int64 [clip_len] frame indices (0-based, within [0, num_frames-1]) of one clip.

    The window spans clip_len·stride·fps_scale frames (fps_scale = video fps / target fps
    keeps a clip's duration in seconds fixed across frame rates, PySlowFast's TARGET_FPS).
    clip_idx == -1: window start uniform in [0, num_frames - window] (training);
    otherwise start = (num_frames - window)·clip_idx/num_clips (PySlowFast's test rule).
    Indices are linspace(start, start + window - 1, clip_len) in float32, clamped to the video
    and floored, exactly as PySlowFast's temporal_sampling; videos shorter than the window
    repeat their last frame.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if clip_len < 1 or stride < 1:
        raise ValueError(f"clip_len and stride must be >= 1, got {clip_len}, {stride}")
    if not (clip_idx == -1 or 0 <= clip_idx < num_clips):
        raise ValueError(f"clip_idx must be -1 or in [0, {num_clips}), got {clip_idx}")
    window = clip_len * stride * fps_scale
    delta = max(num_frames - window, 0.0)
    start = rng.uniform(0.0, delta) if clip_idx == -1 else delta * clip_idx / num_clips
    index = torch.linspace(start, start + window - 1, clip_len, dtype=torch.float32)
    return index.clamp(0, num_frames - 1).long().numpy()


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
) -> SpatialTransform:
    """Short side jittered uniformly over the integers [min_size, max_size], a uniformly placed
    crop_size crop, horizontal flip with probability 0.5."""
    if not crop_size <= min_size <= max_size:
        raise ValueError(f"need crop_size <= min_size <= max_size, got {crop_size}, {min_size}, {max_size}")
    size = int(rng.integers(min_size, max_size + 1))
    (rh, rw), scale = short_side_resize(height, width, size)
    x0 = int(rng.integers(0, rw - crop_size + 1))
    y0 = int(rng.integers(0, rh - crop_size + 1))
    flip = bool(rng.random() < 0.5)
    return SpatialTransform((height, width), (rh, rw), scale, (x0, y0), crop_size, flip)


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


@dataclass(frozen=True)
class ClipSampling:
    """How clips are cut from a video; the defaults are SlowFast 8×8 at Kinetics settings."""

    clip_len: int = 32
    stride: int = 2
    min_size: int = 256  # training short-side jitter range
    max_size: int = 320
    crop_size: int = 224  # training crop
    test_size: int = 256  # test short side = test crop
    num_clips: int = 10  # test windows per video
    num_crops: int = 3  # test crops per window
    target_fps: float | None = None  # video files only: scale the window by fps / target_fps

    @property
    def num_views(self) -> int:
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
    if view is not None and not 0 <= view < sampling.num_views:
        raise ValueError(f"view must be in [0, {sampling.num_views}), got {view}")
    if first_frame < 0:
        raise ValueError(f"first_frame must be >= 0, got {first_frame}")
    clip_idx, crop_idx = (-1, -1) if view is None else divmod(view, sampling.num_crops)
    is_video = isinstance(source, (str, os.PathLike))
    if is_video:
        with VideoReader(source, threads=threads) as reader:
            total = reader.num_frames
            fps = reader.fps
            fps_scale = fps / sampling.target_fps if sampling.target_fps else 1.0
            length = _segment_length(source, total, first_frame, num_frames)
            offsets = sample_clip_indices(
                length, sampling.clip_len, sampling.stride, clip_idx, sampling.num_clips, rng, fps_scale
            )
            indices = np.minimum(first_frame + offsets, total - 1)  # a segment may overrun the video
            frames = reader.decode(indices)
        height, width = frames.shape[1:3]
    else:
        if sampling.target_fps:
            raise ValueError("target_fps needs a video file: a frame folder has no frame rate")
        if len(source) == 0:
            raise ValueError("load_clip: empty frame list")
        length = _segment_length(f"frame folder of {os.fspath(source[0])}", len(source), first_frame, num_frames)
        offsets = sample_clip_indices(length, sampling.clip_len, sampling.stride, clip_idx, sampling.num_clips, rng)
        indices = np.minimum(first_frame + offsets, len(source) - 1)
        fps = None
        files = [source[i] for i in indices]
        if decode_on_device:
            jpeg, (height, width) = read_jpeg_folder(files)
            frames = None
        else:
            frames = read_frame_folder(files)
            height, width = frames.shape[1:3]
    if view is None:
        transform = train_transform(
            height, width, rng, sampling.min_size, sampling.max_size, sampling.crop_size
        )
    else:
        transform = test_transforms(height, width, sampling.test_size, sampling.num_crops)[crop_idx]
    box = transform.source_box()
    sample = {}
    if frames is None:  # decoded whole on the device: the box stays in full-frame pixels
        sample["jpeg"] = jpeg
    else:
        if precrop:
            x0, y0, x1, y1 = precrop_region(box, height, width)
            frames = np.ascontiguousarray(frames[:, y0:y1, x0:x1])
            box = (box[0] - x0, box[1] - y0, box[2], box[3])
        sample["frames"] = torch.from_numpy(frames)
    sample.update(
        box=torch.tensor(box, dtype=torch.float32),
        flip=transform.flip,
        transform=transform,
        frame_indices=torch.from_numpy(indices.astype(np.int64)),
        fps=fps,
    )
    return sample


def _segment_length(name: str | os.PathLike, total: int, first_frame: int, num_frames: int | None) -> int:
    """Frames in the segment [first_frame, first_frame + num_frames) of a `total`-frame source."""
    if first_frame >= total:
        raise ValueError(f"{os.fspath(name)}: segment starts at frame {first_frame} but the source has {total} frames")
    if num_frames is None:
        return total - first_frame
    if num_frames < 1:
        raise ValueError(f"{os.fspath(name)}: segment length must be >= 1, got {num_frames}")
    return num_frames
