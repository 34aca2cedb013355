"""The main job end to end on generated data, on the CPU: `make demo`.

A short driver over the real scripts, run as a user runs them (each stage is one command,
printed before it runs; its output goes to <out_dir>/logs/<stage>.txt, its tqdm bars to the
terminal):

  1. data        a Kinetics-like set (4 motions, a hand holding one of several objects) and a
                 Charades-Ego-like set (paired first/third-person recordings) in the official
                 formats, with 100DOH-layout detection files (data/synthetic.py). In the
                 Charades-Ego-like set every object colour is always visible: a class is active
                 while a hand touches the object of its colour, so what tells the classes
                 apart is the hand-object interaction that the detections mark;
  2. M_ego       train_finetune.py --preset=ego_classifier (first vs third person), briefly;
  3. teachers    score_teachers.py: Ego-Score (M_ego), Object-Score (ResNet-152: torchvision's
                 cached ImageNet weights when present, else untrained weights, and it says so),
                 the detection store;
  4. pre-train   train_pretrain.py --preset=third_only and --preset=ego_exo, same data, same seed;
  5. fine-tune   train_finetune.py --preset=charades_ego from each checkpoint;
  6. score       evaluate.py charades_ego on each submission, and the table below;
  7. figures     figures.py: loss curves, the Ego-Score histogram, per-class AP.

Every run is repeated for each seed in `seeds`; the table reports each seed's mAP and their
mean, as measured, whatever it shows. Settings are plain Python below, overridable as
--name=value (plumbing.py); --help lists them. `make demo` runs it with --fresh=true (out_dir
removed first).
"""
import json
import os
import shutil
import subprocess
import sys
import time

import plumbing

# ----------------------------------------------------------------------------- settings
out_dir = "runs/demo"  # everything the demo writes
seeds = (0,)  # pre-training and fine-tuning seeds; the table shows each and their mean
fresh = False  # remove out_dir first
arch = "slow_8x8_r50"  # backbone of every model
size = 80  # training crop = test size of pre-training and fine-tuning (the maps are 3 x 3)
pretrain_epochs = 5  # epochs of each pre-training run
finetune_epochs = 6  # epochs of each fine-tuning run
ego_epochs = 3  # epochs of the Ego-Classifier M_ego
kinetics_videos_per_class = 8  # Kinetics-like training videos per class (4 classes)
charades_pairs = (16, 8)  # Charades-Ego-like recordings (first + third person) for train, test
num_workers = 2  # DataLoader workers of every script

settings = plumbing.parse_settings(__file__, globals(), sys.argv[1:])
globals().update(settings)
ROOT = os.path.dirname(os.path.abspath(__file__))
PY = sys.executable
SMALL = dict(arch=arch, device="cpu", num_workers=num_workers, batch_size=4, base_lr_batch=4, min_size=size,
             max_size=size + 8, crop_size=size, test_size=size, num_clips=2, num_crops=1, log_every=2)


def args(**values) -> list[str]:
    return [f"--{k}={','.join(map(str, v)) if isinstance(v, tuple) else v}" for k, v in values.items()]


class Stages:
    """Runs the stages' commands one after the other, each announced on one line and logged."""

    def __init__(self, total: int):
        self.total, self.done, self.start = total, 0, time.time()
        os.makedirs(os.path.join(out_dir, "logs"), exist_ok=True)

    def run(self, name: str, what: str, command: list[str], shown: list[list[str]] | None = None) -> None:
        """`shown`: the commands to print when `command` runs them in one interpreter."""
        self.done += 1
        log_path = os.path.join(out_dir, "logs", f"{name}.txt")
        lines = ["python " + " ".join(c[1:]) if c[0] == PY else " ".join(c) for c in (shown or [command])]
        print(f"[{self.done}/{self.total} {time.time() - self.start:4.0f}s] {what}"
              + "".join(f"\n    $ {line}" for line in lines), flush=True)
        with open(log_path, "w", encoding="utf-8") as log:
            done = subprocess.run(command, cwd=ROOT, stdout=log, stderr=sys.stderr)  # tqdm bars: stderr
        with open(log_path, encoding="utf-8") as log:
            output = log.read().splitlines()
        for line in output:  # a script's warnings are the user's to see (untrained teacher weights, ...)
            if line.startswith("WARNING"):
                print(f"    {line}", flush=True)
        if done.returncode != 0:
            tail = output[-15:]
            sys.exit("\n".join(tail) + f"\ndemo.py: stage {name!r} failed (exit {done.returncode}); its output is in "
                     f"{log_path}")


def data_sets() -> dict:
    """The two generated data sets (written once; a re-run reads back what they returned)."""
    from data.synthetic import make_charades_ego, make_kinetics
    done = os.path.join(out_dir, "data", "data.json")
    if os.path.isfile(done):
        with open(done, encoding="utf-8") as f:
            return json.load(f)
    print("[data] writing the Kinetics-like and Charades-Ego-like sets (official formats, 100DOH detections)",
          flush=True)
    kinetics = make_kinetics(os.path.join(out_dir, "data", "kinetics"), num_classes=4,
                             videos_per_class=kinetics_videos_per_class, val_videos_per_class=2, size=(64, 80),
                             num_frames=32, distractors=2)
    charades = make_charades_ego(os.path.join(out_dir, "data", "charades_ego"), num_classes=4,
                                 train_pairs=charades_pairs[0], test_pairs=charades_pairs[1], size=(64, 80),
                                 num_frames=48, interaction_classes=True)
    paths = {"kinetics": {k: kinetics[k] for k in ("lists", "video_root", "detections")},
             "charades_ego": {k: charades[k] for k in ("csv", "data_root")}}
    with open(done, "w", encoding="utf-8") as f:
        json.dump(paths, f)
    return paths


def main() -> None:
    if fresh and os.path.isdir(out_dir):
        shutil.rmtree(out_dir)
    tick = time.time()
    data = data_sets()
    k, c = data["kinetics"], data["charades_ego"]
    teachers = os.path.join(out_dir, "teachers")
    variants = ("third_only", "ego_exo")
    stages = Stages(4 + 2 * len(variants) * len(seeds) + 1)

    m_ego = os.path.join(out_dir, "m_ego")
    stages.run("m_ego", "M_ego: the Ego-Classifier, first vs third person on Charades-Ego (train_finetune.py)",
               [PY, "train_finetune.py", *args(preset="ego_classifier", train_annotations=c["csv"]["train"],
                                               val_annotations=c["csv"]["test"], data_root=c["data_root"],
                                               out_dir=m_ego, epochs=ego_epochs, base_lr=0.05, eval_every=ego_epochs,
                                               progress=True, **{**SMALL, "num_clips": 1})])
    common = dict(video_list=k["lists"]["train"], video_root=k["video_root"], out_dir=teachers, device="cpu",
                  num_workers=num_workers)
    stages.run("ego_scores", "Ego-Score of every Kinetics-like training video: N = 2 clips through M_ego "
               "(score_teachers.py)", [PY, "score_teachers.py", *args(teacher="ego", ego_checkpoint=f"{m_ego}/final.pyth",
                                                                       **common)])
    stages.run("object_scores", "Object-Score: ResNet-152 on 8 frames per video (score_teachers.py; untrained "
               "weights unless torchvision's ImageNet weights are cached, see its log)",
               [PY, "score_teachers.py", *args(teacher="object", untrained_weights_ok=True, object_frames=8,
                                               object_resize=64, object_crop=56, **common)])
    stages.run("detections", "the hand-object detector's files -> one detection store (score_teachers.py)",
               [PY, "score_teachers.py", *args(teacher="detections", detection_dir=k["detections"], **common)])

    results = {}
    for seed in seeds:
        for variant in variants:
            pre = os.path.join(out_dir, f"pretrain_{variant}_seed{seed}")
            stages.run(f"pretrain_{variant}_seed{seed}", f"pre-train {variant} on Kinetics-like, seed {seed} "
                       "(train_pretrain.py)",
                       [PY, "train_pretrain.py", *args(
                           preset=variant, train_list=k["lists"]["train"], val_list=k["lists"]["val"],
                           video_root=k["video_root"], num_classes=4, detections=f"{teachers}/detections",
                           ego_scores=f"{teachers}/ego_scores.pt", object_scores=f"{teachers}/object_scores.pt",
                           epochs=pretrain_epochs, base_lr=0.05, warmup_epochs=0.5, eval_every=pretrain_epochs,
                           checkpoint_every=1000, seed=seed, out_dir=pre, **SMALL)])
            fine = os.path.join(out_dir, f"finetune_{variant}_seed{seed}")
            stages.run(f"finetune_{variant}_seed{seed}", f"fine-tune {variant} on Charades-Ego-like (first person), "
                       f"seed {seed} (train_finetune.py)",
                       [PY, "train_finetune.py", *args(
                           preset="charades_ego", train_annotations=c["csv"]["train"],
                           val_annotations=c["csv"]["test"], data_root=c["data_root"], init="checkpoint",
                           init_path=f"{pre}/final.pyth", epochs=finetune_epochs, base_lr=0.05,
                           eval_every=finetune_epochs, seed=seed, out_dir=fine, **SMALL)])
            results[(variant, seed)] = os.path.join(fine, f"submission_epoch{finetune_epochs}.txt")

    scores = {}
    for (variant, seed), submission in results.items():
        done = subprocess.run([PY, "evaluate.py", "charades_ego", "--annotations", c["csv"]["test"], submission],
                              cwd=ROOT, capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"demo.py: evaluate.py failed on {submission}: {done.stderr.strip()}")
        scores[(variant, seed)] = json.loads(done.stdout)["mAP"]

    figures = os.path.join(out_dir, "figures")
    os.makedirs(figures, exist_ok=True)
    first = seeds[0]
    logs = [os.path.join(out_dir, f"pretrain_{v}_seed{first}", "log.jsonl") for v in variants]
    drawn = [["curves", *logs, "--labels", ",".join(variants), "--out", f"{figures}/pretrain_curves.png"],
             ["ego_distribution", "--scores", f"{teachers}/ego_scores.pt", "--out", f"{figures}/ego_scores.png",
              "--json", f"{figures}/ego_scores.json"],
             ["classes", "--annotations", c["csv"]["test"], "--baseline", results[("third_only", first)],
              "--variant", f"Ego-Exo={results[('ego_exo', first)]}", "--out", f"{figures}/per_class_ap.png",
              "--json", f"{figures}/per_class_ap.json"]]
    stages.run("figures", f"figures of seed {first}: loss curves, Ego-Score histogram, per-class AP (figures.py)",
               [PY, "-c", FIGURES, json.dumps(drawn)], shown=[[PY, "figures.py", *argv] for argv in drawn])

    table = report(scores, variants)
    with open(os.path.join(out_dir, "results.md"), "w", encoding="utf-8") as f:
        f.write(table + "\n")
    with open(os.path.join(out_dir, "results.json"), "w", encoding="utf-8") as f:
        json.dump({"mAP": {f"{v}/seed{s}": m for (v, s), m in scores.items()}, "seeds": list(seeds)}, f, indent=1)
    print("\n" + table)
    print(f"\ndone in {time.time() - tick:.0f}s. Everything is in {os.path.abspath(out_dir)}: figures/ (curves, Ego-Score "
          f"histogram, per-class AP), results.md / results.json, logs/ (each command's output), and each run's folder.")


# figures.py's subcommands in one interpreter (matplotlib is imported once).
FIGURES = """
import json, sys
import figures
for argv in json.loads(sys.argv[1]):
    figures.main(argv)
"""


def report(scores: dict, variants) -> str:
    """The paper's table shape (Charades-Ego mAP, Third-only vs Ego-Exo), as measured here."""
    names = {"third_only": "Third-only", "ego_exo": "Ego-Exo"}
    lines = [f"Charades-Ego-like test mAP ({len(seeds)} seed(s); {arch}, {pretrain_epochs} pre-training and "
             f"{finetune_epochs} fine-tuning epochs on generated data, CPU)", "",
             "| pre-training | " + " | ".join(f"seed {s}" for s in seeds) + " | mean |",
             "|---|" + "---|" * (len(seeds) + 1)]
    for v in variants:
        values = [scores[(v, s)] for s in seeds]
        lines.append(f"| {names[v]} | " + " | ".join(f"{x:.2f}" for x in values) + f" | {sum(values) / len(values):.2f} |")
    gain = [scores[("ego_exo", s)] - scores[("third_only", s)] for s in seeds]
    lines += ["", f"Ego-Exo - Third-only: {sum(gain) / len(gain):+.2f} mAP (per seed: "
              + ", ".join(f"{g:+.2f}" for g in gain) + "). The paper (Slow R50, real data): 24.73 -> 26.64."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
