// Host-side argument checks shared by the CPU and CUDA kernels of every op. Each failure is a
// RuntimeError (TORCH_CHECK) that names the op, the argument and what was expected.
#pragma once
#include <ATen/ATen.h>
#include <c10/util/safe_numerics.h>

#include <algorithm>
#include <sstream>
#include <string>
#include <vector>

namespace egoexo {

// Checks dtype, rank, sizes (-1 = any size) and device of one tensor argument. `shape_doc` is
// how the expected shape is written in the message, e.g. "[N, 4] (N = boxes.size(0) = 7)".
inline void check_arg(const at::Tensor& t, const char* op, const char* name, at::ScalarType dtype,
                      const std::vector<int64_t>& shape, const std::string& shape_doc,
                      const at::Device& device) {
  TORCH_CHECK(t.scalar_type() == dtype, op, ": ", name, " must be ", dtype, ", got ",
              t.scalar_type());
  bool ok = t.dim() == static_cast<int64_t>(shape.size());
  for (size_t d = 0; ok && d < shape.size(); ++d) ok = shape[d] < 0 || t.size(d) == shape[d];
  TORCH_CHECK(ok, op, ": ", name, " must have shape ", shape_doc, ", got ", t.sizes());
  TORCH_CHECK(t.device() == device, op, ": ", name, " is on ", t.device(), " but ", op,
              " runs on ", device, " (all tensor arguments must be on one device)");
}

// "[N, 4] (N = what = n)"-style text for messages.
inline std::string shape_doc(const std::string& dims, const char* symbol, const char* what,
                             int64_t value) {
  std::ostringstream s;
  s << dims << " (" << symbol << " = " << what << " = " << value << ")";
  return s.str();
}

// Refuses, before anything is allocated, an output whose element count or byte count does not
// fit in int64: at::empty would fail deep in the allocator, and the kernels' own tables, sized
// from the same dims, would wrap around first and be written past their end. A size of 0 counts
// as 1 because PyTorch's strides are products of the sizes with 0 taken as 1, so they must fit
// even for an empty output; every offset a kernel computes into the output is then below this
// bound too. `arguments` names the op arguments that set the dims and says they are too large.
inline void check_output_size(const char* op, const std::string& arguments, const char* dims,
                              at::IntArrayRef sizes, at::ScalarType dtype) {
  int64_t count = 1;
  bool overflow = false;
  for (const int64_t size : sizes)
    overflow |= c10::mul_overflows(count, std::max<int64_t>(size, 1), &count);
  int64_t bytes = 0;
  overflow |= c10::mul_overflows(count, static_cast<int64_t>(c10::elementSize(dtype)), &bytes);
  TORCH_CHECK(!overflow, op, ": ", arguments, ": the ", dtype, " output ", dims, " = ", sizes,
              " would hold more than 2^63 - 1 bytes, which int64 sizes and offsets cannot count");
}

// at::empty for an op's output (sizes already passed check_output_size): a request the
// allocator refuses (out of memory) keeps its type and message, with the op and shape added.
inline at::Tensor allocate_output(const char* op, const char* dims, at::IntArrayRef sizes,
                                  const at::TensorOptions& options) {
  try {
    return at::empty(sizes, options);
  } catch (c10::Error& error) {
    TORCH_RETHROW(error, op, ": could not allocate the output ", dims, " = ", sizes);
  }
}

}  // namespace egoexo
