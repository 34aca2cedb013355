"""Ego-Exo pre-training on Kinetics (SPEC sections 3 and 4).

    L = 0.5·CE(action) + 0.1·KD(ego) + 0.5·KD(object) + 1.0·BCE(hand map) + 1.0·BCE(object map)

One process (CPU or one GPU):
    python train_pretrain.py --arch=slowfast_8x8_r50 --train_list=k400/train.csv ...
The paper's 64 GPUs:
    torchrun --nnodes 8 --nproc-per-node 8 train_pretrain.py --train_list=... --detections=...

Every setting below is a plain Python default; override any of them as --name=value, typed
against the default (--epochs=5, --w_ego=0, --resume=false; plumbing.py); --help lists them. Ablations are weights: Third-only is
--w_ego=0 --w_object=0 --w_hand_map=0 --w_object_map=0 --dropout=0.5; Hand-Map only is
--w_ego=0 --w_object=0 --w_object_map=0; and so on. A head is built only when its term is on
and its targets are given.

With no --train_list the script runs the embedded demo: it writes a small generated Kinetics
(data/synthetic.py, official layout, a store of 100DOH-style detections) under out_dir and trains on the
CPU at small sizes (DEMO below). A run that is killed resumes from out_dir/last.pyth, at the
batch where it stopped.
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
from engine import cosine_lr, evaluate, param_groups, topk_accuracy, train_one_epoch, unwrap
from losses.distillation import LossWeights, egoexo_loss
from losses.interaction_map import batch_interaction_targets
from models import build_model
from models.checkpoint import save_checkpoint

# ----------------------------------------------------------------------------- settings
arch = "slowfast_8x8_r50"  # models/resnet3d.py ARCHS
# Kinetics: a PySlowFast list (`path label`) or the official CSV (`label,youtube_id,...`).
train_list = None  # None: the embedded demo
val_list = None  # validation list/CSV in the same format; None: no evaluation
video_root = ""  # folder that relative video paths are joined to
class_names = None  # official CSV: class-names file; None = the training CSV's sorted names
num_classes = 400  # classes of the action head (checked against the class map)
# Teacher targets (data/teacher_targets.py formats; score_teachers.py writes them).
ego_scores = None  # Ego-Score file (log-probs, 2 per video)
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
# System.
device = "cuda" if torch.cuda.is_available() else "cpu"  # cuda or cpu; torchrun: cuda:LOCAL_RANK
bf16 = True  # autocast to bfloat16 on CUDA
num_workers = 8  # DataLoader worker processes per process
out_dir = "runs/pretrain"  # checkpoints (last.pyth, final.pyth) and log.txt
resume = True  # continue from out_dir/last.pyth when it exists
allow_setting_changes = False  # resume although settings that shape the run changed (batch, world size, ...)
log_every = 20  # steps between progress lines
checkpoint_every = 1000  # steps; and at every epoch's end
eval_every = 10  # epochs; and after the last
seed = 0  # data order and augmentation

# The embedded demo: generated data, small clips, a few epochs on the CPU.
DEMO = dict(min_size=64, max_size=80, crop_size=64, test_size=64, num_clips=2, num_crops=1,
            epochs=10, batch_size=4, base_lr=0.05, base_lr_batch=4, warmup_epochs=0.5, num_workers=2,
            log_every=4, checkpoint_every=4, eval_every=5, arch="slow_8x8_r50")

# ----------------------------------------------------------------------------- overrides
settings = plumbing.parse_settings(__file__, globals(), sys.argv[1:],
                                   fallback=lambda s: DEMO if s["train_list"] is None else None)
globals().update(settings)
config = dict(settings)

# ----------------------------------------------------------------------------- processes
procs = plumbing.init_processes(device)
rank, world_size, ddp, is_main, device = procs.rank, procs.world_size, procs.ddp, procs.is_main, procs.device
config["world_size"] = world_size  # a resumed run must keep it (see plumbing.restore_training_state)
autocast_dtype = torch.bfloat16 if bf16 and device.type == "cuda" else None
torch.manual_seed(seed + rank)
log = plumbing.make_log(procs, out_dir)


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


train_set = kinetics(train_list, training=True)
sampler = ResumableSampler(len(train_set), shuffle=True, seed=seed, rank=rank, world_size=world_size)
steps_per_epoch = len(sampler) // batch_size
if steps_per_epoch < 1:
    sys.exit(f"train_pretrain.py: {len(sampler)} training videos per process is less than one batch of {batch_size}")
loader_args = dict(num_workers=num_workers, collate_fn=collate_clips, pin_memory=device.type == "cuda",
                   persistent_workers=False)

# ----------------------------------------------------------------------------- optimisation
if device.type == "cuda":
    model = model.to(memory_format=torch.channels_last_3d)
global_batch = batch_size * world_size
lr_peak = base_lr * global_batch / base_lr_batch
optimizer = torch.optim.SGD(param_groups(model, weight_decay), lr=lr_peak, momentum=momentum, nesterov=True)
start_epoch, start_step = 0, 0
last_path = os.path.join(out_dir, "last.pyth")
if resume and os.path.isfile(last_path):
    start_epoch, start_step = plumbing.restore_training_state(last_path, model, optimizer, config, allow_setting_changes)
    log(f"resumed from {last_path}: epoch {start_epoch}, step {start_step}")
if ddp:
    model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

weights = LossWeights(action=w_action, ego=w_ego if use_ego else 0.0, object=w_object if use_object else 0.0,
                      hand_map=w_hand_map if use_maps else 0.0, object_map=w_object_map if use_maps else 0.0)
log(f"{arch}: {sum(p.numel() for p in model.parameters()):,} parameters, {len(train_set)} training videos, "
    f"{world_size} process(es) x {batch_size} clips, peak LR {lr_peak:.4g}, loss weights {weights}")


def loss_fn(outputs: dict, batch: dict) -> dict:
    targets = {"label": batch["label"].to(device, non_blocking=True)}
    for key in ("ego_score", "object_score"):
        if key in batch:
            targets[key] = batch[key].to(device, non_blocking=True)
    if "interaction" in outputs:
        targets["interaction_targets"] = batch_interaction_targets(batch, outputs["interaction"], hard=hard_maps,
                                                                   drop_outside=drop_outside_boxes)
    return egoexo_loss(outputs, targets, weights, kd_temperature)


def save(epoch: int, step: int) -> None:
    if is_main:
        plumbing.save_training_state(last_path, unwrap(model), optimizer, epoch=epoch, step=step, config=config,
                                     steps_per_epoch=steps_per_epoch)


def run_evaluation(epoch: int) -> None:
    if not val_list:
        return
    val_set = kinetics(val_list, training=False)
    shard = plumbing.video_shard(len(val_set.videos), val_set.num_views, procs)
    loader = DataLoader(val_set, batch_size=batch_size, sampler=shard, **loader_args)
    result = evaluate(model, loader, device=device, autocast_dtype=autocast_dtype, tasks=["action"])
    if result is None:  # not rank 0: its share went to rank 0
        return
    if result["video_ids"]:
        labels = torch.stack([torch.as_tensor(label) for label in result["labels"]])
        acc = topk_accuracy(result["scores"]["action"], labels, ks=(1, 5))
        log(f"eval epoch {epoch}: {len(result['video_ids'])} videos, {result['views']} views, "
            f"top-1 {acc[1]:.2f} top-5 {acc[5]:.2f}, {len(result['errors'])} views failed to load")
    for video_id, view, message in result["errors"][:20]:
        log(f"  failed: {video_id} view {view}: {message}")


# ----------------------------------------------------------------------------- loop
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
        checkpoint_every=checkpoint_every, save=lambda step: save(epoch, step),
    )
    plumbing.summarise_epoch(procs, log, epoch, stats, time.time() - tick)
    start_step = 0
    if (epoch + 1) % eval_every == 0 or epoch + 1 == epochs:
        run_evaluation(epoch)

if is_main:
    save_checkpoint(os.path.join(out_dir, "final.pyth"), unwrap(model), config=config)
    log(f"saved {os.path.join(out_dir, 'final.pyth')}")
plumbing.close_processes(procs)
