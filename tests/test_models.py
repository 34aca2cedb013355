"""Backbones and heads: exact parameter counts, FLOPs, shapes, key names, init, dtype/layout.

Full-size networks are built on the `meta` device for counts, FLOPs and full-resolution shapes
(no weights are allocated); real forwards use tiny clips (32x32 or 64x64 pixels)."""
import pytest
import torch
import torchvision
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from models import ARCHS, ClassificationHead, build_model, temporal_shift
from models.resnet3d import STAGE_DEPTHS, TEMPORAL_KERNELS, FuseFastToSlow

# Kinetics-400 parameter counts: exact where the brief pins them, else SPEC's table (in M).
EXACT_PARAMS = {"slow_8x8_r50": 32_454_096, "slowfast_8x8_r50": 34_566_488}
EXACT_PARAMS_ALL_HEADS = {"slow_8x8_r50": 43_945_916, "slowfast_8x8_r50": 46_314_820}
SPEC_PARAMS_M = {"slowfast_4x16_r50": 34.48, "slowfast_8x8_r101": 62.83, "i3d_8x8_r50": 28.04}
# GFLOPs per view at 256x256, one multiply-add = one FLOP (SPEC section 2 / PySlowFast zoo).
SPEC_GFLOPS = {
    "slow_8x8_r50": 54.52,
    "slowfast_8x8_r50": 65.71,
    "slowfast_4x16_r50": 36.69,
    "slowfast_8x8_r101": 127.20,
    "i3d_8x8_r50": 37.53,
}
# The zoo's figures for these three were made with an fvcore that also counts BatchNorm in
# training mode: 5 FLOPs per input element (affine). The other two count convs + Linear only.
ZOO_COUNTS_BN = {"slowfast_4x16_r50", "slowfast_8x8_r101", "i3d_8x8_r50"}
ALL_AUX_HEADS = {"ego_head": True, "object_head": True, "interaction_head": True}


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def randomize_bn(model: nn.Module, seed: int = 0) -> None:
    """Non-trivial BN affine + running stats, so zero-init blocks do not hide the branches."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm3d):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) * 0.5 + 0.25)
                m.bias.copy_(torch.rand(m.bias.shape, generator=g) * 0.2 - 0.1)
                m.running_mean.copy_(torch.rand(m.running_mean.shape, generator=g) * 0.2 - 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)


def clip(model, size: int, batch: int = 1, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    frames = model.input_spec.pathway_frames
    return [torch.randn(batch, 3, t, size, size, generator=g) for t in frames]


def meta_clip(frames: int, channels: int = 3) -> torch.Tensor:
    return torch.empty(1, channels, frames, 32, 32, device="meta")


def meta_model(arch, *args, **kwargs):
    with torch.device("meta"):
        return build_model(arch, *args, **kwargs)


@pytest.fixture(scope="module")
def slow_all_heads():
    torch.manual_seed(0)
    model = build_model("slow_8x8_r50", 7, **ALL_AUX_HEADS)
    randomize_bn(model)
    return model.eval()


# ---- exact sizes --------------------------------------------------------------------------


@pytest.mark.parametrize("arch", list(EXACT_PARAMS))
def test_exact_parameter_counts(arch):
    assert n_params(meta_model(arch, 400)) == EXACT_PARAMS[arch]
    with_heads = meta_model(arch, 400, **ALL_AUX_HEADS)
    assert n_params(with_heads) == EXACT_PARAMS_ALL_HEADS[arch]


@pytest.mark.parametrize("arch", list(SPEC_PARAMS_M))
def test_spec_parameter_counts(arch):
    assert round(n_params(meta_model(arch, 400)) / 1e6, 2) == SPEC_PARAMS_M[arch]


def test_tsm_has_resnet50_parameter_count():
    with torch.device("meta"):
        resnet = torchvision.models.resnet50(weights=None, num_classes=400)
    assert n_params(meta_model("tsm_r50", 400)) == n_params(resnet) == 24_327_632


def test_head_parameter_counts_by_hand():
    # ego: 2048*2+2; object: 2048*1000+1000; interaction: 2048*512*9+512 + 512*2+2.
    base = n_params(meta_model("slow_8x8_r50", None))
    assert n_params(meta_model("slow_8x8_r50", None, ego_head=True)) - base == 4098
    assert n_params(meta_model("slow_8x8_r50", None, object_head=True)) - base == 2_049_000
    assert n_params(meta_model("slow_8x8_r50", None, interaction_head=True)) - base == 9_438_722
    # extra (appended) features widen only the task classifier: (2048 + 100) * 400 + 400.
    assert n_params(meta_model("slow_8x8_r50", 400, extra_feature_dim=100)) - base == 859_600


@pytest.mark.parametrize("arch", list(SPEC_GFLOPS))
def test_flops_match_spec(arch):
    model = meta_model(arch, 400).eval()
    bn_elements = []
    hooks = [
        m.register_forward_hook(lambda mod, inp, out: bn_elements.append(inp[0].numel()))
        for m in model.modules()
        if isinstance(m, nn.BatchNorm3d)
    ]
    with FlopCounterMode(display=False) as counter:
        frames = model.input_spec.pathway_frames
        model([torch.empty(1, 3, t, 256, 256, device="meta") for t in frames])
    for h in hooks:
        h.remove()
    gflops = counter.get_total_flops() / 2 / 1e9  # torch counts a multiply-add as 2
    if arch in ZOO_COUNTS_BN:
        gflops += 5 * sum(bn_elements) / 1e9
    assert gflops == pytest.approx(SPEC_GFLOPS[arch], rel=1e-3)


# ---- shapes -------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", list(ARCHS))
def test_full_resolution_shapes(arch):
    model = meta_model(arch, {"verb": 97, "noun": 300}, **ALL_AUX_HEADS)
    spec = model.input_spec
    out = model([torch.empty(2, 3, t, 224, 224, device="meta") for t in spec.pathway_frames])
    dim = 2304 if model.num_pathways == 2 else 2048
    t_slow = spec.pathway_frames[0] // ARCHS[arch].temporal_pool
    expected = {
        "feature": (2, dim),
        "verb": (2, 97),
        "noun": (2, 300),
        "ego": (2, 2),
        "object": (2, 1000),
        "interaction": (2, 2, t_slow, 7, 7),
    }
    assert {k: tuple(v.shape) for k, v in out.items()} == expected


def test_input_specs():
    specs = {a: meta_model(a, None).input_spec for a in ARCHS}
    assert specs["slow_8x8_r50"].pathway_frames == (8,)
    assert specs["slowfast_8x8_r50"].pathway_frames == (8, 32)
    assert specs["slowfast_4x16_r50"].pathway_frames == (4, 32)
    slowfast = specs["slowfast_8x8_r50"]
    assert (slowfast.num_frames, slowfast.sampling_rate, slowfast.alpha) == (32, 2, 4)
    assert (specs["slow_8x8_r50"].sampling_rate, specs["slow_8x8_r50"].alpha) == (8, None)


def test_pack_pathways_takes_linspace_frames():
    spec = meta_model("slowfast_4x16_r50", None).input_spec
    frames = torch.arange(32.0).view(1, 32, 1, 1).expand(3, 32, 2, 2)
    slow, fast = spec.pack(frames)
    assert torch.equal(fast, frames)
    # linspace(0, 31, 4) = 0, 10.33, 20.67, 31 -> frames 0, 10, 20, 31.
    assert slow[0, :, 0, 0].tolist() == [0.0, 10.0, 20.0, 31.0]
    batched = spec.pack(frames.unsqueeze(0))
    assert torch.equal(batched[0][0], slow)
    # SlowFast 8x8: linspace(0, 31, 8) = 0, 4.43, 8.86, 13.29, 17.71, 22.14, 26.57, 31.
    slow8 = meta_model("slowfast_8x8_r50", None).input_spec.pack(frames)[0]
    assert slow8[0, :, 0, 0].tolist() == [0.0, 4.0, 8.0, 13.0, 17.0, 22.0, 26.0, 31.0]


def test_real_forward_every_small_arch():
    # Real compute on tiny clips; the 2-pathway net also checks the lateral fusions line up.
    for arch in ("slowfast_4x16_r50", "i3d_8x8_r50", "tsm_r50"):
        torch.manual_seed(0)
        model = build_model(arch, 5, interaction_head=True).eval()
        with torch.no_grad():
            out = model(clip(model, 32))
        assert out["action"].shape == (1, 5) and torch.isfinite(out["action"]).all()
        assert out["interaction"].shape[-2:] == (1, 1)


def test_backward_reaches_stem(slow_all_heads):
    model = slow_all_heads
    model.train()
    try:
        out = model(clip(model, 32, batch=2))
        loss = sum(out[k].sum() for k in ("action", "ego", "object", "interaction"))
        loss.backward()
        grad = model.s1.pathway0_stem.conv.weight.grad
        assert grad is not None and grad.abs().sum() > 0
    finally:
        model.zero_grad(set_to_none=True)
        model.eval()


# ---- names and init -----------------------------------------------------------------------


def test_pyslowfast_state_dict_names():
    keys = set(meta_model("slowfast_8x8_r50", 400, **ALL_AUX_HEADS).state_dict())
    for key in [
        "s1.pathway0_stem.conv.weight",
        "s1.pathway0_stem.bn.running_var",
        "s1.pathway1_stem.conv.weight",
        "s1_fuse.conv_f2s.weight",
        "s1_fuse.bn.weight",
        "s2.pathway0_res0.branch1.weight",
        "s2.pathway0_res0.branch1_bn.running_mean",
        "s2.pathway0_res0.branch2.a.weight",
        "s2.pathway0_res0.branch2.a_bn.weight",
        "s2.pathway1_res2.branch2.b.weight",
        "s4.pathway0_res5.branch2.c_bn.bias",
        "s4_fuse.conv_f2s.weight",
        "s5.pathway1_res2.branch2.c.weight",
        "head.projections.action.weight",
        "head.ego_projection.weight",
        "head.object_projection.bias",
        "interaction_head.conv.weight",
        "interaction_head.projection.bias",
    ]:
        assert key in keys, key
    assert "s5_fuse.conv_f2s.weight" not in keys  # no lateral after res5
    assert "s2.pathway0_res1.branch1.weight" not in keys  # identity shortcut
    sd = meta_model("slowfast_8x8_r50", 400).state_dict()
    # Fast->Slow lateral: 2x the fast channels, temporal kernel 7, stride alpha.
    assert tuple(sd["s2_fuse.conv_f2s.weight"].shape) == (64, 32, 7, 1, 1)
    assert tuple(sd["s3.pathway0_res0.branch2.a.weight"].shape) == (128, 256 + 64, 1, 1, 1)


def test_fast_to_slow_lateral_by_hand():
    # SlowFast 8x8's lateral: kernel 7, stride alpha=4, padding 3, so slow frame t is centred on
    # fast frame 4t; its channels follow the slow ones. One-hot taps read the fast frames off.
    spec = ARCHS["slowfast_8x8_r50"]
    fuse = FuseFastToSlow(8, spec.fusion_kernel, spec.alpha).eval()
    with torch.no_grad():
        fuse.conv_f2s.weight.zero_()
        for out_channel, tap in ((0, 3), (1, 0), (2, 6)):  # centre, first, last tap
            fuse.conv_f2s.weight[out_channel, 0, tap] = 1.0
    fast = torch.zeros(1, 8, 32, 1, 1)
    fast[0, 0, :, 0, 0] = torch.arange(1.0, 33.0)  # fast frame f holds f + 1
    slow = torch.randn(1, 64, 8, 1, 1)
    with torch.no_grad():
        fused_slow, fast_out = fuse([slow, fast])
    assert fused_slow.shape == (1, 64 + 16, 8, 1, 1) and fast_out is fast
    assert torch.equal(fused_slow[:, :64], slow)
    lateral = fused_slow[0, 64:, :, 0, 0] * (1 + 1e-5) ** 0.5  # undo the eval BN's eps
    t = torch.arange(8.0)
    assert torch.allclose(lateral[0], 4 * t + 1)  # fast frame 4t
    assert torch.allclose(lateral[1], torch.where(t > 0, 4 * t - 2, 0.0))  # 4t - 3, zero pad
    assert torch.allclose(lateral[2], 4 * t + 4)  # fast frame 4t + 3
    assert torch.all(lateral[3:] == 0)


@pytest.mark.parametrize("arch", ["slow_8x8_r50", "slowfast_8x8_r50", "i3d_8x8_r50"])
def test_temporal_kernels_follow_the_table(arch):
    sd = meta_model(arch, None).state_dict()
    for p, kind in enumerate(ARCHS[arch].pathways):
        table = TEMPORAL_KERNELS[kind]
        assert sd[f"s1.pathway{p}_stem.conv.weight"].shape[2] == table[0][0]
        for stage, depth in zip(range(2, 6), STAGE_DEPTHS[ARCHS[arch].depth]):
            cycle = table[stage - 1]
            for i in range(depth):
                kt = sd[f"s{stage}.pathway{p}_res{i}.branch2.a.weight"].shape[2]
                assert kt == cycle[i % len(cycle)], (stage, i)
    if arch == "i3d_8x8_r50":  # hand check: res3 alternates 3,1,3,1; res5 is 1,3,1
        def kts(stage, n):
            return [sd[f"s{stage}.pathway0_res{i}.branch2.a.weight"].shape[2] for i in range(n)]

        assert kts(3, 4) == [3, 1, 3, 1]
        assert kts(5, 3) == [1, 3, 1]


def test_init_follows_pyslowfast():
    torch.manual_seed(0)
    model = build_model("slow_8x8_r50", 400, ego_head=True, interaction_head=True)
    for name, m in model.named_modules():
        if isinstance(m, nn.BatchNorm3d):
            expected = 0.0 if name.endswith("branch2.c_bn") else 1.0
            assert torch.all(m.weight == expected) and torch.all(m.bias == 0), name
    # MSRA fan_out: std = sqrt(2 / (c_out * kernel volume)).
    w = model.s4.pathway0_res0.branch2.a.weight  # 256 x 512 x 3 x 1 x 1
    assert w.std().item() == pytest.approx((2 / (256 * 3)) ** 0.5, rel=0.05)
    head = model.head
    for fc in (head.projections["action"], head.ego_projection, model.interaction_head.projection):
        assert torch.all(fc.bias == 0)
    assert model.head.projections["action"].weight.std().item() == pytest.approx(0.01, rel=0.05)
    assert model.interaction_head.projection.weight.std().item() == pytest.approx(0.01, rel=0.1)


def test_zero_init_blocks_start_as_identity_shortcuts():
    # With every c_bn at 0, an identity-shortcut block returns relu(x) = x for x >= 0.
    torch.manual_seed(0)
    model = build_model("slow_8x8_r50", None).eval()
    block = model.s3.pathway0_res1
    x = torch.rand(1, 512, 2, 4, 4)
    assert torch.equal(block(x.clone()), x)


# ---- TSM shift ----------------------------------------------------------------------------


def test_temporal_shift_by_hand():
    # 16 channels, 3 frames, value = 10 * channel + frame; fold = 2.
    x = 10 * torch.arange(16.0).view(1, 16, 1, 1, 1) + torch.arange(3.0).view(1, 1, 3, 1, 1)
    y = temporal_shift(x)[0, :, :, 0, 0]
    assert y[0].tolist() == [1.0, 2.0, 0.0]  # channel 0 takes the next frame
    assert y[1].tolist() == [11.0, 12.0, 0.0]
    assert y[2].tolist() == [0.0, 20.0, 21.0]  # channel 2 takes the previous frame
    assert y[3].tolist() == [0.0, 30.0, 31.0]
    assert torch.equal(y[4:], x[0, 4:, :, 0, 0])  # the rest is unchanged


def test_tsm_shifts_only_the_residual_branch():
    torch.manual_seed(0)
    model = build_model("tsm_r50", None).eval()
    randomize_bn(model)
    block = model.s2.pathway0_res0
    x = torch.randn(1, 64, 4, 8, 8)
    with torch.no_grad():
        expected = torch.relu(block.branch1_bn(block.branch1(x)) + block.branch2(temporal_shift(x)))
        assert torch.allclose(block(x), expected)
        # ...which differs from the unshifted block on the same input.
        unshifted = torch.relu(block.branch1_bn(block.branch1(x)) + block.branch2(x))
        assert not torch.allclose(expected, unshifted)


# ---- heads API ----------------------------------------------------------------------------


def test_extra_features_feed_only_the_task_classifiers():
    torch.manual_seed(0)
    model = build_model("tsm_r50", 3, ego_head=True, extra_feature_dim=4, dropout=0.0).eval()
    x = clip(model, 32)
    extra = torch.randn(1, 4)
    with torch.no_grad():
        out = model(x, extra_features=extra)
        fc = model.head.projections["action"]
        assert fc.in_features == 2048 + 4
        assert torch.allclose(out["action"], fc(torch.cat([out["feature"], extra], 1)), atol=1e-5)
        out2 = model(x, extra_features=extra + 1)
        assert not torch.allclose(out["action"], out2["action"])
        assert torch.equal(out["ego"], out2["ego"])
    with pytest.raises(ValueError, match="extra_features"):
        model(x)
    with pytest.raises(ValueError, match=r"\(1, 4\)"):
        model(x, extra_features=torch.randn(1, 5))


def test_drop_aux_heads_and_replace_classifier():
    torch.manual_seed(0)
    model = build_model("tsm_r50", 400, **ALL_AUX_HEADS, dropout=0.0)
    model.drop_aux_heads()
    model.replace_classifier({"verb": 97, "noun": 300}, dropout=0.5)
    assert model.config == {
        "arch": "tsm_r50",
        "num_classes": {"verb": 97, "noun": 300},
        "ego_head": False,
        "object_head": False,
        "interaction_head": False,
        "dropout": 0.5,
        "extra_feature_dim": 0,
    }
    aux_prefixes = ("interaction_head", "head.ego", "head.object")
    assert not any(k.startswith(aux_prefixes) for k in model.state_dict())
    with torch.no_grad():
        out = model.eval()(clip(model, 32))
    assert set(out) == {"feature", "verb", "noun"}


def test_feature_is_the_global_average_of_res5(slow_all_heads):
    model = slow_all_heads
    x = clip(model, 64)
    with torch.no_grad():
        maps = model.forward_features(x)
        out = model(x)
    assert maps[0].shape == (1, 2048, 8, 2, 2)
    assert torch.allclose(out["feature"], maps[0].mean(dim=(2, 3, 4)))
    fc = model.head.projections["action"]
    assert torch.allclose(out["action"], fc(out["feature"]), atol=1e-4)  # eval: no dropout


def test_two_pathway_feature_is_slow_then_fast_by_hand():
    # PySlowFast concatenates the pooled pathways slow first; a released 2304-wide projection
    # only means the same thing if the order matches. Slow map 2 x 2 x 2 (T x H x W) per channel,
    # fast map 8 x 1 x 1 per channel, with hand-computable means.
    head = ClassificationHead((3, 2), {"action": 1}, ego_head=True, dropout=0.0)
    slow = torch.arange(3.0).view(1, 3, 1, 1, 1).expand(1, 3, 2, 2, 2).clone()
    slow[0, :, 0, 0, 0] += 8.0  # one of the 8 cells per channel: mean + 1
    fast = torch.zeros(1, 2, 8, 1, 1)
    fast[0, 0, 3] = 4.0  # mean 0.5
    fast[0, 1] = -1.0
    with torch.no_grad():
        out = head([slow, fast])
        assert out["feature"].tolist() == [[1.0, 2.0, 3.0, 0.5, -1.0]]
        fc = head.projections["action"]
        assert torch.allclose(out["action"], out["feature"] @ fc.weight.T + fc.bias)
        assert torch.allclose(out["ego"], head.ego_projection(out["feature"]))


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="unknown arch 'slow_r18'"):
        build_model("slow_r18", 10)
    with pytest.raises(ValueError, match="'ego' clashes"):
        meta_model("slow_8x8_r50", {"ego": 2})
    with pytest.raises(ValueError, match="'verb'"):
        meta_model("slow_8x8_r50", {"verb": 0})
    model = meta_model("slowfast_8x8_r50", 10)
    with pytest.raises(ValueError, match="list of 2 pathway"):
        model([meta_clip(8)])
    with pytest.raises(ValueError, match="fast pathway T=16 must be alpha=4 x slow T=8"):
        model([meta_clip(8), meta_clip(16)])
    with pytest.raises(ValueError, match="pathway 0: expected B x 3"):
        model([meta_clip(8, channels=1), meta_clip(32)])


# ---- dtype / memory layout ----------------------------------------------------------------


def test_bf16_autocast_forward(slow_all_heads):
    model = slow_all_heads
    x = clip(model, 32, batch=2)
    with torch.no_grad():
        ref = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(x)
    assert out["action"].dtype == torch.bfloat16
    for key in ref:
        scale = ref[key].abs().max()
        assert (out[key].float() - ref[key]).abs().max() <= 0.05 * scale, key


def test_channels_last_3d_matches_contiguous():
    torch.manual_seed(0)
    model = build_model("slowfast_8x8_r50", 6, interaction_head=True).eval()
    randomize_bn(model)
    x = clip(model, 32, batch=2)
    with torch.no_grad():
        ref = model(x)
        model = model.to(memory_format=torch.channels_last_3d)
        weight = model.s2.pathway0_res0.branch2.a.weight
        assert weight.is_contiguous(memory_format=torch.channels_last_3d)
        out = model([t.contiguous(memory_format=torch.channels_last_3d) for t in x])
    for key in ref:
        scale = ref[key].abs().max().item()
        assert torch.allclose(out[key], ref[key], rtol=1e-4, atol=1e-4 * scale), key


def test_pack_keeps_a_channels_last_clip_channels_last():
    from models import build_model
    spec = build_model("slowfast_8x8_r50", 4).input_spec
    clip = torch.randn(2, 3, 32, 8, 8).contiguous(memory_format=torch.channels_last_3d)
    slow, fast = spec.pack(clip)
    assert fast is clip and slow.is_contiguous(memory_format=torch.channels_last_3d) and not slow.is_contiguous()
    assert torch.equal(slow, spec.pack(clip.contiguous())[0])
