"""Turns a collated batch of uint8 frames into the network's normalised input in one pass:
crop the source box of each sample, bilinear-resize it to the output size, flip it, and apply
(v / 255 - mean) / std, on the training device.

* `crop_normalize` -- the fused C++/CUDA op `torch.ops.egoexo.crop_normalize` (csrc/).
* `crop_normalize_reference` -- the same definition with gathers in plain PyTorch (tests).
* `clips_to_device` -- a collated batch -> the normalised clips on the training device.
* `decode_jpeg_frames` -- JPEG frame-folder bytes -> the padded uint8 batch the op takes,
  decoded on the GPU when the device is CUDA.

Sampling rule (PyTorch's bilinear with align_corners=False): output pixel (i, j) of an h x w
output -- column w - 1 - j when flipped -- reads source position
    sy = y0 + (i + 0.5) * bh / h - 0.5,   sx = x0 + (j + 0.5) * bw / w - 0.5
of the box (x0, y0, bw, bh) (continuous pixel coordinates: pixel k spans [k, k + 1)), clamped
to [0, h_b - 1] x [0, w_b - 1] of the sample's real frame, and blends its 2 x 2 neighbours.
With the box = a crop of the short-side-resized frame mapped back to decoded pixels this is
exactly PySlowFast's "resize the whole frame, then crop" (tests/test_crop_normalize.py).

Output layout: contiguous [B, 3, T, h, w] (NCDHW), or with channels_last=True the same shape
with channels_last_3d strides (NDHWC in memory, `is_contiguous(memory_format=
torch.channels_last_3d)`), which is what a network moved to that memory format consumes under
bf16 autocast without a conversion; the values are bit-identical in both layouts.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torchvision.io import ImageReadMode, decode_jpeg

import extension  # noqa: F401  (registers torch.ops.egoexo.*)

KINETICS_MEAN = (0.45, 0.45, 0.45)
KINETICS_STD = (0.225, 0.225, 0.225)


def _memory_format(channels_last: bool) -> torch.memory_format:
    return torch.channels_last_3d if channels_last else torch.contiguous_format


@torch.library.register_fake("egoexo::crop_normalize")
def _crop_normalize_fake(frames, sizes, boxes, flip, out_size, mean, std, out_dtype,
                         channels_last=False):
    B, T = frames.shape[0], frames.shape[1]
    return torch.empty((B, 3, T, out_size[0], out_size[1]), dtype=out_dtype,
                       device=frames.device, memory_format=_memory_format(channels_last))


def _pair(out_size: int | Sequence[int]) -> list[int]:
    size = [out_size, out_size] if isinstance(out_size, int) else [int(v) for v in out_size]
    if len(size) != 2:
        raise ValueError(f"crop_normalize: out_size must be an int or (h, w), got {out_size!r}")
    return size


def crop_normalize(
    frames: torch.Tensor,
    sizes: torch.Tensor,
    boxes: torch.Tensor,
    flip: torch.Tensor,
    out_size: int | Sequence[int],
    mean: Sequence[float] = KINETICS_MEAN,
    std: Sequence[float] = KINETICS_STD,
    dtype: torch.dtype = torch.float32,
    channels_last: bool = False,
) -> torch.Tensor:
    """uint8 frames [B, T, H, W, 3] (sample b's real frames in the top-left sizes[b] = (h_b, w_b)
    region), sizes int64 [B, 2], boxes float32 [B, 4] (x0, y0, w, h) source region per sample,
    flip bool [B] -> dtype (float32 or bfloat16) [B, 3, T, h, w], contiguous or, when
    channels_last, with channels_last_3d strides. All on one device (CPU or CUDA). On CUDA, bad
    values inside sizes/boxes are device-side asserts, not exceptions."""
    return torch.ops.egoexo.crop_normalize(
        frames, sizes, boxes, flip, _pair(out_size), [float(v) for v in mean],
        [float(v) for v in std], dtype, channels_last,
    )


def _taps(start: torch.Tensor, step: torch.Tensor, positions: torch.Tensor, limit: int):
    """Bilinear taps (low, high, weight of high) of output positions; float32 in the op's order."""
    src = start + (positions.float() + 0.5) * step - 0.5
    src = src.clamp(0, limit - 1)
    low = src.long()
    high = torch.where(low < limit - 1, low + 1, low)
    return low, high, src - low.float()


def crop_normalize_reference(
    frames: torch.Tensor,
    sizes: torch.Tensor,
    boxes: torch.Tensor,
    flip: torch.Tensor,
    out_size: int | Sequence[int],
    mean: Sequence[float] = KINETICS_MEAN,
    std: Sequence[float] = KINETICS_STD,
    dtype: torch.dtype = torch.float32,
    channels_last: bool = False,
) -> torch.Tensor:
    """The op's definition, one sample at a time with gathers (no input validation)."""
    h, w = _pair(out_size)
    mean_t = torch.tensor(mean, dtype=torch.float32, device=frames.device)
    std_t = torch.tensor(std, dtype=torch.float32, device=frames.device)
    clips = []
    for b in range(frames.shape[0]):
        hb, wb = (int(v) for v in sizes[b])
        x0, y0, bw, bh = boxes[b].float().unbind()
        rows = torch.arange(h, device=frames.device)
        cols = torch.arange(w, device=frames.device)
        if bool(flip[b]):
            cols = cols.flip(0)
        y_low, y_high, wy1 = _taps(y0, bh / h, rows, hb)
        x_low, x_high, wx1 = _taps(x0, bw / w, cols, wb)
        wy1, wy0 = wy1[:, None, None], (1 - wy1)[:, None, None]
        wx1, wx0 = wx1[:, None], (1 - wx1)[:, None]
        pixels = frames[b].float()  # T, H, W, 3
        top, bottom = pixels[:, y_low], pixels[:, y_high]  # T, h, W, 3
        value = wy0 * (wx0 * top[:, :, x_low] + wx1 * top[:, :, x_high]) + wy1 * (
            wx0 * bottom[:, :, x_low] + wx1 * bottom[:, :, x_high]
        )
        clips.append(((value / 255 - mean_t) / std_t).permute(3, 0, 1, 2))
    layout = _memory_format(channels_last)
    if not clips:
        return torch.empty((0, 3, frames.shape[1], h, w), dtype=dtype, device=frames.device,
                           memory_format=layout)
    return torch.stack(clips).to(dtype).contiguous(memory_format=layout)


def clips_to_device(
    batch: dict,
    device: str | torch.device,
    out_size: int | Sequence[int] | None = None,
    mean: Sequence[float] = KINETICS_MEAN,
    std: Sequence[float] = KINETICS_STD,
    dtype: torch.dtype = torch.float32,
    channels_last: bool = False,
) -> torch.Tensor:
    """A collated batch (data/collate.py) -> normalised clips [B, 3, T, h, w] on `device`.

    The frames travel as uint8 (4x less than float; non-blocking when the DataLoader pinned
    them) and are cropped, resized, flipped and normalised there by the fused op; batches of
    JPEG bytes are decoded on the device first. out_size defaults to the batch's crop size
    (224 for training clips, 256 for test views); pack the result into pathways with the
    model's `input_spec.pack`. dtype and channels_last choose what the op writes: bfloat16 with
    channels_last_3d strides is what a channels_last model under bf16 autocast consumes as is.
    """
    device = torch.device(device)
    if out_size is None:
        crop_sizes = batch["crop_size"].unique()
        if crop_sizes.numel() != 1:
            raise ValueError(f"clips_to_device: the batch mixes crop sizes {crop_sizes.tolist()}; "
                             "pass out_size")
        out_size = int(crop_sizes[0])
    if "jpeg" in batch:
        frames, sizes = decode_jpeg_frames(batch["jpeg"], device)
    else:
        frames = batch["frames"].to(device, non_blocking=True)
        sizes = batch["sizes"].to(device, non_blocking=True)
    return crop_normalize(frames, sizes, batch["boxes"].to(device, non_blocking=True),
                          batch["flip"].to(device, non_blocking=True), out_size, mean, std, dtype,
                          channels_last)


def decode_jpeg_frames(
    encoded: Sequence[Sequence[torch.Tensor]], device: str | torch.device = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Encoded JPEG frames (B samples x T frames, each a 1-D uint8 tensor of file bytes) ->
    (frames uint8 [B, T, Hmax, Wmax, 3] with each sample top-left and zero padding,
    sizes int64 [B, 2] = (h_b, w_b)), both on `device`: the inputs of `crop_normalize`.
    On CUDA all frames are decoded in one batched nvJPEG call; on CPU on the CPU."""
    device = torch.device(device)
    if len(encoded) == 0:
        raise ValueError("decode_jpeg_frames: got no samples")
    T = len(encoded[0])
    for b, sample in enumerate(encoded):
        if len(sample) != T or T == 0:
            raise ValueError(
                f"decode_jpeg_frames: sample {b} has {len(sample)} frames and sample 0 has {T}; "
                "every sample needs the same positive number of frames"
            )
        for t, data in enumerate(sample):
            is_bytes = isinstance(data, torch.Tensor) and data.dtype == torch.uint8
            if not (is_bytes and data.dim() == 1):
                raise ValueError(
                    f"decode_jpeg_frames: sample {b} frame {t}: expected the file's bytes as a 1-D "
                    f"uint8 tensor, got {type(data).__name__} "
                    f"{getattr(data, 'dtype', '')} {tuple(getattr(data, 'shape', ()))}"
                )
    flat = [data.cpu() for sample in encoded for data in sample]
    try:
        images = decode_jpeg(flat, mode=ImageReadMode.RGB, device=device)
    except RuntimeError as error:
        # A batched decode does not say which frame failed: find it one at a time.
        for n, data in enumerate(flat):
            try:
                decode_jpeg(data, mode=ImageReadMode.RGB)
            except RuntimeError as frame_error:
                raise ValueError(
                    f"decode_jpeg_frames: sample {n // T} frame {n % T} is not a decodable JPEG "
                    f"({frame_error})"
                ) from frame_error
        raise
    shapes = [tuple(image.shape[1:]) for image in images]
    for n, shape in enumerate(shapes):
        if shape != shapes[n - n % T]:
            raise ValueError(
                f"decode_jpeg_frames: sample {n // T} frame {n % T} is {shape[0]}x{shape[1]} but "
                f"frame 0 of that sample is {shapes[n - n % T][0]}x{shapes[n - n % T][1]}; the "
                "frames of one clip must share one size"
            )
    sample_shapes = shapes[::T]
    H, W = max(s[0] for s in sample_shapes), max(s[1] for s in sample_shapes)
    frames = torch.zeros((len(encoded), T, H, W, 3), dtype=torch.uint8, device=device)
    for b, (h, w) in enumerate(sample_shapes):
        frames[b, :, :h, :w] = torch.stack(images[b * T : (b + 1) * T]).permute(0, 2, 3, 1)
    sizes = torch.tensor(sample_shapes, dtype=torch.int64, device=device)
    return frames, sizes
