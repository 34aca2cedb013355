"""Heads on the shared video backbone (SPEC section 2).

* `ClassificationHead` (state-dict prefix `head.`): global average pool of every pathway's res5
  map, concatenated (2048 Slow, 2304 SlowFast), dropout, then

  - `projections.<task>`: one Linear per task -- `{"action": 400}` for Kinetics, `{"verb": 97,
    "noun": 300}` for EPIC-100 -- whose in-dim also counts the optional appended per-clip
    vectors (`extra_dim`, supp. Table S4 "append");
  - `ego_projection`: Linear(dim, 2), the Ego-Score distillation head (optional);
  - `object_projection`: Linear(dim, 1000), the Object-Score distillation head (optional).

* `InteractionHead` (prefix `interaction_head.`): on the slow pathway's res5 map,
  `conv` = Conv3d(C, 512, (1,3,3), pad (0,1,1)) -> ReLU -> `projection` = Conv3d(512, 2, 1);
  channel 0 is the hand map, channel 1 the object map, B x 2 x T x S x S logits (S = 7 at a 224
  crop).

All outputs are logits: no softmax/sigmoid is applied in eval mode either; the caller chooses
the activation (softmax for Kinetics/EPIC, sigmoid for Charades-Ego).

Pooling note: PySlowFast's test-time head averages over a fixed train-crop window (7x7) with
stride 1, applies softmax per window position and then averages; at a 256 test crop that is a
2x2 grid of windows. Here the pool is always global (the same as PySlowFast at the train crop).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

# Output keys that a task name may not take (they name the other outputs of the model).
RESERVED_OUTPUT_KEYS = ("feature", "ego", "object", "interaction")
EGO_CLASSES = 2  # first-person vs third-person (Ego-Score)
OBJECT_CLASSES = 1000  # ImageNet classes (Object-Score)
INTERACTION_HIDDEN = 512
FC_INIT_STD = 0.01  # PySlowFast MODEL.FC_INIT_STD


def new_linear(dim_in: int, dim_out: int) -> nn.Linear:
    """A classifier Linear initialised as PySlowFast does: N(0, 0.01) weights, zero bias."""
    fc = nn.Linear(dim_in, dim_out, bias=True)
    nn.init.normal_(fc.weight, mean=0.0, std=FC_INIT_STD)
    nn.init.zeros_(fc.bias)
    return fc


def check_tasks(tasks: Mapping[str, int]) -> dict[str, int]:
    """Validate a task -> number-of-classes mapping; returns it as a plain dict."""
    out = {}
    for name, n in tasks.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"task name {name!r} must be a Python identifier (e.g. 'verb')")
        if name in RESERVED_OUTPUT_KEYS:
            raise ValueError(
                f"task name {name!r} clashes with a model output key {RESERVED_OUTPUT_KEYS}"
            )
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"task {name!r}: number of classes must be a positive int, got {n!r}")
        out[name] = n
    return out


class ClassificationHead(nn.Module):
    """Pooled feature -> per-task logits, plus optional Ego-Score / Object-Score heads."""

    def __init__(
        self,
        dims: Sequence[int],
        tasks: Mapping[str, int],
        *,
        ego_head: bool = False,
        object_head: bool = False,
        dropout: float = 0.5,
        extra_dim: int = 0,
    ):
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if extra_dim < 0:
            raise ValueError(f"extra_dim must be >= 0, got {extra_dim}")
        self.dim = sum(dims)
        self.extra_dim = extra_dim
        self.dropout = nn.Dropout(dropout)
        self.projections = nn.ModuleDict(
            {name: new_linear(self.dim + extra_dim, n) for name, n in check_tasks(tasks).items()}
        )
        self.ego_projection = new_linear(self.dim, EGO_CLASSES) if ego_head else None
        self.object_projection = new_linear(self.dim, OBJECT_CLASSES) if object_head else None

    @property
    def tasks(self) -> dict[str, int]:
        return {name: fc.out_features for name, fc in self.projections.items()}

    def forward(
        self, maps: Sequence[torch.Tensor], extra_features: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        # Global average over T, H, W of each pathway, concatenated: slow first, then fast.
        feature = torch.cat([m.mean(dim=(2, 3, 4)) for m in maps], dim=1)
        self._check_extra_features(extra_features, feature.shape[0])
        out = {"feature": feature}
        x = self.dropout(feature)
        if self.projections:
            task_in = x
            if extra_features is not None:
                extra = self.dropout(extra_features.to(x.dtype))
                task_in = torch.cat([x, extra], dim=1)
            for name, fc in self.projections.items():
                out[name] = fc(task_in)
        if self.ego_projection is not None:
            out["ego"] = self.ego_projection(x)
        if self.object_projection is not None:
            out["object"] = self.object_projection(x)
        return out

    def _check_extra_features(self, extra: torch.Tensor | None, batch: int) -> None:
        if extra is None:
            if self.extra_dim and self.projections:
                raise ValueError(
                    f"the classifier was built with extra_dim={self.extra_dim}: forward needs "
                    f"extra_features of shape ({batch}, {self.extra_dim})"
                )
            return
        if not self.extra_dim:
            raise ValueError("extra_features given, but the classifier was built with extra_dim=0")
        if tuple(extra.shape) != (batch, self.extra_dim):
            raise ValueError(
                f"extra_features must have shape ({batch}, {self.extra_dim}), "
                f"got {tuple(extra.shape)}"
            )


class InteractionHead(nn.Module):
    """Hand / object interaction-map logits from the slow pathway's res5 map."""

    def __init__(self, dim_in: int, hidden: int = INTERACTION_HIDDEN):
        super().__init__()
        self.conv = nn.Conv3d(dim_in, hidden, (1, 3, 3), padding=(0, 1, 1), bias=True)
        self.relu = nn.ReLU(inplace=True)
        self.projection = nn.Conv3d(hidden, 2, 1, bias=True)
        # The hidden conv follows the backbone's MSRA init; the scoring conv starts small so
        # the initial maps are ~0 logits (PySlowFast-style classifier init, SPEC section 2).
        nn.init.kaiming_normal_(self.conv.weight, mode="fan_out", nonlinearity="relu")
        nn.init.zeros_(self.conv.bias)
        nn.init.normal_(self.projection.weight, mean=0.0, std=FC_INIT_STD)
        nn.init.zeros_(self.projection.bias)

    def forward(self, res5_slow: torch.Tensor) -> torch.Tensor:
        return self.projection(self.relu(self.conv(res5_slow)))
