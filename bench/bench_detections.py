"""Detection lookup per training clip: the detection store against per-video pickles, same run.

Writes Kinetics-like detections for `--videos` videos (300 frames each, 10 s at 30 fps, the
detector run on 256x340 frames; per frame 1-2 hands and 0-2 objects above the 0.5 threshold
and 0-2 rows under it) as 100DOH-style pickles, builds the store from them, then looks up the
boxes of SlowFast 8x8 training clips (32 frames at stride 2 from a random window of a random
video, decoded at 256x340) by each method, clip by clip interleaved:
  store       DetectionStore.clip: one slice + binary search on memory-mapped arrays
  (a) pickle  what each sample did before the store: open and unpickle the video's file with
              plain pickle and check it (teacher_targets.load_detections(trusted=True)), then
              teacher_targets.clip_detections
  (b) safe    the same through the restricted unpickler (load_detections, the default), the
              price of reading pickles safely per sample
  (c) floor   bare pickle.load of the file and clip_detections, no checks at all
The files sit in the page cache after the first round, so the pickle methods pay no disk or
network latency here: at Kinetics scale (240k files per epoch on shared storage) they pay more.

Usage: python bench/bench_detections.py [--videos 200] [--clips 2000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import pickle
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from data.detection_store import DetectionStore, build_detection_store  # noqa: E402
from data.teacher_targets import (DETECTION_COLUMNS, VideoDetections, clip_detections,  # noqa: E402
                                  load_detections, save_detections)

FRAME_SIZE = (256, 340)
NUM_FRAMES, CLIP_LEN, STRIDE = 300, 32, 2


def random_rows(rng: np.random.Generator, count: int, high: bool) -> np.ndarray | None:
    if count == 0:
        return None
    h, w = FRAME_SIZE
    rows = np.zeros((count, DETECTION_COLUMNS), np.float32)
    x1, y1 = rng.uniform(0, w * 0.7, count), rng.uniform(0, h * 0.7, count)
    rows[:, 0], rows[:, 1] = x1, y1
    rows[:, 2], rows[:, 3] = x1 + rng.uniform(10, w * 0.3, count), y1 + rng.uniform(10, h * 0.3, count)
    rows[:, 4] = rng.uniform(0.5, 1.0, count) if high else rng.uniform(0.05, 0.49, count)
    rows[:, 5], rows[:, 9] = rng.integers(0, 5, count), rng.integers(0, 2, count)
    return rows


def write_videos(folder: str, count: int) -> dict[str, str]:
    rng = np.random.default_rng(0)
    files = {}
    for v in range(count):
        frames = {}
        for f in range(NUM_FRAMES):
            hands = [random_rows(rng, int(rng.integers(1, 3)), True),
                     random_rows(rng, int(rng.integers(0, 2)), False)]
            objects = [random_rows(rng, int(rng.integers(0, 3)), True),
                       random_rows(rng, int(rng.integers(0, 2)), False)]
            hands, objects = [r for r in hands if r is not None], [r for r in objects if r is not None]
            frames[f] = {"hand_dets": np.concatenate(hands) if hands else None,
                         "obj_dets": np.concatenate(objects) if objects else None}
        key = f"video_{v:05d}"
        files[key] = os.path.join(folder, f"{key}.pkl")
        save_detections(files[key], FRAME_SIZE, frames)
    return files


def clip_indices(rng: np.random.Generator) -> np.ndarray:
    start = int(rng.integers(0, NUM_FRAMES - CLIP_LEN * STRIDE + 1))
    return np.linspace(start, start + CLIP_LEN * STRIDE - 1, CLIP_LEN).astype(np.int64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=200)
    parser.add_argument("--clips", type=int, default=2000, help="lookups per method and round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        files = write_videos(tmp, args.videos)
        size = sum(os.path.getsize(p) for p in files.values()) / len(files) / 1024
        print(f"wrote {len(files)} pickles of {NUM_FRAMES} frames ({size:.0f} KiB each, "
              f"{time.perf_counter() - start:.1f} s)")
        start = time.perf_counter()
        report = build_detection_store(files, os.path.join(tmp, "store"))
        built = time.perf_counter() - start
        start = time.perf_counter()
        store = DetectionStore(report["store"])
        opened = time.perf_counter() - start
        print(f"store: {report['boxes_kept']} boxes kept, {report['boxes_dropped']} dropped; built in {built:.2f} s "
              f"({len(files) / built:.0f} videos/s), opened and checked in {opened * 1e3:.1f} ms")

        def floor(path: str) -> VideoDetections:
            with open(path, "rb") as f:
                blob = pickle.load(f)
            frames = {k: (np.zeros((0, DETECTION_COLUMNS), np.float32) if v["hand_dets"] is None else v["hand_dets"],
                          np.zeros((0, DETECTION_COLUMNS), np.float32) if v["obj_dets"] is None else v["obj_dets"])
                      for k, v in blob["frames"].items()}
            return VideoDetections(path, tuple(blob["frame_size"]), frames)

        methods = {
            "store": lambda key, idx: store.clip(key, idx, FRAME_SIZE),
            "(a) pickle + checks": lambda key, idx: clip_detections(load_detections(files[key], trusted=True), idx,
                                                                    FRAME_SIZE),
            "(b) restricted unpickler + checks": lambda key, idx: clip_detections(load_detections(files[key]), idx,
                                                                                  FRAME_SIZE),
            "(c) bare pickle.load": lambda key, idx: clip_detections(floor(files[key]), idx, FRAME_SIZE),
        }
        keys = sorted(files)
        print(f"load average (1 min) before measuring: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
        best = {name: float("inf") for name in methods}
        for round_ in range(args.rounds):
            rng = np.random.default_rng(round_)
            jobs = [(keys[int(rng.integers(len(keys)))], clip_indices(rng)) for _ in range(args.clips)]
            seconds = dict.fromkeys(methods, 0.0)
            for key, idx in jobs:
                for name, method in methods.items():
                    t0 = time.perf_counter()
                    method(key, idx)
                    seconds[name] += time.perf_counter() - t0
            for name in methods:
                best[name] = min(best[name], seconds[name] / args.clips)
        print(f"\nper clip ({CLIP_LEN} frames), best of {args.rounds} rounds of {args.clips} interleaved lookups:")
        for name, value in best.items():
            ratio = "" if name == "store" else f"   {name.split()[0]} / store = {value / best['store']:.0f}x"
            print(f"  {name:36s} {value * 1e6:9.1f} us{ratio}")


if __name__ == "__main__":
    main()
