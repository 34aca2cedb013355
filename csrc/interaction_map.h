// Interaction-Map soft targets (SPEC section 3): the box geometry shared by the CPU and CUDA
// kernels, and the host-side argument checks.
//
// Exactness: a box edge that lands exactly on a cell border must fall in the same cell in every
// implementation (C++, CUDA, losses/interaction_map.py's references), so the geometry is a
// fixed sequence of single IEEE float32 operations, each rounded once:
//   v = x * scale;  v = v - x0;  [flip: v = float(W - 1) - v];  v = min(max(v, 0), float(W - 1));
//   v = v / float(W);  cell = clamp(floor(v * float(S)), 0, S - 1)
// Nothing may be fused into an FMA or replaced by a reciprocal: on the host setup.py compiles
// with -ffp-contract=off; on the GPU the __f*_rn intrinsics are never contracted and keep IEEE
// division under --use_fast_math.
#pragma once
#include <ATen/ATen.h>
#include <c10/macros/Macros.h>

#include <cmath>

#include "checks.h"

namespace egoexo {

#if defined(__CUDA_ARCH__)
#define EGOEXO_MUL(a, b) __fmul_rn((a), (b))
#define EGOEXO_SUB(a, b) __fsub_rn((a), (b))
#define EGOEXO_DIV(a, b) __fdiv_rn((a), (b))
#else
#define EGOEXO_MUL(a, b) ((a) * (b))
#define EGOEXO_SUB(a, b) ((a) - (b))
#define EGOEXO_DIV(a, b) ((a) / (b))
#endif

// Inclusive cell rectangle [x1..x2] x [y1..y2] of one box on the S x S map.
struct CellRect {
  int64_t x1, y1, x2, y2;
};

// One normalised coordinate -> its cell: clamp(floor(v * S), 0, S - 1).
C10_HOST_DEVICE inline int64_t coord_to_cell(float v, float map_side, int64_t S) {
  int64_t cell = static_cast<int64_t>(::floorf(EGOEXO_MUL(v, map_side)));
  return cell < 0 ? 0 : (cell > S - 1 ? S - 1 : cell);
}

// A box (x1, y1, x2, y2 in decoded-frame pixels) through the clip's augmentation, in SPEC order:
// (1) x scale, (2) minus the crop offset, (3) horizontal flip inside the crop, (4) clip to the
// crop [0, W-1] (or drop a box lying wholly outside it when drop_outside), (5) divide by W.
// Returns false for a dropped box.
C10_HOST_DEVICE inline bool box_to_cells(const float* box, float scale, float x0, float y0,
                                         int64_t crop, bool flip, bool drop_outside, int64_t S,
                                         CellRect* out) {
  const float last = static_cast<float>(crop - 1);
  const float side = static_cast<float>(crop);
  const float map_side = static_cast<float>(S);
  float x1 = EGOEXO_SUB(EGOEXO_MUL(box[0], scale), x0);
  float y1 = EGOEXO_SUB(EGOEXO_MUL(box[1], scale), y0);
  float x2 = EGOEXO_SUB(EGOEXO_MUL(box[2], scale), x0);
  float y2 = EGOEXO_SUB(EGOEXO_MUL(box[3], scale), y0);
  if (flip) {
    const float flipped_x1 = EGOEXO_SUB(last, x2);
    x2 = EGOEXO_SUB(last, x1);
    x1 = flipped_x1;
  }
  // Wholly outside = no point of the box inside [0, W-1]^2; a box touching the border stays.
  if (drop_outside && (x2 < 0.f || x1 > last || y2 < 0.f || y1 > last)) return false;
  x1 = ::fminf(::fmaxf(x1, 0.f), last);
  y1 = ::fminf(::fmaxf(y1, 0.f), last);
  x2 = ::fminf(::fmaxf(x2, 0.f), last);
  y2 = ::fminf(::fmaxf(y2, 0.f), last);
  out->x1 = coord_to_cell(EGOEXO_DIV(x1, side), map_side, S);
  out->y1 = coord_to_cell(EGOEXO_DIV(y1, side), map_side, S);
  out->x2 = coord_to_cell(EGOEXO_DIV(x2, side), map_side, S);
  out->y2 = coord_to_cell(EGOEXO_DIV(y2, side), map_side, S);
  return true;
}

constexpr const char* kInteractionMapDims = "[B, 2, num_frames, map_size, map_size]";

// Dtypes, shapes, devices and scalars, and an output size that int64 can count (not values
// inside tensors: the CPU kernel checks those while it reads them; the CUDA kernel asserts them
// on the device).
inline void check_interaction_map_args(const at::Tensor& batch_index, const at::Tensor& frame_index,
                                       const at::Tensor& boxes, const at::Tensor& scores,
                                       const at::Tensor& kinds, const at::Tensor& scale,
                                       const at::Tensor& crop_offset, const at::Tensor& crop_size,
                                       const at::Tensor& flip, int64_t num_frames,
                                       int64_t map_size) {
  constexpr const char* op = "egoexo::interaction_map";
  TORCH_CHECK(boxes.dim() == 2 && boxes.size(1) == 4, op,
              ": boxes must have shape [N, 4] (x1, y1, x2, y2 per box), got ", boxes.sizes());
  TORCH_CHECK(scale.dim() == 1, op,
              ": scale must have shape [B] (one resize factor per sample), got ", scale.sizes());
  const int64_t N = boxes.size(0), B = scale.size(0);
  const at::Device device = boxes.device();
  const std::string per_box = shape_doc("[N]", "N", "boxes.size(0)", N);
  const std::string per_sample = shape_doc("[B]", "B", "scale.size(0)", B);
  check_arg(boxes, op, "boxes", at::kFloat, {N, 4}, "[N, 4]", device);
  check_arg(batch_index, op, "batch_index", at::kLong, {N}, per_box, device);
  check_arg(frame_index, op, "frame_index", at::kLong, {N}, per_box, device);
  check_arg(scores, op, "scores", at::kFloat, {N}, per_box, device);
  check_arg(kinds, op, "kinds", at::kLong, {N}, per_box, device);
  check_arg(scale, op, "scale", at::kFloat, {B}, per_sample, device);
  check_arg(crop_offset, op, "crop_offset", at::kFloat, {B, 2},
            shape_doc("[B, 2]", "B", "scale.size(0)", B), device);
  check_arg(crop_size, op, "crop_size", at::kLong, {B}, per_sample, device);
  check_arg(flip, op, "flip", at::kBool, {B}, per_sample, device);
  TORCH_CHECK(num_frames >= 1, op, ": num_frames must be >= 1, got ", num_frames);
  TORCH_CHECK(map_size >= 1, op, ": map_size must be >= 1, got ", map_size);
  check_output_size(op,
                    c10::str("num_frames = ", num_frames, " and map_size = ", map_size,
                             " for B = ", B, " samples (scale.size(0)) are too large"),
                    kInteractionMapDims, {B, 2, num_frames, map_size, map_size}, at::kFloat);
}

}  // namespace egoexo
