"""egoexo::crop_normalize (fused crop / bilinear resize / flip / normalise): the op against its
gather-based reference, against F.interpolate ("resize the whole frame, then crop" and "crop,
then resize"), padding never read, flip, bf16, the channels_last_3d output layout, opcheck,
bad input, sizes too large for int64; the batch-to-device helper; JPEG frame decoding; and the
CUDA kernel against the CPU one (GPU only)."""
import math

import pytest
import torch
import torch.nn.functional as F
from torchvision.io import ImageReadMode, decode_jpeg, encode_jpeg

from data.crop_normalize import (
    clips_to_device,
    crop_normalize,
    crop_normalize_reference,
    decode_jpeg_frames,
)

requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
MEAN, STD = (0.45, 0.40, 0.35), (0.225, 0.25, 0.2)
# F.interpolate agrees to float rounding; the brief's bound is one grey level after normalising.
ONE_LEVEL = 1 / 255 / min(STD)


def random_frames(seed, B, T, H, W):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (B, T, H, W, 3), generator=g, dtype=torch.uint8)


def normalise(x: torch.Tensor) -> torch.Tensor:
    """(x / 255 - mean) / std over dim 0 = channels of a float [3, ...] tensor."""
    shape = (3,) + (1,) * (x.dim() - 1)
    return (x / 255 - torch.tensor(MEAN).view(shape)) / torch.tensor(STD).view(shape)


def padded_batch(seed, real_sizes, T, pad_value=255):
    """Random frames of per-sample sizes in one batch padded with pad_value."""
    H, W = max(s[0] for s in real_sizes), max(s[1] for s in real_sizes)
    frames = torch.full((len(real_sizes), T, H, W, 3), pad_value, dtype=torch.uint8)
    real = random_frames(seed, len(real_sizes), T, H, W)
    for b, (h, w) in enumerate(real_sizes):
        frames[b, :, :h, :w] = real[b, :, :h, :w]
    return frames, torch.tensor(real_sizes)


def random_boxes(seed, real_sizes):
    """Source boxes: random fractional positions and sizes, some reaching past the frame."""
    g = torch.Generator().manual_seed(seed)
    boxes = []
    for h, w in real_sizes:
        bw, bh = (0.3 + 0.8 * torch.rand(2, generator=g)).tolist()
        x0, y0 = torch.rand(2, generator=g).tolist()
        boxes.append([x0 * w * 0.5, y0 * h * 0.5, bw * w, bh * h])
    return torch.tensor(boxes)


@pytest.mark.parametrize("out_size", [(24, 32), (7, 5), (1, 1), (96, 120)])
def test_op_matches_reference(out_size):
    sizes = [(45, 60), (30, 41), (60, 38), (1, 1)]
    frames, sizes_t = padded_batch(0, sizes, T=3)
    boxes = random_boxes(1, sizes)
    flip = torch.tensor([False, True, True, False])
    got = crop_normalize(frames, sizes_t, boxes, flip, out_size, MEAN, STD)
    expected = crop_normalize_reference(frames, sizes_t, boxes, flip, out_size, MEAN, STD)
    assert got.shape == (4, 3, 3, *out_size) and got.dtype == torch.float32
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


def resized_size(h, w, short):
    """PySlowFast's short-side resize: short -> `short`, long -> floor(long / short * size)."""
    if h <= w:
        return short, math.floor(w / h * short)
    return math.floor(h / w * short), short


@pytest.mark.parametrize("short,crop,at", [(32, 24, "corner"), (32, 24, "far_edge"),
                                           (80, 64, "middle"), (64, 40, "far_edge")])
@pytest.mark.parametrize("flip", [False, True])
def test_equals_resize_whole_frame_then_crop(short, crop, at, flip):
    """Identity (i): the op on the crop's box mapped back to decoded pixels == F.interpolate of
    the whole (real, unpadded) frame to the resized size, then the crop; the sample lives in a
    batch padded with 255 and the crop may touch the resized frame's far edges."""
    sizes = [(45, 60), (50, 47)]
    frames, sizes_t = padded_batch(2, sizes, T=2)
    boxes, expected = [], []
    for b, (h, w) in enumerate(sizes):
        H2, W2 = resized_size(h, w, short)
        x0, y0 = {"corner": (0, 0), "far_edge": (W2 - crop, H2 - crop),
                  "middle": ((W2 - crop) // 2, (H2 - crop) // 3)}[at]
        boxes.append([x0 * w / W2, y0 * h / H2, crop * w / W2, crop * h / H2])
        real = frames[b, :, :h, :w].permute(0, 3, 1, 2).float()  # T, 3, h, w
        resized = F.interpolate(real, size=(H2, W2), mode="bilinear", align_corners=False)
        cropped = resized[:, :, y0:y0 + crop, x0:x0 + crop]
        if flip:
            cropped = cropped.flip(-1)
        expected.append(normalise(cropped.permute(1, 0, 2, 3)))
    got = crop_normalize(frames, sizes_t, torch.tensor(boxes), torch.tensor([flip, flip]),
                         crop, MEAN, STD)
    torch.testing.assert_close(got, torch.stack(expected), rtol=0, atol=ONE_LEVEL)
    # In fact it agrees to float rounding of the box coordinates (measured ~3e-5).
    assert (got - torch.stack(expected)).abs().max() < 2e-4


@pytest.mark.parametrize("box,out_size", [
    ((10, 7, 50, 38), (24, 32)),   # integer box touching the right/bottom edge, downsampling
    ((3, 2, 40, 30), (17, 23)),     # interior integer box, downsampling (never clamps)
    ((0, 0, 60, 45), (90, 130)),    # the whole real frame, upsampling
    ((0, 0, 60, 45), (45, 60)),     # identity size: the frame itself
])
def test_equals_crop_then_resize(box, out_size):
    """Identity (ii): where both definitions agree (integer box; either downsampling, or a box
    starting at the frame origin), the op == F.interpolate of the cropped region."""
    frames, sizes = padded_batch(3, [(45, 60), (70, 80)], T=2)
    x0, y0, bw, bh = box
    region = frames[0, :, y0:y0 + bh, x0:x0 + bw].permute(0, 3, 1, 2).float()
    expected = F.interpolate(region, size=out_size, mode="bilinear", align_corners=False)
    got = crop_normalize(frames, sizes, torch.tensor([box, box], dtype=torch.float32),
                         torch.tensor([False, False]), out_size, MEAN, STD)
    torch.testing.assert_close(got[0], normalise(expected.permute(1, 0, 2, 3)), rtol=0, atol=1e-4)
    if box == (0, 0, 60, 45) and out_size == (45, 60):
        torch.testing.assert_close(got[0], normalise(region.permute(1, 0, 2, 3)), rtol=0, atol=1e-5)


def test_padding_is_never_read():
    """Same samples padded with 0 and with 255, boxes reaching past the real frames: the output
    must not change, and each sample alone (unpadded) gives the same values."""
    sizes = [(20, 31), (33, 18), (9, 40)]
    boxes = torch.tensor([[25.0, 15.0, 10.0, 9.0], [-3.0, 28.0, 30.0, 12.0],
                          [35.5, 2.0, 9.0, 11.0]])
    flip = torch.tensor([False, True, False])
    outs = []
    for pad in (0, 255):
        frames, sizes_t = padded_batch(4, sizes, T=2, pad_value=pad)
        outs.append(crop_normalize(frames, sizes_t, boxes, flip, (12, 14), MEAN, STD))
    assert torch.equal(outs[0], outs[1])
    for b, (h, w) in enumerate(sizes):
        alone = frames[b:b + 1, :, :h, :w].contiguous()
        got = crop_normalize(alone, torch.tensor([[h, w]]), boxes[b:b + 1], flip[b:b + 1],
                             (12, 14), MEAN, STD)
        assert torch.equal(got[0], outs[1][b])


def test_flip_mirrors_columns_exactly():
    frames, sizes = padded_batch(5, [(40, 50), (30, 33)], T=2)
    boxes = random_boxes(6, [(40, 50), (30, 33)])
    plain = crop_normalize(frames, sizes, boxes, torch.tensor([False, False]), (16, 21))
    flipped = crop_normalize(frames, sizes, boxes, torch.tensor([True, False]), (16, 21))
    assert torch.equal(flipped[0], plain[0].flip(-1))
    assert torch.equal(flipped[1], plain[1])
    assert not torch.equal(flipped[0], plain[0])


def test_bfloat16_output():
    frames, sizes = padded_batch(7, [(40, 50), (30, 33)], T=2)
    boxes, flip = random_boxes(8, [(40, 50), (30, 33)]), torch.tensor([True, False])
    full = crop_normalize(frames, sizes, boxes, flip, (16, 21), MEAN, STD)
    half = crop_normalize(frames, sizes, boxes, flip, (16, 21), MEAN, STD, dtype=torch.bfloat16)
    assert half.dtype == torch.bfloat16
    # Round to nearest bf16 (8 significant bits): within half an ulp, plus float noise.
    assert ((half.float() - full).abs() <= full.abs() * 2.0 ** -8 + 1e-6).all()
    ref = crop_normalize_reference(frames, sizes, boxes, flip, (16, 21), MEAN, STD, torch.bfloat16)
    torch.testing.assert_close(half, ref, rtol=2.0 ** -7, atol=1e-5)


def test_non_contiguous_frames_and_empty_batch():
    frames, sizes = padded_batch(9, [(20, 24), (22, 19)], T=4)
    boxes, flip = random_boxes(10, [(20, 24), (22, 19)]), torch.tensor([False, True])
    every_other = frames[:, ::2]
    assert not every_other.is_contiguous()
    torch.testing.assert_close(crop_normalize(every_other, sizes, boxes, flip, 8),
                               crop_normalize(every_other.contiguous(), sizes, boxes, flip, 8))
    empty = crop_normalize(frames[:0], sizes[:0], boxes[:0], flip[:0], (8, 9))
    assert empty.shape == (0, 3, 4, 8, 9)


def channels_last_strides(shape):
    """The strides PyTorch gives a channels_last_3d tensor of `shape`: NDHWC in memory."""
    return torch.empty(shape, memory_format=torch.channels_last_3d).stride()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("out_size", [(16, 21), (7, 5), (1, 1)])
def test_layouts_match_reference(dtype, channels_last, out_size):
    sizes = [(40, 50), (30, 33), (1, 1)]
    frames, sizes_t = padded_batch(7, sizes, T=3)
    boxes, flip = random_boxes(8, sizes), torch.tensor([True, False, True])
    got = crop_normalize(frames, sizes_t, boxes, flip, out_size, MEAN, STD, dtype,
                         channels_last=channels_last)
    expected = crop_normalize_reference(frames, sizes_t, boxes, flip, out_size, MEAN, STD, dtype,
                                        channels_last=channels_last)
    assert got.shape == (3, 3, 3, *out_size) and got.dtype == dtype
    tolerance = dict(rtol=0, atol=1e-5) if dtype == torch.float32 else dict(rtol=2.0 ** -7,
                                                                            atol=1e-5)
    torch.testing.assert_close(got, expected, **tolerance)
    if channels_last:
        assert got.is_contiguous(memory_format=torch.channels_last_3d)
        assert got.stride() == channels_last_strides(got.shape)
        assert expected.is_contiguous(memory_format=torch.channels_last_3d)
    else:
        assert got.is_contiguous()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_channels_last_is_the_same_values_in_ndhwc_memory(dtype):
    """The channels_last output holds today's contiguous output bit for bit, with the three
    channels of each pixel adjacent in memory (NDHWC), w then h then T then B."""
    sizes = [(45, 60), (30, 41)]
    frames, sizes_t = padded_batch(18, sizes, T=4)
    boxes, flip = random_boxes(19, sizes), torch.tensor([False, True])
    planar = crop_normalize(frames, sizes_t, boxes, flip, (12, 17), MEAN, STD, dtype)
    interleaved = crop_normalize(frames, sizes_t, boxes, flip, (12, 17), MEAN, STD, dtype,
                                 channels_last=True)
    assert interleaved.stride() == (4 * 12 * 17 * 3, 1, 12 * 17 * 3, 17 * 3, 3)
    assert torch.equal(interleaved, planar)
    ndhwc = interleaved.permute(0, 2, 3, 4, 1)
    assert ndhwc.is_contiguous()
    # Memory order, element by element: pixel (b, t, i, j) channel c at
    # (((b * T + t) * h + i) * w + j) * 3 + c.
    memory = torch.as_strided(interleaved, (interleaved.numel(),), (1,))
    assert torch.equal(memory, planar.permute(0, 2, 3, 4, 1).reshape(-1))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("channels_last", [False, True])
def test_opcheck(dtype, channels_last):
    frames, sizes = padded_batch(11, [(20, 24), (22, 19)], T=2)
    boxes, flip = random_boxes(12, [(20, 24), (22, 19)]), torch.tensor([False, True])
    torch.library.opcheck(
        torch.ops.egoexo.crop_normalize.default,
        (frames, sizes, boxes, flip, [8, 6], list(MEAN), list(STD), dtype, channels_last))


def test_opcheck_default_layout():
    """The schema's channels_last defaults to False: eight arguments still call the op."""
    frames, sizes = padded_batch(11, [(20, 24), (22, 19)], T=2)
    boxes, flip = random_boxes(12, [(20, 24), (22, 19)]), torch.tensor([False, True])
    args = (frames, sizes, boxes, flip, [8, 6], list(MEAN), list(STD), torch.float32)
    torch.library.opcheck(torch.ops.egoexo.crop_normalize.default, args)
    assert torch.ops.egoexo.crop_normalize(*args).is_contiguous()


def test_empty_batch_channels_last():
    frames, sizes = padded_batch(9, [(20, 24)], T=4)
    empty = crop_normalize(frames[:0], sizes[:0], torch.zeros(0, 4), torch.zeros(0, dtype=bool),
                           (8, 9), channels_last=True)
    assert empty.shape == (0, 3, 4, 8, 9) and empty.stride() == channels_last_strides(empty.shape)


BAD_INPUTS = [
    # (what, op argument, its bad value from the good ones, expected words in the message)
    ("frames dtype", "frames", lambda a: a["frames"].float(), "frames must be uint8"),
    ("frames rank", "frames", lambda a: a["frames"][:, 0],
     r"\[B, T, H, W, 3\] \(RGB, channels last\), got Byte \[2, 22, 24, 3\]"),
    ("frames channels", "frames", lambda a: a["frames"][..., :2], r"\[B, T, H, W, 3\]"),
    # Past 2^24 a float32 sampling position cannot name every pixel: the last column would
    # round up onto the padding, or past the buffer. (A stride-0 view: no memory.)
    ("frames too wide", "frames", lambda a: a["frames"][:, :1, :1, :1].expand(2, 1, 1, 2**24 + 1, 3),
     r"frames' height and width must be at most 2\^24 = 16777216 .*got 1x16777217"),
    ("sizes count", "sizes", lambda a: a["sizes"][:1], r"sizes must have shape \[B, 2\]"),
    ("sizes dtype", "sizes", lambda a: a["sizes"].int(), "sizes must be Long"),
    ("sizes too big", "sizes", lambda a: torch.tensor([[20, 24], [23, 19]]),
     r"sizes\[1\] = \(23, 19\) must lie in \[1, 22\] x \[1, 24\]"),
    ("sizes zero", "sizes", lambda a: torch.tensor([[0, 24], [22, 19]]), r"sizes\[0\] = \(0, 24\)"),
    ("boxes shape", "boxes", lambda a: a["boxes"][:, :3], r"boxes must have shape \[B, 4\]"),
    ("box width", "boxes", lambda a: torch.tensor([[0.0, 0, 5, 5], [1.0, 1, -2, 5]]),
     r"boxes\[1\].*w > 0"),
    ("box NaN", "boxes", lambda a: torch.tensor([[float("nan"), 0, 5, 5], [1.0, 1, 2, 5]]),
     r"boxes\[0\]"),
    ("flip count", "flip", lambda a: torch.tensor([True]), r"flip must have shape \[B\]"),
    ("out_size", "out_size", lambda a: [0, 8], "out_size must be two positive ints"),
    ("out_size length", "out_size", lambda a: [8], "out_size must be two positive ints"),
    ("mean length", "mean", lambda a: [0.5, 0.5], "mean must have 3 values"),
    ("std zero", "std", lambda a: [0.2, 0.0, 0.2], r"std\[1\] = 0"),
    ("out dtype", "out_dtype", lambda a: torch.float16, "out_dtype must be float32 or bfloat16"),
]


@pytest.mark.parametrize("what,name,make,message", BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_names_the_argument(what, name, make, message):
    frames, sizes = padded_batch(13, [(20, 24), (22, 19)], T=2)
    args = dict(frames=frames, sizes=sizes, boxes=random_boxes(14, [(20, 24), (22, 19)]),
                flip=torch.tensor([False, True]), out_size=[8, 8], mean=list(MEAN),
                std=list(STD), out_dtype=torch.float32)
    args[name] = make(args)
    with pytest.raises(RuntimeError, match=message):
        torch.ops.egoexo.crop_normalize(*args.values())


def test_wrapper_rejects_bad_out_size():
    frames, sizes = padded_batch(13, [(20, 24)], T=1)
    with pytest.raises(ValueError, match="out_size"):
        crop_normalize(frames, sizes, torch.tensor([[0.0, 0, 5, 5]]), torch.tensor([False]),
                       (8, 8, 8))


def absurd_case(B=2, T=8, frame_count=None):
    """B clips of T tiny frames; frame_count > T makes the frames a stride-0 view of that many
    frames (no memory), so the op sees an absurd T without anything being allocated."""
    frames, sizes = padded_batch(20, [(4, 5)] * max(B, 1), T=T)
    frames, sizes = frames[:B], sizes[:B]
    if frame_count is not None:
        frames = frames[:, :1].expand(B, frame_count, 4, 5, 3)
    boxes = torch.tensor([[0.0, 0.0, 5.0, 4.0]]).expand(B, 4)
    return frames, sizes, boxes, torch.zeros(B, dtype=bool)


TOO_LARGE = [
    # (what, case, out_size, dtype, expected words in the message)
    ("out_size 2^40 x 2^40", {}, [2**40, 2**40], torch.float32,
     r"out_size = \[1099511627776, 1099511627776\] for frames with B = 2, T = 8 is too large: "
     r"the Float output \[B, 3, T, out_h, out_w\] = \[2, 3, 8, 1099511627776, 1099511627776\] "
     r"would hold more than 2\^63 - 1 bytes"),
    ("out_h 2^62", {}, [2**62, 1], torch.bfloat16, r"out_size = \[4611686018427387904, 1\]"),
    # 3 * 2^60 elements fit in int64, their 4-byte float32 count does not.
    ("bytes overflow", {"B": 1, "T": 1}, [2**30, 2**30], torch.float32,
     r"out_size = \[1073741824, 1073741824\] for frames with B = 1, T = 1 is too large"),
    ("T = 2^40 frames", {"frame_count": 2**40}, [2**12, 2**12], torch.float32,
     r"out_size = \[4096, 4096\] for frames with B = 2, T = 1099511627776 is too large"),
    # Empty, but its strides (products of the sizes, 0 taken as 1) would still overflow.
    ("empty batch", {"B": 0}, [2**40, 2**40], torch.float32,
     r"out_size = \[1099511627776, 1099511627776\] for frames with B = 0, T = 8 is too large"),
]


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("what,case,out_size,dtype,message", TOO_LARGE,
                         ids=[t[0] for t in TOO_LARGE])
def test_sizes_too_large_for_int64_are_refused(what, case, out_size, dtype, message,
                                               channels_last):
    """Absurd sizes (which used to crash the process) are refused before anything is allocated,
    naming the op and out_size."""
    frames, sizes, boxes, flip = absurd_case(**case)
    with pytest.raises(RuntimeError, match="egoexo::crop_normalize: " + message):
        torch.ops.egoexo.crop_normalize(frames, sizes, boxes, flip, out_size, list(MEAN),
                                        list(STD), dtype, channels_last)


def test_output_too_large_for_memory_names_the_op():
    """3 * 2^60 bfloat16 values: countable in int64, but 6.9e18 bytes, more than any 64-bit
    address space (2^57 bytes at most): the allocator refuses it, and the error names the op."""
    frames, sizes, boxes, flip = absurd_case(B=1, T=1)
    with pytest.raises(RuntimeError, match=r"egoexo::crop_normalize: could not allocate the "
                       r"output \[B, 3, T, out_h, out_w\] = \[1, 3, 1, 1073741824, 1073741824\]"):
        crop_normalize(frames, sizes, boxes, flip, (2**30, 2**30), dtype=torch.bfloat16)


def jpeg_batch():
    """Two clips of 3 frames, 24x30 and 17x22, one of them grey-scale JPEG."""
    g = torch.Generator().manual_seed(15)
    clips = [torch.randint(0, 256, (3, 3, 24, 30), generator=g, dtype=torch.uint8),
             torch.randint(0, 256, (3, 1, 17, 22), generator=g, dtype=torch.uint8)]
    return [[encode_jpeg(frame, quality=90) for frame in clip] for clip in clips]


def test_decode_jpeg_frames_cpu():
    encoded = jpeg_batch()
    frames, sizes = decode_jpeg_frames(encoded, "cpu")
    assert frames.shape == (2, 3, 24, 30, 3) and frames.dtype == torch.uint8
    assert sizes.tolist() == [[24, 30], [17, 22]]
    for b, clip in enumerate(encoded):
        h, w = sizes[b].tolist()
        for t, data in enumerate(clip):
            expected = decode_jpeg(data, mode=ImageReadMode.RGB).permute(1, 2, 0)
            assert torch.equal(frames[b, t, :h, :w], expected)
    assert not frames[1, :, 17:].any() and not frames[1, :, :, 22:].any()


def test_decode_jpeg_frames_bad_input():
    encoded = jpeg_batch()
    with pytest.raises(ValueError, match="sample 1 has 2 frames"):
        decode_jpeg_frames([encoded[0], encoded[1][:2]])
    broken = [encoded[0], [encoded[1][0], encoded[1][1], torch.zeros(100, dtype=torch.uint8)]]
    with pytest.raises(ValueError, match="sample 1 frame 2 is not a decodable JPEG"):
        decode_jpeg_frames(broken)
    mixed = [encoded[0], [encoded[1][0], encoded[0][0], encoded[1][2]]]
    message = "sample 1 frame 1 is 24x30 but frame 0 of that sample is 17x22"
    with pytest.raises(ValueError, match=message):
        decode_jpeg_frames(mixed)
    with pytest.raises(ValueError, match="sample 0 frame 1: expected the file's bytes"):
        decode_jpeg_frames([[encoded[0][0], [1, 2, 3], encoded[0][2]]])


def test_clips_to_device_on_decoded_and_jpeg_batches():
    """Both kinds of collated batch reach the op with the right frames and sizes; out_size
    defaults to the batch's one crop size, and a batch mixing crop sizes must name it."""
    encoded = jpeg_batch()
    frames, sizes = decode_jpeg_frames(encoded)
    boxes = torch.tensor([[2.0, 1.5, 20.0, 18.0], [0.5, 0.0, 21.0, 16.0]])  # 2nd past the frame
    flip = torch.tensor([True, False])
    expected = crop_normalize_reference(frames, sizes, boxes, flip, 12, MEAN, STD)
    common = {"boxes": boxes, "flip": flip, "crop_size": torch.tensor([12, 12])}
    for pixels in ({"jpeg": encoded}, {"frames": frames, "sizes": sizes}):
        got = clips_to_device({**pixels, **common}, "cpu", mean=MEAN, std=STD)
        assert got.shape == (2, 3, 3, 12, 12)
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match=r"mixes crop sizes \[12, 14\]; pass out_size"):
        clips_to_device({"jpeg": encoded, **common, "crop_size": torch.tensor([12, 14])}, "cpu")


@requires_cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("channels_last", [False, True])
def test_cuda_matches_cpu(dtype, channels_last):
    sizes = [(45, 60), (30, 41), (60, 38)]
    frames, sizes_t = padded_batch(16, sizes, T=3)
    boxes, flip = random_boxes(17, sizes), torch.tensor([False, True, True])
    expected = crop_normalize(frames, sizes_t, boxes, flip, (24, 32), MEAN, STD, dtype)
    cuda_args = (frames.cuda(), sizes_t.cuda(), boxes.cuda(), flip.cuda(), (24, 32), MEAN, STD,
                 dtype)
    got = crop_normalize(*cuda_args, channels_last=channels_last)
    assert got.is_cuda and got.dtype == dtype
    if channels_last:
        assert got.stride() == channels_last_strides(got.shape)
        # The layout changes where values go, never what they are.
        assert torch.equal(got, crop_normalize(*cuda_args))
    else:
        assert got.is_contiguous()
    # The GPU may fuse multiply-adds in the sampling positions: float noise, not a shift.
    tolerance = 1e-4 if dtype == torch.float32 else 2.0 ** -7
    torch.testing.assert_close(got.cpu().float(), expected.float(), rtol=tolerance, atol=1e-4)
    torch.library.opcheck(torch.ops.egoexo.crop_normalize.default,
                          (frames.cuda(), sizes_t.cuda(), boxes.cuda(), flip.cuda(), [24, 32],
                           list(MEAN), list(STD), dtype, channels_last))


@requires_cuda
@pytest.mark.parametrize("out_size,message", [
    ([2**40, 2**40], r"out_size = \[1099511627776, 1099511627776\] for frames with B = 2, T = 8 "
                     r"is too large"),
    # 4097^2 pixels > 65535 blocks x 256 threads: past the kernel's 32-bit pixel index.
    ([4097, 4097], r"out_size = \[4097, 4097\] gives 16785409 pixels per output frame"),
])
def test_cuda_refuses_sizes_too_large(out_size, message):
    frames, sizes, boxes, flip = (x.cuda() for x in absurd_case())
    with pytest.raises(RuntimeError, match="egoexo::crop_normalize: " + message):
        crop_normalize(frames, sizes, boxes, flip, out_size, channels_last=True)


@requires_cuda
def test_decode_jpeg_frames_cuda_matches_cpu():
    encoded = jpeg_batch()
    cpu_frames, cpu_sizes = decode_jpeg_frames(encoded, "cpu")
    frames, sizes = decode_jpeg_frames(encoded, "cuda")
    assert frames.is_cuda and sizes.is_cuda and torch.equal(sizes.cpu(), cpu_sizes)
    # nvJPEG and libjpeg-turbo may round the IDCT/colour conversion differently.
    difference = (frames.cpu().int() - cpu_frames.int()).abs()
    assert difference.float().mean() < 1.0 and difference.max() <= 16
