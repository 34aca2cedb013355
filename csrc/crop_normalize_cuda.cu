// CUDA kernel of egoexo::crop_normalize: one thread per output pixel (all three channels), so
// consecutive threads read neighbouring source pixels and write consecutive addresses: of each
// channel plane (contiguous NCDHW output), or of one interleaved h x w x 3 block, three values
// per thread (channels_last_3d output). The whole chain (crop, resize, flip, uint8 -> float,
// normalise, dtype, layout) is one pass over the data instead of one per step.
//
// Values inside sizes/boxes are asserted on the device (no host synchronisation); the sampling
// taps are clamped inside the sample's frame whatever the values, so no read is out of bounds.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <limits>
#include <type_traits>

#include "crop_normalize.h"

namespace egoexo {
namespace {

template <typename out_t, bool channels_last>
__global__ void crop_normalize_kernel(const uint8_t* __restrict__ frames,
                                      const int64_t* __restrict__ sizes,
                                      const float* __restrict__ boxes,
                                      const bool* __restrict__ flip, int64_t T, int64_t H,
                                      int64_t W, int h, int w, Normalize norm,
                                      out_t* __restrict__ out) {
  // grid.x walks the (sample, frame) pairs, grid.y x block the pixels of one output frame, so
  // the per-pixel index arithmetic is 32-bit (the host checks h * w against the grid's limit);
  // offsets into the frames and the output are int64.
  const int pixel = blockIdx.y * blockDim.x + threadIdx.x;
  if (pixel >= h * w) return;
  const int i = pixel / w, j = pixel % w;
  const int64_t key = blockIdx.x, b = key / T, t = key % T;
  const float* box = boxes + 4 * b;
  int64_t hb = sizes[2 * b], wb = sizes[2 * b + 1];
  CUDA_KERNEL_ASSERT_MSG(hb >= 1 && hb <= H && wb >= 1 && wb <= W,
                         "egoexo::crop_normalize: sizes out of the padded frame");
  CUDA_KERNEL_ASSERT_MSG(isfinite(box[0]) && isfinite(box[1]) && isfinite(box[2]) &&
                             isfinite(box[3]) && box[2] > 0.f && box[3] > 0.f,
                         "egoexo::crop_normalize: boxes must be finite with w > 0 and h > 0");
  hb = hb < 1 ? 1 : (hb > H ? H : hb);
  wb = wb < 1 ? 1 : (wb > W ? W : wb);
  const Tap ty = bilinear_tap(box[1], __fdiv_rn(box[3], static_cast<float>(h)), i, hb);
  const Tap tx = bilinear_tap(box[0], __fdiv_rn(box[2], static_cast<float>(w)),
                              flip[b] ? w - 1 - j : j, wb);
  const uint8_t* frame = frames + key * H * W * 3;
  const uint8_t* p00 = frame + (ty.low * W + tx.low) * 3;
  const uint8_t* p01 = frame + (ty.low * W + tx.high) * 3;
  const uint8_t* p10 = frame + (ty.high * W + tx.low) * 3;
  const uint8_t* p11 = frame + (ty.high * W + tx.high) * 3;
  const float wy1 = ty.frac, wy0 = 1.f - wy1, wx1 = tx.frac, wx0 = 1.f - wx1;
  const int64_t plane = static_cast<int64_t>(h) * w;
  // NDHWC: pixel `pixel` of frame `key` at (key * plane + pixel) * 3, channels adjacent;
  // NCDHW: plane (b * 3 + c) * T + t, channels T planes apart.
  out_t* o = channels_last ? out + (key * plane + pixel) * 3
                           : out + (b * 3 * T + t) * plane + pixel;
  const int64_t channel_stride = channels_last ? 1 : T * plane;
#pragma unroll
  for (int c = 0; c < 3; ++c) {
    const float v = wy0 * (wx0 * p00[c] + wx1 * p01[c]) + wy1 * (wx0 * p10[c] + wx1 * p11[c]);
    o[c * channel_stride] = static_cast<out_t>(v * norm.gain[c] + norm.bias[c]);
  }
}

at::Tensor crop_normalize_cuda(const at::Tensor& frames_in, const at::Tensor& sizes_in,
                               const at::Tensor& boxes_in, const at::Tensor& flip_in,
                               at::IntArrayRef out_size, at::ArrayRef<double> mean,
                               at::ArrayRef<double> std, at::ScalarType out_dtype,
                               bool channels_last) {
  check_crop_normalize_args(frames_in, sizes_in, boxes_in, flip_in, out_size, mean, std,
                            out_dtype);
  const c10::cuda::CUDAGuard guard(frames_in.device());
  const int64_t B = frames_in.size(0), T = frames_in.size(1);
  const int64_t H = frames_in.size(2), W = frames_in.size(3);
  const int64_t h = out_size[0], w = out_size[1];
  // The launch's own limits, before allocating (check_crop_normalize_args bounded
  // B * 3 * T * h * w, so these products do not overflow). An empty output launches nothing.
  constexpr int threads = 256;
  constexpr int64_t max_pixels = int64_t{65535} * threads;  // grid.y limit x block
  if (B * T > 0) {
    TORCH_CHECK(B * T <= std::numeric_limits<int32_t>::max(),
                "egoexo::crop_normalize: frames with B = ", B, ", T = ", T, " give B * T = ",
                B * T, " (sample, frame) pairs, more than one CUDA launch's grid.x holds ",
                "(2^31 - 1)");
    TORCH_CHECK(h * w <= max_pixels, "egoexo::crop_normalize: out_size = ", out_size,
                " gives ", h * w, " pixels per output frame, more than the CUDA kernel's ",
                max_pixels, " (65535 blocks of ", threads, " threads, 32-bit pixel index)");
  }
  at::Tensor out = empty_crop_normalize_output(frames_in, out_size, out_dtype, channels_last);
  if (out.numel() == 0) return out;
  const at::Tensor frames = frames_in.contiguous(), sizes = sizes_in.contiguous();
  const at::Tensor boxes = boxes_in.contiguous(), flip = flip_in.contiguous();
  const Normalize norm = make_normalize(mean, std);
  const dim3 blocks(static_cast<unsigned>(B * T),
                    static_cast<unsigned>((h * w + threads - 1) / threads));
  auto launch = [&](auto type_tag, auto channels_last_tag) {
    using out_t = decltype(type_tag);
    constexpr bool kChannelsLast = decltype(channels_last_tag)::value;
    crop_normalize_kernel<out_t, kChannelsLast>
        <<<blocks, threads, 0, c10::cuda::getCurrentCUDAStream()>>>(
            frames.const_data_ptr<uint8_t>(), sizes.const_data_ptr<int64_t>(),
            boxes.const_data_ptr<float>(), flip.const_data_ptr<bool>(), T, H, W,
            static_cast<int>(h), static_cast<int>(w), norm, out.mutable_data_ptr<out_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  };
  auto launch_layout = [&](auto type_tag) {
    if (channels_last)
      launch(type_tag, std::true_type{});
    else
      launch(type_tag, std::false_type{});
  };
  if (out_dtype == at::kFloat)
    launch_layout(float{});
  else
    launch_layout(at::BFloat16{});
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(egoexo, CUDA, m) { m.impl("crop_normalize", &crop_normalize_cuda); }

}  // namespace egoexo
