// Specifications of views: transpose, permute, reshape, slice, select, unsqueeze, squeeze,
// expand and flatten share storage with their base, have PyTorch's shapes and strides, and
// read and write the elements a plain index loop says they should.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "common.hpp"

using ft::index_t;

namespace {

// Python's slice arithmetic for a positive step: the reference for Tensor::slice.
struct PySlice {
  index_t start, length;
};
PySlice py_slice(index_t n, index_t start, index_t end, index_t step) {
  auto norm = [n](index_t x) {
    if (x < 0) x += n;
    return x < 0 ? index_t{0} : (x > n ? n : x);
  };
  index_t s = norm(start), e = norm(end);
  return {s, e > s ? (e - s + step - 1) / step : 0};
}

template <class T, int R>
bool same_storage(const ft::Tensor<T, R>& v, const ft::Tensor<T, R>& base) {
  return v.storage() == base.storage();
}

}  // namespace

// ---------------------------------------------------------------- transpose / permute

TEST_CASE("transpose swaps two dims, shares storage and costs no launch") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto a = ft::test::random_tensor<float>({3, 7, 5}, dev, 101);
    std::vector<double> b = ft::test::to_double(a);
    auto B = [&](index_t i, index_t j, index_t k) { return b[static_cast<std::size_t>((i * 7 + j) * 5 + k)]; };
    ft::Tensor<float, 3> v, w;
    CHECK(ft::test::launches_of(dev, [&] {
            v = a.transpose(0, 2);
            w = a.transpose(-1, -3);
          }) == 0);
    CHECK(v.shape() == ft::Shape<3>{5, 7, 3});
    CHECK(v.strides() == ft::Array<index_t, 3>{{1, 5, 35}});
    CHECK(w.shape() == v.shape());
    CHECK(w.strides() == v.strides());
    CHECK(v.data() == a.data());
    CHECK(same_storage(v, a));
    std::vector<double> want;
    for (index_t i = 0; i < 5; ++i)
      for (index_t j = 0; j < 7; ++j)
        for (index_t k = 0; k < 3; ++k) want.push_back(B(k, j, i));
    CHECK(ft::test::to_double(v) == want);
    CHECK(ft::test::to_double(v.contiguous()) == want);
    CHECK(ft::test::to_double(a.transpose(1, 1)) == b);  // the identity

    // A write through the view lands on the base elements it maps to: v[1][j][k] is a[k][j][1].
    CHECK(ft::test::launches_of(dev, [&] { v.slice(0, 1, 2) = -7.0f; }) == 1);
    std::vector<double> got = ft::test::to_double(a);
    for (index_t i = 0; i < 3; ++i)
      for (index_t j = 0; j < 7; ++j)
        for (index_t k = 0; k < 5; ++k)
          CHECK(got[static_cast<std::size_t>((i * 7 + j) * 5 + k)] == (k == 1 ? -7.0 : B(i, j, k)));
  }
}

TEST_CASE("transpose of a large matrix reads every element in the transposed order") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto a = ft::randn<float>({997, 1009}, dev);
    std::vector<double> b = ft::test::to_double(a);
    ft::Tensor<float, 2> c;
    CHECK(ft::test::launches_of(dev, [&] { c = a.transpose(0, 1).contiguous(); }) == 1);
    REQUIRE(c.shape() == ft::Shape<2>{1009, 997});
    std::vector<double> got = ft::test::to_double(c);
    std::size_t bad = 0;
    for (index_t i = 0; i < 1009; ++i)
      for (index_t j = 0; j < 997; ++j)
        bad += got[static_cast<std::size_t>(i * 997 + j)] != b[static_cast<std::size_t>(j * 1009 + i)];
    CHECK(bad == 0u);
  }
}

TEST_CASE("permute reorders dims, takes negative dims and shares storage") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto a = ft::test::random_tensor<double>({3, 1, 7, 2}, dev, 102);
    std::vector<double> b = ft::test::to_double(a);
    auto B = [&](index_t i, index_t j, index_t k, index_t l) {
      return b[static_cast<std::size_t>(((i * 1 + j) * 7 + k) * 2 + l)];
    };
    ft::Tensor<double, 4> p, q;
    CHECK(ft::test::launches_of(dev, [&] {
            p = a.permute({2, 0, 3, 1});
            q = a.permute({-2, 0, -1, 1});
          }) == 0);
    CHECK(p.shape() == ft::Shape<4>{7, 3, 2, 1});
    CHECK(p.strides() == ft::Array<index_t, 4>{{2, 14, 1, 14}});
    CHECK(q.shape() == p.shape());
    CHECK(q.strides() == p.strides());
    CHECK(p.data() == a.data());
    std::vector<double> want;
    for (index_t i = 0; i < 7; ++i)
      for (index_t j = 0; j < 3; ++j)
        for (index_t k = 0; k < 2; ++k) want.push_back(B(j, 0, i, k));
    CHECK(ft::test::to_double(p) == want);
    CHECK(ft::test::to_double(p.contiguous()) == want);
    CHECK(ft::test::to_double(a.permute({0, 1, 2, 3})) == b);

    p.select(0, 4) = 0.5;  // p[4] is a[:, :, 4, :]
    std::vector<double> got = ft::test::to_double(a);
    for (index_t i = 0; i < 3; ++i)
      for (index_t k = 0; k < 7; ++k)
        for (index_t l = 0; l < 2; ++l)
          CHECK(got[static_cast<std::size_t>((i * 7 + k) * 2 + l)] == (k == 4 ? 0.5 : B(i, 0, k, l)));
  }
}

// ---------------------------------------------------------------- reshape / flatten

TEST_CASE("reshape of a contiguous tensor is a view with one -1 inferred") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto a = ft::test::random_tensor<float>({4, 6, 5}, dev, 103);
    std::vector<double> b = ft::test::to_double(a);
    ft::Tensor<float, 3> r3;
    ft::Tensor<float, 1> r1;
    ft::Tensor<float, 4> r4;
    CHECK(ft::test::launches_of(dev, [&] {
            r3 = a.reshape({2, -1, 5});
            r1 = a.reshape({-1});
            r4 = a.reshape({1, 120, 1, 1});
          }) == 0);
    CHECK(r3.shape() == ft::Shape<3>{2, 12, 5});
    CHECK(r3.strides() == ft::Array<index_t, 3>{{60, 5, 1}});
    CHECK(r1.shape() == ft::Shape<1>{120});
    CHECK(r4.shape() == ft::Shape<4>{1, 120, 1, 1});
    for (const float* p : {r3.data(), r1.data(), r4.data()}) CHECK(p == a.data());
    CHECK(ft::test::to_double(r3) == b);
    CHECK(ft::test::to_double(r1) == b);
    CHECK(ft::test::to_double(r4) == b);
    CHECK(a.reshape({4, 30}).reshape({-1, 6, 5}).data() == a.data());

    r1.slice(0, 7, 8) = 99.0f;  // element 7 is a[0][1][2]
    b[7] = 99.0;
    CHECK(ft::test::to_double(a) == b);

    auto big = ft::randn<float>({1000003}, dev);
    auto big2 = big.reshape({1, -1});
    CHECK(big2.shape() == ft::Shape<2>{1, 1000003});
    CHECK(big2.data() == big.data());
  }
}

TEST_CASE("reshape of a non-contiguous tensor is a view when its strides allow one") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto a = ft::test::random_tensor<float>({4, 6, 5}, dev, 104);
    std::vector<double> b = ft::test::to_double(a);
    auto B = [&](index_t i, index_t j, index_t k) { return b[static_cast<std::size_t>((i * 6 + j) * 5 + k)]; };

    // Merging dims 0 and 1 of a slice of the last dim: stride 30 = 6 * 5.
    auto s = a.slice(2, 0, 4);
    ft::Tensor<float, 2> m;
    CHECK(ft::test::launches_of(dev, [&] { m = s.reshape({24, 4}); }) == 0);
    CHECK(m.data() == a.data());
    CHECK(m.strides() == ft::Array<index_t, 2>{{5, 1}});
    std::vector<double> want;
    for (index_t r = 0; r < 24; ++r)
      for (index_t c = 0; c < 4; ++c) want.push_back(B(r / 6, r % 6, c));
    CHECK(ft::test::to_double(m) == want);
    CHECK(ft::test::to_double(m.contiguous()) == want);

    // Splitting the first dim of a transpose.
    auto t = a.transpose(0, 1);  // [6, 4, 5], strides [5, 30, 1]
    ft::Tensor<float, 4> sp, sp2;
    CHECK(ft::test::launches_of(dev, [&] {
            sp = t.reshape({2, 3, 4, 5});
            sp2 = t.reshape({6, 2, -1, 5});
          }) == 0);
    CHECK(sp.data() == a.data());
    CHECK(sp.strides() == ft::Array<index_t, 4>{{15, 5, 30, 1}});
    CHECK(sp2.strides() == ft::Array<index_t, 4>{{5, 60, 30, 1}});
    want.clear();
    for (index_t p = 0; p < 2; ++p)
      for (index_t q = 0; q < 3; ++q)
        for (index_t r = 0; r < 4; ++r)
          for (index_t c = 0; c < 5; ++c) want.push_back(B(r, p * 3 + q, c));
    CHECK(ft::test::to_double(sp) == want);
    CHECK(ft::test::to_double(sp.contiguous()) == want);
    CHECK(ft::test::to_double(sp2) == ft::test::to_double(t));

    // A stepped slice merges with the dims outside it.
    auto st = a.slice(2, 0, 5, 2);  // [4, 6, 3], strides [30, 5, 2]
    auto ms = st.reshape({24, 3});
    CHECK(ms.data() == a.data());
    CHECK(ms.strides() == ft::Array<index_t, 2>{{5, 2}});
    want.clear();
    for (index_t r = 0; r < 24; ++r)
      for (index_t c = 0; c < 3; ++c) want.push_back(B(r / 6, r % 6, 2 * c));
    CHECK(ft::test::to_double(ms) == want);

    // An expanded tensor keeps its 0 strides.
    auto x = ft::test::random_tensor<float>({3, 1}, dev, 105);
    auto e = x.expand({3, 4}).reshape({3, 2, 2});
    CHECK(e.data() == x.data());
    CHECK(e.strides() == ft::Array<index_t, 3>{{1, 0, 0}});
    std::vector<double> xv = ft::test::to_double(x);
    want.clear();
    for (index_t i = 0; i < 3; ++i)
      for (index_t j = 0; j < 4; ++j) want.push_back(xv[static_cast<std::size_t>(i)]);
    CHECK(ft::test::to_double(e) == want);

    // Writes through the reshaped view reach the base.
    ms.select(1, 1) = 3.0f;  // a[:, :, 2]
    std::vector<double> got = ft::test::to_double(a);
    for (index_t i = 0; i < 4; ++i)
      for (index_t j = 0; j < 6; ++j)
        for (index_t k = 0; k < 5; ++k)
          CHECK(got[static_cast<std::size_t>((i * 6 + j) * 5 + k)] == (k == 2 ? 3.0 : B(i, j, k)));
  }
}

TEST_CASE("reshape copies when no strides fit, giving the row-major values of the view, as PyTorch") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto a = ft::test::random_tensor<float>({4, 6, 5}, dev, 106);
    std::vector<double> b = ft::test::to_double(a);
    auto B = [&](index_t i, index_t j, index_t k) { return b[static_cast<std::size_t>((i * 6 + j) * 5 + k)]; };
    auto t = a.transpose(0, 1);  // [6, 4, 5]
    ft::Tensor<float, 2> r;
    CHECK(ft::test::launches_of(dev, [&] { r = t.reshape({6, 20}); }) == 1);
    CHECK(r.storage() != a.storage());
    CHECK(r.is_contiguous());
    std::vector<double> want;
    for (index_t i = 0; i < 6; ++i)
      for (index_t j = 0; j < 4; ++j)
        for (index_t k = 0; k < 5; ++k) want.push_back(B(j, i, k));
    CHECK(ft::test::to_double(r) == want);
    CHECK(ft::test::to_double(t.reshape({-1})) == want);
    CHECK(ft::test::to_double(t.reshape({2, -1, 2, 5})) == want);
    r = 0.0f;  // the copy is independent of a
    CHECK(ft::test::to_double(a) == b);

    // A slice of the last dim cannot flatten in place.
    auto s = a.slice(2, 1, 5);
    ft::Tensor<float, 1> f;
    CHECK(ft::test::launches_of(dev, [&] { f = s.reshape({-1}); }) == 1);
    want.clear();
    for (index_t i = 0; i < 4; ++i)
      for (index_t j = 0; j < 6; ++j)
        for (index_t k = 1; k < 5; ++k) want.push_back(B(i, j, k));
    CHECK(ft::test::to_double(f) == want);

    auto m = ft::test::random_tensor<double>({3, 7}, dev, 107);
    std::vector<double> mv = ft::test::to_double(m);
    want.clear();
    for (index_t j = 0; j < 7; ++j)
      for (index_t i = 0; i < 3; ++i) want.push_back(mv[static_cast<std::size_t>(i * 7 + j)]);
    CHECK(ft::test::to_double(m.transpose(0, 1).reshape({-1})) == want);
    CHECK(ft::test::to_double(m.transpose(0, 1).reshape({7, 3})) == want);
  }
}

TEST_CASE("reshape of 0-size and rank-0 tensors") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto z = ft::empty<float>({3, 0, 4}, dev);
    auto z2 = z.reshape({0, 7});
    CHECK(z2.shape() == ft::Shape<2>{0, 7});
    CHECK(z.reshape({-1}).shape() == ft::Shape<1>{0});
    CHECK(z.reshape({12, 0}).numel() == 0);
    auto h = ft::test::random_tensor<float>({7}, dev, 108);
    auto s = h.select(0, 4);  // rank 0
    auto s3 = s.reshape({1, 1, 1});
    CHECK(s3.shape() == ft::Shape<3>{1, 1, 1});
    CHECK(s3.data() == s.data());
    CHECK(s3.item() == s.item());
    CHECK(s.reshape({-1}).shape() == ft::Shape<1>{1});
    CHECK(s.flatten().item() == s.item());
  }
}

TEST_CASE("flatten is a rank-1 view of a contiguous tensor and a copy otherwise") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto a = ft::test::random_tensor<std::int32_t>({3, 1, 7}, dev, 109, -50, 50);
    std::vector<double> b = ft::test::to_double(a);
    ft::Tensor<std::int32_t, 1> f;
    CHECK(ft::test::launches_of(dev, [&] { f = a.flatten(); }) == 0);
    CHECK(f.shape() == ft::Shape<1>{21});
    CHECK(f.data() == a.data());
    CHECK(ft::test::to_double(f) == b);
    CHECK(ft::test::launches_of(dev, [&] { f = a.transpose(0, 2).flatten(); }) == 1);
    std::vector<double> want;
    for (index_t k = 0; k < 7; ++k)
      for (index_t i = 0; i < 3; ++i) want.push_back(b[static_cast<std::size_t>(i * 7 + k)]);
    CHECK(ft::test::to_double(f) == want);
  }
}

// ---------------------------------------------------------------- slice / select

TEST_CASE("slice takes start:end:step with negative and out-of-range bounds clamped like Python") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    for (index_t n : {index_t{1}, index_t{7}, index_t{1000003}}) {
      CAPTURE(n);
      auto a = ft::test::random_tensor<float>({n}, dev, 110);
      std::vector<double> b = ft::test::to_double(a);
      const index_t cases[][3] = {{0, 7, 1},   {2, 5, 1},    {1, 7, 2},     {-3, 7, 1},  {-3, -1, 1},
                                  {0, 100, 3}, {-100, 3, 1}, {5, 2, 1},     {7, 7, 1},   {10, 20, 1},
                                  {0, 7, 7},   {6, 7, 100},  {-1, 100, 1},  {-8, -7, 1}, {0, n, 1},
                                  {1, n, 3},   {-n, n, 2},   {n - 1, n, 1}, {0, -n, 1},  {3, 1000000, 999}};
      for (const auto& c : cases) {
        CAPTURE(c[0]);
        CAPTURE(c[1]);
        CAPTURE(c[2]);
        ft::Tensor<float, 1> v;
        CHECK(ft::test::launches_of(dev, [&] { v = a.slice(0, c[0], c[1], c[2]); }) == 0);
        PySlice ps = py_slice(n, c[0], c[1], c[2]);
        REQUIRE(v.numel() == ps.length);
        CHECK(v.stride(0) == c[2]);
        if (ps.length > 0) CHECK(v.data() == a.data() + ps.start);
        std::vector<double> want;
        for (index_t i = 0; i < ps.length; ++i) want.push_back(b[static_cast<std::size_t>(ps.start + i * c[2])]);
        CHECK(ft::test::to_double(v) == want);
        CHECK(ft::test::to_double(v.contiguous()) == want);
      }
      CHECK(ft::test::to_double(a.slice(0, 0, n)) == b);
      CHECK(a.slice(0, 0, n).data() == a.data());
    }
  }
}

TEST_CASE("slice of an inner dim keeps the other dims and scales the stride") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto a = ft::test::random_tensor<double>({3, 7, 5}, dev, 111);
    std::vector<double> b = ft::test::to_double(a);
    auto B = [&](index_t i, index_t j, index_t k) { return b[static_cast<std::size_t>((i * 7 + j) * 5 + k)]; };
    auto v = a.slice(1, -6, 100, 2);  // j = 1, 3, 5
    CHECK(v.shape() == ft::Shape<3>{3, 3, 5});
    CHECK(v.strides() == ft::Array<index_t, 3>{{35, 10, 1}});
    CHECK(v.data() == a.data() + 5);
    auto w = a.slice(-1, 1, -1, 3);  // k = 1 (then 4 is excluded by end = 4)
    CHECK(w.shape() == ft::Shape<3>{3, 7, 1});
    CHECK(w.strides() == ft::Array<index_t, 3>{{35, 5, 3}});
    std::vector<double> want_v, want_w;
    for (index_t i = 0; i < 3; ++i)
      for (index_t j = 1; j < 7; j += 2)
        for (index_t k = 0; k < 5; ++k) want_v.push_back(B(i, j, k));
    for (index_t i = 0; i < 3; ++i)
      for (index_t j = 0; j < 7; ++j) want_w.push_back(B(i, j, 1));
    CHECK(ft::test::to_double(v) == want_v);
    CHECK(ft::test::to_double(w) == want_w);
    CHECK(ft::test::to_double(v.contiguous()) == want_v);
    CHECK(a.slice(1, 3, 3).numel() == 0);
    CHECK(a.slice(1, 3, 3).shape() == ft::Shape<3>{3, 0, 5});
  }
}

TEST_CASE("select drops a dim at an index, negative counting from the end") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto a = ft::test::random_tensor<float>({3, 7, 5}, dev, 112);
    std::vector<double> b = ft::test::to_double(a);
    auto B = [&](index_t i, index_t j, index_t k) { return b[static_cast<std::size_t>((i * 7 + j) * 5 + k)]; };
    ft::Tensor<float, 2> s1, s2, s3;
    CHECK(ft::test::launches_of(dev, [&] {
            s1 = a.select(1, 3);
            s2 = a.select(-1, -1);
            s3 = a.select(0, -3);
          }) == 0);
    CHECK(s1.shape() == ft::Shape<2>{3, 5});
    CHECK(s1.strides() == ft::Array<index_t, 2>{{35, 1}});
    CHECK(s1.data() == a.data() + 15);
    CHECK(s2.shape() == ft::Shape<2>{3, 7});
    CHECK(s2.strides() == ft::Array<index_t, 2>{{35, 5}});
    CHECK(s3.data() == a.data());
    std::vector<double> w1, w2, w3;
    for (index_t i = 0; i < 3; ++i)
      for (index_t k = 0; k < 5; ++k) w1.push_back(B(i, 3, k));
    for (index_t i = 0; i < 3; ++i)
      for (index_t j = 0; j < 7; ++j) w2.push_back(B(i, j, 4));
    for (index_t j = 0; j < 7; ++j)
      for (index_t k = 0; k < 5; ++k) w3.push_back(B(0, j, k));
    CHECK(ft::test::to_double(s1) == w1);
    CHECK(ft::test::to_double(s2) == w2);
    CHECK(ft::test::to_double(s3) == w3);
    CHECK(ft::test::to_double(s2.contiguous()) == w2);

    CHECK(ft::test::launches_of(dev, [&] { a.select(1, 3) = 2.5f; }) == 1);
    std::vector<double> got = ft::test::to_double(a);
    for (index_t i = 0; i < 3; ++i)
      for (index_t j = 0; j < 7; ++j)
        for (index_t k = 0; k < 5; ++k)
          CHECK(got[static_cast<std::size_t>((i * 7 + j) * 5 + k)] == (j == 3 ? 2.5 : B(i, j, k)));
  }
}

// ---------------------------------------------------------------- unsqueeze / squeeze / expand

TEST_CASE("unsqueeze inserts a size-1 dim at d, including d = rank and negative d") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto a = ft::test::random_tensor<float>({3, 7}, dev, 113);
    std::vector<double> b = ft::test::to_double(a);
    ft::Tensor<float, 3> u0, u1, u2, um1, um3;
    CHECK(ft::test::launches_of(dev, [&] {
            u0 = a.unsqueeze(0);
            u1 = a.unsqueeze(1);
            u2 = a.unsqueeze(2);
            um1 = a.unsqueeze(-1);
            um3 = a.unsqueeze(-3);
          }) == 0);
    CHECK(u0.shape() == ft::Shape<3>{1, 3, 7});
    CHECK(u1.shape() == ft::Shape<3>{3, 1, 7});
    CHECK(u2.shape() == ft::Shape<3>{3, 7, 1});
    CHECK(um1.shape() == u2.shape());
    CHECK(um3.shape() == u0.shape());
    // PyTorch's strides: size * stride of the dim it is inserted before, 1 at the end.
    CHECK(u0.strides() == ft::Array<index_t, 3>{{21, 7, 1}});
    CHECK(u1.strides() == ft::Array<index_t, 3>{{7, 7, 1}});
    CHECK(u2.strides() == ft::Array<index_t, 3>{{7, 1, 1}});
    for (const auto* u : {&u0, &u1, &u2, &um1, &um3}) {
      CHECK(u->data() == a.data());
      CHECK(u->is_contiguous());
      CHECK(ft::test::to_double(*u) == b);
    }
    // On a transposed view.
    auto t = a.transpose(0, 1);  // [7, 3], strides [1, 7]
    auto tu = t.unsqueeze(1);
    CHECK(tu.shape() == ft::Shape<3>{7, 1, 3});
    CHECK(tu.strides() == ft::Array<index_t, 3>{{1, 21, 7}});
    CHECK(ft::test::to_double(tu) == ft::test::to_double(t));
    CHECK(ft::test::to_double(tu.contiguous()) == ft::test::to_double(t));
    // Writes reach the base.
    u1.select(2, 6) = -1.0f;  // a[:, 6]
    for (index_t i = 0; i < 3; ++i) b[static_cast<std::size_t>(i * 7 + 6)] = -1.0;
    CHECK(ft::test::to_double(a) == b);
  }
}

TEST_CASE("squeeze removes a size-1 dim") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto a = ft::test::random_tensor<float>({3, 1, 7}, dev, 114);
    std::vector<double> b = ft::test::to_double(a);
    ft::Tensor<float, 2> s, sn;
    CHECK(ft::test::launches_of(dev, [&] {
            s = a.squeeze(1);
            sn = a.squeeze(-2);
          }) == 0);
    CHECK(s.shape() == ft::Shape<2>{3, 7});
    CHECK(s.strides() == ft::Array<index_t, 2>{{7, 1}});
    CHECK(sn.shape() == s.shape());
    CHECK(s.data() == a.data());
    CHECK(ft::test::to_double(s) == b);
    auto one = ft::test::random_tensor<float>({1}, dev, 115);
    auto r0 = one.squeeze(0);
    static_assert(decltype(r0)::rank == 0);
    CHECK(r0.item() == one.item());
    // Squeezing a transposed view keeps its order.
    auto t = a.transpose(0, 2).squeeze(1);  // [7, 3]
    std::vector<double> want;
    for (index_t k = 0; k < 7; ++k)
      for (index_t i = 0; i < 3; ++i) want.push_back(b[static_cast<std::size_t>(i * 7 + k)]);
    CHECK(ft::test::to_double(t) == want);
    s.slice(1, 0, 1) = 8.0f;  // a[:, 0, 0]
    for (index_t i = 0; i < 3; ++i) b[static_cast<std::size_t>(i * 7)] = 8.0;
    CHECK(ft::test::to_double(a) == b);
  }
}

TEST_CASE("expand broadcasts size-1 dims and new leading dims with stride 0; -1 keeps a size") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto x = ft::test::random_tensor<float>({3, 1}, dev, 116);
    std::vector<double> xv = ft::test::to_double(x);
    ft::Tensor<float, 3> e, e2;
    CHECK(ft::test::launches_of(dev, [&] {
            e = x.expand({2, 3, 5});
            e2 = x.expand({2, -1, 5});
          }) == 0);
    CHECK(e.shape() == ft::Shape<3>{2, 3, 5});
    CHECK(e.strides() == ft::Array<index_t, 3>{{0, 1, 0}});
    CHECK(e2.shape() == e.shape());
    CHECK(e2.strides() == e.strides());
    CHECK(e.data() == x.data());
    std::vector<double> want;
    for (index_t p = 0; p < 2; ++p)
      for (index_t i = 0; i < 3; ++i)
        for (index_t j = 0; j < 5; ++j) want.push_back(xv[static_cast<std::size_t>(i)]);
    CHECK(ft::test::to_double(e) == want);
    ft::Tensor<float, 3> c;
    CHECK(ft::test::launches_of(dev, [&] { c = e.contiguous(); }) == 1);
    CHECK(c.is_contiguous());
    CHECK(ft::test::to_double(c) == want);
    CHECK(x.expand({3, 1}).strides() == x.strides());  // the same sizes: the same strides
    CHECK(x.expand({3, 0}).numel() == 0);

    // A rank-0 tensor expands to any shape, and one element to a million.
    auto s = x.select(0, 2).select(0, 0);
    auto big = s.expand({1000003});
    CHECK(big.stride(0) == 0);
    std::vector<float> bv = big.contiguous().to_vector();
    CHECK(std::count(bv.begin(), bv.end(), static_cast<float>(xv[2])) == 1000003);

    // An expression reads the expanded view.
    auto y = ft::test::random_tensor<float>({2, 3, 5}, dev, 117);
    std::vector<double> yv = ft::test::to_double(y);
    ft::Tensor<float, 3> z;
    CHECK(ft::test::launches_of(dev, [&] { z = e * y; }) == 1);
    for (std::size_t i = 0; i < want.size(); ++i) want[i] *= yv[i];
    ft::test::check_close(z, want);
  }
}

// ---------------------------------------------------------------- expressions over views

TEST_CASE("an expression reading views gives the values of the views") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto a = ft::test::random_tensor<float>({5, 7}, dev, 118);
    auto b = ft::test::random_tensor<float>({2, 4}, dev, 119);
    std::vector<double> av = ft::test::to_double(a), bv = ft::test::to_double(b);
    ft::Tensor<float, 2> y;
    CHECK(ft::test::launches_of(dev, [&] { y = ft::Tensor<float, 2>(a.transpose(0, 1) * 2.0f); }) == 1);
    CHECK(y.shape() == ft::Shape<2>{7, 5});
    std::vector<double> want;
    for (index_t i = 0; i < 7; ++i)
      for (index_t j = 0; j < 5; ++j) want.push_back(2.0 * av[static_cast<std::size_t>(j * 7 + i)]);
    ft::test::check_close(y, want);
    {
      ft::Tensor<float, 2> y2 = a.transpose(0, 1) * 2.0f;  // the statement as users write it
      ft::test::check_close(y2, want);
    }

    // A stepped slice plus a broadcast row selected from another tensor.
    ft::Tensor<float, 2> z = a.slice(1, 0, 7, 2) + b.select(0, 1);
    REQUIRE(z.shape() == ft::Shape<2>{5, 4});
    want.clear();
    for (index_t i = 0; i < 5; ++i)
      for (index_t j = 0; j < 4; ++j)
        want.push_back(av[static_cast<std::size_t>(i * 7 + 2 * j)] + bv[static_cast<std::size_t>(4 + j)]);
    ft::test::check_close(z, want);

    // Large strided operands on the parallel path.
    auto m = ft::randn<float>({997, 1009}, dev);
    auto n = ft::randn<float>({1009, 997}, dev);
    std::vector<double> mv = ft::test::to_double(m), nv = ft::test::to_double(n);
    ft::Tensor<float, 2> r;
    CHECK(ft::test::launches_of(dev, [&] { r = ft::Tensor<float, 2>(m.transpose(0, 1) - n * 0.5f); }) == 1);
    want.assign(static_cast<std::size_t>(1009 * 997), 0.0);
    for (index_t i = 0; i < 1009; ++i)
      for (index_t j = 0; j < 997; ++j)
        want[static_cast<std::size_t>(i * 997 + j)] =
            mv[static_cast<std::size_t>(j * 1009 + i)] - 0.5 * nv[static_cast<std::size_t>(i * 997 + j)];
    ft::test::check_close(r, want);
  }
}

// ---------------------------------------------------------------- writing into views

TEST_CASE("assigning a scalar to a slice writes only those elements") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto a = ft::test::random_tensor<float>({5, 7}, dev, 120);
    std::vector<double> b = ft::test::to_double(a);
    CHECK(ft::test::launches_of(dev, [&] { a.slice(0, 1, 3) = 0.0f; }) == 1);
    std::vector<double> got = ft::test::to_double(a);
    for (index_t i = 0; i < 5; ++i)
      for (index_t j = 0; j < 7; ++j)
        CHECK(got[static_cast<std::size_t>(i * 7 + j)] ==
              ((i == 1 || i == 2) ? 0.0 : b[static_cast<std::size_t>(i * 7 + j)]));

    // A stepped slice of a million elements.
    auto big = ft::test::random_tensor<float>({1000003}, dev, 121);
    std::vector<double> bb = ft::test::to_double(big);
    CHECK(ft::test::launches_of(dev, [&] { big.slice(0, 1, 1000003, 3) = -1.0f; }) == 1);
    std::vector<double> bg = ft::test::to_double(big);
    std::size_t bad = 0;
    for (std::size_t i = 0; i < bg.size(); ++i) bad += bg[i] != (i % 3 == 1 ? -1.0 : bb[i]);
    CHECK(bad == 0u);

    // An empty slice writes nothing and launches nothing.
    CHECK(ft::test::launches_of(dev, [&] { a.slice(0, 4, 2) = 5.0f; }) == 0);
    CHECK(ft::test::to_double(a) == got);
  }
}

TEST_CASE("assigning an expression to a strided slice writes only those elements") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto a = ft::test::random_tensor<float>({5, 7}, dev, 122);
    auto b = ft::test::random_tensor<float>({5, 2}, dev, 123);
    auto row = ft::test::random_tensor<float>({2}, dev, 124);
    std::vector<double> av = ft::test::to_double(a), bv = ft::test::to_double(b), rv = ft::test::to_double(row);
    CHECK(ft::test::launches_of(dev, [&] { a.slice(1, 0, 4, 2) = b * 2.0f; }) == 1);
    std::vector<double> got = ft::test::to_double(a);
    for (index_t i = 0; i < 5; ++i)
      for (index_t j = 0; j < 7; ++j) {
        double want = (j == 0 || j == 2) ? 2.0 * bv[static_cast<std::size_t>(i * 2 + j / 2)]
                                         : av[static_cast<std::size_t>(i * 7 + j)];
        CHECK(got[static_cast<std::size_t>(i * 7 + j)] == want);
      }
    // A broadcast row into a stepped slice of a transpose: a[1 + 3p][j] = row[p].
    a.transpose(0, 1).slice(1, 1, 5, 3) = row.unsqueeze(0) + 0.0f;
    got = ft::test::to_double(a);
    for (index_t i = 0; i < 5; ++i)
      for (index_t j = 0; j < 7; ++j)
        if (i == 1 || i == 4)
          CHECK(got[static_cast<std::size_t>(i * 7 + j)] == rv[static_cast<std::size_t>(i == 1 ? 0 : 1)]);
  }
}

// PyTorch's `a[:, 0:4:2] = b` writes b's values; here `view = tensor` of the same type binds
// the copy assignment operator, which only rebinds the temporary view and writes nothing.
TEST_CASE("assigning a tensor to a view writes its values into the view") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto a = ft::test::random_tensor<float>({5, 7}, dev, 125);
    auto b = ft::test::random_tensor<float>({5, 2}, dev, 126);
    auto r = ft::test::random_tensor<float>({7}, dev, 127);
    std::vector<double> av = ft::test::to_double(a), bv = ft::test::to_double(b), rv = ft::test::to_double(r);
    a.slice(1, 0, 4, 2) = b;
    a.select(0, 3) = r;
    std::vector<double> got = ft::test::to_double(a);
    for (index_t i = 0; i < 5; ++i)
      for (index_t j = 0; j < 7; ++j) {
        double want = av[static_cast<std::size_t>(i * 7 + j)];
        if (j == 0 || j == 2) want = bv[static_cast<std::size_t>(i * 2 + j / 2)];
        if (i == 3) want = rv[static_cast<std::size_t>(j)];
        CHECK(got[static_cast<std::size_t>(i * 7 + j)] == want);
      }
  }
}

TEST_CASE("writing through a view of a view reaches the base") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto a = ft::test::random_tensor<double>({4, 6, 5}, dev, 128);
    std::vector<double> b = ft::test::to_double(a);
    // v[p][q] = a[q][1 + 2p][3] for p < 3, q < 4.
    auto v = a.permute({2, 1, 0}).select(0, 3).slice(0, 1, 6, 2);
    CHECK(v.shape() == ft::Shape<2>{3, 4});
    std::vector<double> want;
    for (index_t p = 0; p < 3; ++p)
      for (index_t q = 0; q < 4; ++q) want.push_back(b[static_cast<std::size_t>((q * 6 + 1 + 2 * p) * 5 + 3)]);
    CHECK(ft::test::to_double(v) == want);
    CHECK(ft::test::to_double(v.contiguous()) == want);
    v = v * -1.0 + 0.25;
    for (index_t p = 0; p < 3; ++p)
      for (index_t q = 0; q < 4; ++q) {
        auto k = static_cast<std::size_t>((q * 6 + 1 + 2 * p) * 5 + 3);
        b[k] = -b[k] + 0.25;
      }
    ft::test::check_close(a, b, 1e-15, 0);
  }
}

TEST_CASE("an assignment reading its destination through another view behaves as if through a temporary") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto a = ft::test::random_tensor<float>({5, 7}, dev, 129);
    std::vector<double> b = ft::test::to_double(a);
    a.slice(0, 1, 5) = a.slice(0, 0, 4) + 0.0f;  // shift rows down by one
    std::vector<double> want = b;
    for (index_t i = 1; i < 5; ++i)
      for (index_t j = 0; j < 7; ++j)
        want[static_cast<std::size_t>(i * 7 + j)] = b[static_cast<std::size_t>((i - 1) * 7 + j)];
    CHECK(ft::test::to_double(a) == want);

    auto s = ft::test::random_tensor<float>({7, 7}, dev, 130);
    std::vector<double> sv = ft::test::to_double(s);
    s = s.transpose(0, 1) + s;
    want.assign(49, 0.0);
    for (index_t i = 0; i < 7; ++i)
      for (index_t j = 0; j < 7; ++j)
        want[static_cast<std::size_t>(i * 7 + j)] =
            sv[static_cast<std::size_t>(j * 7 + i)] + sv[static_cast<std::size_t>(i * 7 + j)];
    ft::test::check_close(s, want);
  }
}
