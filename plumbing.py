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
import io
import os
import re
import sys
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


def make_log(procs: Processes, out_dir: str | None = None) -> Callable[[str], None]:
    """print() on rank 0, flushed, and appended to out_dir/log.txt when out_dir is given."""
    path = None
    if out_dir and procs.is_main:
        os.makedirs(out_dir, exist_ok=True)
        path = os.path.join(out_dir, "log.txt")

    def log(message: str) -> None:
        if not procs.is_main:
            return
        print(message, flush=True)
        if path:
            with open(path, "a", encoding="utf-8") as f:
                f.write(message + "\n")
    return log


def video_shard(num_videos: int, views: int, procs: Processes) -> list[int]:
    """This rank's evaluation samples: every view of the videos rank, rank + world, ... so no
    video is split across ranks (its views are combined where they were scored)."""
    return [v * views + k for v in range(procs.rank, num_videos, procs.world_size) for k in range(views)]


# ----------------------------------------------------------------------------- checkpoints


def save_training_state(path: str, model: torch.nn.Module, optimizer: torch.optim.Optimizer, *,
                        epoch: int, step: int, config: dict, steps_per_epoch: int | None = None) -> None:
    """Everything a resumed run needs (weights, optimiser, position, the CPU and CUDA RNG that
    dropout draws from), written atomically. `step` counts the epoch's steps done; at
    steps_per_epoch the position is the next epoch's start."""
    from models.checkpoint import save_checkpoint
    if step == steps_per_epoch:
        epoch, step = epoch + 1, 0
    cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else []
    save_checkpoint(path, model, optimizer_state=optimizer.state_dict(), epoch=epoch, step=step,
                    rng_state=torch.get_rng_state(), cuda_rng_state=cuda_rng, config=config)


# Settings a resumed run may change freely: they do not change what the run computes.
RESUME_FREE_SETTINGS = ("resume", "allow_setting_changes", "log_every", "num_workers", "eval_every",
                        "checkpoint_every", "out_dir", "device")


def restore_training_state(path: str, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                           config: dict | None = None, allow_changes: bool = False) -> tuple[int, int]:
    """Load a `save_training_state` file into `model` and `optimizer`; returns (epoch, step).

    A checkpoint whose settings differ from `config` (batch size, world size, arch, loss
    weights, LR: anything but RESUME_FREE_SETTINGS) is refused, naming each difference, unless
    `allow_changes`; one of another arch, class count or head set is refused naming the file and
    the differing keys. Both say how to start afresh."""
    from models.checkpoint import load_file
    ckpt, source = load_file(path)
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


def summarise_epoch(procs: Processes, log: Callable[[str], None], epoch: int, stats: dict, seconds: float) -> None:
    """The epoch's mean loss terms, and the samples that failed to load and were replaced,
    counted over every rank (engine.train_one_epoch's stats; never silent)."""
    failed = torch.tensor(len(stats["failed"]))
    if procs.ddp:
        dist.all_reduce(failed)
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
