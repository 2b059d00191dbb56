//===- PlanFormat.h - the plan format version -------------------*- C++ -*-===//
//
// The version of runtime/plan/plan.proto that this runtime reads and the
// compiler writes. Bump it on any incompatible change to the format or to
// the meaning of a kernel's attributes.
//
//===----------------------------------------------------------------------===//

#ifndef VLORA_RUNTIME_PLAN_PLANFORMAT_H
#define VLORA_RUNTIME_PLAN_PLANFORMAT_H

#include <cstdint>

namespace vlora::plan {
constexpr uint32_t kFormatVersion = 1;
} // namespace vlora::plan

#endif // VLORA_RUNTIME_PLAN_PLANFORMAT_H
