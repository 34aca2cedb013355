// CPU kernel of egoexo::interaction_map.
//
// Boxes arrive in any order. One serial pass validates every value and counting-sorts the box
// ids by (sample, frame); then each (sample, frame) task rasterises its own few boxes straight
// into its two S x S output planes, which no other task touches -- no atomics, no zero pass
// over the whole output, and the planes stay in L1.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "interaction_map.h"

namespace egoexo {
namespace {

constexpr const char* kOp = "egoexo::interaction_map";

at::Tensor interaction_map_cpu(const at::Tensor& batch_index_in, const at::Tensor& frame_index_in,
                               const at::Tensor& boxes_in, const at::Tensor& scores_in,
                               const at::Tensor& kinds_in, const at::Tensor& scale_in,
                               const at::Tensor& crop_offset_in, const at::Tensor& crop_size_in,
                               const at::Tensor& flip_in, int64_t num_frames, int64_t map_size,
                               bool hard, bool drop_outside) {
  check_interaction_map_args(batch_index_in, frame_index_in, boxes_in, scores_in, kinds_in,
                             scale_in, crop_offset_in, crop_size_in, flip_in, num_frames,
                             map_size);
  // Allocated before the per-(sample, frame) tables, which are sized from the same dims: a
  // request too large for memory fails in the allocator (naming the op) before anything else.
  at::Tensor out = allocate_output(kOp, kInteractionMapDims,
                                   {scale_in.size(0), 2, num_frames, map_size, map_size},
                                   boxes_in.options());
  const at::Tensor batch_index = batch_index_in.contiguous();
  const at::Tensor frame_index = frame_index_in.contiguous();
  const at::Tensor boxes = boxes_in.contiguous(), scores = scores_in.contiguous();
  const at::Tensor kinds = kinds_in.contiguous(), scale = scale_in.contiguous();
  const at::Tensor crop_offset = crop_offset_in.contiguous(), crop_size = crop_size_in.contiguous();
  const at::Tensor flip = flip_in.contiguous();
  const int64_t N = boxes.size(0), B = scale.size(0), T = num_frames, S = map_size;

  const int64_t* bidx = batch_index.const_data_ptr<int64_t>();
  const int64_t* tidx = frame_index.const_data_ptr<int64_t>();
  const float* box = boxes.const_data_ptr<float>();
  const float* score = scores.const_data_ptr<float>();
  const int64_t* kind = kinds.const_data_ptr<int64_t>();
  const float* scl = scale.const_data_ptr<float>();
  const float* off = crop_offset.const_data_ptr<float>();
  const int64_t* crop = crop_size.const_data_ptr<int64_t>();
  const bool* flp = flip.const_data_ptr<bool>();

  for (int64_t b = 0; b < B; ++b) {
    TORCH_CHECK(crop[b] >= 1, kOp, ": crop_size[", b, "] = ", crop[b],
                ": the crop side must be positive");
    TORCH_CHECK(std::isfinite(scl[b]) && scl[b] > 0.f, kOp, ": scale[", b, "] = ", scl[b],
                ": the resize factor must be finite and positive");
    TORCH_CHECK(std::isfinite(off[2 * b]) && std::isfinite(off[2 * b + 1]), kOp,
                ": crop_offset[", b, "] = (", off[2 * b], ", ", off[2 * b + 1],
                ") must be finite");
  }

  // Validate every box, and count the boxes of each (sample, frame) -> start offsets.
  std::vector<int64_t> start(B * T + 1, 0);
  for (int64_t n = 0; n < N; ++n) {
    const int64_t b = bidx[n], t = tidx[n];
    TORCH_CHECK(b >= 0 && b < B, kOp, ": batch_index[", n, "] = ", b, " is out of range [0, ", B,
                ") (B = scale.size(0))");
    TORCH_CHECK(t >= 0 && t < T, kOp, ": frame_index[", n, "] = ", t, " is out of range [0, ", T,
                ") (num_frames)");
    TORCH_CHECK(kind[n] == 0 || kind[n] == 1, kOp, ": kinds[", n, "] = ", kind[n],
                ": expected 0 (hand) or 1 (object)");
    const float* c = box + 4 * n;
    TORCH_CHECK(std::isfinite(c[0]) && std::isfinite(c[1]) && std::isfinite(c[2]) &&
                    std::isfinite(c[3]) && c[0] <= c[2] && c[1] <= c[3],
                kOp, ": boxes[", n, "] = (", c[0], ", ", c[1], ", ", c[2], ", ", c[3],
                "): expected finite x1 <= x2 and y1 <= y2");
    TORCH_CHECK(score[n] >= 0.f && score[n] <= 1.f, kOp, ": scores[", n, "] = ", score[n],
                ": expected a confidence in [0, 1]");
    ++start[b * T + t + 1];
  }
  for (int64_t k = 0; k < B * T; ++k) start[k + 1] += start[k];
  std::vector<int64_t> order(N);
  {
    std::vector<int64_t> next(start.begin(), start.end() - 1);
    for (int64_t n = 0; n < N; ++n) order[next[bidx[n] * T + tidx[n]]++] = n;
  }

  float* maps = out.mutable_data_ptr<float>();
  const int64_t plane = S * S;
  // A task is a handful of boxes on two tiny planes: batch many per thread.
  at::parallel_for(0, B * T, /*grain_size=*/64, [&](int64_t begin, int64_t end) {
    for (int64_t key = begin; key < end; ++key) {
      const int64_t b = key / T, t = key % T;
      float* hand = maps + ((b * 2 + 0) * T + t) * plane;
      float* object = maps + ((b * 2 + 1) * T + t) * plane;
      std::fill(hand, hand + plane, 0.f);
      std::fill(object, object + plane, 0.f);
      for (int64_t k = start[key]; k < start[key + 1]; ++k) {
        const int64_t n = order[k];
        CellRect r;
        if (!box_to_cells(box + 4 * n, scl[b], off[2 * b], off[2 * b + 1], crop[b], flp[b],
                          drop_outside, S, &r))
          continue;
        const float value = hard ? 1.f : score[n];
        float* m = kind[n] == 0 ? hand : object;
        for (int64_t cy = r.y1; cy <= r.y2; ++cy)
          for (int64_t cx = r.x1; cx <= r.x2; ++cx)
            m[cy * S + cx] = std::max(m[cy * S + cx], value);
      }
    }
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(egoexo, CPU, m) { m.impl("interaction_map", &interaction_map_cpu); }

}  // namespace egoexo
