"""What the training scripts share besides the loop (engine.py): settings and their
command-line overrides, the process group, logging, and checkpoint / resume.

Settings are the plain Python assignments at the top of a script (nanoGPT style). A script
hands its globals to `parse_settings`, which applies, in order, the script's defaults, a named
preset (`--preset=NAME`, when the script has presets) and the `--name=value` overrides, each
typed against its default:

    default bool   true/false/yes/no/1/0 (any case); anything else is refused
    default int    an integer literal (1000, -3); 1e3 or 2.5 is refused
    default float  an int or float literal
    default str    the text as given (a path, an arch name)
    default tuple  a tuple or list literal ("20,25", "(20, 25)", "()" for none), or bare
                   comma-separated items (a.pt,b.pt), each read as for a None default
    default None   a Python literal (3, 0.5, True, None, 'x') if it reads as one, else the text
                   (a path)

A bad name or value stops the script at once, naming the setting and what it expected;
`--help` lists every setting with its default and the comment written beside it.
"""
from __future__ import annotations

import ast
import contextlib
import fcntl
import io
import json
import math
import os
import re
import shutil
import socket
import sys
import time
import tokenize
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
import torch.distributed as dist

SCALARS = (bool, int, float, str, type(None))
SETTING_TYPES = SCALARS + (tuple,)


# ----------------------------------------------------------------------------- settings


def default_settings(namespace: Mapping) -> dict:
    """The settings of a script: its lower-case module-level names bound to plain scalars or
    tuples of them."""
    return {k: v for k, v in namespace.items()
            if not k.startswith("_") and k.islower() and type(v) in SETTING_TYPES
            and (type(v) is not tuple or all(type(x) in SCALARS for x in v))}


def setting_comments(script_path: str) -> dict[str, str]:
    """name -> the comment beside (or, failing that, just above) its assignment in the script;
    a tuple assignment `a, b = 1, 2  # text` gives both names the text."""
    with open(script_path, encoding="utf-8") as f:
        source = f.read()
    comments: dict[int, str] = {}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            comments[token.start[0]] = token.string.lstrip("#").strip()
    lines = source.splitlines()
    out = {}
    for node in ast.parse(source).body:
        if not isinstance(node, ast.Assign):
            continue
        names = []
        for target in node.targets:
            elements = target.elts if isinstance(target, ast.Tuple) else [target]
            names += [e.id for e in elements if isinstance(e, ast.Name)]
        text = comments.get(node.end_lineno, "")
        above = node.lineno - 1  # a whole-line comment right above
        if not text and above >= 1 and lines[above - 1].lstrip().startswith("#"):
            text = comments.get(above, "")
        for name in names:
            out.setdefault(name, text)  # the first assignment is the setting's; later ones reuse the name
    return out


_INT = re.compile(r"[+-]?[0-9]+")
_TRUE, _FALSE = {"true", "yes", "1"}, {"false", "no", "0"}


def typed_value(name: str, text: str, default):
    """`text` read as the type of `default` (module docstring); ValueError names what it expected."""
    kind = type(default)
    if kind is bool:
        low = text.strip().lower()
        if low in _TRUE or low in _FALSE:
            return low in _TRUE
        raise ValueError(f"--{name}: expected true or false (default {default}), got {text!r}")
    if kind is int:
        if _INT.fullmatch(text.strip()):
            return int(text)
        raise ValueError(f"--{name}: expected an integer (default {default}), got {text!r}")
    if kind is float:
        try:
            value = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError):
            value = None
        if type(value) in (int, float):
            return float(value)
        raise ValueError(f"--{name}: expected a number (default {default}), got {text!r}")
    if kind is str:
        return text
    if kind is tuple:  # a literal, or bare comma-separated items each read as a None default would be
        try:
            value = ast.literal_eval(text.strip() or "()")
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            value = [typed_value(name, part.strip(), None) for part in text.split(",") if part.strip()]
        if not isinstance(value, (tuple, list)):
            value = (value,)
        if all(type(x) in SCALARS for x in value):
            return tuple(value)
        raise ValueError(f"--{name}: expected a tuple of values such as {default!r}, got {text!r}")
    try:  # a None default: a Python literal, else the text (a path)
        value = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text
    return value if type(value) in SCALARS else text


def help_text(script: str, doc: str | None, defaults: dict, comments: dict[str, str],
              presets: Mapping[str, dict] | None) -> str:
    lines = [(doc or "").strip(), "", f"usage: {script} [--preset=NAME] [--name=value ...]" if presets
             else f"usage: {script} [--name=value ...]", "", "settings (default, meaning):"]
    width = max(len(k) for k in defaults)
    for key, value in defaults.items():
        lines.append(f"  --{key:<{width}} = {value!r:<24} {comments.get(key, '')}")
    if presets:
        lines += ["", "presets (--preset=NAME; any setting still overrides them):"]
        for name, values in presets.items():
            lines.append(f"  {name}: " + ", ".join(f"{k}={v!r}" for k, v in values.items()))
    return "\n".join(lines)


def parse_settings(script_path: str, namespace: Mapping, argv: list[str], *,
                   presets: Mapping[str, dict] | None = None,
                   fallback: Callable[[dict], dict | None] | None = None) -> dict:
    """The script's settings after its preset and overrides (module docstring).

    presets: name -> settings, chosen by the `preset` setting (a default or `--preset=`).
    fallback(settings) may return more defaults that apply when the overrides leave them unset
    (the embedded demo: small sizes when no data set is given). Exits with a message on a bad
    argument; prints the settings and exits on --help."""
    script = os.path.basename(script_path)
    defaults = default_settings(namespace)
    if any(a in ("-h", "--help") for a in argv):
        print(help_text(script, namespace.get("__doc__"), defaults, setting_comments(script_path), presets))
        sys.exit(0)
    given: dict = {}
    for arg in argv:
        key, eq, text = arg.removeprefix("--").partition("=")
        if not arg.startswith("--") or not eq or key not in defaults:
            sys.exit(f"{script}: bad argument {arg!r}; use --name=value with a name from: "
                     + ", ".join(defaults) + f" (see {script} --help)")
        try:
            given[key] = typed_value(key, text, defaults[key])
        except ValueError as e:
            sys.exit(f"{script}: {e}")
    settings = dict(defaults)
    if presets is not None:
        name = given.get("preset", settings.get("preset"))
        if name not in presets:
            sys.exit(f"{script}: unknown preset {name!r}; expected one of: {', '.join(presets)}")
        for key, value in presets[name].items():
            if key not in defaults:
                raise KeyError(f"{script}: preset {name!r} sets {key!r}, which is not a setting")
            settings[key] = value
    settings.update(given)
    if fallback is not None:
        extra = fallback(settings) or {}
        settings.update({k: v for k, v in extra.items() if k not in given})
    return settings


def require_choices(script_path: str, settings: dict, choices: Mapping[str, tuple]) -> None:
    """Stop at once when a setting is not one of its allowed values, naming them."""
    for key, allowed in choices.items():
        if settings[key] not in allowed:
            sys.exit(f"{os.path.basename(script_path)}: --{key} must be one of "
                     f"{', '.join(map(str, allowed))}; got {settings[key]!r}")


@contextlib.contextmanager
def bad_input_stops(script_path: str):
    """Around a script's set-up (reading annotations, score files, checkpoints): the project's
    bad-input errors, which already name the file and what was expected, end the script with
    that one line instead of a traceback."""
    from data.annotations import AnnotationError
    from data.teacher_targets import TeacherTargetError
    try:
        yield
    except (AnnotationError, TeacherTargetError, ValueError, OSError) as e:
        sys.exit(f"{os.path.basename(script_path)}: {e}")


@contextlib.contextmanager
def training_stops(script_path: str):
    """Around a script's training loop: a checkpoint that cannot be written (a full disk) and a
    non-finite loss end the run with their one-line message (each names what and where; no
    checkpoint was written from the bad state) and exit status 1."""
    from models.checkpoint import CheckpointWriteError
    try:
        yield
    except (CheckpointWriteError, FloatingPointError) as e:
        sys.exit(f"{os.path.basename(script_path)}: {e}")


# ----------------------------------------------------------------------------- processes


@dataclass(frozen=True)
class Processes:
    """Where this process stands: torch.distributed is on when torchrun set RANK."""
    ddp: bool
    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_processes(device: str) -> Processes:
    """Join the process group when launched by torchrun (NCCL on GPUs, gloo on the CPU) and
    pick this process's device (cuda:LOCAL_RANK)."""
    if "RANK" not in os.environ:
        return Processes(False, 0, 1, torch.device(device))
    cuda = device.startswith("cuda")
    if cuda:
        device = f"cuda:{int(os.environ['LOCAL_RANK'])}"
        torch.cuda.set_device(torch.device(device))
    dist.init_process_group(backend="nccl" if cuda else "gloo")
    return Processes(True, dist.get_rank(), dist.get_world_size(), torch.device(device))


def close_processes(procs: Processes) -> None:
    if procs.ddp:
        dist.destroy_process_group()


class RunLog:
    """Rank 0's record of a run: text lines to stdout (flushed) and out_dir/log.txt, and one
    JSON object per event to out_dir/log.jsonl (docs/training_log.md: "start", "train" per log
    interval, "epoch", "eval"). Other ranks write nothing; both files are appended to, so a
    resumed run continues them."""

    def __init__(self, procs: Processes, out_dir: str | None = None):
        self.is_main = procs.is_main
        self.text_path = self.json_path = None
        if out_dir and procs.is_main:
            os.makedirs(out_dir, exist_ok=True)
            self.text_path, self.json_path = os.path.join(out_dir, "log.txt"), os.path.join(out_dir, "log.jsonl")

    def __call__(self, message: str) -> None:
        if not self.is_main:
            return
        print(message, flush=True)
        if self.text_path:
            with open(self.text_path, "a", encoding="utf-8") as f:
                f.write(message + "\n")

    def record(self, kind: str, **fields) -> None:
        """One strict-JSON line (NaN and inf written as null) of the given kind, timestamped."""
        if not (self.is_main and self.json_path):
            return
        from evaluate import json_ready
        line = json.dumps(json_ready({"kind": kind, **fields, "time": round(time.time(), 3)}), allow_nan=False)
        with open(self.json_path, "ab+") as f:
            if f.tell() > 0:  # a run killed mid-write left half a line: end it, so this one stands alone
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    line = "\n" + line
            f.write((line + "\n").encode("utf-8"))


def make_log(procs: Processes, out_dir: str | None = None) -> RunLog:
    """The run's log (RunLog): call it with a text line; .record(kind, **fields) for log.jsonl."""
    return RunLog(procs, out_dir)


_LOCKS: list = []  # open lock files, held until the process exits


def lock_out_dir(procs: Processes, out_dir: str, script_path: str) -> None:
    """Rank 0 holds an exclusive lock on out_dir/.lock while the run lives (the kernel releases
    it when the process dies, kill -9 included), so a second run on the same out_dir stops at
    once with a message instead of both writing the same checkpoints until one dies."""
    if not procs.is_main:
        return
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, ".lock")
    f = open(path, "a+", encoding="utf-8")
    try:  # a POSIX record lock belongs to this process alone: DataLoader workers forked from it
        fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)  # do not inherit it, so a killed run frees it at once
    except OSError:
        f.seek(0)
        holder = f.read().strip() or "another process"
        f.close()
        sys.exit(f"{os.path.basename(script_path)}: {out_dir} is in use by another run ({holder}); wait for it to "
                 f"end, or give this run another --out_dir")
    f.seek(0)
    f.truncate()
    f.write(f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
    f.flush()
    _LOCKS.append(f)


def video_shard(num_videos: int, views: int, procs: Processes) -> list[int]:
    """This rank's evaluation samples: every view of the videos rank, rank + world, ... so no
    video is split across ranks (its views are combined where they were scored)."""
    return [v * views + k for v in range(procs.rank, num_videos, procs.world_size) for k in range(views)]


def eval_batch_size(batch_size: int, views: int) -> int:
    """Evaluation batches of whole videos (a multiple of `views`, at least one video): the
    dataset decodes all of a video's views in one pass when they arrive in one batch
    (ClipDataset.__getitems__), so each test video is opened and decoded once."""
    return views * max(1, batch_size // views)


# ----------------------------------------------------------------------------- checkpoints


def save_training_state(path: str, model: torch.nn.Module, optimizer: torch.optim.Optimizer, *,
                        epoch: int, step: int, config: dict, steps_per_epoch: int | None = None,
                        **extra) -> None:
    """Everything a resumed run needs (weights, optimiser, position, the CPU and CUDA RNG that
    dropout draws from), written atomically. `step` counts the epoch's steps done; at
    steps_per_epoch the position is the next epoch's start."""
    from models.checkpoint import save_checkpoint
    if step == steps_per_epoch:
        epoch, step = epoch + 1, 0
    cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else []
    save_checkpoint(path, model, optimizer_state=optimizer.state_dict(), epoch=epoch, step=step,
                    rng_state=torch.get_rng_state(), cuda_rng_state=cuda_rng, config=config, **extra)


# Settings a resumed run may change freely: they do not change what the run computes.
RESUME_FREE_SETTINGS = ("resume", "allow_setting_changes", "log_every", "num_workers", "eval_every",
                        "checkpoint_every", "out_dir", "device", "keep_checkpoints", "progress", "torch_compile")


def restore_training_state(path: str, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                           config: dict | None = None, allow_changes: bool = False, *,
                           loaded: dict | None = None) -> tuple[int, int]:
    """Load a `save_training_state` file into `model` and `optimizer`; returns (epoch, step).

    A checkpoint whose settings differ from `config` (batch size, world size, arch, loss
    weights, LR: anything but RESUME_FREE_SETTINGS) is refused, naming each difference, unless
    `allow_changes`; one of another arch, class count or head set is refused naming the file and
    the differing keys. Both say how to start afresh. `loaded`: the file's content, when the
    caller has read it already (Checkpoints.newest)."""
    from models.checkpoint import load_file
    ckpt, source = (loaded, path) if loaded is not None else load_file(path)
    if not isinstance(ckpt, dict) or not {"model_state", "optimizer_state", "epoch", "step", "rng_state"} <= set(ckpt):
        raise SystemExit(f"{source}: not a resumable checkpoint of this project (move it away or pass "
                         f"--resume=false to start afresh)")
    saved_config = ckpt.get("config") or {}
    if config is not None and not allow_changes:
        changed = {k: (saved_config.get(k), config.get(k)) for k in sorted(set(config) | set(saved_config))
                   if k not in RESUME_FREE_SETTINGS and saved_config.get(k) != config.get(k)}
        if changed:
            listed = ", ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in list(changed.items())[:10])
            raise SystemExit(f"{source}: the run being resumed had other settings ({listed}); resuming would change "
                             f"it where it stopped. Pass --allow_setting_changes=true to resume anyway, or use "
                             f"another --out_dir / --resume=false to start afresh.")
    own, saved = model.state_dict(), ckpt["model_state"]
    missing = sorted(set(own) - set(saved))
    unexpected = sorted(set(saved) - set(own))
    wrong = sorted(k for k in set(own) & set(saved) if own[k].shape != saved[k].shape)
    if missing or unexpected or wrong:
        raise SystemExit(
            f"{source}: saved by a run with other settings (arch {ckpt.get('model_config', {}).get('arch')!r}); "
            f"keys it lacks: {missing[:5]}, keys the model lacks: {unexpected[:5]}, shapes that differ: {wrong[:5]}. "
            f"Use another --out_dir, or --resume=false to start afresh.")
    model.load_state_dict(saved)
    optimizer.load_state_dict(ckpt["optimizer_state"])
    torch.set_rng_state(ckpt["rng_state"])
    if ckpt.get("cuda_rng_state") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(ckpt["cuda_rng_state"])
    return int(ckpt["epoch"]), int(ckpt["step"])


class Checkpoints:
    """A run's checkpoints in out_dir, written by rank 0:

        checkpoint_epoch{E:04d}_step{S:06d}.pyth   resumable state at the position a resumed run
                                                  starts from (epoch E, after S of its steps);
                                                  the newest `keep` are kept
        best.pyth, best.json                      the epoch-end checkpoint whose evaluation gave
                                                  the best value of the script's main metric
        evaluated.txt                             the epochs whose evaluation finished

    Every file is written atomically (models.checkpoint.save_checkpoint). A resumed run starts
    from the newest checkpoint that reads back; one that does not (truncated, corrupt) is
    skipped with a warning and kept for inspection, never loaded. A checkpoint written at an
    epoch's end whose evaluation had not finished when the run died carries `eval_due`, so the
    resumed run evaluates that epoch before it trains on (`pending_evaluation`)."""

    PATTERN = re.compile(r"checkpoint_epoch(\d+)_step(\d+)\.pyth")

    def __init__(self, out_dir: str, keep: int, log: Callable[[str], None]):
        if keep < 1:
            raise ValueError(f"Checkpoints: keep must be >= 1 (the newest is the one a run resumes from), got {keep}")
        self.out_dir, self.keep, self.log = out_dir, keep, log
        self.best_path = os.path.join(out_dir, "best.pyth")

    def listed(self) -> list[tuple[int, int, str]]:
        """(epoch, step, path) of every checkpoint file, oldest first."""
        if not os.path.isdir(self.out_dir):
            return []
        found = [(int(m[1]), int(m[2]), os.path.join(self.out_dir, name))
                 for name in os.listdir(self.out_dir) if (m := self.PATTERN.fullmatch(name))]
        return sorted(found)

    def save(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, *, epoch: int, step: int,
             steps_per_epoch: int, config: dict, eval_due: int | None = None) -> str:
        """Write the state after `step` steps of `epoch` (save_training_state) and drop the
        oldest beyond `keep`; returns the new file's path. A failed write raises OSError naming
        the path and the cause, with every earlier checkpoint as it was."""
        position = (epoch + 1, 0) if step == steps_per_epoch else (epoch, step)
        path = os.path.join(self.out_dir, f"checkpoint_epoch{position[0]:04d}_step{position[1]:06d}.pyth")
        save_training_state(path, model, optimizer, epoch=epoch, step=step, config=config,
                            steps_per_epoch=steps_per_epoch, eval_due=eval_due)
        for *_, old in self.listed()[:-self.keep]:
            if old != path:
                os.remove(old)
        return path

    def newest(self) -> tuple[dict, str] | None:
        """The newest checkpoint that reads back, as (content, path); None when there is none."""
        from models.checkpoint import load_file
        for *_, path in reversed(self.listed()):
            try:
                ckpt, _ = load_file(path)
            except (ValueError, OSError) as e:
                self.log(f"warning: skipping {path}: it does not read back ({str(e).splitlines()[0][:200]}); "
                         f"resuming from the checkpoint before it")
                continue
            return ckpt, path
        return None

    def resume(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, config: dict,
               allow_changes: bool) -> tuple[int, int, int | None, dict | None]:
        """Restore the newest readable checkpoint into model and optimizer (restore_training_state's
        checks) and say so; returns (epoch, step, the epoch whose evaluation is owed or None,
        {"epoch", "step", "path"} for the log) -- (0, 0, None, None) when there is none."""
        newest = self.newest()
        if newest is None:
            return 0, 0, None, None
        ckpt, path = newest
        epoch, step = restore_training_state(path, model, optimizer, config, allow_changes, loaded=ckpt)
        pending = self.pending_evaluation(ckpt)
        self.log(f"resumed from {path}: epoch {epoch}, step {step}"
                 + (f"; the evaluation of epoch {pending} did not finish and runs first" if pending is not None else ""))
        return epoch, step, pending, {"epoch": epoch, "step": step, "path": path}

    def evaluated(self) -> set[int]:
        path = os.path.join(self.out_dir, "evaluated.txt")
        if not os.path.isfile(path):
            return set()
        with open(path, encoding="utf-8") as f:
            return {int(line) for line in f if line.strip().isdigit()}

    def pending_evaluation(self, ckpt: dict) -> int | None:
        """The epoch whose evaluation a resumed run owes (it died during it), or None."""
        due = ckpt.get("eval_due")
        return None if due is None or int(due) in self.evaluated() else int(due)

    def evaluation_done(self, epoch: int, metric: str | None = None, value: float | None = None,
                        higher_is_better: bool = True) -> bool:
        """Note that `epoch`'s evaluation finished; when `value` beats best.json's, best.pyth
        becomes (a hard link to) that epoch's end checkpoint. Returns whether it is the best."""
        best = False
        source = next((p for e, s, p in self.listed() if (e, s) == (epoch + 1, 0)), None)
        if value is not None and math.isfinite(value) and source is not None:
            record_path = os.path.join(self.out_dir, "best.json")
            previous = None
            if os.path.isfile(record_path):
                with open(record_path, encoding="utf-8") as f:
                    previous = json.load(f)
            old = previous.get("value") if isinstance(previous, dict) and previous.get("metric") == metric else None
            best = old is None or (value > old if higher_is_better else value < old)
            if best:
                tmp = self.best_path + ".tmp"
                if os.path.lexists(tmp):
                    os.remove(tmp)
                try:
                    os.link(source, tmp)  # no copy: the data stays when the source file is rotated out
                except OSError:
                    shutil.copyfile(source, tmp)
                os.replace(tmp, self.best_path)
                _write_atomically(record_path, json.dumps({"metric": metric, "value": value, "epoch": epoch,
                                                           "checkpoint": os.path.basename(source)}) + "\n")
        with open(os.path.join(self.out_dir, "evaluated.txt"), "a", encoding="utf-8") as f:
            f.write(f"{epoch}\n")
            f.flush()
            os.fsync(f.fileno())
        return best


def _write_atomically(path: str, text: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def summarise_epoch(procs: Processes, log: RunLog, epoch: int, stats: dict, seconds: float) -> None:
    """The epoch's mean loss terms, and the samples that failed to load and were replaced,
    counted over every rank (engine.train_one_epoch's stats; never silent)."""
    failed = torch.tensor(len(stats["failed"]))
    if procs.ddp:
        dist.all_reduce(failed)
    log.record("epoch", epoch=epoch, progress=float(epoch + 1), loss=stats["loss"], failed=int(failed),
                   seconds=seconds)
    log(f"epoch {epoch} done in {seconds:.0f}s: mean loss " + " ".join(f"{k} {v:.4f}" for k, v in stats["loss"].items())
        + f"; {int(failed)} samples failed to load and were replaced")
    for message in stats["failed"][:20]:
        log(f"  failed: {message}")


def epoch_loader(dataset, batch_size: int, sampler, **kwargs):
    """The DataLoader of one training epoch. It gets a generator of its own: a DataLoader draws
    its workers' base seed from the global RNG when its iterator starts, and a run resumed
    mid-epoch starts one more iterator than an uninterrupted run, which would shift every
    dropout mask after it. (Augmentation is drawn from (seed, epoch, index), not from it.)"""
    from torch.utils.data import DataLoader
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, drop_last=True,
                      generator=torch.Generator(), **kwargs)
