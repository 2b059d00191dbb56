//===- Ops.h - the op families the kernels implement ------------*- C++ -*-===//
//
// Enumerations shared by every backend's kernels: which unary, binary and
// reduction op to apply. Kernel names are the vlora op names.
//
//===----------------------------------------------------------------------===//

#ifndef VLORA_KERNELS_OPS_H
#define VLORA_KERNELS_OPS_H

#include <optional>
#include <string_view>

namespace vlora::kernels {

enum class UnaryOp {
  Neg, Abs, Exp, Log, Sqrt, Rsqrt, Reciprocal, Tanh, Erf, Sigmoid, Silu, Relu,
  Sin, Cos, Floor, Ceil, Not, Gelu, GeluTanh
};
std::optional<UnaryOp> parseUnaryOp(std::string_view kernel);
enum class BinaryOp {
  Add, Sub, Mul, Div, Pow, Max, Min, And, Or, Xor,
  Equal, Less, LessEqual, Greater, GreaterEqual
};
std::optional<BinaryOp> parseBinaryOp(std::string_view kernel);
/// Compare ops produce Bool; the others the operands' type.
bool isCompare(BinaryOp op);
enum class ReduceOp { Sum, Mean, Max, Min, Prod };
std::optional<ReduceOp> parseReduceOp(std::string_view kernel);
} // namespace vlora::kernels

#endif // VLORA_KERNELS_OPS_H
