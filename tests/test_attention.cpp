// Attention against PyTorch (tests/golden/attention.txt, written by tests/golden/make_attention.py):
// scaled_dot_product_attention with no mask, bool and float masks, a scale and is_causal;
// MultiheadAttention (key_padding_mask, float and bool attn_mask, batch_first, no bias, the heads'
// averaged weights); TransformerEncoderLayer post- and pre-norm (relu, gelu, a causal float mask,
// a key padding mask) and TransformerEncoder with a final norm; MultiheadAttention with kdim and
// vdim, add_bias_kv and add_zero_attn; TransformerDecoderLayer (post- and pre-norm, target and memory masks),
// TransformerDecoder and nn.Transformer: outputs and every gradient. CPU only: these are compositions of matmul,
// softmax, layer_norm, elementwise statements and the fused attention, whose CUDA paths the other suites run
// (test_flash.cpp's nvcc copy).
#include <doctest/doctest.h>

#include <limits>
#include <string>
#include <vector>

#include "common.hpp"
#include "ft/nn.hpp"
#include "ft/nn/attention.hpp"
#include "golden/golden.hpp"

namespace {

using ft::index_t;
using ft::Var;
using ft::test::Golden;
namespace nn = ft::nn;

const Golden& golden() {
  static const Golden g("attention.txt");
  return g;
}

template <int R>
Var<float, R> leaf(const std::string& key) {
  return Var<float, R>(golden().tensor<float, R>(key), ft::requires_grad);
}
ft::Tensor<bool, 2> bool_mask(const std::string& key) {
  return ft::Tensor<bool, 2>(golden().tensor<std::int64_t, 2>(key) != 0);
}

template <class M>
void load_case(M& m, const std::string& name) {
  ft::test::load_params(m, golden(), name + ".param.");
}

// Σ out·r backward; the output, the listed inputs' and every parameter's gradients checked.
template <class M, class Out>
void check_backward(const std::string& name, M& m, const Out& out,
                    const std::vector<std::pair<std::string, Var<float, 3>>>& inputs) {
  constexpr double rtol = 2e-5, atol = 2e-6;
  ft::test::check_close(out.value(), golden().values(name + ".output"), rtol, atol);
  Var<float, 0> loss = ft::sum(out * golden().tensor<float, 3>(name + ".r"));
  loss.backward();
  for (const auto& [key, x] : inputs) {
    INFO(key);
    ft::test::check_close(x.grad(), golden().values(name + ".grad." + key), rtol, atol);
  }
  for (auto& [pname, p] : m.named_parameters()) {
    INFO(pname);
    REQUIRE(p.has_grad());
    ft::test::check_close(ft::test::any_values(p.grad()), golden().values(name + ".grad." + pname), rtol, atol);
  }
}

}  // namespace

TEST_CASE("scaled_dot_product_attention equals softmax(q·kᵀ·scale + mask)·v and its gradients, as PyTorch's") {
  for (const std::string name : {"sdpa", "sdpa_bool", "sdpa_float", "sdpa_causal"}) {
    INFO(name);
    auto q = leaf<4>(name + ".q"), k = leaf<4>(name + ".k"), v = leaf<4>(name + ".v");
    Var<float, 4> out;
    if (name == "sdpa_bool")
      out = ft::scaled_dot_product_attention(q, k, v, bool_mask(name + ".mask"));
    else if (name == "sdpa_float")
      out = ft::scaled_dot_product_attention(q, k, v, golden().tensor<float, 2>(name + ".mask"), {.scale = 0.3});
    else
      out = ft::scaled_dot_product_attention(q, k, v, ft::NoMask{}, {.is_causal = name == "sdpa_causal"});
    ft::test::check_close(out.value(), golden().values(name + ".output"), 2e-5, 2e-6);
    Var<float, 0> loss = ft::sum(out * golden().tensor<float, 4>(name + ".r"));
    loss.backward();
    ft::test::check_close(q.grad(), golden().values(name + ".grad.q"), 2e-5, 2e-6);
    ft::test::check_close(k.grad(), golden().values(name + ".grad.k"), 2e-5, 2e-6);
    ft::test::check_close(v.grad(), golden().values(name + ".grad.v"), 2e-5, 2e-6);
  }
  // dropout: the kept probabilities scaled by 1/(1 − p), a fresh mask per seed
  const ft::Tensor<float, 3> q = ft::randn<float>({2, 4, 8}), k = ft::randn<float>({2, 6, 8});
  const ft::Tensor<float, 3> ones = ft::ones<float>({2, 6, 1});
  Var<float, 3> rows = ft::scaled_dot_product_attention(q, k, ones, ft::NoMask{}, {.dropout_p = 0.5, .seed = 7});
  for (float r : rows.value().to_vector()) CHECK((r >= 0 && r <= 2.0001f));
  CHECK_THROWS_WITH_AS(ft::scaled_dot_product_attention(q, ft::randn<float>({2, 6, 7}), ones),
                       doctest::Contains("do not fit"), ft::Error);
}

TEST_CASE("MultiheadAttention equals PyTorch's: masks, averaged weights, batch_first, no bias") {
  // need_weights: the composed path (the probabilities returned); without: the fused attention
  for (bool need_weights : {true, false}) {
    INFO("need_weights " << need_weights);
    {
      nn::MultiheadAttention<float> mha(8, 2);
      load_case(mha, "mha");
      auto query = leaf<3>("mha.query"), key = leaf<3>("mha.key"), value = leaf<3>("mha.value");
      auto [out, weights] = mha(query, key, value, bool_mask("mha.key_padding_mask"), need_weights,
                                golden().tensor<float, 2>("mha.attn_mask"));
      if (need_weights)
        ft::test::check_close(weights.value(), golden().values("mha.weights"), 2e-5, 2e-6);
      else
        CHECK(!weights.defined());
      check_backward("mha", mha, out, {{"query", query}, {"key", key}, {"value", value}});
    }
    nn::MultiheadAttention<float> self(8, 4, {.bias = false, .batch_first = true});
    CHECK(self.named_parameters().size() == 2);  // in_proj_weight, out_proj.weight
    load_case(self, "mha_self_bf");
    auto x = leaf<3>("mha_self_bf.x");
    auto [out, weights] = self(x, x, x, ft::Tensor<bool, 2>(), need_weights, bool_mask("mha_self_bf.attn_mask"));
    if (need_weights) ft::test::check_close(weights.value(), golden().values("mha_self_bf.weights"), 2e-5, 2e-6);
    check_backward("mha_self_bf", self, out, {{"x", x}});
    CHECK_THROWS_WITH_AS(self(x, x, x, ft::Tensor<bool, 2>(ft::zeros<bool>({3, 5})), need_weights),
                         doctest::Contains("key_padding_mask [3, 5] is not [3, 4]"), ft::Error);
  }
  CHECK_THROWS_WITH_AS(nn::MultiheadAttention<float>(10, 3), doctest::Contains("divisible by num_heads"), ft::Error);
}

TEST_CASE("TransformerEncoderLayer and TransformerEncoder equal PyTorch's: post-norm, pre-norm, masks") {
  {
    nn::TransformerEncoderLayer<float> layer(8, 2, {.dim_feedforward = 16, .dropout = 0.0});
    load_case(layer, "encoder_post");
    auto src = leaf<3>("encoder_post.src");
    Var<float, 3> out = layer(src, ft::NoMask{}, bool_mask("encoder_post.src_key_padding_mask"));
    check_backward("encoder_post", layer, out, {{"src", src}});
  }
  {
    nn::TransformerEncoderLayer<float> layer(8, 2,
                                             {.dim_feedforward = 16,
                                              .dropout = 0.0,
                                              .activation = nn::TransformerActivation::GELU,
                                              .batch_first = true,
                                              .norm_first = true});
    load_case(layer, "encoder_pre_causal_bf");
    auto src = leaf<3>("encoder_pre_causal_bf.src");
    const ft::Tensor<float, 2> mask = nn::generate_square_subsequent_mask<float>(5);
    ft::test::check_close(mask, golden().values("encoder_pre_causal_bf.src_mask"), 0, 0);
    Var<float, 3> out = layer(src, mask);
    check_backward("encoder_pre_causal_bf", layer, out, {{"src", src}});
    // is_causal gives the same as the causal float mask
    Var<float, 3> causal = layer(src, ft::NoMask{}, ft::Tensor<bool, 2>(), true);
    ft::test::check_close(causal.value(), golden().values("encoder_pre_causal_bf.output"), 2e-5, 2e-6);
  }
  nn::TransformerEncoder<float> encoder(8, 2, 2, {.dim_feedforward = 16, .dropout = 0.0}, true);
  CHECK(encoder.named_parameters()[0].first == "layers.0.self_attn.in_proj_weight");
  load_case(encoder, "encoder_stack");
  auto src = leaf<3>("encoder_stack.src");
  Var<float, 3> out = encoder(src);
  check_backward("encoder_stack", encoder, out, {{"src", src}});
}

TEST_CASE("MultiheadAttention with kdim and vdim equals PyTorch's (q_proj_weight, k_proj_weight, v_proj_weight)") {
  for (bool need_weights : {true, false}) {
    INFO("need_weights " << need_weights);
    nn::MultiheadAttention<float> mha(8, 2, {.kdim = 6, .vdim = 5});
    CHECK(mha.named_parameters()[0].first == "q_proj_weight");
    load_case(mha, "mha_kvdim");
    auto query = leaf<3>("mha_kvdim.query"), key = leaf<3>("mha_kvdim.key"), value = leaf<3>("mha_kvdim.value");
    auto [out, weights] = mha(query, key, value, bool_mask("mha_kvdim.key_padding_mask"), need_weights);
    if (need_weights) ft::test::check_close(weights.value(), golden().values("mha_kvdim.weights"), 2e-5, 2e-6);
    check_backward("mha_kvdim", mha, out, {{"query", query}, {"key", key}, {"value", value}});
    CHECK_THROWS_WITH_AS(mha(query, value, value), doctest::Contains("kdim 6"), ft::Error);
  }
}

TEST_CASE("MultiheadAttention with add_bias_kv and add_zero_attn equals PyTorch's (the masks extended)") {
  for (bool need_weights : {true, false}) {
    INFO("need_weights " << need_weights);
    nn::MultiheadAttention<float> mha(8, 2, {.add_bias_kv = true, .add_zero_attn = true});
    REQUIRE(mha.named_parameters().size() == 6);
    CHECK(mha.named_parameters()[2].first == "bias_k");
    CHECK(mha.bias_k.shape() == ft::Shape<3>{1, 1, 8});
    load_case(mha, "mha_bias_kv_zero_attn");
    const std::string c = "mha_bias_kv_zero_attn";
    auto query = leaf<3>(c + ".query"), key = leaf<3>(c + ".key"), value = leaf<3>(c + ".value");
    auto [out, weights] = mha(query, key, value, bool_mask(c + ".key_padding_mask"), need_weights,
                              golden().tensor<float, 2>(c + ".attn_mask"));
    if (need_weights) {
      CHECK(weights.shape() == ft::Shape<3>{3, 4, 7});  // S + 2 keys
      ft::test::check_close(weights.value(), golden().values(c + ".weights"), 2e-5, 2e-6);
    } else {
      CHECK(!weights.defined());
    }
    check_backward(c, mha, out, {{"query", query}, {"key", key}, {"value", value}});
    CHECK_THROWS_WITH_AS(mha(query, key, value, ft::Tensor<bool, 2>(), need_weights, ft::NoMask{}, true),
                         doctest::Contains("is_causal with add_bias_kv or add_zero_attn"), ft::Error);
  }
  nn::MultiheadAttention<float> self(8, 2, {.batch_first = true, .add_zero_attn = true});
  CHECK(self.named_parameters().size() == 4);  // no bias_k, bias_v
  load_case(self, "mha_zero_attn_bf");
  auto x = leaf<3>("mha_zero_attn_bf.x");
  const ft::Tensor<bool, 3> mask(golden().tensor<std::int64_t, 3>("mha_zero_attn_bf.attn_mask") != 0);
  auto [out, weights] = self(x, x, x, ft::Tensor<bool, 2>(), true, mask);
  ft::test::check_close(weights.value(), golden().values("mha_zero_attn_bf.weights"), 2e-5, 2e-6);
  check_backward("mha_zero_attn_bf", self, out, {{"x", x}});
}

TEST_CASE("TransformerDecoderLayer, TransformerDecoder and Transformer equal PyTorch's: post-norm, pre-norm, masks") {
  {
    nn::TransformerDecoderLayer<float> layer(8, 2, {.dim_feedforward = 16, .dropout = 0.0});
    CHECK(layer.named_parameters()[4].first == "multihead_attn.in_proj_weight");
    load_case(layer, "decoder_post");
    auto tgt = leaf<3>("decoder_post.tgt"), memory = leaf<3>("decoder_post.memory");
    Var<float, 3> out = layer(tgt, memory, golden().tensor<float, 2>("decoder_post.tgt_mask"), ft::NoMask{},
                              ft::Tensor<bool, 2>(), bool_mask("decoder_post.memory_key_padding_mask"));
    check_backward("decoder_post", layer, out, {{"tgt", tgt}, {"memory", memory}});
    // tgt_is_causal gives the same as the causal float mask
    Var<float, 3> causal = layer(tgt, memory, ft::NoMask{}, ft::NoMask{}, ft::Tensor<bool, 2>(),
                                 bool_mask("decoder_post.memory_key_padding_mask"), true);
    ft::test::check_close(causal.value(), golden().values("decoder_post.output"), 2e-5, 2e-6);
  }
  {
    nn::TransformerDecoderLayer<float> layer(8, 2,
                                             {.dim_feedforward = 16,
                                              .dropout = 0.0,
                                              .activation = nn::TransformerActivation::GELU,
                                              .batch_first = true,
                                              .norm_first = true});
    load_case(layer, "decoder_pre_bf");
    auto tgt = leaf<3>("decoder_pre_bf.tgt"), memory = leaf<3>("decoder_pre_bf.memory");
    Var<float, 3> out = layer(tgt, memory, ft::NoMask{}, bool_mask("decoder_pre_bf.memory_mask"),
                              bool_mask("decoder_pre_bf.tgt_key_padding_mask"));
    check_backward("decoder_pre_bf", layer, out, {{"tgt", tgt}, {"memory", memory}});
  }
  {
    nn::TransformerDecoder<float> decoder(8, 2, 2, {.dim_feedforward = 16, .dropout = 0.0}, true);
    load_case(decoder, "decoder_stack");
    auto tgt = leaf<3>("decoder_stack.tgt"), memory = leaf<3>("decoder_stack.memory");
    Var<float, 3> out = decoder(tgt, memory);
    check_backward("decoder_stack", decoder, out, {{"tgt", tgt}, {"memory", memory}});
  }
  nn::Transformer<float> transformer(
      8, 2, {.num_encoder_layers = 2, .num_decoder_layers = 1, .dim_feedforward = 16, .dropout = 0.0});
  CHECK(transformer.named_parameters().back().first == "decoder.norm.bias");
  load_case(transformer, "transformer");
  auto src = leaf<3>("transformer.src"), tgt = leaf<3>("transformer.tgt");
  Var<float, 3> out = transformer(src, tgt, ft::NoMask{}, golden().tensor<float, 2>("transformer.tgt_mask"));
  check_backward("transformer", transformer, out, {{"src", src}, {"tgt", tgt}});
}
