//===- Fused.h - fused elementwise programs ---------------------*- C++ -*-===//
//
// A fused elementwise program (vlora.fused_elementwise, plan kernel
// "fused_elementwise", made by --vlora-fuse-elementwise) computes a chain of
// elementwise ops in one pass over its output shape S: each input is read
// once (NumPy-broadcast to S), the intermediates never reach memory, and
// only the results are written.
//
// Registers: 0 .. numInputs-1 are the inputs; instruction k writes register
// numInputs + k. The program is a flat list of instructions of three
// integers (opcode, a, b): a and b are earlier registers, b is -1 for a
// one-operand opcode. `outputs` lists the register each result is.
//
// Every register is f32 or bf16. An input has its tensor's element type.
// RoundBF16 makes a bf16 register (f32 rounded to nearest even, as the cast
// kernel rounds); WidenBF16 makes an f32 register of a bf16 one (exact);
// every other opcode reads f32 registers and makes an f32 register. A result
// has its register's element type.
//
// Each opcode computes bitwise what the unfused kernel of the same op
// computes on the same backend (the CPU kernels' f32 paths, the CUDA twins),
// so a fused program's results equal the unfused ops' results on that
// backend (a NaN may differ in sign or payload: vectorised loops may swap
// the operands of a commutative op).
//
//===----------------------------------------------------------------------===//

#ifndef VLORA_KERNELS_FUSED_H
#define VLORA_KERNELS_FUSED_H

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace vlora::kernels {

/// The opcodes; the values are part of the plan format.
enum class FusedOp : int64_t {
  // f32 -> f32, one operand (the UnaryOp of the same name; Square is
  // Pow(x, 2) as x * x).
  Neg = 1, Abs = 2, Exp = 3, Log = 4, Sqrt = 5, Rsqrt = 6, Reciprocal = 7,
  Tanh = 8, Erf = 9, Sigmoid = 10, Silu = 11, Relu = 12, Sin = 13, Cos = 14,
  Floor = 15, Ceil = 16, Gelu = 17, GeluTanh = 18, Square = 19,
  // f32 x f32 -> f32 (the BinaryOp of the same name; Pow is the general
  // power, what the kernels compute when their x * x path does not apply).
  Add = 32, Sub = 33, Mul = 34, Div = 35, Max = 36, Min = 37, Pow = 38,
  // Conversions.
  RoundBF16 = 48, // f32 -> bf16
  WidenBF16 = 49, // bf16 -> f32
};

/// Whether `code` is an opcode, and how many operands it takes (1 or 2).
inline std::optional<int> fusedOperandCount(int64_t code) {
  if (code >= 1 && code <= 19)
    return 1;
  if (code >= 32 && code <= 38)
    return 2;
  if (code == 48 || code == 49)
    return 1;
  return std::nullopt;
}

/// The most instructions, inputs and results one program may have.
constexpr int64_t kMaxFusedInstructions = 64;
constexpr int64_t kMaxFusedInputs = 16;
constexpr int64_t kMaxFusedOutputs = 8;

/// Checks a program against the rules above, given whether each input is
/// bf16 (else f32). Fills `registerIsBf16` (inputs first) and returns an
/// empty string when the program is valid, else what is wrong, naming the
/// instruction.
inline std::string checkFusedProgram(const std::vector<int64_t> &program,
                                     const std::vector<int64_t> &outputs,
                                     const std::vector<bool> &inputIsBf16,
                                     std::vector<bool> &registerIsBf16) {
  int64_t numInputs = static_cast<int64_t>(inputIsBf16.size());
  if (numInputs < 1 || numInputs > kMaxFusedInputs)
    return "takes " + std::to_string(numInputs) + " inputs (1 to " +
           std::to_string(kMaxFusedInputs) + ")";
  if (program.empty() || program.size() % 3 != 0)
    return "program has " + std::to_string(program.size()) +
           " integers, not a positive multiple of 3";
  int64_t count = static_cast<int64_t>(program.size() / 3);
  if (count > kMaxFusedInstructions)
    return "program has " + std::to_string(count) + " instructions (at most " +
           std::to_string(kMaxFusedInstructions) + ")";
  registerIsBf16.assign(inputIsBf16.begin(), inputIsBf16.end());
  for (int64_t k = 0; k < count; ++k) {
    int64_t code = program[3 * k], a = program[3 * k + 1], b = program[3 * k + 2];
    int64_t self = numInputs + k;
    std::string at = "instruction " + std::to_string(k) + " (opcode " + std::to_string(code) + ")";
    std::optional<int> arity = fusedOperandCount(code);
    if (!arity)
      return at + ": unknown opcode";
    if (a < 0 || a >= self)
      return at + ": operand register " + std::to_string(a) + " is not an earlier register";
    if (*arity == 2 ? (b < 0 || b >= self) : b != -1)
      return at + ": second operand " + std::to_string(b) +
             (*arity == 2 ? " is not an earlier register" : " must be -1");
    bool wantBf16 = code == static_cast<int64_t>(FusedOp::WidenBF16);
    if (registerIsBf16[a] != wantBf16 || (*arity == 2 && registerIsBf16[b]))
      return at + ": reads a " + std::string(wantBf16 ? "f32" : "bf16") +
             " register where it takes " + (wantBf16 ? "bf16" : "f32");
    registerIsBf16.push_back(code == static_cast<int64_t>(FusedOp::RoundBF16));
  }
  if (outputs.empty() || static_cast<int64_t>(outputs.size()) > kMaxFusedOutputs)
    return "has " + std::to_string(outputs.size()) + " results (1 to " +
           std::to_string(kMaxFusedOutputs) + ")";
  for (int64_t r : outputs)
    if (r < numInputs || r >= numInputs + count)
      return "result register " + std::to_string(r) + " is not an instruction's";
  return "";
}

} // namespace vlora::kernels

#endif // VLORA_KERNELS_FUSED_H
