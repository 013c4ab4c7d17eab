// Training-mode BatchNorm fused with what follows it in a ResNet (the residual add and the ReLU), for CPU
// tensors in channels_last: y = relu(batch_norm(x) + residual). Eager PyTorch makes one pass over the
// activation per operation and, for 16-channel layers in channels_last, runs its BatchNorm about 3x slower
// than the memory allows (benchmarks/RESULTS.md); here the forward reads x twice and writes y once, and the
// backward reads its inputs twice and writes dx (and d residual) once.
//
// A channels_last (N, C, H, W) tensor is a row-major (M, C) matrix with M = N*H*W: every pass below walks
// rows and vectorises over the C channels. Statistics are accumulated per thread in float over blocks of
// rows, then in double, around a per-channel shift (the first row) so that var = E[(x-k)^2] - E[x-k]^2
// does not cancel when |mean| >> std. fused_bn.py wraps these in an autograd Function and checks them
// against nn.BatchNorm2d (tests/simclr_core/test_fused_bn.py).
#include <ATen/Parallel.h>
#include <torch/extension.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

namespace {

constexpr int64_t kBlockRows = 64;    // rows summed in float before the block's sums are added in double

inline float load(const float* p, int64_t i) { return p[i]; }
inline float load(const at::BFloat16* p, int64_t i) {
  const uint32_t word = static_cast<uint32_t>(reinterpret_cast<const uint16_t*>(p)[i]) << 16;
  return __builtin_bit_cast(float, word);
}

inline void store(float* p, int64_t i, float v) { p[i] = v; }
// Round to nearest even, NaN made quiet: c10's float -> BFloat16 conversion, written so that it vectorises.
inline void store(at::BFloat16* p, int64_t i, float v) {
  const uint32_t word = __builtin_bit_cast(uint32_t, v);
  const uint32_t rounded = (word + 0x7FFFu + ((word >> 16) & 1u)) >> 16;
  reinterpret_cast<uint16_t*>(p)[i] = static_cast<uint16_t>((word & 0x7FFFFFFFu) > 0x7F800000u ? 0x7FC0u : rounded);
}

// Per-channel sums over rows of (M, C) tensors: fn(row_begin, row_end, float* partial_0, float* partial_1)
// adds its rows into two C-long float partials; returns both totals in double.
template <typename RowsFn>
std::pair<std::vector<double>, std::vector<double>> channel_sums(int64_t rows, int64_t channels, RowsFn fn) {
  const int64_t threads = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), rows / kBlockRows));
  std::vector<double> totals(2 * threads * channels, 0.0);
  at::parallel_for(0, threads, 1, [&](int64_t first, int64_t last) {
    std::vector<float> block(2 * channels);
    for (int64_t t = first; t < last; ++t) {
      double* total = totals.data() + 2 * t * channels;
      const int64_t begin = rows * t / threads, end = rows * (t + 1) / threads;
      for (int64_t b = begin; b < end; b += kBlockRows) {
        std::fill(block.begin(), block.end(), 0.0f);
        fn(b, std::min(end, b + kBlockRows), block.data(), block.data() + channels);
        for (int64_t c = 0; c < 2 * channels; ++c) total[c] += block[c];
      }
    }
  });
  std::vector<double> first(channels, 0.0), second(channels, 0.0);
  for (int64_t t = 0; t < threads; ++t) {
    for (int64_t c = 0; c < channels; ++c) {
      first[c] += totals[2 * t * channels + c];
      second[c] += totals[2 * t * channels + channels + c];
    }
  }
  return {first, second};
}

// y = [relu](x * scale + offset [+ residual]) row by row, the branches resolved at compile time so that the
// channel loop vectorises.
template <typename T, bool kResidual, bool kRelu>
void normalize_rows(const T* in, const T* res, T* out, const float* scale, const float* offset, int64_t rows,
                    int64_t channels) {
  at::parallel_for(0, rows, 1024, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t at_row = r * channels;
#pragma omp simd
      for (int64_t c = 0; c < channels; ++c) {
        float v = load(in, at_row + c) * scale[c] + offset[c];
        if constexpr (kResidual) v += load(res, at_row + c);
        if constexpr (kRelu) v = std::max(v, 0.0f);
        store(out, at_row + c, v);
      }
    }
  });
}

// The gradient reaching bn(x) + residual: dy where the ReLU passed its input (y > 0), else 0.
template <bool kRelu, typename T>
inline float relu_gradient(const T* dy, const T* out, int64_t i) {
  const float g = load(dy, i);
  if constexpr (kRelu) return load(out, i) > 0.0f ? g : 0.0f;
  return g;
}

// Pass 1 of the backward: per-channel sums of g and g * (x - mean), g = dy masked by the ReLU (y > 0).
template <typename T, bool kRelu>
std::pair<std::vector<double>, std::vector<double>> gradient_sums(const T* dy, const T* in, const T* out,
                                                                  const float* m, int64_t rows, int64_t channels) {
  return channel_sums(rows, channels, [&](int64_t begin, int64_t end, float* sg, float* sgx) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t at_row = r * channels;
#pragma omp simd
      for (int64_t c = 0; c < channels; ++c) {
        const float g = relu_gradient<kRelu>(dy, out, at_row + c);
        sg[c] += g;
        sgx[c] += g * (load(in, at_row + c) - m[c]);
      }
    }
  });
}

// Pass 2 of the backward: dx = cg * g + cx * (x - mean) + c0, and d residual = g where asked for.
template <typename T, bool kRelu, bool kResidual>
void input_gradient_rows(const T* dy, const T* in, const T* out, const float* m, const float* cg,
                         const float* cx, const float* c0, T* dx, T* dr, int64_t rows, int64_t channels) {
  at::parallel_for(0, rows, 1024, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t at_row = r * channels;
#pragma omp simd
      for (int64_t c = 0; c < channels; ++c) {
        const float g = relu_gradient<kRelu>(dy, out, at_row + c);
        store(dx, at_row + c, cg[c] * g + cx[c] * (load(in, at_row + c) - m[c]) + c0[c]);
        if constexpr (kResidual) store(dr, at_row + c, g);
      }
    }
  });
}

void check_input(const at::Tensor& t, const at::Tensor& like, const char* name) {
  TORCH_CHECK(t.device().is_cpu() && t.scalar_type() == like.scalar_type() && t.sizes() == like.sizes() &&
                  t.is_contiguous(at::MemoryFormat::ChannelsLast),
              "simclr fused BatchNorm: ", name, " must be a channels_last CPU tensor of ", like.scalar_type(),
              " and shape ", like.sizes(), ", got ", t.scalar_type(), " ", t.sizes(), " on ", t.device());
}

void check_params(const at::Tensor& p, int64_t channels, const char* name) {
  TORCH_CHECK(p.device().is_cpu() && p.scalar_type() == at::kFloat && p.dim() == 1 && p.size(0) == channels &&
                  p.is_contiguous(),
              "simclr fused BatchNorm: ", name, " must be a contiguous float32 CPU vector of ", channels,
              " values, got ", p.scalar_type(), " ", p.sizes());
}

template <typename T>
std::vector<at::Tensor> forward_impl(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                                     const c10::optional<at::Tensor>& residual, double eps, bool relu) {
  const int64_t channels = x.size(1), rows = x.numel() / channels;
  const T* in = x.const_data_ptr<T>();
  const T* res = residual ? residual->const_data_ptr<T>() : nullptr;

  std::vector<float> shift(channels);
  for (int64_t c = 0; c < channels; ++c) shift[c] = load(in, c);
  const float* k = shift.data();
  auto sums = channel_sums(rows, channels, [&](int64_t begin, int64_t end, float* s1, float* s2) {
    for (int64_t r = begin; r < end; ++r) {
      const T* row = in + r * channels;
#pragma omp simd
      for (int64_t c = 0; c < channels; ++c) {
        const float d = load(row, c) - k[c];
        s1[c] += d;
        s2[c] += d * d;
      }
    }
  });

  auto options = x.options().dtype(at::kFloat);
  at::Tensor mean = at::empty({channels}, options), var = at::empty({channels}, options);
  at::Tensor invstd = at::empty({channels}, options);
  std::vector<float> scale(channels), offset(channels);
  const float* w = weight.const_data_ptr<float>();
  const float* b = bias.const_data_ptr<float>();
  for (int64_t c = 0; c < channels; ++c) {
    const double centred = sums.first[c] / rows;
    const double v = std::max(sums.second[c] / rows - centred * centred, 0.0);
    const double m = shift[c] + centred, inv = 1.0 / std::sqrt(v + eps);
    mean.data_ptr<float>()[c] = static_cast<float>(m);
    var.data_ptr<float>()[c] = static_cast<float>(v);
    invstd.data_ptr<float>()[c] = static_cast<float>(inv);
    scale[c] = static_cast<float>(w[c] * inv);
    offset[c] = static_cast<float>(b[c] - m * w[c] * inv);
  }

  at::Tensor y = at::empty_like(x, at::MemoryFormat::ChannelsLast);
  T* out = y.data_ptr<T>();
  if (res) {
    relu ? normalize_rows<T, true, true>(in, res, out, scale.data(), offset.data(), rows, channels)
         : normalize_rows<T, true, false>(in, res, out, scale.data(), offset.data(), rows, channels);
  } else {
    relu ? normalize_rows<T, false, true>(in, res, out, scale.data(), offset.data(), rows, channels)
         : normalize_rows<T, false, false>(in, res, out, scale.data(), offset.data(), rows, channels);
  }
  return {y, mean, var, invstd};
}

template <typename T>
std::vector<at::Tensor> backward_impl(const at::Tensor& grad_out, const at::Tensor& x, const at::Tensor& y,
                                      const at::Tensor& weight, const at::Tensor& mean, const at::Tensor& invstd,
                                      bool relu, bool want_residual) {
  const int64_t channels = x.size(1), rows = x.numel() / channels;
  const T* dy = grad_out.const_data_ptr<T>();
  const T* in = x.const_data_ptr<T>();
  const T* out = relu ? y.const_data_ptr<T>() : nullptr;
  const float* m = mean.const_data_ptr<float>();

  // g = dy where the ReLU passed its input (y > 0), else 0: the gradient reaching the sum bn(x) + residual.
  auto sums = relu ? gradient_sums<T, true>(dy, in, out, m, rows, channels)
                   : gradient_sums<T, false>(dy, in, out, m, rows, channels);

  auto options = x.options().dtype(at::kFloat);
  at::Tensor grad_weight = at::empty({channels}, options), grad_bias = at::empty({channels}, options);
  std::vector<float> coef_g(channels), coef_x(channels), coef_0(channels);
  const float* w = weight.const_data_ptr<float>();
  const float* inv = invstd.const_data_ptr<float>();
  for (int64_t c = 0; c < channels; ++c) {
    const double mean_g = sums.first[c] / rows;
    const double mean_gx = sums.second[c] / rows * inv[c];    // mean of g * xhat
    grad_bias.data_ptr<float>()[c] = static_cast<float>(sums.first[c]);
    grad_weight.data_ptr<float>()[c] = static_cast<float>(sums.second[c] * inv[c]);
    // dx = w * invstd * (g - mean_g - xhat * mean_gx), xhat = (x - mean) * invstd
    coef_g[c] = static_cast<float>(w[c] * inv[c]);
    coef_x[c] = static_cast<float>(-w[c] * inv[c] * inv[c] * mean_gx);
    coef_0[c] = static_cast<float>(-w[c] * inv[c] * mean_g);
  }

  at::Tensor grad_x = at::empty_like(x, at::MemoryFormat::ChannelsLast);
  at::Tensor grad_residual = want_residual ? at::empty_like(x, at::MemoryFormat::ChannelsLast) : at::Tensor();
  T* dx = grad_x.data_ptr<T>();
  T* dr = want_residual ? grad_residual.data_ptr<T>() : nullptr;
  const float *cg = coef_g.data(), *cx = coef_x.data(), *c0 = coef_0.data();
  if (relu) {
    want_residual ? input_gradient_rows<T, true, true>(dy, in, out, m, cg, cx, c0, dx, dr, rows, channels)
                  : input_gradient_rows<T, true, false>(dy, in, out, m, cg, cx, c0, dx, dr, rows, channels);
  } else {
    want_residual ? input_gradient_rows<T, false, true>(dy, in, out, m, cg, cx, c0, dx, dr, rows, channels)
                  : input_gradient_rows<T, false, false>(dy, in, out, m, cg, cx, c0, dx, dr, rows, channels);
  }
  return {grad_x, grad_weight, grad_bias, grad_residual};
}

}  // namespace

// y = [relu](batch_norm(x; batch statistics, weight, bias, eps) [+ residual]); returns (y, mean, biased var,
// invstd), the statistics as float32 (C,). Running statistics are left to the caller.
std::vector<at::Tensor> bn_act_forward(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                                       const c10::optional<at::Tensor>& residual, double eps, bool relu) {
  TORCH_CHECK(x.dim() == 4 && x.numel() > 0, "simclr fused BatchNorm: x must be a non-empty (N, C, H, W) tensor");
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kBFloat16,
              "simclr fused BatchNorm: x must be float32 or bfloat16, got ", x.scalar_type());
  check_input(x, x, "x");
  if (residual) check_input(*residual, x, "residual");
  check_params(weight, x.size(1), "weight");
  check_params(bias, x.size(1), "bias");
  at::NoGradGuard no_grad;
  pybind11::gil_scoped_release release;
  return x.scalar_type() == at::kFloat ? forward_impl<float>(x, weight, bias, residual, eps, relu)
                                       : forward_impl<at::BFloat16>(x, weight, bias, residual, eps, relu);
}

// Gradients of bn_act_forward: (d x, d weight, d bias, d residual); d residual is undefined unless asked for.
// `y` is the forward's output (its positive entries are where the ReLU passed the gradient); ignored
// without relu.
std::vector<at::Tensor> bn_act_backward(const at::Tensor& grad_out, const at::Tensor& x, const at::Tensor& y,
                                        const at::Tensor& weight, const at::Tensor& mean,
                                        const at::Tensor& invstd, bool relu, bool want_residual) {
  check_input(grad_out, x, "grad_out");
  if (relu) check_input(y, x, "y");
  check_params(weight, x.size(1), "weight");
  check_params(mean, x.size(1), "mean");
  check_params(invstd, x.size(1), "invstd");
  at::NoGradGuard no_grad;
  pybind11::gil_scoped_release release;
  return x.scalar_type() == at::kFloat
             ? backward_impl<float>(grad_out, x, y, weight, mean, invstd, relu, want_residual)
             : backward_impl<at::BFloat16>(grad_out, x, y, weight, mean, invstd, relu, want_residual);
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("bn_act_forward", &bn_act_forward, "fused training BatchNorm [+ residual] [+ ReLU], channels_last");
  m.def("bn_act_backward", &bn_act_backward, "gradients of bn_act_forward");
}
