// Fused crop / resize / flip / normalise (egoexo::crop_normalize): the bilinear sampling rule
// shared by the CPU and CUDA kernels, and the host-side argument checks.
//
// Output pixel i of an axis of length n, sampling the source span [start, start + extent) of an
// axis whose real length is `limit`, reads source position (PyTorch's bilinear convention with
// align_corners=False, float32, in this order):
//   src = (start + (i + 0.5) * (extent / n)) - 0.5,  clamped to [0, limit - 1]
// and blends pixels floor(src) and min(floor(src) + 1, limit - 1) with weight frac(src) on the
// second. Clamping at 0 is what PyTorch does to negative positions; clamping at limit - 1 gives
// the same value as PyTorch's "high neighbour = low neighbour at the last pixel" and keeps
// every read inside the sample's real frame, never in the batch padding.
#pragma once
#include <ATen/ATen.h>
#include <c10/macros/Macros.h>

#include <cmath>

#include "checks.h"

namespace egoexo {

struct Tap {
  int64_t low, high;  // source pixels
  float frac;         // weight of `high`
};

C10_HOST_DEVICE inline Tap bilinear_tap(float start, float step, int64_t i, int64_t limit) {
  float src = start + (static_cast<float>(i) + 0.5f) * step - 0.5f;
  // fmaxf/fminf also map NaN to a bound, so the index below is always in range.
  src = ::fminf(::fmaxf(src, 0.f), static_cast<float>(limit - 1));
  const int64_t low = static_cast<int64_t>(src);
  return {low, low < limit - 1 ? low + 1 : low, src - static_cast<float>(low)};
}

// Per-channel affine form of (v / 255 - mean) / std: v * gain + bias.
struct Normalize {
  float gain[3], bias[3];
};

inline Normalize make_normalize(at::ArrayRef<double> mean, at::ArrayRef<double> std) {
  Normalize n;
  for (int c = 0; c < 3; ++c) {
    n.gain[c] = static_cast<float>(1.0 / (255.0 * std[c]));
    n.bias[c] = static_cast<float>(-mean[c] / std[c]);
  }
  return n;
}

constexpr const char* kCropNormalizeDims = "[B, 3, T, out_h, out_w]";

// Dtypes, shapes, devices and scalars (values inside tensors: see the kernels).
inline void check_crop_normalize_args(const at::Tensor& frames, const at::Tensor& sizes,
                                      const at::Tensor& boxes, const at::Tensor& flip,
                                      at::IntArrayRef out_size, at::ArrayRef<double> mean,
                                      at::ArrayRef<double> std, at::ScalarType out_dtype) {
  constexpr const char* op = "egoexo::crop_normalize";
  TORCH_CHECK(frames.scalar_type() == at::kByte && frames.dim() == 5 && frames.size(4) == 3, op,
              ": frames must be uint8 of shape [B, T, H, W, 3] (RGB, channels last), got ",
              frames.scalar_type(), " ", frames.sizes());
  // Sampling positions are float32, and bilinear_tap clamps them to float(limit - 1): every
  // integer up to 2^24 is exact in float32, but past it float(limit - 1) can round *up* to
  // limit, and the tap would read the padding (or past the buffer when limit = W).
  constexpr int64_t max_side = int64_t{1} << 24;
  TORCH_CHECK(frames.size(2) <= max_side && frames.size(3) <= max_side, op,
              ": frames' height and width must be at most 2^24 = ", max_side,
              " (float32 sampling positions), got ", frames.size(2), "x", frames.size(3));
  const int64_t B = frames.size(0);
  const at::Device device = frames.device();
  check_arg(sizes, op, "sizes", at::kLong, {B, 2},
            shape_doc("[B, 2] (h, w per sample)", "B", "frames.size(0)", B), device);
  check_arg(boxes, op, "boxes", at::kFloat, {B, 4},
            shape_doc("[B, 4] (x0, y0, w, h per sample)", "B", "frames.size(0)", B), device);
  check_arg(flip, op, "flip", at::kBool, {B}, shape_doc("[B]", "B", "frames.size(0)", B), device);
  TORCH_CHECK(out_size.size() == 2 && out_size[0] >= 1 && out_size[1] >= 1, op,
              ": out_size must be two positive ints (h, w), got ", out_size);
  TORCH_CHECK(mean.size() == 3, op, ": mean must have 3 values (R, G, B), got ", mean.size());
  TORCH_CHECK(std.size() == 3, op, ": std must have 3 values (R, G, B), got ", std.size());
  for (int c = 0; c < 3; ++c) {
    TORCH_CHECK(std::isfinite(mean[c]), op, ": mean[", c, "] = ", mean[c], " must be finite");
    TORCH_CHECK(std::isfinite(std[c]) && std[c] > 0, op, ": std[", c, "] = ", std[c],
                " must be finite and positive");
  }
  TORCH_CHECK(out_dtype == at::kFloat || out_dtype == at::kBFloat16, op,
              ": out_dtype must be float32 or bfloat16, got ", out_dtype);
  check_output_size(op,
                    c10::str("out_size = ", out_size, " for frames with B = ", B, ", T = ",
                             frames.size(1), " is too large"),
                    kCropNormalizeDims,
                    {B, 3, frames.size(1), out_size[0], out_size[1]}, out_dtype);
}

// The output, in the layout asked for: contiguous NCDHW (each frame three h x w channel planes,
// T * h * w apart), or channels_last_3d (NDHWC: each frame one h x w x 3 block with the three
// channels of a pixel adjacent) -- what a network under
// model.to(memory_format=torch.channels_last_3d) consumes without a conversion.
inline at::Tensor empty_crop_normalize_output(const at::Tensor& frames, at::IntArrayRef out_size,
                                              at::ScalarType out_dtype, bool channels_last) {
  const at::MemoryFormat layout =
      channels_last ? at::MemoryFormat::ChannelsLast3d : at::MemoryFormat::Contiguous;
  return allocate_output("egoexo::crop_normalize", kCropNormalizeDims,
                         {frames.size(0), 3, frames.size(1), out_size[0], out_size[1]},
                         frames.options().dtype(out_dtype).memory_format(layout));
}

}  // namespace egoexo
