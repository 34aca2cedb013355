// CUDA kernel of egoexo::interaction_map: one thread per box, each writing its few cells with
// an atomic max. Every value written is >= 0, and for non-negative IEEE floats the order of the
// bit patterns read as int32 is the order of the values, so atomicMax on the int view is a float
// max. ~20k boxes on a 64x2x32x7x7 output is one zero-fill plus one tiny launch.
//
// Values inside the tensors are checked on the device (CUDA_KERNEL_ASSERT, as PyTorch's own
// indexing kernels do) so the op never synchronises with the host; an invalid box is also
// skipped, so nothing is ever written out of bounds.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <limits>

#include "interaction_map.h"

namespace egoexo {
namespace {

__global__ void interaction_map_kernel(const int64_t* __restrict__ bidx,
                                       const int64_t* __restrict__ tidx,
                                       const float* __restrict__ boxes,
                                       const float* __restrict__ scores,
                                       const int64_t* __restrict__ kinds,
                                       const float* __restrict__ scale,
                                       const float* __restrict__ offset,
                                       const int64_t* __restrict__ crop,
                                       const bool* __restrict__ flip, int64_t N, int64_t B,
                                       int64_t T, int64_t S, bool hard, bool drop_outside,
                                       float* __restrict__ maps) {
  const int64_t n = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (n >= N) return;
  const int64_t b = bidx[n], t = tidx[n], kind = kinds[n];
  const bool index_ok = b >= 0 && b < B && t >= 0 && t < T && (kind == 0 || kind == 1);
  CUDA_KERNEL_ASSERT_MSG(
      index_ok, "egoexo::interaction_map: batch_index, frame_index or kinds out of range");
  if (!index_ok) return;
  const float* box = boxes + 4 * n;
  const float score = scores[n];
  const bool value_ok = crop[b] >= 1 && isfinite(scale[b]) && scale[b] > 0.f &&
                        isfinite(offset[2 * b]) && isfinite(offset[2 * b + 1]) &&
                        isfinite(box[0]) && isfinite(box[1]) && isfinite(box[2]) &&
                        isfinite(box[3]) && box[0] <= box[2] && box[1] <= box[3] &&
                        score >= 0.f && score <= 1.f;
  CUDA_KERNEL_ASSERT_MSG(
      value_ok, "egoexo::interaction_map: invalid box, score, crop_size, scale or crop_offset");
  if (!value_ok) return;
  CellRect r;
  if (!box_to_cells(box, scale[b], offset[2 * b], offset[2 * b + 1], crop[b], flip[b],
                    drop_outside, S, &r))
    return;
  const int value_bits = __float_as_int(hard ? 1.f : score);
  int* plane = reinterpret_cast<int*>(maps + ((b * 2 + kind) * T + t) * S * S);
  for (int64_t cy = r.y1; cy <= r.y2; ++cy)
    for (int64_t cx = r.x1; cx <= r.x2; ++cx) atomicMax(plane + cy * S + cx, value_bits);
}

at::Tensor interaction_map_cuda(const at::Tensor& batch_index, const at::Tensor& frame_index,
                                const at::Tensor& boxes, const at::Tensor& scores,
                                const at::Tensor& kinds, const at::Tensor& scale,
                                const at::Tensor& crop_offset, const at::Tensor& crop_size,
                                const at::Tensor& flip, int64_t num_frames, int64_t map_size,
                                bool hard, bool drop_outside) {
  check_interaction_map_args(batch_index, frame_index, boxes, scores, kinds, scale, crop_offset,
                             crop_size, flip, num_frames, map_size);
  const c10::cuda::CUDAGuard guard(boxes.device());
  const int64_t N = boxes.size(0), B = scale.size(0);
  constexpr int threads = 256;
  const int64_t blocks = (N + threads - 1) / threads;
  TORCH_CHECK(blocks <= std::numeric_limits<int32_t>::max(), "egoexo::interaction_map: boxes ",
              "has N = ", N, " rows, more than one CUDA launch of ", threads,
              "-thread blocks covers (grid.x at most 2^31 - 1)");
  at::Tensor out = allocate_output("egoexo::interaction_map", kInteractionMapDims,
                                   {B, 2, num_frames, map_size, map_size}, boxes.options());
  out.zero_();
  if (N == 0 || B == 0) return out;
  const at::Tensor bi = batch_index.contiguous(), ti = frame_index.contiguous();
  const at::Tensor bx = boxes.contiguous(), sc = scores.contiguous(), kd = kinds.contiguous();
  const at::Tensor sl = scale.contiguous(), of = crop_offset.contiguous();
  const at::Tensor cr = crop_size.contiguous(), fl = flip.contiguous();
  interaction_map_kernel<<<blocks, threads, 0, c10::cuda::getCurrentCUDAStream()>>>(
      bi.const_data_ptr<int64_t>(), ti.const_data_ptr<int64_t>(), bx.const_data_ptr<float>(),
      sc.const_data_ptr<float>(), kd.const_data_ptr<int64_t>(), sl.const_data_ptr<float>(),
      of.const_data_ptr<float>(), cr.const_data_ptr<int64_t>(), fl.const_data_ptr<bool>(), N, B,
      num_frames, map_size, hard, drop_outside, out.mutable_data_ptr<float>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(egoexo, CUDA, m) { m.impl("interaction_map", &interaction_map_cuda); }

}  // namespace egoexo
