//===- vlora-compile.cpp - ONNX model to a runnable bundle ----------------===//
//
// vlora-compile MODEL.onnx -o BUNDLE/ [--input-shape NAME=AxBxC ...]
//               [--report-memory] [LoRA options with Unsloth's spellings]
//               [--train [--adam-beta1 ...]]
//
// The whole compiler in one command: import, canonicalize, (classify towers,
// inject LoRA, build the training step), lower every program to a vlrt
// program with its memory plan, and write the bundle: plan.pb,
// manifest.json and, with LoRA, adapter_config.json (PEFT) and
// adapters.init.safetensors; with --train also train_step.pb and
// optimizer_step.pb (docs/training.md). Weights stay where they are: the plan
// references the model's files, and the manifest records their sizes and
// hashes so the runtime refuses weights changed since compile.
//
//===----------------------------------------------------------------------===//

#include "VLRT/Export/PlanExport.h"
#include "VLRT/IR/VLRTOps.h"
#include "VLoRA/IR/VLoRADialect.h"
#include "VLoRA/IR/VLoRAOps.h"
#include "VLoRA/Import/ONNXImporter.h"
#include "passes/PEFTKeys.h"
#include "passes/Passes.h"
#include "vlora/Version.h"

#include "runtime/DeviceMemory.h"
#include "runtime/FileHash.h"
#include "runtime/Safetensors.h"

#include "PlanFormat.h"
#include "plan.pb.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Transforms/Passes.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <set>

using namespace mlir;
namespace cl = llvm::cl;

static cl::OptionCategory category("vlora-compile options");
static cl::OptionCategory loraCategory("LoRA options (Unsloth / PEFT spellings)");

static cl::opt<std::string> inputFile(cl::Positional, cl::desc("<model.onnx>"),
                                      cl::cat(category));
static cl::opt<std::string> bundleDir("o", cl::desc("Bundle folder to write"),
                                      cl::value_desc("BUNDLE"), cl::cat(category));
static cl::list<std::string>
    inputShapes("input-shape", cl::desc("Static shape of a graph input: NAME=D0xD1x..."),
                cl::value_desc("NAME=SHAPE"), cl::cat(category));
static cl::opt<bool> reportMemory("report-memory",
                                  cl::desc("Print the arena peak and the weight bytes"),
                                  cl::cat(category));
static cl::opt<bool> emitIR("emit-mlir",
                            cl::desc("Also write the lowered program as BUNDLE/program.mlir"),
                            cl::cat(category));

static cl::OptionCategory trainCategory("Training options (transformers / TRL spellings)");
static cl::opt<bool> train("train",
                           cl::desc("Also build the training programs (train_step.pb, "
                                    "optimizer_step.pb) for vlora-train; implies --lora"),
                           cl::cat(trainCategory));
static cl::opt<double> adamBeta1("adam-beta1", cl::desc("AdamW beta1 (0.9)"), cl::init(0.9),
                                 cl::cat(trainCategory));
static cl::opt<double> adamBeta2("adam-beta2", cl::desc("AdamW beta2 (0.999)"), cl::init(0.999),
                                 cl::cat(trainCategory));
static cl::opt<double> adamEpsilon("adam-epsilon", cl::desc("AdamW epsilon (1e-8)"),
                                   cl::init(1e-8), cl::cat(trainCategory));

static cl::opt<bool> fuseElementwise(
    "fuse-elementwise",
    cl::desc("Compute chains of elementwise ops (and their bf16 casts) as one "
             "kernel each (--vlora-fuse-elementwise; default on, =false keeps "
             "one kernel per op)"),
    cl::init(true), cl::cat(category));

static cl::opt<bool> rematerialize(
    "rematerialize",
    cl::desc("Recompute cheap forward values (norms, activations, casts, "
             "data movement) in the backward instead of keeping them, where "
             "that keeps fewer bytes (--vlora-rematerialize; default on, "
             "=false keeps every value the backward reads)"),
    cl::init(true), cl::cat(trainCategory));

static cl::opt<std::string> mixedPrecision(
    "mixed-precision",
    cl::desc("f32 (default); bf16: the frozen matmul weights in bf16 "
             "(converted once, into BUNDLE/weights.bf16.bin) and the "
             "activations the matmuls read in bf16, fp32 accumulation "
             "(adapters, optimizer state, norms, softmax and loss stay f32); "
             "bf16-weights: the weights only"),
    cl::init("f32"), cl::cat(trainCategory));

static cl::opt<bool> fuseAttention(
    "fuse-attention",
    cl::desc("Fuse the exported attention (matmul, scale, mask, softmax, "
             "matmul) into vlora.attention, which never stores the [S, T] "
             "scores (default on; --fuse-attention=false keeps the ops)"),
    cl::init(true));

static cl::opt<bool> lora("lora",
                          cl::desc("Inject LoRA adapters (implied by any LoRA option)"),
                          cl::cat(loraCategory));
static cl::opt<int64_t> rank("r", cl::desc("LoRA rank (16)"), cl::init(16), cl::cat(loraCategory));
static cl::opt<double> loraAlpha("lora-alpha", cl::desc("LoRA alpha (16)"), cl::init(16),
                                 cl::cat(loraCategory));
static cl::opt<double> loraDropout("lora-dropout", cl::desc("LoRA dropout (0)"), cl::init(0),
                                   cl::cat(loraCategory));
static cl::opt<bool> useRslora("use-rslora", cl::desc("Rank-stabilised LoRA (alpha/sqrt(r))"),
                               cl::cat(loraCategory));
static cl::opt<bool> vision("finetune-vision-layers", cl::desc("Adapt the vision tower (true)"),
                            cl::init(true), cl::cat(loraCategory));
static cl::opt<bool> language("finetune-language-layers",
                              cl::desc("Adapt the language tower (true)"), cl::init(true),
                              cl::cat(loraCategory));
static cl::opt<bool> attention("finetune-attention-modules",
                               cl::desc("Adapt attention projections (true)"), cl::init(true),
                               cl::cat(loraCategory));
static cl::opt<bool> mlp("finetune-mlp-modules", cl::desc("Adapt MLP projections (true)"),
                         cl::init(true), cl::cat(loraCategory));
static cl::opt<bool> projector("finetune-projector",
                               cl::desc("Adapt the vision-language projector (false)"),
                               cl::cat(loraCategory));
static cl::list<std::string>
    targetModules("target-modules",
                  cl::desc("PEFT target_modules: one regex, or module names/suffixes"),
                  cl::CommaSeparated, cl::cat(loraCategory));
static cl::opt<int64_t> randomState("random-state", cl::desc("Seed of the adapter init (3407)"),
                                    cl::init(3407), cl::cat(loraCategory));
static cl::opt<std::string> initLoraWeights(
    "init-lora-weights", cl::desc("A's init: kaiming (PEFT default) or gaussian"),
    cl::init("kaiming"), cl::cat(loraCategory));
static cl::opt<std::string> initFrom("init-from",
                                     cl::desc("Start from a PEFT adapter_model.safetensors"),
                                     cl::cat(loraCategory));

namespace {

/// One problem, one line, exit 1.
[[noreturn]] void fail(const llvm::Twine &message) {
  llvm::errs() << "vlora-compile: error: " << message << "\n";
  std::exit(1);
}

bool anyLoRAOption() {
  return lora || train || rank.getNumOccurrences() || loraAlpha.getNumOccurrences() ||
         loraDropout.getNumOccurrences() || useRslora.getNumOccurrences() ||
         vision.getNumOccurrences() || language.getNumOccurrences() ||
         attention.getNumOccurrences() || mlp.getNumOccurrences() ||
         projector.getNumOccurrences() || targetModules.getNumOccurrences() ||
         randomState.getNumOccurrences() || initLoraWeights.getNumOccurrences() ||
         initFrom.getNumOccurrences();
}

/// A deterministic, order-independent random stream per tensor: SplitMix64
/// over (seed, key hash, index).
struct TensorRandom {
  uint64_t base;
  TensorRandom(int64_t seed, llvm::StringRef key)
      : base(uint64_t(seed) * 0x9e3779b97f4a7c15ull ^
             vlora::runtime::fnv1a64(key.data(), key.size())) {}
  uint64_t bits(uint64_t i) const {
    uint64_t z = base + (i + 1) * 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  /// Uniform in [0, 1).
  double uniform(uint64_t i) const { return double(bits(i) >> 11) * 0x1.0p-53; }
};

std::string dtypeName(Type t) {
  return vlora::plan::DType_Name(vlora::vlrt::getPlanDType(t));
}

llvm::json::Array shapeJson(ArrayRef<int64_t> shape) {
  llvm::json::Array a;
  for (int64_t d : shape)
    a.push_back(d);
  return a;
}

void writeJson(const std::string &path, llvm::json::Value value) {
  if (llvm::Error e = llvm::writeToOutput(path, [&](llvm::raw_ostream &os) {
        os << llvm::formatv("{0:2}", value) << "\n";
        return llvm::Error::success();
      }))
    fail("cannot write '" + path + "': " + llvm::toString(std::move(e)));
}

/// The folder of the model file (the root of its weights' relative paths).
std::string modelDirOf(const std::string &model) {
  SmallString<256> dir(model);
  llvm::sys::fs::make_absolute(dir);
  llvm::sys::path::remove_filename(dir);
  return std::string(dir);
}

/// f32 -> bf16, round to nearest, ties to even (NaN stays a quiet NaN).
uint16_t toBF16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u)
    return static_cast<uint16_t>((bits >> 16) | 0x40u);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

/// --mixed-precision bf16: writes BUNDLE/weights.bf16.bin from the f32 bytes
/// each converted param's `vlora.converted_from` names (one copy per name,
/// at the offset the pass assigned), and returns the manifest's list of
/// them. Every offset and length read is checked against its file.
llvm::json::Array writeConvertedWeights(ModuleOp module, const std::string &modelDir,
                                        const std::string &path) {
  struct Converted {
    std::string file;
    int64_t from = 0, fromLength = 0, to = 0, length = 0;
  };
  std::map<std::string, Converted> byName;
  module.walk([&](vlora::ParamOp param) {
    auto from = param->getAttrOfType<DictionaryAttr>("vlora.converted_from");
    if (!from)
      return;
    Converted c;
    c.file = from.getAs<StringAttr>("file").str();
    c.from = from.getAs<IntegerAttr>("offset").getInt();
    c.fromLength = from.getAs<IntegerAttr>("length").getInt();
    c.to = param.getOffset();
    c.length = param.getLength();
    if (c.fromLength != 2 * c.length)
      fail("converted weight '" + param.getName().str() + "': " +
           std::to_string(c.fromLength) + " f32 bytes for " + std::to_string(c.length) +
           " bf16 bytes");
    byName.emplace(param.getName().str(), c);
  });
  llvm::json::Array list;
  if (byName.empty())
    return list;
  int64_t size = 0;
  for (auto &[name, c] : byName)
    size = std::max(size, c.to + c.length);
  std::vector<uint16_t> out(static_cast<size_t>(size / 2), 0);
  std::map<std::string, std::unique_ptr<llvm::MemoryBuffer>> sources;
  for (auto &[name, c] : byName) {
    SmallString<256> p(modelDir);
    llvm::sys::path::append(p, c.file);
    std::unique_ptr<llvm::MemoryBuffer> &buffer = sources[std::string(p)];
    if (!buffer) {
      auto opened = llvm::MemoryBuffer::getFile(p, /*IsText=*/false,
                                                /*RequiresNullTerminator=*/false);
      if (!opened)
        fail("cannot read '" + std::string(p) + "' for weight '" + name +
             "': " + opened.getError().message());
      buffer = std::move(*opened);
    }
    uint64_t fileSize = buffer->getBufferSize();
    if (c.from < 0 || c.fromLength < 0 || uint64_t(c.from) > fileSize ||
        uint64_t(c.fromLength) > fileSize - uint64_t(c.from))
      fail("weight '" + name + "': bytes [" + std::to_string(c.from) + ", " +
           std::to_string(c.from + c.fromLength) + ") are outside '" + std::string(p) +
           "' (" + std::to_string(fileSize) + " bytes)");
    if (c.to % 2 != 0 || c.to < 0)
      fail("weight '" + name + "': odd bf16 offset " + std::to_string(c.to));
    const char *src = buffer->getBufferStart() + c.from;
    for (int64_t i = 0; i < c.length / 2; ++i) {
      float f;
      std::memcpy(&f, src + 4 * i, 4);
      out[static_cast<size_t>(c.to / 2 + i)] = toBF16(f);
    }
    list.push_back(llvm::json::Object{{"name", name},
                                      {"from_file", c.file},
                                      {"from_offset", c.from},
                                      {"offset", c.to},
                                      {"length", c.length}});
  }
  if (llvm::Error e = llvm::writeToOutput(path, [&](llvm::raw_ostream &os) {
        os.write(reinterpret_cast<const char *>(out.data()), out.size() * 2);
        return llvm::Error::success();
      }))
    fail("cannot write '" + path + "': " + llvm::toString(std::move(e)));
  return list;
}

/// The trainable parameters' initial values, written to
/// BUNDLE/adapters.init.safetensors; the params are pointed at the file.
void writeAdapters(ModuleOp module, const std::string &path) {
  struct Adapter {
    vlora::ParamOp op;
    std::vector<float> data;
  };
  std::map<std::string, Adapter> adapters;
  auto config = module->getAttrOfType<DictionaryAttr>("vlora.lora_config");
  std::string init = initLoraWeights;
  int64_t seed = randomState;
  if (config) {
    if (auto s = config.getAs<StringAttr>("init"))
      init = s.str();
    if (auto s = config.getAs<IntegerAttr>("seed"))
      seed = s.getInt();
  }
  std::optional<vlora::runtime::SafetensorsFile> source;
  if (!initFrom.empty()) {
    auto opened = vlora::runtime::SafetensorsFile::open(initFrom);
    if (!opened)
      fail(opened.error().message());
    source = std::move(*opened);
  }
  module.walk([&](vlora::ParamOp param) {
    if (param.getRole() != vlora::ParamRole::trainable)
      return;
    auto type = cast<RankedTensorType>(param.getType());
    if (!type.getElementType().isF32())
      fail("adapter '" + param.getName() + "' is not f32");
    Adapter &a = adapters[param.getName().str()];
    if (a.op)
      return; // shared by several matmuls
    a.op = param;
    a.data.assign(type.getNumElements(), 0.0f);
    std::string key = param.getName().str();
    if (source) {
      const auto *t = source->find(key);
      if (!t || t->bytes != a.data.size() * sizeof(float))
        fail("--init-from '" + initFrom + "' has no f32 tensor '" + key +
             "' of the adapter's shape");
      std::memcpy(a.data.data(), t->data, t->bytes);
      return;
    }
    auto parsed = vlora::parsePEFTLoRAKey(key);
    if (!parsed || parsed->second == vlora::LoRAFactor::B)
      return; // B starts at zero, as in PEFT
    TensorRandom rng(seed, key);
    int64_t r = type.getDimSize(0), in = type.getDimSize(1);
    for (size_t i = 0; i < a.data.size(); ++i) {
      if (init == "gaussian") {
        // Box-Muller; PEFT's gaussian init: normal(0, 1/r).
        double u1 = std::max(rng.uniform(2 * i), 1e-300), u2 = rng.uniform(2 * i + 1);
        a.data[i] = float(std::sqrt(-2.0 * std::log(u1)) *
                          std::cos(2.0 * M_PI * u2) / double(r));
      } else {
        // kaiming_uniform_(a=sqrt(5)) on [r, in]: bound = 1/sqrt(in).
        double bound = 1.0 / std::sqrt(double(in));
        a.data[i] = float((2.0 * rng.uniform(i) - 1.0) * bound);
      }
    }
  });
  if (adapters.empty())
    return;
  std::vector<vlora::runtime::SafetensorsEntry> entries;
  for (auto &[key, a] : adapters) {
    auto type = cast<RankedTensorType>(a.op.getType());
    entries.push_back({key, vlora::kernels::DType::F32,
                       vlora::kernels::Shape(type.getShape().begin(), type.getShape().end()),
                       a.data.data()});
  }
  if (auto status = vlora::runtime::writeSafetensors(path, entries,
                                                     {{"format", "pt"}});
      !status.ok())
    fail(status.message());
  // Point every adapter param at its bytes in the file just written.
  auto written = vlora::runtime::SafetensorsFile::open(path);
  if (!written)
    fail(written.error().message());
  uint64_t headerBytes = 0;
  {
    std::FILE *f = std::fopen(path.c_str(), "rb");
    if (!f || std::fread(&headerBytes, 8, 1, f) != 1)
      fail("cannot read back '" + path + "'");
    std::fclose(f);
  }
  const uint8_t *dataStart = nullptr;
  for (const auto &t : written->tensors())
    if (!dataStart || t.data < dataStart)
      dataStart = t.data;
  Builder b(module.getContext());
  std::string fileName = llvm::sys::path::filename(path).str();
  module.walk([&](vlora::ParamOp param) {
    if (param.getRole() != vlora::ParamRole::trainable)
      return;
    const auto *t = written->find(param.getName());
    param.setSourceAttr(
        vlora::WeightSourceAttr::get(module.getContext(), vlora::WeightSource::bundle));
    param.setFileAttr(b.getStringAttr(fileName));
    param.setOffsetAttr(b.getI64IntegerAttr(int64_t(8 + headerBytes + (t->data - dataStart))));
  });
}

struct Interface {
  llvm::json::Array inputs, outputs;
};

std::string argName(func::FuncOp func, unsigned i) {
  auto name = func.getArgAttrOfType<StringAttr>(i, vlora::VLoRADialect::kNameAttrName);
  return name ? name.str() : "";
}

/// A function's named inputs and outputs, as the manifest lists them.
Interface interfaceOf(func::FuncOp func) {
  Interface io;
  auto entry = [](std::string name, Type type) {
    auto t = cast<RankedTensorType>(type);
    return llvm::json::Object{{"name", std::move(name)},
                              {"dtype", dtypeName(t.getElementType())},
                              {"shape", shapeJson(t.getShape())}};
  };
  for (auto [i, type] : llvm::enumerate(func.getArgumentTypes()))
    io.inputs.push_back(entry(argName(func, i), type));
  for (auto [i, type] : llvm::enumerate(func.getResultTypes())) {
    auto name = func.getResultAttrOfType<StringAttr>(i, vlora::VLoRADialect::kNameAttrName);
    io.outputs.push_back(entry(name ? name.str() : "", type));
  }
  return io;
}

/// PEFT's adapter_config.json from the module's vlora.lora_config.
llvm::json::Object adapterConfig(DictionaryAttr config, llvm::StringRef model) {
  llvm::json::Object o;
  o["peft_type"] = "LORA";
  o["task_type"] = nullptr;
  o["base_model_name_or_path"] = model.str();
  o["r"] = config.getAs<IntegerAttr>("r").getInt();
  o["lora_alpha"] = config.getAs<FloatAttr>("alpha").getValueAsDouble();
  o["lora_dropout"] = config.getAs<FloatAttr>("dropout").getValueAsDouble();
  o["use_rslora"] = config.getAs<BoolAttr>("use_rslora").getValue();
  std::string init = config.getAs<StringAttr>("init").str();
  o["init_lora_weights"] = init == "gaussian" ? llvm::json::Value("gaussian")
                                              : llvm::json::Value(true);
  llvm::json::Array targets;
  for (Attribute a : config.getAs<ArrayAttr>("target_modules"))
    targets.push_back(cast<StringAttr>(a).str());
  o["target_modules"] = std::move(targets);
  auto patterns = [&](StringRef name) {
    llvm::json::Object p;
    if (auto dict = config.getAs<DictionaryAttr>(name))
      for (NamedAttribute e : dict) {
        if (auto i = dyn_cast<IntegerAttr>(e.getValue()))
          p[e.getName().str()] = i.getInt();
        else if (auto f = dyn_cast<FloatAttr>(e.getValue()))
          p[e.getName().str()] = f.getValueAsDouble();
      }
    return p;
  };
  o["rank_pattern"] = patterns("rank_pattern");
  o["alpha_pattern"] = patterns("alpha_pattern");
  o["bias"] = "none";
  o["fan_in_fan_out"] = false;
  o["inference_mode"] = true;
  o["modules_to_save"] = nullptr;
  o["layers_to_transform"] = nullptr;
  o["layers_pattern"] = nullptr;
  o["use_dora"] = false;
  o["revision"] = nullptr;
  return o;
}

} // namespace

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  cl::HideUnrelatedOptions({&category, &loraCategory, &trainCategory});
  cl::ParseCommandLineOptions(argc, argv, "vlora compiler: ONNX model -> bundle\n");
  if (inputFile.empty())
    fail("no input model");
  if (bundleDir.empty())
    fail("no bundle folder (-o BUNDLE/)");

  vlora::ONNXImportOptions options;
  for (const std::string &shape : inputShapes) {
    std::string error = vlora::parseInputShapeOption(shape, options);
    if (!error.empty())
      fail(error);
  }

  DialectRegistry registry;
  registry.insert<vlora::VLoRADialect, vlora::vlrt::VLRTDialect, func::FuncDialect>();
  MLIRContext context(registry);
  context.loadAllAvailableDialects();
  int errors = 0;
  ScopedDiagnosticHandler handler(&context, [&](Diagnostic &diag) {
    if (diag.getSeverity() == DiagnosticSeverity::Error)
      ++errors;
    llvm::errs() << inputFile << ": "
                 << (diag.getSeverity() == DiagnosticSeverity::Error     ? "error: "
                     : diag.getSeverity() == DiagnosticSeverity::Warning ? "warning: "
                                                                         : "note: ");
    if (auto name = dyn_cast<NameLoc>(diag.getLocation()))
      llvm::errs() << "at '" << name.getName().getValue() << "': ";
    llvm::errs() << diag.str() << "\n";
    return success();
  });

  OwningOpRef<ModuleOp> module = vlora::importONNXModel(context, inputFile, options);
  if (!module || errors)
    return 1;

  bool withLoRA = anyLoRAOption();
  {
    PassManager pm(&context);
    pm.addPass(createCanonicalizerPass());
    if (withLoRA) {
      pm.addPass(vlora::createVLoRAClassifyTowers());
      vlora::VLoRAInjectLoRAOptions o;
      o.rank = rank;
      o.alpha = loraAlpha;
      o.dropout = loraDropout;
      o.useRslora = useRslora;
      o.init = initLoraWeights;
      o.seed = randomState;
      o.vision = vision;
      o.language = language;
      o.attention = attention;
      o.mlp = mlp;
      o.projector = projector;
      o.targetModules.assign(targetModules.begin(), targetModules.end());
      o.initFrom = initFrom;
      pm.addPass(vlora::createVLoRAInjectLoRA(o));
    }
    if (fuseAttention)
      pm.addPass(vlora::createVLoRAFuseAttention());
    if (train) {
      if (!(adamBeta1 >= 0 && adamBeta1 < 1) || !(adamBeta2 >= 0 && adamBeta2 < 1))
        fail("--adam-beta1 and --adam-beta2 must be in [0, 1)");
      if (!(adamEpsilon > 0))
        fail("--adam-epsilon must be positive");
      vlora::VLoRABuildTrainingStepOptions o;
      o.beta1 = adamBeta1;
      o.beta2 = adamBeta2;
      o.eps = adamEpsilon;
      pm.addPass(vlora::createVLoRABuildTrainingStep(o));
    }
    if (mixedPrecision != "f32") {
      if (mixedPrecision != "bf16" && mixedPrecision != "bf16-weights")
        fail("--mixed-precision must be f32, bf16 or bf16-weights, got '" +
             mixedPrecision + "'");
      vlora::VLoRAMixedPrecisionOptions o;
      o.compute = "bf16";
      o.activations = mixedPrecision == "bf16";
      pm.addPass(vlora::createVLoRAMixedPrecision(o));
    }
    if (train && rematerialize) {
      // bf16 activations: what the backward keeps is bf16 too.
      vlora::VLoRARematerializeOptions o;
      o.keepBf16 = mixedPrecision == "bf16";
      pm.addPass(vlora::createVLoRARematerialize(o));
    }
    if (fuseElementwise)
      pm.addPass(vlora::createVLoRAFuseElementwise());
    if (failed(pm.run(*module)) || errors)
      return 1;
  }

  if (std::error_code ec = llvm::sys::fs::create_directories(bundleDir))
    fail("cannot create bundle folder '" + bundleDir + "': " + ec.message());
  auto bundlePath = [&](StringRef name) {
    SmallString<256> p(bundleDir);
    llvm::sys::path::append(p, name);
    return std::string(p);
  };

  if (withLoRA)
    writeAdapters(*module, bundlePath("adapters.init.safetensors"));
  llvm::json::Array convertedWeights =
      writeConvertedWeights(*module, modelDirOf(inputFile), bundlePath("weights.bf16.bin"));
  auto loraConfig = (*module)->getAttrOfType<DictionaryAttr>("vlora.lora_config");

  // The programs' interfaces, before lowering erases the tensor functions.
  std::map<std::string, Interface> interfaces;
  for (auto func : module->getOps<func::FuncOp>())
    interfaces[func.getName().str()] = interfaceOf(func);
  if (!interfaces.count("main"))
    fail("the model has no forward function");
  llvm::json::Object training;
  if (train) {
    auto main = module->lookupSymbol<func::FuncOp>("main");
    auto opt = module->lookupSymbol<func::FuncOp>("optimizer_step");
    auto logits = cast<RankedTensorType>(main.getResultTypes()[0]);
    llvm::json::Array modelInputs, adapters;
    for (unsigned i = 0; i < main.getNumArguments(); ++i)
      modelInputs.push_back(argName(main, i));
    // @optimizer_step's first arguments are the adapters, in order.
    size_t numAdapters = (opt.getNumArguments() - 4) / 4;
    for (unsigned i = 0; i < numAdapters; ++i) {
      auto t = cast<RankedTensorType>(opt.getArgumentTypes()[i]);
      adapters.push_back(llvm::json::Object{{"name", argName(opt, i)},
                                            {"dtype", dtypeName(t.getElementType())},
                                            {"shape", shapeJson(t.getShape())}});
    }
    training = llvm::json::Object{
        {"model_inputs", std::move(modelInputs)},
        {"labels", "labels"},
        {"batch_size", logits.getDimSize(0)},
        {"sequence_length", logits.getDimSize(1)},
        {"vocab_size", logits.getDimSize(2)},
        {"ignore_index", int64_t(-100)},
        {"lora_dropout", double(loraDropout)},
        {"adam_beta1", double(adamBeta1)},
        {"adam_beta2", double(adamBeta2)},
        {"adam_epsilon", double(adamEpsilon)},
        {"adapters", std::move(adapters)}};
  }

  {
    PassManager pm(&context);
    pm.addPass(vlora::createLowerVLoRAToVLRT());
    if (failed(pm.run(*module)) || errors)
      return 1;
  }
  if (emitIR) {
    std::string path = bundlePath("program.mlir");
    if (llvm::Error e = llvm::writeToOutput(path, [&](llvm::raw_ostream &os) {
          module->print(os);
          return llvm::Error::success();
        }))
      fail("cannot write '" + path + "': " + llvm::toString(std::move(e)));
  }

  // One plan per program: plan.pb is the forward, the training programs
  // have their own files.
  struct PlanFile {
    std::string function, file;
    vlora::plan::Plan plan;
  };
  std::vector<PlanFile> plans{{"main", "plan.pb", {}}};
  if (train) {
    plans.push_back({"train_step", "train_step.pb", {}});
    plans.push_back({"optimizer_step", "optimizer_step.pb", {}});
  }
  for (PlanFile &p : plans) {
    if (failed(vlora::vlrt::exportPlan(*module, p.plan, VLORA_COMPILER_VERSION, p.function)))
      return 1;
    std::string planBytes;
    p.plan.SerializeToString(&planBytes);
    if (llvm::Error e = llvm::writeToOutput(bundlePath(p.file), [&](llvm::raw_ostream &os) {
          os << planBytes;
          return llvm::Error::success();
        }))
      fail("cannot write " + p.file + ": " + llvm::toString(std::move(e)));
  }
  const vlora::plan::Plan &plan = plans.front().plan;

  // Weight files: sizes and hashes, so the runtime can refuse changed ones.
  SmallString<256> modelPath(inputFile);
  llvm::sys::fs::make_absolute(modelPath);
  SmallString<256> modelDir(modelPath);
  llvm::sys::path::remove_filename(modelDir);
  std::set<std::pair<int, std::string>> files;
  uint64_t weightBytes = 0;
  for (const auto &w : plan.weights()) {
    files.insert({int(w.root()), w.file()});
    weightBytes += w.length();
  }
  for (const PlanFile &p : plans)
    for (const auto &w : p.plan.weights())
      files.insert({int(w.root()), w.file()});
  llvm::json::Array weightFiles;
  for (auto &[root, file] : files) {
    SmallString<256> p(root == vlora::plan::BUNDLE ? StringRef(bundleDir) : StringRef(modelDir));
    llvm::sys::path::append(p, file);
    uint64_t size = 0;
    if (llvm::sys::fs::file_size(p, size))
      fail("cannot read weight file '" + std::string(p) + "'");
    auto hash = vlora::runtime::hashFile(std::string(p));
    if (!hash)
      fail(hash.error().message());
    weightFiles.push_back(llvm::json::Object{
        {"root", root == vlora::plan::BUNDLE ? "bundle" : "model"},
        {"file", file},
        {"size", int64_t(size)},
        {"hash", *hash}});
  }

  // The plan's own hash: protobuf parses a plan cut at a field boundary, so
  // the runtime checks the file against this before trusting it.
  auto planHash = vlora::runtime::hashFile(bundlePath("plan.pb"));
  if (!planHash)
    fail(planHash.error().message());
  llvm::json::Object programs;
  for (const PlanFile &p : plans) {
    if (p.function == "main")
      continue;
    auto hash = vlora::runtime::hashFile(bundlePath(p.file));
    if (!hash)
      fail(hash.error().message());
    Interface &io = interfaces[p.function];
    programs[p.function] = llvm::json::Object{{"plan", p.file},
                                              {"plan_hash", *hash},
                                              {"arena_bytes", int64_t(p.plan.arena_bytes())},
                                              {"inputs", std::move(io.inputs)},
                                              {"outputs", std::move(io.outputs)}};
  }

  llvm::json::Object optionsJson{{"input_shapes", llvm::json::Array(inputShapes)},
                                 {"lora", withLoRA},
                                 {"train", bool(train)},
                                 {"mixed_precision", std::string(mixedPrecision)},
                                 {"fuse_attention", bool(fuseAttention)},
                                 {"rematerialize", bool(train && rematerialize)},
                                 {"fuse_elementwise", bool(fuseElementwise)}};
  if (!convertedWeights.empty())
    optionsJson["converted_weights"] = std::move(convertedWeights);
  if (loraConfig)
    optionsJson["lora_config"] = adapterConfig(loraConfig, modelPath);
  Interface &mainIO = interfaces["main"];
  llvm::json::Object manifest{
                {"format_version", int64_t(vlora::plan::kFormatVersion)},
                {"compiler_version", VLORA_COMPILER_VERSION},
                {"model", llvm::json::Object{{"path", std::string(modelPath)},
                                             {"weight_root", std::string(modelDir)}}},
                {"weight_files", std::move(weightFiles)},
                {"inputs", std::move(mainIO.inputs)},
                {"outputs", std::move(mainIO.outputs)},
                {"plan_hash", *planHash},
                {"arena_bytes", int64_t(plan.arena_bytes())},
                {"weight_bytes", int64_t(weightBytes)},
                {"options", std::move(optionsJson)}};
  if (train) {
    manifest["programs"] = std::move(programs);
    manifest["training"] = std::move(training);
  }
  writeJson(bundlePath("manifest.json"), std::move(manifest));
  if (loraConfig)
    writeJson(bundlePath("adapter_config.json"), adapterConfig(loraConfig, modelPath));

  if (reportMemory) {
    auto mib = [](uint64_t b) { return double(b) / (1024.0 * 1024.0); };
    llvm::outs() << llvm::formatv("arena peak:   {0} bytes ({1:F2} MiB)\n", plan.arena_bytes(),
                                  mib(plan.arena_bytes()));
    llvm::outs() << llvm::formatv("weights:      {0} bytes ({1:F2} MiB) in {2} tensors\n",
                                  weightBytes, mib(weightBytes), plan.weights_size());
    llvm::outs() << llvm::formatv("total:        {0} bytes ({1:F2} MiB)\n",
                                  plan.arena_bytes() + weightBytes,
                                  mib(plan.arena_bytes() + weightBytes));
    for (const PlanFile &p : plans)
      if (p.function != "main")
        llvm::outs() << llvm::formatv("{0,-16}arena peak {1} bytes ({2:F2} MiB)\n",
                                      p.function + ":", p.plan.arena_bytes(),
                                      mib(p.plan.arena_bytes()));
    // The GPU peak of --device cuda (runtime/DeviceMemory.h): vlora-run
    // runs main; vlora-train holds train_step and optimizer_step at once.
    std::map<std::string, vlora::runtime::CudaMemoryEstimate> gpu;
    for (const PlanFile &p : plans) {
      vlora::runtime::Expected<vlora::runtime::Program> program =
          vlora::runtime::validatePlan(p.plan, p.file);
      if (!program) {
        llvm::outs() << "gpu peak: not predicted: the " << p.function
                     << " plan does not load in the runtime: "
                     << program.message() << "\n";
        return 0;
      }
      gpu[p.function] = vlora::runtime::estimateCudaMemory(*program);
    }
    auto gpuLine = [&](llvm::StringRef tool,
                       std::vector<vlora::runtime::CudaMemoryEstimate> parts,
                       llvm::StringRef detail) {
      uint64_t peak = vlora::runtime::cudaPeakBytes(parts);
      llvm::outs() << llvm::formatv("gpu peak, {0}: {1} bytes ({2:F2} MiB): {3}\n", tool,
                                    peak, mib(peak), detail);
    };
    gpuLine("vlora-run", {gpu["main"]}, vlora::runtime::describeCudaMemory(gpu["main"]));
    if (train)
      gpuLine("vlora-train", {gpu["train_step"], gpu["optimizer_step"]},
              "train_step " + vlora::runtime::describeCudaMemory(gpu["train_step"]) +
                  "; optimizer_step " +
                  vlora::runtime::describeCudaMemory(gpu["optimizer_step"]));
  }
  return 0;
}
