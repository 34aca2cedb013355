"""Training speed of the full Ego-Exo step against a plain step of the same backbone, one run.

What is timed, each with warm-up steps left out and the median of the timed steps reported:

1. CPU, one fixed real batch (generated Kinetics-like videos through KineticsDataset and
   collate_clips, with its detections and teacher scores), the whole step each time: the
   fused crop/normalise op on the uint8 frames, forward, loss, backward, SGD step.
     * Ego-Exo: build_model(arch, 400, ego_head, object_head, interaction_head), all five terms
       of losses.distillation.egoexo_loss at the default LossWeights, the Interaction-Map
       targets from the fused op (losses.interaction_map.batch_interaction_targets);
     * plain: build_model(arch, 400), the action head only, cross-entropy;
     * pytorchvideo.models.create_slowfast with cross-entropy, when pytorchvideo is installed
       (it is not a dependency; otherwise the row is skipped, saying so).
   The steps of the models alternate (A, B, A, B, ...), so a load change on a shared machine
   hits them alike.
2. The real loader: engine.train_one_epoch over the generated set, built as train_pretrain.py
   builds it (ClipSampling from model.input_spec, detections=store, ResumableSampler,
   plumbing.epoch_loader, --workers DataLoader workers); clips/s and the data-wait fraction
   come from its `record` callback, one per log interval; the first interval (worker start-up)
   is left out.
3. GPU (when torch.cuda.is_available()): the Ego-Exo step under bf16 autocast with the model in
   channels_last_3d -- the fused op then writes bf16 NDHWC input (engine.input_format) --
   against fp32 eager with contiguous tensors, timed with torch.cuda.synchronize() around each
   step; optionally (--compile) torch.compile of the bf16 model; then the real loader driving
   the bf16 step.

A ratio is printed only between two rows measured in this run (Row.ratio refuses anything else).

    .venv/bin/python bench/bench_train.py [--arch slowfast_8x8_r50] [--crop 224] [--batch 8]
        [--warmup 2] [--repeats 5] [--workers 2] [--log-every 4] [--intervals 3] [--threads N]
        [--compile] [--no-cpu] [--json PATH]
A few minutes on 2 CPU cores: --crop 112 --batch 2 --warmup 1 --repeats 7 --log-every 2 --intervals 2
(with --threads 1 when other jobs share the cores). GPU only: --no-cpu (add --workers 8 or so).
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import plumbing  # noqa: E402
from data.collate import collate_clips  # noqa: E402
from data.crop_normalize import clips_to_device  # noqa: E402
from data.datasets import KineticsDataset  # noqa: E402
from data.sampler import ResumableSampler  # noqa: E402
from data.synthetic import make_kinetics  # noqa: E402
from data.teacher_targets import save_teacher_scores  # noqa: E402
from data.transforms import ClipSampling  # noqa: E402
from engine import input_format, model_inputs, param_groups, train_one_epoch  # noqa: E402
from losses.distillation import LossWeights, egoexo_loss  # noqa: E402
from losses.interaction_map import batch_interaction_targets  # noqa: E402
from models import ARCHS, build_model  # noqa: E402

NUM_CLASSES = 400  # Kinetics-400's action head; the generated labels use the first few classes
LR = 0.01  # any small rate: the speed does not depend on it, and the weights stay finite


# ----------------------------------------------------------------------------- rows and ratios
@dataclass
class Row:
    """One measured configuration: the wall time of every timed step (seconds)."""

    name: str
    device: str
    batch: int
    step_seconds: list[float] = field(default_factory=list)
    data_wait: float | None = None  # real-loader rows: the median fraction of time waiting for data
    note: str = ""

    @property
    def measured(self) -> bool:
        return len(self.step_seconds) > 0 and all(s > 0 for s in self.step_seconds)

    @property
    def median_s(self) -> float:
        return statistics.median(self.step_seconds)

    @property
    def clips_per_s(self) -> float:
        return self.batch / self.median_s

    @property
    def best_clips_per_s(self) -> float:
        """clips/s of the fastest timed step: on a shared machine other jobs only ever add time,
        so this is the steadier estimate there (the median is the headline)."""
        return self.batch / min(self.step_seconds)

    def spread(self) -> tuple[float, float]:
        """Lowest and highest clips/s over the timed steps (or intervals): the noise."""
        return self.batch / max(self.step_seconds), self.batch / min(self.step_seconds)

    def ratio(self, baseline: Row) -> tuple[float, float]:
        """clips/s of this row over the baseline's: (of the medians, of the fastest steps); both
        must be rows measured in this run."""
        if not (isinstance(baseline, Row) and self.measured and baseline.measured):
            raise ValueError(f"ratio {self.name!r} / {getattr(baseline, 'name', baseline)!r}: "
                             "both rows must hold timed steps of this run")
        return self.clips_per_s / baseline.clips_per_s, self.best_clips_per_s / baseline.best_clips_per_s

    def as_json(self) -> dict:
        out = asdict(self)
        out.update(clips_per_s=self.clips_per_s, median_step_s=self.median_s,
                   best_clips_per_s=self.best_clips_per_s)
        return out


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    ratios: list[dict] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    compute: dict = field(default_factory=dict)  # counted GFLOPs of the steps (not timings)

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        lo, hi = row.spread()
        wait = f"  data wait {100 * row.data_wait:.1f}%" if row.data_wait is not None else ""
        print(f"  {row.name:<44} {row.clips_per_s:8.2f} clips/s  (range {lo:.2f}-{hi:.2f}, "
              f"{len(row.step_seconds)} timed){wait}{'  ' + row.note if row.note else ''}", flush=True)
        return row

    def compare(self, row: Row, baseline: Row, goal: str) -> None:
        if not (row in self.rows and baseline in self.rows):
            raise ValueError(f"compare {row.name!r} with {baseline.name!r}: add both measured rows first")
        median, best = row.ratio(baseline)
        self.ratios.append({"row": row.name, "baseline": baseline.name, "ratio": median, "ratio_of_fastest": best,
                            "goal": goal})
        print(f"  {row.name} / {baseline.name} = {median:.3f}x of the medians, {best:.3f}x of the fastest "
              f"steps  (goal: {goal})", flush=True)

    def skip(self, line: str) -> None:
        self.skipped.append(line)
        print(f"  skipped: {line}", flush=True)


# ----------------------------------------------------------------------------- data
def make_dataset(root: str, args, model) -> KineticsDataset:
    """Generated Kinetics-like videos (official layout, detection store) with teacher-score
    files for them, opened as train_pretrain.py opens its training set."""
    videos = args.batch * args.log_every * (args.intervals + 1)
    per_class = -(-videos // 4)
    short = 2 * round(args.crop * 128 / 224)  # Kinetics at 256p for a 224 crop, scaled; even for H.264
    size = (short, 2 * round(short * 170 / 256))
    spec = model.input_spec
    data = make_kinetics(root, num_classes=4, videos_per_class=per_class, val_videos_per_class=0, size=size,
                         num_frames=spec.num_frames * spec.sampling_rate + 16)
    video_ids = sorted(data["labels"])
    generator = torch.Generator().manual_seed(0)  # teacher outputs: any log-distributions will do
    scores = {}
    for teacher, classes in (("ego", 2), ("object", 1000)):
        scores[teacher] = os.path.join(root, f"{teacher}_scores.pt")
        logits = torch.randn(len(video_ids), classes, generator=generator)
        save_teacher_scores(scores[teacher], teacher, video_ids, logits.log_softmax(-1))
    sampling = ClipSampling(clip_len=spec.num_frames, stride=spec.sampling_rate, min_size=short,
                            max_size=round(args.crop * 320 / 224), crop_size=args.crop)
    print(f"data: {len(video_ids)} generated videos of {data['num_frames']} frames at {size[1]}x{size[0]}, "
          f"short side jittered in [{sampling.min_size}, {sampling.max_size}], crop {args.crop}")
    return KineticsDataset(True, list_path=data["lists"]["train"], video_root=data["video_root"],
                           num_classes=NUM_CLASSES, sampling=sampling, ego_scores=scores["ego"],
                           object_scores=scores["object"], detections=data["detection_store"])


def fixed_batch(dataset: KineticsDataset, batch_size: int, pin: bool) -> dict:
    """The first `batch_size` training samples of epoch 0, collated."""
    dataset.set_epoch(0)
    batch = collate_clips([dataset[i] for i in range(batch_size)], pin_memory=pin)
    if "detections" not in batch or batch["detections"]["boxes"].shape[0] == 0:
        sys.exit("bench_train.py: the generated batch has no detections; the Interaction-Map "
                 "targets would not be exercised")
    return batch


# ----------------------------------------------------------------------------- the steps
def egoexo_loss_fn(device: torch.device) -> Callable[[dict, dict], dict]:
    """All five terms, as train_pretrain.py's loss_fn at its defaults."""
    def loss_fn(outputs: dict, batch: dict) -> dict:
        targets = {"label": batch["label"].to(device, non_blocking=True),
                   "ego_score": batch["ego_score"].to(device, non_blocking=True),
                   "object_score": batch["object_score"].to(device, non_blocking=True),
                   "interaction_targets": batch_interaction_targets(batch, outputs["interaction"])}
        return egoexo_loss(outputs, targets, LossWeights())
    return loss_fn


def plain_loss_fn(device: torch.device) -> Callable[[dict, dict], dict]:
    def loss_fn(outputs: dict, batch: dict) -> dict:
        return {"loss": F.cross_entropy(outputs["action"].float(), batch["label"].to(device, non_blocking=True))}
    return loss_fn


def sgd(model: torch.nn.Module) -> torch.optim.Optimizer:
    return torch.optim.SGD(param_groups(model, 1e-4), lr=LR, momentum=0.9, nesterov=True)


def project_step(model, loss_fn, batch: dict, device: torch.device,
                 autocast_dtype: torch.dtype | None) -> Callable[[], None]:
    """One training step of a project model, as engine.train_one_epoch runs it."""
    optimizer = sgd(model)
    dtype, channels_last = input_format(model, autocast_dtype)

    def step() -> None:
        inputs = model_inputs(batch, model, device, dtype, channels_last)
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            outputs = model(inputs)
        terms = loss_fn(outputs, batch)
        optimizer.zero_grad(set_to_none=True)
        terms["loss"].backward()
        optimizer.step()
    return step


def pytorchvideo_step(args, spec, batch: dict, device: torch.device) -> tuple[Callable[[], None] | None, str]:
    """pytorchvideo's SlowFast R50 (its defaults are the 8x8 model) with cross-entropy, fed the
    same pathway inputs; (None, why) when it cannot be built here."""
    if args.arch != "slowfast_8x8_r50":
        return None, f"create_slowfast's defaults are SlowFast 8x8 R50, not --arch {args.arch}"
    try:
        from pytorchvideo.models import create_slowfast
    except ImportError:
        return None, "pytorchvideo is not installed (not a dependency)"
    # Global average pooling before the classifier whatever the crop (its default AvgPool3d
    # kernels fit a 224 crop only), as the project's head pools.
    model = create_slowfast(model_num_class=NUM_CLASSES, dropout_rate=0.0, head_pool=torch.nn.AdaptiveAvgPool3d,
                            head_output_size=(1, 1, 1)).to(device)
    optimizer = sgd(model)
    labels = batch["label"].to(device)

    def step() -> None:
        logits = model(spec.pack(clips_to_device(batch, device)))
        loss = F.cross_entropy(logits, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return step, ""


def step_gflops(arch: str, crop: int, **heads) -> float:
    """Forward + backward GFLOPs per clip of a model's step (convolutions and linear layers,
    a multiply-add counted once), counted on the meta device: the compute the two steps differ
    by, a yardstick for the measured ratio that no machine load disturbs."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        model = build_model(arch, NUM_CLASSES, dropout=0.0, **heads)
        inputs = [torch.empty(1, 3, t, crop, crop) for t in model.input_spec.pathway_frames]
        with FlopCounterMode(display=False) as counter:
            outputs = model(inputs)
            sum(v.float().sum() for k, v in outputs.items() if k != "feature").backward()
    return counter.get_total_flops() / 2 / 1e9


def time_interleaved(steps: dict[str, Callable[[], None]], device: torch.device, warmup: int,
                     repeats: int) -> dict[str, list[float]]:
    """Seconds of each timed step, the steps of the configurations alternating (their order
    rotating each round); `warmup` rounds first, not timed."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    names = list(steps)
    for _ in range(warmup):
        for name in names:
            steps[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(repeats):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            sync()
            start = time.perf_counter()
            steps[name]()
            sync()
            times[name].append(time.perf_counter() - start)
    return times


def real_loader_row(name: str, model, dataset: KineticsDataset, args, device: torch.device,
                    autocast_dtype: torch.dtype | None) -> Row:
    """engine.train_one_epoch over the dataset, built as train_pretrain.py builds its loader."""
    sampler = ResumableSampler(len(dataset), shuffle=True, seed=0)
    sampler.set_epoch(0)
    dataset.set_epoch(0)
    loader = plumbing.epoch_loader(dataset, args.batch, sampler, num_workers=args.workers, collate_fn=collate_clips,
                                   pin_memory=device.type == "cuda", persistent_workers=False)
    intervals: list[dict] = []

    def record(kind: str, **fields) -> None:
        if kind == "train":
            intervals.append(fields)

    steps_per_epoch = len(sampler) // args.batch
    stats = train_one_epoch(model, loader, sgd(model), egoexo_loss_fn(device), epoch=0, start_step=0,
                            steps_per_epoch=steps_per_epoch, lr_at=lambda _: LR, device=device,
                            autocast_dtype=autocast_dtype, log=lambda _: None, log_every=args.log_every,
                            record=record)
    timed = intervals[1:]  # the first interval holds the workers' start-up
    if not timed:
        raise SystemExit(f"bench_train.py: {steps_per_epoch} steps make no interval after the first "
                         f"(log every {args.log_every}); raise --intervals")
    # An interval's clips/s -> the mean step time of that interval, so Row's median applies.
    return Row(name, str(device), args.batch, [args.batch / r["clips_per_s"] for r in timed],
               data_wait=statistics.median(r["data_wait"] for r in timed),
               note=f"{len(stats['failed'])} samples failed" if stats["failed"] else "")


# ----------------------------------------------------------------------------- the sections
def cpu_section(args, dataset, report: Report) -> None:
    device = torch.device("cpu")
    print(f"\n[CPU] {args.arch}, batch {args.batch}, crop {args.crop}, {torch.get_num_threads()} threads, "
          f"{args.warmup} warm-up + {args.repeats} timed steps each")
    egoexo = build_model(args.arch, NUM_CLASSES, ego_head=True, object_head=True, interaction_head=True, dropout=0.0)
    plain = build_model(args.arch, NUM_CLASSES, dropout=0.0)
    batch = fixed_batch(dataset, args.batch, pin=False)
    steps = {"Ego-Exo step (all heads, 5 terms)": project_step(egoexo, egoexo_loss_fn(device), batch, device, None),
             "plain step (action head, CE)": project_step(plain, plain_loss_fn(device), batch, device, None)}
    reference, why = pytorchvideo_step(args, egoexo.input_spec, batch, device)
    if reference is None:
        report.skip(f"pytorchvideo create_slowfast row: {why}")
    else:
        steps["pytorchvideo create_slowfast (CE)"] = reference
    times = time_interleaved(steps, device, args.warmup, args.repeats)
    rows = {name: report.add(Row(name, "cpu", args.batch, seconds)) for name, seconds in times.items()}
    names = list(steps)
    report.compare(rows[names[0]], rows[names[1]], "no slower within noise (~1x)")
    if len(names) > 2:
        report.compare(rows[names[0]], rows[names[2]], "no slower within noise (~1x)")

    print(f"\n[CPU, real loader] engine.train_one_epoch, {args.workers} DataLoader worker(s), "
          f"{args.intervals} timed intervals of {args.log_every} steps after a warm-up interval")
    report.add(real_loader_row("Ego-Exo, real loader", egoexo, dataset, args, device, None))


def gpu_section(args, dataset, report: Report, device: torch.device) -> None:
    print(f"\n[GPU] {torch.cuda.get_device_name(device)}, {args.arch}, batch {args.batch}, crop {args.crop}, "
          f"{args.warmup} warm-up + {args.repeats} timed steps each")
    fp32 = build_model(args.arch, NUM_CLASSES, ego_head=True, object_head=True, interaction_head=True,
                       dropout=0.0).to(device)
    fast = copy.deepcopy(fp32).to(memory_format=torch.channels_last_3d)
    batch = fixed_batch(dataset, args.batch, pin=device.type == "cuda")
    dtype, channels_last = input_format(fast, torch.bfloat16)
    pathways = model_inputs(batch, fast, device, dtype, channels_last)
    written = pathways[-1]  # the op's output itself (the fast pathway; the only one of a single-pathway net)
    if not (written.dtype == torch.bfloat16 and written.is_contiguous(memory_format=torch.channels_last_3d)):
        raise SystemExit(f"bench_train.py: the fused op wrote {written.dtype} (channels_last_3d: "
                         f"{written.is_contiguous(memory_format=torch.channels_last_3d)}), not bf16 NDHWC")
    for index, x in enumerate(pathways[:-1]):
        if not x.is_contiguous(memory_format=torch.channels_last_3d):
            print(f"  note: pathway {index} (frames picked from the op's output by input_spec.pack) arrives "
                  f"{x.dtype} in NCDHW order; its first convolution converts it")
    del pathways, written
    loss_fn = egoexo_loss_fn(device)
    names = ("Ego-Exo fp32 eager, contiguous", "Ego-Exo bf16 autocast + channels_last_3d",
             "Ego-Exo bf16 + channels_last_3d, torch.compile")
    steps = {names[0]: project_step(fp32, loss_fn, batch, device, None),
             names[1]: project_step(fast, loss_fn, batch, device, torch.bfloat16)}
    warmup = args.warmup
    if args.compile:
        compiled = torch.compile(copy.deepcopy(fast))
        steps[names[2]] = project_step(compiled, loss_fn, batch, device, torch.bfloat16)
        warmup = max(warmup, 3)  # the first steps compile
    times = time_interleaved(steps, device, warmup, args.repeats)
    rows = {name: report.add(Row(name, str(device), args.batch, seconds)) for name, seconds in times.items()}
    report.compare(rows[names[1]], rows[names[0]], ">= 2x")
    if args.compile:
        report.compare(rows[names[2]], rows[names[1]], "faster than eager bf16")
    print(f"  peak GPU memory {torch.cuda.max_memory_allocated(device) / 2**30:.1f} GiB (all rows together)")

    print(f"\n[GPU, real loader] engine.train_one_epoch, bf16 + channels_last_3d, {args.workers} DataLoader "
          f"worker(s), {args.intervals} timed intervals of {args.log_every} steps after a warm-up interval")
    row = report.add(real_loader_row("Ego-Exo bf16 + channels_last_3d, real loader", fast, dataset, args,
                                     device, torch.bfloat16))
    print(f"  data wait {100 * row.data_wait:.1f}% (goal < 5%)")


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {"cpu": cpu, "cores": os.cpu_count(), "threads": torch.get_num_threads(), "load_average_1min": load,
            "torch": torch.__version__, "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
            "date": time.strftime("%Y-%m-%d %H:%M")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arch", default="slowfast_8x8_r50", choices=sorted(ARCHS), help="backbone")
    parser.add_argument("--crop", type=int, default=224, help="training crop (the paper: 224)")
    parser.add_argument("--batch", type=int, default=8, help="clips per step (the paper: 8 per GPU)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps of each model first")
    parser.add_argument("--repeats", type=int, default=5, help="timed steps of each model")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers of the real-loader rows")
    parser.add_argument("--log-every", type=int, default=4, help="steps per interval of the real-loader rows")
    parser.add_argument("--intervals", type=int, default=3,
                        help="timed intervals of the real-loader rows (after one warm-up interval)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="CPU threads of the step")
    parser.add_argument("--compile", action="store_true", help="GPU: add a torch.compile row (slow to start)")
    parser.add_argument("--no-cpu", action="store_true", help="leave the CPU rows out (on a GPU machine)")
    parser.add_argument("--json", metavar="PATH", help="also write the numbers here")
    args = parser.parse_args()
    if args.crop < 32:
        parser.error(f"--crop must be at least 32 (the backbone's stride), got {args.crop}")
    for name in ("batch", "repeats", "log_every", "intervals"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.warmup < 0 or args.workers < 0:
        parser.error("--warmup and --workers must be >= 0")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    host = machine()
    print(f"machine: {host['cpu']}, {host['cores']} cores, torch {host['torch']}, "
          f"load average {host['load_average_1min']}, GPU: {host['gpu'] or 'none'}")
    report = Report()
    with tempfile.TemporaryDirectory() as tmp:
        with torch.device("meta"):  # the input spec only, no weights
            spec_model = build_model(args.arch, NUM_CLASSES)
        dataset = make_dataset(os.path.join(tmp, "kinetics"), args, spec_model)
        egoexo_gflops = step_gflops(args.arch, args.crop, ego_head=True, object_head=True, interaction_head=True)
        plain_gflops = step_gflops(args.arch, args.crop)
        report.compute = {"egoexo_step_gflops_per_clip": egoexo_gflops, "plain_step_gflops_per_clip": plain_gflops}
        print(f"compute per clip (forward + backward of convolutions and linear layers, counted): Ego-Exo "
              f"{egoexo_gflops:.2f} GFLOPs, plain {plain_gflops:.2f} GFLOPs: {egoexo_gflops / plain_gflops:.3f}x the work")
        if args.no_cpu:
            report.skip("CPU rows: --no-cpu")
        else:
            cpu_section(args, dataset, report)
        if torch.cuda.is_available():
            gpu_section(args, dataset, report, torch.device("cuda"))
        else:
            report.skip("GPU rows (bf16 + channels_last_3d against fp32 eager): torch.cuda.is_available() is False")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": host, "settings": vars(args), "rows": [r.as_json() for r in report.rows],
                       "ratios": report.ratios, "compute": report.compute,
                       "skipped": report.skipped}, f, indent=1)
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
