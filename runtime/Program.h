//===- Program.h - a validated plan -----------------------------*- C++ -*-===//
//
// What the plan loader produces from plan.pb once every index, offset, size,
// attribute and shape has been checked: values with their storage, weights,
// input/output bindings, and steps with decoded attributes. Backends execute
// a Program without re-checking it.
//
//===----------------------------------------------------------------------===//

#ifndef VLORA_RUNTIME_PROGRAM_H
#define VLORA_RUNTIME_PROGRAM_H

#include "runtime/Error.h"
#include "vlora/kernels/Ops.h"
#include "vlora/kernels/Tensor.h"

#include <cstdint>
#include <string>
#include <vector>

namespace vlora::plan {
class Plan;
} // namespace vlora::plan

namespace vlora::runtime {

enum class Storage { Arena, Weight, Constant };

struct ProgramValue {
  std::string name; // may be empty
  kernels::DType dtype;
  kernels::Shape shape;
  uint64_t bytes;
  Storage storage;
  uint64_t arenaOffset = 0; // Storage::Arena
  uint32_t weight = 0;      // Storage::Weight
  /// Storage::Constant: the bytes, copied into 8-byte aligned words.
  std::vector<uint64_t> constant;
};

enum class WeightRootKind { Model, Bundle };

struct ProgramWeight {
  std::string name;
  WeightRootKind root;
  std::string file; // relative, no ".." components
  uint64_t offset;
  uint64_t length;
  kernels::DType dtype;
  kernels::Shape shape;
};

enum class Kernel {
  Unary, Binary, Where, Cast, Matmul, LoRAMatmul, Conv, Softmax, LogSoftmax,
  Cumsum, LayerNorm, RmsNorm, Reduce, ArgMax, Reshape, Transpose, Slice,
  Concat, Split, Gather, GatherGrad, GatherElements, GatherND, ScatterND, MaskedScatter,
  Expand, Pad, Trilu,
  // Training (docs/training.md).
  CrossEntropy, CrossEntropyGrad, LinearCrossEntropy, SoftmaxGrad, LayerNormGrad, LoRAMatmulGrad,
  MaskedSelect, GlobalNorm, AdamWUpdate, Attention, AttentionGrad,
  // --vlora-fuse-elementwise (vlora/kernels/Fused.h).
  FusedElementwise
};

/// One step with its attributes decoded (only those of its kernel are set).
struct ProgramStep {
  Kernel kernel;
  std::string kernelName; // as in the plan: "matmul", "gelu", ...
  std::string location;   // the ONNX node name
  std::vector<uint32_t> inputs, outputs;

  kernels::UnaryOp unary = kernels::UnaryOp::Neg;    // unary ops and gelu
  kernels::BinaryOp binary = kernels::BinaryOp::Add; // binary ops
  kernels::ReduceOp reduce = kernels::ReduceOp::Sum; // reduce_*
  int64_t axis = 0;  // normalised to [0, rank)
  int64_t group = 1; // conv
  int64_t k = 0;     // trilu
  bool transposeA = false, transposeB = false, keepdims = false,
       selectLast = false, exclusive = false, reverse = false, upper = false;
  bool inputGrad = false;   // lora_matmul_grad: computes grad_x
  bool f32Result = false;   // matmul family: bf16/f32 operands, f32 result
  bool transposeK = false;  // attention(_grad): k is [..., T, D]
  int64_t stream = 0;       // lora_matmul(_grad) with an rng input: >= 0
  int64_t ignoreIndex = 0;  // cross_entropy(_grad)
  double epsilon = 0, scale = 0, dropout = 0, value = 0;
  double beta1 = 0, beta2 = 0, eps = 0; // adamw_update
  kernels::Shape axes; // reduce_*: normalised
  kernels::Shape perm, starts, limits, strides, pads, dilations, shape, sizes;
  kernels::DType castTo = kernels::DType::F32;
  std::vector<int64_t> program, registers; // fused_elementwise

  /// "step 3 'matmul' at '/model/MatMul'" for messages.
  std::string describe(size_t index) const;
};

struct Binding {
  std::string name;
  uint32_t value;
};

struct Program {
  std::string source; // the plan file, for messages
  std::string compilerVersion;
  uint64_t arenaBytes = 0;
  std::vector<ProgramValue> values;
  std::vector<ProgramWeight> weights;
  std::vector<Binding> inputs, outputs;
  std::vector<ProgramStep> steps;

  /// "value 4 ('logits')" for messages.
  std::string describeValue(uint32_t index) const;
};

/// Reads and validates a plan.pb. Errors name the file and the step, value,
/// weight or binding at fault.
Expected<Program> loadPlan(const std::string &path);

/// Validates an already parsed plan; `source` names it in messages.
Expected<Program> validatePlan(const plan::Plan &plan, const std::string &source);

/// Checks one step's arity, attributes and shapes against `program`'s values
/// and decodes its attributes into `step` (kernel, kernelName, inputs and
/// outputs set). Throws RuntimeError with the problem (without the step's
/// name). Part of validatePlan.
void verifyStep(const plan::Plan &plan, size_t index, const Program &program,
                ProgramStep &step);

} // namespace vlora::runtime

#endif // VLORA_RUNTIME_PROGRAM_H
