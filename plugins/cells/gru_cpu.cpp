// A GRU layer's training kernels for CPU (one direction), torch's GRU formula:
//   r = sig(W_ir x + b_ir + W_hr h + b_hr)     z = sig(W_iz x + b_iz + W_hz h + b_hz)
//   n = tanh(W_in x + b_in + r * (W_hn h + b_hn))     h' = n + z * (h - n)
// Shapes: x [T,B,I], h0 [B,H], w_ih [3H,I], w_hh [3H,H], biases [3H] (gate rows r | z | n).
// The input products of every step are one GEMM, each step is one small GEMM plus one
// vectorised pass over the gates, and the weight gradients are GEMMs over all steps.
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <algorithm>
#include <cmath>
#include <vector>

using torch::Tensor;

// The logistic function. x is clamped where exp(-x) would overflow: under -ffast-math an
// infinite exp makes 1 / (1 + inf) NaN instead of 0 (a saturated gate must stay finite).
template <typename S> static inline S sigm(S x) {
  const S limit = sizeof(S) == 4 ? S(80) : S(700);
  x = std::min(std::max(x, -limit), limit);
  return S(1) / (S(1) + std::exp(-x));
}

// Forward, one row: g [3H] holds the input products (+ b_ih) and becomes r | z | n in
// place; gh [3H] = W_hh h + b_hh; ghn_out [H] keeps W_hn h + b_hn; h [H] -> y [H].
template <typename S>
static void forward_row(S* g, const S* __restrict__ gh, const S* __restrict__ h,
                        S* __restrict__ y, S* __restrict__ ghn_out, int64_t H) {
#pragma omp simd
  for (int64_t j = 0; j < H; ++j) {
    S r = sigm(g[j] + gh[j]);
    S z = sigm(g[H + j] + gh[H + j]);
    S ghn = gh[2 * H + j];
    S n = S(2) * sigm(S(2) * (g[2 * H + j] + r * ghn)) - S(1);      // tanh
    y[j] = n + z * (h[j] - n);
    g[j] = r; g[H + j] = z; g[2 * H + j] = n; ghn_out[j] = ghn;
  }
}

// Backward, one row: g = dh + dy; rzn [3H], ghn [H], h_prev [H] -> dgi [3H] (gradient of
// the input products), dgh [3H] (of W_hh h + b_hh), direct [H] = g * z.
template <typename S>
static void backward_row(const S* __restrict__ dh, const S* __restrict__ dy,
                         const S* __restrict__ rzn, const S* __restrict__ ghn,
                         const S* __restrict__ hp, S* __restrict__ dgi, S* __restrict__ dgh,
                         S* __restrict__ dir, int64_t H) {
#pragma omp simd
  for (int64_t j = 0; j < H; ++j) {
    S g = dh[j] + dy[j];
    S r = rzn[j], z = rzn[H + j], n = rzn[2 * H + j];
    S dn = g * (S(1) - z) * (S(1) - n * n);
    S dz = g * (hp[j] - n) * z * (S(1) - z);
    S dr = dn * ghn[j] * r * (S(1) - r);
    dgi[j] = dr; dgi[H + j] = dz; dgi[2 * H + j] = dn;
    dgh[j] = dr; dgh[H + j] = dz; dgh[2 * H + j] = dn * r;
    dir[j] = g * z;
  }
}

// Returns y [T,B,H], rzn [T,B,3H], ghn [T,B,H] (the last two for backward).
std::vector<Tensor> gru_forward(Tensor x, Tensor h0, Tensor w_ih, Tensor w_hh,
                                c10::optional<Tensor> b_ih, c10::optional<Tensor> b_hh) {
  const int64_t T = x.size(0), B = x.size(1), H = h0.size(1);
  auto xf = x.reshape({T * B, x.size(2)});
  Tensor rzn = b_ih ? at::addmm(*b_ih, xf, w_ih.t()) : at::mm(xf, w_ih.t());   // [T*B, 3H]
  auto y = at::empty({T, B, H}, x.options());
  auto ghn = at::empty({T, B, H}, x.options());
  auto gh = at::empty({B, 3 * H}, x.options());
  auto wt = w_hh.t();
  Tensor h = h0.contiguous();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "gru_forward", [&] {
    for (int64_t t = 0; t < T; ++t) {
      if (b_hh) at::addmm_out(gh, *b_hh, h, wt); else at::mm_out(gh, h, wt);
      scalar_t* g_t = rzn.data_ptr<scalar_t>() + t * B * 3 * H;
      const scalar_t* gh_p = gh.data_ptr<scalar_t>();
      const scalar_t* h_p = h.data_ptr<scalar_t>();
      scalar_t* y_t = y.data_ptr<scalar_t>() + t * B * H;
      scalar_t* n_t = ghn.data_ptr<scalar_t>() + t * B * H;
      at::parallel_for(0, B, 16, [&](int64_t b0, int64_t b1) {
        for (int64_t b = b0; b < b1; ++b)
          forward_row<scalar_t>(g_t + b * 3 * H, gh_p + b * 3 * H, h_p + b * H, y_t + b * H,
                                n_t + b * H, H);
      });
      h = y[t];
    }
  });
  return {y, rzn.view({T, B, 3 * H}), ghn};
}

// Gradients from dy [T,B,H] and dh_last [B,H]: dx, dh0, dw_ih, dw_hh, db_ih, db_hh (the
// biases' undefined without bias).
std::vector<Tensor> gru_backward(Tensor dy, Tensor dh_last, Tensor x, Tensor h0, Tensor w_ih,
                                 Tensor w_hh, Tensor y, Tensor rzn, Tensor ghn, bool has_bias) {
  const int64_t T = x.size(0), B = x.size(1), H = h0.size(1), I = x.size(2);
  dy = dy.contiguous();
  auto h0c = h0.contiguous();
  auto dgi = at::empty({T, B, 3 * H}, x.options());
  auto dghn = at::empty({T, B, H}, x.options());         // dgh's n part: dn * r
  auto dgh = at::empty({B, 3 * H}, x.options());         // this step's, for the recurrence
  auto direct = at::empty({B, H}, x.options());
  Tensor dh = dh_last.contiguous().clone();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "gru_backward", [&] {
    for (int64_t t = T - 1; t >= 0; --t) {
      const scalar_t* hp = t > 0 ? y.data_ptr<scalar_t>() + (t - 1) * B * H
                                 : h0c.data_ptr<scalar_t>();
      const scalar_t* dy_t = dy.data_ptr<scalar_t>() + t * B * H;
      const scalar_t* rzn_t = rzn.data_ptr<scalar_t>() + t * B * 3 * H;
      const scalar_t* ghn_t = ghn.data_ptr<scalar_t>() + t * B * H;
      const scalar_t* dh_p = dh.data_ptr<scalar_t>();
      scalar_t* dgi_t = dgi.data_ptr<scalar_t>() + t * B * 3 * H;
      scalar_t* dgh_p = dgh.data_ptr<scalar_t>();
      scalar_t* dir = direct.data_ptr<scalar_t>();
      at::parallel_for(0, B, 16, [&](int64_t b0, int64_t b1) {
        for (int64_t b = b0; b < b1; ++b)
          backward_row<scalar_t>(dh_p + b * H, dy_t + b * H, rzn_t + b * 3 * H, ghn_t + b * H,
                                 hp + b * H, dgi_t + b * 3 * H, dgh_p + b * 3 * H,
                                 dir + b * H, H);
      });
      dghn[t].copy_(dgh.narrow(1, 2 * H, H));
      at::addmm_out(dh, direct, dgh, w_hh);              // dh_prev = g*z + dgh W_hh
    }
  });
  auto dgi_f = dgi.view({T * B, 3 * H});
  auto dx = at::mm(dgi_f, w_ih).view({T, B, I});
  auto dw_ih = at::mm(dgi_f.t(), x.reshape({T * B, I}));
  // dW_hh = sum_t dgh_t^T h_{t-1}: rows r | z from dgi (the same values), n from dghn;
  // h_{t-1} is h0 for t = 0, else y[t-1]
  auto dw_hh = at::empty({3 * H, H}, x.options());
  auto ys = y.view({T * B, H});
  auto part = [&](Tensor rows, Tensor grads) {            // grads [T*B, k] -> rows [k, H]
    at::mm_out(rows, grads.narrow(0, 0, B).t(), h0c);
    if (T > 1)
      rows.addmm_(grads.narrow(0, B, (T - 1) * B).t(), ys.narrow(0, 0, (T - 1) * B));
  };
  part(dw_hh.narrow(0, 0, 2 * H), dgi_f.narrow(1, 0, 2 * H));   // strided: no copy
  part(dw_hh.narrow(0, 2 * H, H), dghn.view({T * B, H}));
  Tensor db_ih, db_hh;
  if (has_bias) {
    db_ih = dgi_f.sum(0);
    db_hh = at::cat({db_ih.narrow(0, 0, 2 * H), dghn.view({T * B, H}).sum(0)});
  }
  return {dx, dh, dw_ih, dw_hh, db_ih, db_hh};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &gru_forward, "GRU layer forward (CPU)");
  m.def("backward", &gru_backward, "GRU layer backward (CPU)");
}
