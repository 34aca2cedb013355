"""Interaction-Map soft targets (SPEC section 3): a batch's kept hand/object detections -> the
two S x S target maps per frame that the interaction head is trained against with BCE.

Three implementations of one definition, and a batch helper:

* `interaction_map` -- the fused C++/CUDA op `torch.ops.egoexo.interaction_map` (csrc/); what
  training uses.
* `interaction_map_reference` -- plain Python, per box and per cell, following SPEC line by
  line; the tests' ground truth.
* `interaction_map_vectorized` -- the same in vectorised PyTorch; the benchmark's baseline.
* `batch_interaction_targets` -- the op on a collated batch, shaped like the head's output.

All three run the box geometry as the same sequence of float32 operations, each rounded once
(see csrc/interaction_map.h), so a coordinate exactly on a cell border lands in the same cell
everywhere and the three agree bit for bit:

    v = x * scale;  v = v - x0;  [flip: v = float(W - 1) - v];  v = min(max(v, 0), float(W - 1))
    v = v / float(W);  cell = clamp(floor(v * float(S)), 0, S - 1)

(x0 is crop_offset's x for x coordinates and its y for y coordinates.)
"""
from __future__ import annotations

import numpy as np
import torch

import extension  # noqa: F401  (registers torch.ops.egoexo.*)
from models.resnet3d import slow_frame_index

HAND, OBJECT = 0, 1


@torch.library.register_fake("egoexo::interaction_map")
def _interaction_map_fake(batch_index, frame_index, boxes, scores, kinds, scale, crop_offset,
                          crop_size, flip, num_frames, map_size, hard, drop_outside):
    return boxes.new_empty((scale.shape[0], 2, num_frames, map_size, map_size))


def interaction_map(
    batch_index: torch.Tensor,
    frame_index: torch.Tensor,
    boxes: torch.Tensor,
    scores: torch.Tensor,
    kinds: torch.Tensor,
    *,
    scale: torch.Tensor,
    crop_offset: torch.Tensor,
    crop_size: torch.Tensor,
    flip: torch.Tensor,
    num_frames: int,
    map_size: int,
    hard: bool = False,
    drop_outside: bool = False,
    slow_frames: int | None = None,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Builds the hand (channel 0) and object (channel 1) target maps of a batch.

    Per box (N): batch_index int64 (sample), frame_index int64 (frame in the clip, at the fast
    pathway's T = num_frames), boxes float32 [N, 4] x1, y1, x2, y2 in decoded-frame pixels,
    scores float32 in [0, 1], kinds int64 (0 hand, 1 object). Per sample (B): scale float32
    (new_long / long of the short-side resize; 1 without resize), crop_offset float32 [B, 2]
    (x0, y0 in resized pixels), crop_size int64 (square crop side W), flip bool.

    Returns float32 [B, 2, num_frames, map_size, map_size]: every cell covered by a box holds
    the highest score among those boxes (1.0 when hard), other cells 0. Boxes wholly outside
    the crop are clipped onto its border like the original release, or dropped when
    drop_outside. With slow_frames, returns (map, map at the slow pathway's frames).
    Runs on the device of the inputs (CPU or CUDA). On CUDA, invalid values inside the tensors
    (indices out of range, bad boxes/scores) are device-side asserts instead of exceptions.
    """
    if not isinstance(num_frames, int) or num_frames < 1:
        raise ValueError(f"interaction_map: num_frames must be a positive int, got {num_frames!r}")
    if not isinstance(map_size, int) or map_size < 1:
        raise ValueError(f"interaction_map: map_size must be a positive int, got {map_size!r}")
    if slow_frames is not None and not (
        isinstance(slow_frames, int) and 1 <= slow_frames <= num_frames
    ):
        raise ValueError(
            f"interaction_map: slow_frames must be an int in [1, num_frames={num_frames}], "
            f"got {slow_frames!r}"
        )
    maps = torch.ops.egoexo.interaction_map(
        batch_index, frame_index, boxes, scores, kinds, scale, crop_offset, crop_size, flip,
        num_frames, map_size, hard, drop_outside,
    )
    if slow_frames is None:
        return maps
    return maps, maps.index_select(2, slow_frame_index(num_frames, slow_frames, maps.device))


def batch_interaction_targets(batch: dict, like: torch.Tensor, *, hard: bool = False,
                              drop_outside: bool = False) -> torch.Tensor:
    """The Interaction-Map targets of a collated batch (data/collate.py), shaped like the
    interaction head's logits `like` [B, 2, T_head, S, S] and on their device.

    The maps are built at the clip's T (the fast pathway's frames, where the detections were
    sampled) and subsampled to the head's T_head (the slow pathway's res5: T/alpha for
    SlowFast, T/2 for I3D) by the slow-pathway rule."""
    if "detections" not in batch:
        raise ValueError("batch_interaction_targets: the batch has no detections; build the "
                         "dataset with detections=<detection store folder>")
    device = like.device
    dets = {k: v.to(device, non_blocking=True) for k, v in batch["detections"].items()}
    num_frames = batch["frame_indices"].shape[1]
    head_frames, map_size = like.shape[2], like.shape[3]
    maps = interaction_map(
        dets["batch_index"], dets["frame"], dets["boxes"], dets["scores"], dets["kinds"],
        scale=batch["scale"].to(device, non_blocking=True), crop_offset=batch["crop_offset"].to(device, non_blocking=True),
        crop_size=batch["crop_size"].to(device, non_blocking=True), flip=batch["flip"].to(device, non_blocking=True),
        num_frames=num_frames, map_size=map_size, hard=hard, drop_outside=drop_outside,
        slow_frames=head_frames,
    )
    return maps[1]


def interaction_map_reference(
    batch_index, frame_index, boxes, scores, kinds, *, scale, crop_offset, crop_size, flip,
    num_frames: int, map_size: int, hard: bool = False, drop_outside: bool = False,
) -> torch.Tensor:
    """SPEC section 3 in plain Python, one box and one cell at a time (numpy float32 scalars,
    so every step is one rounded float32 operation as in the op). No input validation."""
    f32 = np.float32
    to_numpy = lambda a: torch.as_tensor(a).cpu().numpy()  # noqa: E731
    batch_index, frame_index, boxes = to_numpy(batch_index), to_numpy(frame_index), to_numpy(boxes)
    scores, kinds, scale = to_numpy(scores), to_numpy(kinds), to_numpy(scale)
    crop_offset, crop_size, flip = to_numpy(crop_offset), to_numpy(crop_size), to_numpy(flip)
    S = map_size
    out = np.zeros((len(scale), 2, num_frames, S, S), np.float32)
    for n in range(len(boxes)):
        b, t, kind = int(batch_index[n]), int(frame_index[n]), int(kinds[n])
        W = int(crop_size[b])
        last, side = f32(W - 1), f32(W)
        x1, y1, x2, y2 = (f32(v) for v in boxes[n])
        # (1) short-side resize: all four coordinates times new_long / long
        s = f32(scale[b])
        x1, y1, x2, y2 = x1 * s, y1 * s, x2 * s, y2 * s
        # (2) crop: subtract the crop offset
        x0, y0 = f32(crop_offset[b, 0]), f32(crop_offset[b, 1])
        x1, x2, y1, y2 = x1 - x0, x2 - x0, y1 - y0, y2 - y0
        # (3) flip inside the crop: (x1, x2) -> (W - 1 - x2, W - 1 - x1)
        if flip[b]:
            x1, x2 = last - x2, last - x1
        # (4) clip to [0, W - 1] -- or drop a box with no point inside the crop
        if drop_outside and (x2 < 0 or x1 > last or y2 < 0 or y1 > last):
            continue
        x1, y1, x2, y2 = (min(max(v, f32(0)), last) for v in (x1, y1, x2, y2))
        # (5) divide by the crop size
        x1, y1, x2, y2 = x1 / side, y1 / side, x2 / side, y2 / side
        # cell indices, then every cell of the inclusive rectangle takes max(cell, score)
        cx1, cy1, cx2, cy2 = (
            min(max(int(np.floor(v * f32(S))), 0), S - 1) for v in (x1, y1, x2, y2)
        )
        value = f32(1.0) if hard else f32(scores[n])
        for cy in range(cy1, cy2 + 1):
            for cx in range(cx1, cx2 + 1):
                out[b, kind, t, cy, cx] = max(out[b, kind, t, cy, cx], value)
    return torch.from_numpy(out)


def interaction_map_vectorized(
    batch_index, frame_index, boxes, scores, kinds, *, scale, crop_offset, crop_size, flip,
    num_frames: int, map_size: int, hard: bool = False, drop_outside: bool = False,
) -> torch.Tensor:
    """The same maps with whole-tensor PyTorch ops: every box paints an N x S x S mask, and
    scatter_reduce_('amax') folds the masks into the maps. No input validation."""
    B, T, S = scale.shape[0], num_frames, map_size
    out = torch.zeros(B * 2 * T, S * S, device=boxes.device)
    if boxes.shape[0] > 0:
        s = scale[batch_index][:, None]
        x0, y0 = crop_offset[batch_index, 0:1], crop_offset[batch_index, 1:2]
        side = crop_size[batch_index].float()[:, None]
        last = (crop_size[batch_index] - 1).float()[:, None]
        x = boxes[:, 0::2] * s - x0  # (x1, x2)
        y = boxes[:, 1::2] * s - y0  # (y1, y2)
        x = torch.where(flip[batch_index][:, None], last - x.flip(1), x)
        keep = torch.ones_like(scores, dtype=torch.bool)
        if drop_outside:
            keep = ~((x[:, 1] < 0) | (x[:, 0] > last[:, 0]))
            keep &= ~((y[:, 1] < 0) | (y[:, 0] > last[:, 0]))
        cx = (torch.minimum(x.clamp(min=0), last) / side * S).floor().long().clamp(0, S - 1)
        cy = (torch.minimum(y.clamp(min=0), last) / side * S).floor().long().clamp(0, S - 1)
        cells = torch.arange(S, device=boxes.device)
        inside_y = (cells >= cy[:, :1]) & (cells <= cy[:, 1:])  # N x S
        inside_x = (cells >= cx[:, :1]) & (cells <= cx[:, 1:])
        value = (torch.ones_like(scores) if hard else scores) * keep
        painted = (inside_y[:, :, None] & inside_x[:, None, :]) * value[:, None, None]
        key = (batch_index * 2 + kinds) * T + frame_index
        key = key[:, None].expand(-1, S * S)
        out.scatter_reduce_(0, key, painted.reshape(-1, S * S), "amax")
    return out.view(B, 2, T, S, S)
