// ONNX export: a model's forward, traced, as an ONNX ModelProto that ONNX Runtime, TensorRT and
// OpenVINO load (the protobuf wire format written directly, as the TensorBoard writer does).
//
//   model.eval();   // export_model runs the forward in eval mode anyway, and restores the mode
//   ft::onnx::export_model(model, ft::zeros<float>({1, 1, 8, 8}), "digits.onnx", {.opset = 17});
//   # python3 -c "import onnxruntime as ort, numpy as np;
//   #   s = ort.InferenceSession('digits.onnx'); print(s.run(None, {'input': np.zeros((5, 1, 8, 8), 'float32')}))"
//
// The graph is the forward as it runs on the example input (autograd/trace.hpp): each fused
// statement becomes its ONNX node sequence, each boundary op (Gemm/MatMul, Conv, MaxPool,
// AveragePool, GlobalAveragePool, BatchNormalization, LayerNormalization, Softmax, LogSoftmax,
// Gather, the views) its node; parameters and buffers become initializers under their
// state_dict names, in "<file>.data" beside the model over 2 GB (or with ExternalData::Always),
// as ONNX's external data; the first dimension of the inputs and outputs is the symbolic "batch"
// (dynamic_batch). A std::tuple of examples makes one graph input each (a forward of several
// arguments, such as (x, key_padding_mask)); a forward that returns a std::tuple, one output each. Dropout runs as the
// identity (eval mode); BatchNorm is one BatchNormalization node with the running statistics. Something the graph
// cannot express is an ft::Error naming it and the module it ran in, before any file is written.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "ft/autograd.hpp"
#include "ft/core/any_tensor.hpp"
#include "ft/core/config.hpp"
#include "ft/io/file.hpp"
#include "ft/nn/module.hpp"
#include "ft/utils/protobuf.hpp"
#include "ft/version.hpp"

namespace ft::inline FT_ABI::onnx {

// Where export_model writes the parameters: in the .onnx file, or in a side file beside it
// ("<model file name>.data", ONNX's external data: each initializer's location, offset and
// length in the model, its bytes at a 4096-byte aligned offset in the side file). A protobuf
// file cannot exceed 2 GB, so Auto puts them in the side file exactly when the model would.
enum class ExternalData { Auto, Always, Never };

struct ExportOptions {
  int opset = 17;  // 13 to 17: the operator set the nodes follow
  std::vector<std::string> input_names = {"input"};
  std::vector<std::string> output_names = {"output"};
  bool dynamic_batch = true;  // the first dimension of the input and output is "batch"
  std::string graph_name = "fusedtensor";
  ExternalData external_data = ExternalData::Auto;
  std::size_t external_size_threshold = 1024;  // smaller initializers stay in the model (as onnx.save's)
};

namespace detail {

namespace pb = utils::pb;
using autograd::trace::Attribute;
using autograd::trace::onnx_dtype;

// A host copy of a tensor's elements, in C order (little-endian, as ONNX's raw_data).
inline std::string raw_bytes(const AnyTensor& t) {
  const AnyTensor host = contiguous_on(t, kCPU);
  return std::string(static_cast<const char*>(host.data()), host.nbytes());
}

inline std::string tensor_header(const std::string& name, DType dtype, const std::vector<index_t>& shape) {
  std::string m;
  for (index_t d : shape) pb::uint_field(m, 1, static_cast<std::uint64_t>(d));  // dims
  pb::uint_field(m, 2, static_cast<std::uint64_t>(onnx_dtype(dtype)));          // data_type
  pb::bytes_field(m, 8, name);
  return m;
}

inline std::string tensor_proto(const std::string& name, DType dtype, const std::vector<index_t>& shape,
                                const std::string& raw) {
  std::string m = tensor_header(name, dtype, shape);
  pb::bytes_field(m, 9, raw);  // raw_data
  return m;
}

// The initializers export_model puts in the side file: where each one's bytes go.
struct External {
  std::string location;  // the side file's name, relative to the model's folder
  std::size_t threshold = 0;
  std::vector<std::pair<std::uint64_t, AnyTensor>> tensors;  // offset, value
  std::uint64_t size = 0;
};

inline constexpr std::uint64_t kExternalAlignment = 4096;
// A protobuf message over 2 GB cannot be parsed (its sizes are 32-bit signed).
inline constexpr std::uint64_t kProtobufLimit = (std::uint64_t{1} << 31) - 1;

// The TensorProto of an initializer whose bytes go to the side file (data_location EXTERNAL,
// its location, offset and length as ONNX's ExternalData.md describes).
inline std::string external_tensor_proto(const std::string& name, const AnyTensor& value, External& ext) {
  const std::uint64_t offset = (ext.size + kExternalAlignment - 1) / kExternalAlignment * kExternalAlignment;
  const std::uint64_t length = value.nbytes();
  ext.tensors.emplace_back(offset, value);
  ext.size = offset + length;
  std::string m = tensor_header(name, value.dtype(), value.shape());
  for (const auto& [key, v] : {std::pair<const char*, std::string>{"location", ext.location},
                               {"offset", std::to_string(offset)},
                               {"length", std::to_string(length)}}) {
    std::string entry;  // StringStringEntryProto
    pb::bytes_field(entry, 1, key);
    pb::bytes_field(entry, 2, v);
    pb::bytes_field(m, 13, entry);  // external_data
  }
  pb::uint_field(m, 14, 1);  // data_location: EXTERNAL
  return m;
}

inline std::string attribute_proto(const Attribute& a) {
  std::string m;
  pb::bytes_field(m, 1, a.name);
  switch (a.kind) {
    case Attribute::Int:
      pb::uint_field(m, 3, static_cast<std::uint64_t>(a.i));
      pb::uint_field(m, 20, 2);  // AttributeType INT
      break;
    case Attribute::Ints:
      for (std::int64_t v : a.ints) pb::uint_field(m, 8, static_cast<std::uint64_t>(v));
      pb::uint_field(m, 20, 7);  // INTS
      break;
    case Attribute::Float:
      pb::float_field(m, 2, static_cast<float>(a.f));
      pb::uint_field(m, 20, 1);  // FLOAT
      break;
    case Attribute::String:
      pb::bytes_field(m, 4, a.s);
      pb::uint_field(m, 20, 3);  // STRING
      break;
    case Attribute::Strings:
      for (const auto& v : a.strings) pb::bytes_field(m, 9, v);
      pb::uint_field(m, 20, 8);  // STRINGS
      break;
  }
  return m;
}

// ValueInfoProto: a name, an element type and a shape. With a symbolic batch (`batch` > 0, the
// example's size), a first dimension of that size is "batch", and a later one of that size is
// left symbolic too ("<name>_dim<k>": it may depend on the batch); the others are fixed.
inline std::string value_info(const std::string& name, DType dtype, const std::vector<index_t>& shape, index_t batch) {
  std::string dims, tensor, type, m;
  for (std::size_t d = 0; d < shape.size(); ++d) {
    std::string dim;
    if (batch > 0 && shape[d] == batch)
      pb::bytes_field(dim, 2, d == 0 ? std::string("batch") : name + "_dim" + std::to_string(d));  // dim_param
    else
      pb::uint_field(dim, 1, static_cast<std::uint64_t>(shape[d]));  // dim_value
    pb::bytes_field(dims, 1, dim);
  }
  pb::uint_field(tensor, 1, static_cast<std::uint64_t>(onnx_dtype(dtype)));  // elem_type
  pb::bytes_field(tensor, 2, dims);                                          // shape
  pb::bytes_field(type, 1, tensor);                                          // tensor_type
  pb::bytes_field(m, 1, name);
  pb::bytes_field(m, 2, type);
  return m;
}

// The graph a traced forward writes: nodes, initializers and the names of values.
class Graph final : public autograd::trace::Sink {
 public:
  explicit Graph(const ExportOptions& options) : options_(options) {}

  // A parameter or buffer: an initializer named `name`, written when a node reads it.
  void add_initializer(std::shared_ptr<const void> key, const std::string& name, const AnyTensor& value) {
    if (entries_.count(key.get())) return;  // shared by two modules: the first name
    entries_[key.get()] = {name, key, value, Kind::initializer};
    add_data_key(name, value, Kind::initializer);
  }
  void add_input(std::shared_ptr<const void> key, const std::string& name, const AnyTensor& value) {
    inputs_.push_back(key.get());
    entries_[key.get()] = {name, key, value, Kind::input};
    add_data_key(name, value, Kind::input);
  }
  // Paths of the modules, for errors.
  void add_module(const void* module, const std::string& path) { modules_[module] = path; }

  FT_COMPILED std::string statement(const std::vector<autograd::trace::detail::TraceOp>& ops, DType want) override;
  FT_COMPILED std::string value(std::shared_ptr<const void> key, const AnyTensor& v) override;
  FT_COMPILED std::string scalar(double v, DType dtype) override;
  std::string ints(const std::vector<std::int64_t>& v) override {
    if (auto it = int_lists_.find(v); it != int_lists_.end()) return it->second;
    std::string raw(v.size() * 8, '\0');
    if (!v.empty()) std::memcpy(raw.data(), v.data(), raw.size());
    const std::string name = fresh("ints");
    initializers_.push_back(tensor_proto(name, DType::Int64, {static_cast<index_t>(v.size())}, raw));
    return int_lists_[v] = name;
  }
  std::vector<std::string> node(const std::string& op_type, const std::vector<std::string>& inputs,
                                const std::vector<Attribute>& attributes, int outputs) override {
    std::string m;
    for (const auto& in : inputs) pb::bytes_field(m, 1, in);
    std::vector<std::string> outs;
    for (int k = 0; k < outputs; ++k) outs.push_back(fresh(op_type));
    for (const auto& o : outs) pb::bytes_field(m, 2, o);
    pb::bytes_field(m, 3, op_type + "_" + std::to_string(nodes_.size()));
    pb::bytes_field(m, 4, op_type);
    for (const auto& a : attributes) pb::bytes_field(m, 5, attribute_proto(a));
    nodes_.push_back(std::move(m));
    return outs;
  }
  void opaque(std::shared_ptr<const void> key, const std::string& op, const AnyTensor& v) override {
    entries_[key.get()] = {op, key, v, Kind::opaque, false, where()};
  }
  void bind(std::shared_ptr<const void> key, const std::string& name, const AnyTensor& v) override {
    entries_[key.get()] = {name, key, v, Kind::computed};
    add_data_key(name, v, Kind::computed);
  }
  const char* op_name() const override { return "onnx::export_model"; }
  std::string where() const override {
    if (!stack_.empty())
      if (auto it = modules_.find(stack_.back()); it != modules_.end()) return "module \"" + it->second + "\"";
    return "the model's forward";
  }
  bool is_dynamic_batch() const override { return options_.dynamic_batch; }
  void enter(const void* module) override { stack_.push_back(module); }
  void leave() override { stack_.pop_back(); }

  // The bytes of the parameters, buffers and constants that nodes read.
  std::uint64_t initializer_bytes() const {
    std::uint64_t n = 0;
    for (const auto& [ptr, e] : entries_)
      if (e.kind == Kind::initializer && !e.data_alias && used_.count(e.name)) n += e.value.nbytes();
    return n;
  }

  // The ModelProto with `output` (a traced value) as the graph's output; with `external`, the
  // initializers of at least its threshold's bytes are written as external data.
  FT_COMPILED std::string model(const std::vector<std::string>& outputs, const std::vector<AnyTensor>& output_values,
                                External* external = nullptr);

 private:
  enum class Kind { input, initializer, computed, opaque };
  struct Entry {
    std::string name;
    std::shared_ptr<const void> keep;  // the Var or storage, so that its address names nothing else
    AnyTensor value;
    Kind kind;
    bool data_alias = false;  // the same value under its data pointer
    std::string where = {};   // an opaque op's module
  };

  std::string use(const Entry& e) {
    used_.insert(e.name);
    return e.name;
  }
  // The value under its data pointer too (a tensor leaf reading it); a view's data pointer is
  // its base's, which keeps its entry when it is an input or a parameter.
  void add_data_key(const std::string& name, const AnyTensor& v, Kind kind) {
    if (!v.defined()) return;
    auto it = entries_.find(v.data());
    if (it != entries_.end() && it->second.kind != Kind::computed) return;
    entries_[v.data()] = Entry{name, v.storage(), v, kind, true};
  }
  std::string fresh(const std::string& stem) { return stem + "_" + std::to_string(counter_++); }
  static bool is_dense(const AnyTensor& t) {
    index_t expect = 1;
    for (int d = t.dim() - 1; d >= 0; --d) {
      const auto i = static_cast<std::size_t>(d);
      if (t.shape()[i] != 1 && t.strides()[i] != expect) return false;
      expect *= t.shape()[i];
    }
    return true;
  }

  ExportOptions options_;
  std::map<const void*, Entry> entries_;
  std::map<std::pair<std::uint64_t, int>, std::string> scalars_;
  std::map<std::vector<std::int64_t>, std::string> int_lists_;
  std::map<const void*, std::string> modules_;
  std::vector<const void*> stack_;
  std::vector<const void*> inputs_;  // in the forward's argument order
  std::vector<std::string> nodes_, initializers_;
  std::set<std::string> used_;
  int counter_ = 0;
};

// The example input as the model receives it: a floating tensor as a Var (so that its views
// are traced), an integer tensor (indices) as it is.
template <class X>
auto model_input(const X& x) {
  if constexpr (!ft::detail::is_var<X>::value && is_floating_v<typename X::value_type>)
    return Var<typename X::value_type, X::rank>(x);
  else
    return x;
}

}  // namespace detail

namespace detail {

// Runs the model's forward on `example_input` (a Tensor or Var; its first dimension is the
// batch) once, in eval mode and without a tape, traced into a Graph; returns
// finish(graph, the output's name, the output).
template <class X>
struct is_tuple : std::false_type {};
template <class... X>
struct is_tuple<std::tuple<X...>> : std::true_type {};

// The example inputs as a tuple (one input, or the elements of a std::tuple of them).
template <class X>
auto input_tuple(const X& x) {
  if constexpr (is_tuple<X>::value)
    return std::apply([](const auto&... xs) { return std::make_tuple(model_input(xs)...); }, x);
  else
    return std::make_tuple(model_input(x));
}

template <class Model, class X, class Finish>
std::string trace_model(Model& model, const X& example_input, const ExportOptions& options, Finish&& finish) {
  check(options.opset >= 13 && options.opset <= 17, "onnx::export_model", "opset ", options.opset,
        " is not supported (13 to 17)");
  auto inputs = input_tuple(example_input);
  constexpr std::size_t n = std::tuple_size_v<decltype(inputs)>;
  check(options.input_names.size() == n, "onnx::export_model", "one name for each of the ", n,
        n == 1 ? " input" : " inputs", " (ExportOptions::input_names), got ", options.input_names.size());
  Graph g(options);
  g.add_module(&model, "(the model)");
  nn::walk(
      model,
      [&](const std::string& name, auto& v) { g.add_initializer(autograd::trace::key(v), name, AnyTensor(v.value())); },
      [&](const std::string& name, auto& t) { g.add_initializer(autograd::trace::key(t), name, AnyTensor(t)); },
      [&](const std::string& name, auto& m) { g.add_module(&m, name); });
  [&]<std::size_t... I>(std::index_sequence<I...>) {
    auto add = [&](const auto& input, const std::string& name) {
      if constexpr (ft::detail::is_var<std::remove_cvref_t<decltype(input)>>::value)
        g.add_input(autograd::trace::key(input), name, AnyTensor(input.value()));
      else
        g.add_input(autograd::trace::key(input), name, AnyTensor(input));
    };
    (add(std::get<I>(inputs), options.input_names[I]), ...);
  }
  (std::make_index_sequence<n>{});
  const bool was_training = model.is_training();
  model.eval();
  struct Restore {
    Model& m;
    bool training;
    ~Restore() { m.train(training); }
  } restore{model, was_training};
  NoGradGuard no_grad;
  const autograd::trace::Scope scope(g);
  auto y = std::apply(model, inputs);
  // each output (one, or the elements of a std::tuple) as a Var: its graph name and value
  std::vector<std::string> names;
  std::vector<AnyTensor> values;
  auto add = [&](const auto& o) {
    using Y = std::remove_cvref_t<decltype(o)>;
    using T = float_promote_t<typename Y::value_type>;
    Var<T, Y::rank> out = [&] {
      if constexpr (ft::detail::is_var<Y>::value && std::is_same_v<typename Y::value_type, T>)
        return o;
      else
        return Var<T, Y::rank>(o);  // the last statement, traced
    }();
    names.push_back(autograd::trace::name(g, out));
    values.push_back(AnyTensor(out.value()));
  };
  if constexpr (is_tuple<decltype(y)>::value)
    std::apply([&](const auto&... o) { (add(o), ...); }, y);
  else
    add(y);
  check(options.output_names.size() == names.size(), "onnx::export_model", "one name for each of the ", names.size(),
        names.size() == 1 ? " output" : " outputs", " (ExportOptions::output_names), got ",
        options.output_names.size());
  return finish(g, names, values);
}

inline void check_protobuf_size(std::uint64_t bytes) {
  check(bytes <= kProtobufLimit, "onnx::export_model", "the model is ", bytes,
        " bytes, over protobuf's 2 GB limit: export_model with external_data Auto or Always writes the "
        "parameters to a side file");
}

// The side file: each tensor's bytes at its offset, zeros between.
inline void write_external(std::FILE* f, const External& ext) {
  static const char zeros[kExternalAlignment] = {};
  std::uint64_t at = 0;
  for (const auto& [offset, value] : ext.tensors) {
    io::write_all(f, zeros, static_cast<std::size_t>(offset - at));
    const std::string raw = raw_bytes(value);
    io::write_all(f, raw.data(), raw.size());
    at = offset + raw.size();
  }
}

// The ModelProto; its initializers of at least ext.threshold bytes recorded in `ext` instead
// when `mode` asks for external data.
inline std::string model_bytes(Graph& g, const std::vector<std::string>& out, const std::vector<AnyTensor>& value,
                               ExternalData mode, External& ext) {
  if (mode != ExternalData::Never) {
    std::string outside = g.model(out, value, &ext);
    // in the file, each initializer's bytes would add at most its length to this
    if (mode == ExternalData::Always || outside.size() + g.initializer_bytes() > kProtobufLimit) {
      check_protobuf_size(outside.size());
      return outside;
    }
    ext.tensors.clear();
    ext.size = 0;
  }
  std::string inside = g.model(out, value);
  check_protobuf_size(inside.size());
  return inside;
}

// The side file when `ext` has tensors, then the model.
inline void write_model_files(const std::string& path, const std::string& bytes, const External& ext) {
  if (!ext.tensors.empty()) {
    const std::filesystem::path target(path);
    const std::filesystem::path data =
        target.has_parent_path() ? target.parent_path() / ext.location : std::filesystem::path(ext.location);
    io::write_file_atomic(data.string(), "onnx::export_model", [&](std::FILE* f) { write_external(f, ext); });
  }
  io::write_file_atomic(path, "onnx::export_model",
                        [&](std::FILE* f) { io::write_all(f, bytes.data(), bytes.size()); });
}

#if FT_DEFINES_COMPILED  // compiled once in the library (core/config.hpp)
FT_COMPILED std::string Graph::statement(const std::vector<autograd::trace::detail::TraceOp>& ops, DType want) {
  std::size_t pos = 0;
  return autograd::trace::detail::emit(*this, ops, pos, want);
}

FT_COMPILED std::string Graph::value(std::shared_ptr<const void> key, const AnyTensor& v) {
  auto same_view = [&](const AnyTensor& a) {
    return !a.defined() || !v.defined() ||
           (a.shape() == v.shape() && a.strides() == v.strides() && a.dtype() == v.dtype());
  };
  if (auto it = entries_.find(key.get()); it != entries_.end()) {
    if (it->second.kind == Kind::opaque)  // named where it ran
      fail(op_name(), "cannot export the op ", it->second.name, " (in ", it->second.where, "); nothing was written");
    // a tensor's key is its first element: another view of an input or parameter (a mask
    // [N, S] read as [N, 1, 1, S]) has the same key, and is handled below
    if (it->second.kind == Kind::computed || same_view(it->second.value)) return use(it->second);
  }
  // a Var over a traced tensor (a boundary op's operand wrapped as a constant Var), or a view of
  // an input or parameter: its data
  if (auto it = entries_.find(v.data()); it != entries_.end()) {
    const Entry e = it->second;
    if (same_view(e.value)) return use(e);
    // a parameter's or buffer's reshaped view (BatchNorm's statistics as [1, C, 1]), or an
    // input's (a key padding mask [N, S] read as [N, 1, 1, S]): a Reshape; an input's leading
    // dims that the view keeps are 0 (copied), so that a symbolic batch stays symbolic
    if ((e.kind == Kind::initializer || e.kind == Kind::input) && e.value.dtype() == v.dtype() &&
        e.value.numel() == v.numel() && is_dense(e.value) && is_dense(v)) {
      std::vector<std::int64_t> shape(v.shape().begin(), v.shape().end());
      for (std::size_t d = 0; e.kind == Kind::input && options_.dynamic_batch && d < shape.size() &&
                              d < static_cast<std::size_t>(e.value.dim()) && v.shape()[d] == e.value.shape()[d];
           ++d)
        shape[d] = 0;
      const std::string name = node("Reshape", {use(e), ints(shape)}, {}, 1)[0];
      if (key.get() != v.data()) entries_[key.get()] = {name, key, v, Kind::computed};  // not the tensor's own key
      return name;
    }
    unsupported("a view " + v.shape_string() + " of the traced value \"" + e.name + "\" " + e.value.shape_string() +
                " taken outside the traced ops (use the Var's own view methods)");
  }
  // a tensor the forward created: a constant
  const std::string name = fresh("const");
  entries_[key.get()] = {name, key, v, Kind::initializer};
  return use(entries_[key.get()]);
}

FT_COMPILED std::string Graph::scalar(double v, DType dtype) {
  const auto k = std::make_pair(std::bit_cast<std::uint64_t>(v), static_cast<int>(dtype));  // NaN too
  if (auto it = scalars_.find(k); it != scalars_.end()) return it->second;
  AnyTensor t;
  with_dtype_rank(dtype, 0, [&]<class T, int R>() {
    Tensor<T, R> x(Shape<R>{});
    x.data()[0] = static_cast<T>(v);
    t = x;
    return t;
  });
  const std::string name = fresh("scalar");
  initializers_.push_back(tensor_proto(name, dtype, {}, raw_bytes(t)));
  return scalars_[k] = name;
}

FT_COMPILED std::string Graph::model(const std::vector<std::string>& outputs,
                                     const std::vector<AnyTensor>& output_values, External* external) {
  std::string graph;
  for (const auto& n : nodes_) pb::bytes_field(graph, 1, n);
  for (std::size_t k = 0; k < outputs.size(); ++k) {
    std::string identity;  // each output under its requested name
    pb::bytes_field(identity, 1, outputs[k]);
    pb::bytes_field(identity, 2, options_.output_names[k]);
    pb::bytes_field(identity, 3, k == 0 ? std::string("output_identity") : "output_identity_" + std::to_string(k));
    pb::bytes_field(identity, 4, "Identity");
    pb::bytes_field(graph, 1, identity);
  }
  pb::bytes_field(graph, 2, options_.graph_name);
  for (const auto& [ptr, e] : entries_)  // the parameters, buffers and constants that nodes read
    if (e.kind == Kind::initializer && !e.data_alias && used_.count(e.name)) {
      if (external && e.value.nbytes() >= external->threshold)
        pb::bytes_field(graph, 5, external_tensor_proto(e.name, e.value, *external));
      else
        pb::bytes_field(graph, 5, tensor_proto(e.name, e.value.dtype(), e.value.shape(), raw_bytes(e.value)));
    }
  for (const auto& init : initializers_) pb::bytes_field(graph, 5, init);
  index_t batch = 0;
  for (const void* key : inputs_) {  // the graph's inputs in the forward's argument order
    const Entry& e = entries_.at(key);
    if (options_.dynamic_batch && e.value.dim() > 0) batch = e.value.shape()[0];
    pb::bytes_field(graph, 11, value_info(e.name, e.value.dtype(), e.value.shape(), batch));
  }
  for (std::size_t k = 0; k < outputs.size(); ++k) {
    const AnyTensor& v = output_values[k];
    pb::bytes_field(graph, 12, value_info(options_.output_names[k], v.dtype(), v.shape(), v.dim() > 0 ? batch : 0));
  }
  std::string opset, m;
  pb::bytes_field(opset, 1, "");
  pb::uint_field(opset, 2, static_cast<std::uint64_t>(options_.opset));
  pb::uint_field(m, 1, 8);  // ir_version 8 (ONNX 1.10+, opsets up to 17)
  pb::bytes_field(m, 2, "fusedtensor");
  pb::bytes_field(m, 3, FT_VERSION_STRING);
  pb::bytes_field(m, 7, graph);
  pb::bytes_field(m, 8, opset);
  return m;
}
#endif

}  // namespace detail

// The ONNX bytes of the model's forward on `example_input` (a Tensor or Var; its first
// dimension is the batch; or a std::tuple of them, for a forward of several arguments such as
// (x, key_padding_mask), each a graph input named by options.input_names), every parameter
// inside. The model runs once, in eval mode and without a tape.
template <class Model, class X>
std::string to_onnx(Model& model, const X& example_input, const ExportOptions& options = {}) {
  check(options.external_data != ExternalData::Always, "onnx::to_onnx",
        "external data needs a file beside the model: use export_model");
  return detail::trace_model(
      model, example_input, options,
      [](detail::Graph& g, const std::vector<std::string>& out, const std::vector<AnyTensor>& value) {
        std::string bytes = g.model(out, value);
        detail::check_protobuf_size(bytes.size());
        return bytes;
      });
}

// to_onnx, written atomically to `path`; with external data (options.external_data) the
// parameters go to "<path>.data" first (also atomically), then the model that names it.
template <class Model, class X>
void export_model(Model& model, const X& example_input, const std::string& path, const ExportOptions& options = {}) {
  detail::External ext;
  ext.location = std::filesystem::path(path).filename().string() + ".data";
  ext.threshold = options.external_size_threshold;
  const std::string bytes = detail::trace_model(
      model, example_input, options,
      [&](detail::Graph& g, const std::vector<std::string>& out, const std::vector<AnyTensor>& value) {
        return detail::model_bytes(g, out, value, options.external_data, ext);
      });
  detail::write_model_files(path, bytes, ext);
}

}  // namespace ft::inline FT_ABI::onnx
