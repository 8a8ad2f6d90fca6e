// Element types: the runtime tag, its name and the compile-time traits.
#pragma once

#include <cstddef>
#include <cstdint>
#include <ostream>
#include <type_traits>

#include "ft/core/config.hpp"

namespace ft::inline FT_ABI {

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

// Everything a dtype is called: its name, its size and its codes in the file formats the
// library reads and writes. One row per dtype, in the enum's order; io/ looks names up here.
struct DTypeInfo {
  DType dtype;
  const char* name;          // PyTorch's
  std::size_t size;          // bytes
  const char* safetensors;   // the safetensors header's "dtype"
  int safetensors_order;     // the Python package's dtype order (it writes tensors by it, descending)
  const char* numpy;         // numpy's descr without its byte-order mark
  std::uint8_t dlpack_code;  // DLDataTypeCode: 0 int, 1 uint, 2 float, 6 bool (bits = 8 * size)
};
inline constexpr DTypeInfo kDTypes[] = {
    {DType::Float32, "float32", 4, "F32", 3, "f4", 2}, {DType::Float64, "float64", 8, "F64", 4, "f8", 2},
    {DType::Int32, "int32", 4, "I32", 2, "i4", 0},     {DType::Int64, "int64", 8, "I64", 5, "i8", 0},
    {DType::UInt8, "uint8", 1, "U8", 1, "u1", 1},      {DType::Bool, "bool", 1, "BOOL", 0, "b1", 6},
};

constexpr const DTypeInfo& dtype_info(DType t) { return kDTypes[static_cast<int>(t)]; }
static_assert([] {
  int i = 0;
  for (const DTypeInfo& d : kDTypes)
    if (static_cast<int>(d.dtype) != i++) return false;
  return true;
}());

// The dtype whose row satisfies `pred` (a name read from a file), or null.
template <class Pred>
constexpr const DTypeInfo* find_dtype(Pred pred) {
  for (const DTypeInfo& d : kDTypes)
    if (pred(d)) return &d;
  return nullptr;
}

constexpr const char* dtype_name(DType t) { return dtype_info(t).name; }
constexpr std::size_t dtype_size(DType t) { return dtype_info(t).size; }

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

}  // namespace ft::inline FT_ABI
