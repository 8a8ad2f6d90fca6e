// Tracing a forward pass into a graph (ONNX export, include/ft/onnx/): while a Sink is set for
// the thread, every statement `Var v = expr;` hands its expression tree to the sink as graph
// nodes (the tree is known from the expression's type), and every boundary op (matmul, linear,
// conv2d, pooling, softmax, layer_norm, embedding, the views of Vars) hands itself over as one
// node with its attributes. Values are named by the Var (its state) or tensor (its data) that
// holds them. Without a sink, the hooks cost one thread-local load a statement.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "ft/autograd/adjoint.hpp"
#include "ft/autograd/var.hpp"
#include "ft/core/any_tensor.hpp"
#include "ft/core/config.hpp"
#include "ft/core/dtype.hpp"

namespace ft::inline FT_ABI::autograd::trace {

// A node attribute: an int, a list of ints, a float, a string or a list of strings (ONNX's
// AttributeProto kinds).
struct Attribute {
  enum Kind { Int, Ints, Float, String, Strings } kind;
  std::string name;
  std::int64_t i = 0;
  std::vector<std::int64_t> ints;
  double f = 0;
  std::string s;
  std::vector<std::string> strings;
  static Attribute integer(std::string n, std::int64_t v) { return {Int, std::move(n), v, {}, 0, {}, {}}; }
  static Attribute integers(std::string n, std::vector<std::int64_t> v) {
    return {Ints, std::move(n), 0, std::move(v), 0, {}, {}};
  }
  static Attribute real(std::string n, double v) { return {Float, std::move(n), 0, {}, v, {}, {}}; }
  static Attribute text(std::string n, std::string v) { return {String, std::move(n), 0, {}, 0, std::move(v), {}}; }
  static Attribute texts(std::string n, std::vector<std::string> v) {
    return {Strings, std::move(n), 0, {}, 0, {}, std::move(v)};
  }
};

namespace detail {
struct TraceOp;  // one node of a flattened statement (below)
}  // namespace detail

// What a traced forward is written into.
class Sink {
 public:
  virtual ~Sink() = default;
  // The graph's value of a fused statement, its nodes flattened in prefix order (`ops`), as
  // type `want`. Virtual, so that the code writing the nodes (detail::emit) is compiled only
  // where a sink is defined (ft/onnx/), not in every file with a Var (compile time).
  virtual std::string statement(const std::vector<detail::TraceOp>& ops, DType want) = 0;
  // The graph's name of a value: an input, a parameter or buffer, an earlier node's output
  // (`key`: a Var's state or a tensor's data, kept alive by the sink so that its address names
  // nothing else while the trace runs); an unknown value becomes a constant holding `value`.
  virtual std::string value(std::shared_ptr<const void> key, const AnyTensor& value) = 0;
  // A constant (rank 0) of the given type.
  virtual std::string scalar(double v, DType dtype) = 0;
  // A constant int64 vector (shapes, axes), and one of one element.
  virtual std::string ints(const std::vector<std::int64_t>& v) = 0;
  std::string int1(std::int64_t v) { return ints(std::vector<std::int64_t>(1, v)); }
  // Appends a node; returns the names of its `outputs` outputs.
  virtual std::vector<std::string> node(const std::string& op_type, const std::vector<std::string>& inputs,
                                        const std::vector<Attribute>& attributes = {}, int outputs = 1) = 0;
  // The value of the Var (or tensor) `key` is `name` from now on.
  virtual void bind(std::shared_ptr<const void> key, const std::string& name, const AnyTensor& value) = 0;
  // The Var `key` comes from op `op`, which has not (yet) described itself: reading it is an
  // error unless a bind() follows (each traceable boundary op binds its output right after).
  virtual void opaque(std::shared_ptr<const void> key, const std::string& op, const AnyTensor& value) = 0;
  // A module's forward starts / ends (for the module path in error messages).
  virtual void enter(const void* /*module*/) {}
  virtual void leave() {}
  // The forward used something the graph cannot express: an ft::Error naming it and where().
  [[noreturn]] void unsupported(const std::string& what) const {
    fail(op_name(), "cannot export ", what, " (in ", where(), "); nothing was written");
  }
  virtual const char* op_name() const { return "trace"; }
  virtual std::string where() const { return "the traced forward"; }
  // The dimension sizes the graph keeps symbolic (the batch): a reshape writes them as 0 (copy).
  virtual bool is_dynamic_batch() const { return false; }
};

// ONNX's TensorProto.DataType of a dtype.
inline std::int64_t onnx_dtype(DType t) {
  switch (t) {
    case DType::Float32:
      return 1;
    case DType::UInt8:
      return 2;
    case DType::Int32:
      return 6;
    case DType::Int64:
      return 7;
    case DType::Bool:
      return 9;
    case DType::Float16:
      return 10;
    case DType::Float64:
      return 11;
    case DType::BFloat16:
      return 16;
  }
  return 0;
}

// The sink of this thread's forward, or null when nothing is traced.
inline Sink*& current() {
  thread_local Sink* sink = nullptr;
  return sink;
}

// Runs f(sink) when a trace runs. Out of line and cold: the hooks in the ops cost a forward one
// load and a branch, and cost its compilation little (they are compiled for size).
template <class F>
[[gnu::cold, gnu::noinline]] void traced_slow(Sink& s, F& f) {
  f(s);
}
template <class F>
void when_traced(F&& f) {
  if (Sink* s = current()) [[unlikely]]
    traced_slow(*s, f);
}

// Sets the sink for a scope.
class Scope {
 public:
  explicit Scope(Sink& s) : previous_(current()) { current() = &s; }
  ~Scope() { current() = previous_; }
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;

 private:
  Sink* previous_;
};

// No tracing for a scope: an op made of other traced ops that describes itself as one node
// afterwards (a recurrent layer's steps are one ONNX LSTM) hides its parts.
class Pause {
 public:
  Pause() : previous_(current()) { current() = nullptr; }
  ~Pause() { current() = previous_; }
  Pause(const Pause&) = delete;
  Pause& operator=(const Pause&) = delete;

 private:
  Sink* previous_;
};

// A module's forward as a scope of the trace (nothing without a sink).
class ModuleScope {
 public:
  explicit ModuleScope(const void* module) : s_(current()) {
    if (s_) s_->enter(module);
  }
  ~ModuleScope() {
    if (s_) s_->leave();
  }
  ModuleScope(const ModuleScope&) = delete;
  ModuleScope& operator=(const ModuleScope&) = delete;

 private:
  Sink* s_;
};

// The keys: a Var's state; a tensor's first element (its storage kept alive with it).
template <class T, int R>
std::shared_ptr<const void> key(const Var<T, R>& v) {
  return v.state_ptr();
}
template <class T, int R>
std::shared_ptr<const void> key(const Tensor<T, R>& t) {
  return std::shared_ptr<const void>(t.storage(), t.data());
}
template <class X>
std::string name(Sink& s, const X& x) {
  if constexpr (ft::detail::is_var<X>::value)
    return s.value(key(x), AnyTensor(x.value()));
  else
    return s.value(key(x), AnyTensor(x));
}

namespace detail {

// A statement's tree as a program: its nodes in prefix order (a node, then its operands). The
// template that builds it (flatten) is small for each expression type; what the nodes become
// (emit, below) is ordinary code compiled once, not once per statement.
struct TraceOp {
  enum Kind : std::uint8_t { leaf, scalar, unary, binary, where, reduce, constant, unknown } kind = unknown;
  const char* name = "";            // the op's or reducer's name
  DType dtype = DType::Float32;     // the node's value type
  DType operands = DType::Float32;  // binary: the type its operands are brought to
  double a = 0, b = 0;              // parameters: slope, alpha, beta and threshold, bounds, a scalar's value
  enum Flag : std::uint8_t {
    has_slope = 1,
    has_alpha = 2,
    has_beta = 4,
    gelu = 8,
    gelu_tanh = 16,
    bounds = 32,
    keep = 64
  };
  std::uint8_t flags = 0;
  int dim = -1;                // reduce: the dimension (-1: all)
  const void* node = nullptr;  // leaf or unknown: the expression node (alive while the program runs)
  std::string (*name_leaf)(Sink&, const void*) = nullptr;  // leaf: its graph name
  std::string (*describe)(const void*) = nullptr;          // unknown: what it is
};
static_assert(std::is_trivially_copyable_v<TraceOp>);

template <class X>
std::string leaf_name(Sink& s, const void* x) {
  return name(s, *static_cast<const X*>(x));
}
template <class E>
std::string describe_node(const void* e) {
  return "the expression " + describe(*static_cast<const E*>(e));
}

template <class E>
inline constexpr bool is_scalar_v = false;
template <class T>
inline constexpr bool is_scalar_v<Scalar<T>> = true;

template <class E>
[[gnu::cold]] void flatten(std::vector<TraceOp>& out, const E& e) {
  TraceOp o;
  o.dtype = dtype_of<typename E::value_type>();
  o.node = &e;
  if constexpr (ft::detail::is_var<E>::value || requires { e.storage(); }) {
    o.kind = TraceOp::leaf;
    o.name_leaf = &leaf_name<E>;
    out.push_back(o);
  } else if constexpr (is_scalar_v<E>) {
    o.kind = TraceOp::scalar;
    o.a = static_cast<double>(e.value);
    out.push_back(o);
  } else if constexpr (requires {
                         e.operand();
                         e.op();
                       }) {
    o.kind = TraceOp::unary;
    o.name = E::op_name();
    const auto& op = e.op();
    if constexpr (requires { op.negative_slope; }) o.a = op.negative_slope, o.flags |= TraceOp::has_slope;
    if constexpr (requires { op.alpha; }) o.a = op.alpha, o.flags |= TraceOp::has_alpha;
    if constexpr (requires { op.beta; }) o.a = op.beta, o.b = op.threshold, o.flags |= TraceOp::has_beta;
    if constexpr (requires { op.approximate_tanh; })
      o.flags |= op.approximate_tanh ? (TraceOp::gelu | TraceOp::gelu_tanh) : TraceOp::gelu;
    if constexpr (requires {
                    op.lo;
                    op.hi;
                  })
      o.a = static_cast<double>(op.lo), o.b = static_cast<double>(op.hi), o.flags |= TraceOp::bounds;
    out.push_back(o);
    flatten(out, e.operand());
  } else if constexpr (requires { e.condition(); }) {
    o.kind = TraceOp::where;
    out.push_back(o);
    flatten(out, e.condition());
    flatten(out, e.lhs());
    flatten(out, e.rhs());
  } else if constexpr (requires {
                         e.lhs();
                         E::op_name();
                       }) {
    using A = typename std::remove_cvref_t<decltype(e.lhs())>::value_type;
    using B = typename std::remove_cvref_t<decltype(e.rhs())>::value_type;
    o.kind = TraceOp::binary;
    o.name = E::op_name();
    // the operands' common type: the result's, except for comparisons (promoted) and logical ops
    o.operands = !std::is_same_v<typename E::value_type, bool> ? o.dtype : dtype_of<promote_t<A, B>>();
    out.push_back(o);
    flatten(out, e.lhs());
    flatten(out, e.rhs());
  } else if constexpr (requires { e.reducer(); }) {
    o.kind = TraceOp::reduce;
    o.name = E::reducer_type::name;
    o.dim = e.dim();
    if (e.keepdim()) o.flags |= TraceOp::keep;
    out.push_back(o);
    flatten(out, e.input());
  } else if constexpr (requires {
                         e.functor().p;
                         e.functor().scale;
                       }) {  // dropout's mask: a constant when it does not drop (eval mode)
    o.kind = e.functor().p <= 0.0f ? TraceOp::constant : TraceOp::unknown;
    o.a = static_cast<double>(e.functor().scale);
    o.name = "dropout in training mode (export a model in eval mode)";
    out.push_back(o);
  } else if constexpr (requires {
                         e.functor().lower;
                         e.functor().upper;
                       }) {  // rrelu's slope: a constant when it does not draw (eval mode)
    o.kind = e.functor().lower == e.functor().upper ? TraceOp::constant : TraceOp::unknown;
    o.a = static_cast<double>(e.functor().lower);
    o.name = "rrelu in training mode (export a model in eval mode)";
    out.push_back(o);
  } else {
    o.describe = &describe_node<E>;
    out.push_back(o);
  }
}

// ---- the program as graph nodes (compiled once) ----

inline const char* simple_unary(std::string_view op) {
  static constexpr std::pair<const char*, const char*> table[] = {{"exp", "Exp"},
                                                                  {"log", "Log"},
                                                                  {"sqrt", "Sqrt"},
                                                                  {"tanh", "Tanh"},
                                                                  {"sigmoid", "Sigmoid"},
                                                                  {"relu", "Relu"},
                                                                  {"neg", "Neg"},
                                                                  {"abs", "Abs"},
                                                                  {"erf", "Erf"},
                                                                  {"sin", "Sin"},
                                                                  {"cos", "Cos"},
                                                                  {"tan", "Tan"},
                                                                  {"floor", "Floor"},
                                                                  {"ceil", "Ceil"},
                                                                  {"round", "Round"},
                                                                  {"sign", "Sign"},
                                                                  {"reciprocal", "Reciprocal"},
                                                                  {"logical_not", "Not"}};
  for (const auto& [ft_name, onnx] : table)
    if (op == ft_name) return onnx;
  return nullptr;
}
inline const char* simple_binary(std::string_view op) {
  static constexpr std::pair<const char*, const char*> table[] = {
      {"add", "Add"},     {"sub", "Sub"},           {"mul", "Mul"},         {"div", "Div"},      {"pow", "Pow"},
      {"maximum", "Max"}, {"minimum", "Min"},       {"eq", "Equal"},        {"lt", "Less"},      {"le", "LessOrEqual"},
      {"gt", "Greater"},  {"ge", "GreaterOrEqual"}, {"logical_and", "And"}, {"logical_or", "Or"}};
  for (const auto& [ft_name, onnx] : table)
    if (op == ft_name) return onnx;
  return nullptr;
}

inline std::string one(Sink& s, const char* op, std::vector<std::string> in, std::vector<Attribute> a = {}) {
  return s.node(op, in, a)[0];
}

// The value of the node at ops[pos] (pos advances past it and its operands) as type `want`.
inline std::string emit(Sink& s, const std::vector<TraceOp>& ops, std::size_t& pos, DType want);

[[gnu::cold]] inline std::string emit_node(Sink& s, const std::vector<TraceOp>& ops, std::size_t& pos) {
  const TraceOp& o = ops[pos++];
  const std::string_view op = o.name;
  auto c = [&](double v) { return s.scalar(v, o.dtype); };
  switch (o.kind) {
    case TraceOp::leaf:
      return o.name_leaf(s, o.node);
    case TraceOp::scalar:
      return s.scalar(o.a, o.dtype);
    case TraceOp::constant:
      return c(o.a);
    case TraceOp::unknown:
      s.unsupported(o.describe ? o.describe(o.node) : std::string(o.name));
    case TraceOp::where: {
      std::string cond = emit(s, ops, pos, DType::Bool), a = emit(s, ops, pos, o.dtype);
      return one(s, "Where", {cond, a, emit(s, ops, pos, o.dtype)});
    }
    case TraceOp::binary: {
      const DType t = op == "logical_and" || op == "logical_or" ? DType::Bool : o.operands;
      std::string a = emit(s, ops, pos, t);
      const std::string b = emit(s, ops, pos, t);
      if (op == "ne") return one(s, "Not", {one(s, "Equal", {a, b})});
      if (op == "fmod") return one(s, "Mod", {a, b}, {Attribute::integer("fmod", 1)});
      if (const char* simple = simple_binary(op)) return one(s, simple, {a, b});
      s.unsupported(std::string("the elementwise op ") + o.name);
    }
    case TraceOp::reduce: {
      const bool keep = o.flags & TraceOp::keep;
      std::vector<Attribute> attr = {Attribute::integer("keepdims", keep ? 1 : 0)};
      if (op == "argmax" || op == "argmin") {
        const std::string input = emit(s, ops, pos, ops[pos].dtype);
        std::string x = input;
        if (o.dim < 0) x = one(s, "Reshape", {x, s.int1(-1)});  // over everything: of the flattened input
        attr.push_back(Attribute::integer("axis", o.dim < 0 ? 0 : o.dim));
        return one(s, op == "argmax" ? "ArgMax" : "ArgMin", {x}, attr);
      }
      const char* onnx = op == "sum"         ? "ReduceSum"
                         : op == "mean"      ? "ReduceMean"
                         : op == "max"       ? "ReduceMax"
                         : op == "min"       ? "ReduceMin"
                         : op == "prod"      ? "ReduceProd"
                         : op == "logsumexp" ? "ReduceLogSumExp"
                                             : nullptr;
      if (!onnx) s.unsupported(std::string("the reduction ") + o.name);
      std::vector<std::string> in = {emit(s, ops, pos, o.dtype)};
      if (o.dim >= 0) {  // sum's axes are an input from opset 13, the others' an attribute until opset 18
        if (op == "sum")
          in.push_back(s.int1(o.dim));
        else
          attr.push_back(Attribute::integers("axes", {o.dim}));
      }
      return one(s, onnx, in, attr);
    }
    case TraceOp::unary:
      break;
  }
  // unary: a cast reads its operand in the operand's own type, the others in the result's
  if (op == "cast")
    return one(s, "Cast", {emit(s, ops, pos, ops[pos].dtype)}, {Attribute::integer("to", onnx_dtype(o.dtype))});
  const std::string x = emit(s, ops, pos, o.dtype);
  if (const char* simple = simple_unary(op)) return one(s, simple, {x});
  if (o.flags & TraceOp::has_slope) return one(s, "LeakyRelu", {x}, {Attribute::real("alpha", o.a)});
  if (o.flags & TraceOp::has_alpha) return one(s, "Elu", {x}, {Attribute::real("alpha", o.a)});
  if (o.flags & TraceOp::has_beta) {  // log(1 + e^{βx})/β (the threshold's linear part is equal in float)
    if (o.a == 1.0) return one(s, "Softplus", {x});
    return one(s, "Div", {one(s, "Softplus", {one(s, "Mul", {x, c(o.a)})}), c(o.a)});
  }
  if (o.flags & TraceOp::gelu_tanh) {  // 0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³)))
    const std::string cube = one(s, "Mul", {one(s, "Mul", {x, x}), x});
    const std::string inner =
        one(s, "Mul", {c(0.7978845608028654), one(s, "Add", {x, one(s, "Mul", {cube, c(0.044715)})})});
    return one(s, "Mul", {one(s, "Mul", {x, c(0.5)}), one(s, "Add", {c(1.0), one(s, "Tanh", {inner})})});
  }
  if (o.flags & TraceOp::gelu)  // 0.5 x (1 + erf(x / √2)): opset 17 has no Gelu
    return one(s, "Mul",
               {one(s, "Mul", {x, c(0.5)}),
                one(s, "Add", {c(1.0), one(s, "Erf", {one(s, "Div", {x, c(1.4142135623730951)})})})});
  if (o.flags & TraceOp::bounds) return one(s, "Clip", {x, c(o.a), c(o.b)});
  if (op == "square") return one(s, "Mul", {x, x});
  if (op == "rsqrt") return one(s, "Reciprocal", {one(s, "Sqrt", {x})});
  if (op == "silu") return one(s, "Mul", {x, one(s, "Sigmoid", {x})});
  if (op == "log2") return one(s, "Div", {one(s, "Log", {x}), c(0.69314718055994530942)});
  if (op == "log1p") return one(s, "Log", {one(s, "Add", {x, c(1.0)})});
  if (op == "expm1") return one(s, "Sub", {one(s, "Exp", {x}), c(1.0)});
  if (op == "exp2") return one(s, "Pow", {c(2.0), x});
  s.unsupported(std::string("the elementwise op ") + o.name);
}

[[gnu::cold]] inline std::string emit(Sink& s, const std::vector<TraceOp>& ops, std::size_t& pos, DType want) {
  if (ops[pos].kind == TraceOp::scalar) return s.scalar(ops[pos++].a, want);  // a number takes the type it meets
  const DType have = ops[pos].dtype;
  const std::string x = emit_node(s, ops, pos);
  if (have == want) return x;
  return one(s, "Cast", {x}, {Attribute::integer("to", onnx_dtype(want))});
}

}  // namespace detail

// The statement's nodes, out of line and cold: compiled small, never inlined into the forward.
template <class E, class T, int R>
[[gnu::cold, gnu::noinline]] void emit_statement(Sink& s, const E& e, const Var<T, R>& out) {
  std::vector<detail::TraceOp> ops;
  detail::flatten(ops, e);
  s.bind(key(out), s.statement(ops, dtype_of<T>()), AnyTensor(out.value()));
}

// Records statement `e`, whose value the Var `out` holds, when a sink is set.
template <class E, class T, int R>
void statement(const E& e, const Var<T, R>& out) {
  if (Sink* s = current()) [[unlikely]]
    emit_statement(*s, e, out);
}

// Records a boundary op's node: inputs (Vars, tensors or names) to the Var `out`.
template <class T, int R>
void boundary(Sink& s, const std::string& op_type, const std::vector<std::string>& inputs, const Var<T, R>& out,
              const std::vector<Attribute>& attributes = {}) {
  s.bind(key(out), s.node(op_type, inputs, attributes)[0], AnyTensor(out.value()));
}

}  // namespace ft::inline FT_ABI::autograd::trace
