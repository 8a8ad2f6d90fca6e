// Starting NCCL without MPI, from the environment torchrun (or any launcher) sets: RANK,
// WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT. NCCL's own bootstrap needs one thing from
// outside, rank 0's ncclUniqueId on every rank; this is that exchange and nothing more: rank 0
// listens on MASTER_PORT, every other rank connects to MASTER_ADDR:MASTER_PORT (retrying until
// rank 0 is up, within the timeout) and receives rank 0's bytes. Each exchange is numbered, so
// ranks that ask in a different order are an error, not a wrong communicator. POSIX sockets;
// no MPI, no CUDA.
#pragma once

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "ft/core/config.hpp"
#include "ft/core/error.hpp"

namespace ft::inline FT_ABI::distributed {

// The world a launcher describes in the environment (torchrun's variables).
struct EnvWorld {
  int rank = 0, world = 1, local_rank = 0;
  std::string master_addr;
  int master_port = 0;
};

namespace detail {

inline int env_int(const char* name, const char* text, int lo, int hi) {
  char* end = nullptr;
  errno = 0;
  const long v = std::strtol(text, &end, 10);
  check(errno == 0 && end != text && *end == '\0' && v >= lo && v <= hi, "init_process_group", "the environment's ",
        name, "=\"", text, "\" is not an integer in [", lo, ", ", hi, "]");
  return static_cast<int>(v);
}

}  // namespace detail

// The environment's world, or nothing when RANK and WORLD_SIZE are not both set. A set but
// malformed variable, or MASTER_ADDR / MASTER_PORT missing for a world of several ranks, is an
// ft::Error naming it.
inline std::optional<EnvWorld> env_world() {
  const char* rank = std::getenv("RANK");
  const char* world = std::getenv("WORLD_SIZE");
  if (!rank || !world) return std::nullopt;
  EnvWorld w;
  w.world = detail::env_int("WORLD_SIZE", world, 1, 1 << 20);
  w.rank = detail::env_int("RANK", rank, 0, w.world - 1);
  const char* local = std::getenv("LOCAL_RANK");
  w.local_rank = local ? detail::env_int("LOCAL_RANK", local, 0, 1 << 20) : w.rank;
  const char* addr = std::getenv("MASTER_ADDR");
  const char* port = std::getenv("MASTER_PORT");
  if (w.world > 1) {
    check(addr && *addr, "init_process_group", "RANK and WORLD_SIZE are set but MASTER_ADDR is not (rank 0's host)");
    check(port && *port, "init_process_group", "RANK and WORLD_SIZE are set but MASTER_PORT is not (a free port)");
  }
  w.master_addr = addr ? addr : "127.0.0.1";
  w.master_port = port ? detail::env_int("MASTER_PORT", port, 1, 65535) : 0;
  return w;
}

namespace detail {

// rank 0 shares `size` bytes with the other ranks; see the file's comment.
class Rendezvous {
 public:
  Rendezvous(const EnvWorld& w, std::chrono::milliseconds timeout) : w_(w), timeout_(timeout) {
    if (w_.rank != 0 || w_.world == 1) return;
    listener_ = ::socket(AF_INET6, SOCK_STREAM, 0);
    bool v6 = listener_ >= 0;
    if (!v6) listener_ = ::socket(AF_INET, SOCK_STREAM, 0);
    if (listener_ < 0) fail_errno("socket");
    const int one = 1, zero = 0;
    ::setsockopt(listener_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    int rc;
    if (v6) {  // every interface, IPv4 too
      ::setsockopt(listener_, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
      sockaddr_in6 a{};
      a.sin6_family = AF_INET6;
      a.sin6_addr = in6addr_any;
      a.sin6_port = htons(static_cast<std::uint16_t>(w_.master_port));
      rc = ::bind(listener_, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    } else {
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_addr.s_addr = htonl(INADDR_ANY);
      a.sin_port = htons(static_cast<std::uint16_t>(w_.master_port));
      rc = ::bind(listener_, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    }
    if (rc != 0) fail_errno("bind to port " + std::to_string(w_.master_port));
    if (::listen(listener_, 128) != 0) fail_errno("listen");
  }
  ~Rendezvous() {
    if (listener_ >= 0) ::close(listener_);
  }
  Rendezvous(const Rendezvous&) = delete;
  Rendezvous& operator=(const Rendezvous&) = delete;

  // Rank 0's `size` bytes at `data` end up at `data` on every rank. Every rank calls it, in the
  // same order; rank 0 replies once every rank has asked, so no rank returns before all have
  // called it (a barrier too).
  void share(void* data, std::size_t size) {
    const std::uint32_t seq = ++seq_;
    if (w_.world == 1) return;
    const auto deadline = std::chrono::steady_clock::now() + timeout_;
    if (w_.rank == 0) {  // every other rank's request first, then the replies: a barrier
      std::vector<Socket> peers;
      peers.reserve(static_cast<std::size_t>(w_.world - 1));
      while (static_cast<int>(peers.size()) < w_.world - 1) {
        wait_readable(listener_, deadline, "a connection from every other rank");
        const int c = ::accept(listener_, nullptr, nullptr);
        if (c < 0) fail_errno("accept");
        peers.push_back(Socket{c});
        std::uint32_t hello[3];
        read_all(c, hello, sizeof(hello), deadline);
        if (hello[0] != kMagic || hello[2] != seq)
          fail("init_process_group", "rank ", hello[1], " asked for exchange ", hello[2], " but rank 0 is at exchange ",
               seq, ": the ranks create their NCCL communicators in a different order (or another program uses ",
               where(), ")");
      }
      for (const Socket& peer : peers) write_all(peer.fd, data, size);
      return;
    }
    Socket s{connect_retrying(deadline)};
    const std::uint32_t hello[3] = {kMagic, static_cast<std::uint32_t>(w_.rank), seq};
    write_all(s.fd, hello, sizeof(hello));
    read_all(s.fd, data, size, deadline);
  }

 private:
  static constexpr std::uint32_t kMagic = 0x66747264;  // "ftrd"
  struct Socket {
    int fd = -1;
    explicit Socket(int f) : fd(f) {}
    Socket(Socket&& o) noexcept : fd(o.fd) { o.fd = -1; }
    Socket(const Socket&) = delete;
    Socket& operator=(const Socket&) = delete;
    Socket& operator=(Socket&&) = delete;
    ~Socket() {
      if (fd >= 0) ::close(fd);
    }
  };

  std::string where() const { return w_.master_addr + ":" + std::to_string(w_.master_port); }

  [[noreturn]] void fail_errno(const std::string& what) const {
    fail("init_process_group", what, " for the rendezvous at ", where(),
         " (MASTER_ADDR:MASTER_PORT) failed: ", std::strerror(errno));
  }

  void wait_readable(int fd, std::chrono::steady_clock::time_point deadline, const char* what) const {
    for (;;) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
      if (left <= 0)
        fail("init_process_group", "rank ", w_.rank, " of ", w_.world, " waited ", timeout_.count(), " ms for ", what,
             " at ", where(), " (MASTER_ADDR:MASTER_PORT); a rank did not start, or another address or port");
      pollfd p{fd, POLLIN, 0};
      const int rc = ::poll(&p, 1, static_cast<int>(left < 1000 ? left : 1000));
      if (rc > 0) return;
      if (rc < 0 && errno != EINTR) fail_errno("poll");
    }
  }

  void read_all(int fd, void* data, std::size_t size, std::chrono::steady_clock::time_point deadline) const {
    auto* p = static_cast<char*>(data);
    while (size > 0) {
      wait_readable(fd, deadline, "rank 0's reply");
      const ssize_t n = ::recv(fd, p, size, 0);
      if (n == 0) fail("init_process_group", "the rendezvous at ", where(), " closed the connection early");
      if (n < 0) {
        if (errno == EINTR) continue;
        fail_errno("recv");
      }
      p += n;
      size -= static_cast<std::size_t>(n);
    }
  }

  void write_all(int fd, const void* data, std::size_t size) const {
    const auto* p = static_cast<const char*>(data);
    while (size > 0) {
      const ssize_t n = ::send(fd, p, size, MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR) continue;
        fail_errno("send");
      }
      p += n;
      size -= static_cast<std::size_t>(n);
    }
  }

  // Connects to rank 0, retrying every 50 ms while it is not listening yet.
  int connect_retrying(std::chrono::steady_clock::time_point deadline) const {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    const std::string port = std::to_string(w_.master_port);
    const int gai = ::getaddrinfo(w_.master_addr.c_str(), port.c_str(), &hints, &found);
    if (gai != 0)
      fail("init_process_group", "MASTER_ADDR \"", w_.master_addr, "\" does not resolve: ", ::gai_strerror(gai));
    for (;;) {
      for (addrinfo* a = found; a; a = a->ai_next) {
        const int fd = ::socket(a->ai_family, a->ai_socktype, a->ai_protocol);
        if (fd < 0) continue;
        if (::connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
          const int one = 1;
          ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
          ::freeaddrinfo(found);
          return fd;
        }
        ::close(fd);
      }
      if (std::chrono::steady_clock::now() >= deadline) {
        ::freeaddrinfo(found);
        fail("init_process_group", "rank ", w_.rank, " of ", w_.world, " could not reach rank 0 at ", where(),
             " (MASTER_ADDR:MASTER_PORT) within ", timeout_.count(), " ms: ", std::strerror(errno));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }

  EnvWorld w_;
  std::chrono::milliseconds timeout_;
  int listener_ = -1;
  std::uint32_t seq_ = 0;
};

}  // namespace detail
}  // namespace ft::inline FT_ABI::distributed
