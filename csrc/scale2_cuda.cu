#include <torch/library.h>
#include <ATen/ATen.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAException.h>
__global__ void scale2_kernel(const float* x, float* y, int64_t n) {
  int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (i < n) y[i] = 2.f * x[i];
}
at::Tensor scale2_cuda(const at::Tensor& x) {
  auto xc = x.contiguous().to(at::kFloat);
  auto y = at::empty_like(xc);
  int64_t n = xc.numel();
  if (n) {
    scale2_kernel<<<(n + 255) / 256, 256, 0, c10::cuda::getCurrentCUDAStream()>>>(xc.data_ptr<float>(), y.data_ptr<float>(), n);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  return y;
}
TORCH_LIBRARY_IMPL(egoexo, CUDA, m) { m.impl("scale2", &scale2_cuda); }
