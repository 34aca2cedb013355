"""Video loader speed: the project's decoding against today's and against baselines, same run.

Sections (--sections, all by default), every figure per CPU-second of this process (the decoder's
threads count, so FFmpeg threading cannot flatter a method) unless it says wall clock:
  views     test views per CPU-second at SlowFast 8x8 test sampling, 10 x 3 views a video
            (32 frames at stride 2 per window, short side 256, 3 crops), all through
            ClipDataset: (1) view by view as the items were before (one open and one decode per
            view, every packet decoded), (2) batches of 8 views (what a DataLoader batch of 8
            clips gets from ClipDataset.__getitems__), (3) all 30 views of a video in one batch
            (one decode per video)
  train     training clips per CPU-second at Slow 8x8 (8 frames at stride 8) and SlowFast 8x8
            (32 at stride 2) sampling: data.transforms.load_clip leaving unreferenced H.264
            pictures out, against load_clip feeding every packet (today's decoding)
  baselines load_clip at SlowFast 8x8 against (a) decoding and converting the whole video,
            (b) PySlowFast's PyAV path: seek with a fixed 1024-tick margin, decode to the
            window's end, convert every frame of the window (frame.to_rgb().to_ndarray()),
            (b') the same with single-threaded per-frame conversion (PyAV 18's to_rgb() starts
            a multi-threaded scaler for every frame), (c) bare PyAV: seek to the keyframe, decode
            the window, convert only the kept frames; plus, when installed (not dependencies),
            decord (num_threads=1) and torchcodec (CPU, one thread, a decoder per clip and one
            kept open per video)
  loader    DataLoader scaling, wall clock, collate included: training clips with 1 and 2
            workers (decoder threads 1 and auto), test views in whole-video batches
Methods are interleaved clip by clip (in rotating order) so that load from other processes on
the machine hits every method alike; ratios within one run are what counts.

Usage: python bench/bench_loader.py [--videos DIR] [--sections views train baselines loader]
Without --videos it writes 10 s 340x256 30 fps H.264 videos to a temporary folder, encoded by
PyAV's libx264 at x264's defaults (preset medium, crf 23, up to 3 B-frames with b-pyramid
normal, keyint 250, scenecut 40), as Kinetics is stored: a panning textured scene with moving
objects and sensor noise that cuts to a new scene every 100 frames (x264 places scene-cut
keyframes there), so the bitrate is in Kinetics' range.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import importlib.util
import os
import sys
import tempfile
import time

import av
import numpy as np
import torch
from av.video.reformatter import VideoReformatter

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import data.transforms  # noqa: E402
from data.collate import collate_clips  # noqa: E402
from data.datasets import ClipDataset, VideoItem  # noqa: E402
from data.transforms import ClipSampling, load_clip, precrop_region, sample_clip_indices, train_transform  # noqa: E402
from data.video import H264Parser, VideoReader  # noqa: E402

SAMPLING = ClipSampling()  # SlowFast 8x8, Kinetics training augmentation
SLOW_SAMPLING = ClipSampling(clip_len=8, stride=8)  # Slow 8x8
TEST_SAMPLING = ClipSampling(num_clips=10, num_crops=3)  # SlowFast 8x8 test views: 10 x 3, short side 256
SCENE_FRAMES = 100  # frames between scene cuts in the generated videos


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
    """`count` videos of `seconds`, 340x256, through libx264 at its defaults (module docstring)."""
    rng = np.random.default_rng(0)
    paths = []
    num_frames = int(seconds * fps)
    for i in range(count):
        path = os.path.join(folder, f"bench_{i:02d}.mp4")
        scenes = [synthetic_scene(min(SCENE_FRAMES, num_frames - start), 256, 340, rng)
                  for start in range(0, num_frames, SCENE_FRAMES)]
        with av.open(path, "w") as container:
            stream = container.add_stream("libx264", rate=fps)
            stream.width, stream.height, stream.pix_fmt = 340, 256, "yuv420p"
            for t, image in enumerate(np.concatenate(scenes)):
                frame = av.VideoFrame.from_ndarray(image, format="rgb24")
                frame.pts = t
                container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
        paths.append(path)
    return paths


def describe_videos(paths: list[str]) -> str:
    """Frame size and rate, bitrate, keyframes and the share of non-reference pictures."""
    frames = keyframes = non_reference = size = 0
    seconds = 0.0
    for path in paths:
        with av.open(path) as container:
            stream = container.streams.video[0]
            parser = H264Parser.for_stream(stream.codec_context)
            width, height, rate = stream.codec_context.width, stream.codec_context.height, stream.average_rate
            for packet in container.demux(stream):
                if packet.size:
                    frames += 1
                    keyframes += packet.is_keyframe
                    non_reference += bool(parser and parser.is_non_reference(packet))
            seconds += float(stream.frames / rate)
        size += os.path.getsize(path)
    return (f"{len(paths)} videos, {width}x{height}, {float(rate):g} fps, {size * 8 / 1e6 / seconds:.2f} Mbit/s, "
            f"a keyframe every {frames / keyframes:.0f} frames, {100 * non_reference / frames:.0f} % "
            f"non-reference pictures")


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


def ours_clip(path: str, rng: np.random.Generator, threads: int = 1, sampling: ClipSampling = SAMPLING):
    return load_clip(path, sampling, rng, threads=threads)


class EveryPacketReader(VideoReader):
    """Today's decoding: every packet goes to the decoder (skip_non_reference=False)."""

    def __init__(self, path, threads: int = 1):
        super().__init__(path, threads=threads, skip_non_reference=False)


@contextlib.contextmanager
def every_packet():
    """Makes data.transforms (load_clip, load_views) decode every packet while it lasts."""
    reader = data.transforms.VideoReader
    data.transforms.VideoReader = EveryPacketReader
    try:
        yield
    finally:
        data.transforms.VideoReader = reader


def today_clip(path: str, rng: np.random.Generator, sampling: ClipSampling = SAMPLING):
    with every_packet():
        return load_clip(path, sampling, rng)


def decord_clip(path: str, rng: np.random.Generator):
    """decord, one thread, the same frame indices as ours, converted to RGB by decord."""
    import decord
    reader = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=1)
    indices = sample_clip_indices(len(reader), SAMPLING.clip_len, SAMPLING.stride, -1, 1, rng)
    return _augment(reader.get_batch(indices.tolist()).asnumpy(), rng)


def torchcodec_clip(path: str, rng: np.random.Generator, decoders: dict | None = None):
    """torchcodec on the CPU, one FFmpeg thread, exact seeks: a decoder per clip, or (with
    `decoders`) one kept open per video across clips."""
    from torchcodec.decoders import VideoDecoder
    decoder = decoders.get(path) if decoders is not None else None
    if decoder is None:
        decoder = VideoDecoder(path, dimension_order="NHWC", num_ffmpeg_threads=1, device="cpu", seek_mode="exact")
        if decoders is not None:
            decoders[path] = decoder
    indices = sample_clip_indices(decoder.metadata.num_frames, SAMPLING.clip_len, SAMPLING.stride, -1, 1, rng)
    return _augment(decoder.get_frames_at(indices=indices.tolist()).data.numpy(), rng)


def optional_baselines() -> dict:
    """decord / torchcodec rows for the packages that are installed (neither is a dependency)."""
    methods = {}
    if importlib.util.find_spec("decord") is not None:
        methods["(d) decord, num_threads=1"] = decord_clip
    if importlib.util.find_spec("torchcodec") is not None:
        kept_open: dict = {}
        methods["(e) torchcodec, decoder per clip"] = torchcodec_clip
        methods["(e') torchcodec, decoder per video"] = lambda p, r: torchcodec_clip(p, r, kept_open)
    return methods


# -- measurement -----------------------------------------------------------------------------------


def clips_per_second(methods: dict, jobs: list, rounds: int, limits: dict[str, int] | None = None) -> dict[str, float]:
    """Clips per CPU-second of each method, interleaved clip by clip (in rotating order) so that
    load from other processes on the machine hits every method alike; method m runs on
    jobs[:limits[m]]."""
    limits = limits or {}
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
                    start = time.process_time()
                    methods[name](path, np.random.default_rng(seed))
                    seconds[name] += time.process_time() - start
                    counts[name] += 1
    return {name: counts[name] / seconds[name] for name in names}


class TrainingClips(torch.utils.data.Dataset):
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


def loader_rate(dataset, workers: int, batch_size: int) -> float:
    """Samples/s (wall clock) of a DataLoader, timed from the moment every worker has delivered
    a batch; samples that failed to load count too."""
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, num_workers=workers,
                                         collate_fn=collate_clips, worker_init_fn=_one_thread)
    iterator = iter(loader)
    for _ in range(workers):  # start-up and first batches
        next(iterator)
    start = time.perf_counter()
    count = sum(len(batch["index"]) + len(batch["errors"]) for batch in iterator)
    if count == 0:
        raise SystemExit(f"DataLoader bench: {len(dataset)} samples are too few for {workers} worker(s) at batch "
                         f"{batch_size}; give more --clips / --view-videos")
    return count / (time.perf_counter() - start)


# -- the sections ----------------------------------------------------------------------------------


def test_views_per_second(paths: list[str], rounds: int) -> dict[str, float]:
    """Views per CPU-second of the three ways of loading every view of every video (module
    docstring), interleaved video by video."""
    dataset = ClipDataset([VideoItem(video_id=os.path.basename(p), source=p, label=0) for p in paths], False,
                          TEST_SAMPLING)
    views = dataset.num_views

    def view_by_view(video: int) -> None:
        with every_packet():
            for view in range(views):
                dataset[video * views + view]

    def batches_of(size: int):
        def load(video: int) -> None:
            for start in range(0, views, size):
                dataset.__getitems__(list(range(video * views + start, video * views + min(start + size, views))))
        return load

    methods = {"(1) view by view, every packet (before)": view_by_view,
               "(2) batches of 8 views": batches_of(8),
               "(3) one batch of 30 views (one decode)": batches_of(views)}
    seconds = dict.fromkeys(methods, 0.0)
    names = list(methods)
    methods[names[0]](0)  # warm-up
    for _ in range(rounds):
        for video in range(len(paths)):
            for name in names[video % len(names):] + names[: video % len(names)]:
                start = time.process_time()
                methods[name](video)
                seconds[name] += time.process_time() - start
    return {name: rounds * len(paths) * views / seconds[name] for name in names}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", help="folder of .mp4/.webm/.mkv videos (default: generate x264-default 256p clips)")
    parser.add_argument("--num-videos", type=int, default=4, help="videos to generate")
    parser.add_argument("--sections", nargs="*", default=["views", "train", "baselines", "loader"],
                        choices=["views", "train", "baselines", "loader"])
    parser.add_argument("--clips", type=int, default=32, help="clips per method")
    parser.add_argument("--naive-clips", type=int, default=8, help="clips for the slow whole-video baseline")
    parser.add_argument("--view-videos", type=int, default=3, help="videos whose 30 views each way loads")
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
            print(f"wrote 10 s videos with libx264 at x264's defaults ({time.perf_counter() - start:.1f} s)")
        print(describe_videos(paths))
        # Other processes on the machine slow every method alike within a round, but they cap
        # the worker scaling: say how busy the machine was.
        print(f"load average (1 min) before measuring: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
        rng = np.random.default_rng(args.seed)
        jobs = [(paths[i % len(paths)], int(rng.integers(1 << 30))) for i in range(args.clips)]

        if "views" in args.sections:
            view_paths = paths[: args.view_videos]
            print(f"\ntest views, 10 x 3 per video, {len(view_paths)} videos x {args.rounds} rounds, per CPU-second:")
            rates = test_views_per_second(view_paths, args.rounds)
            for name, rate in rates.items():
                print(f"  {name:42s} {rate:7.1f} views/s")
            names = list(rates)
            print(f"  (3) / (1) = {rates[names[2]] / rates[names[0]]:.2f}x   (goal >= 3)")
            print(f"  (2) / (1) = {rates[names[1]] / rates[names[0]]:.2f}x")

        if "train" in args.sections:
            print(f"\ntraining clips, {args.clips} clips x {args.rounds} rounds, per CPU-second, interleaved:")
            for label, sampling, goal in (("SlowFast 8x8 (32 frames, stride 2)", SAMPLING, "goal >= 1.15"),
                                          ("Slow 8x8 (8 frames, stride 8)", SLOW_SAMPLING, "goal: above SlowFast's")):
                methods = {"load_clip": lambda p, r, s=sampling: ours_clip(p, r, sampling=s),
                           "load_clip, every packet (before)": lambda p, r, s=sampling: today_clip(p, r, s)}
                rates = clips_per_second(methods, jobs, args.rounds)
                ratio = rates["load_clip"] / rates["load_clip, every packet (before)"]
                print(f"  {label}: {rates['load_clip']:.1f} against {rates['load_clip, every packet (before)']:.1f} "
                      f"clips/s = {ratio:.2f}x   ({goal})")

        if "baselines" in args.sections:
            print(f"\none process, SlowFast 8x8, {args.clips} clips (naive: {args.naive_clips}) x {args.rounds} rounds, "
                  "per CPU-second, interleaved:")
            methods = {
                "ours": ours_clip,
                "ours, decoder threads=auto": lambda p, r: ours_clip(p, r, threads=0),
                "(a) naive whole video": naive_clip,
                "(b) PySlowFast": pyslowfast_clip,
                "(b') PySlowFast, 1-thread scaler": lambda p, r: pyslowfast_clip(p, r, scaler_threads=1),
                "(c) floor": floor_clip,
                **optional_baselines(),
            }
            rates = clips_per_second(methods, jobs, args.rounds, {"(a) naive whole video": args.naive_clips})
            for name, rate in rates.items():
                print(f"  {name:34s} {rate:7.1f} clips/s")
            ours = rates["ours"]
            print(f"  ours / (a)  = {ours / rates['(a) naive whole video']:.2f}x   (goal >= 3)")
            print(f"  ours / (b)  = {ours / rates['(b) PySlowFast']:.2f}x   (goal >= 1.3)")
            b_prime = rates["(b') PySlowFast, 1-thread scaler"]
            print(f"  ours / (b') = {ours / b_prime:.2f}x")
            print(f"  (c) / ours  = {rates['(c) floor'] / ours:.2f}x")
            for name in rates:
                if name.startswith(("(d)", "(e")):
                    print(f"  ours / {name.split(')')[0]})  = {ours / rates[name]:.2f}x   ({name})")

        if "loader" in args.sections and args.workers:
            print(f"\nDataLoader, wall clock, {os.cpu_count()} cores, best of {args.rounds} interleaved passes:")
            view_items = [VideoItem(video_id=f"{k}", source=paths[k % len(paths)], label=0)
                          for k in range(4 * max(args.workers))]  # a batch of 30 views per item
            view_set = ClipDataset(view_items, False, TEST_SAMPLING)
            configs = [("training clips, batch 4", threads, workers) for threads in (1, 0) for workers in args.workers]
            configs += [("test views, batch 30", 1, workers) for workers in args.workers]
            best = dict.fromkeys(configs, 0.0)
            for _ in range(args.rounds):
                for config in configs:
                    what, threads, workers = config
                    if what.startswith("training"):
                        rate = loader_rate(TrainingClips(jobs, threads), workers, batch_size=4)
                    else:
                        rate = loader_rate(view_set, workers, batch_size=view_set.num_views)
                    best[config] = max(best[config], rate)
            for (what, threads, workers), rate in best.items():
                label = "1 (default)" if threads == 1 else "auto"
                base = best[(what, 1, args.workers[0])]
                print(f"  {what:24s} workers={workers} decoder threads={label:11s} {rate:7.1f} /s  "
                      f"({rate / base:.2f}x its first line)")


if __name__ == "__main__":
    main()
