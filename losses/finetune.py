"""The fine-tuning objective (SPEC sections 3 and 4): the target data set's loss, plus the
Interaction-Map terms for Ego-Exo* (the interaction head kept and trained on detections made
on the target videos; weights 0.1/0.1 on Charades-Ego, 3.0/3.0 on EPIC).

    Charades-Ego actions  BCE-with-logits over the 157 classes (multi-label clip targets)
    EPIC-55/100           CE(verb) + CE(noun)
    SSv2, Kinetics, the binary first-vs-third-person task (M_ego)   CE
"""
import torch
import torch.nn.functional as F

from losses.distillation import interaction_map_terms


def finetune_loss(outputs: dict, labels, *, multilabel: bool, w_hand_map: float = 0.0,
                  w_object_map: float = 0.0, interaction_targets: torch.Tensor | None = None
                  ) -> dict[str, torch.Tensor]:
    """Loss terms with their sum under "loss".

    labels: int64 [B] (one "action" task), float32 multi-hot [B, K] with multilabel=True, or a
    dict {task: int64 [B]} (EPIC's verb and noun), matching the model's task outputs."""
    tasks = labels if isinstance(labels, dict) else {"action": labels}
    terms = {}
    for task, target in tasks.items():
        logits = outputs[task].float()
        if multilabel:
            if target.shape != logits.shape:
                raise ValueError(f"finetune_loss: {task} targets {tuple(target.shape)} vs logits {tuple(logits.shape)}")
            terms[task] = F.binary_cross_entropy_with_logits(logits, target.float())
        else:
            terms[task] = F.cross_entropy(logits, target)
    if interaction_targets is not None:
        terms.update(interaction_map_terms(outputs["interaction"], interaction_targets, w_hand_map, w_object_map))
    terms["loss"] = torch.stack(list(terms.values())).sum()
    return terms
