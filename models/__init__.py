"""Ego-Exo backbones (ResNet-3D family, PySlowFast key names) and heads.

    model = build_model("slowfast_8x8_r50", 400, ego_head=True, object_head=True,
                        interaction_head=True, dropout=0.0)       # Ego-Exo pre-training
    out = model(model.input_spec.pack(clips))   # dict: feature, action, ego, object, interaction
    model.drop_aux_heads(); model.replace_classifier({"verb": 97, "noun": 300})

See models/resnet3d.py for the architectures and outputs, models/heads.py for the heads and
models/checkpoint.py for loading PySlowFast / Ego-Exo checkpoints and 2-D inflation.
"""
from .checkpoint import (
    InflationReport,
    LoadReport,
    inflate_2d_resnet,
    load_checkpoint,
    load_model,
    read_state_dict,
    save_checkpoint,
)
from .heads import ClassificationHead, InteractionHead
from .resnet3d import ARCHS, Arch, InputSpec, VideoNet, build_model, temporal_shift

__all__ = [
    "ARCHS",
    "Arch",
    "ClassificationHead",
    "InflationReport",
    "InputSpec",
    "InteractionHead",
    "LoadReport",
    "VideoNet",
    "build_model",
    "inflate_2d_resnet",
    "load_checkpoint",
    "load_model",
    "read_state_dict",
    "save_checkpoint",
    "temporal_shift",
]
