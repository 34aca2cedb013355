// Host-side argument checks shared by the CPU and CUDA kernels of every op. Each failure is a
// RuntimeError (TORCH_CHECK) that names the op, the argument and what was expected.
#pragma once
#include <ATen/ATen.h>

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

}  // namespace egoexo
