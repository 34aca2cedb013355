"""The Ego-Exo pre-training objective (SPEC section 3).

    L = w_action·CE(action) + w_ego·KD(ego) + w_obj·KD(object) + w_hand·BCE(hand map) + w_objmap·BCE(object map)

with the paper's weights 0.5 / 0.1 / 0.5 / 1.0 / 1.0 as the default. Teacher scores are stored as
log-probabilities (data/teacher_targets.py), so `softmax(teacher / T)` is the teacher
distribution at temperature T; the Interaction-Map targets come from losses/interaction_map.py.
"""
from dataclasses import dataclass

import torch
import torch.nn.functional as F


def kd_loss(student_logits: torch.Tensor, teacher_scores: torch.Tensor,
            temperature: float = 1.0) -> torch.Tensor:
    """T²·KL(softmax(teacher/T) ‖ softmax(student/T)), summed over classes, mean over the batch.

    The T² factor keeps the gradient scale independent of T (Hinton et al.); the loss weight α
    is applied by the caller.
    """
    if student_logits.shape != teacher_scores.shape:
        raise ValueError(f"kd_loss: student logits {tuple(student_logits.shape)} and teacher "
                         f"scores {tuple(teacher_scores.shape)} must have the same shape")
    student_log_p = F.log_softmax(student_logits.float() / temperature, dim=-1)
    teacher_log_p = F.log_softmax(teacher_scores.float() / temperature, dim=-1)
    kl = F.kl_div(student_log_p, teacher_log_p, reduction="batchmean", log_target=True)
    return kl * temperature ** 2


@dataclass(frozen=True)
class LossWeights:
    action: float = 0.5
    ego: float = 0.1
    object: float = 0.5
    hand_map: float = 1.0
    object_map: float = 1.0


def egoexo_loss(outputs: dict, batch: dict, weights: LossWeights = LossWeights(),
                temperature: float = 1.0) -> dict[str, torch.Tensor]:
    """Each term whose head and target are both present, weighted, plus their sum as "loss".

    outputs: the model's dict ("action", "ego", "object", "interaction" B×2×T×S×S logits).
    batch:   "label" int64 [B], "ego_score" [B,2], "object_score" [B,1000] log-probs,
             "interaction_targets" float [B,2,T,S,S] in [0,1].
    A term with weight 0 is skipped, so ablations (ego only, hand map only, Third-only) are
    a matter of weights.
    """
    terms: dict[str, torch.Tensor] = {}
    if weights.action and "action" in outputs:
        terms["action"] = weights.action * F.cross_entropy(outputs["action"].float(), batch["label"])
    if weights.ego and "ego" in outputs and "ego_score" in batch:
        terms["ego"] = weights.ego * kd_loss(outputs["ego"], batch["ego_score"], temperature)
    if weights.object and "object" in outputs and "object_score" in batch:
        terms["object"] = weights.object * kd_loss(outputs["object"], batch["object_score"], temperature)
    if "interaction" in outputs and "interaction_targets" in batch:
        terms.update(interaction_map_terms(outputs["interaction"], batch["interaction_targets"],
                                           weights.hand_map, weights.object_map))
    if not terms:
        raise ValueError("egoexo_loss: no loss term has both an output and a target")
    terms["loss"] = torch.stack(list(terms.values())).sum()
    return terms


def interaction_map_terms(logits: torch.Tensor, targets: torch.Tensor, w_hand: float,
                          w_object: float) -> dict[str, torch.Tensor]:
    """The weighted Hand-Map and Object-Map BCE terms (mean over all B·T·S·S cells of each
    map); a term with weight 0 is left out. logits/targets: B×2×T×S×S, channel 0 hands."""
    logits = logits.float()
    if logits.shape != targets.shape:
        raise ValueError(f"interaction logits {tuple(logits.shape)} vs targets "
                         f"{tuple(targets.shape)}: build the targets at the head's T and S")
    terms = {}
    if w_hand:
        terms["hand_map"] = w_hand * F.binary_cross_entropy_with_logits(logits[:, 0], targets[:, 0])
    if w_object:
        terms["object_map"] = w_object * F.binary_cross_entropy_with_logits(logits[:, 1], targets[:, 1])
    return terms
