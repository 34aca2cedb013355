"""Checkpoint loading (PySlowFast / Ego-Exo layouts), own save/load, 2-D -> 3-D inflation."""
import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from models import build_model, inflate_2d_resnet, load_checkpoint, load_model, save_checkpoint

# Canonical key prefix -> the prefix the Ego-Exo release uses (HandObjKdSlowFastHSlow).
EGO_EXO_RELEASE_PREFIXES = {
    "head.projections.action.": "head.projections.0.",
    "head.ego_projection.": "head.projections.1.",
    "head.object_projection.": "head.projections.2.",
    "interaction_head.conv.": "handobjhead.pathway0_conv_fcn0.",
    "interaction_head.projection.": "handobjhead.score_projection.",
}


ALL_AUX_HEADS = {"ego_head": True, "object_head": True, "interaction_head": True}


def rename(state, prefixes, wrapper=""):
    out = {}
    for key, value in state.items():
        for ours, theirs in prefixes.items():
            if key.startswith(ours):
                key = theirs + key[len(ours) :]
                break
        out[wrapper + key] = value
    return out


def perturbed(state, seed=1):
    """Same keys and shapes, different float values, so a load is visible."""
    g = torch.Generator().manual_seed(seed)
    return {
        k: v + torch.randn(v.shape, generator=g) if v.is_floating_point() else v.clone()
        for k, v in state.items()
    }


def assert_loaded(model, state, keys):
    own = model.state_dict()
    for key in keys:
        assert torch.equal(own[key], state[key]), key


@pytest.fixture(scope="module")
def release_state():
    """A synthetic Ego-Exo K400 pre-training checkpoint (SlowFast 8x8 R50, all heads, DDP)."""
    torch.manual_seed(0)
    model = build_model("slowfast_8x8_r50", 400, **ALL_AUX_HEADS, dropout=0.0)
    canonical = perturbed(model.state_dict())
    release = rename(canonical, EGO_EXO_RELEASE_PREFIXES, wrapper="module.")
    return canonical, {"model_state": release, "epoch": 200, "cfg": "MODEL:\n  ARCH: slowfast\n"}


def test_ego_exo_release_layout_loads_completely(release_state):
    canonical, release = release_state
    assert "module.head.projections.2.weight" in release["model_state"]
    assert "module.handobjhead.score_projection.weight" in release["model_state"]
    model = build_model("slowfast_8x8_r50", 400, **ALL_AUX_HEADS)
    report = load_checkpoint(model, release)
    assert report.missing == [] and report.unexpected == [] and report.reinitialised == []
    assert report.renamed["module.head.projections.1.bias"] == "head.ego_projection.bias"
    assert_loaded(model, canonical, canonical)


def test_release_into_fine_tuning_model(release_state):
    # Charades-Ego fine-tuning: no aux heads, 157 classes -> backbone loads, classifier re-inits.
    canonical, release = release_state
    model = build_model("slowfast_8x8_r50", 157)
    report = load_checkpoint(model, release)
    assert report.reinitialised == ["head.projections.action"]
    assert sorted(report.unexpected) == sorted(
        k for k in canonical if k.startswith(("head.ego", "head.object", "interaction_head"))
    )
    assert report.missing == ["head.projections.action.bias", "head.projections.action.weight"]
    backbone = [k for k in canonical if not k.startswith(("head.", "interaction_head."))]
    assert_loaded(model, canonical, backbone)
    fc = model.head.projections["action"]
    assert torch.all(fc.bias == 0) and fc.weight.std().item() == pytest.approx(0.01, rel=0.1)


def test_release_into_multitask_model_keeps_kd_heads_apart(release_state):
    # K400 release list [action 400, ego 2, object 1000] into an EPIC verb/noun model: entry 1
    # is the Ego-Score head (it loads into the model's ego head), not the noun classifier.
    canonical, release = release_state
    model = build_model(
        "slowfast_8x8_r50", {"verb": 97, "noun": 300}, ego_head=True, interaction_head=True
    )
    report = load_checkpoint(model, release)
    assert report.reinitialised == ["head.projections.verb"]
    assert report.renamed["module.head.projections.1.weight"] == "head.ego_projection.weight"
    assert sorted(report.unexpected) == [f"head.object_projection.{p}" for p in ("bias", "weight")]
    assert report.missing == [
        f"head.projections.{task}.{p}" for task in ("noun", "verb") for p in ("bias", "weight")
    ]
    kd_and_maps = [k for k in canonical if k.startswith(("head.ego", "interaction"))]
    assert_loaded(model, canonical, kd_and_maps)


def test_reinit_replaces_previously_trained_classifier(release_state):
    canonical, release = release_state
    model = build_model("slowfast_8x8_r50", 157)
    with torch.no_grad():
        model.head.projections["action"].bias.fill_(3.0)
    load_checkpoint(model, release)
    assert torch.all(model.head.projections["action"].bias == 0)


def test_skip_aux_heads_keeps_the_models_own(release_state):
    canonical, release = release_state
    torch.manual_seed(5)
    model = build_model("slowfast_8x8_r50", 400, ego_head=True, interaction_head=True)
    before = {
        k: v.clone()
        for k, v in model.state_dict().items()
        if k.startswith(("head.ego", "interaction_head"))
    }
    report = load_checkpoint(model, release, skip_aux_heads=True)
    assert len(report.skipped) == 8  # ego, object, interaction conv + projection: weight + bias
    assert report.unexpected == [] and report.missing == sorted(before)
    assert_loaded(model, before, before)
    assert_loaded(
        model, canonical, ["head.projections.action.weight", "s5.pathway1_res2.branch2.c.weight"]
    )


def test_epic_multitask_release_layout():
    # HandObjMultiTaskSlowFastHSlow: head.projections.0/1 = verb/noun, plus the hand-object head.
    torch.manual_seed(0)
    source = build_model("slow_8x8_r50", {"verb": 97, "noun": 300}, interaction_head=True)
    canonical = perturbed(source.state_dict())
    release = rename(
        canonical,
        {
            "head.projections.verb.": "head.projections.0.",
            "head.projections.noun.": "head.projections.1.",
            "interaction_head.conv.": "headobjhead.pathway0_conv_fcn0.",  # older spelling
            "interaction_head.projection.": "handobjhead.score_projection.",
        },
    )
    model = build_model("slow_8x8_r50", {"verb": 97, "noun": 300}, interaction_head=True)
    report = load_checkpoint(model, release)
    assert report.missing == [] and report.unexpected == [] and report.reinitialised == []
    assert_loaded(model, canonical, canonical)


def test_plain_pyslowfast_layout_and_task_named_head(tmp_path):
    # PySlowFast: head.projection; Ego-Exo fine-tuning configs name the head "head" + TASK.
    torch.manual_seed(0)
    source = build_model("slow_8x8_r50", 157)
    canonical = perturbed(source.state_dict())
    for prefix in ("head.projection.", "headcharades-ego.projection."):
        state = rename(canonical, {"head.projections.action.": prefix})
        path = tmp_path / "ckpt.pyth"
        torch.save({"model_state": state, "epoch": 60, "cfg": "TASK: charades-ego\n"}, path)
        model = build_model("slow_8x8_r50", 157)
        report = load_checkpoint(model, path)
        assert report.missing == [] and report.unexpected == [], prefix
        assert_loaded(model, canonical, canonical)


def test_projection_names_override():
    torch.manual_seed(0)
    model = build_model("tsm_r50", 2, object_head=True)
    state = perturbed(model.state_dict())
    # A list whose first entry is the Object-Score head and second the 2-way task head.
    release_order = {
        "head.object_projection.": "head.projections.0.",
        "head.projections.action.": "head.projections.1.",
    }
    state = rename(state, release_order)
    fresh = build_model("tsm_r50", 2, object_head=True)
    report = load_checkpoint(fresh, state, projection_names=["object", "action"])
    assert report.missing == [] and report.unexpected == []
    assert torch.equal(fresh.head.object_projection.weight, state["head.projections.0.weight"])


def test_backbone_shape_mismatch_is_an_error():
    torch.manual_seed(0)
    state = build_model("tsm_r50", None).state_dict()
    model = build_model("i3d_8x8_r50", None)  # temporal kernel 5 stem vs TSM's 1
    expected = r"s1\.pathway0_stem\.conv\.weight has shape \(64, 3, 1, 7, 7\)"
    with pytest.raises(ValueError, match=expected):
        load_checkpoint(model, state)


def test_bad_inputs_are_named(tmp_path):
    model = build_model("tsm_r50", None)
    with pytest.raises(FileNotFoundError, match="nope.pyth"):
        load_checkpoint(model, tmp_path / "nope.pyth")
    with pytest.raises(ValueError, match="neither a checkpoint"):
        load_checkpoint(model, {"epoch": 3, "weights": [1, 2]})
    with pytest.raises(ValueError, match="no 'model_config'"):
        load_model({"model_state": model.state_dict()})
    garbage = tmp_path / "truncated.pyth"
    garbage.write_bytes(b"PK\x03\x04 not a whole checkpoint")
    for load in (lambda path: load_checkpoint(model, path), load_model):
        with pytest.raises(ValueError, match="truncated.pyth: cannot be read"):
            load(garbage)
    with pytest.raises(FileNotFoundError, match="nope.pyth"):
        load_model(tmp_path / "nope.pyth")


def test_save_load_round_trip(tmp_path):
    torch.manual_seed(0)
    model = build_model(
        "slow_8x8_r50", {"verb": 97, "noun": 300}, ego_head=True, dropout=0.0, extra_feature_dim=8
    )
    with torch.no_grad():
        for m in model.modules():  # non-default BN buffers must survive too
            if isinstance(m, nn.BatchNorm3d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.weight.fill_(0.5)
    path = tmp_path / "sub" / "epoch_3.pyth"
    save_checkpoint(path, model, epoch=3, optimizer_state={"lr": 0.1})
    restored, ckpt = load_model(path)
    assert ckpt["epoch"] == 3 and ckpt["optimizer_state"] == {"lr": 0.1}
    assert restored.config == model.config
    own, back = model.state_dict(), restored.state_dict()
    assert own.keys() == back.keys() and all(torch.equal(own[k], back[k]) for k in own)
    x = [torch.randn(1, 3, 8, 32, 32)]
    extra = torch.randn(1, 8)
    with torch.no_grad():
        a, b = model.eval()(x, extra), restored.eval()(x, extra)
    assert all(torch.equal(a[k], b[k]) for k in a)
    # Our checkpoints also load through the general loader.
    again = build_model(**model.config)
    assert load_checkpoint(again, path).missing == []


# ---- inflation ----------------------------------------------------------------------------


def random_resnet2d(depth: int = 50) -> nn.Module:
    torch.manual_seed(0)
    net = getattr(torchvision.models, f"resnet{depth}")(weights=None)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.3, 0.8)
                m.bias.uniform_(-0.1, 0.1)
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return net.eval()


def test_inflated_slow_net_reproduces_2d_features_on_still_clips():
    net2d = random_resnet2d()
    model = build_model("slow_8x8_r50", None).eval()
    report = inflate_2d_resnet(model, net2d.state_dict())
    assert sorted(report.unmatched) == ["fc.bias", "fc.weight"]
    assert report.not_filled == []
    frame = torch.randn(1, 3, 64, 64)
    # Res4 + res5 hold 9 temporal-kernel-3 convs, each letting the zero padding at the clip's
    # ends reach one frame further in; with T = 20 frames 9 and 10 see only real frames.
    still = frame.unsqueeze(2).expand(1, 3, 20, 64, 64).contiguous()
    with torch.no_grad():
        maps3d = model.forward_features([still])[0]
        maps2d = nn.Sequential(*list(net2d.children())[:-2])(frame)
    scale = maps2d.abs().max().item()
    for t in (9, 10):
        assert torch.allclose(maps3d[:, :, t], maps2d, rtol=1e-4, atol=1e-5 * scale)
    # Same pooled feature from an interior frame; the clip's end frames do differ.
    pooled2d = net2d.avgpool(maps2d).flatten(1)
    assert torch.allclose(maps3d[:, :, 9].mean((2, 3)), pooled2d, atol=1e-5 * scale)
    assert not torch.allclose(maps3d[:, :, 0], maps2d, rtol=1e-3, atol=1e-3 * scale)


def test_inflation_divides_by_temporal_size():
    net2d = random_resnet2d()
    model = build_model("i3d_8x8_r50", None)
    inflate_2d_resnet(model, {"module." + k: v for k, v in net2d.state_dict().items()})
    stem = model.s1.pathway0_stem.conv.weight  # temporal kernel 5
    assert stem.shape[2] == 5
    for t in range(5):
        assert torch.allclose(stem[:, :, t], net2d.conv1.weight / 5)
    kt1 = model.s3.pathway0_res1.branch2.a.weight  # temporal kernel 1: copied as is
    assert torch.equal(kt1[:, :, 0], net2d.layer2[1].conv1.weight)
    bn = model.s4.pathway0_res2.branch2.b_bn
    assert torch.equal(bn.running_var, net2d.layer3[2].bn2.running_var)


def test_inflation_into_slowfast_reports_fused_inputs():
    net2d = random_resnet2d()
    model = build_model("slowfast_8x8_r50", None)
    report = inflate_2d_resnet(model, net2d.state_dict())
    # The first block of every stage takes the slow channels plus the Fast->Slow laterals.
    fused = {f"layer{i}.0.{name}.weight" for i in range(1, 5) for name in ("conv1", "downsample.0")}
    assert set(report.unmatched) == fused | {"fc.weight", "fc.bias"}
    assert set(report.not_filled) == {
        f"s{i + 1}.pathway0_res0.{name}.weight"
        for i in range(1, 5)
        for name in ("branch2.a", "branch1")
    }
    conv = model.s5.pathway0_res2.branch2.c.weight
    assert torch.equal(conv[:, :, 0], net2d.layer4[2].conv3.weight)


def test_inflation_r101():
    net2d = random_resnet2d(101)
    model = build_model("slow_8x8_r101", None)
    report = inflate_2d_resnet(model, net2d.state_dict())
    assert report.not_filled == [] and sorted(report.unmatched) == ["fc.bias", "fc.weight"]


# ---- strict backbone loading and Caffe2 zoo files -------------------------------------------

_C2_BN = {"weight": "s", "bias": "b", "running_mean": "rm", "running_var": "riv"}
_C2_PARAM = {"weight": "w", "bias": "b"}


def _to_caffe2_name(key: str, fuse_block: dict[int, int]) -> str | None:
    """PySlowFast key -> the zoo's Caffe2 blob name, written out rule by rule (independently of
    models/checkpoint.py's table)."""
    import re
    if key.endswith("num_batches_tracked"):
        return None  # not in Caffe2 files
    m = re.fullmatch(r"s1\.pathway(\d)_stem\.(conv|bn)\.(\w+)", key)
    if m:
        t = "t_" if m.group(1) == "1" else ""
        return f"{t}conv1_{_C2_PARAM[m.group(3)]}" if m.group(2) == "conv" else f"{t}res_conv1_bn_{_C2_BN[m.group(3)]}"
    m = re.fullmatch(r"s(\d)\.pathway(\d)_res(\d+)\.branch2\.([abc])(_bn)?\.(\w+)", key)
    if m:
        t = "t_" if m.group(2) == "1" else ""
        base = f"{t}res{m.group(1)}_{m.group(3)}_branch2{m.group(4)}"
        return f"{base}_bn_{_C2_BN[m.group(6)]}" if m.group(5) else f"{base}_{_C2_PARAM[m.group(6)]}"
    m = re.fullmatch(r"s(\d)\.pathway(\d)_res(\d+)\.branch1(_bn)?\.(\w+)", key)
    if m:
        t = "t_" if m.group(2) == "1" else ""
        base = f"{t}res{m.group(1)}_{m.group(3)}_branch1"
        return f"{base}_bn_{_C2_BN[m.group(5)]}" if m.group(4) else f"{base}_{_C2_PARAM[m.group(5)]}"
    m = re.fullmatch(r"s(\d)_fuse\.(conv_f2s|bn)\.(\w+)", key)
    if m:
        stage = int(m.group(1))
        base = "t_pool1_subsample" if stage == 1 else f"t_res{stage}_{fuse_block[stage]}_branch2c_bn_subsample"
        return f"{base}_{_C2_PARAM[m.group(3)]}" if m.group(2) == "conv_f2s" else f"{base}_bn_{_C2_BN[m.group(3)]}"
    m = re.fullmatch(r"head\.projections\.action\.(weight|bias)", key)
    if m:
        return f"pred_{_C2_PARAM[m.group(1)]}"
    return None  # num_batches_tracked: not in Caffe2 files


def _write_caffe2_zoo_file(path, model) -> None:
    import pickle
    depths = {2: 3, 3: 4, 4: 6, 5: 3}
    blobs = {"lr": np.float32(0.1), "model_iter": np.int64(1000)}
    for key, value in model.state_dict().items():
        name = _to_caffe2_name(key, {s: d - 1 for s, d in depths.items()})
        if name is not None:
            blobs[name] = value.numpy().copy()
            blobs[name + "_momentum"] = np.zeros(1, np.float32)  # solver state in the zoo files
    with open(path, "wb") as f:
        pickle.dump({"blobs": blobs}, f, protocol=2)


def test_caffe2_zoo_pickle_loads_every_tensor_and_needs_trust(tmp_path):
    source = build_model("slowfast_8x8_r50", 400)
    with torch.no_grad():
        for p in source.state_dict().values():
            if p.is_floating_point():
                p.normal_()
    path = tmp_path / "SLOWFAST_8x8_R50.pkl"
    _write_caffe2_zoo_file(path, source)
    target = build_model("slowfast_8x8_r50", 400)
    with pytest.raises(ValueError, match="SLOWFAST_8x8_R50.pkl: a Caffe2 .pkl is a pickle.*trusted=True"):
        load_checkpoint(target, path)
    report = load_checkpoint(target, path, trusted=True)
    assert report.missing == [] and report.unexpected == [] and report.reinitialised == []
    for key, value in source.state_dict().items():
        if not key.endswith("num_batches_tracked"):
            assert torch.equal(value, target.state_dict()[key]), key


def test_caffe2_blob_without_a_name_is_an_error(tmp_path):
    import pickle
    path = tmp_path / "odd.pkl"
    with open(path, "wb") as f:
        pickle.dump({"blobs": {"conv1_w": np.zeros((64, 3, 1, 7, 7), np.float32), "mystery_w": np.zeros(3)}}, f)
    with pytest.raises(ValueError, match=r"odd.pkl: 1 Caffe2 blob\(s\) with no PySlowFast name: \['mystery_w'\]"):
        load_checkpoint(build_model("slow_8x8_r50", 400), path, trusted=True)


def test_foreign_backbone_keys_are_an_error_unless_partial_is_asked():
    """A checkpoint whose key names do not fit would otherwise load nothing and leave random
    weights; heads may still differ (re-initialised and reported)."""
    model = build_model("slow_8x8_r50", 10)
    state = {("backbone." + k if k.startswith("s") else k): v for k, v in build_model("slow_8x8_r50", 400).state_dict().items()}
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=r"does not fit the slow_8x8_r50 backbone: \d+ backbone key\(s\) missing.*"
                                         r"backbone\.s1\.pathway0_stem.*allow_partial=True"):
        load_checkpoint(model, state)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # nothing was loaded
    report = load_checkpoint(model, state, allow_partial=True)
    assert report.loaded == [] and len(report.unexpected) > 100

    partial = {k: v for k, v in build_model("slow_8x8_r50", 400).state_dict().items() if not k.startswith("s5.")}
    with pytest.raises(ValueError, match=r"s5\.pathway0_res0"):
        load_checkpoint(model, partial)
    report = load_checkpoint(build_model("slow_8x8_r50", 10), partial, allow_partial=True)
    assert any(k.startswith("s5.") for k in report.missing) and "head.projections.action" in report.reinitialised
