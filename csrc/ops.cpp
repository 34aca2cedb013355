// Operator schemas of the `egoexo` library. Kernels live in *_cpu.cpp and *_cuda.cu and
// register themselves for their dispatch key; Python wrappers (losses/, data/) add the fake
// (meta) kernels used by torch.compile.
#include <Python.h>
#include <torch/library.h>

// Importing `_egoexo_C` from Python is what loads this library and runs the registrations.
extern "C" PyObject* PyInit__egoexo_C(void) {
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_egoexo_C", nullptr, -1, nullptr};
  return PyModule_Create(&module_def);
}

TORCH_LIBRARY(egoexo, m) {
  // x * 2: a first op so the build path is exercised from day one.
  m.def("scale2(Tensor x) -> Tensor");
}
