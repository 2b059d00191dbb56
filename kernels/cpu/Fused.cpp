//===- Fused.cpp - fused elementwise programs -----------------------------===//
//
// vlora/kernels/Fused.h on the CPU: the output index space is cut into
// blocks of kBlock elements; per block every input is loaded once into a
// register row (full-size f32 inputs are read in place), each instruction
// is one vectorisable loop over the block, and the result rows are stored.
// Each opcode runs the scalar function of the unfused kernel's path for f32
// (Fast.h, Scalar.h), so the results are bitwise the unfused ops'.
//
//===----------------------------------------------------------------------===//

#include "vlora/kernels/Cpu.h"
#include "vlora/kernels/Fused.h"

#include "Fast.h"
#include "Iteration.h"
#include "Scalar.h"

#include <algorithm>
#include <type_traits>
#include <vector>

namespace vlora::kernels::cpu {
using namespace detail;

namespace {
constexpr int64_t kBlock = 512;

/// One input as read for a run of output elements.
struct Input {
  const TensorRef *tensor;
  Strides strides;  // broadcast strides over the output shape
  bool full = false; // same element count and layout as the output
};

/// Loads elements [begin, begin + n) of the output index space of input
/// `in` (elements of type T, widened to f32) into `row`; `index` is
/// scratch.
template <typename T>
void loadAs(const Input &in, const Shape &shape, const Strides &outStrides,
            int64_t begin, int64_t n, float *row, std::vector<int64_t> &index) {
  const T *x = in.tensor->as<const T>();
  auto at = [x](int64_t offset) {
    if constexpr (std::is_same_v<T, BFloat16>)
      return toFloat(x[offset]);
    else
      return x[offset];
  };
  if (in.full) {
    for (int64_t i = 0; i < n; ++i)
      row[i] = at(begin + i);
    return;
  }
  if (in.tensor->numel() == 1) {
    std::fill(row, row + n, at(0));
    return;
  }
  // The multi-index of `begin`, then runs along the innermost dimension
  // (a fill or a strided walk each), carrying into the outer ones.
  int64_t rank = static_cast<int64_t>(shape.size());
  index.assign(rank, 0);
  int64_t offset = 0;
  for (int64_t d = 0, rest = begin; d < rank; ++d) {
    index[d] = rest / outStrides[d];
    rest %= outStrides[d];
    offset += index[d] * in.strides[d];
  }
  int64_t inner = shape[rank - 1], step = in.strides[rank - 1];
  for (int64_t i = 0; i < n;) {
    int64_t run = std::min(n - i, inner - index[rank - 1]);
    if (step == 0)
      std::fill(row + i, row + i + run, at(offset));
    else
      for (int64_t k = 0; k < run; ++k)
        row[i + k] = at(offset + k * step);
    i += run;
    offset += run * step;
    index[rank - 1] += run;
    for (int64_t d = rank - 1; d > 0 && index[d] == shape[d]; --d) {
      offset -= in.strides[d] * shape[d];
      index[d] = 0;
      offset += in.strides[d - 1];
      ++index[d - 1];
    }
  }
}

void load(const Input &in, const Shape &shape, const Strides &outStrides, int64_t begin,
          int64_t n, float *row, std::vector<int64_t> &index) {
  if (in.tensor->dtype == DType::BF16)
    loadAs<BFloat16>(in, shape, outStrides, begin, n, row, index);
  else
    loadAs<float>(in, shape, outStrides, begin, n, row, index);
}

template <typename F> inline void each(const float *a, float *y, int64_t n, F f) {
  for (int64_t i = 0; i < n; ++i)
    y[i] = f(a[i]);
}

template <typename F>
inline void each(const float *a, const float *b, float *y, int64_t n, F f) {
  for (int64_t i = 0; i < n; ++i)
    y[i] = f(a[i], b[i]);
}

/// One instruction over a block.
void apply(FusedOp op, const float *a, const float *b, float *y, int64_t n) {
  auto unary = [&](UnaryOp u) { each(a, y, n, [u](float v) { return applyUnary(u, v); }); };
  switch (op) {
  case FusedOp::Neg: return each(a, y, n, [](float v) { return -v; });
  case FusedOp::Exp: return each(a, y, n, [](float v) { return expFast(v); });
  case FusedOp::Sigmoid: return each(a, y, n, [](float v) { return sigmoidFast(v); });
  case FusedOp::Silu: return each(a, y, n, [](float v) { return v * sigmoidFast(v); });
  case FusedOp::Square: return each(a, y, n, [](float v) { return v * v; });
  case FusedOp::Abs: return unary(UnaryOp::Abs);
  case FusedOp::Log: return unary(UnaryOp::Log);
  case FusedOp::Sqrt: return unary(UnaryOp::Sqrt);
  case FusedOp::Rsqrt: return unary(UnaryOp::Rsqrt);
  case FusedOp::Reciprocal: return unary(UnaryOp::Reciprocal);
  case FusedOp::Tanh: return unary(UnaryOp::Tanh);
  case FusedOp::Erf: return unary(UnaryOp::Erf);
  case FusedOp::Relu: return unary(UnaryOp::Relu);
  case FusedOp::Sin: return unary(UnaryOp::Sin);
  case FusedOp::Cos: return unary(UnaryOp::Cos);
  case FusedOp::Floor: return unary(UnaryOp::Floor);
  case FusedOp::Ceil: return unary(UnaryOp::Ceil);
  case FusedOp::Gelu: return unary(UnaryOp::Gelu);
  case FusedOp::GeluTanh: return unary(UnaryOp::GeluTanh);
  case FusedOp::Add: return each(a, b, y, n, [](float u, float v) { return u + v; });
  case FusedOp::Sub: return each(a, b, y, n, [](float u, float v) { return u - v; });
  case FusedOp::Mul: return each(a, b, y, n, [](float u, float v) { return u * v; });
  case FusedOp::Div: return each(a, b, y, n, [](float u, float v) { return u / v; });
  case FusedOp::Max:
    return each(a, b, y, n, [](float u, float v) { return applyBinary(BinaryOp::Max, u, v); });
  case FusedOp::Min:
    return each(a, b, y, n, [](float u, float v) { return applyBinary(BinaryOp::Min, u, v); });
  case FusedOp::Pow:
    return each(a, b, y, n, [](float u, float v) { return applyBinary(BinaryOp::Pow, u, v); });
  case FusedOp::RoundBF16:
    return each(a, y, n, [](float v) { return toFloat(toBFloat16(v)); });
  case FusedOp::WidenBF16: return each(a, y, n, [](float v) { return v; });
  }
}
} // namespace

void fusedElementwise(const std::vector<TensorRef> &inputs,
                      const std::vector<TensorRef> &results,
                      const std::vector<int64_t> &program,
                      const std::vector<int64_t> &registers) {
  const Shape &shape = results.at(0).shape;
  int64_t total = results[0].numel();
  if (total == 0)
    return;
  Strides outStrides = contiguousStrides(shape);
  std::vector<Input> ins;
  for (const TensorRef &t : inputs) {
    Input in{&t, broadcastStrides(t.shape, shape)};
    in.full = t.numel() == total && in.strides == outStrides;
    ins.push_back(std::move(in));
  }
  int64_t numInputs = static_cast<int64_t>(inputs.size());
  int64_t count = static_cast<int64_t>(program.size() / 3);
  parallelFor(total, int64_t(1) << 15, [&](int64_t first, int64_t last) {
    // Register rows; a full f32 input is read where it lies.
    std::vector<float> storage(static_cast<size_t>((numInputs + count) * kBlock));
    std::vector<const float *> reg(numInputs + count);
    std::vector<int64_t> index;
    for (int64_t begin = first; begin < last; begin += kBlock) {
      int64_t n = std::min(kBlock, last - begin);
      for (int64_t j = 0; j < numInputs; ++j) {
        float *row = storage.data() + j * kBlock;
        if (ins[j].full && inputs[j].dtype == DType::F32) {
          reg[j] = inputs[j].as<const float>() + begin;
          continue;
        }
        load(ins[j], shape, outStrides, begin, n, row, index);
        reg[j] = row;
      }
      for (int64_t k = 0; k < count; ++k) {
        float *row = storage.data() + (numInputs + k) * kBlock;
        int64_t b = program[3 * k + 2];
        apply(static_cast<FusedOp>(program[3 * k]), reg[program[3 * k + 1]],
              b < 0 ? nullptr : reg[b], row, n);
        reg[numInputs + k] = row;
      }
      for (size_t r = 0; r < results.size(); ++r) {
        const float *row = reg[registers[r]];
        if (results[r].dtype == DType::BF16) {
          BFloat16 *y = results[r].as<BFloat16>() + begin;
          for (int64_t i = 0; i < n; ++i)
            y[i] = toBFloat16(row[i]);
        } else {
          std::copy(row, row + n, results[r].as<float>() + begin);
        }
      }
    }
  });
}

} // namespace vlora::kernels::cpu
