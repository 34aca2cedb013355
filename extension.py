"""Loads the compiled extension `_egoexo_C` (built from csrc/ by `make setup`), whose import
registers the fused ops `torch.ops.egoexo.interaction_map` and `torch.ops.egoexo.crop_normalize`.
Their Python wrappers live where they are used: losses/interaction_map.py, data/crop_normalize.py.
"""
try:
    import _egoexo_C  # noqa: F401
except ImportError as error:  # pragma: no cover - depends on the build
    raise ImportError(
        "the compiled extension _egoexo_C is missing or stale: run `make setup` in the "
        f"repository root to build it ({error})"
    ) from error
