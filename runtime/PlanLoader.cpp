//===- PlanLoader.cpp - reads and validates plan.pb -----------------------===//
//
// Every index, offset and size that comes from the file is checked here
// before anything is allocated or executed; per-kernel checks are in
// StepVerifier.cpp.
//
//===----------------------------------------------------------------------===//

#include "runtime/PlanTypes.h"
#include "runtime/Program.h"
#include "runtime/plan/PlanFormat.h"
#include "plan.pb.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace vlora::runtime {
using kernels::DType;

std::string ProgramStep::describe(size_t index) const {
  std::string s = "step " + std::to_string(index) + " '" + kernelName + "'";
  if (!location.empty())
    s += " at '" + location + "'";
  return s;
}

std::string Program::describeValue(uint32_t index) const {
  std::string s = "value " + std::to_string(index);
  if (index < values.size() && !values[index].name.empty())
    s += " ('" + values[index].name + "')";
  return s;
}

namespace {
/// Whether `kernel`'s output may be exactly the same bytes as the input at
/// `position` (the kernel reads each element before writing it).
bool mayAlias(Kernel kernel, size_t position) {
  switch (kernel) {
  case Kernel::Unary:
  case Kernel::Binary:
  case Kernel::Where:
  case Kernel::Cast:
  case Kernel::Reshape:
  case Kernel::Softmax:
  case Kernel::LogSoftmax:
  case Kernel::Cumsum:
  case Kernel::Trilu:
  case Kernel::FusedElementwise: // each element's inputs are read first
    return true;
  case Kernel::LayerNorm:
  case Kernel::RmsNorm:
  case Kernel::ScatterND:
  case Kernel::MaskedScatter:
    return position == 0;
  default:
    return false;
  }
}

bool isSafeRelativePath(const std::string &path) {
  if (path.empty() || path.front() == '/')
    return false;
  std::stringstream parts(path);
  std::string part;
  while (std::getline(parts, part, '/'))
    if (part == "..")
      return false;
  return true;
}
} // namespace

Expected<Program> validatePlan(const plan::Plan &plan, const std::string &source) {
  return catchErrors<Program>([&]() -> Expected<Program> {
    auto fail = [&](const std::string &what) {
      return Error(source + ": " + what);
    };
    if (plan.format_version() != plan::kFormatVersion)
      return fail("plan format version " + std::to_string(plan.format_version()) +
                  ", this runtime reads " + std::to_string(plan::kFormatVersion));
    Program program;
    program.source = source;
    program.compilerVersion = plan.compiler_version();
    program.arenaBytes = plan.arena_bytes();

    // Weights.
    for (int i = 0; i < plan.weights_size(); ++i) {
      const plan::Weight &w = plan.weights(i);
      std::string what = "weight " + std::to_string(i) + " ('" + w.name() + "')";
      if (w.root() != plan::MODEL && w.root() != plan::BUNDLE)
        return fail(what + ": unknown root " + std::to_string(w.root()));
      if (!isSafeRelativePath(w.file()))
        return fail(what + ": file '" + w.file() +
                    "' must be a relative path without '..'");
      Expected<CheckedType> type = checkType(w.type());
      if (!type)
        return fail(what + ": " + type.message());
      if (w.length() != type->bytes)
        return fail(what + ": length " + std::to_string(w.length()) +
                    " differs from the " + std::to_string(type->bytes) +
                    " bytes of its type");
      uint64_t end;
      if (__builtin_add_overflow(w.offset(), w.length(), &end))
        return fail(what + ": offset + length overflows");
      program.weights.push_back(
          {w.name(), w.root() == plan::BUNDLE ? WeightRootKind::Bundle : WeightRootKind::Model,
           w.file(), w.offset(), w.length(), type->dtype, type->shape});
    }

    // Values.
    for (int i = 0; i < plan.values_size(); ++i) {
      const plan::Value &v = plan.values(i);
      std::string what = "value " + std::to_string(i);
      if (!v.name().empty())
        what += " ('" + v.name() + "')";
      Expected<CheckedType> type = checkType(v.type());
      if (!type)
        return fail(what + ": " + type.message());
      ProgramValue value{v.name(), type->dtype, type->shape, type->bytes,
                         Storage::Arena, 0, 0, {}};
      switch (v.storage_case()) {
      case plan::Value::kArenaOffset: {
        uint64_t end;
        if (__builtin_add_overflow(v.arena_offset(), type->bytes, &end) ||
            end > plan.arena_bytes())
          return fail(what + ": arena bytes [" + std::to_string(v.arena_offset()) +
                      ", " + std::to_string(v.arena_offset() + type->bytes) +
                      ") go past the arena's " + std::to_string(plan.arena_bytes()) +
                      " bytes");
        if (v.arena_offset() % kernels::dtypeSize(type->dtype))
          return fail(what + ": arena offset " + std::to_string(v.arena_offset()) +
                      " is not aligned to its " +
                      std::to_string(kernels::dtypeSize(type->dtype)) +
                      "-byte elements");
        value.arenaOffset = v.arena_offset();
        break;
      }
      case plan::Value::kWeight: {
        if (v.weight() >= program.weights.size())
          return fail(what + ": weight index " + std::to_string(v.weight()) +
                      " is out of range (the plan has " +
                      std::to_string(program.weights.size()) + " weights)");
        const ProgramWeight &w = program.weights[v.weight()];
        if (w.dtype != type->dtype || w.shape != type->shape)
          return fail(what + ": type " + typeString(type->dtype, type->shape) +
                      " differs from weight '" + w.name + "' " +
                      typeString(w.dtype, w.shape));
        value.storage = Storage::Weight;
        value.weight = v.weight();
        break;
      }
      case plan::Value::kConstant: {
        if (v.constant().size() != type->bytes)
          return fail(what + ": constant has " + std::to_string(v.constant().size()) +
                      " bytes, its type " + typeString(type->dtype, type->shape) +
                      " needs " + std::to_string(type->bytes));
        value.storage = Storage::Constant;
        value.constant.assign((type->bytes + 7) / 8, 0);
        if (type->bytes)
          std::memcpy(value.constant.data(), v.constant().data(), type->bytes);
        break;
      }
      default:
        return fail(what + ": no storage (arena offset, weight or constant)");
      }
      program.values.push_back(std::move(value));
    }

    uint32_t numValues = static_cast<uint32_t>(program.values.size());
    auto checkIndex = [&](uint32_t index, const std::string &what) {
      if (index >= numValues)
        throw RuntimeError(source + ": " + what + ": value index " +
                           std::to_string(index) + " is out of range (the plan has " +
                           std::to_string(numValues) + " values)");
    };

    // Bindings.
    // Data flow is tracked by arena bytes, not by value: the compiler gives a
    // reshape of an arena value the same bytes under a new type (an alias,
    // no step), so a value is computed once its bytes are.
    std::vector<std::pair<uint64_t, uint64_t>> writtenRanges;
    auto markWritten = [&](uint32_t v) {
      const auto &value = program.values[v];
      writtenRanges.push_back({value.arenaOffset, value.arenaOffset + value.bytes});
    };
    auto isWritten = [&](uint32_t v) {
      const auto &value = program.values[v];
      uint64_t lo = value.arenaOffset, hi = value.arenaOffset + value.bytes;
      for (auto [a, b] : writtenRanges)
        if (a <= lo && hi <= b)
          return true;
      return false;
    };
    auto bindings = [&](const auto &list, std::vector<Binding> &out,
                        const char *kind) {
      for (const plan::Binding &b : list) {
        std::string what = std::string(kind) + " '" + b.name() + "'";
        if (b.name().empty())
          throw RuntimeError(source + ": " + kind + " with an empty name");
        for (const Binding &seen : out)
          if (seen.name == b.name())
            throw RuntimeError(source + ": " + what + " is bound twice");
        checkIndex(b.value(), what);
        out.push_back({b.name(), b.value()});
      }
    };
    bindings(plan.inputs(), program.inputs, "input");
    bindings(plan.outputs(), program.outputs, "output");
    // A plan computes something: this also refuses most truncated files,
    // which protobuf parses when they end at a field boundary.
    if (program.outputs.empty())
      return fail("the plan has no outputs (truncated?)");
    for (const Binding &b : program.inputs) {
      if (program.values[b.value].storage != Storage::Arena)
        return fail("input '" + b.name + "' is bound to " +
                    program.describeValue(b.value) + ", which is not in the arena");
      markWritten(b.value);
    }

    // Steps.
    for (int i = 0; i < plan.steps_size(); ++i) {
      const plan::Step &s = plan.steps(i);
      ProgramStep step;
      step.kernelName = s.kernel();
      step.location = s.location();
      std::string what = step.describe(i);
      for (uint32_t in : s.inputs()) {
        checkIndex(in, what + " input");
        step.inputs.push_back(in);
      }
      for (uint32_t out : s.outputs()) {
        checkIndex(out, what + " output");
        if (program.values[out].storage != Storage::Arena)
          return fail(what + ": output " + program.describeValue(out) +
                      " is not in the arena");
        step.outputs.push_back(out);
      }
      try {
        verifyStep(plan, i, program, step);
      } catch (const RuntimeError &e) {
        return fail(what + ": " + e.what());
      }
      // Data flow: arena inputs are computed before they are read.
      for (uint32_t in : step.inputs)
        if (program.values[in].storage == Storage::Arena && !isWritten(in))
          return fail(what + ": reads " + program.describeValue(in) +
                      " before any step computes it");
      // Outputs overlap neither each other nor inputs, except where the
      // kernel works in place on exactly the same bytes.
      auto overlap = [&](uint32_t a, uint32_t b) {
        const ProgramValue &x = program.values[a], &y = program.values[b];
        return x.bytes && y.bytes && x.arenaOffset < y.arenaOffset + y.bytes &&
               y.arenaOffset < x.arenaOffset + x.bytes;
      };
      for (size_t o = 0; o < step.outputs.size(); ++o) {
        uint32_t out = step.outputs[o];
        for (size_t p = 0; p < o; ++p)
          if (overlap(out, step.outputs[p]))
            return fail(what + ": outputs " + program.describeValue(step.outputs[p]) +
                        " and " + program.describeValue(out) + " overlap in the arena");
        for (size_t p = 0; p < step.inputs.size(); ++p) {
          uint32_t in = step.inputs[p];
          if (program.values[in].storage != Storage::Arena || !overlap(out, in))
            continue;
          const ProgramValue &x = program.values[out], &y = program.values[in];
          bool exact = x.arenaOffset == y.arenaOffset && x.bytes == y.bytes &&
                       kernels::dtypeSize(x.dtype) == kernels::dtypeSize(y.dtype);
          if (!exact || !mayAlias(step.kernel, p))
            return fail(what + ": output " + program.describeValue(out) +
                        " overlaps input " + program.describeValue(in) +
                        " in the arena");
        }
      }
      for (uint32_t out : step.outputs)
        markWritten(out);
      program.steps.push_back(std::move(step));
    }
    for (const Binding &b : program.outputs)
      if (program.values[b.value].storage == Storage::Arena && !isWritten(b.value))
        return fail("output '" + b.name + "' (" + program.describeValue(b.value) +
                    ") is never computed by any step");
    return program;
  });
}

Expected<Program> loadPlan(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return Error("cannot open " + path + ": " + std::strerror(errno));
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad())
    return Error("cannot read " + path);
  plan::Plan plan;
  if (!plan.ParseFromString(bytes))
    return Error(path + ": corrupt or truncated plan (not a valid vlora.plan.Plan message)");
  return validatePlan(plan, path);
}

} // namespace vlora::runtime
