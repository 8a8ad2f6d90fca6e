// ft::AnyTensor: a tensor with its dtype and rank known only at run time. It shares storage
// with the typed tensor it came from; as<T, R>() gets the typed handle back, checked.
#pragma once

#include <algorithm>
#include <ostream>
#include <vector>

#include "ft/core/config.hpp"
#include "ft/core/dtype.hpp"
#include "ft/core/tensor.hpp"

namespace ft::inline FT_ABI {

class AnyTensor {
 public:
  AnyTensor() = default;
  template <class T, int R>
  AnyTensor(const Tensor<T, R>& t)  // NOLINT: implicit, so lists of parameters read naturally
      : storage_(t.storage()),
        data_(const_cast<std::remove_const_t<T>*>(t.data())),
        dtype_(dtype_of<T>()),
        shape_(t.shape().begin(), t.shape().end()),
        strides_(t.strides().begin(), t.strides().end()) {}

  bool defined() const { return storage_ != nullptr; }
  DType dtype() const { return dtype_; }
  int dim() const { return static_cast<int>(shape_.size()); }
  const std::vector<index_t>& shape() const { return shape_; }
  const std::vector<index_t>& strides() const { return strides_; }
  index_t size(int d) const { return shape_[wrap_dim(d, dim(), "AnyTensor::size")]; }
  index_t numel() const {
    index_t n = 1;
    for (index_t s : shape_) n *= s;
    return n;
  }
  std::size_t nbytes() const { return static_cast<std::size_t>(numel()) * dtype_size(dtype_); }
  Device device() const { return storage_ ? storage_->device() : Device(kCPU); }
  void* data() const { return data_; }
  const Storage& storage() const { return storage_; }

  template <class T, int R>
  bool is() const {
    return defined() && dtype_ == dtype_of<T>() && dim() == R;
  }

  // The typed tensor; throws ft::Error naming both types when dtype or rank differ.
  template <class T, int R>
  Tensor<T, R> as() const {
    check(defined(), "AnyTensor::as", "the tensor is undefined");
    if (!is<T, R>())
      fail("AnyTensor::as", "holds ", dtype_, " of rank ", dim(), " and shape ", shape_string(), ", requested ",
           dtype_of<T>(), " of rank ", R);
    Shape<R> s;
    Array<index_t, R> st;
    for (int i = 0; i < R; ++i) {
      s[i] = shape_[static_cast<std::size_t>(i)];
      st[i] = strides_[static_cast<std::size_t>(i)];
    }
    return Tensor<T, R>(storage_, static_cast<T*>(data_), s, st);
  }

  // The typed tensor as rank kMaxRank, its shape led by unit dimensions: for work that does not
  // depend on the rank (copies, fills), so that it is compiled once per dtype (visit_elements).
  template <class T>
  Tensor<T, kMaxRank> padded() const {
    check(defined(), "AnyTensor::padded", "the tensor is undefined");
    if (dtype_ != dtype_of<T>())
      fail("AnyTensor::padded", "holds ", dtype_, " of shape ", shape_string(), ", requested ", dtype_of<T>());
    Shape<kMaxRank> s;
    Array<index_t, kMaxRank> st;
    const int lead = kMaxRank - dim();
    for (int i = 0; i < kMaxRank; ++i) {
      s[i] = i < lead ? 1 : shape_[static_cast<std::size_t>(i - lead)];
      st[i] = i < lead ? 0 : strides_[static_cast<std::size_t>(i - lead)];
    }
    return Tensor<T, kMaxRank>(storage_, static_cast<T*>(data_), s, st);
  }
  // This tensor without its first kMaxRank − rank dimensions, which must be unit ones: undoes
  // padded() on a result.
  AnyTensor unpadded(int rank) const {
    const auto drop = static_cast<std::ptrdiff_t>(shape_.size()) - rank;
    check(drop >= 0 && std::all_of(shape_.begin(), shape_.begin() + drop, [](index_t n) { return n == 1; }),
          "AnyTensor::unpadded", "cannot drop to rank ", rank, " from shape ", shape_string());
    AnyTensor r = *this;
    r.shape_.erase(r.shape_.begin(), r.shape_.begin() + drop);
    r.strides_.erase(r.strides_.begin(), r.strides_.begin() + drop);
    return r;
  }

  // The same elements with dimension i of the result being dimension dims[i] of this one (a
  // view, as Tensor::permute; torch.permute).
  AnyTensor permute(const std::vector<int>& dims) const {
    check(static_cast<int>(dims.size()) == dim(), "AnyTensor::permute", "the permutation has ", dims.size(),
          " entries for a tensor of rank ", dim());
    AnyTensor r = *this;
    std::vector<bool> seen(dims.size(), false);
    for (std::size_t i = 0; i < dims.size(); ++i) {
      const int d = wrap_dim(dims[i], dim(), "AnyTensor::permute");
      check(!seen[static_cast<std::size_t>(d)], "AnyTensor::permute", "dimension ", dims[i],
            " repeats in the permutation of ", shape_string());
      seen[static_cast<std::size_t>(d)] = true;
      r.shape_[i] = shape_[static_cast<std::size_t>(d)];
      r.strides_[i] = strides_[static_cast<std::size_t>(d)];
    }
    return r;
  }

  std::string shape_string() const {
    std::string r = "[";
    for (std::size_t i = 0; i < shape_.size(); ++i) r += (i ? ", " : "") + std::to_string(shape_[i]);
    return r + "]";
  }

 private:
  Storage storage_;
  void* data_ = nullptr;
  DType dtype_ = DType::Float32;
  std::vector<index_t> shape_;
  std::vector<index_t> strides_;
};

namespace detail {

// g.template operator()<T>() for the element type T of a run-time dtype.
template <class G>
decltype(auto) by_dtype(DType dtype, G& g) {
  switch (dtype) {
    case DType::Float32:
      return g.template operator()<float>();
    case DType::Float64:
      return g.template operator()<double>();
    case DType::Int32:
      return g.template operator()<std::int32_t>();
    case DType::Int64:
      return g.template operator()<std::int64_t>();
    case DType::UInt8:
      return g.template operator()<std::uint8_t>();
    case DType::Float16:
      return g.template operator()<half>();
    case DType::BFloat16:
      return g.template operator()<bfloat16>();
    default:
      return g.template operator()<bool>();
  }
}

}  // namespace detail

// Calls f(Tensor<T, R>) with the typed tensor, for the dtypes and ranks 0..kMaxRank.
template <class F>
decltype(auto) visit(const AnyTensor& t, F&& f) {
  auto by_rank = [&]<class T>() -> decltype(auto) {
    return [&]<int... Rs>(std::integer_sequence<int, Rs...>)->decltype(auto) {
      using Result = decltype(f(t.as<float, 0>()));
      if constexpr (std::is_void_v<Result>) {
        (void)((t.dim() == Rs ? (f(t.as<T, Rs>()), true) : false) || ...);
      } else {
        Result r{};
        (void)((t.dim() == Rs ? (r = f(t.as<T, Rs>()), true) : false) || ...);
        return r;
      }
    }
    (std::make_integer_sequence<int, kMaxRank + 1>{});
  };
  return detail::by_dtype(t.dtype(), by_rank);
}

// Calls f(Tensor<T, kMaxRank>) with t.padded<T>(): one instantiation per dtype, not per dtype
// and rank, for work that does not depend on the rank (copies, fills, reading the values).
template <class F>
decltype(auto) visit_elements(const AnyTensor& t, F&& f) {
  auto by_type = [&]<class T>() -> decltype(auto) { return f(t.padded<T>()); };
  return detail::by_dtype(t.dtype(), by_type);
}

// `t` as a contiguous tensor on `device` (`t` itself when it is one already): compiled once per
// dtype, not per dtype and rank. A template only so that this header needs no executor; the
// callers' files have them.
template <class = void>
AnyTensor contiguous_on(const AnyTensor& t, Device device) {
  return visit_elements(t, [&](auto x) { return AnyTensor(x.to(device).contiguous()).unpadded(t.dim()); });
}

// Calls f.template operator()<T, R>() for a dtype and rank known at run time (rank 0..8), e.g.
// to create the typed tensor a file describes.
template <class F>
AnyTensor with_dtype_rank(DType dtype, int rank, F&& f) {
  check(rank >= 0 && rank <= kMaxRank, "with_dtype_rank", "rank ", rank, " is outside 0..", kMaxRank);
  auto by_rank = [&]<class T>() {
    AnyTensor r;
    [&]<int... Rs>(std::integer_sequence<int, Rs...>) {
      (void)((rank == Rs ? (r = f.template operator()<T, Rs>(), true) : false) || ...);
    }
    (std::make_integer_sequence<int, kMaxRank + 1>{});
    return r;
  };
  return detail::by_dtype(dtype, by_rank);
}

inline std::ostream& operator<<(std::ostream& os, const AnyTensor& t) {
  return os << "AnyTensor(" << t.dtype() << ", " << t.shape_string() << ", " << t.device() << ")";
}

}  // namespace ft::inline FT_ABI
