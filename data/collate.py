"""Batching samples for the DataLoader: uint8 frames padded to one shape, plus everything the
fused crop/normalise op and the Interaction-Map targets need, stacked per batch.

Frames stay uint8 and un-resized: sample b's (possibly pre-cropped) frames sit in the top-left
sizes[b] = (h_b, w_b) corner of a zero-padded [B, T, Hmax, Wmax, 3] tensor, and "boxes" says
which region of them the op samples. Samples left encoded for decoding on the training device
(a "jpeg" key instead of "frames", see data/transforms.load_clip) give "jpeg" instead: their
bytes are copied into one buffer and handed out as views of it, so the batch crosses from a
DataLoader worker as one shared storage rather than one per frame (each storage sent costs its
own shared-memory file and file-descriptor hand-off). Samples that failed to load in
evaluation (an "error" key, no frames) are left out and listed under "errors", so they are
counted, never scored as blank clips.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.utils.data

# Optional per-video teacher targets, stacked when present: log-probabilities and the
# concatenated teacher embeddings (supp. Table S4 "append").
_STACKED_KEYS = ("ego_score", "object_score", "extra_features")


def _as_tensor(value, dtype: torch.dtype) -> torch.Tensor:
    return value.to(dtype) if isinstance(value, torch.Tensor) else torch.as_tensor(value, dtype=dtype)


def _stack_labels(labels: list, where: list[str]) -> torch.Tensor | dict[str, torch.Tensor]:
    """int labels -> int64 [B]; multi-hot [K] -> float32 [B, K]; dicts -> a dict of those."""
    first = labels[0]
    if isinstance(first, dict):
        keys = list(first)
        for label, name in zip(labels, where):
            if not isinstance(label, dict) or list(label) != keys:
                raise ValueError(f"collate_clips: {name} has label {label!r}; expected a dict with keys {keys}")
        return {key: _stack_labels([label[key] for label in labels], where) for key in keys}
    tensors = [torch.as_tensor(label) for label in labels]
    for t, name in zip(tensors, where):
        if t.shape != tensors[0].shape or t.is_floating_point() != tensors[0].is_floating_point():
            raise ValueError(
                f"collate_clips: {name} has a {t.dtype} label of shape {tuple(t.shape)}, but the "
                f"first sample's is {tensors[0].dtype} {tuple(tensors[0].shape)}"
            )
    if tensors[0].is_floating_point():
        return torch.stack([t.float() for t in tensors])
    return torch.stack([t.long() for t in tensors])


def _concat_detections(samples: list[dict]) -> dict[str, torch.Tensor]:
    """Concatenates per-sample detections and tags each box with its sample's batch row."""
    parts = {"frame": [], "boxes": [], "scores": [], "kinds": [], "batch_index": []}
    dtypes = {"frame": torch.int64, "boxes": torch.float32, "scores": torch.float32, "kinds": torch.int64}
    for row, sample in enumerate(samples):
        det = sample["detections"]
        n = len(det["frame"])
        for key, dtype in dtypes.items():
            value = _as_tensor(det[key], dtype)
            if len(value) != n:
                raise ValueError(
                    f"collate_clips: sample {sample.get('video_id')!r}: detections[{key!r}] has "
                    f"{len(value)} rows but detections['frame'] has {n}"
                )
            parts[key].append(value.reshape(n, 4) if key == "boxes" else value.reshape(n))
        parts["batch_index"].append(torch.full((n,), row, dtype=torch.int64))
    return {key: torch.cat(values) for key, values in parts.items()}


def _shared_buffer(shape: tuple[int, ...]) -> torch.Tensor:
    """Uninitialised uint8 tensor for the batch's frames or JPEG bytes; in a DataLoader worker
    it is placed in shared memory straight away (as torch's default_collate does), which saves
    copying the largest tensor of the batch once more on its way to the main process."""
    if torch.utils.data.get_worker_info() is None:
        return torch.empty(shape, dtype=torch.uint8)
    storage = torch.UntypedStorage._new_shared(int(np.prod(shape)))
    return torch.empty(0, dtype=torch.uint8).set_(storage).view(shape)


def _pad_frames(good: list[dict], where: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Decoded clips -> (uint8 [B, T, Hmax, Wmax, 3], each clip top-left over zeros; sizes [B, 2])."""
    frames = [s["frames"] for s in good]
    for f, name in zip(frames, where):
        if not (isinstance(f, torch.Tensor) and f.dtype == torch.uint8 and f.dim() == 4 and f.shape[-1] == 3):
            raise ValueError(
                f"collate_clips: {name}: frames must be a uint8 tensor [T, h, w, 3], got "
                f"{getattr(f, 'dtype', type(f).__name__)} {tuple(getattr(f, 'shape', ()))}"
            )
        if f.shape[0] != frames[0].shape[0]:
            raise ValueError(f"collate_clips: {name} has {f.shape[0]} frames, {where[0]} has {frames[0].shape[0]}")
    num_t = frames[0].shape[0] if frames else 0
    h_max = max((f.shape[1] for f in frames), default=0)
    w_max = max((f.shape[2] for f in frames), default=0)
    batch = _shared_buffer((len(good), num_t, h_max, w_max, 3))
    for row, f in enumerate(frames):
        h, w = f.shape[1:3]
        batch[row, :, :h, :w] = f
        batch[row, :, h:] = 0  # zero only the padding: the clip itself is written once
        batch[row, :, :h, w:] = 0
    sizes = torch.tensor([[f.shape[1], f.shape[2]] for f in frames], dtype=torch.int64).reshape(-1, 2)
    return batch, sizes


def _pack_jpeg(good: list[dict], where: list[str]) -> tuple[list[list[torch.Tensor]], torch.Tensor]:
    """Encoded clips -> (per-sample lists of T byte tensors, all views of one uint8 buffer;
    sizes [B, 2] = the frame size from the JPEG headers, which load_clip put in the transform).

    A file sampled twice in a clip (padding) is copied once and its view repeats."""
    clips = [s["jpeg"] for s in good]
    for clip, name in zip(clips, where):
        if not isinstance(clip, (list, tuple)) or not clip or len(clip) != len(clips[0]):
            raise ValueError(
                f"collate_clips: {name}: jpeg must be a non-empty list of frames' bytes as long as "
                f"{where[0]}'s ({len(clips[0])}), got {type(clip).__name__}"
                + (f" of length {len(clip)}" if isinstance(clip, (list, tuple)) else "")
            )
        for t, data in enumerate(clip):
            if not (isinstance(data, torch.Tensor) and data.dtype == torch.uint8 and data.dim() == 1):
                raise ValueError(
                    f"collate_clips: {name}: jpeg frame {t} must be the file's bytes as a 1-D uint8 "
                    f"tensor, got {getattr(data, 'dtype', type(data).__name__)} {tuple(getattr(data, 'shape', ()))}"
                )
    unique = {id(data): data for clip in clips for data in clip}
    buffer = _shared_buffer((sum(data.numel() for data in unique.values()),))
    torch.cat(list(unique.values()), out=buffer)
    views, start = {}, 0
    for key, data in unique.items():
        views[key] = buffer[start : start + data.numel()]
        start += data.numel()
    sizes = torch.tensor([s["transform"].frame_size for s in good], dtype=torch.int64).reshape(-1, 2)
    return [[views[id(data)] for data in clip] for clip in clips], sizes


def collate_clips(samples: Sequence[dict], pin_memory: bool = False) -> dict:
    """A list of dataset samples (the data contract's dict) -> one batch dict.

    Keys: frames uint8 [B, T, Hmax, Wmax, 3] -- or, for samples left encoded (decode_on_device),
    jpeg: B lists of T 1-D uint8 tensors (decode_jpeg_frames' input) -- sizes int64 [B, 2] (h, w;
    from the JPEG headers for jpeg), boxes float32 [B, 4],
    flip bool [B], scale float32 [B], crop_offset float32 [B, 2], crop_size int64 [B],
    transform (list), frame_indices int64 [B, T], label (stacked; dict of stacked for
    multi-task), ego_score / object_score float32 [B, C] and extra_features float32 [B, D_total]
    (stacked, when the samples have them), detections
    (concatenated, with batch_index int64 [N], when the samples have them), video_id (list),
    index / view int64 [B], failed (all retry messages), errors (list of (video_id, view,
    message) for samples that failed to load; B may then be 0).

    pin_memory pins the frames (page-locked memory makes the copy to the GPU asynchronous);
    only useful when collating in the main process, since pinning does not survive the trip
    from a worker process, where DataLoader(pin_memory=True) is the tool. JPEG bytes are not
    pinned: torchvision's GPU decoder takes them as CPU tensors and parses them on the host.
    """
    errors = [(s.get("video_id"), s.get("view", 0), s["error"]) for s in samples if "error" in s]
    good = [s for s in samples if "error" not in s]
    failed = [message for s in samples for message in s.get("failed", ())]
    where = [f"sample {s.get('video_id')!r} (index {s.get('index')})" for s in good]

    encoded = ["jpeg" in s for s in good]
    if any(encoded) and not all(encoded):
        raise ValueError(
            f"collate_clips: {where[encoded.index(True)]} holds JPEG bytes (decode_on_device) but "
            f"{where[encoded.index(False)]} holds decoded frames; a batch takes one kind (a data set "
            "mixing frame folders and video files cannot decode on the device)"
        )
    if pin_memory and not torch.cuda.is_available():
        raise ValueError("collate_clips(pin_memory=True) needs a CUDA device to pin memory for")
    if good and all(encoded):
        jpeg, sizes = _pack_jpeg(good, where)
        pixels = {"jpeg": jpeg}
    else:
        frames, sizes = _pad_frames(good, where)
        pixels = {"frames": frames.pin_memory() if pin_memory else frames}

    transforms = [s["transform"] for s in good]
    out = {
        **pixels,
        "sizes": sizes,
        "boxes": torch.stack([_as_tensor(s["box"], torch.float32) for s in good]) if good else torch.zeros(0, 4),
        "flip": torch.tensor([bool(s["flip"]) for s in good], dtype=torch.bool),
        "scale": torch.tensor([t.scale for t in transforms], dtype=torch.float32),
        "crop_offset": torch.tensor([t.crop_offset for t in transforms], dtype=torch.float32).reshape(-1, 2),
        "crop_size": torch.tensor([t.crop_size for t in transforms], dtype=torch.int64),
        "transform": transforms,
        "frame_indices": (
            torch.stack([_as_tensor(s["frame_indices"], torch.int64) for s in good])
            if good
            else torch.zeros(0, 0, dtype=torch.int64)
        ),
        "video_id": [s["video_id"] for s in good],
        "index": torch.tensor([int(s["index"]) for s in good], dtype=torch.int64),
        "view": torch.tensor([int(s.get("view", 0)) for s in good], dtype=torch.int64),
        "failed": failed,
        "errors": errors,
    }
    if good:
        out["label"] = _stack_labels([s["label"] for s in good], where)
    for key in _STACKED_KEYS:
        have = [key in s for s in good]
        if any(have):
            if not all(have):
                missing = where[have.index(False)]
                raise ValueError(f"collate_clips: {missing} has no {key!r} but other samples in the batch do")
            rows = [_as_tensor(s[key], torch.float32) for s in good]
            for row, name in zip(rows, where):
                if row.shape != rows[0].shape:
                    raise ValueError(f"collate_clips: {name} has {key!r} of shape {tuple(row.shape)}, "
                                     f"{where[0]} has {tuple(rows[0].shape)}")
            out[key] = torch.stack(rows)
    have = [("detections" in s) for s in good]
    if any(have):
        if not all(have):
            raise ValueError(f"collate_clips: {where[have.index(False)]} has no detections but other samples do")
        out["detections"] = _concat_detections(good)
    return out
