#include <torch/library.h>
#include <ATen/ATen.h>
at::Tensor scale2_cpu(const at::Tensor& x) { return x * 2; }
TORCH_LIBRARY_IMPL(egoexo, CPU, m) { m.impl("scale2", &scale2_cpu); }
