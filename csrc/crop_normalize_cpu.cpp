// CPU kernel of egoexo::crop_normalize.
//
// The sampling taps depend only on (sample, output row) and (sample, output column), so they
// are computed once per sample into small tables (flip folded into the column table). Each
// (sample, frame) task is then separable: a source row is blended horizontally once into a
// float row of the three channels and kept while the next output rows reuse it, and the
// vertical blend + normalisation is a contiguous, vectorisable loop. The float expression is
// still wy0 * (wx0 * p00 + wx1 * p01) + wy1 * (wx0 * p10 + wx1 * p11), as in PyTorch's
// upsample_bilinear2d and in the reference, whatever the output layout.
//
// The blended rows are kept in the output's own layout so that the vertical pass reads and
// writes in one order: planar [3][w] for the contiguous NCDHW output (three loops of w, one per
// channel plane), interleaved [w][3] for channels_last_3d (one loop of 3 * w, the three
// channels of a pixel written together, the per-channel gain and bias repeated along the row).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <cmath>
#include <type_traits>
#include <vector>

#include "crop_normalize.h"

namespace egoexo {
namespace {

constexpr const char* kOp = "egoexo::crop_normalize";

struct RowTap {
  int64_t low, high;  // source rows
  float w_low, w_high;
};
struct ColTap {
  int64_t low, high;  // byte offsets of the two source pixels inside a row
  float w_low, w_high;
};

// Horizontally blended source rows, for the last two source rows used: planar [3][w], or
// interleaved [w][3] when `channels_last`.
template <bool channels_last>
class RowCache {
 public:
  RowCache(const uint8_t* frame, int64_t row_bytes, const ColTap* cols, int64_t w)
      : frame_(frame), row_bytes_(row_bytes), cols_(cols), w_(w), data_(2 * 3 * w) {}

  // An output row needs two source rows and the next output row mostly the same ones, so two
  // slots suffice; `keep` is the other row the caller still needs (never evicted).
  const float* row(int64_t y, int64_t keep) {
    for (int s = 0; s < 2; ++s)
      if (key_[s] == y) return slot(s);
    const int s = key_[0] == keep ? 1 : 0;
    key_[s] = y;
    float* out = slot(s);
    const uint8_t* src = frame_ + y * row_bytes_;
    for (int64_t j = 0; j < w_; ++j) {
      const ColTap& x = cols_[j];
      for (int c = 0; c < 3; ++c)
        out[channels_last ? j * 3 + c : c * w_ + j] =
            x.w_low * src[x.low + c] + x.w_high * src[x.high + c];
    }
    return out;
  }

 private:
  float* slot(int s) { return data_.data() + s * 3 * w_; }
  const uint8_t* frame_;
  int64_t row_bytes_;
  const ColTap* cols_;
  int64_t w_;
  std::vector<float> data_;
  int64_t key_[2] = {-1, -1};
};

// One (sample, frame): `out` is the frame's first output element; `plane_stride` the distance
// between its channel planes (planar layout only). `gain_row` / `bias_row` are the
// normalisation of an interleaved row, 3 * w values (channels_last layout only).
template <typename out_t, bool channels_last>
void sample_frame(const uint8_t* frame, int64_t row_bytes, const RowTap* rows, const ColTap* cols,
                  int64_t h, int64_t w, const Normalize& norm, const float* gain_row,
                  const float* bias_row, out_t* out, int64_t plane_stride) {
  RowCache<channels_last> cache(frame, row_bytes, cols, w);
  for (int64_t i = 0; i < h; ++i) {
    const RowTap& y = rows[i];
    const float* top = cache.row(y.low, y.high);
    const float* bottom = cache.row(y.high, y.low);
    const float wy0 = y.w_low, wy1 = y.w_high;
    if constexpr (channels_last) {
      out_t* o = out + i * w * 3;
      for (int64_t k = 0; k < 3 * w; ++k)
        o[k] = static_cast<out_t>((wy0 * top[k] + wy1 * bottom[k]) * gain_row[k] + bias_row[k]);
    } else {
      for (int c = 0; c < 3; ++c) {
        const float* t = top + c * w;
        const float* b = bottom + c * w;
        const float gain = norm.gain[c], bias = norm.bias[c];
        out_t* o = out + c * plane_stride + i * w;
        for (int64_t j = 0; j < w; ++j)
          o[j] = static_cast<out_t>((wy0 * t[j] + wy1 * b[j]) * gain + bias);
      }
    }
  }
}

at::Tensor crop_normalize_cpu(const at::Tensor& frames_in, const at::Tensor& sizes_in,
                              const at::Tensor& boxes_in, const at::Tensor& flip_in,
                              at::IntArrayRef out_size, at::ArrayRef<double> mean,
                              at::ArrayRef<double> std, at::ScalarType out_dtype,
                              bool channels_last) {
  check_crop_normalize_args(frames_in, sizes_in, boxes_in, flip_in, out_size, mean, std,
                            out_dtype);
  // Allocated before the tap tables, which are sized from the same dims: a request too large
  // for memory fails in the allocator (naming the op) before anything else is built.
  at::Tensor out = empty_crop_normalize_output(frames_in, out_size, out_dtype, channels_last);
  const at::Tensor frames = frames_in.contiguous(), sizes = sizes_in.contiguous();
  const at::Tensor boxes = boxes_in.contiguous(), flip = flip_in.contiguous();
  const int64_t B = frames.size(0), T = frames.size(1), H = frames.size(2), W = frames.size(3);
  const int64_t h = out_size[0], w = out_size[1];
  const int64_t* size = sizes.const_data_ptr<int64_t>();
  const float* box = boxes.const_data_ptr<float>();
  const bool* flp = flip.const_data_ptr<bool>();

  for (int64_t b = 0; b < B; ++b) {
    const int64_t hb = size[2 * b], wb = size[2 * b + 1];
    TORCH_CHECK(hb >= 1 && hb <= H && wb >= 1 && wb <= W, kOp, ": sizes[", b, "] = (", hb, ", ",
                wb, ") must lie in [1, ", H, "] x [1, ", W, "] (the padded frames are ", H, "x",
                W, ")");
    const float* bx = box + 4 * b;
    TORCH_CHECK(std::isfinite(bx[0]) && std::isfinite(bx[1]) && std::isfinite(bx[2]) &&
                    std::isfinite(bx[3]) && bx[2] > 0.f && bx[3] > 0.f,
                kOp, ": boxes[", b, "] = (", bx[0], ", ", bx[1], ", ", bx[2], ", ", bx[3],
                "): expected finite (x0, y0, w, h) with w > 0 and h > 0");
  }
  // No tables for an empty output (B = 0 or T = 0): they would be sized by out_size alone.
  if (out.numel() == 0) return out;

  std::vector<RowTap> rows(B * h);
  std::vector<ColTap> cols(B * w);
  for (int64_t b = 0; b < B; ++b) {
    const int64_t hb = size[2 * b], wb = size[2 * b + 1];
    const float* bx = box + 4 * b;
    const float step_y = bx[3] / static_cast<float>(h), step_x = bx[2] / static_cast<float>(w);
    for (int64_t i = 0; i < h; ++i) {
      const Tap tap = bilinear_tap(bx[1], step_y, i, hb);
      rows[b * h + i] = {tap.low, tap.high, 1.f - tap.frac, tap.frac};
    }
    for (int64_t j = 0; j < w; ++j) {
      const Tap tap = bilinear_tap(bx[0], step_x, flp[b] ? w - 1 - j : j, wb);
      cols[b * w + j] = {tap.low * 3, tap.high * 3, 1.f - tap.frac, tap.frac};
    }
  }

  const Normalize norm = make_normalize(mean, std);
  std::vector<float> gain_row, bias_row;
  if (channels_last) {
    gain_row.resize(3 * w);
    bias_row.resize(3 * w);
    for (int64_t k = 0; k < 3 * w; ++k) {
      gain_row[k] = norm.gain[k % 3];
      bias_row[k] = norm.bias[k % 3];
    }
  }
  const uint8_t* src = frames.const_data_ptr<uint8_t>();
  const int64_t frame_bytes = H * W * 3, plane = h * w;
  auto run = [&](auto type_tag, auto channels_last_tag) {
    using out_t = decltype(type_tag);
    constexpr bool kChannelsLast = decltype(channels_last_tag)::value;
    out_t* dst = out.mutable_data_ptr<out_t>();
    at::parallel_for(0, B * T, /*grain_size=*/1, [&](int64_t begin, int64_t end) {
      for (int64_t key = begin; key < end; ++key) {
        const int64_t b = key / T, t = key % T;
        // NDHWC: frame `key` is the key-th h x w x 3 block; NCDHW: its channel 0 plane is
        // plane (b * 3 + 0) * T + t, and channel c is c * T planes further.
        out_t* frame_out = kChannelsLast ? dst + key * plane * 3 : dst + (b * 3 * T + t) * plane;
        sample_frame<out_t, kChannelsLast>(src + key * frame_bytes, W * 3, rows.data() + b * h,
                                           cols.data() + b * w, h, w, norm, gain_row.data(),
                                           bias_row.data(), frame_out, T * plane);
      }
    });
  };
  auto run_layout = [&](auto type_tag) {
    if (channels_last)
      run(type_tag, std::true_type{});
    else
      run(type_tag, std::false_type{});
  };
  if (out_dtype == at::kFloat)
    run_layout(float{});
  else
    run_layout(at::BFloat16{});
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(egoexo, CPU, m) { m.impl("crop_normalize", &crop_normalize_cpu); }

}  // namespace egoexo
