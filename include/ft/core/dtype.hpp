// Element types: the runtime tag, its name and the compile-time traits.
#pragma once

#include <cstdint>
#include <ostream>
#include <type_traits>

namespace ft {

enum class DType : int { Float32, Float64, Int32, Int64, UInt8, Bool };

template <class T>
inline constexpr bool is_dtype_v =
    std::is_same_v<T, float> || std::is_same_v<T, double> || std::is_same_v<T, std::int32_t> ||
    std::is_same_v<T, std::int64_t> || std::is_same_v<T, std::uint8_t> || std::is_same_v<T, bool>;

template <class T>
constexpr DType dtype_of() {
  static_assert(is_dtype_v<T>, "ft: element type must be float, double, int32_t, int64_t, uint8_t or bool");
  if constexpr (std::is_same_v<T, float>)
    return DType::Float32;
  else if constexpr (std::is_same_v<T, double>)
    return DType::Float64;
  else if constexpr (std::is_same_v<T, std::int32_t>)
    return DType::Int32;
  else if constexpr (std::is_same_v<T, std::int64_t>)
    return DType::Int64;
  else if constexpr (std::is_same_v<T, std::uint8_t>)
    return DType::UInt8;
  else
    return DType::Bool;
}

constexpr const char* dtype_name(DType t) {
  switch (t) {
    case DType::Float32:
      return "float32";
    case DType::Float64:
      return "float64";
    case DType::Int32:
      return "int32";
    case DType::Int64:
      return "int64";
    case DType::UInt8:
      return "uint8";
    case DType::Bool:
      return "bool";
  }
  return "?";
}

constexpr std::size_t dtype_size(DType t) {
  switch (t) {
    case DType::Float32:
    case DType::Int32:
      return 4;
    case DType::Float64:
    case DType::Int64:
      return 8;
    case DType::UInt8:
    case DType::Bool:
      return 1;
  }
  return 0;
}

inline std::ostream& operator<<(std::ostream& os, DType t) { return os << dtype_name(t); }

// Result type of a binary arithmetic op, following PyTorch's promotion between tensors:
// floating beats integral, wider beats narrower, bool promotes to anything.
// bool + T gives T (std::common_type would promote two small integer types to int).
template <class A, class B>
using promote_t = std::conditional_t<std::is_same_v<A, bool>, B,
                                     std::conditional_t<std::is_same_v<B, bool>, A, std::common_type_t<A, B>>>;

// The floating type an integral input is computed in by exp, log, sqrt ... (float, as torch).
template <class T>
using float_promote_t = std::conditional_t<std::is_floating_point_v<T>, T, float>;

}  // namespace ft
