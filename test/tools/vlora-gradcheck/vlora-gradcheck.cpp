//===- vlora-gradcheck.cpp - finite-difference checks of the reverse rules -===//
//
// vlora-gradcheck FILE.mlir [--split-input-file] [--step H] [--rtol R]
//                 [--atol A] [--max-elements N] [--seed S] [--fuse-lm-head=false]
//
// For every module (or every `// -----` chunk): builds @train_step with
// --vlora-build-training-step, lowers it, runs it on the CPU backend with
// random inputs and adapters, and compares every adapter gradient it returns
// with fourth-order central differences of the loss it returns,
// element by element (all elements, or a seeded sample of --max-elements per
// adapter). Frozen weights must be `vlora.constant`s (no weight files);
// integer inputs other than `labels` are refused (put indices in
// constants). Labels are drawn in [0, vocab) with about a quarter set to
// -100. Prints one line per adapter and exits 1 on any mismatch, or when
// every gradient is zero (the check would prove nothing).
//
//===----------------------------------------------------------------------===//

#include "VLRT/Export/PlanExport.h"
#include "VLRT/IR/VLRTOps.h"
#include "VLoRA/IR/VLoRADialect.h"
#include "VLoRA/IR/VLoRAOps.h"
#include "passes/Passes.h"
#include "vlora/Version.h"

#include "runtime/Program.h"
#include "runtime/Runtime.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Support/FileUtilities.h"
#include "mlir/Support/ToolUtilities.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/raw_ostream.h"

#include <cmath>
#include <cstring>
#include <algorithm>
#include <random>
#include <map>
#include <set>
#include <variant>

using namespace mlir;
namespace cl = llvm::cl;
using vlora::kernels::DType;

static cl::opt<std::string> inputFile(cl::Positional, cl::desc("<file.mlir>"), cl::Required);
static cl::opt<bool> splitInput("split-input-file",
                                cl::desc("Check every '// -----' chunk separately"));
static cl::opt<double> stepOpt("step", cl::desc("Finite-difference step (1e-2)"),
                               cl::init(1e-2));
static cl::opt<double> relTol("rtol", cl::desc("Relative tolerance (2e-2)"), cl::init(2e-2));
static cl::opt<double> absTol("atol", cl::desc("Absolute tolerance (1e-3)"), cl::init(1e-3));
static cl::opt<unsigned> maxElements("max-elements",
                                     cl::desc("Elements checked per adapter (64)"),
                                     cl::init(64));
static cl::opt<unsigned> seed("seed", cl::desc("Random seed (0)"), cl::init(0));
static cl::opt<bool> fuseLmHead("fuse-lm-head",
                                cl::desc("The pass's fuse-lm-head option (true)"),
                                cl::init(true));

namespace {

struct Failure {
  std::string message;
};

/// An input's host bytes.
struct HostTensor {
  vlora::runtime::TensorInfo info;
  std::vector<uint8_t> bytes;
};

double readScalar(const std::vector<uint8_t> &bytes, DType dtype) {
  if (dtype == DType::F64) {
    double v;
    std::memcpy(&v, bytes.data(), 8);
    return v;
  }
  float v;
  std::memcpy(&v, bytes.data(), 4);
  return v;
}

double element(const std::vector<uint8_t> &bytes, DType dtype, size_t i) {
  if (dtype == DType::F64) {
    double v;
    std::memcpy(&v, bytes.data() + 8 * i, 8);
    return v;
  }
  float v;
  std::memcpy(&v, bytes.data() + 4 * i, 4);
  return v;
}

void setElement(std::vector<uint8_t> &bytes, DType dtype, size_t i, double v) {
  if (dtype == DType::F64) {
    std::memcpy(bytes.data() + 8 * i, &v, 8);
    return;
  }
  float f = float(v);
  std::memcpy(bytes.data() + 4 * i, &f, 4);
}

/// Checks one module; returns the number of mismatching adapters, or a
/// Failure when the module cannot be checked at all.
std::variant<int, Failure> checkModule(ModuleOp module, llvm::raw_ostream &os,
                                       unsigned chunk) {
  auto main = module.lookupSymbol<func::FuncOp>("main");
  if (!main || main.getNumResults() != 1)
    return Failure{"no @main with one logits result"};
  int64_t vocab = cast<RankedTensorType>(main.getResultTypes()[0]).getShape().back();
  std::set<std::string> adapterNames;
  main.walk([&](vlora::ParamOp p) {
    if (p.getRole() == vlora::ParamRole::trainable)
      adapterNames.insert(p.getName().str());
    else
      adapterNames.insert("<frozen>" + p.getName().str());
  });
  for (const std::string &n : adapterNames)
    if (llvm::StringRef(n).starts_with("<frozen>"))
      return Failure{"frozen parameter '" + n.substr(8) +
                     "': give frozen weights as vlora.constant"};

  PassManager pm(module.getContext());
  vlora::VLoRABuildTrainingStepOptions options;
  options.fuseLmHead = fuseLmHead;
  pm.addPass(vlora::createVLoRABuildTrainingStep(options));
  pm.addPass(vlora::createLowerVLoRAToVLRT());
  if (failed(pm.run(module)))
    return Failure{"the training step could not be built or lowered"};
  vlora::plan::Plan plan;
  if (failed(vlora::vlrt::exportPlan(module, plan, VLORA_COMPILER_VERSION, "train_step")))
    return Failure{"the training step could not be exported"};
  auto program = vlora::runtime::validatePlan(plan, "train_step #" + std::to_string(chunk));
  if (!program)
    return Failure{program.error().message()};
  auto rt = vlora::runtime::Runtime::create(std::move(*program), ".", ".");
  if (!rt)
    return Failure{rt.error().message()};
  vlora::runtime::Runtime &runtime = **rt;

  std::mt19937_64 rng(seed * 1000003ull + chunk);
  std::uniform_real_distribution<double> uniform(-1.0, 1.0);
  std::normal_distribution<double> normal(0.0, 0.25);
  std::vector<HostTensor> inputs;
  for (const auto &info : runtime.inputs()) {
    HostTensor t{info, {}};
    int64_t n = 1;
    for (int64_t d : info.shape)
      n *= d;
    size_t elementBytes = vlora::kernels::dtypeSize(info.dtype);
    t.bytes.assign(size_t(n) * elementBytes, 0);
    bool isFloat = info.dtype == DType::F32 || info.dtype == DType::F64;
    if (info.name == "labels") {
      if (info.dtype != DType::I64 || info.shape.size() != 2)
        return Failure{"labels must be i64 [B, S]"};
      std::vector<int64_t> labels(n);
      std::uniform_int_distribution<int64_t> token(0, vocab - 1);
      for (int64_t i = 0; i < n; ++i)
        labels[i] = (rng() % 4 == 0) ? -100 : token(rng);
      labels[n - 1] = token(rng); // at least one valid shifted label
      std::memcpy(t.bytes.data(), labels.data(), t.bytes.size());
    } else if (info.name == "loss_scale") {
      setElement(t.bytes, info.dtype, 0, 1.0);
    } else if (info.name == "dropout_rng") {
      int64_t v[2] = {int64_t(seed) + 1, int64_t(chunk)};
      std::memcpy(t.bytes.data(), v, sizeof v);
    } else if (llvm::StringRef(info.name).ends_with(".grad")) {
      // accumulators start at zero
    } else if (isFloat) {
      bool adapter = adapterNames.count(info.name) != 0;
      for (int64_t i = 0; i < n; ++i)
        setElement(t.bytes, info.dtype, i, adapter ? normal(rng) : uniform(rng));
    } else if (info.dtype == DType::Bool) {
      for (int64_t i = 0; i < n; ++i)
        t.bytes[i] = rng() % 2;
    } else {
      return Failure{"integer input '" + info.name +
                     "': give indices as vlora.constant"};
    }
    inputs.push_back(std::move(t));
  }
  auto setAll = [&]() -> std::optional<Failure> {
    for (const HostTensor &t : inputs)
      if (auto s = runtime.setInput(t.info.name, t.info.dtype, t.info.shape,
                                    t.bytes.data(), t.bytes.size());
          !s)
        return Failure{s.message()};
    return std::nullopt;
  };
  // The arena may reuse an input's bytes once the input is dead: set every
  // input before every run.
  auto loss = [&]() -> std::variant<double, Failure> {
    if (auto f = setAll())
      return *f;
    if (auto s = runtime.run(); !s)
      return Failure{s.message()};
    auto bytes = runtime.output("loss");
    if (!bytes)
      return Failure{bytes.error().message()};
    return readScalar(*bytes, DType::F32);
  };
  auto base = loss();
  if (auto *f = std::get_if<Failure>(&base))
    return *f;
  os << llvm::formatv("#{0} loss {1:F6}\n", chunk, std::get<double>(base));

  // Every gradient of the unperturbed run, before any other run.
  std::map<std::string, std::vector<uint8_t>> gradients;
  for (HostTensor &t : inputs) {
    if (!adapterNames.count(t.info.name))
      continue;
    auto bytes = runtime.output(t.info.name + ".grad");
    if (!bytes)
      return Failure{bytes.error().message()};
    gradients[t.info.name] = std::move(*bytes);
  }

  int mismatches = 0;
  double largestGrad = 0;
  for (HostTensor &t : inputs) {
    if (!adapterNames.count(t.info.name))
      continue;
    const std::vector<uint8_t> *gradBytes = &gradients[t.info.name];
    size_t n = t.bytes.size() / vlora::kernels::dtypeSize(t.info.dtype);
    std::vector<size_t> picked(n);
    for (size_t i = 0; i < n; ++i)
      picked[i] = i;
    if (n > maxElements) {
      std::shuffle(picked.begin(), picked.end(), rng);
      picked.resize(maxElements);
      std::sort(picked.begin(), picked.end());
    }
    double maxAbs = 0, maxRel = 0;
    std::string firstBad;
    for (size_t i : picked) {
      double original = element(t.bytes, t.info.dtype, i);
      double analytic = element(*gradBytes, t.info.dtype, i);
      largestGrad = std::max(largestGrad, std::fabs(analytic));
      // Fourth-order central differences:
      // (8 (L(+h) - L(-h)) - (L(+2h) - L(-2h))) / 12h.
      const double offsets[4] = {stepOpt, -stepOpt, 2 * stepOpt, -2 * stepOpt};
      double lossAt[4];
      for (int k = 0; k < 4; ++k) {
        setElement(t.bytes, t.info.dtype, i, original + offsets[k]);
        auto l = loss();
        if (auto *f = std::get_if<Failure>(&l))
          return *f;
        lossAt[k] = std::get<double>(l);
      }
      setElement(t.bytes, t.info.dtype, i, original);
      double numeric = (8 * (lossAt[0] - lossAt[1]) - (lossAt[2] - lossAt[3])) /
                       (12 * stepOpt);
      double err = std::fabs(numeric - analytic);
      double scale = std::max(std::fabs(numeric), std::fabs(analytic));
      maxAbs = std::max(maxAbs, err);
      if (scale > 0)
        maxRel = std::max(maxRel, err / scale);
      if (err > absTol + relTol * scale && firstBad.empty())
        firstBad = llvm::formatv("element {0}: analytic {1:E6}, numeric {2:E6}", i,
                                 analytic, numeric);
    }
    os << llvm::formatv("#{0} {1} {2}: {3} of {4} elements, max abs err {5:E2}, "
                        "max rel err {6:E2}{7}\n",
                        chunk, firstBad.empty() ? "ok" : "MISMATCH", t.info.name,
                        picked.size(), n, maxAbs, maxRel,
                        firstBad.empty() ? "" : "; first " + firstBad);
    mismatches += !firstBad.empty();
  }
  if (largestGrad == 0)
    return Failure{"every adapter gradient is zero; the check would prove nothing"};
  return mismatches;
}

} // namespace

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  cl::ParseCommandLineOptions(argc, argv,
                              "finite-difference check of vlora's training step\n");
  std::string error;
  auto file = openInputFile(inputFile, &error);
  if (!file) {
    llvm::errs() << "vlora-gradcheck: error: " << error << "\n";
    return 1;
  }
  DialectRegistry registry;
  registry.insert<vlora::VLoRADialect, vlora::vlrt::VLRTDialect, func::FuncDialect>();
  unsigned chunk = 0;
  int failures = 0, checked = 0;
  auto process = [&](std::unique_ptr<llvm::MemoryBuffer> buffer,
                     const llvm::MemoryBufferRef &, llvm::raw_ostream &os) -> LogicalResult {
    unsigned index = chunk++;
    MLIRContext context(registry);
    context.loadAllAvailableDialects();
    llvm::SourceMgr sourceMgr;
    sourceMgr.AddNewSourceBuffer(std::move(buffer), llvm::SMLoc());
    SourceMgrDiagnosticHandler handler(sourceMgr, &context);
    OwningOpRef<ModuleOp> module = parseSourceFile<ModuleOp>(sourceMgr, &context);
    if (!module) {
      ++failures;
      return success();
    }
    auto result = checkModule(*module, os, index);
    if (auto *f = std::get_if<Failure>(&result)) {
      os << "#" << index << " error: " << f->message << "\n";
      ++failures;
    } else {
      failures += std::get<int>(result) != 0;
      ++checked;
    }
    return success();
  };
  (void)splitAndProcessBuffer(std::move(file), process, llvm::outs(),
                              splitInput ? kDefaultSplitMarker : "", "");
  llvm::outs() << llvm::formatv("gradcheck: {0} functions, {1} checked, {2} failed\n",
                                chunk, checked, failures);
  return failures ? 1 : 0;
}
