// What both executors share: the output writer and the per-launch plan (index width, dense
// layout, vector width) computed from the leaves before anything runs.
#pragma once

#include <atomic>
#include <cstdint>
#include <limits>
#include <vector>

#include "ft/core/config.hpp"
#include "ft/core/index.hpp"
#include "ft/core/tensor.hpp"

namespace ft::inline FT_ABI::exec {

// Where an output element goes: the linear index when the output is contiguous, else its strides.
template <class T, int R>
struct TensorWriter {
  T* ptr;
  Array<index_t, R> strides;
  bool dense;

  template <class I, bool D>
  FT_HD FT_INLINE T& operator[](const Index<I, R, D>& ix) const {
    if constexpr (D) {
      return ptr[ix.linear];
    } else {
      if (dense) return ptr[ix.linear];
      I off = 0;
      for (int d = 0; d < R; ++d) off += ix.coord[d] * static_cast<I>(strides[d]);
      return ptr[off];
    }
  }
  template <class I>
  FT_HD FT_INLINE T& operator[](const StridedIndex<I, R>& ix) const {
    I off = 0;
    for (int d = 0; d < R; ++d) off += ix.coord[d] * static_cast<I>(strides[d]);
    return ptr[off];
  }
};

struct Plan {
  bool dense = true;      // every leaf and the output are contiguous with the output's shape
  bool index32 = true;    // all element offsets fit in int32
  bool aligned16 = true;  // every leaf and the output start on a 16-byte boundary
};

namespace testing {
// Tests set this to run the 64-bit index path on small tensors.
inline std::atomic<bool> force_int64_index{false};
}  // namespace testing

// 32-bit indices when offsets stay below 2^31 with room for a grid-stride step past the end.
inline bool fits_int32(index_t v) { return v <= std::numeric_limits<std::int32_t>::max() - (index_t(1) << 26); }

// One past the largest element offset a view can reach.
inline index_t offset_span(int rank, const index_t* shape, const index_t* strides) {
  index_t span = 1;
  for (int d = 0; d < rank; ++d)
    if (shape[d] > 1) span += (shape[d] - 1) * (strides[d] < 0 ? -strides[d] : strides[d]);
  return span;
}

// The leaves of one statement, collected once (`leaves_of`), so that the checks and the plan
// that do not depend on the expression's type are plain functions compiled once a file, not
// once a statement (compile time: they were 10 % of a model file's code).
class LeafList {
 public:
  LeafList() {}  // (the slots stay unset until added: no stores for the unused ones)
  void add(const LeafInfo& l) {
    if (n_ < kInline)
      slots_.items[n_++] = l;  // (a trivial assignment begins the slot's life)
    else
      add_more(l);
  }
  int size() const { return n_; }
  const LeafInfo& operator[](int i) const {
    return i < kInline ? slots_.items[i] : more_[static_cast<std::size_t>(i - kInline)];
  }

 private:
  FT_OUTLINE void add_more(const LeafInfo& l) {
    more_.push_back(l);
    ++n_;
  }
  static constexpr int kInline = 16;  // more only in large gradient statements
  union Slots {
    Slots() {}
    LeafInfo items[kInline];
  } slots_;
  int n_ = 0;
  std::vector<LeafInfo> more_;
};

template <class E>
LeafList leaves_of(const E& e) {
  LeafList list;
  e.for_each_leaf([&](const LeafInfo& l) { list.add(l); });
  return list;
}

// What the leaves allow when the statement is evaluated over `n` elements of its own shape.
FT_OUTLINE void plan_leaves(Plan& p, index_t n, const LeafList& leaves) {
  if (!fits_int32(n)) p.index32 = false;
  for (int i = 0; i < leaves.size(); ++i) {
    const LeafInfo& l = leaves[i];
    index_t ln = 1;
    bool contiguous = true;
    index_t expected = 1;
    for (int d = l.rank - 1; d >= 0; --d) {
      ln *= l.shape[d];
      if (l.shape[d] == 1) continue;
      if (l.strides[d] != expected) contiguous = false;
      expected *= l.shape[d];
    }
    if (!(contiguous && ln == n) || l.remapped) p.dense = false;
    if (!fits_int32(offset_span(l.rank, l.shape, l.strides))) p.index32 = false;
    if (l.data && reinterpret_cast<std::uintptr_t>(l.data) % 16 != 0) p.aligned16 = false;
  }
  if (testing::force_int64_index) p.index32 = false;
}

template <class E>
void plan_leaves(Plan& p, index_t n, const E& e) {
  plan_leaves(p, n, leaves_of(e));
}

// The plan of writing a statement with these leaves into a tensor of rank `rank`.
FT_OUTLINE Plan make_plan(int rank, const index_t* shape, const index_t* strides, const void* data, index_t numel,
                          bool contiguous, const LeafList& leaves) {
  Plan p;
  p.dense = contiguous;
  p.index32 = fits_int32(offset_span(rank, shape, strides));
  p.aligned16 = reinterpret_cast<std::uintptr_t>(data) % 16 == 0;
  plan_leaves(p, numel, leaves);
  return p;
}

template <class T, int R>
Plan make_plan(const Tensor<T, R>& dst, const LeafList& leaves) {
  return make_plan(R, dst.shape().begin(), dst.strides().begin(), dst.data(), dst.numel(), dst.is_contiguous(), leaves);
}

template <class T, int R, class E>
Plan make_plan(const Tensor<T, R>& dst, const E& e) {
  return make_plan(dst, leaves_of(e));
}

// Output coordinates of linear index `i` (row-major), for the first element of a CPU chunk.
template <class I, int R>
void unravel(I i, const Shape<R>& shape, Array<I, R>& coord) {
  for (int d = R - 1; d >= 0; --d) {
    I s = static_cast<I>(shape[d]);
    coord[d] = i % s;
    i /= s;
  }
}

}  // namespace ft::inline FT_ABI::exec
