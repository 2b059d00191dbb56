//===- CpuBackend.cpp - runs a program with the CPU kernels ---------------===//

#include "runtime/Backend.h"
#include "vlora/kernels/Cpu.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>

namespace vlora::runtime {
using kernels::DType;
namespace cpu = kernels::cpu;

namespace {
struct FreeDeleter {
  void operator()(void *p) const { std::free(p); }
};

bool isBlasFloat(DType d) { return d == DType::F32 || d == DType::F64; }
bool isArithmetic(DType d) {
  return d == DType::F32 || d == DType::F64 || d == DType::I64 || d == DType::I32;
}

class CpuBackend final : public Backend {
public:
  /// VLORA_PROFILE=1 (benchmarking): time every step and print, when the
  /// backend goes away, the wall time per kernel per run to stderr. With
  /// more than one run the first (which faults the weights in) is left out.
  /// VLORA_PROFILE=shapes: per kernel and operand shapes.
  CpuBackend() {
    const char *env = std::getenv("VLORA_PROFILE");
    profile_ = env && *env && std::strcmp(env, "0") != 0;
    profileShapes_ = profile_ && std::strcmp(env, "shapes") == 0;
  }
  ~CpuBackend() override {
    if (!profile_ || profileRuns_ == 0)
      return;
    bool skipFirst = profileRuns_ > 1;
    long runs = profileRuns_ - (skipFirst ? 1 : 0);
    std::vector<std::pair<double, std::string>> rows;
    double total = 0;
    for (const auto &[name, t] : profileTimes_) {
      double ms = t.total - (skipFirst ? t.first : 0);
      rows.push_back({ms, name});
      total += ms;
    }
    std::sort(rows.rbegin(), rows.rend());
    std::fprintf(stderr, "vlora profile: %.3f ms per run in steps (%ld runs%s)\n",
                 total / runs, runs, skipFirst ? ", first run left out" : "");
    for (const auto &[ms, name] : rows)
      std::fprintf(stderr, "  %-16s %10.3f ms/run %5.1f%%  %ld steps/run\n",
                   name.c_str(), ms / runs, total > 0 ? 100 * ms / total : 0.0,
                   profileTimes_[name].steps / profileRuns_);
  }

  const char *name() const override { return "cpu"; }

  Status prepare(const Program &program,
                 const std::vector<const void *> &weights) override {
    program_ = &program;
    weights_ = weights;
    for (size_t i = 0; i < program.steps.size(); ++i) {
      std::string problem = unsupported(program.steps[i]);
      if (!problem.empty())
        return Error(program.source + ": " + program.steps[i].describe(i) +
                     ": the cpu backend " + problem);
    }
    size_t size = (program.arenaBytes + 63) / 64 * 64;
    if (size == 0)
      size = 64;
    arena_.reset(std::aligned_alloc(64, size));
    if (!arena_)
      return Error("cannot allocate the arena of " +
                   std::to_string(program.arenaBytes) + " bytes");
    return Status::success();
  }

  Status write(uint32_t value, const void *host) override {
    const ProgramValue &v = program_->values[value];
    if (v.storage != Storage::Arena)
      return Error(program_->describeValue(value) + " is not in the arena");
    if (v.bytes)
      std::memcpy(pointer(value), host, v.bytes);
    return Status::success();
  }

  Status read(uint32_t value, void *host) override {
    const ProgramValue &v = program_->values[value];
    if (v.bytes)
      std::memcpy(host, pointer(value), v.bytes);
    return Status::success();
  }

  const void *address(uint32_t value) const override { return pointer(value); }

  Status copyIn(const std::vector<Copy> &copies) override {
    // Staged: every source read before any value is written.
    std::vector<std::vector<uint8_t>> staged;
    for (const Copy &c : copies) {
      const ProgramValue &v = program_->values[c.value];
      if (v.storage != Storage::Arena)
        return Error(program_->describeValue(c.value) + " is not in the arena");
      const auto *from = static_cast<const uint8_t *>(c.source);
      staged.emplace_back(from, from + v.bytes);
    }
    for (size_t i = 0; i < copies.size(); ++i)
      if (!staged[i].empty())
        std::memcpy(pointer(copies[i].value), staged[i].data(), staged[i].size());
    return Status::success();
  }

  Status zero(uint32_t value) override {
    const ProgramValue &v = program_->values[value];
    if (v.storage != Storage::Arena)
      return Error(program_->describeValue(value) + " is not in the arena");
    if (v.bytes)
      std::memset(pointer(value), 0, v.bytes);
    return Status::success();
  }

  Status run() override {
    for (size_t i = 0; i < program_->steps.size(); ++i) {
      const ProgramStep &step = program_->steps[i];
      try {
        if (profile_) {
          auto start = std::chrono::steady_clock::now();
          execute(step);
          std::chrono::duration<double, std::milli> ms =
              std::chrono::steady_clock::now() - start;
          std::string key = step.kernelName;
          if (profileShapes_) {
            for (uint32_t v : step.inputs)
              key += " " + kernels::shapeString(program_->values[v].shape);
            key += " ->";
            for (uint32_t v : step.outputs)
              key += " " + kernels::shapeString(program_->values[v].shape);
          }
          ProfileSlot &slot = profileTimes_[key];
          slot.total += ms.count();
          if (profileRuns_ == 0)
            slot.first += ms.count();
          slot.steps += 1;
        } else {
          execute(step);
        }
      } catch (const std::bad_alloc &) {
        return Error(step.describe(i) + ": out of memory");
      } catch (const std::exception &e) {
        return Error(step.describe(i) + ": " + e.what());
      }
    }
    if (profile_)
      ++profileRuns_;
    return Status::success();
  }

  Status runStep(size_t index) override {
    const ProgramStep &step = program_->steps[index];
    try {
      execute(step);
    } catch (const std::bad_alloc &) {
      return Error(step.describe(index) + ": out of memory");
    } catch (const std::exception &e) {
      return Error(step.describe(index) + ": " + e.what());
    }
    return Status::success();
  }

private:
  DType dtypeOf(const ProgramStep &s, size_t input) const {
    return program_->values[s.inputs[input]].dtype;
  }
  DType outputDTypeOf(const ProgramStep &s, size_t output) const {
    return program_->values[s.outputs[output]].dtype;
  }

  /// Why the CPU kernels cannot run `s`, or "".
  std::string unsupported(const ProgramStep &s) const {
    DType d = dtypeOf(s, 0);
    auto no = [&](DType t) {
      return std::string("has no '") + s.kernelName + "' kernel for element type " +
             kernels::dtypeName(t);
    };
    switch (s.kernel) {
    case Kernel::Unary:
      return cpu::supportsUnary(s.unary, d) ? "" : no(d);
    case Kernel::Binary:
      return cpu::supportsBinary(s.binary, d) ? "" : no(d);
    case Kernel::Matmul:
      // bf16 operands with an f32 result (a bf16 weight, or the bf16
      // activations of f32_result; the verifier allows no other mix): the
      // kernel widens them exactly.
      return isBlasFloat(outputDTypeOf(s, 0)) ? "" : no(outputDTypeOf(s, 0));
    case Kernel::Conv:
    case Kernel::Softmax:
    case Kernel::LogSoftmax:
    case Kernel::LayerNorm:
    case Kernel::RmsNorm:
    case Kernel::GatherGrad:
      return isBlasFloat(d) ? "" : no(d);
    case Kernel::LoRAMatmul:
    case Kernel::LoRAMatmulGrad: {
      // The result type (lora_matmul's output, lora_matmul_grad's dy): x
      // and w share it, or are bf16 with an f32 result (widened exactly).
      size_t x = s.kernel == Kernel::LoRAMatmul ? 0 : 1;
      DType dx = s.kernel == Kernel::LoRAMatmul ? outputDTypeOf(s, 0)
                                                : dtypeOf(s, 0);
      DType da = dtypeOf(s, x + 2);
      if (!isBlasFloat(dx))
        return no(dx);
      for (size_t i : {x, x + 1})
        if (DType di = dtypeOf(s, i);
            di != dx && !(di == DType::BF16 && dx == DType::F32))
          return no(di);
      if (da != dx)
        return "has no '" + s.kernelName + "' kernel for " +
               std::string(kernels::dtypeName(dx)) + " activations with " +
               kernels::dtypeName(da) + " adapters";
      return "";
    }
    case Kernel::LinearCrossEntropy: {
      // The input and the weight share the input gradient's type, or are
      // bf16 with an f32 one: widened.
      DType dg = outputDTypeOf(s, 1);
      for (size_t i : {size_t(0), size_t(1)})
        if (DType di = dtypeOf(s, i);
            di != dg && !(di == DType::BF16 && dg == DType::F32))
          return no(di);
      return isBlasFloat(dg) ? "" : no(dg);
    }
    case Kernel::CrossEntropy:
    case Kernel::SoftmaxGrad:
    case Kernel::AdamWUpdate:
      return isBlasFloat(d) ? "" : no(d);
    case Kernel::Attention:
    case Kernel::AttentionGrad:
      // The result's type (bf16 q, k, v with f32_result are widened).
      return isBlasFloat(outputDTypeOf(s, 0)) ? "" : no(outputDTypeOf(s, 0));
    case Kernel::CrossEntropyGrad:
    case Kernel::LayerNormGrad:
      return isBlasFloat(dtypeOf(s, 1)) ? "" : no(dtypeOf(s, 1));
    case Kernel::GlobalNorm:
      for (size_t i = 0; i < s.inputs.size(); ++i)
        if (!isBlasFloat(dtypeOf(s, i)))
          return no(dtypeOf(s, i));
      return "";
    case Kernel::Cumsum:
    case Kernel::Reduce:
    case Kernel::ArgMax:
      return isArithmetic(d) ? "" : no(d);
    default:
      return ""; // where, cast and data movement: every element type
    }
  }

  void *pointer(uint32_t value) const {
    const ProgramValue &v = program_->values[value];
    switch (v.storage) {
    case Storage::Arena:
      return static_cast<char *>(arena_.get()) + v.arenaOffset;
    case Storage::Weight:
      return const_cast<void *>(weights_[v.weight]);
    case Storage::Constant:
      return const_cast<uint64_t *>(v.constant.data());
    }
    return nullptr;
  }

  kernels::TensorRef ref(uint32_t value) const {
    const ProgramValue &v = program_->values[value];
    return {pointer(value), v.dtype, v.shape};
  }

  void execute(const ProgramStep &s) const {
    std::vector<kernels::TensorRef> in, out;
    for (uint32_t v : s.inputs)
      in.push_back(ref(v));
    for (uint32_t v : s.outputs)
      out.push_back(ref(v));
    switch (s.kernel) {
    case Kernel::Unary: return cpu::unary(s.unary, in[0], out[0]);
    case Kernel::Binary: return cpu::binary(s.binary, in[0], in[1], out[0]);
    case Kernel::Where: return cpu::where(in[0], in[1], in[2], out[0]);
    case Kernel::Cast: return cpu::cast(in[0], out[0]);
    case Kernel::FusedElementwise:
      return cpu::fusedElementwise(in, out, s.program, s.registers);
    case Kernel::Matmul:
      return cpu::matmul(in[0], in[1], out[0], s.transposeA, s.transposeB);
    case Kernel::LoRAMatmul:
      if (in.size() > 4)
        return cpu::loraMatmulDropout(in[0], in[1], in[2], in[3], in[4], out[0],
                                      s.scale, s.dropout, s.stream, s.transposeB);
      return cpu::loraMatmul(in[0], in[1], in[2], in[3], out[0], s.scale, s.transposeB);
    case Kernel::LoRAMatmulGrad:
      return cpu::loraMatmulGrad(in[0], in[1], in[2], in[3], in[4],
                                 in.size() > 5 ? &in[5] : nullptr, out[0], out[1],
                                 out.size() > 2 ? &out[2] : nullptr, s.scale,
                                 s.dropout, s.stream, s.transposeB);
    case Kernel::CrossEntropy:
      return cpu::crossEntropy(in[0], in[1], out[0], s.ignoreIndex);
    case Kernel::CrossEntropyGrad:
      return cpu::crossEntropyGrad(in[0], in[1], in[2], out[0], s.ignoreIndex);
    case Kernel::LinearCrossEntropy:
      return cpu::linearCrossEntropy(in[0], in[1], in[2], in[3], out[0], out[1],
                                     s.ignoreIndex, s.transposeB);
    case Kernel::SoftmaxGrad: return cpu::softmaxGrad(in[0], in[1], out[0], s.axis);
    case Kernel::Attention:
      return cpu::attention(in[0], in[1], in[2], in.size() > 3 ? &in[3] : nullptr,
                            out[0], s.scale, s.transposeK);
    case Kernel::AttentionGrad:
      return cpu::attentionGrad(in[0], in[1], in[2], in[3],
                                in.size() > 4 ? &in[4] : nullptr, out[0], out[1],
                                out[2], s.scale, s.transposeK);
    case Kernel::LayerNormGrad:
      return cpu::layerNormGrad(in[0], in[1], in[2], out[0], s.axis, s.epsilon);
    case Kernel::MaskedSelect: return cpu::maskedSelect(in[0], in[1], out[0]);
    case Kernel::GlobalNorm: return cpu::globalNorm(in, out[0]);
    case Kernel::AdamWUpdate:
      return cpu::adamW(in[0], in[1], in[2], in[3], in[4], in[5], in[6],
                        in.size() > 7 ? &in[7] : nullptr, out[0], out[1], out[2],
                        s.beta1, s.beta2, s.eps);
    case Kernel::Conv:
      return cpu::conv(in[0], in[1], in.size() > 2 ? &in[2] : nullptr, out[0],
                       s.strides, s.pads, s.dilations, s.group);
    case Kernel::Softmax: return cpu::softmax(in[0], out[0], s.axis, false);
    case Kernel::LogSoftmax: return cpu::softmax(in[0], out[0], s.axis, true);
    case Kernel::Cumsum:
      return cpu::cumsum(in[0], out[0], s.axis, s.exclusive, s.reverse);
    case Kernel::LayerNorm:
      return cpu::layerNorm(in[0], in[1], in.size() > 2 ? &in[2] : nullptr, out[0],
                            s.axis, s.epsilon);
    case Kernel::RmsNorm: return cpu::rmsNorm(in[0], in[1], out[0], s.axis, s.epsilon);
    case Kernel::Reduce: return cpu::reduce(s.reduce, in[0], out[0], s.axes);
    case Kernel::ArgMax: return cpu::argmax(in[0], out[0], s.axis, s.selectLast);
    case Kernel::Reshape: return cpu::copy(in[0], out[0]);
    case Kernel::Transpose: return cpu::transpose(in[0], out[0], s.perm);
    case Kernel::Slice: return cpu::slice(in[0], out[0], s.starts, s.strides);
    case Kernel::Concat: return cpu::concat(in, out[0], s.axis);
    case Kernel::Split: return cpu::split(in[0], out, s.axis);
    case Kernel::Gather: return cpu::gather(in[0], in[1], out[0], s.axis);
    case Kernel::GatherGrad: return cpu::gatherGrad(in[0], in[1], out[0], s.axis);
    case Kernel::GatherElements:
      return cpu::gatherElements(in[0], in[1], out[0], s.axis);
    case Kernel::GatherND: return cpu::gatherND(in[0], in[1], out[0]);
    case Kernel::ScatterND: return cpu::scatterND(in[0], in[1], in[2], out[0]);
    case Kernel::MaskedScatter: return cpu::maskedScatter(in[0], in[1], in[2], out[0]);
    case Kernel::Expand: return cpu::expand(in[0], out[0]);
    case Kernel::Pad: return cpu::pad(in[0], out[0], s.pads, s.value);
    case Kernel::Trilu: return cpu::trilu(in[0], out[0], s.upper, s.k);
    }
  }

  const Program *program_ = nullptr;
  std::vector<const void *> weights_;
  std::unique_ptr<void, FreeDeleter> arena_;
  bool profile_ = false, profileShapes_ = false;
  long profileRuns_ = 0;
  struct ProfileSlot {
    double total = 0, first = 0;
    long steps = 0;
  };
  std::map<std::string, ProfileSlot> profileTimes_;
};
} // namespace

std::unique_ptr<Backend> createCpuBackend() { return std::make_unique<CpuBackend>(); }

} // namespace vlora::runtime
