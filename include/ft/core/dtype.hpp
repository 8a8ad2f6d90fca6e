// Element types: the runtime tag, its name and the compile-time traits.
#pragma once

#include <cstddef>
#include <cstdint>
#include <ostream>
#include <type_traits>

#include "ft/core/config.hpp"
#include "ft/core/half.hpp"

namespace ft::inline FT_ABI {

enum class DType : int { Float32, Float64, Int32, Int64, UInt8, Bool, Float16, BFloat16 };

// PyTorch's names for the dtypes (torch::kBFloat16 …).
inline constexpr DType kFloat32 = DType::Float32, kFloat64 = DType::Float64, kFloat16 = DType::Float16,
                       kBFloat16 = DType::BFloat16, kInt32 = DType::Int32, kInt64 = DType::Int64, kUInt8 = DType::UInt8,
                       kBool = DType::Bool;

template <class T>
inline constexpr bool is_dtype_v =
    std::is_same_v<T, float> || std::is_same_v<T, double> || std::is_same_v<T, std::int32_t> ||
    std::is_same_v<T, std::int64_t> || std::is_same_v<T, std::uint8_t> || std::is_same_v<T, bool> || is_half_v<T>;

template <class T>
constexpr DType dtype_of() {
  static_assert(is_dtype_v<T>,
                "ft: element type must be float, double, half, bfloat16, int32_t, int64_t, uint8_t or bool");
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
  else if constexpr (std::is_same_v<T, bool>)
    return DType::Bool;
  else if constexpr (std::is_same_v<T, half>)
    return DType::Float16;
  else
    return DType::BFloat16;
}

// Everything a dtype is called: its name, its size and its codes in the file formats the
// library reads and writes. One row per dtype, in the enum's order; io/ looks names up here.
struct DTypeInfo {
  DType dtype;
  const char* name;          // PyTorch's
  std::size_t size;          // bytes
  const char* safetensors;   // the safetensors header's "dtype"
  int safetensors_order;     // the Python package's dtype order (it writes tensors by it, descending)
  const char* numpy;         // numpy's descr without its byte-order mark; null where numpy has none
  std::uint8_t dlpack_code;  // DLDataTypeCode: 0 int, 1 uint, 2 float, 4 bfloat, 6 bool (bits = 8 * size)
};
inline constexpr DTypeInfo kDTypes[] = {
    {DType::Float32, "float32", 4, "F32", 5, "f4", 2}, {DType::Float64, "float64", 8, "F64", 6, "f8", 2},
    {DType::Int32, "int32", 4, "I32", 4, "i4", 0},     {DType::Int64, "int64", 8, "I64", 7, "i8", 0},
    {DType::UInt8, "uint8", 1, "U8", 1, "u1", 1},      {DType::Bool, "bool", 1, "BOOL", 0, "b1", 6},
    {DType::Float16, "float16", 2, "F16", 2, "f2", 2}, {DType::BFloat16, "bfloat16", 2, "BF16", 3, nullptr, 4},
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
// bool + T gives T (std::common_type would promote two small integer types to int). A two-byte
// floating type beats the integral types and loses to float and double; half + bfloat16 gives
// float.
namespace detail {
template <class A, class B>
struct promote : std::common_type<A, B> {};
template <class A>
struct promote<A, bool> : std::type_identity<A> {};
template <class B>
struct promote<bool, B> : std::type_identity<B> {};
template <>
struct promote<bool, bool> : std::type_identity<bool> {};
template <class H, class O>
using promote_half_t = std::conditional_t<std::is_floating_point_v<O>, O, std::conditional_t<is_half_v<O>, float, H>>;
template <class B>
requires(!std::is_same_v<B, bool>) struct promote<half, B> : std::type_identity<promote_half_t<half, B>> {
};
template <class B>
requires(!std::is_same_v<B, bool>) struct promote<bfloat16, B> : std::type_identity<promote_half_t<bfloat16, B>> {
};
template <class A>
requires(!std::is_same_v<A, bool> && !is_half_v<A>) struct promote<A, half>
    : std::type_identity<promote_half_t<half, A>> {
};
template <class A>
requires(!std::is_same_v<A, bool> && !is_half_v<A>) struct promote<A, bfloat16>
    : std::type_identity<promote_half_t<bfloat16, A>> {
};
template <>
struct promote<half, half> : std::type_identity<half> {};
template <>
struct promote<bfloat16, bfloat16> : std::type_identity<bfloat16> {};
}  // namespace detail
template <class A, class B>
using promote_t = typename detail::promote<A, B>::type;

// The floating type an integral input is computed in by exp, log, sqrt ... (float, as torch).
template <class T>
using float_promote_t = std::conditional_t<is_floating_v<T>, T, float>;

}  // namespace ft::inline FT_ABI
