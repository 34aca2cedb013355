import math

import pytest
import torch
import torch.nn.functional as F

from losses.distillation import LossWeights, egoexo_loss, kd_loss


def test_kd_loss_hand_worked():
    student = torch.zeros(1, 2)
    teacher = torch.log(torch.tensor([[0.75, 0.25]]))
    # KL(p || uniform) = 0.75 ln 1.5 + 0.25 ln 0.5
    expected = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)
    assert kd_loss(student, teacher).item() == pytest.approx(expected, rel=1e-6)
    # T = 2: teacher distribution ∝ sqrt(p); times T² = 4.
    q = torch.tensor([math.sqrt(0.75), math.sqrt(0.25)], dtype=torch.float64)
    q = q / q.sum()
    expected_t2 = 4 * float((q * torch.log(q / 0.5)).sum())
    assert kd_loss(student, teacher, temperature=2.0).item() == pytest.approx(expected_t2, rel=1e-5)


def test_kd_loss_batchmean_and_zero_at_match():
    torch.manual_seed(0)
    logits = torch.randn(4, 10)
    assert kd_loss(logits, F.log_softmax(logits, -1)).item() == pytest.approx(0.0, abs=1e-6)
    teacher = F.log_softmax(torch.randn(4, 10), -1)
    per_sample = (teacher.exp() * (teacher - F.log_softmax(logits, -1))).sum(-1)
    assert kd_loss(logits, teacher).item() == pytest.approx(per_sample.mean().item(), rel=1e-5)
    with pytest.raises(ValueError, match="same shape"):
        kd_loss(logits, teacher[:, :5])


def test_egoexo_loss_weights_and_terms():
    torch.manual_seed(0)
    B, T, S = 3, 4, 7
    outputs = {"action": torch.randn(B, 5), "ego": torch.randn(B, 2), "object": torch.randn(B, 1000),
               "interaction": torch.randn(B, 2, T, S, S)}
    batch = {"label": torch.tensor([0, 3, 4]), "ego_score": F.log_softmax(torch.randn(B, 2), -1),
             "object_score": F.log_softmax(torch.randn(B, 1000), -1),
             "interaction_targets": torch.rand(B, 2, T, S, S)}
    terms = egoexo_loss(outputs, batch)
    ce = F.cross_entropy(outputs["action"], batch["label"])
    bce_hand = F.binary_cross_entropy_with_logits(outputs["interaction"][:, 0], batch["interaction_targets"][:, 0])
    expected = (0.5 * ce + 0.1 * kd_loss(outputs["ego"], batch["ego_score"])
                + 0.5 * kd_loss(outputs["object"], batch["object_score"]) + 1.0 * bce_hand
                + F.binary_cross_entropy_with_logits(outputs["interaction"][:, 1], batch["interaction_targets"][:, 1]))
    assert terms["loss"].item() == pytest.approx(expected.item(), rel=1e-6)
    assert set(terms) == {"action", "ego", "object", "hand_map", "object_map", "loss"}
    # Hand-Map-only ablation: the object-map term disappears.
    only_hand = egoexo_loss(outputs, batch, LossWeights(ego=0, object=0, object_map=0))
    assert set(only_hand) == {"action", "hand_map", "loss"}
    with pytest.raises(ValueError, match="targets"):
        egoexo_loss(outputs, {**batch, "interaction_targets": torch.rand(B, 2, T, 3, 3)})
    # A head without its target adds no term; nothing left at all is an error, not a zero loss.
    with pytest.raises(ValueError, match="no loss term"):
        egoexo_loss({"ego": outputs["ego"]}, {"label": batch["label"]})
