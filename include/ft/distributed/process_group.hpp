// Collectives across processes (torch.distributed): one process group a program, over MPI for
// CPU tensors (and as the launcher: `mpirun -np N prog`) and over NCCL for CUDA tensors.
//
//   ft::distributed::init_process_group({.backend = "mpi"});
//   ft::distributed::all_reduce(grad, ft::distributed::ReduceOp::Avg);
//   ft::distributed::destroy_process_group();
//
// - Every collective takes any tensor, contiguous or not (a strided one goes through a contiguous
//   copy and is written back), and returns a Work; the blocking form waits before returning,
//   `{.async_op = true}` returns at once and `Work::wait()` completes it (PyTorch's async_op).
// - CPU collectives are MPI's blocking ones (its tuned algorithms: its non-blocking ones were
//   1.4–2.5 times slower at ≥ 1 MB here). A blocking call runs on the calling thread; an async
//   one on the group's communication thread, which runs the queued collectives in order while
//   the caller computes (DistributedDataParallel's overlap); a blocking call made while async
//   ones are queued goes behind them, so every rank issues its collectives in program order.
// - Reductions use the engine's own algorithm, fixed for a given size and world: the result is
//   the same bits on every rank and run to run (tested).
// - Before each collective the ranks join: op, dtype, shape and root go through one small
//   non-blocking MPI_Iallreduce (max of the values and of their negations), polled with a
//   timeout. So a rank that passes another shape is an ft::Error on every rank naming each
//   rank's shape (not a hang or a silent truncation), and a rank that does not come is an
//   ft::Error after InitOptions::timeout (a rank died, or called another collective).
// - CUDA tensors (backend "nccl"): NCCL's collectives on the tensor's device's current stream,
//   ordered with the kernels around them and no host synchronisation; the NCCL communicator is
//   made at the first CUDA collective, its unique id broadcast over MPI, or, in a group started
//   from torchrun's environment (InitOptions::init_method "env://"), handed over by rank 0's
//   rendezvous (distributed/rendezvous.hpp).
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "ft/core/any_tensor.hpp"
#include "ft/core/config.hpp"
#include "ft/core/error.hpp"
#include "ft/core/tensor.hpp"
#include "ft/cuda/runtime.hpp"
#include "ft/distributed/rendezvous.hpp"
#include "ft/exec/assign.hpp"
#include "ft/ops/elementwise.hpp"

// Set by the ft::distributed CMake target (MPI found) and ft::distributed_cuda (NCCL found).
#ifndef FT_HAVE_MPI
#define FT_HAVE_MPI 0
#endif
#ifndef FT_HAVE_NCCL
#define FT_HAVE_NCCL 0
#endif

#if FT_HAVE_MPI
// the C API only (Open MPI's and MPICH's deprecated C++ bindings are not used)
#ifndef OMPI_SKIP_MPICXX
#define OMPI_SKIP_MPICXX 1
#endif
#ifndef MPICH_SKIP_MPICXX
#define MPICH_SKIP_MPICXX 1
#endif
#include <mpi.h>
#endif
#if FT_HAVE_NCCL && FT_CUDA_ENABLED
#include <nccl.h>
#endif

namespace ft::inline FT_ABI::distributed {

// torch.distributed.ReduceOp's SUM, AVG, MAX, MIN. AVG is the sum divided by the world size
// (floating tensors only, as in PyTorch).
enum class ReduceOp { Sum, Avg, Max, Min };

inline const char* to_string(ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum:
      return "sum";
    case ReduceOp::Avg:
      return "avg";
    case ReduceOp::Max:
      return "max";
    case ReduceOp::Min:
      return "min";
  }
  return "?";
}

struct InitOptions {
  // "mpi": every tensor over MPI. "nccl": CUDA tensors over NCCL, CPU tensors over MPI.
  std::string backend = "mpi";
  // The longest a collective waits for the other ranks before it is an ft::Error (PyTorch's
  // default: 30 minutes).
  std::chrono::milliseconds timeout = std::chrono::minutes(30);
  // How the ranks find each other. "mpi": the processes mpirun started (MPI_COMM_WORLD).
  // "env://": torchrun's environment (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT; see
  // distributed/rendezvous.hpp), for the "nccl" backend without MPI: NCCL's id goes from rank 0
  // over one TCP connection a rank, and every collective is NCCL's (CUDA tensors only). Empty:
  // "env://" for "nccl" when RANK and WORLD_SIZE are set and mpirun did not start the process,
  // else "mpi".
  std::string init_method;
};

struct CollectiveOptions {
  bool async_op = false;                 // return before the collective completes; Work::wait() completes it
  std::chrono::milliseconds timeout{0};  // 0: the group's (InitOptions::timeout)
  // The caller knows that every rank passes the same shape (DistributedDataParallel's buckets,
  // laid out from parameters checked at its construction): no agreement step.
  bool agreed = false;
};

// Whether this build has the engines (CMake found them).
inline constexpr bool has_mpi() { return FT_HAVE_MPI != 0; }
inline constexpr bool has_nccl() { return FT_HAVE_NCCL != 0 && FT_CUDA_ENABLED != 0; }

namespace detail {

// A collective: `body` makes the engine's blocking calls (on the caller's thread or the
// communication thread), `finish` runs on the waiting thread after it (a strided tensor written
// back, Avg's division). The closures own the buffers they use.
struct Task {
  std::function<void()> body;
  std::function<void()> finish;
  std::mutex m;
  std::condition_variable cv;
  bool done = false;      // body has run (or thrown)
  bool finished = false;  // finish has run
  std::exception_ptr error;
};

}  // namespace detail

// torch.distributed's Work: the handle of a collective started with async_op.
class Work {
 public:
  Work() = default;
  Work(std::shared_ptr<detail::Task> t, const char* op, std::chrono::milliseconds timeout)
      : t_(std::move(t)), op_(op), timeout_(timeout) {}
  // Completes the collective (on a GPU it is already ordered on the stream: nothing to wait
  // for on the host). Throws ft::Error when the other ranks do not join within the timeout,
  // or the collective's own error.
  void wait() {
    if (!t_) return;
    {
      std::unique_lock lock(t_->m);
      if (!t_->cv.wait_for(lock, timeout_, [&] { return t_->done; }))
        fail(op_, "timed out after ", timeout_.count(),
             " ms waiting for the other ranks (a rank failed, or called another collective)");
      if (t_->finished) return;
      t_->finished = true;
    }
    if (t_->error) std::rethrow_exception(t_->error);
    if (t_->finish) t_->finish();
  }
  bool is_completed() {
    if (!t_) return true;
    {
      std::lock_guard lock(t_->m);
      if (!t_->done) return false;
    }
    wait();
    return true;
  }

 private:
  std::shared_ptr<detail::Task> t_;
  const char* op_ = "wait";
  std::chrono::milliseconds timeout_{};
};

namespace detail {

// The communication thread: runs queued collectives in order. Whoever calls the engine holds
// `engine` (MPI is initialised MPI_THREAD_SERIALIZED: one thread at a time).
class Worker {
 public:
  ~Worker() { stop(); }
  void submit(std::shared_ptr<Task> t) {
    {
      std::lock_guard lock(m_);
      if (!thread_.joinable()) thread_ = std::thread([this] { loop(); });
      q_.push_back(std::move(t));
      ++pending_;
    }
    cv_.notify_one();
  }
  // No collective queued or running: a blocking one may run on the caller's thread.
  bool idle() const { return pending_.load() == 0; }
  std::mutex& engine() { return engine_; }
  // Waits up to `timeout` for the queue to drain; false if a collective is still stuck.
  bool drain(std::chrono::milliseconds timeout) {
    const auto end = std::chrono::steady_clock::now() + timeout;
    while (!idle())
      if (std::chrono::steady_clock::now() > end)
        return false;
      else
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    return true;
  }
  void stop() {
    {
      std::lock_guard lock(m_);
      stop_ = true;
    }
    cv_.notify_one();
    if (thread_.joinable()) thread_.join();
    stop_ = false;
  }

 private:
  void loop() {
    for (;;) {
      std::shared_ptr<Task> t;
      {
        std::unique_lock lock(m_);
        cv_.wait(lock, [&] { return stop_ || !q_.empty(); });
        if (q_.empty()) return;
        t = std::move(q_.front());
        q_.pop_front();
      }
      {
        std::lock_guard engine(engine_);
        try {
          t->body();
        } catch (...) {
          t->error = std::current_exception();
        }
      }
      {
        std::lock_guard lock(t->m);
        t->done = true;
      }
      t->cv.notify_all();
      --pending_;
    }
  }
  std::thread thread_;
  std::mutex m_, engine_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Task>> q_;
  std::atomic<int> pending_{0};
  bool stop_ = false;
};

#if FT_HAVE_MPI
// A joining step's buffers and request. One abandoned at a timeout is kept (the engine may
// still write its buffers) and tested at every later join until the late ranks complete it, so
// the ranks' collectives stay matched in order.
struct Join {
  static constexpr int kValues = 2 * (4 + 8);
  std::int64_t both[kValues], out[kValues];
  MPI_Request req = MPI_REQUEST_NULL;
};
#endif

struct GroupState {
  bool initialized = false;
  bool owns_mpi = false;  // init_process_group called MPI_Init (so destroy finalizes)
  int rank = 0, world = 1;
  InitOptions options;
  std::unique_ptr<Rendezvous> rendezvous;  // init_method "env://": NCCL ids from rank 0, no MPI
  std::unique_ptr<Worker> worker = std::make_unique<Worker>();
#if FT_HAVE_MPI
  MPI_Comm comm = MPI_COMM_NULL;
  std::vector<std::unique_ptr<Join>> abandoned;  // joins that timed out, not completed yet
#endif
#if FT_HAVE_NCCL && FT_CUDA_ENABLED
  ncclComm_t nccl[kMaxDevices] = {};
#endif
};

inline GroupState& group() {
  static GroupState g;
  return g;
}

inline GroupState& require_group(const char* op) {
  GroupState& g = group();
  check(g.initialized, op,
        "the default process group is not initialized: call ft::distributed::init_process_group first");
  return g;
}

#if FT_HAVE_MPI
inline void mpi_check(int rc, const char* op, const char* call) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, text, &len);
  fail(op, call, " failed: ", std::string(text, static_cast<std::size_t>(len)));
}

template <class T>
MPI_Datatype mpi_type(const char* op) {
  if constexpr (std::is_same_v<T, float>)
    return MPI_FLOAT;
  else if constexpr (std::is_same_v<T, double>)
    return MPI_DOUBLE;
  else if constexpr (std::is_same_v<T, std::int32_t>)
    return MPI_INT32_T;
  else if constexpr (std::is_same_v<T, std::int64_t>)
    return MPI_INT64_T;
  else if constexpr (std::is_same_v<T, std::uint8_t>)
    return MPI_UINT8_T;
  else if constexpr (std::is_same_v<T, bool>)
    return MPI_C_BOOL;
  else
    fail(op, "MPI has no ", dtype_of<T>(), " type: convert the tensor to float first (ft::cast<float>)");
}

inline MPI_Op mpi_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::Max:
      return MPI_MAX;
    case ReduceOp::Min:
      return MPI_MIN;
    default:
      return MPI_SUM;  // Avg: the sum, divided after
  }
}

#endif

// What each rank passes to a collective, agreed on before the collective runs.
struct Signature {
  static constexpr int kSlots = 4 + 8;  // op, reduce op, dtype, rank; up to 8 dims
  std::int64_t v[kSlots];
};

template <class T, int R>
Signature signature(int collective, int arg, const Shape<R>& shape) {
  static_assert(R <= 8, "ft::distributed: tensors of rank up to 8");
  Signature s;
  s.v[0] = collective;
  s.v[1] = arg;
  s.v[2] = static_cast<std::int64_t>(dtype_of<T>());
  s.v[3] = R;
  for (int d = 0; d < 8; ++d) s.v[4 + d] = d < R ? shape[d] : -1;
  return s;
}

inline std::string describe(const Signature& s) {
  std::string r = ft::detail::concat(static_cast<DType>(s.v[2]), " [");
  for (int d = 0; d < s.v[3]; ++d) r += (d ? ", " : "") + std::to_string(s.v[4 + d]);
  return r + "]";
}

// The ranks join a collective: throws on every rank unless every rank passes the same
// signature (the message names each rank's dtype and shape: an MPI_Allgather, only after a
// mismatch), or when they have not all come within the timeout. Non-blocking and polled, so a
// missing rank is an error, not a hang; the collective itself then runs blocking.
inline void agree(GroupState& g, const Signature& mine, const char* op, const char* what,
                  std::chrono::milliseconds timeout) {
#if FT_HAVE_MPI
  if (g.world == 1) return;
  constexpr int K = Signature::kSlots;
  static_assert(2 * K == Join::kValues);
  for (auto& j : g.abandoned) {  // a late rank may have completed an abandoned join meanwhile
    int flag = 0;
    MPI_Test(&j->req, &flag, MPI_STATUS_IGNORE);
    if (flag) j.reset();
  }
  std::erase(g.abandoned, nullptr);
  auto join = std::make_unique<Join>();
  for (int i = 0; i < K; ++i) {
    join->both[i] = mine.v[i];
    join->both[K + i] = -mine.v[i];
  }
  mpi_check(MPI_Iallreduce(join->both, join->out, 2 * K, MPI_INT64_T, MPI_MAX, g.comm, &join->req), op,
            "MPI_Iallreduce");
  const auto start = std::chrono::steady_clock::now();
  for (;;) {
    int flag = 0;
    mpi_check(MPI_Test(&join->req, &flag, MPI_STATUS_IGNORE), op, "MPI_Test");
    if (flag) break;
    // a pure spin (a yield here let a 1 MB all_reduce take 4 ms instead of 0.2 on two cores);
    // the clock read every time: an oversubscribed MPI_Test may itself give up the core
    if (std::chrono::steady_clock::now() - start > timeout) {
      g.abandoned.push_back(std::move(join));
      fail(op, "timed out after ", timeout.count(),
           " ms waiting for the other ranks (a rank failed, or called another collective)");
    }
  }
  const std::int64_t* out = join->out;
  bool same = true;
  for (int i = 0; i < K; ++i) same = same && out[i] == -out[K + i];
  if (same) return;
  std::vector<Signature> all(static_cast<std::size_t>(g.world));
  mpi_check(MPI_Allgather(mine.v, K, MPI_INT64_T, all.data(), K, MPI_INT64_T, g.comm), op, "MPI_Allgather");
  std::string ranks;
  for (int r = 0; r < g.world; ++r) {
    const Signature& o = all[static_cast<std::size_t>(r)];
    ranks += ft::detail::concat(r ? ", " : "", "rank ", r, ": ", describe(o),
                                o.v[0] != mine.v[0] ? " (another collective)" : "",
                                o.v[1] != mine.v[1] ? ft::detail::concat(" (", what, " ", o.v[1], ")") : "");
  }
  fail(op, "the ranks passed different tensors or arguments: ", ranks);
#else
  (void)g, (void)mine, (void)op, (void)what, (void)timeout;
#endif
}

// A contiguous buffer holding t's values (t itself when contiguous) and, when t is strided,
// the write-back of the result into t.
template <class T, int R>
struct Staged {
  Tensor<T, R> buffer;
  Tensor<T, R> target;  // defined when the result must be copied back
};

template <class T, int R>
Staged<T, R> stage(const Tensor<T, R>& t) {
  if (t.is_contiguous()) return {t, Tensor<T, R>()};
  return {t.clone(), t};
}

template <class T, int R>
void write_back(Staged<T, R>& s) {
  if (s.target.defined()) std::move(s.target) = s.buffer;
}

// After an MPI reduction: Avg's division by the world size (MPI has no average), then the
// write-back.
template <class T, int R>
void finish_reduction(Staged<T, R>& s, ReduceOp op, int world) {
  if constexpr (is_floating_v<T>)
    if (op == ReduceOp::Avg) std::move(s.buffer) = s.buffer / static_cast<T>(world);
  write_back(s);
}

enum Collective : int { kAllReduce = 1, kBroadcast, kAllGather, kReduceScatter, kBarrier };

#if FT_HAVE_NCCL && FT_CUDA_ENABLED
inline void nccl_check(ncclResult_t rc, const char* op, const char* call) {
  if (rc != ncclSuccess) fail(op, call, " failed: ", ncclGetErrorString(rc));
}

template <class T>
ncclDataType_t nccl_type(const char* op) {
  if constexpr (std::is_same_v<T, float>)
    return ncclFloat32;
  else if constexpr (std::is_same_v<T, double>)
    return ncclFloat64;
  else if constexpr (std::is_same_v<T, std::int32_t>)
    return ncclInt32;
  else if constexpr (std::is_same_v<T, std::int64_t>)
    return ncclInt64;
  else if constexpr (std::is_same_v<T, std::uint8_t> || std::is_same_v<T, bool>)
    return ncclUint8;
  else if constexpr (std::is_same_v<T, half>)
    return ncclFloat16;
  else if constexpr (std::is_same_v<T, bfloat16>)
    return ncclBfloat16;
  else
    fail(op, "NCCL has no ", dtype_of<T>(), " type");
}

inline ncclRedOp_t nccl_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::Avg:
      return ncclAvg;
    case ReduceOp::Max:
      return ncclMax;
    case ReduceOp::Min:
      return ncclMin;
    default:
      return ncclSum;
  }
}

// The communicator of device d: made at its first use, rank 0's unique id broadcast over MPI.
inline ncclComm_t nccl_comm(GroupState& g, Device d, const char* op) {
  check(g.options.backend == "nccl", op, "a CUDA tensor needs the \"nccl\" backend (init_process_group({.backend = ",
        "\"nccl\"})); this group's backend is \"", g.options.backend, "\"");
  ncclComm_t& c = g.nccl[d.index];
  if (c) return c;
  ncclUniqueId id;
  if (g.rank == 0) nccl_check(ncclGetUniqueId(&id), op, "ncclGetUniqueId");
  if (g.rendezvous) {
    g.rendezvous->share(&id, sizeof(id));
  } else {
#if FT_HAVE_MPI
    if (g.world > 1) mpi_check(MPI_Bcast(&id, sizeof(id), MPI_BYTE, 0, g.comm), op, "MPI_Bcast of the NCCL id");
#endif
  }
  cuda::DeviceGuard guard(d);
  nccl_check(ncclCommInitRank(&c, g.world, id, g.rank), op, "ncclCommInitRank");
  return c;
}
#endif

// Runs a collective. A CPU one: the ranks join (agree, unless `o.agreed`: the caller knows the
// shapes match), then `mpi(task)` fills task.body with the engine's blocking calls and
// task.finish with what follows them; a blocking call runs them here when nothing is queued,
// otherwise (and for async_op) the communication thread does, in order. A CUDA one: `nccl()`
// enqueues NCCL's call on the stream; nothing for the host to wait for.
template <class Mpi, class Nccl>
Work run(GroupState& g, Device dev, const char* op, const Signature& sig, const char* what, const CollectiveOptions& o,
         Mpi&& mpi, Nccl&& nccl) {
  const std::chrono::milliseconds timeout = o.timeout.count() > 0 ? o.timeout : g.options.timeout;
  if (!dev.is_cpu()) {
#if FT_HAVE_NCCL && FT_CUDA_ENABLED
    nccl();
    return Work();
#else
    (void)nccl;
    fail(op, "a collective on ", dev, " needs NCCL: this translation unit was compiled without it");
#endif
  }
  check(!g.rendezvous, op, "a collective on a CPU tensor goes over MPI, and this group was started from the ",
        "environment (init_method \"env://\", torchrun's variables) without it: launch with mpirun for CPU tensors, ",
        "or move the tensor to its rank's GPU");
#if FT_HAVE_MPI
  auto t = std::make_shared<Task>();
  mpi(*t);
  if (!o.agreed)
    t->body = [&g, sig, op, what, timeout, body = std::move(t->body)] {
      agree(g, sig, op, what, timeout);
      if (body) body();
    };
  if (!o.async_op && g.worker->idle()) {
    {
      std::lock_guard engine(g.worker->engine());
      t->body();
    }
    if (t->finish) t->finish();
    return Work();
  }
  g.worker->submit(t);
  Work w(std::move(t), op, timeout);
  if (!o.async_op) w.wait();
  return w;
#else
  (void)g, (void)sig, (void)what, (void)o, (void)mpi, (void)timeout;
  fail(op, "CPU tensors go over MPI, which this build does not have (install libopenmpi-dev and reconfigure)");
#endif
}

}  // namespace detail

// ---- the process group ----

// Whether mpirun (Open MPI, or a PMI launcher such as MPICH's or Slurm's) started this process.
inline bool started_by_mpi_launcher() {
  return std::getenv("OMPI_COMM_WORLD_SIZE") || std::getenv("PMI_SIZE") || std::getenv("PMIX_RANK");
}

// torch.distributed.init_process_group: joins the processes started by mpirun (MPI_Init unless
// the program initialised MPI itself), or, for "nccl", those a launcher such as torchrun described
// in the environment (InitOptions::init_method). Without MPI in the build and without that
// environment, a world of one process.
inline void init_process_group(const InitOptions& options = {}) {
  auto& g = detail::group();
  check(!g.initialized, "init_process_group", "the default process group is already initialized");
  check(options.backend == "mpi" || options.backend == "nccl", "init_process_group", "unknown backend \"",
        options.backend, "\" (\"mpi\" or \"nccl\")");
  check(options.backend != "nccl" || has_nccl(), "init_process_group",
        "the \"nccl\" backend needs a CUDA build with NCCL (nccl.h and libnccl found by CMake)");
  check(options.timeout.count() > 0, "init_process_group", "the timeout must be positive");
  const bool from_env = options.init_method.empty()
                            ? options.backend == "nccl" && !started_by_mpi_launcher() && env_world().has_value()
                            : options.init_method == "env://";
  check(options.init_method.empty() || options.init_method == "env://" || options.init_method == "mpi",
        "init_process_group", "unknown init_method \"", options.init_method, "\" (\"env://\" or \"mpi\")");
  check(!from_env || options.backend == "nccl", "init_process_group",
        "init_method \"env://\" starts the \"nccl\" backend (CUDA tensors); the \"mpi\" backend's processes come from "
        "mpirun");
  check(has_mpi() || options.backend == "nccl", "init_process_group",
        "this build has no MPI (install libopenmpi-dev and reconfigure); without it only the \"nccl\" backend ",
        "runs, as a world of one process");
  g.options = options;
  if (from_env) {
    const std::optional<EnvWorld> w = env_world();
    check(w.has_value(), "init_process_group", "init_method \"env://\" needs RANK and WORLD_SIZE in the environment ",
          "(and MASTER_ADDR, MASTER_PORT for more than one rank), as torchrun sets them");
    g.rank = w->rank;
    g.world = w->world;
    g.rendezvous = std::make_unique<detail::Rendezvous>(*w, options.timeout);
    g.initialized = true;
    return;
  }
#if FT_HAVE_MPI
  int ready = 0;
  detail::mpi_check(MPI_Initialized(&ready), "init_process_group", "MPI_Initialized");
  if (!ready) {
    int provided = 0;
    detail::mpi_check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided), "init_process_group",
                      "MPI_Init_thread");
    g.owns_mpi = true;
  }
  int level = MPI_THREAD_SINGLE;
  MPI_Query_thread(&level);
  check(level >= MPI_THREAD_SERIALIZED, "init_process_group", "MPI runs with thread support level ", level,
        "; the group's communication thread needs MPI_THREAD_SERIALIZED or more (MPI_Init_thread)");
  detail::mpi_check(MPI_Comm_dup(MPI_COMM_WORLD, &g.comm), "init_process_group", "MPI_Comm_dup");
  // errors come back as codes, so they are thrown as ft::Error instead of aborting the job
  MPI_Comm_set_errhandler(g.comm, MPI_ERRORS_RETURN);
  MPI_Comm_rank(g.comm, &g.rank);
  MPI_Comm_size(g.comm, &g.world);
#endif
  g.initialized = true;
}

inline bool is_initialized() { return detail::group().initialized; }
inline int rank() { return detail::require_group("rank").rank; }
inline int world_size() { return detail::require_group("world_size").world; }
inline const InitOptions& options() { return detail::require_group("options").options; }

// torch.distributed.destroy_process_group: frees the communicators (and finalises MPI when
// init_process_group initialised it).
inline void destroy_process_group() {
  auto& g = detail::require_group("destroy_process_group");
  // the queued collectives first; one still stuck after the timeout (a rank died) can only end
  // with the job
  if (!g.worker->drain(g.options.timeout)) {
#if FT_HAVE_MPI
    std::fprintf(stderr,
                 "ft::distributed::destroy_process_group: a collective did not complete within %lld ms; "
                 "aborting the job\n",
                 static_cast<long long>(g.options.timeout.count()));
    MPI_Abort(g.comm, 1);
#endif
  }
  g.worker->stop();
#if FT_HAVE_MPI
  const auto start = std::chrono::steady_clock::now();
  while (!g.abandoned.empty()) {  // joins abandoned at a timeout: the late ranks complete them
    int flag = 0;
    MPI_Test(&g.abandoned.back()->req, &flag, MPI_STATUS_IGNORE);
    if (flag) {
      g.abandoned.pop_back();
    } else if (std::chrono::steady_clock::now() - start > g.options.timeout) {
      std::fprintf(stderr,
                   "ft::distributed::destroy_process_group: a rank never joined an abandoned collective; "
                   "aborting the job\n");
      MPI_Abort(g.comm, 1);
    }
  }
#endif
#if FT_HAVE_NCCL && FT_CUDA_ENABLED
  for (auto& c : g.nccl)
    if (c) {
      ncclCommDestroy(c);
      c = nullptr;
    }
#endif
#if FT_HAVE_MPI
  if (g.comm != MPI_COMM_NULL) MPI_Comm_free(&g.comm);  // none when started from the environment
  if (g.owns_mpi) MPI_Finalize();
#endif
  g = detail::GroupState{};
}

// ---- collectives ----

// torch.distributed.all_reduce: every rank's t becomes the reduction of all ranks' t.
template <class T, int R>
Work all_reduce(const Tensor<T, R>& t, ReduceOp op = ReduceOp::Sum, const CollectiveOptions& o = {}) {
  auto& g = detail::require_group("all_reduce");
  check(op != ReduceOp::Avg || is_floating_v<T>, "all_reduce", "avg needs a floating tensor, got ", dtype_of<T>());
  check(!std::is_same_v<T, bool> || op == ReduceOp::Max || op == ReduceOp::Min, "all_reduce",
        "a bool tensor reduces with max or min only");
  if (t.numel() == 0) return Work();
  [[maybe_unused]] const int world = g.world;
  return detail::run(
      g, t.device(), "all_reduce", detail::signature<T, R>(detail::kAllReduce, static_cast<int>(op), t.shape()), "op",
      o,
      [&](detail::Task& task) {
#if FT_HAVE_MPI
        auto st = std::make_shared<detail::Staged<T, R>>(detail::stage(t));
        task.body = [st, op, &g] {
          detail::mpi_check(MPI_Allreduce(MPI_IN_PLACE, st->buffer.data(), static_cast<int>(st->buffer.numel()),
                                          detail::mpi_type<T>("all_reduce"), detail::mpi_op(op), g.comm),
                            "all_reduce", "MPI_Allreduce");
        };
        task.finish = [st, op, world] { detail::finish_reduction(*st, op, world); };
#else
        (void)task;
#endif
      },
      [&] {
#if FT_HAVE_NCCL && FT_CUDA_ENABLED
        auto st = detail::stage(t);
        cuda::DeviceGuard guard(t.device());
        detail::nccl_check(
            ncclAllReduce(st.buffer.data(), st.buffer.data(), static_cast<std::size_t>(t.numel()),
                          detail::nccl_type<T>("all_reduce"), detail::nccl_op(op),
                          detail::nccl_comm(g, t.device(), "all_reduce"), cuda::current_stream(t.device())),
            "all_reduce", "ncclAllReduce");
        detail::write_back(st);
#endif
      });
}

// torch.distributed.broadcast: every rank's t becomes rank src's.
template <class T, int R>
Work broadcast(const Tensor<T, R>& t, int src = 0, const CollectiveOptions& o = {}) {
  auto& g = detail::require_group("broadcast");
  check(src >= 0 && src < g.world, "broadcast", "src rank ", src, " is outside the world of ", g.world);
  if (t.numel() == 0) return Work();
  return detail::run(
      g, t.device(), "broadcast", detail::signature<T, R>(detail::kBroadcast, src, t.shape()), "src", o,
      [&](detail::Task& task) {
#if FT_HAVE_MPI
        auto st = std::make_shared<detail::Staged<T, R>>(detail::stage(t));
        task.body = [st, src, &g] {
          detail::mpi_check(MPI_Bcast(st->buffer.data(), static_cast<int>(st->buffer.numel()),
                                      detail::mpi_type<T>("broadcast"), src, g.comm),
                            "broadcast", "MPI_Bcast");
        };
        task.finish = [st] { detail::write_back(*st); };
#else
        (void)task;
#endif
      },
      [&] {
#if FT_HAVE_NCCL && FT_CUDA_ENABLED
        auto st = detail::stage(t);
        cuda::DeviceGuard guard(t.device());
        detail::nccl_check(
            ncclBroadcast(st.buffer.data(), st.buffer.data(), static_cast<std::size_t>(t.numel()),
                          detail::nccl_type<T>("broadcast"), src, detail::nccl_comm(g, t.device(), "broadcast"),
                          cuda::current_stream(t.device())),
            "broadcast", "ncclBroadcast");
        detail::write_back(st);
#endif
      });
}

// torch.distributed.all_gather_into_tensor: output [world · n, …] holds every rank's input
// [n, …], rank r's at rows [r · n, (r + 1) · n).
template <class T, int R>
Work all_gather_into_tensor(const Tensor<T, R>& output, const Tensor<T, R>& input, const CollectiveOptions& o = {}) {
  static_assert(R >= 1, "ft::distributed::all_gather_into_tensor: tensors of rank ≥ 1 (unsqueeze a scalar)");
  auto& g = detail::require_group("all_gather_into_tensor");
  Shape<R> want = input.shape();
  want[0] *= g.world;
  check(output.shape() == want, "all_gather_into_tensor", "the output must be ", to_string(want), " (world ", g.world,
        " × input ", to_string(input.shape()), "), got ", to_string(output.shape()));
  check(output.device() == input.device(), "all_gather_into_tensor", "input on ", input.device(), ", output on ",
        output.device());
  if (input.numel() == 0) return Work();
  return detail::run(
      g, input.device(), "all_gather_into_tensor", detail::signature<T, R>(detail::kAllGather, 0, input.shape()), "", o,
      [&](detail::Task& task) {
#if FT_HAVE_MPI
        auto in = std::make_shared<Tensor<T, R>>(input.contiguous());
        auto st = std::make_shared<detail::Staged<T, R>>(detail::stage(output));
        task.body = [in, st, &g] {
          const MPI_Datatype type = detail::mpi_type<T>("all_gather_into_tensor");
          const int n = static_cast<int>(in->numel());
          detail::mpi_check(MPI_Allgather(in->data(), n, type, st->buffer.data(), n, type, g.comm),
                            "all_gather_into_tensor", "MPI_Allgather");
        };
        task.finish = [st] { detail::write_back(*st); };
#else
        (void)task;
#endif
      },
      [&] {
#if FT_HAVE_NCCL && FT_CUDA_ENABLED
        const Tensor<T, R> in = input.contiguous();
        auto st = detail::stage(output);
        cuda::DeviceGuard guard(input.device());
        detail::nccl_check(ncclAllGather(in.data(), st.buffer.data(), static_cast<std::size_t>(input.numel()),
                                         detail::nccl_type<T>("all_gather_into_tensor"),
                                         detail::nccl_comm(g, input.device(), "all_gather_into_tensor"),
                                         cuda::current_stream(input.device())),
                           "all_gather_into_tensor", "ncclAllGather");
        detail::write_back(st);
#endif
      });
}

// torch.distributed.all_gather: every rank's tensor, in rank order (one collective into one
// buffer, whose slices are returned).
template <class T, int R>
std::vector<Tensor<T, R>> all_gather(const Tensor<T, R>& input) {
  auto& g = detail::require_group("all_gather");
  Shape<R + 1> s;
  s[0] = g.world;
  for (int d = 0; d < R; ++d) s[d + 1] = input.shape()[d];
  Tensor<T, R + 1> out(s, input.device());
  all_gather_into_tensor(out.flatten(), input.contiguous().flatten());
  std::vector<Tensor<T, R>> parts;
  for (int r = 0; r < g.world; ++r) parts.push_back(out.select(0, r));
  return parts;
}

// torch.distributed.reduce_scatter_tensor: input [world · n, …] on every rank; rank r's output
// [n, …] is the reduction over ranks of rows [r · n, (r + 1) · n).
template <class T, int R>
Work reduce_scatter_tensor(const Tensor<T, R>& output, const Tensor<T, R>& input, ReduceOp op = ReduceOp::Sum,
                           const CollectiveOptions& o = {}) {
  static_assert(R >= 1, "ft::distributed::reduce_scatter_tensor: tensors of rank ≥ 1");
  auto& g = detail::require_group("reduce_scatter_tensor");
  check(op != ReduceOp::Avg || is_floating_v<T>, "reduce_scatter_tensor", "avg needs a floating tensor, got ",
        dtype_of<T>());
  Shape<R> want = output.shape();
  want[0] *= g.world;
  check(input.shape() == want, "reduce_scatter_tensor", "the input must be ", to_string(want), " (world ", g.world,
        " × output ", to_string(output.shape()), "), got ", to_string(input.shape()));
  check(output.device() == input.device(), "reduce_scatter_tensor", "input on ", input.device(), ", output on ",
        output.device());
  if (output.numel() == 0) return Work();
  [[maybe_unused]] const int world = g.world;
  return detail::run(
      g, input.device(), "reduce_scatter_tensor",
      detail::signature<T, R>(detail::kReduceScatter, static_cast<int>(op), input.shape()), "op", o,
      [&](detail::Task& task) {
#if FT_HAVE_MPI
        auto in = std::make_shared<Tensor<T, R>>(input.contiguous());
        auto st = std::make_shared<detail::Staged<T, R>>(detail::stage(output));
        task.body = [in, st, op, &g] {
          detail::mpi_check(
              MPI_Reduce_scatter_block(in->data(), st->buffer.data(), static_cast<int>(st->buffer.numel()),
                                       detail::mpi_type<T>("reduce_scatter_tensor"), detail::mpi_op(op), g.comm),
              "reduce_scatter_tensor", "MPI_Reduce_scatter_block");
        };
        task.finish = [st, op, world] { detail::finish_reduction(*st, op, world); };
#else
        (void)task;
#endif
      },
      [&] {
#if FT_HAVE_NCCL && FT_CUDA_ENABLED
        const Tensor<T, R> in = input.contiguous();
        auto st = detail::stage(output);
        cuda::DeviceGuard guard(input.device());
        detail::nccl_check(ncclReduceScatter(in.data(), st.buffer.data(), static_cast<std::size_t>(output.numel()),
                                             detail::nccl_type<T>("reduce_scatter_tensor"), detail::nccl_op(op),
                                             detail::nccl_comm(g, input.device(), "reduce_scatter_tensor"),
                                             cuda::current_stream(input.device())),
                           "reduce_scatter_tensor", "ncclReduceScatter");
        detail::write_back(st);
#endif
      });
}

// torch.distributed.barrier: returns when every rank has called it (within the timeout: the
// joining step is the barrier; in a group started from the environment, rank 0's rendezvous).
inline Work barrier(const CollectiveOptions& o = {}) {
  auto& g = detail::require_group("barrier");
  if (g.rendezvous) {  // started from the environment: through rank 0's rendezvous
    char token = 0;
    g.rendezvous->share(&token, 1);
    return Work();
  }
  return detail::run(
      g, kCPU, "barrier", detail::signature<float, 0>(detail::kBarrier, 0, Shape<0>{}), "", o, [](detail::Task&) {},
      [] {});
}

// all_reduce and broadcast of a tensor whose dtype is known at run time (a parameter, a
// gradient bucket): one instantiation per dtype. `what` names the tensor in an error.
inline Work all_reduce_any(const AnyTensor& t, ReduceOp op = ReduceOp::Sum, const CollectiveOptions& o = {}) {
  return visit_elements(t, [&](auto x) { return all_reduce(x, op, o); });
}
inline Work broadcast_any(const AnyTensor& t, int src = 0, const std::string& what = "",
                          const CollectiveOptions& o = {}) {
  try {
    return visit_elements(t, [&](auto x) { return broadcast(x, src, o); });
  } catch (const Error& e) {
    if (what.empty()) throw;
    fail("broadcast", "of \"", what, "\": ", e.what());
  }
}

}  // namespace ft::inline FT_ABI::distributed
