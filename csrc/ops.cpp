// Operator schemas of the `egoexo` library. Kernels live in *_cpu.cpp and *_cuda.cu and
// register themselves for their dispatch key; the Python wrappers (losses/interaction_map.py,
// data/crop_normalize.py) add the fake kernels used by torch.compile and document the ops.
#include <Python.h>
#include <torch/library.h>

// Importing `_egoexo_C` from Python is what loads this library and runs the registrations.
extern "C" PyObject* PyInit__egoexo_C(void) {
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_egoexo_C", nullptr, -1, nullptr};
  return PyModule_Create(&module_def);
}

TORCH_LIBRARY(egoexo, m) {
  // Interaction-Map soft targets (SPEC section 3): N kept detections of a batch -> float32
  // [B, 2, num_frames, map_size, map_size] (channel 0 hands, 1 objects). Per box: batch_index
  // (sample b), frame_index (frame in clip), boxes (x1, y1, x2, y2 in decoded-frame pixels),
  // scores (confidence), kinds (0 hand, 1 object); per sample: scale (short-side resize factor),
  // crop_offset (x0, y0 in resized pixels), crop_size (square crop side), flip.
  m.def(
      "interaction_map(Tensor batch_index, Tensor frame_index, Tensor boxes, Tensor scores, "
      "Tensor kinds, Tensor scale, Tensor crop_offset, Tensor crop_size, Tensor flip, "
      "int num_frames, int map_size, bool hard, bool drop_outside) -> Tensor");
  // Fused crop / bilinear resize / horizontal flip / normalise: uint8 frames [B, T, H, W, 3]
  // (sample b's real frames in the top-left sizes[b] = (h_b, w_b) region), boxes (x0, y0, w, h)
  // = the source region per sample -> out_dtype [B, 3, T, out_h, out_w] = (v/255 - mean)/std,
  // contiguous, or with channels_last_3d strides (NDHWC in memory) when channels_last.
  m.def(
      "crop_normalize(Tensor frames, Tensor sizes, Tensor boxes, Tensor flip, int[] out_size, "
      "float[] mean, float[] std, ScalarType out_dtype, bool channels_last=False) -> Tensor");
}
