"""The loops: one training epoch and one evaluation pass, shared by the training scripts.

A batch leaves the DataLoader as uint8 frames (data/collate.py); `model_inputs` moves it to the
device and runs the fused crop/normalise op there, so the per-step path is: copy uint8 ->
one kernel -> forward -> loss -> backward. Nothing in the step synchronises with the device
except on logging steps.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable

import torch
import torch.distributed as dist

from tqdm import tqdm

from data.crop_normalize import clips_to_device


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The VideoNet inside a DistributedDataParallel and/or torch.compile wrapper."""
    if isinstance(model, torch.nn.parallel.DistributedDataParallel):
        model = model.module
    return getattr(model, "_orig_mod", model)  # torch.compile's OptimizedModule


def input_format(model: torch.nn.Module, autocast_dtype: torch.dtype | None) -> tuple[torch.dtype, bool]:
    """What the network consumes: (dtype, channels_last). Under bf16 autocast its convolutions
    read bf16, and a model moved to channels_last_3d reads NDHWC; the fused crop/normalise op
    writes exactly that, so the biggest tensor of a step is written once and never converted."""
    for m in unwrap(model).modules():  # the first weight whose two layouts differ says which one it is in
        if isinstance(m, torch.nn.Conv3d) and m.weight.is_contiguous() != m.weight.is_contiguous(
                memory_format=torch.channels_last_3d):
            return (autocast_dtype or torch.float32), not m.weight.is_contiguous()
    return (autocast_dtype or torch.float32), False


def model_inputs(batch: dict, model: torch.nn.Module, device: torch.device,
                 dtype: torch.dtype = torch.float32, channels_last: bool = False) -> list[torch.Tensor]:
    """A collated batch -> the network's list of pathway inputs on `device`."""
    clips = clips_to_device(batch, device, dtype=dtype, channels_last=channels_last)
    return unwrap(model).input_spec.pack(clips)


def cosine_lr(epoch: float, *, base_lr: float, epochs: int, warmup_epochs: float,
              warmup_start_lr: float) -> float:
    """PySlowFast's schedule: half a cosine from base_lr to 0 over `epochs`, with a linear
    warm-up from warmup_start_lr to the cosine's value at warmup_epochs. `epoch` is fractional
    (epoch + step / steps_per_epoch), so the rate changes every step."""
    cosine = lambda e: base_lr * (math.cos(math.pi * e / epochs) + 1.0) / 2.0  # noqa: E731
    if epoch < warmup_epochs:
        end = cosine(warmup_epochs)
        return warmup_start_lr + (end - warmup_start_lr) * epoch / warmup_epochs
    return cosine(epoch)


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on every parameter but BatchNorm's (PySlowFast's BN.WEIGHT_DECAY = 0)."""
    bn, rest = [], []
    for module in model.modules():
        params = [p for p in module.parameters(recurse=False) if p.requires_grad]
        (bn if isinstance(module, torch.nn.modules.batchnorm._BatchNorm) else rest).extend(params)
    return [{"params": rest, "weight_decay": weight_decay}, {"params": bn, "weight_decay": 0.0}]


def train_one_epoch(
    model: torch.nn.Module,
    loader,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[[dict, dict], dict[str, torch.Tensor]],
    *,
    epoch: int,
    start_step: int,
    steps_per_epoch: int,
    lr_at: Callable[[float], float],
    device: torch.device,
    autocast_dtype: torch.dtype | None,
    log: Callable[[str], None],
    log_every: int,
    checkpoint_every: int = 0,
    save: Callable[[int], None] | None = None,
    extra_key: str | None = None,
    record: Callable[..., None] | None = None,
    progress: bool = False,
    freeze_bn: bool = False,
) -> dict:
    """Trains over `loader` (which already skips the first `start_step` batches of the epoch).

    loss_fn(outputs, batch) returns the loss terms with their sum under "loss". Every
    `checkpoint_every` steps and at the epoch's end `save(steps_done)` runs (checkpointing).
    `extra_key`: a batch key passed to the model as extra_features (supp. Table S4 "append").
    Every `log_every` steps a line goes to `log` and, when given, `record("train", ...)` gets
    the interval's mean of every term, the LR, clips/s, the fraction of the time spent waiting
    for the loader and the peak GPU memory (docs/training_log.md). `progress`: a tqdm bar.
    `freeze_bn`: BatchNorm layers normalise with their running statistics (and do not update
    them); their scale and shift still train.

    The loss terms of every step are summed and checked for NaN/inf on the device; the host
    reads them only on logging and saving steps, the step's only synchronisation. A non-finite
    term stops training there with FloatingPointError naming the first bad step (1-based) and
    its terms, before any save, so no checkpoint is written from it. Returns the epoch's mean
    loss terms over all its steps (of this run) and the samples that failed to load and were
    replaced (counted, never silent)."""
    model.train()
    if freeze_bn:
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.eval()
    dtype, channels_last = input_format(model, autocast_dtype)
    keys: list[str] = []
    total = interval = first_bad = bad_terms = None  # device tensors: sums, first non-finite step, its terms
    steps, interval_steps, failed, clips, waited = 0, 0, [], 0, 0.0
    bar = tqdm(total=steps_per_epoch, initial=start_step, desc=f"epoch {epoch}", unit="step", dynamic_ncols=True,
               mininterval=2.0, leave=False, disable=not progress)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    tick = time.perf_counter()
    batches = iter(loader)
    step = start_step
    while True:
        wait = time.perf_counter()
        batch = next(batches, None)
        waited += time.perf_counter() - wait
        if batch is None:
            break
        lr = lr_at(epoch + step / steps_per_epoch)
        for group in optimizer.param_groups:
            group["lr"] = lr
        inputs = model_inputs(batch, model, device, dtype, channels_last)
        extra = batch[extra_key].to(device, non_blocking=True) if extra_key else None
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            outputs = model(inputs, extra)
        terms = loss_fn(outputs, batch)
        optimizer.zero_grad(set_to_none=True)
        terms["loss"].backward()
        optimizer.step()
        failed.extend(batch["failed"])
        clips += len(batch["video_id"])

        keys = keys or list(terms)
        values = torch.stack([terms[k].detach().float() for k in keys])
        total = values if total is None else total + values
        interval = values if interval is None else interval + values
        if first_bad is None:
            first_bad, bad_terms = torch.full((), -1, device=values.device), torch.zeros_like(values)
        newly_bad = (first_bad < 0) & ~torch.isfinite(values).all()
        first_bad = torch.where(newly_bad, step, first_bad)
        bad_terms = torch.where(newly_bad, values, bad_terms)
        steps += 1
        interval_steps += 1
        step += 1
        bar.update(1)
        logging = step % log_every == 0 or step == steps_per_epoch
        saving = save is not None and ((checkpoint_every and step % checkpoint_every == 0) or step == steps_per_epoch)
        if logging or saving:
            if int(first_bad) >= 0:  # the only device sync of a step, and only on these steps
                bar.close()
                raise FloatingPointError(
                    f"epoch {epoch} step {int(first_bad) + 1}/{steps_per_epoch}: a loss term is not finite "
                    f"({dict(zip(keys, bad_terms.tolist()))}); stopped before any checkpoint was written from it")
        if logging:
            seconds = time.perf_counter() - tick
            means = dict(zip(keys, (interval / interval_steps).tolist()))
            rate, wait_fraction = clips / seconds, min(waited / seconds, 1.0)
            memory = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
            bar.set_postfix(loss=f"{means['loss']:.4f}", clips_s=f"{rate:.1f}", refresh=False)
            with tqdm.external_write_mode():  # the line above the bar, not into it
                log(f"epoch {epoch} step {step}/{steps_per_epoch} lr {lr:.4g} "
                    + " ".join(f"{k} {v:.4f}" for k, v in means.items())
                    + f" | {rate:.1f} clips/s, data wait {100 * wait_fraction:.0f}%"
                    + (f", {memory:.1f} GiB" if memory is not None else ""))
            if record is not None:
                record("train", epoch=epoch, step=step, steps_per_epoch=steps_per_epoch,
                       progress=round(epoch + step / steps_per_epoch, 6), lr=lr, loss=means, clips_per_s=rate,
                       data_wait=wait_fraction, gpu_mem_gb=memory)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            interval, interval_steps, clips, waited, tick = None, 0, 0, 0.0, time.perf_counter()
        if saving:
            save(step)
    bar.close()
    mean = dict(zip(keys, (total / steps).tolist())) if steps else {}
    return {"loss": mean, "failed": failed}


@torch.no_grad()
def precise_bn(model: torch.nn.Module, loader, *, num_batches: int, device: torch.device,
               autocast_dtype: torch.dtype | None) -> int:
    """Precise BatchNorm statistics (PySlowFast's BN.USE_PRECISE_STATS): replace every BN
    layer's running mean and variance by their averages over `num_batches` training batches
    (the model in training mode, no gradient, nothing else changed), averaged over the ranks
    under torch.distributed. The running averages of training lag behind the weights that
    changed under them; these are the statistics of the final weights. Returns the batches used.

    Each layer's running mean becomes the mean of its per-batch means, and its running var the
    mean of its per-batch (unbiased) variances: BN's momentum=None cumulative average."""
    net = unwrap(model)
    bns = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not bns or num_batches < 1:
        return 0
    saved = [(m.momentum, m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone()) for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    was_training = net.training
    net.train()
    dtype, channels_last = input_format(net, autocast_dtype)
    used = 0
    for batch in loader:
        if used == num_batches:
            break
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            net(model_inputs(batch, net, device, dtype, channels_last))
        used += 1
    for m, (momentum, mean, var, count) in zip(bns, saved):
        m.momentum = momentum
        m.num_batches_tracked.copy_(count)
        if used == 0:  # nothing loaded: keep the running statistics of training
            m.running_mean.copy_(mean)
            m.running_var.copy_(var)
    if dist.is_available() and dist.is_initialized():  # every rank joins, whatever it loaded
        for m in bns:
            for buffer in (m.running_mean, m.running_var):
                dist.all_reduce(buffer)
                buffer.div_(dist.get_world_size())
    net.train(was_training)
    return used


@torch.no_grad()
def evaluate(model: torch.nn.Module, loader, *, device: torch.device, autocast_dtype: torch.dtype | None,
             tasks: list[str], aggregate: str = "mean", activation: str = "softmax",
             extra_key: str | None = None) -> dict | None:
    """Scores every view, then combines each video's views: the mean (Kinetics, EPIC, SSv2) or
    the max (Charades-Ego) of softmax/sigmoid scores, SPEC section 4.

    Runs the unwrapped network: a DDP forward would broadcast buffers, a collective that a rank
    whose shard has no loadable clip never joins. Give each rank whole videos
    (plumbing.video_shard); under torch.distributed the shares are gathered to rank 0, which
    returns {"video_ids": [...] sorted, "scores": {task: float [N, K]}, "labels": [...] (per
    video, as the dataset gives them), "views": views scored, "errors": [(video_id, view,
    message)]}; the other ranks return None. `extra_key`: a batch key passed to the model as
    extra_features (supp. Table S4 "append")."""
    if aggregate not in ("mean", "max") or activation not in ("softmax", "sigmoid"):
        raise ValueError(f"evaluate: aggregate must be mean|max and activation softmax|sigmoid, got "
                         f"{aggregate!r}, {activation!r}")
    net = unwrap(model)
    net.eval()
    fmt = input_format(net, autocast_dtype)
    per_video: dict[str, dict] = {}
    errors = []
    for batch in loader:
        errors.extend(batch["errors"])
        if not batch["video_id"]:
            continue
        extra = batch[extra_key].to(device) if extra_key else None
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            outputs = net(model_inputs(batch, net, device, *fmt), extra)
        scores = {t: (outputs[t].float().softmax(-1) if activation == "softmax" else outputs[t].float().sigmoid()).cpu()
                  for t in tasks}
        labels = batch["label"]
        for row, video_id in enumerate(batch["video_id"]):
            entry = per_video.setdefault(video_id, {"views": 0, "scores": {}, "label": None})
            entry["label"] = {k: v[row] for k, v in labels.items()} if isinstance(labels, dict) else labels[row]
            for t in tasks:
                s = scores[t][row]
                old = entry["scores"].get(t)
                entry["scores"][t] = s if old is None else (old + s if aggregate == "mean" else torch.maximum(old, s))
            entry["views"] += 1
    if dist.is_available() and dist.is_initialized():
        shards = [None] * dist.get_world_size() if dist.get_rank() == 0 else None
        dist.gather_object((per_video, errors), shards, dst=0)
        if dist.get_rank() != 0:
            return None
        per_video, errors = {}, []
        for videos, errs in shards:
            for video_id, entry in videos.items():  # a video's views sit on several ranks only
                if video_id not in per_video:      # when the sampler split it
                    per_video[video_id] = entry
                    continue
                mine = per_video[video_id]
                for t in tasks:
                    a, b = mine["scores"][t], entry["scores"][t]
                    mine["scores"][t] = a + b if aggregate == "mean" else torch.maximum(a, b)
                mine["views"] += entry["views"]
            errors.extend(errs)
    video_ids = sorted(per_video)
    out_scores = {}
    for t in tasks:
        stacked = torch.stack([per_video[v]["scores"][t] for v in video_ids]) if video_ids else torch.zeros(0, 0)
        if aggregate == "mean" and video_ids:
            stacked = stacked / torch.tensor([per_video[v]["views"] for v in video_ids], dtype=torch.float32)[:, None]
        out_scores[t] = stacked
    return {"video_ids": video_ids, "scores": out_scores, "labels": [per_video[v]["label"] for v in video_ids],
            "views": sum(per_video[v]["views"] for v in video_ids), "errors": errors}


def topk_accuracy(scores: torch.Tensor, labels: torch.Tensor, ks=(1, 5)) -> dict[int, float]:
    """Percentage of rows whose label is among the k highest scores."""
    if scores.shape[0] == 0:
        return {k: float("nan") for k in ks}
    top = scores.topk(min(max(ks), scores.shape[1]), dim=1).indices
    hit = top == labels[:, None]
    return {k: 100.0 * hit[:, :k].any(dim=1).float().mean().item() for k in ks}
