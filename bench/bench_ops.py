"""Speed of the fused ops (csrc/) against what they replace, measured in one run.

Op 1, egoexo::interaction_map (B=64, T=32, S=7, 0-10 hand and 0-10 object boxes per frame):
  (a) the original release's way -- a Python loop per sample, frame and box, numpy geometry and
      an np.maximum write into the box's slice of the map;
  (b) the vectorised pure-PyTorch version (losses.interaction_map.interaction_map_vectorized).
Op 2, egoexo::crop_normalize (B=8, T=32, 256x340 frames -> 224x224, training jitter/crop/flip):
  the torchvision chain per sample -- crop, v2 resize (bilinear), flip, to float, normalise.

Every result is checked against the baseline before it is timed. Prints ms per batch and the
ratios, on the CPU with --threads threads and, when a GPU is present, on CUDA (timed with
torch.cuda.synchronize()).

    .venv/bin/python bench/bench_ops.py [--threads N] [--repeats R]
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from data.crop_normalize import KINETICS_MEAN, KINETICS_STD, crop_normalize  # noqa: E402
from losses.interaction_map import interaction_map, interaction_map_vectorized  # noqa: E402


def timed_ms(fn, device: torch.device, repeats: int, warmup: int = 2) -> float:
    """Median wall time of fn() in ms (synchronising around each call on CUDA)."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


# ---------------------------------------------------------------- op 1: Interaction-Map targets
def detection_batch(B=64, T=32, height=256, width=340, crop=224, max_per_kind=10, seed=0):
    """A training batch's detections (flat tensors, as collated) and its augmentation."""
    rng = np.random.default_rng(seed)
    rows = []
    for b in range(B):
        for t in range(T):
            for kind in (0, 1):
                for _ in range(rng.integers(0, max_per_kind + 1)):
                    w, h = rng.uniform(10, 150, 2)
                    x, y = rng.uniform(0, width - w), rng.uniform(0, height - h)
                    rows.append((b, t, kind, x, y, x + w, y + h, rng.uniform(0.5, 1.0)))
    det = np.array(rows)
    short = rng.integers(256, 321, B)  # short-side jitter; the frames' short side is `height`
    resized_w = np.floor(width / height * short)
    scale = (resized_w / width).astype(np.float32)
    offset = np.stack([rng.integers(0, resized_w - crop + 1), rng.integers(0, short - crop + 1)], 1)
    return dict(
        batch_index=torch.from_numpy(det[:, 0].astype(np.int64)),
        frame_index=torch.from_numpy(det[:, 1].astype(np.int64)),
        kinds=torch.from_numpy(det[:, 2].astype(np.int64)),
        boxes=torch.from_numpy(det[:, 3:7].astype(np.float32)),
        scores=torch.from_numpy(det[:, 7].astype(np.float32)),
        scale=torch.from_numpy(scale),
        crop_offset=torch.from_numpy(offset.astype(np.float32)),
        crop_size=torch.full((B,), crop, dtype=torch.int64),
        flip=torch.from_numpy(rng.random(B) < 0.5),
        num_frames=T,
        map_size=7,
    )


def per_sample_detections(batch: dict) -> list[list[list[np.ndarray]]]:
    """What the original release kept per sample: per frame, per kind, K x 5 numpy arrays."""
    B, T = batch["scale"].shape[0], batch["num_frames"]
    out = [[[np.zeros((0, 5), np.float32), np.zeros((0, 5), np.float32)] for _ in range(T)]
           for _ in range(B)]
    rows = torch.cat([batch["boxes"], batch["scores"][:, None]], 1).numpy()
    for n, (b, t, k) in enumerate(zip(batch["batch_index"].tolist(), batch["frame_index"].tolist(),
                                      batch["kinds"].tolist())):
        out[b][t][k] = np.concatenate([out[b][t][k], rows[n:n + 1]])
    return out


def interaction_map_loop(detections, scale, crop_offset, crop_size, flip, map_size) -> torch.Tensor:
    """Baseline (a): the release's per-box loop (float32 numpy, so results agree exactly)."""
    f32, S = np.float32, map_size
    samples = []
    for b, frames in enumerate(detections):
        s, W = f32(scale[b]), int(crop_size[b])
        offset = np.array([crop_offset[b][0], crop_offset[b][1]] * 2, np.float32)
        maps = np.zeros((2, len(frames), S, S), np.float32)
        for t, per_kind in enumerate(frames):
            for kind, dets in enumerate(per_kind):
                for det in dets:
                    box = det[:4] * s - offset
                    if flip[b]:
                        box[0], box[2] = f32(W - 1) - box[2], f32(W - 1) - box[0]
                    box = np.clip(box, f32(0), f32(W - 1)) / f32(W)
                    x1, y1, x2, y2 = np.clip(np.floor(box * f32(S)).astype(np.int64), 0, S - 1)
                    region = maps[kind, t, y1:y2 + 1, x1:x2 + 1]
                    maps[kind, t, y1:y2 + 1, x1:x2 + 1] = np.maximum(region, det[4])
        samples.append(torch.from_numpy(maps))
    return torch.stack(samples)


def bench_interaction_map(device: torch.device, repeats: int) -> None:
    batch = detection_batch()
    on_device = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
    positional = [on_device[k] for k in ("batch_index", "frame_index", "boxes", "scores", "kinds")]
    per_sample = {k: on_device[k] for k in ("scale", "crop_offset", "crop_size", "flip",
                                            "num_frames", "map_size")}
    fused = lambda: interaction_map(*positional, **per_sample)  # noqa: E731
    vectorized = lambda: interaction_map_vectorized(*positional, **per_sample)  # noqa: E731
    result = fused()
    assert torch.equal(vectorized(), result), "vectorised baseline disagrees with the op"
    print(f"\n[interaction_map] device={device}  B=64 T=32 S=7  boxes={batch['boxes'].shape[0]}")
    t_op = timed_ms(fused, device, repeats * 5)
    t_vec = timed_ms(vectorized, device, repeats)
    print(f"  fused op            {t_op:10.3f} ms/batch")
    print(f"  (b) vectorised torch {t_vec:9.3f} ms/batch   op speed-up {t_vec / t_op:8.1f}x")
    if device.type == "cpu":
        dets = per_sample_detections(batch)
        args = (dets, batch["scale"].numpy(), batch["crop_offset"].numpy(),
                batch["crop_size"].numpy(), batch["flip"].numpy(), 7)
        assert torch.equal(interaction_map_loop(*args), result), "per-box loop disagrees"
        loop = lambda: interaction_map_loop(*args)  # noqa: E731
        t_loop = timed_ms(loop, device, max(1, repeats // 2), warmup=1)
        print(f"  (a) per-box loop    {t_loop:10.3f} ms/batch   op speed-up {t_loop / t_op:8.1f}x")
    if device.type == "cuda":
        print(f"  goal < 50 us/batch: {'met' if t_op < 0.05 else 'NOT met'} ({t_op * 1e3:.1f} us)")


# ---------------------------------------------------------------- op 2: crop/resize/flip/normalise
def frame_batch(B=8, T=32, height=256, width=340, crop=224, seed=0):
    """Decoded clips (smooth random pictures, so a pixel-rounded crop looks nearly the same)
    and, per sample, the training crop's source box (jitter, crop, flip)."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(B * T, 3, height // 8, width // 8, generator=g) * 255
    smooth = torch.nn.functional.interpolate(coarse, size=(height, width), mode="bilinear")
    frames = smooth.round().to(torch.uint8).view(B, T, 3, height, width).permute(0, 1, 3, 4, 2)
    frames = frames.contiguous()
    boxes, flips = [], []
    for _ in range(B):
        short = int(torch.randint(256, 321, (1,), generator=g))
        resized_w = math.floor(width / height * short)
        x0 = int(torch.randint(0, resized_w - crop + 1, (1,), generator=g))
        y0 = int(torch.randint(0, short - crop + 1, (1,), generator=g))
        boxes.append([x0 * width / resized_w, y0 * height / short,
                      crop * width / resized_w, crop * height / short])
        flips.append(bool(torch.rand(1, generator=g) < 0.5))
    sizes = torch.tensor([[height, width]] * B)
    return frames, sizes, torch.tensor(boxes), torch.tensor(flips)


def torchvision_chain(frames, boxes, flip, out_size):
    """Baseline: per sample crop (box rounded to pixels), v2 resize, flip, float, normalise."""
    clips = []
    for b in range(frames.shape[0]):
        x0, y0, w, h = (round(float(v)) for v in boxes[b])
        clip = TF.crop(frames[b].permute(0, 3, 1, 2), y0, x0, h, w)  # T, 3, h, w
        clip = TF.resize(clip, [out_size, out_size], antialias=False)
        if flip[b]:
            clip = TF.horizontal_flip(clip)
        clip = TF.to_dtype(clip, torch.float32, scale=True)
        clip = TF.normalize(clip, KINETICS_MEAN, KINETICS_STD)
        clips.append(clip.permute(1, 0, 2, 3))
    return torch.stack(clips)


def bench_crop_normalize(device: torch.device, repeats: int) -> None:
    frames, sizes, boxes, flip = (x.to(device) for x in frame_batch())
    B, T, H, W, _ = frames.shape
    fused = lambda: crop_normalize(frames, sizes, boxes, flip, 224)  # noqa: E731
    chain = lambda: torchvision_chain(frames, boxes, flip, 224)  # noqa: E731
    # Same picture: the chain samples a pixel-rounded box, so compare loosely (mean |diff|).
    difference = (fused() - chain()).abs().mean().item()
    assert difference < 0.1, f"torchvision chain and op disagree (mean |diff| {difference})"
    print(f"\n[crop_normalize] device={device}  B={B} T={T} {H}x{W} -> 224x224 float32")
    t_op = timed_ms(fused, device, repeats)
    t_chain = timed_ms(chain, device, repeats)
    print(f"  fused op            {t_op:10.3f} ms/batch")
    print(f"  torchvision chain   {t_chain:10.3f} ms/batch   op speed-up {t_chain / t_op:8.1f}x")
    if device.type == "cuda":
        print(f"  goal >= 3x the chain: {'met' if t_chain / t_op >= 3 else 'NOT met'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="CPU threads")
    parser.add_argument("--repeats", type=int, default=10, help="timed calls per measurement")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    print(f"torch {torch.__version__}  CPU threads: {torch.get_num_threads()}  devices: "
          + ", ".join(str(d) + (f" ({torch.cuda.get_device_name()})" if d.type == "cuda" else "")
                      for d in devices))
    for device in devices:
        bench_interaction_map(device, args.repeats)
        bench_crop_normalize(device, args.repeats)


if __name__ == "__main__":
    main()
