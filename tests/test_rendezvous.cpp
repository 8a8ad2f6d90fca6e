// Starting NCCL from torchrun's environment without MPI (distributed/rendezvous.hpp): the
// variables read and checked, and rank 0's bytes reaching every rank over TCP, in processes
// forked here (the NCCL communicator itself needs a GPU: ft_distributed_nccl_tests).
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "common.hpp"
#include "ft/distributed/process_group.hpp"

namespace dist = ft::distributed;

namespace {

// The environment of one test, restored on exit.
class Env {
 public:
  explicit Env(std::vector<std::pair<const char*, const char*>> vars) {
    for (const char* name : {"RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"}) {
      const char* v = std::getenv(name);
      saved_.push_back({name, v ? std::optional<std::string>(v) : std::nullopt});
      unsetenv(name);
    }
    for (const auto& [name, value] : vars) setenv(name, value, 1);
  }
  ~Env() {
    for (const auto& [name, value] : saved_) {
      if (value)
        setenv(name, value->c_str(), 1);
      else
        unsetenv(name);
    }
  }

 private:
  std::vector<std::pair<const char*, std::optional<std::string>>> saved_;
};

// A port nothing listens on now (the kernel's pick, released).
int free_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0);
  socklen_t len = sizeof(a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

dist::EnvWorld world_of(int rank, int world, int port) {
  dist::EnvWorld w;
  w.rank = rank;
  w.world = world;
  w.master_addr = "127.0.0.1";
  w.master_port = port;
  return w;
}

std::array<unsigned char, 128> payload(int salt) {  // an ncclUniqueId is 128 bytes
  std::array<unsigned char, 128> p{};
  for (std::size_t i = 0; i < p.size(); ++i) p[i] = static_cast<unsigned char>(i * 7 + static_cast<std::size_t>(salt));
  return p;
}

}  // namespace

TEST_CASE("torchrun's variables: read, defaulted and checked") {
  {
    Env env({});
    CHECK(!dist::env_world().has_value());  // not set: mpirun's world or a world of one
  }
  {
    Env env(
        {{"RANK", "2"}, {"WORLD_SIZE", "4"}, {"LOCAL_RANK", "0"}, {"MASTER_ADDR", "node7"}, {"MASTER_PORT", "29500"}});
    const auto w = dist::env_world();
    REQUIRE(w.has_value());
    CHECK(w->rank == 2);
    CHECK(w->world == 4);
    CHECK(w->local_rank == 0);
    CHECK(w->master_addr == "node7");
    CHECK(w->master_port == 29500);
  }
  {
    Env env({{"RANK", "0"}, {"WORLD_SIZE", "1"}});  // one rank needs no rendezvous address
    const auto w = dist::env_world();
    REQUIRE(w.has_value());
    CHECK(w->local_rank == 0);
  }
  auto error_of = [](std::vector<std::pair<const char*, const char*>> vars) {
    Env env(std::move(vars));
    try {
      (void)dist::env_world();
    } catch (const ft::Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  CHECK(error_of({{"RANK", "4"}, {"WORLD_SIZE", "4"}}).find("RANK=\"4\"") != std::string::npos);
  CHECK(error_of({{"RANK", "x"}, {"WORLD_SIZE", "2"}}).find("RANK") != std::string::npos);
  CHECK(error_of({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_PORT", "29500"}}).find("MASTER_ADDR") !=
        std::string::npos);
  CHECK(error_of({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}}).find("MASTER_PORT") != std::string::npos);
  CHECK(error_of({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "70000"}})
            .find("MASTER_PORT=\"70000\"") != std::string::npos);
}

TEST_CASE("init_method env:// is for the nccl backend; an unknown one is an error") {
  Env env({{"RANK", "0"}, {"WORLD_SIZE", "1"}});
  CHECK_THROWS_WITH_AS(dist::init_process_group({.backend = "mpi", .init_method = "env://"}),
                       doctest::Contains("\"nccl\" backend"), ft::Error);
  CHECK_THROWS_WITH_AS(dist::init_process_group({.backend = "mpi", .init_method = "tcp://h:1"}),
                       doctest::Contains("unknown init_method"), ft::Error);
  CHECK(!dist::is_initialized());
}

TEST_CASE("rank 0's bytes reach every rank, exchange after exchange, in separate processes") {
  const int port = free_port(), world = 4;
  std::vector<pid_t> children;
  for (int rank = 1; rank < world; ++rank) {
    const pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {  // a rank: two exchanges and a barrier-like third, then its verdict as exit status
      bool ok = true;
      try {
        ft::distributed::detail::Rendezvous r(world_of(rank, world, port), std::chrono::seconds(20));
        for (int salt : {1, 2}) {
          std::array<unsigned char, 128> got{};
          r.share(got.data(), got.size());
          ok = ok && got == payload(salt);
        }
        char token = 0;
        r.share(&token, 1);
        ok = ok && token == 'x';
      } catch (...) {
        ok = false;
      }
      _exit(ok ? 0 : 1);
    }
    children.push_back(pid);
  }
  {
    ft::distributed::detail::Rendezvous r(world_of(0, world, port), std::chrono::seconds(20));
    for (int salt : {1, 2}) {
      auto mine = payload(salt);
      r.share(mine.data(), mine.size());
      CHECK(mine == payload(salt));
    }
    char token = 'x';
    r.share(&token, 1);
  }
  for (pid_t pid : children) {
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
  }
}

TEST_CASE("a rank that cannot reach rank 0, or asks out of order, gets an error naming the address") {
  const int port = free_port();
  ft::distributed::detail::Rendezvous lone(world_of(1, 2, port), std::chrono::milliseconds(300));
  std::array<unsigned char, 128> id{};
  const auto t0 = std::chrono::steady_clock::now();
  const std::string where = "could not reach rank 0 at 127.0.0.1:" + std::to_string(port);
  CHECK_THROWS_WITH_AS(lone.share(id.data(), id.size()), doctest::Contains(where.c_str()), ft::Error);
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(5));

  // rank 0 at its first exchange; a peer that says it is at its second
  ft::distributed::detail::Rendezvous root(world_of(0, 2, port), std::chrono::seconds(10));
  std::thread peer([port] {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<std::uint16_t>(port));
    if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0) {
      const std::uint32_t hello[3] = {0x66747264, 1, 2};
      (void)send(fd, hello, sizeof(hello), 0);
      char b;
      (void)recv(fd, &b, 1, 0);
    }
    close(fd);
  });
  CHECK_THROWS_WITH_AS(root.share(id.data(), id.size()), doctest::Contains("in a different order"), ft::Error);
  peer.join();
}
