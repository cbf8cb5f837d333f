// Batch-1 generation for a fused LSTM on CPU: every step of a chunk in one call.
//
// One generated token is: the embedding row through layer 1's input weights (a row of
// the folded table, [V, 4H]), each layer's gate products and pointwise update, the head
// (logits [V]) and the choice (argmax, or one draw from softmax(logits / temperature) by
// inverse CDF with one given uniform number, as seqgen's `draw`). In Python that is ~25
// torch ops a token, and at batch 1 each op costs 15-20 us more than its own work,
// because the step's weights (3 MB for 2x256) have pushed torch's code out of the caches.
// Here it is one call for a whole chunk of tokens.
//
// Layout (float32, contiguous): state h [L, H] and c [L, H], updated in place;
// table [V, 4H] (the embedding through W_ih of layer 1, plus both of its biases);
// w_hh [L][4H, H]; for layers l >= 2, w_ih [L-1][4H, H] and bias [L-1][4H] (b_ih + b_hh);
// head_w [V, H] and head_b [V]. Gate rows i | f | g | o, as torch's LSTM.
//
// Zig-zag: the weights (3 MB at 2x256) do not fit a 2 MB L2, so walking them in the
// same order every step misses on every line. Odd steps walk them backwards (rows in
// reverse, and the recurrent products of layers 2.. first, which need only the previous
// state), so a step starts on what the one before ended with. Each gate is
// bias + (W_ih x) + (W_hh h) with each product a fixed dot product, whatever the order
// the rows are visited in: both orders give the same numbers.
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <algorithm>
#include <cmath>
#include <vector>

using torch::Tensor;

// The logistic function, clamped where exp(-x) would overflow: under -ffast-math an
// infinite exp makes 1 / (1 + inf) NaN instead of 0.
static inline float sigm(float x) {
  x = std::min(std::max(x, -80.f), 80.f);
  return 1.f / (1.f + std::exp(-x));
}

// Dot products of W's rows (W [R, K] row-major) with x [K]: y[r] = W[r] . x for the row
// groups [first, last) of 4 rows (x is read once per 4 rows). `reverse` visits them from
// the end; every row's sum is the same either way.
static void rows(const float* __restrict__ W, const float* __restrict__ x,
                 float* __restrict__ y, int64_t K, int64_t first, int64_t last, bool reverse) {
  for (int64_t n = first; n < last; ++n) {
    const int64_t r = 4 * (reverse ? first + last - 1 - n : n);
    const float* w0 = W + r * K;
    const float *w1 = w0 + K, *w2 = w1 + K, *w3 = w2 + K;
    float s0 = 0.f, s1 = 0.f, s2 = 0.f, s3 = 0.f;
#pragma omp simd reduction(+ : s0, s1, s2, s3)
    for (int64_t k = 0; k < K; ++k) {
      const float v = x[k];
      s0 += w0[k] * v; s1 += w1[k] * v; s2 += w2[k] * v; s3 += w3[k] * v;
    }
    y[r] = s0; y[r + 1] = s1; y[r + 2] = s2; y[r + 3] = s3;
  }
}

// y = W x for W [R, K]. A large W is split into contiguous row blocks over torch's
// threads; the split is the same every step, so each core keeps its block in its own
// cache (at H=1024 one thread streams 16 MB a token from L3). Rows are summed alike on
// any split, so the numbers do not depend on the thread count.
static void matvec(const float* __restrict__ W, const float* __restrict__ x,
                   float* __restrict__ y, int64_t R, int64_t K, bool reverse) {
  const int64_t groups = R / 4, grain = std::max<int64_t>(1, (1 << 16) / (4 * K));
  at::parallel_for(0, groups, grain, [&](int64_t first, int64_t last) {
    rows(W, x, y, K, first, last, reverse);
  });
  for (int64_t r = 4 * groups; r < R; ++r) {           // the rest (a head's V rows)
    const float* w = W + r * K;
    float s = 0.f;
#pragma omp simd reduction(+ : s)
    for (int64_t k = 0; k < K; ++k) s += w[k] * x[k];
    y[r] = s;
  }
}

// One layer's pointwise update from its gate pre-activations x + hh (+ bias) (each [4H],
// gate rows i | f | g | o; bias may be null): c' = f*c + i*tanh(g), h' = o*tanh(c'),
// with tanh(x) = 2*sigm(2x) - 1.
static void update(const float* __restrict__ x, const float* __restrict__ hh,
                   const float* __restrict__ bias, float* __restrict__ c,
                   float* __restrict__ h, int64_t H) {
#pragma omp simd
  for (int64_t j = 0; j < H; ++j) {
    float gi = x[j] + hh[j], gf = x[H + j] + hh[H + j];
    float gg = x[2 * H + j] + hh[2 * H + j], go = x[3 * H + j] + hh[3 * H + j];
    if (bias) { gi += bias[j]; gf += bias[H + j]; gg += bias[2 * H + j]; go += bias[3 * H + j]; }
    const float cj = sigm(gf) * c[j] + sigm(gi) * (2.f * sigm(2.f * gg) - 1.f);
    c[j] = cj;
    h[j] = sigm(go) * (2.f * sigm(2.f * cj) - 1.f);
  }
}

// The token chosen from logits [V]: argmax (u < 0), else the first v whose cumulative
// probability under softmax(logits / temperature) exceeds u * total, and never past the
// last token with any probability (seqgen's `draw`). `scratch` [V].
static int64_t choose(const float* logits, int64_t V, float u, float temperature,
                      float* scratch) {
  if (u < 0.f) {
    int64_t best = 0;
    for (int64_t v = 1; v < V; ++v)
      if (logits[v] > logits[best]) best = v;           // the first of equal maxima
    return best;
  }
  float top = -INFINITY;
  for (int64_t v = 0; v < V; ++v) {
    scratch[v] = temperature == 1.f ? logits[v] : logits[v] / temperature;
    top = std::max(top, scratch[v]);
  }
  float sum = 0.f;
#pragma omp simd reduction(+ : sum)
  for (int64_t v = 0; v < V; ++v) { scratch[v] = std::exp(scratch[v] - top); sum += scratch[v]; }
  // as torch: probabilities times 1/sum in float32, their running sum kept in double
  // (torch's CPU cumsum accumulates float32 in double) and stored as float32
  const float inverse = 1.f / sum;
  double cdf = 0.0;
  for (int64_t v = 0; v < V; ++v) { cdf += double(scratch[v] * inverse); scratch[v] = float(cdf); }
  const float total = scratch[V - 1], target = u * total;
  int64_t token = V - 1, last = V - 1;
  for (int64_t v = V - 1; v >= 0; --v) {                // first cdf > target, first >= total
    if (scratch[v] > target) token = v;
    if (scratch[v] >= total) last = v;
  }
  return std::min(token, last);
}

// Runs up to `count` tokens: choose from `logits` [V], record it, stop after `eos`, and
// (except after the last token when step_last is false) feed the token through the
// model, leaving the next logits in `logits`. uniforms [count] (empty: argmax).
// Returns (tokens [n] int64, the logits each was chosen from [n, V]), n <= count.
std::vector<Tensor> run(Tensor logits, Tensor uniforms, double temperature, int64_t eos,
                        int64_t count, bool step_last, int64_t parity, Tensor h, Tensor c,
                        Tensor table, std::vector<Tensor> w_hh, std::vector<Tensor> w_ih,
                        std::vector<Tensor> bias, Tensor head_w, Tensor head_b) {
  const int64_t V = logits.numel(), L = h.size(0), H = h.size(1);
  auto check = [](const Tensor& t, std::vector<int64_t> shape, const char* what) {
    TORCH_CHECK(t.scalar_type() == torch::kFloat && t.is_contiguous() &&
                    t.sizes() == c10::IntArrayRef(shape),
                "lstm_generate: ", what, " must be contiguous float32 of shape ",
                c10::IntArrayRef(shape), ", got ", t.scalar_type(), " ", t.sizes());
  };
  check(logits, {V}, "logits");
  check(h, {L, H}, "h");
  check(c, {L, H}, "c");
  check(table, {V, 4 * H}, "table");
  check(head_w, {V, H}, "head_w");
  TORCH_CHECK(int64_t(w_hh.size()) == L && int64_t(w_ih.size()) == L - 1 &&
                  int64_t(bias.size()) == L - 1,
              "lstm_generate: one w_hh per layer, one w_ih and bias per layer above the first");
  for (int64_t l = 0; l < L; ++l) check(w_hh[l], {4 * H, H}, "w_hh");
  for (int64_t l = 0; l < L - 1; ++l) {
    check(w_ih[l], {4 * H, H}, "w_ih");
    if (bias[l].numel()) check(bias[l], {4 * H}, "bias");
  }
  if (head_b.numel()) check(head_b, {V}, "head_b");
  if (uniforms.numel()) check(uniforms, {uniforms.numel()}, "uniforms");
  TORCH_CHECK(uniforms.numel() == 0 || uniforms.numel() >= count,
              "lstm_generate: one uniform number per token");
  auto tokens = torch::empty({count}, torch::kLong);
  auto chosen_from = torch::empty({count, V}, logits.options());
  auto work = torch::empty({8 * L * H + V}, logits.options());
  float* R = work.data_ptr<float>();                    // [L][4H]: W_ih x (layer 1: table row)
  float* P = R + 4 * L * H;                             // [L][4H]: W_hh h
  float* scratch = P + 4 * L * H;                       // [V]
  float* lg = logits.data_ptr<float>();
  float *hs = h.data_ptr<float>(), *cs = c.data_ptr<float>();
  const float* u = uniforms.numel() ? uniforms.data_ptr<float>() : nullptr;
  int64_t* out = tokens.data_ptr<int64_t>();
  int64_t n = 0;
  while (n < count) {
    std::copy(lg, lg + V, chosen_from.data_ptr<float>() + n * V);
    const int64_t token = choose(lg, V, u ? u[n] : -1.f, float(temperature), scratch);
    out[n++] = token;
    if (token == eos || (n == count && !step_last)) break;
    const bool back = ((parity + n) & 1) != 0;
    if (back)                                           // layers L..2's W_hh h first
      for (int64_t l = L - 1; l >= 1; --l)
        matvec(w_hh[l].data_ptr<float>(), hs + l * H, P + 4 * l * H, 4 * H, H, true);
    const float* row = table.data_ptr<float>() + token * 4 * H;
    std::copy(row, row + 4 * H, R);
    matvec(w_hh[0].data_ptr<float>(), hs, P, 4 * H, H, back);
    update(R, P, nullptr, cs, hs, H);
    for (int64_t l = 1; l < L; ++l) {
      float *Rl = R + 4 * l * H, *Pl = P + 4 * l * H;
      matvec(w_ih[l - 1].data_ptr<float>(), hs + (l - 1) * H, Rl, 4 * H, H, back);
      if (!back) matvec(w_hh[l].data_ptr<float>(), hs + l * H, Pl, 4 * H, H, false);
      update(Rl, Pl, bias[l - 1].numel() ? bias[l - 1].data_ptr<float>() : nullptr,
             cs + l * H, hs + l * H, H);
    }
    matvec(head_w.data_ptr<float>(), hs + (L - 1) * H, lg, V, H, false);
    if (head_b.numel()) {
      const float* b = head_b.data_ptr<float>();
      for (int64_t v = 0; v < V; ++v) lg[v] += b[v];
    }
  }
  return {tokens.narrow(0, 0, n), chosen_from.narrow(0, 0, n)};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  // the GIL is released while a chunk runs: other Python threads (a server's) go on
  m.def("run", &run, "batch-1 LSTM generation steps (CPU, float32)",
        py::call_guard<py::gil_scoped_release>());
}
