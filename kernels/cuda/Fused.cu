//===- Fused.cu - CUDA twin of the fused elementwise programs -------------===//
//
// vlora/kernels/Fused.h on the GPU: one grid-stride kernel over the results'
// shape S. Per element every input is read once at its broadcast offset
// (bf16 widened exactly), the program is interpreted over a register file
// in thread-local memory, and the results are stored. The program, the
// tensor pointers and the broadcast strides travel in the kernel parameters
// (nothing is allocated, so the call can be captured into a CUDA graph).
//
// Each opcode is the math of the unfused CUDA twin (OpsElementwise.cu, via
// ElementwiseMath.cuh): the unary opcodes call applyUnary<float> with the
// same UnaryOp, Max / Min call applyBinary<float>, Square is the binary
// Pow's x^2 path (x * x), RoundBF16 is the cast kernel's f32 -> bf16
// rounding and WidenBF16 is exact. Add, Sub, Mul, Div and Square use the
// explicitly rounded intrinsics (__fadd_rn, ...), which the compiler never
// contracts into an FMA with a neighbouring instruction: the unfused
// kernels round every op's result to f32, so must the fused one.
//
//===----------------------------------------------------------------------===//

#include "vlora/kernels/Fused.h"
#include "vlora/kernels/cuda/Ops.h"

#include "ElementwiseMath.cuh"
#include "OpsCommon.cuh"

#include <string>
#include <type_traits>

namespace vlora::kernels::cuda::ops {
using namespace detail;

namespace {

constexpr int kThreads = 256;
constexpr int kInputs = static_cast<int>(kMaxFusedInputs);
constexpr int kInstructions = static_cast<int>(kMaxFusedInstructions);
constexpr int kOutputs = static_cast<int>(kMaxFusedOutputs);
constexpr int kRegisters = kInputs + kInstructions;
static_assert(kRegisters <= 127, "registers are int8_t");
static_assert(kInputs <= 32 && kOutputs <= 32, "type masks are 32 bits");

/// The program as the kernel reads it (checked by checkFusedProgram).
struct FusedCode {
  int32_t numInputs, count, numOutputs;
  uint32_t inputBf16, outputBf16; // bit k: input / result k is bf16
  uint8_t op[kInstructions];
  int8_t a[kInstructions], b[kInstructions]; // b: -1 for one operand
  int8_t output[kOutputs];
};

/// The tensors.
struct FusedPointers {
  const void *input[kInputs];
  void *output[kOutputs];
};

/// S after merging, innermost dimension first, and each input's element
/// stride along it (0 where broadcast). I is int32_t when every offset fits.
template <typename I> struct FusedSpace {
  int rank;
  I size[kMaxOpRank];
  I stride[kInputs][kMaxOpRank];
};

/// One instruction: `x` (and `y` for two operands) are f32 values (a bf16
/// register holds its exactly widened value).
__device__ __forceinline__ float evaluate(int op, float x, float y) {
  switch (static_cast<FusedOp>(op)) {
  case FusedOp::Neg:
    return applyUnary(UnaryOp::Neg, x);
  case FusedOp::Abs:
    return applyUnary(UnaryOp::Abs, x);
  case FusedOp::Exp:
    return applyUnary(UnaryOp::Exp, x);
  case FusedOp::Log:
    return applyUnary(UnaryOp::Log, x);
  case FusedOp::Sqrt:
    return applyUnary(UnaryOp::Sqrt, x);
  case FusedOp::Rsqrt:
    return applyUnary(UnaryOp::Rsqrt, x);
  case FusedOp::Reciprocal:
    return applyUnary(UnaryOp::Reciprocal, x);
  case FusedOp::Tanh:
    return applyUnary(UnaryOp::Tanh, x);
  case FusedOp::Erf:
    return applyUnary(UnaryOp::Erf, x);
  case FusedOp::Sigmoid:
    return applyUnary(UnaryOp::Sigmoid, x);
  case FusedOp::Silu:
    return applyUnary(UnaryOp::Silu, x);
  case FusedOp::Relu:
    return applyUnary(UnaryOp::Relu, x);
  case FusedOp::Sin:
    return applyUnary(UnaryOp::Sin, x);
  case FusedOp::Cos:
    return applyUnary(UnaryOp::Cos, x);
  case FusedOp::Floor:
    return applyUnary(UnaryOp::Floor, x);
  case FusedOp::Ceil:
    return applyUnary(UnaryOp::Ceil, x);
  case FusedOp::Gelu:
    return applyUnary(UnaryOp::Gelu, x);
  case FusedOp::GeluTanh:
    return applyUnary(UnaryOp::GeluTanh, x);
  case FusedOp::Square: // binary Pow(x, 2): x * x, correctly rounded
    return __fmul_rn(x, x);
  case FusedOp::Add:
    return __fadd_rn(x, y);
  case FusedOp::Sub:
    return __fsub_rn(x, y);
  case FusedOp::Mul:
    return __fmul_rn(x, y);
  case FusedOp::Div:
    return __fdiv_rn(x, y);
  case FusedOp::Max: {
    float r = x;
    applyBinary(BinaryOp::Max, x, y, r, nullptr); // never a data error
    return r;
  }
  case FusedOp::Min: {
    float r = x;
    applyBinary(BinaryOp::Min, x, y, r, nullptr);
    return r;
  }
  case FusedOp::Pow: { // the binary Pow, its x^2 case included
    float r = x;
    applyBinary(BinaryOp::Pow, x, y, r, nullptr);
    return r;
  }
  case FusedOp::RoundBF16:
    return toFloat(toBFloat16Bits(x));
  case FusedOp::WidenBF16:
    return x;
  }
  return x; // not reached: the program was checked
}

template <typename I>
__global__ void __launch_bounds__(kThreads)
    fusedKernel(int64_t n, FusedSpace<I> space, FusedCode code,
                FusedPointers tensors) {
  float reg[kRegisters];
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    // The multi-index of element i of S (innermost first).
    I digit[kMaxOpRank];
    I rest = static_cast<I>(i);
#pragma unroll
    for (int j = 0; j < kMaxOpRank; ++j) {
      if (j < space.rank) {
        I q = j + 1 < space.rank ? rest / space.size[j] : I(0);
        digit[j] = rest - q * space.size[j];
        rest = q;
      } else {
        digit[j] = 0;
      }
    }
    for (int k = 0; k < code.numInputs; ++k) {
      I at = 0;
#pragma unroll
      for (int j = 0; j < kMaxOpRank; ++j)
        if (j < space.rank)
          at += digit[j] * space.stride[k][j];
      reg[k] = (code.inputBf16 >> k) & 1u
                   ? toFloat(static_cast<const BFloat16Bits *>(
                         tensors.input[k])[at])
                   : static_cast<const float *>(tensors.input[k])[at];
    }
    for (int k = 0; k < code.count; ++k) {
      float x = reg[code.a[k]];
      float y = code.b[k] >= 0 ? reg[code.b[k]] : 0.f;
      reg[code.numInputs + k] = evaluate(code.op[k], x, y);
    }
    for (int j = 0; j < code.numOutputs; ++j) {
      float v = reg[code.output[j]];
      if ((code.outputBf16 >> j) & 1u) // already bf16-representable
        static_cast<BFloat16Bits *>(tensors.output[j])[i] = toBFloat16Bits(v);
      else
        static_cast<float *>(tensors.output[j])[i] = v;
    }
  }
}

template <typename I>
FusedSpace<I> buildSpace(const SpaceBuilder<kInputs> &builder) {
  FusedSpace<I> space{};
  space.rank = builder.rank();
  for (int j = 0; j < space.rank; ++j) {
    int d = space.rank - 1 - j;
    space.size[j] = static_cast<I>(builder.size[d]);
    for (int k = 0; k < kInputs; ++k)
      space.stride[k][j] = static_cast<I>(builder.stride[k][d]);
  }
  return space;
}

/// Whether `in` broadcasts to `out` (NumPy rules, right-aligned).
bool broadcastsTo(const Shape &in, const Shape &out) {
  if (in.size() > out.size())
    return false;
  size_t lead = out.size() - in.size();
  for (size_t d = 0; d < in.size(); ++d)
    if (in[d] != out[lead + d] && in[d] != 1)
      return false;
  return true;
}

} // namespace

Status fusedElementwise(Context &ctx, const std::vector<TensorRef> &inputs,
                        const std::vector<TensorRef> &results,
                        const std::vector<int64_t> &program,
                        const std::vector<int64_t> &registers) {
  ShapeText text("fused_elementwise");
  for (size_t k = 0; k < inputs.size(); ++k)
    describeTensor(text, ("input" + std::to_string(k)).c_str(), inputs[k]);
  for (size_t j = 0; j < results.size(); ++j)
    describeTensor(text, ("result" + std::to_string(j)).c_str(), results[j]);
  text("instructions", program.size() / 3);

  // Everything is checked before the device is touched.
  std::vector<bool> inputIsBf16;
  for (size_t k = 0; k < inputs.size(); ++k) {
    DType d = inputs[k].dtype;
    if (d != DType::F32 && d != DType::BF16)
      return fail(text, "input " + std::to_string(k) + " is " + dtypeName(d) +
                            "; inputs must be f32 or bf16");
    inputIsBf16.push_back(d == DType::BF16);
  }
  std::vector<bool> registerIsBf16;
  if (std::string why =
          checkFusedProgram(program, registers, inputIsBf16, registerIsBf16);
      !why.empty())
    return fail(text, "bad program: " + why);
  if (results.size() != registers.size())
    return fail(text, std::to_string(results.size()) + " results for " +
                          std::to_string(registers.size()) +
                          " result registers");
  const Shape &shape = results[0].shape;
  for (size_t j = 0; j < results.size(); ++j) {
    if (results[j].shape != shape)
      return fail(text, "result " + std::to_string(j) + " is " +
                            shapeString(results[j].shape) + ", result 0 " +
                            shapeString(shape) +
                            "; all results must have one shape");
    DType want = registerIsBf16[registers[j]] ? DType::BF16 : DType::F32;
    if (results[j].dtype != want)
      return fail(text, "result " + std::to_string(j) + " is " +
                            dtypeName(results[j].dtype) + " but its register " +
                            std::to_string(registers[j]) + " is " +
                            dtypeName(want));
  }
  for (size_t k = 0; k < inputs.size(); ++k)
    if (!broadcastsTo(inputs[k].shape, shape))
      return fail(text, "input " + std::to_string(k) + " " +
                            shapeString(inputs[k].shape) +
                            " does not broadcast to the results' shape " +
                            shapeString(shape));
  int64_t n = numElements(shape);
  if (n == 0)
    return Status::success();

  SpaceBuilder<kInputs> builder;
  builder.size = shape;
  for (int k = 0; k < kInputs; ++k)
    builder.stride[k] = k < static_cast<int>(inputs.size())
                            ? broadcastStridesTo(inputs[k].shape, shape)
                            : std::vector<int64_t>(shape.size(), 0);
  builder.coalesce();
  if (builder.rank() > kMaxOpRank)
    return fail(text, "more than " + std::to_string(kMaxOpRank) +
                          " dimensions after merging; not supported on cuda");

  FusedCode code{};
  FusedPointers tensors{};
  code.numInputs = static_cast<int32_t>(inputs.size());
  code.count = static_cast<int32_t>(program.size() / 3);
  code.numOutputs = static_cast<int32_t>(results.size());
  for (size_t k = 0; k < inputs.size(); ++k) {
    tensors.input[k] = inputs[k].data;
    if (inputIsBf16[k])
      code.inputBf16 |= 1u << k;
  }
  for (int32_t k = 0; k < code.count; ++k) {
    code.op[k] = static_cast<uint8_t>(program[3 * k]);
    code.a[k] = static_cast<int8_t>(program[3 * k + 1]);
    code.b[k] = static_cast<int8_t>(program[3 * k + 2]);
  }
  for (size_t j = 0; j < results.size(); ++j) {
    tensors.output[j] = results[j].data;
    code.output[j] = static_cast<int8_t>(registers[j]);
    if (results[j].dtype == DType::BF16)
      code.outputBf16 |= 1u << j;
  }

  unsigned blocks = blocksFor(n, kThreads);
  cudaStream_t stream = streamOf(ctx);
  if (builder.fits32())
    fusedKernel<int32_t><<<blocks, kThreads, 0, stream>>>(
        n, buildSpace<int32_t>(builder), code, tensors);
  else
    fusedKernel<int64_t><<<blocks, kThreads, 0, stream>>>(
        n, buildSpace<int64_t>(builder), code, tensors);
  return checkLaunch(text);
}

} // namespace vlora::kernels::cuda::ops
