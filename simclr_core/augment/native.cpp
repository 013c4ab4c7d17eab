// Fused CPU kernels of the two-view augmentation: one pass per image where eager PyTorch makes one pass per
// operation over the whole chunk. Each kernel computes what its eager counterpart in functional.py computes
// (tests/simclr_core/test_augment_native.py compares them); native.py builds this file on first use.
//
// All kernels are single-threaded: the pipeline runs chunks side by side on its own worker threads
// (workers.py), so no OpenMP runtime is linked here (`omp simd` only asks the compiler to vectorise).
#include <torch/extension.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

namespace {

constexpr float kLuma[3] = {0.2989f, 0.587f, 0.114f};   // as functional._LUMA
enum { kBrightness = 0, kContrast = 1, kSaturation = 2, kHue = 3 };   // functional's colour-jitter op ids

void check(bool ok, const char* what) { TORCH_CHECK(ok, "simclr native augmentation: ", what); }

void check_batch(const at::Tensor& x, at::ScalarType dtype, const char* name) {
  TORCH_CHECK(x.device().is_cpu() && x.scalar_type() == dtype && x.dim() == 4 && x.is_contiguous(),
              "simclr native augmentation: ", name, " must be a contiguous (N, C, H, W) CPU tensor of ",
              c10::toString(dtype), ", got ", x.scalar_type(), " ", x.sizes(), " on ", x.device());
}

// torch.lerp's CPU form: exact at weight 0 and 1, one fused multiply-add.
inline float torch_lerp(float start, float end, float weight) {
  return std::abs(weight) < 0.5f ? std::fma(weight, end - start, start)
                                 : std::fma(weight - 1.0f, end - start, end);
}

inline float clamp01(float v) { return std::min(std::max(v, 0.0f), 1.0f); }

// Index into [0, n) of index i of a 'reflect'-padded axis (the edge is not repeated); needs |overhang| < n.
inline int64_t reflect(int64_t i, int64_t n) { return i < 0 ? -i : (i >= n ? 2 * (n - 1) - i : i); }

// Source coordinate of output pixel i of a bilinear resize of [offset, offset + length) to out_size pixels,
// as functional._source_coords: pixel centres as interpolate(align_corners=False), clamped into the box.
inline float source_coord(int64_t i, int64_t offset, int64_t length, int64_t out_size) {
  const float scale = static_cast<float>(length) / static_cast<float>(out_size);
  float src = std::max((static_cast<float>(i) + 0.5f) * scale - 0.5f, 0.0f);
  return std::min(src, static_cast<float>(length - 1)) + static_cast<float>(offset);
}

}  // namespace

// out[v] = the box boxes[v] = [top, left, height, width] of images[v % N], resized bilinearly to (size, size)
// and mirrored left-right where flip[v]; uint8 0..255 -> float [0, 1] (V views of N images, V a multiple of
// N: the pipeline's two views). Grey (C = 1) images are repeated to 3 channels. Equals
// resized_crop(to_float_rgb(images.repeat(V / N, 1, 1, 1)), boxes, size, flip).
void resized_crop_uint8(const at::Tensor& images, const at::Tensor& boxes, const at::Tensor& flip,
                        at::Tensor& out) {
  check_batch(images, at::kByte, "images");
  check_batch(out, at::kFloat, "out");
  const int64_t views = out.size(0), size = out.size(2), in_c = images.size(1);
  const int64_t in_h = images.size(2), in_w = images.size(3);
  check(out.size(1) == 3 && out.size(3) == size, "out must be (V, 3, size, size)");
  check(images.size(0) > 0 && views % images.size(0) == 0, "out must hold a multiple of the images' count");
  check(boxes.dim() == 2 && boxes.size(0) == views && boxes.size(1) == 4 && flip.numel() == views,
        "boxes (V, 4) and flip (V,): one row per view");
  const auto box = boxes.contiguous().to(at::kLong);
  const auto mirrored = flip.contiguous().to(at::kBool);
  const int64_t* box_p = box.data_ptr<int64_t>();
  const bool* flip_p = mirrored.data_ptr<bool>();
  const uint8_t* in = images.data_ptr<uint8_t>();
  float* dst = out.data_ptr<float>();

  std::vector<int64_t> x0(size), x1(size);
  std::vector<float> fx(size), row(in_w);
  for (int64_t v = 0; v < views; ++v) {
    const int64_t s = v % images.size(0), top = box_p[4 * v], left = box_p[4 * v + 1];
    const int64_t height = box_p[4 * v + 2], width = box_p[4 * v + 3];
    check(height > 0 && width > 0 && top >= 0 && left >= 0 && top + height <= in_h && left + width <= in_w,
          "crop box outside the image");
    for (int64_t j = 0; j < size; ++j) {
      const float sx = source_coord(flip_p[v] ? size - 1 - j : j, left, width, size);
      const int64_t lo = static_cast<int64_t>(std::floor(sx));
      x0[j] = lo;
      x1[j] = std::min(lo + 1, in_w - 1);
      fx[j] = sx - static_cast<float>(lo);
    }
    // Columns any output pixel reads: [left, last], last <= left + width (the right neighbour, weight 0
    // at the box's edge).
    const int64_t last = std::min(left + width, in_w - 1);
    for (int64_t c = 0; c < 3; ++c) {
      const uint8_t* plane = in + (s * in_c + std::min(c, in_c - 1)) * in_h * in_w;
      float* target = dst + (v * 3 + c) * size * size;
      for (int64_t i = 0; i < size; ++i) {
        const float sy = source_coord(i, top, height, size);
        const int64_t y0 = static_cast<int64_t>(std::floor(sy));
        const int64_t y1 = std::min(y0 + 1, in_h - 1);
        const float fy = sy - static_cast<float>(y0);
        const uint8_t* a = plane + y0 * in_w;
        const uint8_t* b = plane + y1 * in_w;
        for (int64_t x = left; x <= last; ++x) {
          const float top_v = static_cast<float>(a[x]) * (1.0f / 255.0f);
          const float bottom_v = static_cast<float>(b[x]) * (1.0f / 255.0f);
          row[x] = top_v + fy * (bottom_v - top_v);
        }
        float* line = target + i * size;
        for (int64_t j = 0; j < size; ++j) {
          const float l = row[x0[j]], r = row[x1[j]];
          line[j] = l + fx[j] * (r - l);
        }
      }
    }
  }
}

// The taps [first, last] of a K-tap kernel outside which every weight is below FLT_MIN (zero or subnormal), or the
// whole kernel where none reaches it. A narrow Gaussian's outer taps underflow: skipping them changes no sum by more
// than 1e-38 per pixel, and subnormal products, which cost x86 cores ~100 cycles each, made a blur with sigma 0.3
// 7x slower than one with sigma 2.
std::pair<int64_t, int64_t> significant_taps(const float* weight, int64_t k) {
  int64_t first = 0, last = k - 1;
  while (first < k && std::abs(weight[first]) < std::numeric_limits<float>::min()) ++first;
  while (last > first && std::abs(weight[last]) < std::numeric_limits<float>::min()) --last;
  return first < k ? std::make_pair(first, last) : std::make_pair(int64_t{0}, k - 1);
}

// x[rows[i]] blurred in place by the separable kernel kernels[i] (K taps, K odd): horizontal pass, then
// vertical, 'reflect' padding, as functional.gaussian_blur on those rows (less the taps significant_taps skips).
void blur_rows_(at::Tensor& x, const at::Tensor& rows, const at::Tensor& kernels) {
  check_batch(x, at::kFloat, "x");
  const auto row_idx = rows.contiguous().to(at::kLong);
  const auto kern = kernels.contiguous().to(at::kFloat);
  const int64_t n = row_idx.numel(), channels = x.size(1), h = x.size(2), w = x.size(3);
  check(kern.dim() == 2 && kern.size(0) == n && kern.size(1) % 2 == 1, "kernels must be (rows, odd K)");
  const int64_t k = kern.size(1), radius = k / 2;
  check(radius < h && radius < w, "reflect padding needs the kernel radius below the image side");
  const int64_t* idx = row_idx.data_ptr<int64_t>();
  float* base = x.data_ptr<float>();

  std::vector<float> padded(w + 2 * radius), tmp(h * w);
  for (int64_t i = 0; i < n; ++i) {
    check(idx[i] >= 0 && idx[i] < x.size(0), "row index out of range");
    const float* weight = kern.data_ptr<float>() + i * k;
    const auto [first, last] = significant_taps(weight, k);
    for (int64_t c = 0; c < channels; ++c) {
      float* plane = base + (idx[i] * channels + c) * h * w;
      for (int64_t y = 0; y < h; ++y) {
        const float* src = plane + y * w;
        for (int64_t j = 0; j < radius; ++j) {
          padded[j] = src[radius - j];
          padded[w + radius + j] = src[w - 2 - j];
        }
        std::copy(src, src + w, padded.begin() + radius);
        float* acc = tmp.data() + y * w;
        const float* p = padded.data();
        for (int64_t x_ = 0; x_ < w; ++x_) acc[x_] = weight[first] * p[x_ + first];
        for (int64_t t = first + 1; t <= last; ++t) {
          const float wt = weight[t];
          const float* shifted = p + t;
          for (int64_t x_ = 0; x_ < w; ++x_) acc[x_] += wt * shifted[x_];
        }
      }
      for (int64_t y = 0; y < h; ++y) {
        float* acc = plane + y * w;
        const float* top = tmp.data() + reflect(y - radius + first, h) * w;
        for (int64_t x_ = 0; x_ < w; ++x_) acc[x_] = weight[first] * top[x_];
        for (int64_t t = first + 1; t <= last; ++t) {
          const float wt = weight[t];
          const float* src = tmp.data() + reflect(y - radius + t, h) * w;
          for (int64_t x_ = 0; x_ < w; ++x_) acc[x_] += wt * src[x_];
        }
      }
    }
  }
}

namespace {

// std::floor for |x| < 2^31, in operations that vectorise: GCC leaves a loop calling std::floor scalar unless
// -fno-trapping-math (hue rotation ran 13x slower for it, most of the colour distortion's time at 224 px).
inline float floor_small(float x) {
  const float truncated = static_cast<float>(static_cast<int32_t>(x));   // rounds toward zero
  return truncated > x ? truncated - 1.0f : truncated;
}

inline float hue_channel(float offset, float hue6, float delta, float base) {
  float k = offset + hue6;                                               // in [-4, 14]: floor_small holds
  k -= 6.0f * floor_small(k * (1.0f / 6.0f));                            // k mod 6
  return std::min(std::max(std::abs(k - 2.0f), 1.0f), 2.0f) * delta + base;
}

// One image's hue rotated by `turns` (in [-0.5, 0.5]), in place, by functional.adjust_hue's closed form.
void rotate_hue(float* __restrict__ r, float* __restrict__ g, float* __restrict__ b, int64_t pixels,
                float turns) {
#pragma omp simd
  for (int64_t p = 0; p < pixels; ++p) {
    const float red = r[p], green = g[p], blue = b[p];
    const float maxc = std::max(std::max(red, green), blue);
    const float delta = maxc - std::min(std::min(red, green), blue);
    float numerator = (red - green) + 4.0f * delta;                      // max = b
    numerator = maxc == green ? (blue - red) + 2.0f * delta : numerator;
    numerator = maxc == red ? green - blue : numerator;                  // r wins ties, then g
    const float hue6 = numerator / std::max(delta, 1e-12f) + 6.0f * turns;
    const float base = maxc - 2.0f * delta;
    r[p] = hue_channel(5.0f, hue6, delta, base);
    g[p] = hue_channel(3.0f, hue6, delta, base);
    b[p] = hue_channel(1.0f, hue6, delta, base);
  }
}

inline float luma(float r, float g, float b) { return r * kLuma[0] + g * kLuma[1] + b * kLuma[2]; }

}  // namespace

// Colour distortion in place on x (N, 3, H, W): per image n, the four jitter stages in the order order[n]
// with factors[n] = [brightness, contrast, saturation, hue] (1, 1, 1, 0 is the identity), then colour
// dropping to the luma where dropped[n]. As functional.color_jitter followed by rgb_to_grayscale.
void color_(at::Tensor& x, const at::Tensor& factors, const at::Tensor& order, const at::Tensor& dropped) {
  check_batch(x, at::kFloat, "x");
  const int64_t n = x.size(0), pixels = x.size(2) * x.size(3);
  check(x.size(1) == 3, "x must have 3 channels");
  const auto f = factors.contiguous().to(at::kFloat);
  const auto o = order.contiguous().to(at::kLong);
  const auto d = dropped.contiguous().to(at::kBool);
  check(f.numel() == 4 * n && o.numel() == 4 * n && d.numel() == n, "factors and order (N, 4), dropped (N,)");
  const float* fp = f.data_ptr<float>();
  const int64_t* op = o.data_ptr<int64_t>();
  const bool* dp = d.data_ptr<bool>();

  for (int64_t i = 0; i < n; ++i) {
    float* __restrict__ r = x.data_ptr<float>() + i * 3 * pixels;
    float* __restrict__ g = r + pixels;
    float* __restrict__ b = g + pixels;
    for (int stage = 0; stage < 4; ++stage) {
      const int64_t which = op[4 * i + stage];
      check(which >= 0 && which < 4, "order must hold the op ids 0..3");
      const float factor = fp[4 * i + which];
      if (which == kHue) {
        if (factor != 0.0f) rotate_hue(r, g, b, pixels, factor);
        continue;
      }
      if (factor == 1.0f) continue;                                       // lerp by 1 is the identity
      if (which == kSaturation) {
#pragma omp simd
        for (int64_t p = 0; p < pixels; ++p) {
          const float grey = luma(r[p], g[p], b[p]);
          r[p] = clamp01(torch_lerp(grey, r[p], factor));
          g[p] = clamp01(torch_lerp(grey, g[p], factor));
          b[p] = clamp01(torch_lerp(grey, b[p], factor));
        }
        continue;
      }
      float reference = 0.0f;                                             // brightness blends with black
      if (which == kContrast) {
        double sum = 0.0;
        for (int64_t start = 0; start < pixels; start += 1024) {          // float partial sums, vectorised
          float part = 0.0f;
          const int64_t stop = std::min(start + 1024, pixels);
#pragma omp simd reduction(+ : part)
          for (int64_t p = start; p < stop; ++p) part += luma(r[p], g[p], b[p]);
          sum += part;
        }
        reference = static_cast<float>(sum / static_cast<double>(pixels));
      }
      for (float* channel : {r, g, b}) {
#pragma omp simd
        for (int64_t p = 0; p < pixels; ++p) channel[p] = clamp01(torch_lerp(reference, channel[p], factor));
      }
    }
    if (dp[i]) {
#pragma omp simd
      for (int64_t p = 0; p < pixels; ++p) r[p] = luma(r[p], g[p], b[p]);
      std::copy(r, r + pixels, g);
      std::copy(r, r + pixels, b);
    }
  }
}

// out = x * scale[c] + shift[c] per channel c, x a contiguous (N, 3, H, W) batch and out of the same
// shape, contiguous or channels_last (as the model reads it): functional.normalize with scale = 1 / std and
// shift = -mean / std.
void normalize_into(const at::Tensor& x, const std::vector<double>& scale, const std::vector<double>& shift,
                    at::Tensor& out) {
  check_batch(x, at::kFloat, "x");
  check(x.size(1) == 3 && scale.size() == 3 && shift.size() == 3, "3 channels, 3 scales and 3 shifts");
  check(out.device().is_cpu() && out.scalar_type() == at::kFloat && out.sizes() == x.sizes(),
        "out must be a float32 CPU tensor of x's shape");
  const bool channels_last = !out.is_contiguous() && out.is_contiguous(at::MemoryFormat::ChannelsLast);
  check(channels_last || out.is_contiguous(), "out must be contiguous or channels_last");
  const int64_t n = x.size(0), pixels = x.size(2) * x.size(3);
  const float s0 = scale[0], s1 = scale[1], s2 = scale[2];
  const float t0 = shift[0], t1 = shift[1], t2 = shift[2];
  for (int64_t i = 0; i < n; ++i) {
    const float* __restrict__ r = x.data_ptr<float>() + i * 3 * pixels;
    const float* __restrict__ g = r + pixels;
    const float* __restrict__ b = g + pixels;
    float* __restrict__ o = out.data_ptr<float>() + i * 3 * pixels;
    if (channels_last) {
#pragma omp simd
      for (int64_t p = 0; p < pixels; ++p) {
        o[3 * p] = r[p] * s0 + t0;
        o[3 * p + 1] = g[p] * s1 + t1;
        o[3 * p + 2] = b[p] * s2 + t2;
      }
    } else {
#pragma omp simd
      for (int64_t p = 0; p < pixels; ++p) {
        o[p] = r[p] * s0 + t0;
        o[pixels + p] = g[p] * s1 + t1;
        o[2 * pixels + p] = b[p] * s2 + t2;
      }
    }
  }
}

// The GIL is released while a kernel runs, so the pipeline's worker threads run kernels side by side.
PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  using release = py::call_guard<py::gil_scoped_release>;
  m.def("resized_crop_uint8", &resized_crop_uint8, release(),
        "crop, resize and flip uint8 sources into float views");
  m.def("blur_rows_", &blur_rows_, release(), "separable Gaussian blur of some rows, in place");
  m.def("color_", &color_, release(), "colour jitter in a per-image order, then colour dropping, in place");
  m.def("normalize_into", &normalize_into, release(), "per-channel affine normalisation into out");
}
