// Specifications of the library's runtime errors: each is an ft::Error whose message names
// the op and shows the shapes, sizes or devices involved, thrown before anything launches.
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "common.hpp"

using ft::index_t;
using ft::test::error_of;

namespace {

// Checks that `msg` contains every one of `parts`.
void check_mentions(const std::string& msg, std::initializer_list<const char*> parts) {
  for (const char* p : parts) {
    INFO("message: " << msg);
    CHECK_MESSAGE(msg.find(p) != std::string::npos, "the message lacks \"" << std::string(p) << "\"");
  }
}

}  // namespace

TEST_CASE("ft::Error is a std::runtime_error") {
  static_assert(std::is_base_of_v<std::runtime_error, ft::Error>);
  CHECK_THROWS_AS(ft::fail("op", "what ", 1), ft::Error);
  CHECK(error_of([] { ft::fail("op", "what ", 1, " and ", 2.5); }) == "op: what 1 and 2.5");
}

TEST_CASE("an impossible broadcast throws naming the op, both shapes and the dim, before any launch") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto a = ft::test::random_tensor<float>({3, 4}, dev, 201);
    auto b = ft::test::random_tensor<float>({5, 4}, dev, 202);
    CHECK_THROWS_AS((void)(a + b), ft::Error);
    std::int64_t n = ft::test::launches_of(
        dev, [&] { CHECK(error_of([&] { (void)(a + b); }) == "add: cannot broadcast [3, 4] with [5, 4] at dim 0"); });
    CHECK(n == 0);
    auto c = ft::test::random_tensor<float>({2, 3, 4}, dev, 203);
    CHECK(error_of([&] { (void)(c * b); }) == "mul: cannot broadcast [2, 3, 4] with [5, 4] at dim 1");
    auto d = ft::test::random_tensor<float>({7}, dev, 204);
    CHECK(error_of([&] { (void)(a - d); }) == "sub: cannot broadcast [3, 4] with [7] at dim 1");
    // Inside a larger expression the failing node still names itself.
    check_mentions(error_of([&] { (void)(a * 2.0f + ft::exp(b)); }), {"add", "[3, 4]", "[5, 4]"});
  }
}

TEST_CASE("writing an expression of the wrong shape into a tensor throws and leaves it unchanged") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto t = ft::test::random_tensor<float>({2, 4}, dev, 205);
    auto a = ft::test::random_tensor<float>({3, 4}, dev, 206);
    std::vector<double> before = ft::test::to_double(t);
    CHECK_THROWS_AS(t = a * 2.0f, ft::Error);
    std::int64_t n = ft::test::launches_of(dev, [&] {
      CHECK(error_of([&] { t = a * 2.0f; }) ==
            "assign: cannot write an expression of shape [3, 4] into a tensor of shape [2, 4] (dim 0)");
    });
    CHECK(n == 0);
    CHECK(ft::test::to_double(t) == before);
    // Into a view, and from a lower-rank expression.
    auto row = ft::test::random_tensor<float>({3}, dev, 207);
    check_mentions(error_of([&] { t.slice(1, 0, 2) = row + 1.0f; }), {"assign", "[3]", "[2, 2]"});
    // A tensor of another dtype is an expression too.
    auto d = ft::test::random_tensor<double>({4, 2}, dev, 208);
    check_mentions(error_of([&] { t = d; }), {"assign", "[4, 2]", "[2, 4]"});
    CHECK(ft::test::to_double(t) == before);
  }
}

TEST_CASE("assigning a scalar to an undefined tensor throws") {
  ft::Tensor<float, 2> u;
  CHECK_THROWS_AS(u = 1.0f, ft::Error);
  CHECK(error_of([&] { u = 1.0f; }) == "assign: cannot assign a scalar to an undefined tensor (its shape is unknown)");
}

TEST_CASE("a negative extent in a shape throws") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    CHECK_THROWS_AS(ft::empty<float>({2, -1}, dev), ft::Error);
    CHECK(error_of([&] { (void)ft::empty<float>({2, -1}, dev); }) == "empty: negative extent -1 in shape [2, -1]");
    check_mentions(error_of([&] { (void)ft::zeros<float>({-3}, dev); }), {"negative extent -3", "[-3]"});
  }
  CHECK(error_of([] { (void)ft::Shape<2>{1, 2, 3}; }) == "Shape: expected 2 extents, got 3");
}

TEST_CASE("reshape to a shape with another number of elements throws") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto a = ft::test::random_tensor<float>({4, 6}, dev, 209);
    CHECK_THROWS_AS(a.reshape({5, 5}), ft::Error);
    CHECK(error_of([&] {
            (void)a.reshape({5, 5});
          }) == "reshape: shape [5, 5] is invalid for input of shape [4, 6] (24 elements)");
    CHECK(error_of([&] { (void)a.reshape({-1, 5}); }) == "reshape: shape [-1, 5] is invalid for input of size 24");
    check_mentions(error_of([&] { (void)a.reshape({-1, 0}); }), {"reshape", "[-1, 0]", "24"});
    CHECK(error_of([&] { (void)a.reshape({-2, -12}); }) == "reshape: invalid size -2 in [-2, -12]");
    check_mentions(error_of([&] { (void)a.transpose(0, 1).reshape({25}); }), {"reshape", "[25]", "[6, 4]"});
    check_mentions(error_of([&] { (void)a.reshape({5, 5}).flatten(); }), {"reshape"});
  }
}

TEST_CASE("reshape with two -1s throws") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto a = ft::test::random_tensor<float>({4, 6}, dev, 210);
    CHECK_THROWS_AS(a.reshape({-1, -1}), ft::Error);
    CHECK(error_of([&] { (void)a.reshape({-1, -1}); }) == "reshape: only one dimension can be -1 in [-1, -1]");
    check_mentions(error_of([&] { (void)a.reshape({2, -1, 3, -1}); }), {"reshape", "-1", "[2, -1, 3, -1]"});
  }
}

TEST_CASE("expand of a dim whose size is not 1 throws") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto a = ft::test::random_tensor<float>({3, 4}, dev, 211);
    CHECK_THROWS_AS(a.expand({3, 5}), ft::Error);
    CHECK(error_of([&] {
            (void)a.expand({3, 5});
          }) == "expand: cannot expand [3, 4] to [3, 5]: dimension 1 has size 4, not 1");
    check_mentions(error_of([&] { (void)a.expand({2, 6, 4}); }), {"expand", "[3, 4]", "[2, 6, 4]", "dimension 0"});
    check_mentions(error_of([&] { (void)a.expand({-1, 3, 4}); }), {"expand", "leading", "-1"});
  }
}

TEST_CASE("squeeze of a dim whose size is not 1 throws") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto a = ft::test::random_tensor<float>({3, 4}, dev, 212);
    CHECK_THROWS_AS(a.squeeze(1), ft::Error);
    check_mentions(error_of([&] { (void)a.squeeze(1); }), {"squeeze: dimension 1 of [3, 4] has size 4, not 1"});
    check_mentions(error_of([&] { (void)a.squeeze(-2); }), {"squeeze", "[3, 4]", "size 3"});
  }
}

TEST_CASE("slice with a step that is not positive throws") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto a = ft::test::random_tensor<float>({3, 7}, dev, 213);
    CHECK_THROWS_AS(a.slice(1, 0, 7, 0), ft::Error);
    CHECK(error_of([&] { (void)a.slice(1, 0, 7, 0); }) == "slice: step must be positive, got 0");
    CHECK(error_of([&] { (void)a.slice(1, 7, 0, -1); }) == "slice: step must be positive, got -1");
  }
}

TEST_CASE("a dim out of range throws for transpose, permute, size, select, slice, unsqueeze and squeeze") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto a = ft::test::random_tensor<float>({3, 4}, dev, 214);
    CHECK_THROWS_AS(a.transpose(0, 2), ft::Error);
    CHECK(error_of([&] { (void)a.transpose(0, 2); }) ==
          "transpose: dimension 2 is out of range for a tensor of rank 2");
    CHECK(error_of([&] { (void)a.transpose(-3, 0); }) ==
          "transpose: dimension -3 is out of range for a tensor of rank 2");
    CHECK(error_of([&] { (void)a.permute({0, 2}); }) == "permute: dimension 2 is out of range for a tensor of rank 2");
    CHECK(error_of([&] { (void)a.size(2); }) == "size: dimension 2 is out of range for a tensor of rank 2");
    CHECK(error_of([&] { (void)a.size(-3); }) == "size: dimension -3 is out of range for a tensor of rank 2");
    CHECK(error_of([&] { (void)a.stride(5); }) == "stride: dimension 5 is out of range for a tensor of rank 2");
    CHECK(error_of([&] { (void)a.select(2, 0); }) == "select: dimension 2 is out of range for a tensor of rank 2");
    CHECK(error_of([&] { (void)a.slice(-3, 0, 1); }) == "slice: dimension -3 is out of range for a tensor of rank 2");
    check_mentions(error_of([&] { (void)a.unsqueeze(3); }), {"unsqueeze", "dimension 3", "out of range"});
    check_mentions(error_of([&] { (void)a.unsqueeze(-4); }), {"unsqueeze", "dimension -4", "out of range"});
    check_mentions(error_of([&] { (void)a.squeeze(2); }), {"squeeze", "dimension 2", "out of range"});
    // An index out of range along a valid dim.
    CHECK_THROWS_AS(a.select(0, 3), ft::Error);
    CHECK(error_of([&] { (void)a.select(0, 3); }) == "select: index 3 is out of range for dimension 0 of [3, 4]");
    CHECK(error_of([&] { (void)a.select(1, -5); }) == "select: index -5 is out of range for dimension 1 of [3, 4]");
  }
}

// torch.tensor(1.).size(0) raises "dimension specified as 0 but tensor has no dimensions".
TEST_CASE("size of a rank-0 tensor throws for any dim") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto s = ft::zeros<float>(ft::Shape<0>{}, dev);
    CHECK_THROWS_AS((void)s.size(0), ft::Error);
    CHECK_THROWS_AS((void)s.size(-1), ft::Error);
    check_mentions(error_of([&] { (void)s.size(0); }), {"size", "rank 0"});
  }
}

TEST_CASE("permute with a repeated dim throws") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto a = ft::test::random_tensor<float>({2, 3, 4}, dev, 215);
    CHECK_THROWS_AS(a.permute({0, 0, 1}), ft::Error);
    CHECK(error_of([&] {
            (void)a.permute({0, 0, 1});
          }) == "permute: dimension 0 repeats in the permutation of [2, 3, 4]");
    check_mentions(error_of([&] { (void)a.permute({2, 1, -1}); }), {"permute", "repeats", "[2, 3, 4]"});
  }
}

TEST_CASE("item on a tensor without exactly one element throws") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto a = ft::test::random_tensor<float>({2, 3}, dev, 216);
    CHECK_THROWS_AS(a.item(), ft::Error);
    CHECK(error_of([&] { (void)a.item(); }) ==
          "item: a tensor of shape [2, 3] has 6 elements; item() needs exactly one");
    CHECK(error_of([&] { (void)ft::zeros<std::int64_t>({0}, dev).item(); }) ==
          "item: a tensor of shape [0] has 0 elements; item() needs exactly one");
  }
}

TEST_CASE("from_vector with the wrong number of values throws") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    CHECK_THROWS_AS(ft::from_vector<float>({1, 2, 3, 4, 5}, {2, 3}, dev), ft::Error);
    CHECK(error_of([&] {
            (void)ft::from_vector<float>({1, 2, 3, 4, 5}, {2, 3}, dev);
          }) == "from_vector: got 5 values for shape [2, 3] (6 elements)");
    CHECK(error_of([&] { (void)ft::from_vector<std::int32_t>({1}, {0}, dev); }) ==
          "from_vector: got 1 values for shape [0] (0 elements)");
  }
}

TEST_CASE("AnyTensor::as with the wrong dtype or rank throws naming both types") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    ft::AnyTensor any = ft::test::random_tensor<float>({3, 4}, dev, 217);
    CHECK_THROWS_AS((any.as<std::int64_t, 2>()), ft::Error);
    CHECK(error_of([&] { (void)any.as<std::int64_t, 2>(); }) ==
          "AnyTensor::as: holds float32 of rank 2 and shape [3, 4], requested int64 of rank 2");
    CHECK(error_of([&] { (void)any.as<float, 3>(); }) ==
          "AnyTensor::as: holds float32 of rank 2 and shape [3, 4], requested float32 of rank 3");
    check_mentions(error_of([&] { (void)any.as<bool, 0>(); }), {"float32 of rank 2", "bool of rank 0"});
    CHECK(error_of([] { (void)ft::AnyTensor().as<float, 1>(); }) == "AnyTensor::as: the tensor is undefined");
  }
}

TEST_CASE("moving to CUDA without a usable GPU throws") {
  if (!ft::test::has_gpu()) {
    auto a = ft::test::random_tensor<float>({3}, ft::kCPU, 218);
    CHECK_THROWS_AS(a.to(ft::kCUDA), ft::Error);
    std::string msg = error_of([&] { (void)a.to(ft::kCUDA); });
    check_mentions(msg, {"to: device cuda:0 requested"});
    if constexpr (FT_CUDA_ENABLED)
      check_mentions(msg, {"no CUDA device is available"});
    else
      check_mentions(msg, {"compiled without CUDA"});
    // Factories on a missing GPU are ft::Errors too.
    CHECK_THROWS_AS(ft::zeros<float>({3}, ft::kCUDA), ft::Error);
    CHECK_THROWS_AS(ft::randn<float>({3}, ft::kCUDA), ft::Error);
    CHECK_THROWS_AS(ft::arange<float>(0.0f, 3.0f, 1.0f, ft::kCUDA), ft::Error);
    CHECK_THROWS_AS(ft::from_vector<float>({1, 2}, {2}, ft::kCUDA), ft::Error);
  } else {
    auto a = ft::test::random_tensor<float>({3}, ft::kCPU, 218);
    int n = ft::cuda::device_count();
    check_mentions(error_of([&] { (void)a.to(ft::Device(ft::kCUDA, n)); }), {"to", "only", "CUDA device(s) exist"});
  }
}

FT_GPU_TEST_CASE("operands on different devices throw before any launch") {
  auto a = ft::test::random_tensor<float>({3, 4}, ft::kCPU, 219);
  auto b = ft::test::random_tensor<float>({3, 4}, ft::kCUDA, 220);
  CHECK_THROWS_AS((void)(a + b), ft::Error);
  CHECK(error_of([&] { (void)(a + b); }) == "add: expected all operands on the same device, got cpu and cuda:0");
  check_mentions(error_of([&] { a = b * 2.0f; }), {"assign", "cuda:0", "cpu"});
}

TEST_CASE("gelu with an unknown approximate throws") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    auto a = ft::test::random_tensor<float>({7}, dev, 222);
    CHECK_THROWS_AS((void)ft::gelu(a, "fast"), ft::Error);
    CHECK(error_of([&] { (void)ft::gelu(a, "fast"); }) ==
          "gelu: approximate must be \"none\" or \"tanh\", got \"fast\"");
    CHECK_NOTHROW((void)ft::gelu(a, "tanh"));
    CHECK_NOTHROW((void)ft::gelu(a, "none"));
  }
}

TEST_CASE("randint with high not above low throws") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    CHECK_THROWS_AS(ft::randint<std::int64_t>(5, 3, {7}, dev), ft::Error);
    CHECK(error_of([&] { (void)ft::randint<std::int64_t>(5, 3, {7}, dev); }) ==
          "randint: high (3) must be greater than low (5)");
    check_mentions(error_of([&] { (void)ft::randint<std::int32_t>(4, 4, {2, 3}, dev); }), {"randint", "(4)"});
  }
}

TEST_CASE("arange with a zero step or a step of the wrong sign throws") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    CHECK_THROWS_AS(ft::arange<float>(0.0f, 1.0f, 0.0f, dev), ft::Error);
    CHECK(error_of([&] { (void)ft::arange<float>(0.0f, 1.0f, 0.0f, dev); }) == "arange: step must be nonzero");
    CHECK(error_of([&] { (void)ft::arange<float>(0.0f, 1.0f, -1.0f, dev); }) ==
          "arange: the sign of step (-1) cannot reach end (1) from start (0)");
    check_mentions(error_of([&] { (void)ft::arange<std::int64_t>(10, 0, 3, dev); }), {"arange", "step (3)"});
  }
}

// torch.arange(0, -2, 5) raises "upper bound and larger bound inconsistent with step sign";
// the integer division (end - start) / step truncates -2 / 5 to 0 and lets it through.
TEST_CASE("arange with integer bounds less than one step apart in the wrong direction throws") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    CHECK_THROWS_AS(ft::arange<std::int64_t>(0, -2, 5, dev), ft::Error);
    CHECK_THROWS_AS(ft::arange<std::int32_t>(0, 2, -5, dev), ft::Error);
  }
}

TEST_CASE("linspace with a negative number of steps throws") {
  for (ft::Device dev : ft::test::devices()) {
    CAPTURE(dev);
    CHECK_THROWS_AS(ft::linspace<float>(0.0, 1.0, -1, dev), ft::Error);
    CHECK(error_of([&] { (void)ft::linspace<float>(0.0, 1.0, -1, dev); }) ==
          "linspace: number of steps must be non-negative, got -1");
  }
}
