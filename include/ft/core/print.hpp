// operator<< for tensors, in PyTorch's style: `tensor([[ 1.0000, -0.5000], ...], device='cuda:0')`.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ostream>
#include <string>
#include <type_traits>
#include <vector>

#include "ft/core/config.hpp"
#include "ft/core/tensor.hpp"

namespace ft::inline FT_ABI {

namespace detail {

struct PrintFormat {
  enum Kind { Integer, FloatInt, Fixed, Sci } kind = Integer;
  int width = 1;
};

inline constexpr index_t kPrintThreshold = 1000;  // above this many elements, summarise
inline constexpr index_t kPrintEdge = 3;          // items shown at each end when summarising

template <class T>
std::string format_value(T v, PrintFormat::Kind kind) {
  char buf[64];
  if constexpr (std::is_same_v<T, bool>) {
    return v ? "True" : "False";
  } else if constexpr (std::is_integral_v<T>) {
    std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(v));
  } else {
    double d = static_cast<double>(v);
    if (std::isnan(d)) return "nan";
    if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
    if (kind == PrintFormat::FloatInt)
      std::snprintf(buf, sizeof buf, "%.0f.", d);
    else if (kind == PrintFormat::Sci)
      std::snprintf(buf, sizeof buf, "%.4e", d);
    else
      std::snprintf(buf, sizeof buf, "%.4f", d);
  }
  return buf;
}

// Host-side walk of a (host) tensor, visiting the elements that will be shown.
template <class T, int R, class F>
void visit_shown(const Tensor<T, R>& t, bool summarise, F&& f) {
  if constexpr (R == 0) {
    f(*t.data());
  } else {
    std::vector<index_t> idx(R, 0);
    auto rec = [&](auto&& self, int d, const T* p) -> void {
      index_t n = t.shape()[d];
      for (index_t i = 0; i < n; ++i) {
        if (summarise && n > 2 * kPrintEdge && i == kPrintEdge) i = n - kPrintEdge;
        const T* q = p + i * t.strides()[d];
        if (d == R - 1)
          f(*q);
        else
          self(self, d + 1, q);
      }
    };
    rec(rec, 0, t.data());
  }
}

template <class T, int R>
PrintFormat choose_format(const Tensor<T, R>& t, bool summarise) {
  PrintFormat fmt;
  if constexpr (is_floating_v<T>) {
    bool all_int = true, any = false;
    double max_abs = 0, min_abs = 0;
    visit_shown(t, summarise, [&](T v) {
      double d = static_cast<double>(v);
      if (!std::isfinite(d)) return;
      if (d != std::nearbyint(d)) all_int = false;
      double a = std::fabs(d);
      if (a == 0) return;
      if (!any || a > max_abs) max_abs = a;
      if (!any || a < min_abs) min_abs = a;
      any = true;
    });
    bool wide = any && (max_abs / min_abs > 1000.0 || max_abs > 1e8);
    if (all_int)
      fmt.kind = wide ? PrintFormat::Sci : PrintFormat::FloatInt;
    else if (wide || (any && min_abs < 1e-4))
      fmt.kind = PrintFormat::Sci;
    else
      fmt.kind = PrintFormat::Fixed;
  }
  // As PyTorch: a float column is as wide as its widest nonzero finite value.
  visit_shown(t, summarise, [&](T v) {
    if constexpr (is_floating_v<T>)
      if (!std::isfinite(static_cast<double>(v)) || v == T(0)) return;
    int w = static_cast<int>(format_value(v, fmt.kind).size());
    if (w > fmt.width) fmt.width = w;
  });
  return fmt;
}

template <class T, int R>
void print_rec(std::ostream& os, const Tensor<T, R>& t, const PrintFormat& fmt, bool summarise, int d, const T* p,
               int indent) {
  auto item = [&](const T* q) {
    std::string s = format_value(*q, fmt.kind);
    if (static_cast<int>(s.size()) < fmt.width) os << std::string(static_cast<std::size_t>(fmt.width) - s.size(), ' ');
    os << s;
  };
  index_t n = t.shape()[d];
  // PyTorch wraps a row at 80 columns: as many items per line as fit after the indent
  const int row_indent = indent + d;
  const index_t per_line = std::max<index_t>(1, (80 - row_indent) / (fmt.width + 2));
  index_t on_line = 0;
  os << '[';
  for (index_t i = 0; i < n; ++i) {
    if (i > 0) {
      os << ',';
      if (d < R - 1) {
        os << std::string(static_cast<std::size_t>(R - d - 1), '\n')
           << std::string(static_cast<std::size_t>(row_indent + 1), ' ');
      } else if (on_line == per_line) {
        os << '\n' << std::string(static_cast<std::size_t>(row_indent + 1), ' ');
        on_line = 0;
      } else {
        os << ' ';
      }
    }
    ++on_line;
    if (summarise && n > 2 * kPrintEdge && i == kPrintEdge) {
      os << (d == R - 1 ? " ..." : "...");
      i = n - kPrintEdge - 1;
      continue;
    }
    const T* q = p + i * t.strides()[d];
    if (d == R - 1)
      item(q);
    else
      print_rec(os, t, fmt, summarise, d + 1, q, indent);
  }
  os << ']';
}

}  // namespace detail

template <class T, int R>
std::ostream& operator<<(std::ostream& os, const Tensor<T, R>& tensor) {
  if (!tensor.defined()) return os << "tensor(undefined)";
  Tensor<T, R> t = tensor.to(kCPU);
  bool summarise = t.numel() > detail::kPrintThreshold;
  detail::PrintFormat fmt = detail::choose_format(t, summarise);
  os << "tensor(";
  if constexpr (R == 0) {
    os << detail::format_value(*t.data(), fmt.kind);
  } else if (t.numel() == 0) {
    os << "[]";
    if (R != 1) {  // PyTorch: tensor([], size=(2, 0))
      os << ", size=(";
      for (int i = 0; i < R; ++i) os << (i ? ", " : "") << t.shape()[i];
      os << ')';
    }
  } else {
    detail::print_rec(os, t, fmt, summarise, 0, t.data(), 7);
  }
  if (tensor.device().is_cuda()) os << ", device='" << tensor.device() << "'";
  constexpr DType dt = dtype_of<T>();
  if (dt != DType::Float32 && dt != DType::Int64 && dt != DType::Bool) os << ", dtype=" << dt;
  return os << ')';
}

}  // namespace ft::inline FT_ABI
