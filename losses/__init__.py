"""Training losses and their targets (KD, Interaction-Map soft targets)."""
