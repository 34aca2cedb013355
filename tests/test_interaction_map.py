"""egoexo::interaction_map (Interaction-Map soft targets, SPEC section 3): the fused op against
a hand-worked case and against the plain-Python reference (bit for bit), the vectorised
baseline likewise, opcheck, bad input, sizes too large for int64, and the CUDA kernel against
the CPU one (GPU only)."""
import numpy as np
import pytest
import torch

from losses.interaction_map import (
    interaction_map,
    interaction_map_reference,
    interaction_map_vectorized,
)

requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def op_args(batch_index, frame_index, boxes, scores, kinds, scale, crop_offset, crop_size, flip,
            num_frames, map_size, hard=False, drop_outside=False):
    """Positional arguments of torch.ops.egoexo.interaction_map."""
    return (batch_index, frame_index, boxes, scores, kinds, scale, crop_offset, crop_size, flip,
            num_frames, map_size, hard, drop_outside)


def call(fn, case, **overrides):
    kw = {**case, **overrides}
    args = [kw.pop(k) for k in ("batch_index", "frame_index", "boxes", "scores", "kinds")]
    return fn(*args, **kw)


def tiny_case(flip: bool) -> dict:
    """B=1, T=2, S=4, crop 8, resize factor 0.5, crop offset (2, 0); worked by hand below."""
    return dict(
        batch_index=torch.tensor([0, 0, 0]),
        frame_index=torch.tensor([0, 1, 0]),
        boxes=torch.tensor([[4.0, 0.0, 12.0, 6.0], [10.0, 8.0, 30.0, 30.0], [8.0, 2.0, 10.0, 4.0]]),
        scores=torch.tensor([0.8, 0.6, 0.9]),
        kinds=torch.tensor([0, 1, 0]),
        scale=torch.tensor([0.5]),
        crop_offset=torch.tensor([[2.0, 0.0]]),
        crop_size=torch.tensor([8]),
        flip=torch.tensor([flip]),
        num_frames=2,
        map_size=4,
    )


# Box 0 (hand, t=0): x0.5 -> (2, 0, 6, 3); minus (2, 0) -> (0, 0, 4, 3); /8 -> (0, 0, .5, .375);
#   x4 -> cells x 0..2, y 0..1.  Flipped: x -> (7-4, 7-0) = (3, 7) -> /8*4 = 1.5, 3.5 -> x 1..3.
# Box 2 (hand, t=0): -> (4, 1, 5, 2) -> (2, 1, 3, 2) -> /8*4 = (1, .5, 1.5, 1) -> x 1..1, y 0..1.
#   Flipped: x -> (4, 5) -> 2, 2.5 -> x 2..2.  Overlaps box 0: those cells take max = 0.9.
# Box 1 (object, t=1): -> (5, 4, 15, 15) -> (3, 4, 13, 15) -> clip (3, 4, 7, 7) -> /8*4 =
#   (1.5, 2, 3.5, 3.5) -> x 1..3, y 2..3.
#   Flipped: x (7-13, 7-3) = (-6, 4) -> clip (0, 4) -> /8*4 = (0, 2) -> x 0..2.
EXPECTED_TINY = {
    False: [[[[.8, .9, .8, 0], [.8, .9, .8, 0], [0, 0, 0, 0], [0, 0, 0, 0]],  # hand t=0
             [[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]],  # hand t=1
            [[[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]],  # object t=0
             [[0, 0, 0, 0], [0, 0, 0, 0], [0, .6, .6, .6], [0, .6, .6, .6]]]],  # object t=1
    True: [[[[0, .8, .9, .8], [0, .8, .9, .8], [0, 0, 0, 0], [0, 0, 0, 0]],
            [[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]],
           [[[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]],
            [[0, 0, 0, 0], [0, 0, 0, 0], [.6, .6, .6, 0], [.6, .6, .6, 0]]]],
}


@pytest.mark.parametrize("flip", [False, True])
def test_hand_worked_case(flip):
    case = tiny_case(flip)
    expected = torch.tensor([EXPECTED_TINY[flip]])
    assert torch.equal(call(interaction_map, case), expected)
    assert torch.equal(call(interaction_map_reference, case), expected)
    hard = torch.tensor([EXPECTED_TINY[flip]]).ne(0).float()
    assert torch.equal(call(interaction_map, case, hard=True), hard)


def outside_case(drop: bool) -> dict:
    """Crop 8, no resize, S=4. Box 0 lies wholly right of the crop; box 1 touches its left
    border (x2 == 0 exactly) and box 2 touches nothing but its corner (x2 = y2 = 0)."""
    return dict(
        batch_index=torch.tensor([0, 0, 0]),
        frame_index=torch.tensor([0, 0, 0]),
        boxes=torch.tensor([[20.0, 0.0, 30.0, 4.0], [-5.0, 6.0, 0.0, 7.0], [-3.0, -3.0, 0.0, 0.0]]),
        scores=torch.tensor([0.5, 0.75, 0.25]),
        kinds=torch.tensor([1, 1, 1]),
        scale=torch.tensor([1.0]),
        crop_offset=torch.tensor([[0.0, 0.0]]),
        crop_size=torch.tensor([8]),
        flip=torch.tensor([False]),
        num_frames=1,
        map_size=4,
        drop_outside=drop,
    )


def test_outside_boxes_clipped_by_default_and_dropped_on_request():
    # Clipped: box 0 -> x (7, 7), y (0, 4) -> column 3, rows 0..2 (the original code's border
    # cells); box 1 -> x (0, 0), y (6, 7) -> cell (3, 0); box 2 -> cell (0, 0).
    clipped = torch.zeros(1, 2, 1, 4, 4)
    clipped[0, 1, 0, 0:3, 3] = 0.5
    clipped[0, 1, 0, 3, 0] = 0.75
    clipped[0, 1, 0, 0, 0] = 0.25
    dropped = clipped.clone()
    dropped[0, 1, 0, 0:3, 3] = 0  # only the wholly-outside box goes
    for drop, expected in ((False, clipped), (True, dropped)):
        case = outside_case(drop)
        assert torch.equal(call(interaction_map, case), expected)
        assert torch.equal(call(interaction_map_reference, case), expected)
        assert torch.equal(call(interaction_map_vectorized, case), expected)


def test_no_boxes_gives_zero_maps():
    case = tiny_case(False)
    for key in ("batch_index", "frame_index", "kinds"):
        case[key] = case[key][:0]
    case["boxes"], case["scores"] = case["boxes"][:0], case["scores"][:0]
    out = call(interaction_map, case)
    assert out.shape == (1, 2, 2, 4, 4) and out.dtype == torch.float32
    assert not out.any()


def random_case(seed: int, B: int, T: int, S: int, boxes_per_frame: int, device="cpu") -> dict:
    """Random boxes with integer and fractional coordinates: many overlap, many sit exactly on
    cell borders (crop 224, S=7 -> 32-pixel cells; integer coordinates with scale 1), some are
    zero-area (x1 == x2 or y1 == y2), some touch or cross the crop's borders or lie outside."""
    g = torch.Generator().manual_seed(seed)
    N = B * T * boxes_per_frame
    corner = torch.randint(-40, 300, (N, 2), generator=g).float()
    size = torch.randint(0, 160, (N, 2), generator=g).float()
    size[torch.rand(N, 2, generator=g) < 0.15] = 0  # zero-area boxes
    fractional = torch.rand(N, generator=g) < 0.5
    corner[fractional] += torch.rand(int(fractional.sum()), 2, generator=g) * 3
    boxes = torch.cat([corner, corner + size], 1)
    resize_factors = torch.tensor([256 / 340, 320 / 480, 1.25, 0.8])
    scale = torch.where(torch.rand(B, generator=g) < 0.5, torch.ones(B),
                        resize_factors[torch.randint(0, 4, (B,), generator=g)])
    crop_size = torch.where(torch.rand(B, generator=g) < 0.7, torch.full((B,), 224),
                            torch.randint(1, 300, (B,), generator=g))
    crop_offset = torch.randint(0, 60, (B, 2), generator=g).float()
    crop_offset[torch.rand(B, generator=g) < 0.3] += 0.5
    case = dict(
        batch_index=torch.randint(0, B, (N,), generator=g),
        frame_index=torch.randint(0, T, (N,), generator=g),
        boxes=boxes,
        scores=torch.rand(N, generator=g),
        kinds=torch.randint(0, 2, (N,), generator=g),
        scale=scale,
        crop_offset=crop_offset,
        crop_size=crop_size,
        flip=torch.rand(B, generator=g) < 0.5,
        num_frames=T,
        map_size=S,
    )
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in case.items()}


@pytest.mark.parametrize("B,T,S,per_frame",
                         [(3, 4, 7, 6), (2, 1, 7, 20), (2, 3, 1, 5), (4, 2, 14, 3)])
@pytest.mark.parametrize("hard", [False, True])
@pytest.mark.parametrize("drop_outside", [False, True])
def test_op_and_vectorized_match_reference_exactly(B, T, S, per_frame, hard, drop_outside):
    case = random_case(B * 100 + T * 10 + S, B, T, S, per_frame)
    expected = call(interaction_map_reference, case, hard=hard, drop_outside=drop_outside)
    assert expected.any()
    assert torch.equal(call(interaction_map, case, hard=hard, drop_outside=drop_outside), expected)
    assert torch.equal(call(interaction_map_vectorized, case, hard=hard, drop_outside=drop_outside),
                       expected)


def test_float32_geometry_at_cell_borders():
    """Boxes whose x * scale lands within float32 rounding of a cell border: the cell follows
    the documented float32 sequence (csrc/interaction_map.h), which float64 arithmetic would
    put in the neighbouring cell -- so every implementation must use the same float32 steps."""
    f32 = np.float32
    W, S = 224, 7  # 32-pixel cells
    scales, xs, cells = [], [], []
    for s in np.linspace(0.5, 1.5, 101).astype(np.float32):
        for k in range(1, S):
            x = f32(W / S * k / s)
            for candidate in x + np.arange(-3, 4, dtype=np.float32) * np.spacing(x):
                cell32 = int(np.floor((candidate * s) / f32(W) * f32(S)))
                cell64 = int(np.floor(np.float64(candidate) * np.float64(s) / W * S))
                if cell32 != cell64:
                    scales.append(float(s)), xs.append(float(candidate)), cells.append(cell32)
    B = len(xs)
    assert B >= 20
    case = dict(
        batch_index=torch.arange(B),
        frame_index=torch.zeros(B, dtype=torch.long),
        boxes=torch.tensor([[x, 0.0, x, 0.0] for x in xs]),
        scores=torch.ones(B),
        kinds=torch.zeros(B, dtype=torch.long),
        scale=torch.tensor(scales),
        crop_offset=torch.zeros(B, 2),
        crop_size=torch.full((B,), W),
        flip=torch.zeros(B, dtype=torch.bool),
        num_frames=1,
        map_size=S,
    )
    expected = torch.zeros(B, 2, 1, S, S)
    expected[torch.arange(B), 0, 0, 0, torch.tensor(cells)] = 1.0
    assert torch.equal(call(interaction_map, case), expected)
    assert torch.equal(call(interaction_map_reference, case), expected)
    assert torch.equal(call(interaction_map_vectorized, case), expected)


def test_non_contiguous_inputs():
    case = random_case(7, 3, 4, 7, 5)
    expected = call(interaction_map, case)
    strided = dict(case)
    strided["boxes"] = case["boxes"].t().contiguous().t()  # same values, column-major
    strided["scores"] = torch.stack([case["scores"], case["scores"]], 1)[:, 0]
    assert not strided["boxes"].is_contiguous() and not strided["scores"].is_contiguous()
    assert torch.equal(call(interaction_map, strided), expected)


def test_slow_pathway_maps():
    case = random_case(3, 2, 32, 7, 1)
    fast, slow = call(interaction_map, case, slow_frames=8)
    # linspace(0, 31, 8) = 0, 4.43, 8.86, 13.29, 17.71, 22.14, 26.57, 31 -> .long()
    assert torch.equal(slow, fast[:, :, [0, 4, 8, 13, 17, 22, 26, 31]])
    with pytest.raises(ValueError, match="slow_frames"):
        call(interaction_map, case, slow_frames=33)


def test_opcheck():
    case = random_case(11, 2, 3, 7, 4)
    torch.library.opcheck(torch.ops.egoexo.interaction_map.default, op_args(**case))
    torch.library.opcheck(torch.ops.egoexo.interaction_map.default,
                          op_args(**{**case, "hard": True, "drop_outside": True}))


def corrupt(case: dict, key: str, value) -> dict:
    return {**case, key: value}


BAD_INPUTS = [
    # (what, key, how to corrupt, expected words in the message)
    ("boxes dtype", "boxes", lambda c: c["boxes"].double(), "boxes must be Float"),
    ("boxes rank", "boxes", lambda c: c["boxes"].reshape(-1), r"boxes must have shape \[N, 4\]"),
    ("scores count", "scores", lambda c: c["scores"][:-1], r"scores must have shape \[N\]"),
    ("kinds count", "kinds", lambda c: c["kinds"].repeat(2), "kinds must have shape"),
    ("batch_index dtype", "batch_index", lambda c: c["batch_index"].int(),
     "batch_index must be Long"),
    ("crop_offset shape", "crop_offset", lambda c: c["crop_offset"][:, :1],
     r"crop_offset must have shape \[B, 2\] \(B = scale.size\(0\) = 2\)"),
    ("flip dtype", "flip", lambda c: c["flip"].long(), "flip must be Bool"),
    ("batch out of range", "batch_index", lambda c: torch.full_like(c["batch_index"], 2),
     r"batch_index\[0\] = 2 is out of range \[0, 2\)"),
    ("negative batch", "batch_index", lambda c: torch.full_like(c["batch_index"], -1),
     r"batch_index\[0\] = -1 is out of range"),
    ("frame out of range", "frame_index", lambda c: torch.full_like(c["frame_index"], 3),
     r"frame_index\[0\] = 3 is out of range \[0, 3\)"),
    ("negative crop", "crop_size", lambda c: torch.tensor([224, -5]), r"crop_size\[1\] = -5"),
    ("zero crop", "crop_size", lambda c: torch.tensor([0, 224]), r"crop_size\[0\] = 0"),
    ("bad kind", "kinds", lambda c: torch.full_like(c["kinds"], 2), r"kinds\[0\] = 2"),
    ("score above 1", "scores", lambda c: torch.full_like(c["scores"], 1.5), r"scores\[0\] = 1.5"),
    ("NaN score", "scores", lambda c: torch.full_like(c["scores"], float("nan")), r"scores\[0\]"),
    ("inverted box", "boxes", lambda c: c["boxes"][:, [2, 1, 0, 3]] + torch.tensor([1.0, 0, 0, 0]),
     r"boxes\[0\].*x1 <= x2"),
    ("NaN box", "boxes", lambda c: torch.full_like(c["boxes"], float("nan")), r"boxes\[0\]"),
    ("zero scale", "scale", lambda c: torch.zeros_like(c["scale"]), r"scale\[0\] = 0"),
]


@pytest.mark.parametrize("what,key,make,message", BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_names_the_argument(what, key, make, message):
    case = random_case(5, 2, 3, 7, 2)
    with pytest.raises(RuntimeError, match=message):
        torch.ops.egoexo.interaction_map(*op_args(**corrupt(case, key, make(case))))


def test_bad_scalars():
    case = random_case(5, 2, 3, 7, 2)
    with pytest.raises(RuntimeError, match="map_size must be >= 1"):
        torch.ops.egoexo.interaction_map(*op_args(**{**case, "map_size": 0}))
    with pytest.raises(RuntimeError, match="num_frames must be >= 1"):
        torch.ops.egoexo.interaction_map(*op_args(**{**case, "num_frames": 0}))
    with pytest.raises(ValueError, match="map_size"):
        call(interaction_map, case, map_size=0)


TOO_LARGE = [
    # (what, B, num_frames, map_size, expected words in the message)
    ("map_size 2^40", 2, 8, 2**40,
     r"num_frames = 8 and map_size = 1099511627776 for B = 2 samples \(scale.size\(0\)\) are too "
     r"large: the Float output \[B, 2, num_frames, map_size, map_size\] = "
     r"\[2, 2, 8, 1099511627776, 1099511627776\] would hold more than 2\^63 - 1 bytes"),
    # B * T wraps around to 0 in int64: the per-(sample, frame) table was then written past.
    ("num_frames 2^62", 4, 2**62, 7,
     r"num_frames = 4611686018427387904 and map_size = 7 for B = 4"),
    # 2^61 elements fit in int64, their 4-byte count does not.
    ("bytes overflow", 2, 2**59, 1, r"num_frames = 576460752303423488 and map_size = 1 for B = 2"),
]


@pytest.mark.parametrize("what,B,num_frames,map_size,message", TOO_LARGE,
                         ids=[t[0] for t in TOO_LARGE])
def test_sizes_too_large_for_int64_are_refused(what, B, num_frames, map_size, message):
    """Absurd sizes (which used to crash the process) are refused before anything is allocated,
    naming the op and the arguments, whether or not there are boxes to paint."""
    case = {**random_case(19, B, 3, 7, 2), "num_frames": num_frames, "map_size": map_size}
    no_boxes = {**case, **{k: case[k][:0] for k in ("batch_index", "frame_index", "boxes",
                                                    "scores", "kinds")}}
    for args in (case, no_boxes):
        with pytest.raises(RuntimeError, match="egoexo::interaction_map: " + message):
            torch.ops.egoexo.interaction_map(*op_args(**args))
    with pytest.raises(RuntimeError, match="egoexo::interaction_map: " + message):
        call(interaction_map, case)


def test_output_too_large_for_memory_names_the_op():
    """2^58 float32 cells: countable in int64, but 2^60 bytes, more than any 64-bit address
    space (2^57 bytes at most): the allocator refuses it, and the error names the op."""
    case = {**random_case(19, 2, 3, 7, 2), "num_frames": 2**56, "map_size": 1}
    with pytest.raises(RuntimeError, match=r"egoexo::interaction_map: could not allocate the "
                       r"output \[B, 2, num_frames, map_size, map_size\] = "
                       r"\[2, 2, 72057594037927936, 1, 1\]"):
        torch.ops.egoexo.interaction_map(*op_args(**case))


@requires_cuda
@pytest.mark.parametrize("hard", [False, True])
@pytest.mark.parametrize("drop_outside", [False, True])
def test_cuda_matches_cpu(hard, drop_outside):
    case = random_case(13, 8, 8, 7, 10)
    expected = call(interaction_map, case, hard=hard, drop_outside=drop_outside)
    cuda_case = {k: v.cuda() if isinstance(v, torch.Tensor) else v for k, v in case.items()}
    got = call(interaction_map, cuda_case, hard=hard, drop_outside=drop_outside)
    assert got.is_cuda
    assert torch.equal(got.cpu(), expected)


@requires_cuda
def test_cuda_opcheck_and_empty():
    case = random_case(17, 2, 3, 7, 4, device="cuda")
    torch.library.opcheck(torch.ops.egoexo.interaction_map.default, op_args(**case))
    per_box = ("batch_index", "frame_index", "boxes", "scores", "kinds")
    empty = {**case, **{k: case[k][:0] for k in per_box}}
    assert not call(interaction_map, empty).any()


@requires_cuda
def test_cuda_refuses_sizes_too_large():
    case = {**random_case(19, 2, 3, 7, 2, device="cuda"), "map_size": 2**40}
    with pytest.raises(RuntimeError, match=r"egoexo::interaction_map: num_frames = 3 and "
                       r"map_size = 1099511627776 for B = 2 samples"):
        torch.ops.egoexo.interaction_map(*op_args(**case))
