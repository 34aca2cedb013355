"""Checkpoints for `models.resnet3d.VideoNet`: load released weights, save / restore our own,
and inflate 2-D ImageNet ResNets into 3-D backbones.

Accepted inputs of `load_checkpoint`:

* a PySlowFast or Ego-Exo `.pyth` file (a dict whose `model_state` is the state dict);
* this project's checkpoints (`save_checkpoint`: `model_state` + `model_config` + extras);
* a plain state dict, or a path to one;
* a PySlowFast Caffe2 zoo `.pkl` (`{"blobs": {c2 name: array}}`), whose blob names are
  converted to PySlowFast's (`caffe2_to_pyslowfast`); a pickle runs code when it is read, so
  it loads only with `trusted=True`.

Backbone keys are PySlowFast's and load as they are. Head names are mapped onto this project's
canonical layout (see models/heads.py):

    module.<key>                          -> <key>        (DataParallel / DDP wrapper)
    head<TASK>.<...>                      -> head.<...>   (Ego-Exo names the head "head" + cfg.TASK)
    head.projection.*                     -> head.projections.<the model's only task>.*
    head.projections.<i>.*  (Ego-Exo MultiTaskHead, a list: [task] + KD heads in the KD models,
                             [task, task, ...] in the multi-task (EPIC) models)
        i > 0 and output size 2           -> head.ego_projection.*
        i > 0 and output size 1000        -> head.object_projection.*
        otherwise, i < number of tasks    -> head.projections.<i-th task of the model>.*
        (or give `projection_names` to name the list entries explicitly, e.g. for a
        multi-task list with a 2- or 1000-way task after the first)
    handobjhead.pathway0_conv_fcn0.*      -> interaction_head.conv.*
    handobjhead.score_projection.*        -> interaction_head.projection.*
    headobjhead.*                         -> handobjhead.* (older Ego-Exo spelling, then as above)

A head whose shape differs from the model's (a new dataset's classes) is re-initialised and
reported; a backbone shape mismatch is an error (wrong arch), and so are backbone keys that
the checkpoint lacks or the model does not have (foreign key names would otherwise load
nothing and leave random weights), unless `allow_partial=True`. BatchNorm `num_batches_tracked`
counters are not reported as missing: they are bookkeeping, not weights.
"""
from __future__ import annotations

import logging
import os
import pickle
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .heads import FC_INIT_STD
from .resnet3d import VideoNet, build_model

log = logging.getLogger(__name__)

# Prefixes of the auxiliary (pre-training only) heads in the canonical layout.
AUX_HEAD_PREFIXES = ("head.ego_projection.", "head.object_projection.", "interaction_head.")
# Prefixes of every head: their shapes may legitimately differ from a checkpoint's.
HEAD_PREFIXES = ("head.", "interaction_head.")
# Output size of a KD head -> its canonical name (Ego-Exo's MultiTaskHead list entries).
KD_HEAD_BY_CLASSES = {2: "ego_projection", 1000: "object_projection"}
# Fixed renames of the Ego-Exo interaction head ("hand-object head").
INTERACTION_RENAMES = (
    ("handobjhead.pathway0_conv_fcn0.", "interaction_head.conv."),
    ("handobjhead.score_projection.", "interaction_head.projection."),
)


@dataclass
class LoadReport:
    """What `load_checkpoint` did. Keys are the model's (canonical) names unless noted."""

    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # model keys left at their current values
    unexpected: list[str] = field(default_factory=list)  # checkpoint keys (after renaming) unused
    reinitialised: list[str] = field(default_factory=list)  # head modules whose shape differed
    skipped: list[str] = field(default_factory=list)  # aux-head keys dropped on request
    renamed: dict[str, str] = field(default_factory=dict)  # checkpoint key -> model key


@dataclass
class InflationReport:
    """What `inflate_2d_resnet` did."""

    inflated: list[str] = field(default_factory=list)  # model keys filled from the 2-D net
    unmatched: dict[str, str] = field(default_factory=dict)  # 2-D key -> why it was not used
    not_filled: list[str] = field(default_factory=list)  # pathway-0 backbone keys left as they were


# ---- reading ------------------------------------------------------------------------------


def load_file(path: str | os.PathLike, trusted: bool = False) -> tuple[object, str]:
    """torch.load a checkpoint file on the CPU; returns (object, path for messages).

    `trusted=True` lets torch.load unpickle arbitrary objects (only for files you trust);
    the default loads tensors and plain containers only."""
    source = str(path)
    if not Path(source).is_file():
        raise FileNotFoundError(f"checkpoint not found: {source}")
    try:
        return torch.load(source, map_location="cpu", weights_only=not trusted), source
    except Exception as e:  # torch raises several types for corrupt or unpicklable content
        raise ValueError(
            f"{source}: cannot be read as a torch checkpoint ({e}); if it is a trusted file "
            "holding non-tensor objects, pass trusted=True"
        ) from e


def read_state_dict(
    path_or_state: str | os.PathLike | Mapping, *, trusted: bool = False
) -> tuple[dict[str, torch.Tensor], str]:
    """The state dict inside a checkpoint file / dict, and a name for messages (see
    `load_file` for `trusted`)."""
    if isinstance(path_or_state, (str, os.PathLike)) and os.fspath(path_or_state).endswith(".pkl"):
        return read_caffe2_pickle(path_or_state, trusted=trusted)
    if isinstance(path_or_state, (str, os.PathLike)):
        obj, source = load_file(path_or_state, trusted)
    else:
        source, obj = "<state dict>", path_or_state
    if not isinstance(obj, Mapping):
        raise ValueError(f"{source}: expected a dict, got {type(obj).__name__}")
    if "model_state" in obj:
        state = obj["model_state"]
    elif obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        state = obj
    else:
        raise ValueError(
            f"{source}: neither a checkpoint with 'model_state' nor a plain state dict "
            f"(top-level keys: {sorted(obj)[:8]})"
        )
    if not isinstance(state, Mapping):
        raise ValueError(f"{source}: 'model_state' is a {type(state).__name__}, expected a dict")
    return dict(state), source


# Caffe2 blob name -> PySlowFast name, tried in order (the first match wins). Pathway 1 (fast)
# blobs carry a `t_` prefix; the Fast->Slow laterals are named after the fast block they leave.
# BatchNorm blobs: _s scale, _b bias, _rm running mean, _riv running variance.
_C2_RULES = (
    (r"t_pool1_subsample_bn_(s|b|rm|riv)", r"s1_fuse.bn.\1"),
    (r"t_pool1_subsample_(w|b)", r"s1_fuse.conv_f2s.\1"),
    (r"t_res(\d)_\d+_branch2c_bn_subsample_bn_(s|b|rm|riv)", r"s\1_fuse.bn.\2"),
    (r"t_res(\d)_\d+_branch2c_bn_subsample_(w|b)", r"s\1_fuse.conv_f2s.\2"),
    (r"(t_)?conv1_(w|b)", r"s1.pathway{p}_stem.conv.\2"),
    (r"(t_)?res_conv1_bn_(s|b|rm|riv)", r"s1.pathway{p}_stem.bn.\2"),
    (r"(t_)?res(\d)_(\d+)_branch2([abc])_bn_(s|b|rm|riv)", r"s\2.pathway{p}_res\3.branch2.\4_bn.\5"),
    (r"(t_)?res(\d)_(\d+)_branch2([abc])_(w|b)", r"s\2.pathway{p}_res\3.branch2.\4.\5"),
    (r"(t_)?res(\d)_(\d+)_branch1_bn_(s|b|rm|riv)", r"s\2.pathway{p}_res\3.branch1_bn.\4"),
    (r"(t_)?res(\d)_(\d+)_branch1_(w|b)", r"s\2.pathway{p}_res\3.branch1.\4"),
    (r"pred_(w|b)", r"head.projection.\1"),
)
_C2_PARAM = {"w": "weight", "b": "bias", "s": "weight", "rm": "running_mean", "riv": "running_var"}
# Solver state and bookkeeping in the zoo files, not weights.
_C2_SKIP = re.compile(r".*_momentum$|^lr$|^model_iter$|.*_(rm|riv)_momentum$")


def caffe2_to_pyslowfast(blobs: Mapping[str, object], source: str = "<blobs>") -> dict[str, torch.Tensor]:
    """A Caffe2 zoo file's blobs renamed to PySlowFast state-dict keys (numpy -> tensors).
    A blob that no rule names is an error listing them, so a file of another layout is never
    half-loaded in silence."""
    out, unknown = {}, []
    for name, value in blobs.items():
        if _C2_SKIP.match(name):
            continue
        for pattern, template in _C2_RULES:
            m = re.fullmatch(pattern, name)
            if m is None:
                continue
            pathway = 1 if name.startswith("t_") else 0
            key = m.expand(template.replace("{p}", str(pathway)))
            stem, _, param = key.rpartition(".")
            out[f"{stem}.{_C2_PARAM[param]}"] = torch.as_tensor(value).clone()
            break
        else:
            unknown.append(name)
    if unknown:
        raise ValueError(f"{source}: {len(unknown)} Caffe2 blob(s) with no PySlowFast name: {sorted(unknown)[:20]}")
    return out


def read_caffe2_pickle(path: str | os.PathLike, *, trusted: bool = False) -> tuple[dict[str, torch.Tensor], str]:
    """(state dict, path) of a PySlowFast Caffe2 zoo `.pkl` (a pickled `{"blobs": {...}}`)."""
    source = os.fspath(path)
    if not trusted:
        raise ValueError(f"{source}: a Caffe2 .pkl is a pickle, and reading a pickle runs the code it holds; "
                         f"pass trusted=True (train_finetune.py --trust_pickle=true) for a file you trust")
    if not os.path.isfile(source):
        raise FileNotFoundError(f"checkpoint not found: {source}")
    try:
        with open(source, "rb") as f:
            blob = pickle.load(f, encoding="latin1")  # Python-2 pickles of numpy arrays
    except Exception as e:  # pickle raises many types for a bad file; all mean "unreadable"
        raise ValueError(f"{source}: not a readable Caffe2 pickle ({e})") from e
    if not isinstance(blob, Mapping) or not isinstance(blob.get("blobs"), Mapping):
        raise ValueError(f"{source}: expected a pickled dict with a 'blobs' dict (PySlowFast Caffe2 zoo layout)")
    return caffe2_to_pyslowfast(blob["blobs"], source), source


# ---- key mapping --------------------------------------------------------------------------


def _strip_wrappers(key: str) -> str:
    while key.startswith("module."):
        key = key[len("module.") :]
    if key.startswith("headobjhead."):  # before the next rule, which would also match it
        key = "handobjhead." + key[len("headobjhead.") :]
    key = re.sub(r"^head[^.]+\.", "head.", key)  # "headcharades-ego." -> "head."
    for old, new in INTERACTION_RENAMES:
        if key.startswith(old):
            key = new + key[len(old) :]
    return key


def canonical_state_dict(
    state: Mapping[str, torch.Tensor],
    model: VideoNet,
    projection_names: Sequence[str] | None = None,
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Rename a PySlowFast / Ego-Exo / own state dict onto `model`'s key layout.

    projection_names: names for Ego-Exo's `head.projections.<i>` list entries, in order, each
    a task of the model or "ego" / "object"; by default entries after the first are KD heads
    when their size says so (2 / 1000), else the model's tasks in order (module docstring).
    Returns the renamed dict and {old key: new key} for changed keys."""
    tasks = list(model.head.tasks)
    by_index: dict[str, str] = {}
    if projection_names is not None:
        for i, name in enumerate(projection_names):
            by_index[str(i)] = {"ego": "ego_projection", "object": "object_projection"}.get(
                name, f"projections.{name}"
            )
    out: dict[str, torch.Tensor] = {}
    renamed: dict[str, str] = {}
    for old_key, value in state.items():
        key = _strip_wrappers(old_key)
        m = re.match(r"^head\.projection\.(weight|bias)$", key)
        if m and len(tasks) == 1:
            key = f"head.projections.{tasks[0]}.{m.group(1)}"
        m = re.match(r"^head\.projections\.(\d+)\.(weight|bias)$", key)
        if m:
            index, param = m.groups()
            if index in by_index:
                key = f"head.{by_index[index]}.{param}"
            elif projection_names is None:
                # Entry 0 is always a task head; a KD entry is recognised by its size before
                # the model's task count is consulted, so a K400 [action, ego, object] list
                # loaded into a verb/noun model does not put the Ego-Score head on "noun".
                i = int(index)
                if i > 0 and value.shape[0] in KD_HEAD_BY_CLASSES:
                    key = f"head.{KD_HEAD_BY_CLASSES[value.shape[0]]}.{param}"
                elif i < len(tasks):
                    key = f"head.projections.{tasks[i]}.{param}"
        if key in out:
            raise ValueError(f"two checkpoint keys map onto {key!r} (the second is {old_key!r})")
        out[key] = value
        if key != old_key:
            renamed[old_key] = key
    return out, renamed


# ---- loading ------------------------------------------------------------------------------


def _reinit_head_module(name: str, module: nn.Module) -> None:
    """Fresh head init, as at construction: the interaction head's hidden conv MSRA, every
    scoring layer N(0, 0.01); zero biases."""
    if name == "interaction_head.conv":
        nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
    else:
        nn.init.normal_(module.weight, mean=0.0, std=FC_INIT_STD)
    if module.bias is not None:
        nn.init.zeros_(module.bias)


def load_checkpoint(
    model: VideoNet,
    path_or_state: str | os.PathLike | Mapping,
    *,
    skip_aux_heads: bool = False,
    projection_names: Sequence[str] | None = None,
    trusted: bool = False,
    allow_partial: bool = False,
) -> LoadReport:
    """Load weights into `model` (in place) from any accepted checkpoint; see module docstring.

    skip_aux_heads: ignore the checkpoint's ego / object / interaction heads (the model's own
    stay as they are). allow_partial: load the backbone tensors that match and leave the rest
    (otherwise a backbone key missing on either side is an error naming them, and nothing is
    loaded). Returns a LoadReport, also logged."""
    state, source = read_state_dict(path_or_state, trusted=trusted)
    state, renamed = canonical_state_dict(state, model, projection_names)
    own = model.state_dict()
    report = LoadReport(renamed=renamed)
    to_load: dict[str, torch.Tensor] = {}
    reinit: set[str] = set()
    for key, value in state.items():
        if skip_aux_heads and key.startswith(AUX_HEAD_PREFIXES):
            report.skipped.append(key)
        elif key not in own:
            report.unexpected.append(key)
        elif value.shape != own[key].shape:
            if not key.startswith(HEAD_PREFIXES):
                raise ValueError(
                    f"{source}: {key} has shape {tuple(value.shape)} in the checkpoint but "
                    f"{tuple(own[key].shape)} in the model ({model.arch}); wrong arch?"
                )
            reinit.add(key.rsplit(".", 1)[0])
        else:
            to_load[key] = value
    # A head is re-initialised as a whole, even if only one of its tensors mismatched.
    to_load = {k: v for k, v in to_load.items() if k.rsplit(".", 1)[0] not in reinit}
    if not allow_partial:
        lacking = sorted(k for k in own if k not in to_load and not k.startswith(HEAD_PREFIXES)
                         and not k.endswith("num_batches_tracked"))
        foreign = sorted(k for k in report.unexpected if not k.startswith(HEAD_PREFIXES))
        if lacking or foreign:
            raise ValueError(
                f"{source}: does not fit the {model.arch} backbone: {len(lacking)} backbone key(s) missing from "
                f"the checkpoint {lacking[:10]}{' ...' if len(lacking) > 10 else ''}, {len(foreign)} checkpoint "
                f"key(s) the model does not have {foreign[:10]}{' ...' if len(foreign) > 10 else ''}; wrong arch "
                f"or key names? Pass allow_partial=True (--allow_partial_load=true) to load only what matches")
    model.load_state_dict(to_load, strict=False)
    modules = dict(model.named_modules())
    for name in sorted(reinit):
        _reinit_head_module(name, modules[name])
    report.reinitialised = sorted(reinit)
    report.loaded = sorted(to_load)
    report.missing = sorted(
        k for k in own if k not in to_load and not k.endswith("num_batches_tracked")
    )
    log.info("%s: loaded %d tensors into %s", source, len(to_load), model.arch)
    for name in report.reinitialised:
        log.warning("%s: %s has a different shape in the checkpoint: re-initialised", source, name)
    if report.missing:
        log.warning(
            "%s: %d model keys not in the checkpoint: %s",
            source, len(report.missing), report.missing,
        )
    if report.unexpected:
        log.warning(
            "%s: %d checkpoint keys unused: %s", source, len(report.unexpected), report.unexpected
        )
    if report.skipped:
        log.info("%s: skipped %d auxiliary-head keys", source, len(report.skipped))
    return report


# ---- this project's checkpoints -----------------------------------------------------------


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (full disk, quota, permissions); the message names the
    file and the cause, and the file it would have replaced is unchanged."""


def save_checkpoint(path: str | os.PathLike, model: VideoNet, **extra) -> None:
    """Write `{"model_state", "model_config", **extra}` (extra: epoch, optimizer_state, ...).

    The layout is PySlowFast's (`model_state`), so PySlowFast tools read it too. Written
    atomically: to a temporary file beside it, flushed and fsync'ed, renamed over `path`, and
    the folder fsync'ed, so a crash or a kill leaves either the old file or the new one, never
    half of one. A failed write (a full disk, a quota) removes the temporary file, leaves `path`
    as it was, and raises CheckpointWriteError (an OSError) naming the path and the cause."""
    clash = {"model_state", "model_config"} & set(extra)
    if clash:
        raise ValueError(f"save_checkpoint: reserved keys passed as extras: {sorted(clash)}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save({"model_state": model.state_dict(), "model_config": model.config, **extra}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:  # also KeyboardInterrupt: never leave the temporary file behind
        tmp.unlink(missing_ok=True)
        if isinstance(e, (OSError, RuntimeError)):  # torch.save reports a failed write as RuntimeError
            cause = getattr(e, "strerror", None) or str(e).splitlines()[0]
            raise CheckpointWriteError(f"cannot write checkpoint {path}: {cause} (is the disk full?); "
                          f"{'the previous ' + path.name + ' is unchanged' if path.exists() else 'nothing was written'}"
                          ) from e
        raise
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)  # the rename itself survives a power cut
    finally:
        os.close(fd)


def load_model(
    path_or_checkpoint: str | os.PathLike | Mapping, *, trusted: bool = False
) -> tuple[VideoNet, dict]:
    """Rebuild a model saved by `save_checkpoint` and load its weights exactly.

    Returns (model, checkpoint dict) so callers can read the extras (epoch, ...);
    `trusted=True` for extras that are not tensors / plain containers (see `load_file`)."""
    if isinstance(path_or_checkpoint, (str, os.PathLike)):
        ckpt, source = load_file(path_or_checkpoint, trusted)
    else:
        source, ckpt = "<checkpoint dict>", path_or_checkpoint
    if not isinstance(ckpt, Mapping) or "model_config" not in ckpt:
        raise ValueError(
            f"{source}: no 'model_config' -- not saved by save_checkpoint; build the model with "
            "build_model(...) and use load_checkpoint instead"
        )
    model = build_model(**ckpt["model_config"])
    model.load_state_dict(ckpt["model_state"], strict=True)
    return model, dict(ckpt)


# ---- 2-D -> 3-D inflation -----------------------------------------------------------------


def _resnet2d_key_to_3d(key: str) -> str | None:
    """torchvision ResNet key -> PySlowFast pathway-0 key, or None if it has no counterpart."""
    if key.startswith("conv1."):
        return "s1.pathway0_stem.conv." + key[len("conv1.") :]
    if key.startswith("bn1."):
        return "s1.pathway0_stem.bn." + key[len("bn1.") :]
    m = re.match(r"^layer(\d)\.(\d+)\.(.+)$", key)
    if not m:
        return None
    layer, block, rest = int(m.group(1)), m.group(2), m.group(3)
    prefix = f"s{layer + 1}.pathway0_res{block}."
    for old, new in (
        ("conv1.", "branch2.a."),
        ("bn1.", "branch2.a_bn."),
        ("conv2.", "branch2.b."),
        ("bn2.", "branch2.b_bn."),
        ("conv3.", "branch2.c."),
        ("bn3.", "branch2.c_bn."),
        ("downsample.0.", "branch1."),
        ("downsample.1.", "branch1_bn."),
    ):
        if rest.startswith(old):
            return prefix + new + rest[len(old) :]
    return None


@torch.no_grad()
def inflate_2d_resnet(
    model: VideoNet, resnet2d_state_dict: Mapping[str, torch.Tensor]
) -> InflationReport:
    """Fill `model`'s pathway-0 backbone from a torchvision 2-D ResNet-50/101 state dict.

    Every k_h x k_w kernel is repeated over the 3-D conv's temporal size kt and divided by kt,
    so a clip of identical frames gives the 2-D activations (away from the clip's ends, where
    temporal zero padding sees fewer frames); BatchNorm is copied. The 2-D `fc` and any key
    whose shape does not fit (e.g. SlowFast's fused slow inputs) are reported, not loaded."""
    own = model.state_dict()
    report = InflationReport()
    for key2d, value in resnet2d_state_dict.items():
        key2d = key2d[len("module.") :] if key2d.startswith("module.") else key2d
        key3d = _resnet2d_key_to_3d(key2d)
        if key3d is None:
            report.unmatched[key2d] = "no 3-D counterpart (classifier or unknown layer)"
            continue
        if key3d not in own:
            report.unmatched[key2d] = f"{key3d} is not in {model.arch}"
            continue
        target = own[key3d]
        if value.dim() == 4 and target.dim() == 5:
            kt = target.shape[2]
            if value.shape != target.shape[:2] + target.shape[3:]:
                report.unmatched[key2d] = (
                    f"shape {tuple(value.shape)} does not fit {key3d} {tuple(target.shape)}"
                )
                continue
            value = value.unsqueeze(2).repeat(1, 1, kt, 1, 1) / kt
        elif value.shape != target.shape:
            report.unmatched[key2d] = (
                f"shape {tuple(value.shape)} does not fit {key3d} {tuple(target.shape)}"
            )
            continue
        target.copy_(value)
        report.inflated.append(key3d)
    filled = set(report.inflated)
    backbone_keys = [k for k in own if re.match(r"^s[1-5]\.pathway0_", k)]
    report.not_filled = sorted(k for k in backbone_keys if k not in filled)
    log.info(
        "inflated %d tensors into %s; %d 2-D keys unused, %d pathway-0 keys not filled",
        len(report.inflated), model.arch, len(report.unmatched), len(report.not_filled),
    )
    return report
