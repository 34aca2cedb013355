"""The pieces of the training loop that have a formula: the LR schedule, weight-decay groups,
top-k accuracy, the resumable sampler, and view aggregation in evaluate()."""
import math

import pytest
import torch

from data.sampler import ResumableSampler
from engine import cosine_lr, evaluate, param_groups, topk_accuracy


def test_cosine_lr_hand_worked():
    kw = dict(base_lr=0.8, epochs=200, warmup_epochs=34, warmup_start_lr=0.08)
    end_of_warmup = 0.8 * (math.cos(math.pi * 34 / 200) + 1) / 2
    assert cosine_lr(0, **kw) == pytest.approx(0.08)
    assert cosine_lr(17, **kw) == pytest.approx(0.08 + (end_of_warmup - 0.08) / 2)
    assert cosine_lr(34, **kw) == pytest.approx(end_of_warmup)
    assert cosine_lr(100, **kw) == pytest.approx(0.4)
    assert cosine_lr(200, **kw) == pytest.approx(0.0, abs=1e-12)


def test_param_groups_exempt_batchnorm_only():
    model = torch.nn.Sequential(torch.nn.Conv3d(3, 4, 1), torch.nn.BatchNorm3d(4), torch.nn.Linear(4, 2))
    decay, no_decay = param_groups(model, 1e-4)
    assert decay["weight_decay"] == 1e-4 and no_decay["weight_decay"] == 0.0
    assert {id(p) for p in no_decay["params"]} == {id(model[1].weight), id(model[1].bias)}
    assert len(decay["params"]) == 4  # conv weight/bias, linear weight/bias


def test_topk_accuracy():
    scores = torch.tensor([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.3, 0.5]])
    labels = torch.tensor([1, 1, 0])
    acc = topk_accuracy(scores, labels, ks=(1, 2))
    assert acc[1] == pytest.approx(100 / 3) and acc[2] == pytest.approx(200 / 3)


def test_resumable_sampler_shards_and_resumes():
    full = [ResumableSampler(10, seed=3, rank=r, world_size=4) for r in range(4)]
    for s in full:
        s.set_epoch(2)
    shards = [list(s) for s in full]
    assert all(len(x) == 3 for x in shards)  # ceil(10 / 4), padded by wrapping around
    assert set().union(*map(set, shards)) == set(range(10))
    again = ResumableSampler(10, seed=3, rank=1, world_size=4)
    again.set_epoch(2, start=2)
    assert list(again) == shards[1][2:] and len(again) == 1
    other_epoch = ResumableSampler(10, seed=3)
    other_epoch.set_epoch(3)
    assert list(other_epoch) != ResumableSampler(10, seed=3).indices()
    with pytest.raises(ValueError, match="start"):
        again.set_epoch(0, start=4)


class _FixedModel(torch.nn.Module):
    """Returns per-sample logits chosen by the test (the batch's 'index')."""

    def __init__(self, logits):
        super().__init__()
        self.logits = logits

    def forward(self, xs, extra_features=None):
        return {"action": self.logits[self.current]}


def test_evaluate_averages_or_maxes_views(monkeypatch):
    import engine

    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    model = _FixedModel(logits)

    def fake_inputs(batch, model_, device, *layout):
        model.current = batch["index"]
        return [torch.zeros(1)]

    monkeypatch.setattr(engine, "model_inputs", fake_inputs)
    batches = [{"video_id": ["a", "a"], "index": torch.tensor([0, 1]), "label": torch.tensor([0, 0]),
                "errors": []},
               {"video_id": ["b"], "index": torch.tensor([2]), "label": torch.tensor([1]),
                "errors": [("c", 0, "broken")]}]
    mean = evaluate(model, batches, device=torch.device("cpu"), autocast_dtype=None, tasks=["action"])
    assert mean["video_ids"] == ["a", "b"] and mean["errors"] == [("c", 0, "broken")] and mean["views"] == 3
    torch.testing.assert_close(mean["scores"]["action"][0], logits[:2].softmax(-1).mean(0))
    torch.testing.assert_close(mean["scores"]["action"][1], torch.tensor([0.5, 0.5]))
    peak = evaluate(model, batches, device=torch.device("cpu"), autocast_dtype=None, tasks=["action"],
                    aggregate="max", activation="sigmoid")
    torch.testing.assert_close(peak["scores"]["action"][0], torch.sigmoid(torch.tensor([2.0, 2.0])))


class _ScalarModel(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))

    def forward(self, xs, extra_features=None):
        return {"w": self.w}


def _run_epoch(monkeypatch, losses, log_every, checkpoint_every):
    """One epoch of train_one_epoch whose step k has loss losses[k]; returns (stats, saves, log)."""
    import engine
    monkeypatch.setattr(engine, "model_inputs", lambda batch, model, device, *layout: [torch.zeros(1)])
    model = _ScalarModel()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    batches = [{"k": k, "failed": [], "video_id": ["v"]} for k in range(len(losses))]

    def loss_fn(outputs, batch):
        action = outputs["w"] * 0 + losses[batch["k"]]
        return {"action": action, "loss": 2 * action}

    saves, lines = [], []
    stats = engine.train_one_epoch(model, batches, optimizer, loss_fn, epoch=0, start_step=0,
                                   steps_per_epoch=len(losses), lr_at=lambda e: 0.0, device=torch.device("cpu"),
                                   autocast_dtype=None, log=lines.append, log_every=log_every,
                                   checkpoint_every=checkpoint_every, save=saves.append)
    return stats, saves, lines


def test_epoch_mean_loss_counts_every_step_not_only_logged_ones(monkeypatch):
    stats, saves, lines = _run_epoch(monkeypatch, [1.0, 2.0, 3.0, 10.0], log_every=2, checkpoint_every=3)
    assert stats["loss"] == pytest.approx({"action": 4.0, "loss": 8.0})  # (1 + 2 + 3 + 10) / 4, not (2 + 10) / 2
    assert saves == [3, 4] and len(lines) == 2


def test_non_finite_loss_stops_before_a_checkpoint_is_written(monkeypatch):
    """Step 2 (1-based) goes NaN between logging steps: the run stops at the next save, naming
    step 2 and its terms, and the save of step 4 never happens."""
    with pytest.raises(FloatingPointError, match=r"epoch 0 step 2/6: a loss term is not finite \(\{'action': nan"):
        _run_epoch(monkeypatch, [1.0, float("nan"), 1.0, 1.0, 1.0, 1.0], log_every=100, checkpoint_every=4)
    import engine
    calls = []
    monkeypatch.setattr(engine, "model_inputs", lambda batch, model, device, *layout: [torch.zeros(1)])
    model = _ScalarModel()
    batches = [{"k": k, "failed": [], "video_id": ["v"]} for k in range(4)]
    values = [1.0, 1.0, float("inf"), 1.0]
    with pytest.raises(FloatingPointError):
        engine.train_one_epoch(model, batches, torch.optim.SGD(model.parameters(), lr=0.0),
                               lambda o, b: {"loss": o["w"] * 0 + values[b["k"]]}, epoch=0, start_step=0,
                               steps_per_epoch=4, lr_at=lambda e: 0.0, device=torch.device("cpu"), autocast_dtype=None,
                               log=lambda m: None, log_every=100, checkpoint_every=2, save=calls.append)
    assert calls == [2]  # saved after step 2, stopped at step 4's check, nothing saved from step 3 on


def test_log_records_hold_the_interval_means_of_every_term(monkeypatch):
    import engine
    monkeypatch.setattr(engine, "model_inputs", lambda batch, model, device, *layout: [torch.zeros(1)])
    model = _ScalarModel()
    losses = [1.0, 3.0, 5.0, 6.0, 10.0]
    batches = [{"k": k, "failed": [], "video_id": ["v", "w"]} for k in range(len(losses))]
    records = []
    engine.train_one_epoch(model, batches, torch.optim.SGD(model.parameters(), lr=0.0),
                           lambda o, b: {"action": o["w"] * 0 + losses[b["k"]], "loss": o["w"] * 0 + 2 * losses[b["k"]]},
                           epoch=3, start_step=0, steps_per_epoch=5, lr_at=lambda e: 0.1 * e,
                           device=torch.device("cpu"), autocast_dtype=None, log=lambda m: None, log_every=2,
                           record=lambda kind, **f: records.append((kind, f)))
    assert [kind for kind, _ in records] == ["train"] * 3
    assert [f["step"] for _, f in records] == [2, 4, 5]  # every 2 steps and the epoch's last
    assert [f["loss"]["action"] for _, f in records] == [2.0, 5.5, 10.0]  # means over each interval
    assert [f["progress"] for _, f in records] == [3.4, 3.8, 4.0]
    assert records[0][1]["lr"] == pytest.approx(0.1 * (3 + 1 / 5))  # the LR of the interval's last step
    assert all(0 <= f["data_wait"] <= 1 and f["clips_per_s"] > 0 and f["gpu_mem_gb"] is None for _, f in records)


class _BNNet(torch.nn.Module):
    """A BN layer between two fixed convolutions; takes the batch's clip as its only pathway."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv3d(3, 4, (1, 3, 3), padding=(0, 1, 1))
        self.bn = torch.nn.BatchNorm3d(4)

    def forward(self, inputs, extra=None):
        return {"x": self.bn(self.conv(inputs[0]))}


def test_precise_bn_sets_the_mean_of_the_batches_statistics(monkeypatch):
    import engine
    monkeypatch.setattr(engine, "model_inputs", lambda batch, model, device, *layout: [batch["clip"]])
    torch.manual_seed(0)
    net = _BNNet()
    net.bn.running_mean.fill_(7.0)
    batches = [{"clip": torch.randn(2, 3, 2, 4, 4) * (k + 1) + k} for k in range(4)]
    used = engine.precise_bn(net, batches, num_batches=3, device=torch.device("cpu"), autocast_dtype=None)
    assert used == 3
    with torch.no_grad():
        features = [net.conv(b["clip"]).transpose(0, 1).reshape(4, -1) for b in batches[:3]]
    mean = torch.stack([f.mean(1) for f in features]).mean(0)
    var = torch.stack([f.var(1, unbiased=True) for f in features]).mean(0)  # hand formula: the batches' average
    assert torch.allclose(net.bn.running_mean, mean, atol=1e-6) and torch.allclose(net.bn.running_var, var, atol=1e-5)
    assert net.bn.momentum == 0.1  # the layer's own momentum is back


def test_freeze_bn_keeps_running_statistics_and_uses_them(monkeypatch):
    import engine
    monkeypatch.setattr(engine, "model_inputs", lambda batch, model, device, *layout: [batch["clip"]])
    net = _BNNet()
    before = net.bn.running_mean.clone()
    batches = [{"clip": torch.randn(2, 3, 2, 4, 4) + 5, "failed": [], "video_id": ["a", "b"]} for _ in range(2)]
    engine.train_one_epoch(net, batches, torch.optim.SGD(net.parameters(), lr=0.1),
                           lambda o, b: {"loss": o["x"].mean()}, epoch=0, start_step=0, steps_per_epoch=2,
                           lr_at=lambda e: 0.1, device=torch.device("cpu"), autocast_dtype=None, log=lambda m: None,
                           log_every=1, freeze_bn=True)
    assert torch.equal(net.bn.running_mean, before) and not net.bn.training
    assert not torch.equal(net.bn.bias.detach(), torch.zeros(4))  # its affine parameters trained


def test_input_format_follows_the_model():
    import engine
    net = _BNNet()
    assert engine.input_format(net, None) == (torch.float32, False)
    net = net.to(memory_format=torch.channels_last_3d)
    assert engine.input_format(net, torch.bfloat16) == (torch.bfloat16, True)
