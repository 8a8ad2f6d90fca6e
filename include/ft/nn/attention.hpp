// Attention and the Transformer encoder, as PyTorch's: scaled_dot_product_attention,
// nn::MultiheadAttention, nn::TransformerEncoderLayer, nn::TransformerEncoder and the causal mask
// helper generate_square_subsequent_mask.
//
// scaled_dot_product_attention is composed here from the library's ops: one batched GEMM for the
// scores (the scale and the masks fuse into the softmax's input statement), one row-wise softmax,
// one batched GEMM for the output; its gradient is theirs. It materialises the [.., L, S] scores
// (memory O(L·S)); the blockwise online-softmax kernel (FlashAttention's algorithm, memory
// O(L·d)) that issue #18 asks for is not written yet, and will replace this body without a change
// to the interface.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <type_traits>
#include <utility>

#include "ft/autograd/function.hpp"
#include "ft/core/config.hpp"
#include "ft/linalg/matmul.hpp"
#include "ft/linalg/rowwise.hpp"
#include "ft/nn/init.hpp"
#include "ft/nn/layers.hpp"
#include "ft/nn/module.hpp"
#include "ft/ops/comparison.hpp"

namespace ft::inline FT_ABI {

// No attention mask.
struct NoMask {
  static constexpr int rank = 0;
};

struct SdpaOptions {
  double dropout_p = 0.0;
  bool is_causal = false;
  std::optional<double> scale{};  // 1/√E when not given
  std::uint64_t seed = 0;         // the dropout mask's (0: ft::next_seed())
};

namespace attention {

// The causal mask's "keep" [L, S]: key j ≤ query i (torch.ones(L, S).tril()).
inline Tensor<bool, 2> causal_keep(index_t L, index_t S, Device dev) {
  return arange<std::int64_t>(0, L, 1, dev).reshape(Shape<2>{L, 1}) >=
         arange<std::int64_t>(0, S, 1, dev).reshape(Shape<2>{1, S});
}

// softmax over the keys of scores s [.., L, S] with `mask` applied: a bool mask keeps the
// entries where it is true (scaled_dot_product_attention's convention), a floating one is added.
template <class T, int R, class M>
Var<T, R> masked_softmax(Var<T, R> s, const M& mask, bool causal) {
  constexpr T neg_inf = -std::numeric_limits<T>::infinity();
  if constexpr (!std::is_same_v<M, NoMask>) {
    if (mask.defined()) {
      if constexpr (std::is_same_v<typename M::value_type, bool>)
        s = where(mask, s, neg_inf);
      else
        s = s + mask;
    }
  }
  if (causal) s = where(causal_keep(s.size(R - 2), s.size(R - 1), s.device()), s, neg_inf);
  return softmax(s, R - 1);
}

}  // namespace attention

// torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask, dropout_p, is_causal,
// scale): softmax(q·kᵀ·scale + mask)·v over the last two dims, q [.., L, E], k [.., S, E],
// v [.., S, Ev] → [.., L, Ev]. attn_mask (broadcast to [.., L, S]): bool, true where a query may
// attend; or floating, added to the scores. Dropout (dropout_p > 0) on the probabilities.
template <Expression Q, Expression K, Expression V, class M = NoMask>
Var<float_promote_t<typename Q::value_type>, Q::rank> scaled_dot_product_attention(const Q& query, const K& key,
                                                                                   const V& value,
                                                                                   const M& attn_mask = {},
                                                                                   const SdpaOptions& options = {}) {
  using T = float_promote_t<typename Q::value_type>;
  constexpr int R = Q::rank;
  static_assert(R >= 2 && K::rank == R && V::rank == R,
                "ft::scaled_dot_product_attention: query, key and value have one rank, at least 2");
  const Var<T, R> q = autograd::to_var(query), k = autograd::to_var(key), v = autograd::to_var(value);
  bool ok = q.size(R - 1) == k.size(R - 1) && k.size(R - 2) == v.size(R - 2);
  for (int d = 0; d < R - 2; ++d) ok = ok && q.size(d) == k.size(d) && k.size(d) == v.size(d);
  check(ok, "scaled_dot_product_attention", "query ", to_string(q.shape()), ", key ", to_string(k.shape()),
        " and value ", to_string(v.shape()), " do not fit: [.., L, E], [.., S, E], [.., S, Ev]");
  check(q.device() == k.device() && k.device() == v.device(), "scaled_dot_product_attention", "query on ", q.device(),
        ", key on ", k.device(), ", value on ", v.device());
  check(options.dropout_p >= 0 && options.dropout_p <= 1, "scaled_dot_product_attention",
        "dropout_p must be in [0, 1], got ", options.dropout_p);
  const double scale = options.scale ? *options.scale : 1.0 / std::sqrt(static_cast<double>(q.size(R - 1)));
  // the leading dims folded into one batch dim (matmul's batch): [B, L, E] and so on
  auto fold = [](const auto& x) {
    if constexpr (std::decay_t<decltype(x)>::rank == 2)
      return x.unsqueeze(0);
    else
      return x.reshape({-1, x.size(R - 2), x.size(R - 1)});
  };
  const Var<T, 3> q3 = fold(q), k3 = fold(k), v3 = fold(v);
  Var<T, 3> s = matmul(q3, k3.transpose(1, 2)) * scale;
  Var<T, 3> p;
  if constexpr (std::is_same_v<M, NoMask> || M::rank <= 2) {
    p = attention::masked_softmax(s, attn_mask, options.is_causal);
  } else {
    static_assert(M::rank == R, "ft::scaled_dot_product_attention: attn_mask is [L, S] or has the scores' rank");
    check(!attn_mask.defined() || attn_mask.numel() == s.numel(), "scaled_dot_product_attention", "attn_mask ",
          to_string(attn_mask.shape()), " of rank ", R, " must have the scores' full shape [.., ", s.size(1), ", ",
          s.size(2), "]");
    using MT = typename M::value_type;
    p = attention::masked_softmax(
        s, attn_mask.defined() ? Tensor<MT, 3>(attn_mask.reshape(s.shape())) : Tensor<MT, 3>(), options.is_causal);
  }
  if (options.dropout_p > 0)
    p = nn::functional::dropout(p, options.dropout_p, true, options.seed ? options.seed : next_seed());
  Var<T, 3> o = matmul(p, v3);
  Shape<R> out_shape = q.shape();
  out_shape[R - 1] = v.size(R - 1);
  if constexpr (R == 2)
    return o.squeeze(0);
  else
    return [&]<std::size_t... I>(std::index_sequence<I...>) { return o.reshape({out_shape[I]...}); }
  (std::make_index_sequence<R>{});
}

}  // namespace ft::inline FT_ABI

namespace ft::inline FT_ABI::nn {

// nn.Transformer.generate_square_subsequent_mask: [n, n], −inf above the diagonal, 0 elsewhere
// (a float mask: added to the scores).
template <class T = float>
Tensor<T, 2> generate_square_subsequent_mask(index_t n, Device device = kCPU) {
  return where(attention::causal_keep(n, n, device), T(0), -std::numeric_limits<T>::infinity());
}

struct MultiheadAttentionOptions {
  double dropout = 0.0;  // on the attention probabilities, in training mode
  bool bias = true;
  bool batch_first = false;  // [N, L, E] instead of [L, N, E]
};

// What MultiheadAttention returns: the output, and the attention probabilities averaged over the
// heads [N, L, S] (undefined unless need_weights).
template <class T>
struct MultiheadAttentionOutput {
  Var<T, 3> output;
  Var<T, 3> weights;
};

// nn.MultiheadAttention(embed_dim, num_heads): PyTorch's parameters (in_proj_weight [3E, E],
// in_proj_bias [3E], out_proj), initialisation (xavier_uniform, zero biases) and masks: a bool
// attn_mask [L, S] or [N·heads, L, S] is true where attending is NOT allowed (a floating one is
// added); key_padding_mask [N, S] is true at the keys to ignore. Key and value have embed_dim
// features (kdim = vdim = embed_dim).
template <class T = float>
class MultiheadAttention : public Module<MultiheadAttention<T>> {
 public:
  Var<T, 2> in_proj_weight;
  Var<T, 1> in_proj_bias;
  Linear<T> out_proj;

  MultiheadAttention() = default;
  MultiheadAttention(index_t embed_dim, index_t num_heads, const MultiheadAttentionOptions& options = {},
                     Device device = kCPU)
      : out_proj(embed_dim, embed_dim, options.bias, device), heads_(num_heads), options_(options) {
    check(embed_dim > 0 && num_heads > 0 && embed_dim % num_heads == 0, "MultiheadAttention", "embed_dim (", embed_dim,
          ") must be divisible by num_heads (", num_heads, ")");
    check(options.dropout >= 0 && options.dropout <= 1, "MultiheadAttention", "dropout must be in [0, 1], got ",
          options.dropout);
    Tensor<T, 2> w(Shape<2>{3 * embed_dim, embed_dim}, device);
    init::xavier_uniform_(w);
    in_proj_weight = detail::parameter(w);
    if (options.bias) {
      in_proj_bias = detail::parameter(zeros<T>(Shape<1>{3 * embed_dim}, device));
      out_proj.bias.data() = T(0.0f);
    }
  }
  index_t embed_dim() const { return in_proj_weight.size(1); }
  index_t num_heads() const { return heads_; }

  template <class V>
  void visit(V&& v) {
    v("in_proj_weight", in_proj_weight);
    v("in_proj_bias", in_proj_bias);
    v("out_proj", out_proj);
  }

  template <Expression Q, Expression K, Expression V, class M = NoMask>
  MultiheadAttentionOutput<T> forward(const Q& query, const K& key, const V& value,
                                      const Tensor<bool, 2>& key_padding_mask = {}, bool need_weights = true,
                                      const M& attn_mask = {}, bool is_causal = false) {
    static_assert(Q::rank == 3 && K::rank == 3 && V::rank == 3,
                  "ft::nn::MultiheadAttention: query, key and value are [L, N, E] ([N, L, E] with batch_first)");
    check(in_proj_weight.defined(), "MultiheadAttention", "the module was default-constructed (no parameters)");
    Var<T, 3> q = autograd::to_var(query), k = autograd::to_var(key), v = autograd::to_var(value);
    if (options_.batch_first) q = q.transpose(0, 1), k = k.transpose(0, 1), v = v.transpose(0, 1);
    const index_t L = q.size(0), N = q.size(1), E = embed_dim(), S = k.size(0), H = heads_, hd = E / H;
    check(q.size(2) == E && k.size(2) == E && v.size(2) == E && k.size(1) == N && v.size(1) == N && v.size(0) == S,
          "MultiheadAttention", "query ", to_string(q.shape()), ", key ", to_string(k.shape()), " and value ",
          to_string(v.shape()), " (sequence-first) do not fit embed_dim ", E);
    // the projections, then [len, N, E] → [N·heads, len, head_dim]
    auto project = [&](const Var<T, 3>& x, index_t part) {
      Var<T, 2> w = in_proj_weight.slice(0, part * E, (part + 1) * E);
      Var<T, 3> y = in_proj_bias.defined() ? Var<T, 3>(linear(x, w) + in_proj_bias.slice(0, part * E, (part + 1) * E))
                                           : Var<T, 3>(linear(x, w));
      return y.reshape({x.size(0), N * H, hd}).transpose(0, 1);
    };
    const Var<T, 3> qh = project(q, 0), kh = project(k, 1), vh = project(v, 2);
    Var<T, 3> s = matmul(qh, kh.transpose(1, 2)) * (1.0 / std::sqrt(static_cast<double>(hd)));  // [N·H, L, S]
    constexpr T neg_inf = -std::numeric_limits<T>::infinity();
    if constexpr (!std::is_same_v<M, NoMask>) {
      if (attn_mask.defined()) {
        static_assert(M::rank == 2 || M::rank == 3,
                      "ft::nn::MultiheadAttention: attn_mask is [L, S] or [N·heads, L, S]");
        const bool shape_ok =
            M::rank == 2 ? attn_mask.size(0) == L && attn_mask.size(1) == S
                         : attn_mask.size(0) == N * H && attn_mask.size(1) == L && attn_mask.size(M::rank - 1) == S;
        check(shape_ok, "MultiheadAttention", "attn_mask ", to_string(attn_mask.shape()), " is not [", L, ", ", S,
              "] or [", N * H, ", ", L, ", ", S, "]");
        if constexpr (std::is_same_v<typename M::value_type, bool>)
          s = where(attn_mask, neg_inf, s);
        else
          s = s + attn_mask;
      }
    }
    if (key_padding_mask.defined()) {
      check(key_padding_mask.shape() == Shape<2>{N, S}, "MultiheadAttention", "key_padding_mask ",
            to_string(key_padding_mask.shape()), " is not [", N, ", ", S, "]");
      const Tensor<bool, 3> pad =
          key_padding_mask.reshape(Shape<3>{N, 1, S}).expand({N, H, S}).reshape(Shape<3>{N * H, 1, S});
      s = where(pad, neg_inf, s);
    }
    Var<T, 3> p = attention::masked_softmax(s, NoMask{}, is_causal);
    const Var<T, 3> weights = need_weights ? Var<T, 3>(mean(p.reshape({N, H, L, S}), 1)) : Var<T, 3>();
    if (options_.dropout > 0 && this->is_training())
      p = functional::dropout(p, options_.dropout, true, seed_ ^ (0x9E3779B97F4A7C15ull * ++calls_));
    Var<T, 3> o = matmul(p, vh).transpose(0, 1).reshape({L, N, E});  // [L, N, E]
    Var<T, 3> out = out_proj(o);
    if (options_.batch_first) out = out.transpose(0, 1);
    return {out, weights};
  }

 private:
  index_t heads_ = 1;
  MultiheadAttentionOptions options_;
  std::uint64_t seed_ = next_seed();
  std::uint64_t calls_ = 0;
};

enum class TransformerActivation { ReLU, GELU };

struct TransformerEncoderLayerOptions {
  index_t dim_feedforward = 2048;
  double dropout = 0.1;
  TransformerActivation activation = TransformerActivation::ReLU;
  double layer_norm_eps = 1e-5;
  bool batch_first = false;
  bool norm_first = false;  // pre-norm: x + sa(norm1(x)), then x + ff(norm2(x))
};

// nn.TransformerEncoderLayer(d_model, nhead): self-attention and a feed-forward block, each with
// a residual connection and a LayerNorm (after it, or before it with norm_first), PyTorch's
// parameter names (self_attn.in_proj_weight, linear1.weight, norm1.weight, …).
template <class T = float>
class TransformerEncoderLayer : public Module<TransformerEncoderLayer<T>> {
 public:
  MultiheadAttention<T> self_attn;
  Linear<T> linear1, linear2;
  LayerNorm<T> norm1, norm2;
  Dropout dropout, dropout1, dropout2;

  TransformerEncoderLayer() = default;
  TransformerEncoderLayer(index_t d_model, index_t nhead, const TransformerEncoderLayerOptions& options = {},
                          Device device = kCPU)
      : self_attn(d_model, nhead, {.dropout = options.dropout, .batch_first = options.batch_first}, device),
        linear1(d_model, options.dim_feedforward, true, device),
        linear2(options.dim_feedforward, d_model, true, device),
        norm1(d_model, options.layer_norm_eps, true, true, device),
        norm2(d_model, options.layer_norm_eps, true, true, device),
        dropout(options.dropout),
        dropout1(options.dropout),
        dropout2(options.dropout),
        options_(options) {}

  template <class V>
  void visit(V&& v) {
    v("self_attn", self_attn), v("linear1", linear1), v("dropout", dropout), v("linear2", linear2);
    v("norm1", norm1), v("norm2", norm2), v("dropout1", dropout1), v("dropout2", dropout2);
  }

  // src [S, N, E] ([N, S, E] batch-first); src_mask [S, S] (bool: true = not allowed; or
  // floating, added); src_key_padding_mask [N, S] (true = padding).
  template <Expression X, class M = NoMask>
  Var<T, 3> forward(const X& src, const M& src_mask = {}, const Tensor<bool, 2>& src_key_padding_mask = {},
                    bool is_causal = false) {
    Var<T, 3> x = autograd::to_var(src);
    auto sa = [&](const Var<T, 3>& y) {
      return dropout1(self_attn(y, y, y, src_key_padding_mask, false, src_mask, is_causal).output);
    };
    auto ff = [&](const Var<T, 3>& y) {
      Var<T, 3> h = options_.activation == TransformerActivation::GELU ? Var<T, 3>(gelu(linear1(y)))
                                                                       : Var<T, 3>(relu(linear1(y)));
      return dropout2(linear2(dropout(h)));
    };
    if (options_.norm_first) {
      x = x + sa(norm1(x));
      return x + ff(norm2(x));
    }
    x = norm1(x + sa(x));
    return norm2(x + ff(x));
  }

 private:
  TransformerEncoderLayerOptions options_;
};

// nn.TransformerEncoder: num_layers encoder layers (each its own parameters, "layers.0.…"), and
// an optional final LayerNorm ("norm").
template <class T = float>
class TransformerEncoder : public Module<TransformerEncoder<T>> {
 public:
  ModuleList<TransformerEncoderLayer<T>> layers;
  LayerNorm<T> norm;  // default-constructed (no parameters) unless final_norm

  TransformerEncoder() = default;
  TransformerEncoder(index_t d_model, index_t nhead, int num_layers, const TransformerEncoderLayerOptions& options = {},
                     bool final_norm = false, Device device = kCPU) {
    check(num_layers >= 1, "TransformerEncoder", "num_layers must be at least 1, got ", num_layers);
    for (int l = 0; l < num_layers; ++l) layers.push_back(TransformerEncoderLayer<T>(d_model, nhead, options, device));
    if (final_norm) norm = LayerNorm<T>(d_model, options.layer_norm_eps, true, true, device);
  }
  template <class V>
  void visit(V&& v) {
    v("layers", layers);
    v("norm", norm);
  }
  template <Expression X, class M = NoMask>
  Var<T, 3> forward(const X& src, const M& mask = {}, const Tensor<bool, 2>& src_key_padding_mask = {},
                    bool is_causal = false) {
    Var<T, 3> x = autograd::to_var(src);
    for (std::size_t l = 0; l < layers.size(); ++l) x = layers[l](x, mask, src_key_padding_mask, is_causal);
    return norm.weight.defined() ? Var<T, 3>(norm(x)) : x;
  }
};

}  // namespace ft::inline FT_ABI::nn
