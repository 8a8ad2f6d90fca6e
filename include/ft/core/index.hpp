// The index an evaluator is called with, and the small vector type of the 16-byte loads.
#pragma once

#include "ft/core/config.hpp"
#include "ft/core/device.hpp"
#include "ft/core/shape.hpp"

namespace ft::inline FT_ABI {

// Position of one output element. I is int32_t or int64_t (the 32-bit path when sizes allow).
// Dense: every leaf is contiguous with the output's shape, so `linear` alone is valid and
// `coord` is not filled; otherwise `coord` holds the output coordinates of rank R.
template <class I, int R, bool Dense>
struct Index {
  I linear;
  Array<I, R> coord;
};
template <class I, int R>
struct Index<I, R, true> {
  I linear;
};

// An index whose coordinates alone are valid (no linear index shared with the output): what a
// remapping node reads its operand at. A tensor leaf reads it without asking whether it is
// dense, so a loop over it has no branch and vectorises.
template <class I, int R>
struct CoordIndex : Index<I, R, false> {};

// The index of the CPU's strided loop (exec/cpu.hpp: each_strided): coordinates and linear
// index both valid. A tensor leaf, like the output, reads it by strides without asking whether
// it is dense; along a row that is a fixed offset plus j·stride, so a statement with a
// broadcast bias has no branch in its loop and vectorises.
template <class I, int R>
struct StridedIndex : CoordIndex<I, R> {};

// The index of a CPU kernel that runs a statement's one cat node a part at a time
// (exec/cpu.hpp: each_cat_part): the node reads part `part` without looking for it. The
// elementwise nodes pass it down unchanged; every other node reads it as an Index.
template <class I, int R>
struct PartIndex : Index<I, R, false> {
  int part;
};

// A cat node reads up to kCatFused parts in its consumer's kernel (expr/remap.hpp: CatList).
inline constexpr int kCatFused = 8;

// Where the one cat node of a statement splits the output: along the dimension `from_end`
// places from the last (the node's own dimension, counted from its last), parts p = 0 … n−1
// at [start[p], start[p + 1]); `size` is start[n], the node's extent there.
struct CatSplit {
  bool found = false;
  int from_end = 0;
  int n = 0;
  index_t start[kCatFused + 1] = {};
};

// N consecutive elements moved as one load/store; aligned to at most 16 bytes (one LDG.128).
template <class T, int N>
struct alignas(sizeof(T) * N < 16 ? sizeof(T) * N : 16) Vec {
  T v[N];
};

template <class T, int N>
inline constexpr std::size_t vec_alignment = alignof(Vec<T, N>);

// What the executor asks an expression before building its evaluator: the output's shape.
struct EvalContext {
  int rank = 0;
  index_t numel = 1;
  index_t shape[kMaxRank] = {};
};

template <int R>
EvalContext make_context(const Shape<R>& s) {
  EvalContext c;
  c.rank = R;
  c.numel = s.numel();
  for (int i = 0; i < R; ++i) c.shape[i] = s[i];
  return c;
}

// Runtime facts about one tensor leaf, for the checks the executor makes before a launch
// (devices, aliasing, dense layout, alignment, index width).
struct LeafInfo {
  const void* storage;  // identity of the storage block, for alias detection
  const void* data;
  std::size_t elem_size;
  Device device;
  int rank;
  const index_t* shape;
  const index_t* strides;
  // Read through a remapping of coordinates (a gather: flip, pad, cat …): never by the output's
  // linear index, and never in place over itself.
  bool remapped = false;
};

}  // namespace ft::inline FT_ABI
