// ft::Tensor<T, Rank>: a handle to strided data on one device. Copies share storage.
#pragma once

#include <algorithm>
#include <cstddef>
#include <limits>
#include <type_traits>
#include <utility>
#include <vector>

#include "ft/core/config.hpp"
#include "ft/core/device.hpp"
#include "ft/core/dtype.hpp"
#include "ft/core/error.hpp"
#include "ft/core/index.hpp"
#include "ft/core/shape.hpp"
#include "ft/core/storage.hpp"

namespace ft::inline FT_ABI {

template <class T, int R>
class Tensor;

namespace detail {
// Evaluates expression `e` into `dst` (defined in exec/assign.hpp; ft/ft.hpp includes it).
template <class T, int R, class E>
void assign(const Tensor<T, R>& dst, const E& e, const char* op);
template <class E>
inline constexpr bool is_expression_node_v = false;  // set true by expr/ for its node types
}  // namespace detail

// Reads a tensor inside a fused kernel: the leaf evaluator. It yields compute_t<T>: a two-byte
// float is read into float.
template <class T, int R>
struct TensorReader {
  using C = compute_t<T>;
  const T* ptr;
  Array<index_t, R> strides;  // 0 where the leaf is broadcast (size 1)
  bool dense;                 // contiguous with the output's shape: read by linear index

  template <class I, int OR, bool D>
  FT_HD FT_INLINE C operator()(const Index<I, OR, D>& ix) const {
    if constexpr (D) {
      return static_cast<C>(ptr[ix.linear]);
    } else {
      if (dense) return static_cast<C>(ptr[ix.linear]);
      I off = 0;
      for (int d = 0; d < R; ++d) off += ix.coord[OR - R + d] * static_cast<I>(strides[d]);
      return static_cast<C>(ptr[off]);
    }
  }
  template <class I, int OR>
  FT_HD FT_INLINE C operator()(const CoordIndex<I, OR>& ix) const {
    I off = 0;
    for (int d = 0; d < R; ++d) off += ix.coord[OR - R + d] * static_cast<I>(strides[d]);
    return static_cast<C>(ptr[off]);
  }
  template <int N, class I>
  FT_HD FT_INLINE Vec<C, N> load(I i) const {
    if constexpr (std::is_same_v<C, T>) {
      return *reinterpret_cast<const Vec<T, N>*>(ptr + i);
    } else {
      const Vec<T, N> x = *reinterpret_cast<const Vec<T, N>*>(ptr + i);
      Vec<C, N> r;
      for (int k = 0; k < N; ++k) r.v[k] = static_cast<C>(x.v[k]);
      return r;
    }
  }
};

template <class T, int R>
class Tensor {
  static_assert(is_dtype_v<T>,
                "ft::Tensor: element type must be float, double, half, bfloat16, int32_t, int64_t, uint8_t or bool");
  static_assert(R >= 0 && R <= kMaxRank, "ft::Tensor: rank must be between 0 and 8");

 public:
  using value_type = T;
  static constexpr int rank = R;

  // An undefined tensor (no storage); assigning an expression to it allocates.
  Tensor() = default;
  Tensor(const Shape<R>& shape, Device device = kCPU)
      : storage_(make_storage(static_cast<std::size_t>(checked_numel(shape)) * sizeof(T), device)),
        data_(static_cast<T*>(storage_->data())),
        shape_(shape),
        strides_(contiguous_strides(shape)) {}
  // A view of existing storage.
  Tensor(Storage storage, T* data, const Shape<R>& shape, const Array<index_t, R>& strides)
      : storage_(std::move(storage)), data_(data), shape_(shape), strides_(strides) {}

  // Evaluates an expression: one launch on the expression's device.
  template <class E>
  requires detail::is_expression_node_v<E> Tensor(
      const E& e)  // NOLINT: implicit, so `Tensor<float, 2> y = a * b;` evaluates
  {
    static_assert(E::rank == R,
                  "ft::Tensor: the expression's rank differs from the tensor's; "
                  "reshape/unsqueeze the operands or declare the tensor with the expression's rank");
    if constexpr (E::rank == R) {
      *this = Tensor(e.shape(), e.device());
      detail::assign(*this, e, "eval");
    }
  }

  Tensor(const Tensor&) = default;
  Tensor(Tensor&&) noexcept = default;
  // A named tensor rebinds (shares storage), as `b = a` does in Python...
  Tensor& operator=(const Tensor&) & = default;
  Tensor& operator=(Tensor&&) & noexcept = default;
  // ...while a temporary view copies the values in, as LibTorch does: `a.slice(0, 0, 2) = b;`.
  Tensor& operator=(const Tensor& other) && {
    detail::assign(*this, other, "assign");
    return *this;
  }
  Tensor& operator=(Tensor&& other) && { return std::move(*this) = static_cast<const Tensor&>(other); }

  // Tensor = expression writes the values into this tensor's elements (one launch); the
  // expression broadcasts to this shape. An undefined tensor is allocated first.
  template <class E>
  requires(detail::is_expression_node_v<E> || is_number_v<E>) Tensor& operator=(const E& e) {
    if constexpr (is_number_v<E>) {
      check(defined(), "assign", "cannot assign a scalar to an undefined tensor (its shape is unknown)");
    } else {
      static_assert(E::rank <= R,
                    "ft::Tensor: cannot write an expression of higher rank into a tensor; reduce or reshape it first");
      if (!defined()) {
        check(E::rank == R, "assign", "an undefined rank-", R, " tensor cannot be allocated from a rank-", E::rank,
              " expression");
        if constexpr (E::rank == R) *this = Tensor(e.shape(), e.device());
      }
    }
    if constexpr (is_number_v<E>) {
      detail::assign(*this, e, "assign");
    } else if constexpr (E::rank <= R) {
      detail::assign(*this, e, "assign");
    }
    return *this;
  }

  // ---- facts ----
  bool defined() const { return storage_ != nullptr; }
  const Shape<R>& shape() const { return shape_; }
  const Array<index_t, R>& strides() const { return strides_; }
  index_t size(int d) const {
    check(R > 0, "size", "dimension ", d, " specified but a tensor of rank 0 has no dimensions");
    return shape_[wrap_dim(d, R, "size")];
  }
  index_t stride(int d) const {
    check(R > 0, "stride", "dimension ", d, " specified but a tensor of rank 0 has no dimensions");
    return strides_[wrap_dim(d, R, "stride")];
  }
  static constexpr int dim() { return R; }
  index_t numel() const { return shape_.numel(); }
  Device device() const { return storage_ ? storage_->device() : Device(kCPU); }
  static constexpr DType dtype() { return dtype_of<T>(); }
  T* data() const { return data_; }
  const Storage& storage() const { return storage_; }
  // Tells the allocator that work on `stream` (a CUDA stream of this tensor's device other
  // than the current one) uses this tensor, so its memory is not reused before that work is done
  // (torch.Tensor.record_stream). No-op on the CPU.
  void record_stream(cuda::Stream stream) const {
    if (storage_) storage_->record_stream(stream);
  }

  bool is_contiguous() const {
    if (numel() == 0) return true;
    index_t expected = 1;
    for (int i = R - 1; i >= 0; --i) {
      if (shape_[i] == 1) continue;
      if (strides_[i] != expected) return false;
      expected *= shape_[i];
    }
    return true;
  }

  // ---- copies and transfers ----
  Tensor clone() const {
    Tensor out(shape_, device());
    detail::assign(out, *this, "clone");
    return out;
  }
  Tensor contiguous() const { return is_contiguous() ? *this : clone(); }
  Tensor to(Device d) const {
    if (d == device()) return *this;
    if (d.is_cuda()) cuda::require_device(d, "to");
    Tensor src = contiguous();
    Tensor out(shape_, d);
    cuda::copy_bytes(out.data(), d, src.data(), src.device(), static_cast<std::size_t>(numel()) * sizeof(T));
    return out;
  }
  T item() const {
    check(numel() == 1, "item", "a tensor of shape ", to_string(shape_), " has ", numel(),
          " elements; item() needs exactly one");
    T v{};
    if (device().is_cpu()) stats::detail::record_host_sync(kCPU);  // on a GPU, copy_bytes counts it
    cuda::copy_bytes(&v, kCPU, data_, device(), sizeof(T));
    return v;
  }
  // The elements in row-major order, copied to the host.
  std::vector<T> to_vector() const {
    Tensor host = to(kCPU).contiguous();
    return std::vector<T>(host.data(), host.data() + numel());
  }

  // ---- views: share storage, change shape/strides ----
  Tensor transpose(int d0, int d1) const {
    d0 = wrap_dim(d0, R, "transpose");
    d1 = wrap_dim(d1, R, "transpose");
    Tensor v = *this;
    std::swap(v.shape_[d0], v.shape_[d1]);
    std::swap(v.strides_[d0], v.strides_[d1]);
    return v;
  }
  Tensor permute(const int (&dims)[R > 0 ? R : 1]) const {
    Tensor v = *this;
    bool seen[kMaxRank > 0 ? kMaxRank : 1] = {};
    for (int i = 0; i < R; ++i) {
      int d = wrap_dim(dims[i], R, "permute");
      check(!seen[d], "permute", "dimension ", dims[i], " repeats in the permutation of ", to_string(shape_));
      seen[d] = true;
      v.shape_[i] = shape_[d];
      v.strides_[i] = strides_[d];
    }
    return v;
  }
  // PyTorch's slice semantics: negative bounds count from the end, bounds clamp, step > 0.
  Tensor slice(int dim, index_t start, index_t end, index_t step = 1) const {
    dim = wrap_dim(dim, R, "slice");
    check(step > 0, "slice", "step must be positive, got ", step);
    index_t n = shape_[dim];
    if (start < 0) start += n;
    if (end < 0) end += n;
    start = std::clamp<index_t>(start, 0, n);
    end = std::clamp<index_t>(end, start, n);
    Tensor v = *this;
    v.data_ = data_ + start * strides_[dim];
    v.shape_[dim] = (end - start + step - 1) / step;
    v.strides_[dim] = strides_[dim] * step;
    return v;
  }
  // Drops dimension `dim` by taking index `i` along it (negative counts from the end).
  auto select(int dim, index_t i) const {
    static_assert(R > 0, "ft::Tensor::select: a rank-0 tensor has no dimension to select");
    if constexpr (R > 0) return select_impl(dim, i);
  }
  Tensor<T, R - 1> select_impl(int dim, index_t i) const {
    dim = wrap_dim(dim, R, "select");
    index_t n = shape_[dim];
    check(i >= -n && i < n, "select", "index ", i, " is out of range for dimension ", dim, " of ", to_string(shape_));
    if (i < 0) i += n;
    Shape<R - 1> s;
    Array<index_t, R - 1> st;
    for (int k = 0, j = 0; k < R; ++k) {
      if (k == dim) continue;
      s[j] = shape_[k];
      st[j++] = strides_[k];
    }
    return Tensor<T, R - 1>(storage_, data_ + i * strides_[dim], s, st);
  }
  Tensor<T, R + 1> unsqueeze(int d) const {
    if (d < -(R + 1) || d > R)
      fail("unsqueeze", "dimension ", d, " is out of range for a tensor of rank ", R, " (expected one in [", -(R + 1),
           ", ", R, "])");
    if (d < 0) d += R + 1;
    Shape<R + 1> s;
    Array<index_t, R + 1> st;
    for (int k = 0, j = 0; k < R + 1; ++k) {
      if (k == d) {
        s[k] = 1;
        st[k] = (d < R) ? strides_[d] * shape_[d] : 1;
      } else {
        s[k] = shape_[j];
        st[k] = strides_[j++];
      }
    }
    return Tensor<T, R + 1>(storage_, data_, s, st);
  }
  auto squeeze(int d) const {
    static_assert(R > 0, "ft::Tensor::squeeze: a rank-0 tensor has no dimension to squeeze");
    if constexpr (R > 0) {
      d = wrap_dim(d, R, "squeeze");
      check(shape_[d] == 1, "squeeze", "dimension ", d, " of ", to_string(shape_), " has size ", shape_[d],
            ", not 1 (the rank is static, so it cannot be kept)");
      return select_impl(d, 0);
    }
  }
  // Broadcasts size-1 dimensions (and new leading ones) to `sizes` with stride 0; -1 keeps a size.
  template <std::size_t N>
  Tensor<T, static_cast<int>(N)> expand(const index_t (&sizes)[N]) const {
    constexpr int NR = static_cast<int>(N);
    static_assert(NR >= R, "ft::Tensor::expand: the new shape cannot have fewer dimensions than the tensor");
    constexpr int lead = NR - R;  // new leading dimensions, broadcast by stride 0
    Shape<NR> s;
    Array<index_t, NR> st;
    for (int k = 0; k < lead; ++k) {
      check(sizes[k] >= 0, "expand", "new leading dimension ", k, " must have a non-negative size, got ", sizes[k]);
      s[k] = sizes[k];
      st[k] = 0;
    }
    for (int j = 0; j < R; ++j) {
      index_t want = sizes[j + lead];
      if (want == -1 || want == shape_[j]) {
        s[j + lead] = shape_[j];
        st[j + lead] = strides_[j];
      } else {
        check(shape_[j] == 1, "expand", "cannot expand ", to_string(shape_), " to ", to_string(to_array(sizes)),
              ": dimension ", j, " has size ", shape_[j], ", not 1");
        s[j + lead] = want;
        st[j + lead] = 0;
      }
    }
    return Tensor<T, NR>(storage_, data_, s, st);
  }
  // A view with a new shape when the strides allow one, else a contiguous copy; one -1 is inferred.
  template <std::size_t N>
  Tensor<T, static_cast<int>(N)> reshape(const index_t (&sizes)[N]) const {
    constexpr int NR = static_cast<int>(N);
    Shape<NR> s = infer_shape<NR>(sizes);
    Array<index_t, NR> st;
    if (view_strides<NR>(s, st)) return Tensor<T, NR>(storage_, data_, s, st);
    Tensor c = clone();
    return Tensor<T, NR>(c.storage_, c.data_, s, contiguous_strides(s));
  }
  Tensor<T, 1> flatten() const { return reshape({-1}); }
  // The same with a shape value (no -1 inference).
  template <int NR>
  Tensor<T, NR> reshape(const Shape<NR>& s) const {
    check(s.numel() == numel(), "reshape", "shape ", to_string(s), " is invalid for input of shape ", to_string(shape_),
          " (", numel(), " elements)");
    Array<index_t, NR> st;
    if (view_strides<NR>(s, st)) return Tensor<T, NR>(storage_, data_, s, st);
    Tensor c = clone();
    return Tensor<T, NR>(c.storage_, c.data_, s, contiguous_strides(s));
  }

 private:
  template <class, int>
  friend class Tensor;

  // The element count, after checking that no extent is negative and that neither the count
  // nor a stride (the product of the extents, zeros skipped) overflows.
  static index_t checked_numel(const Shape<R>& s) {
    index_t strided = 1;
    for (int i = 0; i < R; ++i) {
      check(s[i] >= 0, "empty", "negative extent ", s[i], " in shape ", to_string(s));
      if (s[i] > 0 && (__builtin_mul_overflow(strided, s[i], &strided) ||
                       strided > std::numeric_limits<index_t>::max() / static_cast<index_t>(sizeof(T))))
        too_many_elements(s);
    }
    return s.numel();
  }
  // Out of line: inlined, the message building upsets GCC 12's flow analysis (false warnings).
  [[noreturn, gnu::noinline, gnu::cold]] static void too_many_elements(const Shape<R>& s) {
    fail("empty", "shape ", to_string(s), " has too many elements to address");
  }
  template <std::size_t N>
  static Array<index_t, static_cast<int>(N)> to_array(const index_t (&a)[N]) {
    Array<index_t, static_cast<int>(N)> r;
    for (std::size_t i = 0; i < N; ++i) r[static_cast<int>(i)] = a[i];
    return r;
  }
  template <int NR>
  Shape<NR> infer_shape(const index_t (&sizes)[NR]) const {
    Shape<NR> s;
    int infer = -1;
    index_t known = 1;
    for (int i = 0; i < NR; ++i) {
      if (sizes[i] == -1) {
        check(infer < 0, "reshape", "only one dimension can be -1 in ", to_string(to_array(sizes)));
        infer = i;
      } else {
        check(sizes[i] >= 0, "reshape", "invalid size ", sizes[i], " in ", to_string(to_array(sizes)));
        known *= sizes[i];
      }
      s[i] = sizes[i];
    }
    if (infer >= 0) {
      check(known != 0 && numel() % known == 0, "reshape", "shape ", to_string(to_array(sizes)),
            " is invalid for input of size ", numel());
      s[infer] = numel() / known;
    }
    check(s.numel() == numel(), "reshape", "shape ", to_string(to_array(sizes)), " is invalid for input of shape ",
          to_string(shape_), " (", numel(), " elements)");
    return s;
  }
  // Strides that view this tensor's memory with shape `s`, if they exist: each run of old
  // dimensions that is contiguous in memory may be split or merged freely.
  template <int NR>
  bool view_strides(const Shape<NR>& s, Array<index_t, NR>& st) const {
    if (numel() == 0) {
      st = contiguous_strides(s);
      return true;
    }
    int view_d = NR - 1;
    index_t chunk_base_stride = R > 0 ? strides_[R - 1] : 1;
    index_t tensor_numel = 1, view_numel = 1;
    for (int td = R - 1; td >= 0; --td) {
      tensor_numel *= shape_[td];
      // A chunk ends where the next (outer) dimension does not continue it in memory.
      if (td == 0 || (shape_[td - 1] != 1 && strides_[td - 1] != tensor_numel * chunk_base_stride)) {
        while (view_d >= 0 && (view_numel < tensor_numel || s[view_d] == 1)) {
          st[view_d] = view_numel * chunk_base_stride;
          view_numel *= s[view_d];
          --view_d;
        }
        if (view_numel != tensor_numel) return false;
        if (td > 0) {
          chunk_base_stride = strides_[td - 1];
          tensor_numel = 1;
          view_numel = 1;
        }
      }
    }
    for (; view_d >= 0; --view_d) st[view_d] = 1;  // remaining size-1 dims (rank-0 source)
    return true;
  }

  Storage storage_;
  T* data_ = nullptr;
  Shape<R> shape_{};
  Array<index_t, R> strides_{};

 public:
  // ---- the Expression interface: a tensor is the leaf of every expression ----
  TensorReader<T, R> evaluator(const EvalContext& ctx) const {
    TensorReader<T, R> r{data_, strides_, is_contiguous() && numel() == ctx.numel};
    for (int i = 0; i < R; ++i)
      if (shape_[i] == 1) r.strides[i] = 0;
    return r;
  }
  template <class F>
  void for_each_leaf(F&& f) const {
    f(LeafInfo{storage_.get(), data_, sizeof(T), device(), R, shape_.begin(), strides_.begin()});
  }
};

namespace detail {
template <class T, int R>
inline constexpr bool is_expression_node_v<Tensor<T, R>> = true;
}

// An uninitialised tensor; rank deduced from the braced shape: ft::empty<float>({2, 3}).
template <class T, std::size_t R>
Tensor<T, static_cast<int>(R)> empty(const index_t (&shape)[R], Device device = kCPU) {
  if (device.is_cuda()) cuda::require_device(device, "empty");
  Shape<static_cast<int>(R)> s;
  for (std::size_t i = 0; i < R; ++i) s[static_cast<int>(i)] = shape[i];
  return Tensor<T, static_cast<int>(R)>(s, device);
}
template <class T, int R>
Tensor<T, R> empty(const Shape<R>& shape, Device device = kCPU) {
  return Tensor<T, R>(shape, device);
}

// Copies row-major `values` into a new tensor of `shape` on `device`.
template <class T, std::size_t R>
Tensor<T, static_cast<int>(R)> from_vector(const std::vector<T>& values, const index_t (&shape)[R],
                                           Device device = kCPU) {
  if (device.is_cuda()) cuda::require_device(device, "from_vector");
  auto t = empty<T>(shape, kCPU);
  check(static_cast<index_t>(values.size()) == t.numel(), "from_vector", "got ", values.size(), " values for shape ",
        to_string(t.shape()), " (", t.numel(), " elements)");
  std::copy(values.begin(), values.end(), t.data());
  return t.to(device);
}

}  // namespace ft::inline FT_ABI
