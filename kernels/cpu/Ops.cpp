//===- Ops.cpp - kernel names of the op families --------------------------===//

#include "vlora/kernels/Ops.h"

#include <utility>

namespace vlora::kernels {

std::optional<UnaryOp> parseUnaryOp(std::string_view k) {
  static const std::pair<const char *, UnaryOp> table[] = {
      {"neg", UnaryOp::Neg},         {"abs", UnaryOp::Abs},
      {"exp", UnaryOp::Exp},         {"log", UnaryOp::Log},
      {"sqrt", UnaryOp::Sqrt},       {"rsqrt", UnaryOp::Rsqrt},
      {"reciprocal", UnaryOp::Reciprocal}, {"tanh", UnaryOp::Tanh},
      {"erf", UnaryOp::Erf},         {"sigmoid", UnaryOp::Sigmoid},
      {"silu", UnaryOp::Silu},       {"relu", UnaryOp::Relu},
      {"sin", UnaryOp::Sin},         {"cos", UnaryOp::Cos},
      {"floor", UnaryOp::Floor},     {"ceil", UnaryOp::Ceil},
      {"not", UnaryOp::Not}};
  for (auto &[name, op] : table)
    if (k == name)
      return op;
  return std::nullopt;
}

std::optional<BinaryOp> parseBinaryOp(std::string_view k) {
  static const std::pair<const char *, BinaryOp> table[] = {
      {"add", BinaryOp::Add},     {"sub", BinaryOp::Sub},
      {"mul", BinaryOp::Mul},     {"div", BinaryOp::Div},
      {"pow", BinaryOp::Pow},     {"max", BinaryOp::Max},
      {"min", BinaryOp::Min},     {"and", BinaryOp::And},
      {"or", BinaryOp::Or},       {"xor", BinaryOp::Xor},
      {"equal", BinaryOp::Equal}, {"less", BinaryOp::Less},
      {"less_equal", BinaryOp::LessEqual}, {"greater", BinaryOp::Greater},
      {"greater_equal", BinaryOp::GreaterEqual}};
  for (auto &[name, op] : table)
    if (k == name)
      return op;
  return std::nullopt;
}

bool isCompare(BinaryOp op) {
  return op == BinaryOp::Equal || op == BinaryOp::Less ||
         op == BinaryOp::LessEqual || op == BinaryOp::Greater ||
         op == BinaryOp::GreaterEqual;
}

std::optional<ReduceOp> parseReduceOp(std::string_view k) {
  if (k == "reduce_sum") return ReduceOp::Sum;
  if (k == "reduce_mean") return ReduceOp::Mean;
  if (k == "reduce_max") return ReduceOp::Max;
  if (k == "reduce_min") return ReduceOp::Min;
  if (k == "reduce_prod") return ReduceOp::Prod;
  return std::nullopt;
}

} // namespace vlora::kernels
