// ft::onnx export: the graph's structure read back from the bytes (the values are checked by
// ONNX Runtime in tests/onnx/check_onnx.py), and the errors for what cannot be exported.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <tuple>
#include <vector>

#include "common.hpp"
#include "ft/nn.hpp"
#include "ft/onnx.hpp"
#include "ft/ops/ordering.hpp"

namespace {

namespace nn = ft::nn;
namespace pb = ft::utils::pb;

// The op types of a ModelProto's graph nodes, in order, and its initializer names.
struct GraphSummary {
  std::vector<std::string> ops, initializers, inputs, outputs;
  std::int64_t opset = 0;
};

GraphSummary summarize(const std::string& model) {
  GraphSummary g;
  auto strings_of = [](std::string_view msg, std::uint32_t field) {
    std::vector<std::string> out;
    pb::Reader r(msg, 0, "onnx");
    while (!r.done()) {
      pb::Wire w;
      if (r.key(w) == field && w == pb::kBytes)
        out.emplace_back(r.bytes().first);
      else
        r.skip(w);
    }
    return out;
  };
  pb::Reader m(model, 0, "model");
  while (!m.done()) {
    pb::Wire w;
    const auto f = m.key(w);
    if (f == 7 && w == pb::kBytes) {  // graph
      auto graph = m.bytes().first;
      pb::Reader r(graph, 0, "graph");
      while (!r.done()) {
        pb::Wire gw;
        const auto gf = r.key(gw);
        if (gw != pb::kBytes) {
          r.skip(gw);
          continue;
        }
        const auto body = r.bytes().first;
        if (gf == 1) g.ops.push_back(strings_of(body, 4).at(0));           // NodeProto.op_type
        if (gf == 5) g.initializers.push_back(strings_of(body, 8).at(0));  // TensorProto.name
        if (gf == 11) g.inputs.push_back(strings_of(body, 1).at(0));       // ValueInfoProto.name
        if (gf == 12) g.outputs.push_back(strings_of(body, 1).at(0));
      }
    } else if (f == 8 && w == pb::kBytes) {  // opset_import
      pb::Reader r(m.bytes().first, 0, "opset");
      while (!r.done()) {
        pb::Wire ow;
        if (r.key(ow) == 2 && ow == pb::kVarint)
          g.opset = static_cast<std::int64_t>(r.varint());
        else
          r.skip(ow);
      }
    } else {
      m.skip(w);
    }
  }
  return g;
}

struct Mlp : nn::Module<Mlp> {
  nn::Linear<float> fc1{6, 8}, fc2{8, 3};
  nn::Dropout drop{0.5};
  template <class V>
  void visit(V&& v) {
    v("fc1", fc1), v("fc2", fc2), v("drop", drop);
  }
  template <class X>
  auto forward(const X& x) {
    return fc2(drop(ft::relu(fc1(x))));
  }
};

// A model whose inner module uses an op without an ONNX form (cumsum).
struct Scan : nn::Module<Scan> {
  template <class V>
  void visit(V&&) {}
  template <class X>
  auto forward(const X& x) {
    return ft::cumsum(x, 1);
  }
};
// random slopes drawn in the forward (rrelu with training = true), which a graph cannot hold
struct TrainingRrelu : nn::Module<TrainingRrelu> {
  template <class V>
  void visit(V&&) {}
  template <class X>
  auto forward(const X& x) {
    return nn::functional::rrelu(x, 0.1, 0.3, /*training=*/true, 1);
  }
};
struct WithScan : nn::Module<WithScan> {
  nn::Linear<float> fc{6, 6};
  Scan scan;
  template <class V>
  void visit(V&& v) {
    v("fc", fc), v("scan", scan);
  }
  template <class X>
  auto forward(const X& x) {
    return fc(scan(x));
  }
};

// A forward that views a Var's value as a tensor (outside the traced ops).
struct TensorView : nn::Module<TensorView> {
  nn::Linear<float> fc{6, 6};
  template <class V>
  void visit(V&& v) {
    v("fc", fc);
  }
  template <class X>
  auto forward(const X& x) {
    ft::Var<float, 2> h = fc(x);
    return ft::Var<float, 2>(h.value().transpose(0, 1)) * 2.0f;
  }
};

// Two inputs (the second a bool mask) and two outputs.
struct TwoInTwoOut : nn::Module<TwoInTwoOut> {
  nn::Linear<float> fc{6, 6};
  template <class V>
  void visit(V&& v) {
    v("fc", fc);
  }
  template <class X>
  auto forward(const X& x, const ft::Tensor<bool, 2>& keep) {
    ft::Var<float, 2> h = fc(x);
    return std::make_tuple(ft::Var<float, 2>(ft::where(keep, h, 0.0f)), ft::Var<float, 1>(ft::sum(h, 1)));
  }
};

// A recurrent layer's output as a model.
template <class Layer>
struct Recurrent : nn::Module<Recurrent<Layer>> {
  Layer layer;
  explicit Recurrent(Layer l) : layer(std::move(l)) {}
  template <class V>
  void visit(V&& v) {
    v("layer", layer);
  }
  template <class X>
  auto forward(const X& x) {
    return layer(x).output;
  }
};

}  // namespace

TEST_CASE("onnx: a recurrent layer is one node per layer and direction, its gates in ONNX's order") {
  Recurrent lstm(nn::LSTM<float>(3, 4, {.num_layers = 2, .bidirectional = true}));
  const GraphSummary g = summarize(ft::onnx::to_onnx(lstm, ft::randn<float>({5, 2, 3}, ft::kCPU, 5)));
  CHECK(std::count(g.ops.begin(), g.ops.end(), "LSTM") == 4);
  // each layer's two directions, and the final states stacked: h_n and c_n [4, N, 4]
  CHECK(std::count(g.ops.begin(), g.ops.end(), "Concat") == 4);
  Recurrent gru(nn::GRU<float>(3, 4));
  const auto gru_ops = summarize(ft::onnx::to_onnx(gru, ft::randn<float>({5, 2, 3}, ft::kCPU, 6))).ops;
  CHECK(std::count(gru_ops.begin(), gru_ops.end(), "GRU") == 1);
  // the gate blocks: PyTorch's LSTM rows (i, f, g, o) become ONNX's (i, o, f, c)
  const auto w = ft::arange<float>(8).reshape({4, 2});
  const auto onnx = ft::nn::rnn::onnx_gates(ft::nn::rnn::Mode::LSTM, w);
  CHECK(onnx.to_vector() == std::vector<float>{0, 1, 6, 7, 2, 3, 4, 5});
  CHECK(ft::nn::rnn::onnx_gates(ft::nn::rnn::Mode::GRU, ft::arange<float>(3).reshape({3, 1})).to_vector() ==
        std::vector<float>{1, 0, 2});
  // with proj_size (no ONNX LSTM form): unrolled, one recurrent and one projecting MatMul a step
  // (the first step has no recurrent term: no initial state), the input projection one MatMul
  Recurrent projected(nn::LSTM<float>(3, 4, {.proj_size = 2}));
  const auto p_ops = summarize(ft::onnx::to_onnx(projected, ft::randn<float>({5, 2, 3}, ft::kCPU, 7))).ops;
  CHECK(std::count(p_ops.begin(), p_ops.end(), "LSTM") == 0);
  CHECK(std::count(p_ops.begin(), p_ops.end(), "MatMul") == 1 + 4 + 5);
  CHECK(std::count(p_ops.begin(), p_ops.end(), "Split") == 5);
}

TEST_CASE("onnx: a model's graph: its nodes, initializers under state_dict names, input and output") {
  Mlp m;
  m.train();
  const auto bytes = ft::onnx::to_onnx(m, ft::randn<float>({4, 6}, ft::kCPU, 1), {.opset = 17});
  CHECK(m.is_training());  // the mode is restored
  const GraphSummary g = summarize(bytes);
  CHECK(g.opset == 17);
  // Gemm (x·Wᵀ), the fused statement relu(· + b1) · 1 (dropout in eval mode), Gemm, + b2, the output
  CHECK(g.ops == std::vector<std::string>{"Gemm", "Add", "Relu", "Mul", "Gemm", "Add", "Identity"});
  for (const char* name : {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"})
    CHECK(std::find(g.initializers.begin(), g.initializers.end(), name) != g.initializers.end());
  CHECK(g.inputs == std::vector<std::string>{"input"});
  CHECK(g.outputs == std::vector<std::string>{"output"});
  const auto named = summarize(ft::onnx::to_onnx(m, ft::randn<float>({4, 6}, ft::kCPU, 1),
                                                 {.input_names = {"pixels"}, .output_names = {"logits"}}));
  CHECK(named.inputs == std::vector<std::string>{"pixels"});
  CHECK(named.outputs == std::vector<std::string>{"logits"});
}

TEST_CASE("onnx: a forward of several inputs and outputs: graph inputs and outputs in order, each named") {
  TwoInTwoOut m;
  const auto x = ft::randn<float>({4, 6}, ft::kCPU, 5);
  const ft::Tensor<bool, 2> keep = x > 0.0f;
  const GraphSummary g = summarize(
      ft::onnx::to_onnx(m, std::make_tuple(x, keep), {.input_names = {"x", "keep"}, .output_names = {"y", "total"}}));
  CHECK(g.inputs == std::vector<std::string>{"x", "keep"});
  CHECK(g.outputs == std::vector<std::string>{"y", "total"});
  CHECK(std::find(g.ops.begin(), g.ops.end(), "Where") != g.ops.end());  // the mask is read, not a constant
  CHECK(ft::test::error_of([&] {
          ft::onnx::to_onnx(m, std::make_tuple(x, keep));
        }).find("one name for each of the 2 inputs (ExportOptions::input_names), got 1") != std::string::npos);
  CHECK(ft::test::error_of([&] {
          ft::onnx::to_onnx(m, std::make_tuple(x, keep), {.input_names = {"x", "keep"}});
        }).find("one name for each of the 2 outputs (ExportOptions::output_names), got 1") != std::string::npos);
}

TEST_CASE("onnx: what cannot be exported is an error naming it and its module, and no file is written") {
  const auto path = std::filesystem::temp_directory_path() / "ft_test_onnx_unsupported.onnx";
  std::filesystem::remove(path);
  WithScan m;
  const std::string e = ft::test::error_of([&] {
    ft::onnx::export_model(m, ft::randn<float>({4, 6}, ft::kCPU, 2), path.string());
  });
  CHECK(e.find("onnx::export_model") != std::string::npos);
  CHECK(e.find("cumsum") != std::string::npos);
  CHECK(e.find("module \"scan\"") != std::string::npos);
  CHECK(!std::filesystem::exists(path));
  TensorView v;
  const std::string view = ft::test::error_of([&] { ft::onnx::to_onnx(v, ft::randn<float>({4, 6}, ft::kCPU, 3)); });
  CHECK(view.find("taken outside the traced ops") != std::string::npos);
  Mlp mlp;
  CHECK(ft::test::error_of([&] {
          ft::onnx::to_onnx(mlp, ft::randn<float>({4, 6}, ft::kCPU, 4), {.opset = 11});
        }).find("opset 11") != std::string::npos);
  TrainingRrelu rrelu;
  CHECK(ft::test::error_of([&] {
          ft::onnx::to_onnx(rrelu, ft::randn<float>({4, 6}, ft::kCPU, 5));
        }).find("rrelu in training mode") != std::string::npos);
}

namespace {

// ONNX's external data: TensorProto.external_data (13) entries and data_location (14).
struct ExternalEntry {
  std::string name, location;
  std::uint64_t offset = 0, length = 0;
  bool external = false, raw = false;
};

std::vector<ExternalEntry> initializers_of(const std::string& model) {
  std::vector<ExternalEntry> out;
  auto fields = [](std::string_view msg, auto&& on) {
    pb::Reader r(msg, 0, "onnx");
    while (!r.done()) {
      pb::Wire w;
      const auto f = r.key(w);
      if (w == pb::kBytes)
        on(f, r.bytes().first, std::uint64_t{0});
      else if (w == pb::kVarint)
        on(f, std::string_view{}, r.varint());
      else
        r.skip(w);
    }
  };
  fields(model, [&](std::uint32_t f, std::string_view graph, std::uint64_t) {
    if (f != 7) return;
    fields(graph, [&](std::uint32_t gf, std::string_view tensor, std::uint64_t) {
      if (gf != 5) return;
      ExternalEntry e;
      fields(tensor, [&](std::uint32_t tf, std::string_view b, std::uint64_t v) {
        if (tf == 8) e.name = std::string(b);
        if (tf == 9) e.raw = true;
        if (tf == 14) e.external = v == 1;
        if (tf == 13) {
          std::string key, value;
          fields(b, [&](std::uint32_t kf, std::string_view kv, std::uint64_t) {
            (kf == 1 ? key : value) = std::string(kv);
          });
          if (key == "location") e.location = value;
          if (key == "offset") e.offset = std::stoull(value);
          if (key == "length") e.length = std::stoull(value);
        }
      });
      out.push_back(e);
    });
  });
  return out;
}

std::string file_bytes(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace

TEST_CASE("onnx: external data: the larger parameters in <file>.data at aligned offsets, the rest inside") {
  const auto dir = std::filesystem::temp_directory_path() / "ft_test_onnx_external";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const auto path = dir / "mlp.onnx";
  Mlp m;
  const auto x = ft::randn<float>({4, 6}, ft::kCPU, 5);
  // fc1.weight (192 bytes) and fc2.weight (96) reach the threshold; the biases and constants do not
  ft::onnx::export_model(m, x, path.string(),
                         {.external_data = ft::onnx::ExternalData::Always, .external_size_threshold = 96});
  const std::string data = file_bytes(dir / "mlp.onnx.data");
  int outside = 0;
  for (const auto& e : initializers_of(file_bytes(path))) {
    const bool big = e.name == "fc1.weight" || e.name == "fc2.weight";
    CAPTURE(e.name);
    CHECK(e.external == big);
    CHECK(e.raw == !big);
    if (!big) continue;
    ++outside;
    CHECK(e.location == "mlp.onnx.data");
    CHECK(e.offset % 4096 == 0);
    const auto& w = e.name == "fc1.weight" ? m.fc1.weight.value() : m.fc2.weight.value();
    REQUIRE(e.length == static_cast<std::uint64_t>(w.numel()) * sizeof(float));
    REQUIRE(e.offset + e.length <= data.size());
    CHECK(std::memcmp(data.data() + e.offset, w.data(), e.length) == 0);
  }
  CHECK(outside == 2);
  // Auto: a small model keeps everything inside and writes no side file (as Never)
  std::filesystem::remove(dir / "mlp.onnx.data");
  ft::onnx::export_model(m, x, path.string());
  CHECK(!std::filesystem::exists(dir / "mlp.onnx.data"));
  CHECK(file_bytes(path) == ft::onnx::to_onnx(m, x));
  CHECK(ft::test::error_of([&] {
          ft::onnx::to_onnx(m, x, {.external_data = ft::onnx::ExternalData::Always});
        }).find("use export_model") != std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST_CASE("onnx: BatchNorm in eval mode is one BatchNormalization node reading its parameters and statistics") {
  nn::BatchNorm2d<float> bn(3);
  const GraphSummary g = summarize(ft::onnx::to_onnx(bn, ft::randn<float>({2, 3, 4, 4}, ft::kCPU, 6)));
  CHECK(g.ops == std::vector<std::string>{"BatchNormalization", "Identity"});
  for (const char* name : {"weight", "bias", "running_mean", "running_var"})
    CHECK(std::find(g.initializers.begin(), g.initializers.end(), name) != g.initializers.end());
}
