"""Ego-Exo pre-training on Kinetics (SPEC sections 3 and 4).

    L = 0.5·CE(action) + 0.1·KD(ego) + 0.5·KD(object) + 1.0·BCE(hand map) + 1.0·BCE(object map)

One process (CPU or one GPU):
    python train_pretrain.py --preset=ego_exo --arch=slowfast_8x8_r50 --train_list=k400/train.csv \\
        --video_root=k400/videos --ego_scores=teachers/ego_scores.pt ...
The paper's 64 GPUs (README: the multi-node launch and a Slurm example):
    torchrun --nnodes 8 --nproc-per-node 8 --rdzv-backend c10d --rdzv-endpoint HOST:29500 \\
        train_pretrain.py --preset=ego_exo --train_list=... --detections=...

Every setting below is a plain Python default; override any of them as --name=value, typed
against the default (--epochs=5, --w_ego=0, --resume=false; plumbing.py); --help lists them.
The paper's variants are the PRESETS below (--preset=third_only, ...), any backbone of
models/resnet3d.py with --arch; one loop serves them all. A term with a weight needs its
teacher targets (--ego_scores, --object_scores, --detections), and its head is built.

With no --train_list the script runs the embedded demo: it writes a small generated Kinetics
(data/synthetic.py, official layout, a store of 100DOH-style detections) under out_dir and trains
on the CPU at small sizes (DEMO below); without score files its KD terms are off (said so).
Rank 0 writes out_dir/checkpoint_epoch*_step*.pyth (the newest keep_checkpoints), best.pyth,
final.pyth, log.txt and log.jsonl (docs/training_log.md). A run that is killed resumes from
its newest readable checkpoint, at the batch where it stopped, and refuses to when settings
that shape the run changed.
"""
import os
import sys
import time

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

import plumbing
from data.collate import collate_clips
from data.annotations import kinetics_csv_class_names, read_class_names
from data.datasets import KineticsDataset
from data.sampler import ResumableSampler
from data.transforms import ClipSampling
from engine import cosine_lr, evaluate, param_groups, precise_bn, topk_accuracy, train_one_epoch, unwrap
from losses.distillation import LossWeights, egoexo_loss
from losses.interaction_map import batch_interaction_targets
from models import ARCHS, build_model
from models.checkpoint import save_checkpoint

# ----------------------------------------------------------------------------- settings
preset = "ego_exo"  # one of PRESETS below (the paper's variants)
arch = "slowfast_8x8_r50"  # models/resnet3d.py ARCHS: slow_8x8_r50, slowfast_8x8_r50/r101, i3d_8x8_r50, tsm_r50, ...
# Kinetics: a PySlowFast list (`path label`) or the official CSV (`label,youtube_id,...`).
train_list = None  # None: the embedded demo
val_list = None  # validation list/CSV in the same format; None: no evaluation
video_root = ""  # folder that relative video paths are joined to
class_names = None  # official CSV: class-names file; None = the training CSV's sorted names
num_classes = 400  # classes of the action head (checked against the class map)
# Teacher targets (data/teacher_targets.py formats; score_teachers.py writes them).
ego_scores = None  # Ego-Score file of M_ego (log-probs, 2 per video)
no_pair_ego_scores = None  # Ego-Score file of the no-pair M_ego (supp. Table S5; --preset=ego_score_no_pair)
ego_teacher = "paired"  # paired | no_pair: which Ego-Score file the ego term reads
object_scores = None  # Object-Score file (log-probs, 1000 per video)
detections = None  # detection store (data/detection_store.py; score_teachers.py detections builds it)
detection_threshold = 0.5  # keep boxes with score >= this (SPEC section 1)
# Loss (SPEC section 3).
w_action, w_ego, w_object, w_hand_map, w_object_map = 0.5, 0.1, 0.5, 1.0, 1.0  # loss weights; 0 turns a term off
kd_temperature = 1.0  # T of the KD terms
hard_maps = False  # write 1.0 instead of the box confidence
drop_outside_boxes = False  # the release clips boxes outside the crop onto its border
dropout = 0.0  # 0.5 for the Third-only baseline
# Clips (SPEC section 4); clip length and stride come from the arch.
min_size, max_size, crop_size = 256, 320, 224  # training short-side jitter range and crop
test_size, num_clips, num_crops = 256, 10, 3  # test short side = crop, windows x crops per video
# Optimisation: sync SGD, LR 0.8 for 64 GPUs x 8 clips, scaled linearly with the global batch.
epochs = 200  # training epochs
batch_size = 8  # clips per process
base_lr = 0.8  # peak LR at base_lr_batch clips; scaled linearly to the global batch
base_lr_batch = 512  # global batch that base_lr belongs to
warmup_epochs = 34.0  # linear warm-up, then cosine
warmup_start_factor = 0.1  # warm-up from 0.08 at the reference batch
momentum = 0.9  # SGD momentum (Nesterov)
weight_decay = 1e-4  # not applied to BatchNorm
sync_bn = False  # SyncBatchNorm across the processes (CUDA); the paper's BN is per GPU (8 clips)
freeze_bn = False  # BN normalises with its running statistics (its scale and shift still train)
precise_bn_batches = 0  # >0: recompute BN statistics over this many batches at each epoch's end (PySlowFast: 200)
# System.
device = "cuda" if torch.cuda.is_available() else "cpu"  # cuda or cpu; torchrun: cuda:LOCAL_RANK
bf16 = True  # CUDA: bfloat16 autocast, channels_last_3d, and the fused op writes bf16 NDHWC input
torch_compile = False  # torch.compile the training network (the first steps compile; evaluation stays eager)
num_workers = 8  # DataLoader worker processes per process
out_dir = "runs/pretrain"  # checkpoints, log.txt, log.jsonl
resume = True  # continue from out_dir's newest readable checkpoint when there is one
allow_setting_changes = False  # resume although settings that shape the run changed (batch, world size, ...)
keep_checkpoints = 3  # newest checkpoints kept (best.pyth is kept besides)
log_every = 20  # steps between progress lines (and log.jsonl records)
progress = True  # a tqdm bar on rank 0
checkpoint_every = 1000  # steps; and at every epoch's end
eval_every = 10  # epochs; and after the last
seed = 0  # data order and augmentation

# The paper's pre-training variants (main paper Table 4, supp. Tables S3 and S5): named
# settings, applied over the defaults above; any --name=value still overrides them. Each runs
# with any --arch (Slow R50, SlowFast R50/R101, I3D, TSM: supp. Tables S1, S2, S6).
PRESETS = {
    "ego_exo": dict(),  # all five terms, 0.5 / 0.1 / 0.5 / 1.0 / 1.0
    "third_only": dict(w_ego=0.0, w_object=0.0, w_hand_map=0.0, w_object_map=0.0, dropout=0.5),  # the baseline
    "ego_score": dict(w_object=0.0, w_hand_map=0.0, w_object_map=0.0),
    "object_score": dict(w_ego=0.0, w_hand_map=0.0, w_object_map=0.0),
    "interaction_map": dict(w_ego=0.0, w_object=0.0),  # hand and object maps
    "hand_map": dict(w_ego=0.0, w_object=0.0, w_object_map=0.0),
    "object_map": dict(w_ego=0.0, w_object=0.0, w_hand_map=0.0),
    "ego_score_no_pair": dict(w_object=0.0, w_hand_map=0.0, w_object_map=0.0, ego_teacher="no_pair"),
}

# The embedded demo: generated data, small clips, a few epochs on the CPU.
DEMO = dict(min_size=64, max_size=80, crop_size=64, test_size=64, num_clips=2, num_crops=1,
            epochs=10, batch_size=4, base_lr=0.05, base_lr_batch=4, warmup_epochs=0.5, num_workers=2,
            log_every=4, checkpoint_every=4, eval_every=5, arch="slow_8x8_r50")

# ----------------------------------------------------------------------------- overrides
settings = plumbing.parse_settings(__file__, globals(), sys.argv[1:], presets=PRESETS,
                                   fallback=lambda s: DEMO if s["train_list"] is None else None)
globals().update(settings)
config = dict(settings)
plumbing.require_choices(__file__, settings, {"arch": tuple(ARCHS), "ego_teacher": ("paired", "no_pair")})
if keep_checkpoints < 1:
    sys.exit("train_pretrain.py: --keep_checkpoints must be >= 1 (a run resumes from its newest checkpoint)")
if ego_teacher == "no_pair":
    ego_scores = no_pair_ego_scores  # the term reads the no-pair M_ego's file (its own setting, so a run says which)
    if w_ego and train_list is not None and not ego_scores:
        sys.exit("train_pretrain.py: --ego_teacher=no_pair (--preset=ego_score_no_pair) reads --no_pair_ego_scores: "
                 "score_teachers.py --teacher=ego with the M_ego of train_finetune.py --preset=ego_classifier "
                 "--no_pair=true")
if train_list is not None:  # a real run does not quietly drop a term whose targets were forgotten
    for weight, given, what in ((w_ego, ego_scores, "--ego_scores (score_teachers.py --teacher=ego)"),
                                (w_object, object_scores, "--object_scores (score_teachers.py --teacher=object)"),
                                (w_hand_map or w_object_map, detections,
                                 "--detections (score_teachers.py --teacher=detections)")):
        if weight and not given:
            sys.exit(f"train_pretrain.py: preset {preset!r} weights a term whose targets are not given: pass {what}, "
                     f"or set its weight to 0")

# ----------------------------------------------------------------------------- processes
procs = plumbing.init_processes(device)
rank, world_size, ddp, is_main, device = procs.rank, procs.world_size, procs.ddp, procs.is_main, procs.device
config["world_size"] = world_size  # a resumed run must keep it (see plumbing.restore_training_state)
if sync_bn and device.type != "cuda":
    sys.exit("train_pretrain.py: --sync_bn=true needs CUDA devices (SyncBatchNorm has no CPU kernel)")
autocast_dtype = torch.bfloat16 if bf16 and device.type == "cuda" else None
torch.manual_seed(seed + rank)
plumbing.lock_out_dir(procs, out_dir, __file__)
log = plumbing.make_log(procs, out_dir)
checkpoints = plumbing.Checkpoints(out_dir, keep_checkpoints, log)


# ----------------------------------------------------------------------------- data and model
if train_list is None:
    from data.synthetic import make_kinetics

    demo_root = os.path.join(out_dir, "demo_data")
    if is_main and not os.path.isfile(os.path.join(demo_root, "classnames.txt")):
        log(f"writing the demo data set to {demo_root}")
        make_kinetics(demo_root, num_classes=4, videos_per_class=8, val_videos_per_class=2)
    if ddp:
        dist.barrier()
    train_list, val_list = (os.path.join(demo_root, "lists", f"{s}.csv") for s in ("train", "val"))
    video_root, num_classes = os.path.join(demo_root, "videos"), 4
    detections = os.path.join(demo_root, "detection_store")
    if (w_ego and not ego_scores) or (w_object and not object_scores):
        log("demo: no teacher score files, so the Ego-Score and Object-Score terms are off "
            "(pass --ego_scores=... --object_scores=...)")

use_ego = bool(w_ego and ego_scores)
use_object = bool(w_object and object_scores)
use_maps = bool((w_hand_map or w_object_map) and detections)
model = build_model(arch, num_classes, ego_head=use_ego, object_head=use_object, interaction_head=use_maps,
                    dropout=dropout).to(device)
spec = model.input_spec
sampling = ClipSampling(clip_len=spec.num_frames, stride=spec.sampling_rate, min_size=min_size, max_size=max_size,
                        crop_size=crop_size, test_size=test_size, num_clips=num_clips, num_crops=num_crops)


def _is_official_csv(path: str) -> bool:
    with open(path) as f:
        return f.readline().startswith("label,youtube_id")


with plumbing.bad_input_stops(__file__):
    if _is_official_csv(train_list):
        if class_names is None:
            class_names = kinetics_csv_class_names(train_list, num_classes=num_classes)  # validation uses this map
        names = read_class_names(class_names) if isinstance(class_names, str) else class_names
        if len(names) != num_classes:
            sys.exit(f"train_pretrain.py: the class map has {len(names)} classes "
                     f"({class_names if isinstance(class_names, str) else 'the training CSV'}) but --num_classes={num_classes}")
        class_names = names


def kinetics(path: str, training: bool) -> KineticsDataset:
    lists = {"csv_path": path, "class_names": class_names} if _is_official_csv(path) else {"list_path": path}
    return KineticsDataset(training, video_root=video_root, num_classes=num_classes, sampling=sampling,
                           # teacher targets are training targets: score files cover the training videos
                           ego_scores=ego_scores if use_ego and training else None,
                           object_scores=object_scores if use_object and training else None,
                           detections=detections if use_maps and training else None,
                           detection_threshold=detection_threshold, seed=seed, **lists)


with plumbing.bad_input_stops(__file__):
    train_set = kinetics(train_list, training=True)
    val_set = kinetics(val_list, training=False) if val_list else None
sampler = ResumableSampler(len(train_set), shuffle=True, seed=seed, rank=rank, world_size=world_size)
steps_per_epoch = len(sampler) // batch_size
if steps_per_epoch < 1:
    sys.exit(f"train_pretrain.py: {len(sampler)} training videos per process is less than one batch of {batch_size}")
loader_args = dict(num_workers=num_workers, collate_fn=collate_clips, pin_memory=device.type == "cuda",
                   persistent_workers=False)

# ----------------------------------------------------------------------------- optimisation
if device.type == "cuda" and bf16:
    model = model.to(memory_format=torch.channels_last_3d)  # with bf16 input in NDHWC from the fused op
global_batch = batch_size * world_size
lr_peak = base_lr * global_batch / base_lr_batch
optimizer = torch.optim.SGD(param_groups(model, weight_decay), lr=lr_peak, momentum=momentum, nesterov=True)
start_epoch, start_step, pending_eval, resumed_from = checkpoints.resume(model, optimizer, config,
                                                                        allow_setting_changes) if resume else (0, 0, None, None)
net = model  # the network itself: evaluation, precise BN and checkpoints use it
if sync_bn and ddp:
    model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)  # same modules' state: checkpoints unchanged
    net = model
if torch_compile:
    model = torch.compile(model)
if ddp:
    model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

weights = LossWeights(action=w_action, ego=w_ego if use_ego else 0.0, object=w_object if use_object else 0.0,
                      hand_map=w_hand_map if use_maps else 0.0, object_map=w_object_map if use_maps else 0.0)
log(f"{arch} ({preset}): {sum(p.numel() for p in net.parameters()):,} parameters, {len(train_set)} training videos, "
    f"{world_size} process(es) x {batch_size} clips, peak LR {lr_peak:.4g}, loss weights {weights}")
log.record("start", config=config, resumed_from=resumed_from)


def loss_fn(outputs: dict, batch: dict) -> dict:
    targets = {"label": batch["label"].to(device, non_blocking=True)}
    for key in ("ego_score", "object_score"):
        if key in batch:
            targets[key] = batch[key].to(device, non_blocking=True)
    if "interaction" in outputs:
        targets["interaction_targets"] = batch_interaction_targets(batch, outputs["interaction"], hard=hard_maps,
                                                                   drop_outside=drop_outside_boxes)
    return egoexo_loss(outputs, targets, weights, kd_temperature)


def evaluation_due(epoch: int) -> bool:
    return val_set is not None and ((epoch + 1) % eval_every == 0 or epoch + 1 == epochs)


def update_precise_bn(epoch: int) -> None:
    """BN statistics of the epoch's final weights over precise_bn_batches training batches of
    this rank (engine.precise_bn), before the epoch-end checkpoint so that a resume sees them."""
    indices = list(sampler)[: precise_bn_batches * batch_size]
    loader = DataLoader(train_set, batch_size=batch_size, sampler=indices, drop_last=True, **loader_args)
    used = precise_bn(net, loader, num_batches=precise_bn_batches, device=device, autocast_dtype=autocast_dtype)
    log(f"epoch {epoch}: precise BN statistics over {used} batches x {world_size} process(es)")


def save(epoch: int, step: int) -> None:
    if step == steps_per_epoch and precise_bn_batches > 0:
        update_precise_bn(epoch)
    if is_main:
        checkpoints.save(net, optimizer, epoch=epoch, step=step, steps_per_epoch=steps_per_epoch, config=config,
                         eval_due=epoch if step == steps_per_epoch and evaluation_due(epoch) else None)


def run_evaluation(epoch: int) -> None:
    """Top-1 / top-5 over num_clips x num_crops views of every validation video (rank 0 logs)."""
    shard = plumbing.video_shard(len(val_set.videos), val_set.num_views, procs)
    loader = DataLoader(val_set, batch_size=plumbing.eval_batch_size(batch_size, val_set.num_views),
                        sampler=shard, **loader_args)
    result = evaluate(net, loader, device=device, autocast_dtype=autocast_dtype, tasks=["action"])
    if result is None:  # not rank 0: its share went to rank 0
        return
    acc = {1: float("nan"), 5: float("nan")}
    if result["video_ids"]:
        labels = torch.stack([torch.as_tensor(label) for label in result["labels"]])
        acc = topk_accuracy(result["scores"]["action"], labels, ks=(1, 5))
    log(f"eval epoch {epoch}: {len(result['video_ids'])} videos, {result['views']} views, "
        f"top-1 {acc[1]:.2f} top-5 {acc[5]:.2f}, {len(result['errors'])} views failed to load")
    for video_id, view, message in result["errors"][:20]:
        log(f"  failed: {video_id} view {view}: {message}")
    log.record("eval", epoch=epoch, progress=float(epoch + 1), metrics={"top1": acc[1], "top5": acc[5]},
               videos=len(result["video_ids"]), views=result["views"], failed_views=len(result["errors"]))
    if checkpoints.evaluation_done(epoch, "top1", acc[1]):
        log(f"best top-1 so far: {checkpoints.best_path}")


# ----------------------------------------------------------------------------- loop
with plumbing.training_stops(__file__):
    if pending_eval is not None:
        run_evaluation(pending_eval)
    for epoch in range(start_epoch, epochs):
        sampler.set_epoch(epoch, start=start_step * batch_size)
        train_set.set_epoch(epoch)
        loader = plumbing.epoch_loader(train_set, batch_size, sampler, **loader_args)
        tick = time.time()
        stats = train_one_epoch(
            model, loader, optimizer, loss_fn, epoch=epoch, start_step=start_step, steps_per_epoch=steps_per_epoch,
            lr_at=lambda e: cosine_lr(e, base_lr=lr_peak, epochs=epochs, warmup_epochs=warmup_epochs,
                                      warmup_start_lr=lr_peak * warmup_start_factor),
            device=device, autocast_dtype=autocast_dtype, log=log, log_every=log_every,
            checkpoint_every=checkpoint_every, save=lambda step: save(epoch, step), record=log.record,
            progress=progress and is_main, freeze_bn=freeze_bn,
        )
        plumbing.summarise_epoch(procs, log, epoch, stats, time.time() - tick)
        start_step = 0
        if evaluation_due(epoch):
            run_evaluation(epoch)

    if is_main:
        save_checkpoint(os.path.join(out_dir, "final.pyth"), net, config=config)
        log(f"saved {os.path.join(out_dir, 'final.pyth')}")
plumbing.close_processes(procs)
