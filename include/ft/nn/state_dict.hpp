// ft::nn::StateDict: named tensors in insertion order (PyTorch's OrderedDict of a
// state_dict()). Modules write their parameters and buffers into one; optimizers their
// per-parameter state and hyper-parameters; io saves and loads them.
#pragma once

#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "ft/core/any_tensor.hpp"
#include "ft/core/config.hpp"
#include "ft/exec/assign.hpp"

namespace ft::inline FT_ABI::nn {

class StateDict {
 public:
  using value_type = std::pair<std::string, AnyTensor>;

  // Adds or replaces an entry (a replaced entry keeps its position).
  void insert(const std::string& key, const AnyTensor& t) {
    auto it = index_.find(key);
    if (it != index_.end()) {
      items_[it->second].second = t;
      return;
    }
    index_.emplace(key, items_.size());
    items_.emplace_back(key, t);
  }
  bool contains(const std::string& key) const { return index_.count(key) != 0; }
  const AnyTensor& at(const std::string& key) const {
    auto it = index_.find(key);
    if (it == index_.end()) fail("state_dict", "no entry named \"", key, "\"");
    return items_[it->second].second;
  }
  const AnyTensor& operator[](const std::string& key) const { return at(key); }
  std::size_t size() const { return items_.size(); }
  bool empty() const { return items_.empty(); }
  std::vector<std::string> keys() const {
    std::vector<std::string> k;
    for (const auto& [name, t] : items_) k.push_back(name);
    return k;
  }
  auto begin() const { return items_.begin(); }
  auto end() const { return items_.end(); }

 private:
  std::vector<value_type> items_;
  std::unordered_map<std::string, std::size_t> index_;
};

// to[i] = from[i] converted (a host loop).
template <class S, class T>
void convert_elements(const S* from, T* to, index_t n) {
#pragma omp parallel for simd if (n > (index_t{1} << 18))
  for (index_t i = 0; i < n; ++i) to[i] = static_cast<T>(static_cast<compute_t<S>>(from[i]));
}

// dst = src for two tensors of one shape (any devices): loading a state dict entry into a live
// tensor, so every handle to it sees the loaded values. As PyTorch's load_state_dict (copy_), a
// floating entry converts to the model's floating type: a float checkpoint loads into a bfloat16
// model and back. Other dtypes must match.
inline void copy_into(const AnyTensor& dst, const AnyTensor& src, const std::string& what) {
  check(dst.defined() && src.defined(), "load_state_dict", what, ": undefined tensor");
  auto floating = [](DType t) {
    return t == DType::Float32 || t == DType::Float64 || t == DType::Float16 || t == DType::BFloat16;
  };
  if ((dst.dtype() != src.dtype() && !(floating(dst.dtype()) && floating(src.dtype()))) || dst.shape() != src.shape())
    fail("load_state_dict", what, ": the loaded tensor is ", src.dtype(), " ", src.shape_string(), ", the model's is ",
         dst.dtype(), " ", dst.shape_string(), " (floating types convert; other dtypes and shapes must match)");
  visit_elements(dst, [&](auto d) {
    using T = typename decltype(d)::value_type;
    if (src.dtype() == dst.dtype()) {
      std::move(d) = src.padded<T>().to(d.device());
      return;
    }
    if constexpr (is_floating_v<T>) {
      // converted on the host by a plain loop (a load converts once; no kernel for each pair of
      // dtypes and each instruction set), then copied in
      Tensor<T, 1> converted(Shape<1>{src.numel()});
      auto convert = [&]<class S>() {
        if constexpr (is_floating_v<S> && !std::is_same_v<S, T>) {
          const Tensor<S, kMaxRank> from = src.padded<S>().to(kCPU).contiguous();
          convert_elements(from.data(), converted.data(), from.numel());
        }
      };
      ft::detail::by_dtype(src.dtype(), convert);
      std::move(d) = converted.reshape(d.shape()).to(d.device());
    }
  });
}

}  // namespace ft::inline FT_ABI::nn
