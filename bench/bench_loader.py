"""Training-clip loading speed: the project's loader path against three baselines, same run.

Clips are SlowFast 8x8 training clips (32 frames at stride 2 from a random 64-frame window,
short-side jitter, random crop, flip). Methods, all on the same (video, seed) list:
  ours      data.transforms.load_clip: what a dataset worker does per sample
  naive     (a) decode and convert the whole video, then sample
  pyslowfast (b) PySlowFast's PyAV path: seek with a fixed 1024-tick margin, decode to the
            window's end, convert every frame of the window (frame.to_rgb().to_ndarray()),
            then sample; (b') the same with single-threaded per-frame conversion, since
            PyAV 18's to_rgb() starts a multi-threaded scaler for every frame
  floor     (c) bare PyAV: seek to the keyframe, decode the window, convert only the kept
            frames through one reformatter; no probing, no augmentation
then a DataLoader run per worker count (collate included) for the scaling.

Usage: python bench/bench_loader.py [--videos DIR] [--clips 48] [--workers 1 2]
Without --videos it writes 10 s 256p H.264 clips (2 s GOP, a panning textured scene with
moving objects and sensor noise, so the bitrate is in Kinetics' range) to a temporary folder.
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
import tempfile
import time

import av
import numpy as np
import torch
from av.video.reformatter import VideoReformatter

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from data.collate import collate_clips  # noqa: E402
from data.transforms import ClipSampling, load_clip, precrop_region, sample_clip_indices, train_transform  # noqa: E402
from data.video import write_video  # noqa: E402

SAMPLING = ClipSampling()  # SlowFast 8x8, Kinetics training augmentation


# -- test videos ----------------------------------------------------------------------------------


def synthetic_scene(num_frames: int, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A camera panning over a multi-scale texture, three moving blocks, and sensor noise."""
    big_h, big_w = 2 * height, 2 * width
    texture = np.zeros((big_h, big_w, 3), np.float32)
    for cell, amplitude in ((64, 70.0), (16, 35.0), (4, 25.0), (2, 20.0)):
        coarse = torch.from_numpy(rng.normal(0, amplitude, (1, 3, big_h // cell + 2, big_w // cell + 2)).astype(np.float32))
        fine = torch.nn.functional.interpolate(coarse, scale_factor=cell, mode="bicubic", align_corners=False)
        texture += fine[0, :, :big_h, :big_w].permute(1, 2, 0).numpy()
    texture += 128
    speed = rng.uniform(0.5, 1.5, 2) * np.array([1.0, 0.5])
    blocks = [(rng.uniform(0, width), rng.uniform(0, height), rng.uniform(-4, 4), rng.uniform(-3, 3),
               rng.uniform(20, 60), rng.uniform(0, 255, 3)) for _ in range(3)]
    frames = np.empty((num_frames, height, width, 3), np.uint8)
    for t in range(num_frames):
        x0 = int(abs((t * speed[0]) % (2 * (big_w - width)) - (big_w - width)))
        y0 = int(abs((t * speed[1]) % (2 * (big_h - height)) - (big_h - height)))
        frame = texture[y0 : y0 + height, x0 : x0 + width].copy()
        for bx, by, vx, vy, size, colour in blocks:
            cx, cy = (bx + vx * t) % width, (by + vy * t) % height
            frame[int(cy) : int(cy + size), int(cx) : int(cx + size)] = colour
        frame += rng.normal(0, 4.0, (height, width, 1)).astype(np.float32)
        frames[t] = np.clip(frame, 0, 255)
    return frames


def write_test_videos(folder: str, count: int, seconds: float = 10.0, fps: int = 30) -> list[str]:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        path = os.path.join(folder, f"bench_{i:02d}.mp4")
        write_video(path, synthetic_scene(int(seconds * fps), 256, 340, rng), fps, crf=23, gop=2 * fps)
        paths.append(path)
    return paths


# -- the baselines ---------------------------------------------------------------------------------


def _augment(frames: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, tuple]:
    """The same spatial step as ours: pick the transform, slice the region the op will sample."""
    height, width = frames.shape[1:3]
    transform = train_transform(height, width, rng, SAMPLING.min_size, SAMPLING.max_size, SAMPLING.crop_size)
    x0, y0, x1, y1 = precrop_region(transform.source_box(), height, width)
    return np.ascontiguousarray(frames[:, y0:y1, x0:x1]), transform


def naive_clip(path: str, rng: np.random.Generator):
    """(a) Decode every frame of the video to RGB (single-threaded conversion), then sample."""
    with av.open(path) as container:
        frames = np.stack([f.to_ndarray(format="rgb24", threads=1) for f in container.decode(video=0)])
    indices = sample_clip_indices(len(frames), SAMPLING.clip_len, SAMPLING.stride, -1, 1, rng)
    return _augment(frames[indices], rng)


def pyslowfast_clip(path: str, rng: np.random.Generator, scaler_threads: int | None = None):
    """(b) PySlowFast's PyAV decoding: timestamp window from the mean frame duration, seek 1024
    ticks early, decode to the window's end, convert the whole window, then sample.

    PySlowFast calls frame.to_rgb() per frame, which in PyAV 18 builds a fresh swscale context
    with automatic threading for every frame; scaler_threads=1 (b') keeps its algorithm but
    converts single-threaded, to separate that cost from the algorithmic one."""
    with av.open(path) as container:
        stream = container.streams.video[0]
        num_frames = stream.frames
        window = SAMPLING.clip_len * SAMPLING.stride
        start = rng.uniform(0, max(num_frames - window, 0))
        end = start + window - 1
        ticks_per_frame = stream.duration / num_frames
        start_pts, end_pts = int(start * ticks_per_frame), int(end * ticks_per_frame)
        container.seek(max(start_pts - 1024, 0), any_frame=False, backward=True, stream=stream)
        kept = {}
        for frame in container.decode(stream):
            if frame.pts < start_pts:
                continue
            if frame.pts > end_pts:
                break
            kept[frame.pts] = frame
        if scaler_threads is None:
            frames = np.stack([kept[pts].to_rgb().to_ndarray() for pts in sorted(kept)])
        else:
            frames = np.stack([kept[pts].to_ndarray(format="rgb24", threads=scaler_threads) for pts in sorted(kept)])
    index = torch.linspace(0, len(frames) - 1, SAMPLING.clip_len).clamp(0, len(frames) - 1).long().numpy()
    return _augment(frames[index], rng)


def floor_clip(path: str, rng: np.random.Generator):
    """(c) Seek to the keyframe, decode the window, convert only the kept frames; nothing else."""
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_count = 1
        num_frames = stream.frames
        step = stream.duration // num_frames  # constant frame rate, first pts 0
        window = SAMPLING.clip_len * SAMPLING.stride
        start = int(rng.uniform(0, max(num_frames - window, 0)))
        wanted = start + np.arange(0, window, SAMPLING.stride)
        container.seek(int(wanted[0] * step), backward=True, any_frame=False, stream=stream)
        reformatter = VideoReformatter()
        out = None
        k = 0
        for frame in container.decode(stream):
            if frame.pts // step != wanted[k]:
                continue
            rgb = reformatter.reformat(frame, format="rgb24", threads=1)
            plane, h, w = rgb.planes[0], rgb.height, rgb.width
            if out is None:
                out = np.empty((len(wanted), h, w, 3), np.uint8)
            out[k] = np.frombuffer(plane, np.uint8).reshape(h, plane.line_size)[:, : 3 * w].reshape(h, w, 3)
            k += 1
            if k == len(wanted):
                break
    return out


def ours_clip(path: str, rng: np.random.Generator, threads: int = 1):
    return load_clip(path, SAMPLING, rng, threads=threads)


# -- measurement -----------------------------------------------------------------------------------


def clips_per_second(methods: dict, jobs: list, rounds: int, limits: dict[str, int]) -> dict[str, float]:
    """Clips/s of each method, interleaved clip by clip (in rotating order) so that load from
    other processes on the machine hits every method alike; method m runs on jobs[:limits[m]]."""
    seconds = {name: 0.0 for name in methods}
    counts = {name: 0 for name in methods}
    names = list(methods)
    for name in names:  # warm-up: imports, first file open
        path, seed = jobs[0]
        methods[name](path, np.random.default_rng(seed))
    for _ in range(rounds):
        for j, (path, seed) in enumerate(jobs):
            for name in names[j % len(names):] + names[: j % len(names)]:
                if j < limits.get(name, len(jobs)):
                    start = time.perf_counter()
                    methods[name](path, np.random.default_rng(seed))
                    seconds[name] += time.perf_counter() - start
                    counts[name] += 1
    return {name: counts[name] / seconds[name] for name in names}


class ClipDataset(torch.utils.data.Dataset):
    def __init__(self, jobs, threads: int):
        self.jobs, self.threads = jobs, threads

    def __len__(self):
        return len(self.jobs)

    def __getitem__(self, i):
        path, seed = self.jobs[i]
        sample = load_clip(path, SAMPLING, np.random.default_rng(seed), threads=self.threads)
        return dict(sample, label=0, video_id=os.path.basename(path), index=i, view=0)


def _one_thread(_):
    torch.set_num_threads(1)


def loader_clips_per_second(jobs, workers: int, threads: int, batch_size: int = 4) -> float:
    """Clips/s of a DataLoader, timed from the moment every worker has delivered a batch."""
    loader = torch.utils.data.DataLoader(
        ClipDataset(jobs, threads), batch_size=batch_size, num_workers=workers,
        collate_fn=collate_clips, worker_init_fn=_one_thread,
    )
    iterator = iter(loader)
    for _ in range(workers):  # start-up and first batches
        next(iterator)
    start = time.perf_counter()
    count = sum(len(batch["index"]) for batch in iterator)
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", help="folder of .mp4/.webm/.mkv videos (default: generate 256p H.264 clips)")
    parser.add_argument("--num-videos", type=int, default=6, help="videos to generate")
    parser.add_argument("--clips", type=int, default=48, help="clips per method")
    parser.add_argument("--naive-clips", type=int, default=12, help="clips for the slow whole-video baseline")
    parser.add_argument("--workers", type=int, nargs="*", default=[1, 2], help="DataLoader worker counts")
    parser.add_argument("--rounds", type=int, default=2, help="passes over the clips")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)

    with tempfile.TemporaryDirectory() as tmp:
        if args.videos:
            paths = sorted(p for ext in ("mp4", "webm", "mkv") for p in glob.glob(os.path.join(args.videos, f"*.{ext}")))
            if not paths:
                sys.exit(f"--videos {args.videos}: no .mp4/.webm/.mkv files there")
        else:
            start = time.perf_counter()
            paths = write_test_videos(tmp, args.num_videos)
            megabits = sum(os.path.getsize(p) for p in paths) * 8 / 1e6 / (10 * len(paths))
            print(f"wrote {len(paths)} videos of 10 s, 340x256, 30 fps, GOP 60, {megabits:.2f} Mbit/s "
                  f"({time.perf_counter() - start:.1f} s)")
        # Other processes on the machine slow every method alike within a round, but they cap
        # the worker scaling: say how busy the machine was.
        print(f"load average (1 min) before measuring: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
        rng = np.random.default_rng(args.seed)
        jobs = [(paths[i % len(paths)], int(rng.integers(1 << 30))) for i in range(args.clips)]

        print(f"\none process, one core, {args.clips} clips (naive: {args.naive_clips}) x {args.rounds} rounds, interleaved:")
        methods = {
            "ours": ours_clip,
            "ours, decoder threads=auto": lambda p, r: ours_clip(p, r, threads=0),
            "(a) naive whole video": naive_clip,
            "(b) PySlowFast": pyslowfast_clip,
            "(b') PySlowFast, 1-thread scaler": lambda p, r: pyslowfast_clip(p, r, scaler_threads=1),
            "(c) floor": floor_clip,
        }
        rates = clips_per_second(methods, jobs, args.rounds, {"(a) naive whole video": args.naive_clips})
        for name, rate in rates.items():
            print(f"  {name:34s} {rate:7.1f} clips/s")
        ours = rates["ours"]
        print(f"  ours / (a)  = {ours / rates['(a) naive whole video']:.2f}x   (goal >= 3)")
        print(f"  ours / (b)  = {ours / rates['(b) PySlowFast']:.2f}x   (goal >= 1.3)")
        b_prime = rates["(b') PySlowFast, 1-thread scaler"]
        print(f"  ours / (b') = {ours / b_prime:.2f}x")
        print(f"  (c) / ours  = {rates['(c) floor'] / ours:.2f}x   (goal <= 1.2)")

        if args.workers:
            print(f"\nDataLoader, batch 4, collate_clips, {os.cpu_count()} cores, best of {args.rounds} interleaved passes:")
            configs = [(threads, workers) for threads in (1, 0) for workers in args.workers]
            best = {config: 0.0 for config in configs}
            for _ in range(args.rounds):
                for threads, workers in configs:
                    rate = loader_clips_per_second(jobs, workers, threads)
                    best[threads, workers] = max(best[threads, workers], rate)
            base = best[configs[0]]
            for (threads, workers), rate in best.items():
                label = "1 (default)" if threads == 1 else "auto"
                print(f"  workers={workers} decoder threads={label:11s} {rate:7.1f} clips/s  "
                      f"({rate / base:.2f}x the first line)")

if __name__ == "__main__":
    main()
