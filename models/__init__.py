"""Ego-Exo backbones (ResNet-3D family, PySlowFast key names) and heads."""
