"""Table-driven ResNet-3D family (Slow, SlowFast, I3D, TSM) with PySlowFast state-dict names.

One builder serves every backbone of the project; an architecture is a row of `ARCHS` (depth,
pathway kinds, clip sampling, SlowFast alpha / fusion kernel, I3D temporal pool, TSM shift).
Module names follow PySlowFast exactly, so released PySlowFast / Ego-Exo `.pyth` checkpoints
load unchanged (see models/checkpoint.py for the head-name mapping):

    s1.pathway{p}_stem.{conv,bn}                      stem: (kt,7,7) conv, BN, ReLU, 1x3x3 max pool
    s1_fuse.{conv_f2s,bn}                             SlowFast lateral Fast->Slow fusion (s1..s4)
    s{2..5}.pathway{p}_res{i}.branch1[_bn]            projection shortcut (first block of a stage)
    s{2..5}.pathway{p}_res{i}.branch2.{a,b,c}[_bn]    bottleneck: (kt,1,1) -> (1,3,3) -> 1x1x1
    pathway{p}_pool                                   temporal max pool after res2 (I3D: 2)
    head.projections.<task>, head.ego_projection, head.object_projection   (models/heads.py)
    interaction_head.{conv,projection}                                    (models/heads.py)

Pathway 0 is the slow (or only) pathway, pathway 1 the fast one.

Forward: `model([slow, fast])` (or `model([x])` for one pathway), each B x 3 x T x H x W float,
returns a dict of logits with only the keys of the heads present:

    "feature"      B x dim       pooled res5 feature (2048 Slow/I3D/TSM, 2304 SlowFast)
    "<task>"       B x K         one per classifier task ("action" for an int num_classes;
                                 e.g. "verb" / "noun" for {"verb": 97, "noun": 300})
    "ego"          B x 2         Ego-Score distillation head
    "object"       B x 1000      Object-Score distillation head
    "interaction"  B x 2 x T x S x S   hand (channel 0) / object (channel 1) map logits on the
                                 slow pathway's res5 (T = slow frames, halved for I3D by its
                                 temporal pool; S = crop / 32, 7 at 224)

`model.forward(x, extra_features=E)` appends B x E per-clip vectors to the pooled feature before
the task classifiers (supp. Table S4 "append"; build with `extra_feature_dim=E`).
`model.input_spec` says how to sample and pack a clip (frames, stride, alpha).

Init follows PySlowFast: MSRA (kaiming normal, fan_out) convs, BN weight 1 / bias 0 except the
last BN of every bottleneck (`branch2.c_bn`), which starts at 0 so each block starts as an
identity; classifier Linears N(0, 0.01) with zero bias.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .heads import ClassificationHead, InteractionHead, check_tasks, new_linear

# Bottleneck blocks in res2..res5.
STAGE_DEPTHS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}

# Temporal kernel of the stem conv and of the first conv ("a") of the blocks of res2..res5, per
# pathway kind. A stage with several entries cycles through them block by block (I3D res3:
# 3, 1, 3, 1). "c2d" is the 2-D ResNet (TSM) written as 3-D convs with temporal kernel 1.
TEMPORAL_KERNELS = {
    "c2d": ((1,), (1,), (1,), (1,), (1,)),
    "slow": ((1,), (1,), (1,), (3,), (3,)),
    "fast": ((5,), (3,), (3,), (3,), (3,)),
    "i3d": ((5,), (3,), (3, 1), (3, 1), (1, 3)),
}

WIDTH = 64  # stem channels; res2..res5 output 256, 512, 1024, 2048 with bottleneck width / 4
BETA_INV = 8  # the fast pathway has 1/8 of the slow pathway's channels
FUSION_CHANNEL_RATIO = 2  # a Fast->Slow lateral carries 2x the fast channels into the slow path
SHIFT_DIV = 8  # TSM shifts 1/8 of the channels each way in time


@dataclass(frozen=True)
class Arch:
    """One row of the architecture table."""

    depth: int
    pathways: tuple[str, ...]  # kinds from TEMPORAL_KERNELS, slow (or only) pathway first
    num_frames: int  # frames sampled per clip (the fast pathway's T for SlowFast)
    sampling_rate: int  # stride between sampled frames, in frames of the source video
    alpha: int = 1  # SlowFast: the slow pathway sees every alpha-th frame
    fusion_kernel: int = 0  # SlowFast: temporal kernel of the Fast->Slow lateral conv
    temporal_pool: int = 1  # temporal max-pool stride after res2 (I3D halves T there)
    temporal_shift: bool = False  # TSM: shift channels in time at the input of every block


ARCHS: dict[str, Arch] = {
    "slow_8x8_r50": Arch(50, ("slow",), num_frames=8, sampling_rate=8),
    "slow_8x8_r101": Arch(101, ("slow",), num_frames=8, sampling_rate=8),
    # ResNet-152 (M_obj's depth): the Object-Score teacher inflated, as an initialisation (Table S4).
    "slow_8x8_r152": Arch(152, ("slow",), num_frames=8, sampling_rate=8),
    "slowfast_4x16_r50": Arch(50, ("slow", "fast"), 32, 2, alpha=8, fusion_kernel=5),
    "slowfast_8x8_r50": Arch(50, ("slow", "fast"), 32, 2, alpha=4, fusion_kernel=7),
    "slowfast_8x8_r101": Arch(101, ("slow", "fast"), 32, 2, alpha=4, fusion_kernel=5),
    "i3d_8x8_r50": Arch(50, ("i3d",), num_frames=8, sampling_rate=8, temporal_pool=2),
    "tsm_r50": Arch(50, ("c2d",), num_frames=8, sampling_rate=8, temporal_shift=True),
}


@dataclass(frozen=True)
class InputSpec:
    """What a model expects as input, so data code needs no table of its own."""

    num_frames: int  # frames sampled per clip
    sampling_rate: int  # stride between them in source frames
    alpha: int | None  # SlowFast: slow pathway keeps every alpha-th frame; None: one pathway

    @property
    def pathway_frames(self) -> tuple[int, ...]:
        """T of each pathway, slow first: (8,) for Slow 8x8, (8, 32) for SlowFast 8x8."""
        if self.alpha is None:
            return (self.num_frames,)
        return (self.num_frames // self.alpha, self.num_frames)

    def pack(self, frames: torch.Tensor) -> list[torch.Tensor]:
        """Split a clip (C x T x H x W or B x C x T x H x W) into the list of pathway inputs.

        The slow pathway takes T // alpha frames at `linspace(0, T-1, T // alpha)`, as
        PySlowFast's pack_pathway_output does."""
        if frames.dim() not in (4, 5):
            raise ValueError(
                f"pack expects C x T x H x W or B x C x T x H x W, got {tuple(frames.shape)}"
            )
        if self.alpha is None:
            return [frames]
        t = frames.shape[-3]
        if t % self.alpha:
            raise ValueError(f"clip has {t} frames, not a multiple of alpha={self.alpha}")
        slow = frames.index_select(-3, slow_frame_index(t, t // self.alpha, frames.device))
        if frames.dim() == 5 and frames.is_contiguous(memory_format=torch.channels_last_3d) \
                and not frames.is_contiguous():
            slow = slow.contiguous(memory_format=torch.channels_last_3d)  # in the layout the network reads
        return [slow, frames]


def slow_frame_index(num_frames: int, slow_frames: int, device=None) -> torch.Tensor:
    """The frames of a num_frames clip that a slow pathway of slow_frames keeps:
    linspace(0, T - 1, T_slow).long(), as PySlowFast packs pathways. The Interaction-Map
    targets, built at the fast pathway's T, are subsampled with the same rule."""
    return torch.linspace(0, num_frames - 1, slow_frames, device=device).long()


def temporal_shift(x: torch.Tensor, shift_div: int = SHIFT_DIV) -> torch.Tensor:
    """TSM shift of a B x C x T x H x W tensor: the first C/shift_div channels take the next
    frame's values, the following C/shift_div the previous frame's; frames shifted in from
    outside the clip are zeros; the other channels are unchanged."""
    fold = x.shape[1] // shift_div
    zeros = x.new_zeros(x.shape[0], fold, 1, *x.shape[3:])
    from_next = torch.cat([x[:, :fold, 1:], zeros], dim=2)
    from_prev = torch.cat([zeros, x[:, fold : 2 * fold, :-1]], dim=2)
    return torch.cat([from_next, from_prev, x[:, 2 * fold :]], dim=1)


def conv3d(c_in: int, c_out: int, kernel, stride=1, padding=0) -> nn.Conv3d:
    """Bias-free Conv3d with MSRA init (PySlowFast c2_msra_fill)."""
    conv = nn.Conv3d(c_in, c_out, kernel, stride=stride, padding=padding, bias=False)
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    return conv


def batchnorm3d(channels: int, zero_init: bool = False) -> nn.BatchNorm3d:
    bn = nn.BatchNorm3d(channels, eps=1e-5, momentum=0.1)
    if zero_init:
        nn.init.zeros_(bn.weight)
    return bn


class Stem(nn.Module):
    """(kt, 7, 7) conv with spatial stride 2, BN, ReLU, then a 1x3x3 max pool with stride 2."""

    def __init__(self, c_in: int, c_out: int, t_kernel: int):
        super().__init__()
        self.conv = conv3d(c_in, c_out, (t_kernel, 7, 7), (1, 2, 2), (t_kernel // 2, 3, 3))
        self.bn = batchnorm3d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.pool_layer = nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool_layer(self.relu(self.bn(self.conv(x))))


class VideoStem(nn.Module):
    """One stem per pathway, named `pathway{p}_stem`."""

    def __init__(self, c_in: int, c_outs: Sequence[int], t_kernels: Sequence[int]):
        super().__init__()
        self.num_pathways = len(c_outs)
        for p, (c_out, kt) in enumerate(zip(c_outs, t_kernels)):
            self.add_module(f"pathway{p}_stem", Stem(c_in, c_out, kt))

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        return [getattr(self, f"pathway{p}_stem")(x) for p, x in enumerate(xs)]


class Bottleneck(nn.Module):
    """(kt,1,1) -> (1,3,3) with the stage's spatial stride -> 1x1x1; BN after each conv."""

    def __init__(self, c_in: int, c_out: int, c_inner: int, t_kernel: int, stride: int):
        super().__init__()
        self.a = conv3d(c_in, c_inner, (t_kernel, 1, 1), 1, (t_kernel // 2, 0, 0))
        self.a_bn = batchnorm3d(c_inner)
        self.a_relu = nn.ReLU(inplace=True)
        self.b = conv3d(c_inner, c_inner, (1, 3, 3), (1, stride, stride), (0, 1, 1))
        self.b_bn = batchnorm3d(c_inner)
        self.b_relu = nn.ReLU(inplace=True)
        self.c = conv3d(c_inner, c_out, 1)
        self.c_bn = batchnorm3d(c_out, zero_init=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.a_relu(self.a_bn(self.a(x)))
        x = self.b_relu(self.b_bn(self.b(x)))
        return self.c_bn(self.c(x))


class ResBlock(nn.Module):
    """Bottleneck residual block; TSM shifts only the residual branch's input."""

    def __init__(
        self, c_in: int, c_out: int, c_inner: int, t_kernel: int, stride: int, shift: bool
    ):
        super().__init__()
        self.shift = shift
        if c_in != c_out or stride != 1:
            self.branch1 = conv3d(c_in, c_out, 1, (1, stride, stride))
            self.branch1_bn = batchnorm3d(c_out)
        else:
            self.branch1 = self.branch1_bn = None
        self.branch2 = Bottleneck(c_in, c_out, c_inner, t_kernel, stride)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.branch1 is None else self.branch1_bn(self.branch1(x))
        residual = self.branch2(temporal_shift(x) if self.shift else x)
        return self.relu(shortcut + residual)


class ResStage(nn.Module):
    """One res stage over all pathways; blocks named `pathway{p}_res{i}`."""

    def __init__(
        self,
        c_ins: Sequence[int],
        c_outs: Sequence[int],
        c_inners: Sequence[int],
        t_kernel_cycles: Sequence[Sequence[int]],
        num_blocks: int,
        stride: int,
        shift: bool,
    ):
        super().__init__()
        self.num_pathways = len(c_ins)
        self.num_blocks = num_blocks
        for p in range(self.num_pathways):
            cycle = t_kernel_cycles[p]
            for i in range(num_blocks):
                block = ResBlock(
                    c_ins[p] if i == 0 else c_outs[p],
                    c_outs[p],
                    c_inners[p],
                    t_kernel=cycle[i % len(cycle)],
                    stride=stride if i == 0 else 1,
                    shift=shift,
                )
                self.add_module(f"pathway{p}_res{i}", block)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        out = []
        for p, x in enumerate(xs):
            for i in range(self.num_blocks):
                x = getattr(self, f"pathway{p}_res{i}")(x)
            out.append(x)
        return out


class FuseFastToSlow(nn.Module):
    """Lateral connection: (k,1,1) conv with temporal stride alpha on the fast pathway, BN,
    ReLU, concatenated to the slow pathway's channels."""

    def __init__(self, c_fast: int, kernel: int, alpha: int):
        super().__init__()
        c_out = c_fast * FUSION_CHANNEL_RATIO
        self.conv_f2s = conv3d(c_fast, c_out, (kernel, 1, 1), (alpha, 1, 1), (kernel // 2, 0, 0))
        self.bn = batchnorm3d(c_out)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        slow, fast = xs
        lateral = self.relu(self.bn(self.conv_f2s(fast)))
        return [torch.cat([slow, lateral], dim=1), fast]


def _to_tasks(num_classes: int | Mapping[str, int] | None) -> dict[str, int]:
    if num_classes is None:
        return {}
    if isinstance(num_classes, Mapping):
        return check_tasks(num_classes)
    return check_tasks({"action": num_classes})


class VideoNet(nn.Module):
    """Backbone of `ARCHS[arch]` plus the heads asked for. Build it with `build_model`."""

    def __init__(
        self,
        arch: str,
        num_classes: int | Mapping[str, int] | None,
        *,
        ego_head: bool = False,
        object_head: bool = False,
        interaction_head: bool = False,
        dropout: float = 0.5,
        extra_feature_dim: int = 0,
    ):
        super().__init__()
        if arch not in ARCHS:
            raise ValueError(f"unknown arch {arch!r}; known: {', '.join(ARCHS)}")
        spec = ARCHS[arch]
        self.arch = arch
        self.num_pathways = len(spec.pathways)
        self.input_spec = InputSpec(
            spec.num_frames, spec.sampling_rate, spec.alpha if self.num_pathways == 2 else None
        )
        fused = self.num_pathways == 2
        ratio = [BETA_INV if kind == "fast" else 1 for kind in spec.pathways]
        kernels = [TEMPORAL_KERNELS[kind] for kind in spec.pathways]

        def widths(c: int) -> list[int]:
            return [c // r for r in ratio]

        def fused_in(c_outs: list[int]) -> list[int]:
            # The slow pathway's next input also carries the Fast->Slow lateral channels.
            return [c_outs[0] + c_outs[1] * FUSION_CHANNEL_RATIO, c_outs[1]] if fused else c_outs

        c_outs = widths(WIDTH)
        self.s1 = VideoStem(3, c_outs, [k[0][0] for k in kernels])
        if fused:
            self.s1_fuse = FuseFastToSlow(c_outs[1], spec.fusion_kernel, spec.alpha)
        c_ins = fused_in(c_outs)
        for stage, num_blocks in enumerate(STAGE_DEPTHS[spec.depth], start=2):
            c_out = WIDTH * 4 * 2 ** (stage - 2)
            c_outs = widths(c_out)
            res = ResStage(
                c_ins,
                c_outs,
                widths(c_out // 4),
                [k[stage - 1] for k in kernels],
                num_blocks,
                stride=1 if stage == 2 else 2,
                shift=spec.temporal_shift,
            )
            self.add_module(f"s{stage}", res)
            if fused and stage < 5:
                fuse = FuseFastToSlow(c_outs[1], spec.fusion_kernel, spec.alpha)
                self.add_module(f"s{stage}_fuse", fuse)
            if stage == 2:
                for p in range(self.num_pathways):
                    k = spec.temporal_pool
                    pool = nn.MaxPool3d((k, 1, 1), stride=(k, 1, 1)) if k > 1 else nn.Identity()
                    self.add_module(f"pathway{p}_pool", pool)
            c_ins = fused_in(c_outs)
        self.feature_dims = tuple(c_outs)

        self.head = ClassificationHead(
            self.feature_dims,
            _to_tasks(num_classes),
            ego_head=ego_head,
            object_head=object_head,
            dropout=dropout,
            extra_dim=extra_feature_dim,
        )
        self.interaction_head = InteractionHead(self.feature_dims[0]) if interaction_head else None

    # ---- heads management ------------------------------------------------------------------

    @property
    def config(self) -> dict:
        """The `build_model` arguments that rebuild this model (saved with checkpoints)."""
        tasks = self.head.tasks
        return {
            "arch": self.arch,
            "num_classes": tasks or None,
            "ego_head": self.head.ego_projection is not None,
            "object_head": self.head.object_projection is not None,
            "interaction_head": self.interaction_head is not None,
            "dropout": self.head.dropout.p,
            "extra_feature_dim": self.head.extra_dim,
        }

    def drop_aux_heads(self) -> None:
        """Remove the ego, object and interaction heads (after pre-training, the backbone plus
        classifier is the drop-in initialisation)."""
        self.head.ego_projection = None
        self.head.object_projection = None
        self.interaction_head = None

    def replace_classifier(
        self,
        num_classes: int | Mapping[str, int] | None,
        extra_feature_dim: int = 0,
        dropout: float | None = None,
    ) -> None:
        """New, freshly initialised task classifiers (a new dataset's classes)."""
        if extra_feature_dim < 0:
            raise ValueError(f"extra_feature_dim must be >= 0, got {extra_feature_dim}")
        if dropout is not None and not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        ref = next(self.parameters())
        dim_in = self.head.dim + extra_feature_dim
        self.head.projections = nn.ModuleDict(
            {
                name: new_linear(dim_in, n).to(device=ref.device, dtype=ref.dtype)
                for name, n in _to_tasks(num_classes).items()
            }
        )
        self.head.extra_dim = extra_feature_dim
        if dropout is not None:
            self.head.dropout.p = dropout

    # ---- forward ---------------------------------------------------------------------------

    def _check_inputs(self, xs) -> None:
        if not isinstance(xs, (list, tuple)) or len(xs) != self.num_pathways:
            raise ValueError(
                f"{self.arch} takes a list of {self.num_pathways} pathway tensor(s) "
                f"(B x 3 x T x H x W), got {type(xs).__name__}"
                + (f" of length {len(xs)}" if isinstance(xs, (list, tuple)) else "")
            )
        for p, x in enumerate(xs):
            if x.dim() != 5 or x.shape[1] != 3:
                raise ValueError(
                    f"{self.arch} pathway {p}: expected B x 3 x T x H x W, got {tuple(x.shape)}"
                )
        if self.num_pathways == 2:
            t_slow, t_fast = xs[0].shape[2], xs[1].shape[2]
            alpha = self.input_spec.alpha
            if t_fast != alpha * t_slow:
                raise ValueError(
                    f"{self.arch}: fast pathway T={t_fast} must be alpha={alpha} x slow T={t_slow}"
                )
            if xs[0].shape[3:] != xs[1].shape[3:]:
                raise ValueError(
                    f"{self.arch}: pathways differ in H x W: "
                    f"{tuple(xs[0].shape[3:])} vs {tuple(xs[1].shape[3:])}"
                )

    def forward_features(self, xs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Backbone only: the res5 map of every pathway, B x C x T x H/32 x W/32."""
        self._check_inputs(xs)
        fused = self.num_pathways == 2
        x = self.s1(list(xs))
        if fused:
            x = self.s1_fuse(x)
        for stage in range(2, 6):
            x = getattr(self, f"s{stage}")(x)
            if fused and stage < 5:
                x = getattr(self, f"s{stage}_fuse")(x)
            if stage == 2:
                x = [getattr(self, f"pathway{p}_pool")(t) for p, t in enumerate(x)]
        return x

    def forward(
        self, xs: Sequence[torch.Tensor], extra_features: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        maps = self.forward_features(xs)
        out = self.head(maps, extra_features)
        if self.interaction_head is not None:
            out["interaction"] = self.interaction_head(maps[0])
        return out


def build_model(
    arch: str,
    num_classes: int | Mapping[str, int] | None = None,
    *,
    ego_head: bool = False,
    object_head: bool = False,
    interaction_head: bool = False,
    dropout: float = 0.5,
    extra_feature_dim: int = 0,
) -> VideoNet:
    """Build `arch` (a key of ARCHS) with the heads asked for.

    num_classes: int -> one task named "action"; dict -> one classifier per task (e.g.
    {"verb": 97, "noun": 300}); None -> no classifier (the pooled "feature" only).
    dropout: 0.5 for plain fine-tuning / the Third-only baseline, 0.0 when pre-training with
    the auxiliary losses. Build under `with torch.device("meta"):` to get shapes, parameter
    counts and FLOPs without allocating weights."""
    return VideoNet(
        arch,
        num_classes,
        ego_head=ego_head,
        object_head=object_head,
        interaction_head=interaction_head,
        dropout=dropout,
        extra_feature_dim=extra_feature_dim,
    )
