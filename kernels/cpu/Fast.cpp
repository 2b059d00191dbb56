//===- Fast.cpp - vectorisable and threaded f32 fast paths ----------------===//

#include "Fast.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

namespace vlora::kernels::cpu::detail {

//===----------------------------------------------------------------------===//
// Threads
//===----------------------------------------------------------------------===//

namespace {
int threadsFromEnvironment() {
  for (const char *name : {"VLORA_NUM_THREADS", "OPENBLAS_NUM_THREADS"}) {
    if (const char *v = std::getenv(name)) {
      int n = std::atoi(v);
      if (n > 0)
        return std::min(n, 256);
    }
  }
  unsigned n = std::thread::hardware_concurrency();
  return n ? static_cast<int>(std::min(n, 256u)) : 1;
}

/// Workers sleep on a condition variable. A job is a function every
/// participant (the caller and each worker that wakes in time) runs once;
/// it takes chunks of work from a shared counter, so the caller never waits
/// for a worker that the OS has not scheduled yet: it finishes the chunks
/// itself and waits only for workers that are inside the job.
class Pool {
public:
  explicit Pool(int threads) : threads_(threads) {
    for (int i = 1; i < threads_; ++i)
      workers_.emplace_back([this] { loop(); });
  }
  ~Pool() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    for (std::thread &t : workers_)
      t.join();
  }
  int threads() const { return threads_; }

  /// Runs `job` on this thread and on the workers, and returns when every
  /// participant has left it; false (nothing run) when another caller is
  /// using the pool.
  bool run(const std::function<void()> &job) {
    std::unique_lock<std::mutex> busy(busy_, std::try_to_lock);
    if (!busy.owns_lock())
      return false;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      job_ = &job;
      ++generation_;
    }
    wake_.notify_all();
    job();
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [&] { return active_ == 0; });
    job_ = nullptr; // late workers find no job
    return true;
  }

private:
  void loop() {
    uint64_t seen = 0;
    std::unique_lock<std::mutex> lock(mutex_);
    while (true) {
      wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_)
        return;
      seen = generation_;
      const std::function<void()> *job = job_;
      if (!job)
        continue;
      ++active_;
      lock.unlock();
      (*job)();
      lock.lock();
      if (--active_ == 0)
        done_.notify_one();
    }
  }

  int threads_;
  std::vector<std::thread> workers_;
  std::mutex busy_, mutex_;
  std::condition_variable wake_, done_;
  const std::function<void()> *job_ = nullptr;
  uint64_t generation_ = 0;
  int active_ = 0;
  bool stop_ = false;
};

Pool &pool() {
  static Pool p(threadsFromEnvironment());
  return p;
}
} // namespace

int kernelThreads() { return pool().threads(); }

void parallelFor(int64_t n, int64_t grain,
                 const std::function<void(int64_t, int64_t)> &f) {
  if (n <= 0)
    return;
  int64_t threads = kernelThreads();
  // A few chunks per thread, each of at least `grain` items.
  int64_t chunks = std::min<int64_t>(4 * threads, n / std::max<int64_t>(grain, 1));
  if (threads <= 1 || chunks <= 1) {
    f(0, n);
    return;
  }
  std::atomic<int64_t> next{0};
  std::function<void()> job = [&] {
    for (int64_t c; (c = next.fetch_add(1, std::memory_order_relaxed)) < chunks;)
      f(n * c / chunks, n * (c + 1) / chunks);
  };
  if (!pool().run(job))
    f(0, n);
}

namespace {
/// Elements per thread below which an elementwise op stays on one thread.
constexpr int64_t kGrain = 1 << 15;

bool isF32(const TensorRef &t) { return t.dtype == DType::F32; }

//===----------------------------------------------------------------------===//
// Unary
//===----------------------------------------------------------------------===//

template <typename F> void unaryLoop(const float *x, float *y, int64_t n, F f) {
  parallelFor(n, kGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i)
      y[i] = f(x[i]);
  });
}
} // namespace

bool fastUnary(UnaryOp op, const TensorRef &in, const TensorRef &out) {
  if (!isF32(in) || !isF32(out))
    return false;
  const float *x = in.as<const float>();
  float *y = out.as<float>();
  int64_t n = in.numel();
  switch (op) {
  case UnaryOp::Exp:
    unaryLoop(x, y, n, [](float v) { return expFast(v); });
    return true;
  case UnaryOp::Sigmoid:
    unaryLoop(x, y, n, [](float v) { return sigmoidFast(v); });
    return true;
  case UnaryOp::Silu:
    unaryLoop(x, y, n, [](float v) { return v * sigmoidFast(v); });
    return true;
  case UnaryOp::Neg:
    unaryLoop(x, y, n, [](float v) { return -v; });
    return true;
  default:
    return false;
  }
}

//===----------------------------------------------------------------------===//
// Binary
//===----------------------------------------------------------------------===//

namespace {
struct Layout {
  Shape shape;           // coalesced, no size-1 dimensions, rank >= 1
  std::vector<int64_t> a, b; // element strides of lhs and rhs (0: broadcast)
};

/// Broadcast strides of both operands over out's shape, with size-1
/// dimensions dropped and neighbours merged where both operands (and the
/// contiguous output) allow it.
Layout coalesce(const Shape &sa, const Shape &sb, const Shape &so) {
  size_t rank = so.size();
  auto strides = [&](const Shape &s) {
    std::vector<int64_t> st(rank, 0);
    int64_t acc = 1;
    for (size_t i = 0; i < s.size(); ++i) {
      size_t d = s.size() - 1 - i, o = rank - 1 - i;
      st[o] = s[d] == 1 ? 0 : acc;
      acc *= s[d];
    }
    return st;
  };
  std::vector<int64_t> a = strides(sa), b = strides(sb);
  Layout l;
  for (size_t d = 0; d < rank; ++d) {
    if (so[d] == 1)
      continue;
    if (!l.shape.empty()) {
      int64_t n = so[d];
      if (l.a.back() == a[d] * n && l.b.back() == b[d] * n) {
        l.shape.back() *= n;
        l.a.back() = a[d];
        l.b.back() = b[d];
        continue;
      }
    }
    l.shape.push_back(so[d]);
    l.a.push_back(a[d]);
    l.b.push_back(b[d]);
  }
  if (l.shape.empty()) {
    l.shape = {1};
    l.a = {0};
    l.b = {0};
  }
  return l;
}

template <typename F>
inline void row(const float *a, int64_t ia, const float *b, int64_t ib, float *y,
                int64_t n, F f) {
  if (ia && ib)
    for (int64_t i = 0; i < n; ++i)
      y[i] = f(a[i], b[i]);
  else if (ia) {
    float bv = b[0];
    for (int64_t i = 0; i < n; ++i)
      y[i] = f(a[i], bv);
  } else if (ib) {
    float av = a[0];
    for (int64_t i = 0; i < n; ++i)
      y[i] = f(av, b[i]);
  } else {
    float v = f(a[0], b[0]);
    for (int64_t i = 0; i < n; ++i)
      y[i] = v;
  }
}

template <typename F>
void binaryLoop(const Layout &l, const float *a, const float *b, float *y, F f) {
  int64_t rank = static_cast<int64_t>(l.shape.size());
  int64_t inner = l.shape.back(), ia = l.a.back(), ib = l.b.back();
  if (rank == 1) {
    parallelFor(inner, kGrain, [&](int64_t s, int64_t e) {
      row(a + s * ia, ia, b + s * ib, ib, y + s, e - s, f);
    });
    return;
  }
  int64_t rows = 1;
  for (int64_t d = 0; d + 1 < rank; ++d)
    rows *= l.shape[d];
  parallelFor(rows, std::max<int64_t>(1, kGrain / std::max<int64_t>(inner, 1)),
              [&](int64_t s, int64_t e) {
                // Offsets of row s, then step through the outer index.
                std::vector<int64_t> index(rank - 1);
                int64_t oa = 0, ob = 0;
                for (int64_t d = rank - 2, r = s; d >= 0; --d) {
                  index[d] = r % l.shape[d];
                  r /= l.shape[d];
                  oa += index[d] * l.a[d];
                  ob += index[d] * l.b[d];
                }
                for (int64_t r = s; r < e; ++r) {
                  row(a + oa, ia, b + ob, ib, y + r * inner, inner, f);
                  for (int64_t d = rank - 2; d >= 0; --d) {
                    oa += l.a[d];
                    ob += l.b[d];
                    if (++index[d] < l.shape[d])
                      break;
                    oa -= l.a[d] * l.shape[d];
                    ob -= l.b[d] * l.shape[d];
                    index[d] = 0;
                  }
                }
              });
}
} // namespace

bool fastBinary(BinaryOp op, const TensorRef &lhs, const TensorRef &rhs,
                const TensorRef &out) {
  if (!isF32(lhs) || !isF32(rhs) || !isF32(out) || out.numel() == 0)
    return false;
  const float *a = lhs.as<const float>(), *b = rhs.as<const float>();
  float *y = out.as<float>();
  if (op == BinaryOp::Pow) {
    // x^2 (RMSNorm's Pow): x * x is what pow gives, correctly rounded.
    if (rhs.numel() != 1 || b[0] != 2.0f || lhs.shape != out.shape)
      return false;
    int64_t n = out.numel();
    unaryLoop(a, y, n, [](float v) { return v * v; });
    return true;
  }
  Layout l = coalesce(lhs.shape, rhs.shape, out.shape);
  switch (op) {
  case BinaryOp::Add:
    binaryLoop(l, a, b, y, [](float u, float v) { return u + v; });
    return true;
  case BinaryOp::Sub:
    binaryLoop(l, a, b, y, [](float u, float v) { return u - v; });
    return true;
  case BinaryOp::Mul:
    binaryLoop(l, a, b, y, [](float u, float v) { return u * v; });
    return true;
  case BinaryOp::Div:
    binaryLoop(l, a, b, y, [](float u, float v) { return u / v; });
    return true;
  default:
    return false;
  }
}

//===----------------------------------------------------------------------===//
// Softmax and reductions over the last axes
//===----------------------------------------------------------------------===//

bool fastSoftmax(const TensorRef &in, const TensorRef &out, int64_t axis,
                 bool log) {
  if (log || !isF32(in) || !isF32(out) || axis != in.rank() - 1)
    return false;
  int64_t size = in.shape.back(), n = in.numel();
  if (size == 0 || n == 0)
    return true;
  int64_t rows = n / size;
  const float *x = in.as<const float>();
  float *y = out.as<float>();
  constexpr int L = 16; // independent lanes: vectorisable reductions
  parallelFor(rows, std::max<int64_t>(1, kGrain / 4 / size), [&](int64_t s, int64_t e) {
    for (int64_t r = s; r < e; ++r) {
      const float *xr = x + r * size;
      float *yr = y + r * size;
      float lanes[L];
      for (int j = 0; j < L; ++j)
        lanes[j] = -std::numeric_limits<float>::infinity();
      int64_t i = 0;
      for (; i + L <= size; i += L)
        for (int j = 0; j < L; ++j)
          lanes[j] = lanes[j] < xr[i + j] ? xr[i + j] : lanes[j];
      float max = -std::numeric_limits<float>::infinity();
      for (; i < size; ++i)
        max = max < xr[i] ? xr[i] : max;
      for (int j = 0; j < L; ++j)
        max = max < lanes[j] ? lanes[j] : max;
      if (std::isinf(max) && max < 0)
        max = 0; // all -inf: avoid -inf - -inf
      for (int64_t k = 0; k < size; ++k)
        yr[k] = expFast(xr[k] - max);
      double sum = 0;
      float part[L] = {};
      i = 0;
      for (; i + L <= size; i += L)
        for (int j = 0; j < L; ++j)
          part[j] += yr[i + j];
      for (; i < size; ++i)
        sum += yr[i];
      for (int j = 0; j < L; ++j)
        sum += part[j];
      float inv = static_cast<float>(1.0 / sum);
      for (int64_t k = 0; k < size; ++k)
        yr[k] *= inv;
    }
  });
  return true;
}

bool fastReduce(ReduceOp op, const TensorRef &in, const TensorRef &out,
                const Shape &axes) {
  if ((op != ReduceOp::Sum && op != ReduceOp::Mean) || !isF32(in) || !isF32(out) ||
      axes.empty())
    return false;
  // Only trailing axes [first, rank), each listed once.
  int64_t rank = in.rank(), first = rank - static_cast<int64_t>(axes.size());
  std::vector<bool> seen(rank, false);
  for (int64_t a : axes) {
    if (a < first || a >= rank || seen[a])
      return false;
    seen[a] = true;
  }
  int64_t size = 1;
  for (int64_t d = first; d < rank; ++d)
    size *= in.shape[d];
  int64_t rows = out.numel();
  if (size == 0 || rows * size != in.numel())
    return false;
  const float *x = in.as<const float>();
  float *y = out.as<float>();
  constexpr int L = 8;
  parallelFor(rows, std::max<int64_t>(1, kGrain / size), [&](int64_t s, int64_t e) {
    for (int64_t r = s; r < e; ++r) {
      const float *xr = x + r * size;
      double part[L] = {};
      int64_t i = 0;
      for (; i + L <= size; i += L)
        for (int j = 0; j < L; ++j)
          part[j] += xr[i + j];
      double sum = 0;
      for (; i < size; ++i)
        sum += xr[i];
      for (int j = 0; j < L; ++j)
        sum += part[j];
      if (op == ReduceOp::Mean)
        sum /= static_cast<double>(size);
      y[r] = static_cast<float>(sum);
    }
  });
  return true;
}

} // namespace vlora::kernels::cpu::detail
