"""Object-Score throughput of score_teachers.py: the frames of several videos in one forward pass
against one video at a time, same run, same videos.

Both are the script itself (teacher=object) run as a user runs it, differing only in
--videos_per_batch: B (default 8) videos' T frames form one batch of B*T images, against 1.
The rate is the one the script logs for its scoring loop (decoding in DataLoader workers,
preprocessing, the forward pass), so start-up and model loading are left out. Runs alternate
between the two settings, each in a fresh out_dir.

Usage: python bench/bench_score_teachers.py [--videos 24] [--arch resnet18] [--frames 8]
           [--crop 112] [--batch 8] [--workers 1] [--repeats 2] [--device cpu]
On the CPU the defaults take about a minute; on a GPU pass --arch resnet152 --frames 64
--crop 224 for the paper's setting (bfloat16 + channels_last, as the script does there).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from data.synthetic import make_kinetics  # noqa: E402

RATE = re.compile(r"object_scores: rank 0 scored (\d+) videos in ([\d.]+) s \(([\d.]+) videos/s\)")


def score(args, video_list: str, video_root: str, out_dir: str, videos_per_batch: int) -> float:
    """videos/s of one score_teachers.py run, as the script logs it."""
    cmd = [sys.executable, os.path.join(ROOT, "score_teachers.py"), "--teacher=object",
           f"--video_list={video_list}", f"--video_root={video_root}", f"--out_dir={out_dir}",
           f"--object_arch={args.arch}", "--untrained_weights_ok=true", f"--object_frames={args.frames}",
           f"--object_resize={round(args.crop * 256 / 224)}", f"--object_crop={args.crop}",
           f"--videos_per_batch={videos_per_batch}", f"--num_workers={args.workers}", f"--device={args.device}",
           f"--save_every={max(videos_per_batch, 16)}"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    found = RATE.search(done.stdout)
    if done.returncode != 0 or not found:
        sys.exit(f"score_teachers.py failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    scored = int(found.group(1))
    if scored != args.videos:
        sys.exit(f"score_teachers.py scored {scored} of {args.videos} videos:\n{done.stdout}")
    return float(found.group(3))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=24, help="generated videos scored per run")
    parser.add_argument("--arch", default="resnet18", help="torchvision ResNet (the paper: resnet152)")
    parser.add_argument("--frames", type=int, default=8, help="T: frames per video (the paper: 64)")
    parser.add_argument("--crop", type=int, default=112, help="centre crop (the paper: 224; resize = crop*256/224)")
    parser.add_argument("--batch", type=int, default=8, help="videos per forward pass of the batched runs")
    parser.add_argument("--workers", type=int, default=1, help="DataLoader workers decoding videos")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each setting, alternating")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        per_class = -(-args.videos // 4)
        data = make_kinetics(os.path.join(tmp, "k"), num_classes=4, videos_per_class=per_class,
                             val_videos_per_class=0, size=(128, 170), num_frames=60)
        video_list = os.path.join(tmp, "list.txt")
        with open(data["lists"]["train"]) as f:
            lines = f.read().splitlines()[:args.videos]
        with open(video_list, "w") as f:
            f.write("\n".join(lines) + "\n")
        print(f"{args.videos} videos of 60 frames at 170x128, {args.arch}, T={args.frames}, crop {args.crop}, "
              f"{args.workers} decoding worker(s), {args.device}")
        rates = {args.batch: [], 1: []}
        for repeat in range(args.repeats):
            for batch in rates:
                out_dir = os.path.join(tmp, f"run_b{batch}_{repeat}")
                rates[batch].append(score(args, video_list, data["video_root"], out_dir, batch))
                print(f"  videos_per_batch={batch:<3} run {repeat + 1}: {rates[batch][-1]:.2f} videos/s")
    best = {batch: max(values) for batch, values in rates.items()}
    print(f"\n| videos per forward | frames per forward | videos/s (best of {args.repeats}) |")
    print("|---|---|---|")
    for batch in rates:
        print(f"| {batch} | {batch * args.frames} | {best[batch]:.2f} |")
    print(f"\nbatched across videos / one video at a time = {best[args.batch] / best[1]:.2f}x")


if __name__ == "__main__":
    main()
