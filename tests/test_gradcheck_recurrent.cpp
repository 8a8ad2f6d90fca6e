// gradcheck of the recurrent layers' one node (ft/nn/recurrent.hpp: rnn::layer, packed_layer): every
// mode, both directions, initial states given and not, LSTM's projection, a layer without biases,
// packed batches; with the input, the states and every weight as inputs. And attention
// (ft/nn/attention.hpp: scaled_dot_product_attention, the fused kernels: float and bool masks, a
// scale, causal, dropout; the row kernels too). Registered into
// tests/test_gradcheck.cpp's table.
#include "ft/nn/attention.hpp"
#include "ft/nn/recurrent.hpp"
#include "gradcheck_cases.hpp"

using namespace ft::test::gradcheck_cases;

namespace {
using ft::Var;
using ft::nn::rnn::Mode;

// T = 3 steps, B = 2, I = 3, H = 2 (P = 1 with the projection): output, h_n and c_n all in the loss.
Case recurrent_case(std::string name, Mode mode, bool reverse, bool states, bool bias, bool proj) {
  return {name, [=] {
            const index_t G = ft::nn::rnn::gate_count(mode), H = 2, P = proj ? 1 : H;
            auto x = leaf({3, 2, 3}, 61);
            auto h0 = leaf({2, P}, 62);
            auto c0 = leaf({2, H}, 63);
            auto w_ih = leaf({G * H, 3}, 64), w_hh = leaf({G * H, P}, 65), w_hr = leaf({P, H}, 66);
            auto b_ih = leaf({G * H}, 67), b_hh = leaf({G * H}, 68);
            auto f = [=](const Var<double, 3>& x, const Var<double, 2>& h0, const Var<double, 2>& c0,
                         const Var<double, 2>& w_ih, const Var<double, 2>& w_hh, const Var<double, 1>& b_ih,
                         const Var<double, 1>& b_hh, const Var<double, 2>& w_hr) {
              ft::nn::rnn::LayerWeights<double> w{w_ih, w_hh, bias ? b_ih : Var<double, 1>(),
                                                  bias ? b_hh : Var<double, 1>(), proj ? w_hr : Var<double, 2>()};
              auto r =
                  ft::nn::rnn::layer(mode, x, states ? h0 : Var<double, 2>(),
                                     states && mode == Mode::LSTM ? c0 : Var<double, 2>(), w, reverse, "gradcheck");
              auto loss = ft::sum(r.output * r.output) + ft::sum(r.h_n * 3.0);
              if (r.c_n.defined()) return Var<double, 0>(loss + ft::sum(r.c_n * r.c_n));
              return Var<double, 0>(loss);
            };
            return ft::gradcheck(f, x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr);
          }};
}

// A packed batch of 3 sequences of lengths 3, 2, 1 (6 rows), B = 3, I = 3, H = 2.
Case packed_case(std::string name, Mode mode) {
  return {name, [=] {
            const index_t G = ft::nn::rnn::gate_count(mode), H = 2;
            auto x = leaf({6, 3}, 71);
            auto h0 = leaf({3, H}, 72), c0 = leaf({3, H}, 73);
            auto w_ih = leaf({G * H, 3}, 74), w_hh = leaf({G * H, H}, 75);
            auto b_ih = leaf({G * H}, 76), b_hh = leaf({G * H}, 77);
            auto f = [=](const Var<double, 2>& x, const Var<double, 2>& h0, const Var<double, 2>& c0,
                         const Var<double, 2>& w_ih, const Var<double, 2>& w_hh, const Var<double, 1>& b_ih,
                         const Var<double, 1>& b_hh) {
              auto r =
                  ft::nn::rnn::packed_layer(mode, x, {3, 2, 1}, h0, mode == Mode::LSTM ? c0 : Var<double, 2>(),
                                            ft::nn::rnn::LayerWeights<double>{w_ih, w_hh, b_ih, b_hh, {}}, "gradcheck");
              auto loss = ft::sum(r.output * r.output) + ft::sum(r.h_n * 3.0);
              if (r.c_n.defined()) return Var<double, 0>(loss + ft::sum(r.c_n * r.c_n));
              return Var<double, 0>(loss);
            };
            return ft::gradcheck(f, x, h0, c0, w_ih, w_hh, b_ih, b_hh);
          }};
}

// scaled_dot_product_attention: a float mask and a scale, and causal, q [2, 3, 2] k, v [2, 4, 2].
Case attention_case() {
  return {
      "scaled_dot_product_attention", [] {
        auto q = leaf({2, 3, 2}, 81), k = leaf({2, 4, 2}, 82), v = leaf({2, 4, 2}, 83);
        const ft::Tensor<double, 2> mask = ft::test::random_tensor<double>({3, 4}, ft::kCPU, 84, -1, 1);
        return ft::gradcheck(
            [mask](const Var<double, 3>& q, const Var<double, 3>& k, const Var<double, 3>& v) {
              return Var<double, 3>(ft::scaled_dot_product_attention(q, k, v, mask, {.scale = 0.7}) +
                                    ft::scaled_dot_product_attention(q, k, v * 2, ft::NoMask{}, {.is_causal = true}));
            },
            q, k, v);
      }};
}

// The fused attention with a bool mask and dropout (a fixed seed: the same mask at every
// evaluation), on the CPU's blocked kernel and on the row kernels (the GPU's algorithm).
Case attention_dropout_case(bool rows) {
  return {rows ? "scaled_dot_product_attention dropout, row kernels" : "scaled_dot_product_attention dropout", [rows] {
            const bool saved = ft::linalg::flash::testing::row_kernels.exchange(rows);
            auto q = leaf({2, 3, 2}, 85), k = leaf({2, 4, 2}, 86), v = leaf({2, 4, 3}, 87);
            ft::Tensor<bool, 2> keep = ft::test::random_tensor<double>({3, 4}, ft::kCPU, 88, -1, 1) > 0.0;
            keep.select(1, 0) = true;  // every query keeps a key
            auto result = ft::gradcheck(
                [keep](const Var<double, 3>& q, const Var<double, 3>& k, const Var<double, 3>& v) {
                  return ft::scaled_dot_product_attention(q, k, v, keep, {.dropout_p = 0.3, .seed = 5});
                },
                q, k, v);
            ft::linalg::flash::testing::row_kernels = saved;
            return result;
          }};
}

std::vector<Case> recurrent_cases() {
  std::vector<Case> c;
  c.push_back(recurrent_case("lstm", Mode::LSTM, false, true, true, false));
  c.push_back(recurrent_case("lstm reverse, zero states", Mode::LSTM, true, false, true, false));
  c.push_back(recurrent_case("lstm projected", Mode::LSTM, false, true, true, true));
  c.push_back(recurrent_case("lstm projected reverse, no bias", Mode::LSTM, true, false, false, true));
  c.push_back(recurrent_case("gru", Mode::GRU, false, true, true, false));
  c.push_back(recurrent_case("gru reverse, no bias", Mode::GRU, true, false, false, false));
  c.push_back(recurrent_case("rnn_tanh", Mode::Tanh, false, true, true, false));
  c.push_back(recurrent_case("rnn_relu reverse", Mode::ReLU, true, true, true, false));
  c.push_back(packed_case("lstm packed", Mode::LSTM));
  c.push_back(packed_case("gru packed", Mode::GRU));
  c.push_back(packed_case("rnn_tanh packed", Mode::Tanh));
  c.push_back(attention_case());
  c.push_back(attention_dropout_case(false));
  c.push_back(attention_dropout_case(true));
  return c;
}
const bool registered = [] {
  for (auto& k : recurrent_cases()) registry().push_back(std::move(k));
  return true;
}();
}  // namespace
