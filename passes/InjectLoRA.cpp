//===- InjectLoRA.cpp - --vlora-inject-lora -------------------------------===//
//
// Turns the selected frozen-weight `vlora.matmul`s into `vlora.lora_matmul`s
// with new trainable adapter parameters, following Unsloth's
// `FastVisionModel.get_peft_model` switches and PEFT's `LoraConfig`.
//
// This file is compiled with exceptions enabled (see passes/CMakeLists.txt)
// because std::regex reports an invalid pattern by throwing; every use of
// std::regex is wrapped here and no exception leaves this file.
//
//===----------------------------------------------------------------------===//

#include "passes/PEFTKeys.h"
#include "passes/Passes.h"
#include "passes/TowerTags.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/MemoryBuffer.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <map>
#include <set>
#include <regex>

namespace vlora {
#define GEN_PASS_DEF_VLORAINJECTLORA
#include "passes/Passes.h.inc"
} // namespace vlora

using namespace mlir;
using namespace vlora;

namespace {

/// The file the bundle writer puts freshly initialised adapters in.
constexpr llvm::StringLiteral kBundleAdapterFile = "adapters.init.safetensors";

/// At most this many modules are listed in an error.
constexpr size_t kMaxListed = 20;

//===----------------------------------------------------------------------===//
// Regular expressions (PEFT uses Python's `re`; ECMAScript is the closest)
//===----------------------------------------------------------------------===//

/// Compiles `pattern`, or returns the library's reason why it is invalid.
std::optional<std::regex> compileRegex(const std::string &pattern,
                                       std::string &error) {
  try {
    return std::regex(pattern, std::regex::ECMAScript);
  } catch (const std::regex_error &e) {
    error = e.what();
    return std::nullopt;
  }
}

bool fullMatch(const std::regex &regex, llvm::StringRef text) {
  try {
    return std::regex_match(text.begin(), text.end(), regex);
  } catch (const std::regex_error &) {
    return false; // too complex for the library: treated as no match
  }
}

/// True when `text` has a regex metacharacter other than `.` (a module name
/// such as `self_attn.q_proj` has dots but is not meant as a pattern).
bool looksLikeRegex(llvm::StringRef text) {
  return text.find_first_of("\\^$|?*+()[]{}") != llvm::StringRef::npos;
}

/// PEFT's `target_modules` / `exclude_modules`: a string is a full-match
/// regex on the module path; a list matches names exactly or as `.`-suffixes.
/// In a pass option a list with one element that has a regex metacharacter
/// other than `.` is the string form.
struct ModuleMatcher {
  std::optional<std::regex> regex;
  std::string regexText;
  SmallVector<std::string> names;

  bool empty() const { return !regex && names.empty(); }
  bool isRegex() const { return regex.has_value(); }

  static bool nameMatches(llvm::StringRef name, llvm::StringRef module) {
    return module == name ||
           (module.ends_with(name) &&
            module[module.size() - name.size() - 1] == '.');
  }

  bool matches(llvm::StringRef module) const {
    if (regex)
      return fullMatch(*regex, module);
    return llvm::any_of(
        names, [&](const std::string &n) { return nameMatches(n, module); });
  }
};

/// One `pattern:value` element of rank-pattern / alpha-pattern.
struct PatternOverride {
  std::string pattern;
  std::regex regex; ///< PEFT's `(.*\.)?(pattern)`, full match
  double value;
  bool used = false;
};

//===----------------------------------------------------------------------===//
// Candidates
//===----------------------------------------------------------------------===//

/// A tagged frozen-weight matmul and whether a lora_matmul can replace it.
struct Candidate {
  FrozenMatmul matmul;
  TowerTags tags;
  std::string unsupported; ///< why lora_matmul cannot take it; empty if it can
};

/// An op with a module path that is never a LoRA target, and why.
struct NonTarget {
  std::string module;
  std::string reason;
};

std::string describe(const Candidate &c) {
  std::string s = c.tags.module + " (" + stringifyTower(c.tags.tower).str() +
                  " " + stringifyBlock(c.tags.block).str();
  if (c.tags.layer)
    s += " " + std::to_string(*c.tags.layer);
  return s + ")";
}

/// `a, b, c, ... (+N more)` of at most kMaxListed items.
std::string listUpTo(ArrayRef<std::string> items) {
  std::string s;
  for (auto [i, item] : llvm::enumerate(items)) {
    if (i == kMaxListed) {
      s += ", ... (+" + std::to_string(items.size() - kMaxListed) + " more)";
      break;
    }
    if (i)
      s += ", ";
    s += item;
  }
  return s;
}

std::string shapeString(ArrayRef<int64_t> shape) {
  std::string s = "[";
  for (auto [i, d] : llvm::enumerate(shape))
    s += (i ? ", " : "") + std::to_string(d);
  return s + "]";
}

//===----------------------------------------------------------------------===//
// PEFT adapter files (init-from)
//===----------------------------------------------------------------------===//

struct SafetensorsTensor {
  std::string dtype;
  SmallVector<int64_t> shape;
  int64_t offset; ///< absolute byte offset in the file
  int64_t length;
};

/// Bytes per element of a safetensors dtype; 0 when unknown.
int64_t safetensorsDtypeBytes(llvm::StringRef dtype) {
  if (dtype == "F64" || dtype == "I64" || dtype == "U64")
    return 8;
  if (dtype == "F32" || dtype == "I32" || dtype == "U32")
    return 4;
  if (dtype == "F16" || dtype == "BF16" || dtype == "I16" || dtype == "U16")
    return 2;
  if (dtype == "F8_E4M3" || dtype == "F8_E5M2" || dtype == "I8" ||
      dtype == "U8" || dtype == "BOOL")
    return 1;
  return 0;
}

/// Reads the header of a safetensors file and checks every tensor's extent
/// against the file. Errors name the file and the tensor.
FailureOr<std::map<std::string, SafetensorsTensor>>
readSafetensorsHeader(llvm::StringRef path, Location loc) {
  auto fail = [&](const Twine &msg) {
    emitError(loc) << "init-from '" << path << "': " << msg;
    return failure();
  };
  auto buffer = llvm::MemoryBuffer::getFile(path, /*IsText=*/false,
                                            /*RequiresNullTerminator=*/false);
  if (!buffer)
    return fail("cannot open: " + buffer.getError().message());
  llvm::StringRef data = (*buffer)->getBuffer();
  uint64_t fileSize = data.size();
  if (fileSize < 8)
    return fail("not a safetensors file (shorter than its 8-byte header size)");
  uint64_t headerSize = 0;
  for (int i = 7; i >= 0; --i)
    headerSize = (headerSize << 8) | static_cast<uint8_t>(data[i]);
  if (headerSize > fileSize - 8)
    return fail("not a safetensors file (header size " + Twine(headerSize) +
                " runs past the end of the " + Twine(fileSize) +
                "-byte file)");
  llvm::StringRef headerText = data.substr(8, headerSize);
  nlohmann::json header = nlohmann::json::parse(
      headerText.begin(), headerText.end(), /*cb=*/nullptr,
      /*allow_exceptions=*/false);
  if (header.is_discarded() || !header.is_object())
    return fail("not a safetensors file (its header is not a JSON object)");
  uint64_t dataStart = 8 + headerSize, dataSize = fileSize - dataStart;

  std::map<std::string, SafetensorsTensor> tensors;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string &name = it.key();
    if (name == "__metadata__")
      continue;
    const nlohmann::json &entry = it.value();
    auto bad = [&](const Twine &what) {
      return fail("tensor '" + name + "': " + what);
    };
    if (!entry.is_object() || !entry.contains("dtype") ||
        !entry.contains("shape") || !entry.contains("data_offsets"))
      return bad("needs dtype, shape and data_offsets");
    const nlohmann::json &dtype = entry["dtype"], &shape = entry["shape"],
                         &offsets = entry["data_offsets"];
    if (!dtype.is_string())
      return bad("dtype is not a string");
    int64_t elementBytes = safetensorsDtypeBytes(dtype.get<std::string>());
    if (elementBytes == 0)
      return bad("unknown dtype '" + dtype.get<std::string>() + "'");
    if (!shape.is_array())
      return bad("shape is not a list");
    SafetensorsTensor tensor;
    tensor.dtype = dtype.get<std::string>();
    uint64_t elements = 1;
    for (const nlohmann::json &d : shape) {
      if (!d.is_number_unsigned() || d.get<uint64_t>() > (1ull << 40))
        return bad("shape has an invalid dimension");
      tensor.shape.push_back(d.get<int64_t>());
      elements *= d.get<uint64_t>();
      if (elements > (1ull << 48))
        return bad("shape is too large");
    }
    if (!offsets.is_array() || offsets.size() != 2 ||
        !offsets[0].is_number_unsigned() || !offsets[1].is_number_unsigned())
      return bad("data_offsets is not a pair of non-negative integers");
    uint64_t begin = offsets[0].get<uint64_t>(), end = offsets[1].get<uint64_t>();
    if (begin > end || end > dataSize)
      return bad("data_offsets [" + Twine(begin) + ", " + Twine(end) +
                 "] run past the end of the " + Twine(dataSize) +
                 "-byte data section");
    if (end - begin != elements * elementBytes)
      return bad("data_offsets cover " + Twine(end - begin) + " bytes but " +
                 Twine(tensor.dtype) + " " + shapeString(tensor.shape) +
                 " needs " + Twine(elements * elementBytes));
    tensor.offset = dataStart + begin;
    tensor.length = end - begin;
    tensors.emplace(name, std::move(tensor));
  }
  return tensors;
}

//===----------------------------------------------------------------------===//
// The pass
//===----------------------------------------------------------------------===//

struct InjectLoRAPass : vlora::impl::VLoRAInjectLoRABase<InjectLoRAPass> {
  using VLoRAInjectLoRABase::VLoRAInjectLoRABase;
  void runOnOperation() override;

private:
  LogicalResult checkOptions(Location loc);
  FailureOr<ModuleMatcher> parseMatcher(ArrayRef<std::string> elements,
                                        llvm::StringRef option, Location loc);
  FailureOr<std::vector<PatternOverride>>
  parsePatterns(ArrayRef<std::string> elements, llvm::StringRef option,
                bool integer, Location loc);
  /// Whether the switches (vision/language/projector x attention/mlp) pick
  /// `tags`.
  bool selectedBySwitches(const TowerTags &tags) const;
  std::string switchesString() const;
};

LogicalResult InjectLoRAPass::checkOptions(Location loc) {
  if (rank <= 0)
    return emitError(loc) << "--vlora-inject-lora: r must be positive, got "
                          << static_cast<int64_t>(rank);
  if (!(alpha > 0) || !std::isfinite(alpha))
    return emitError(loc) << "--vlora-inject-lora: alpha must be positive, got "
                          << static_cast<double>(alpha);
  if (!(dropout >= 0.0 && dropout < 1.0))
    return emitError(loc) << "--vlora-inject-lora: dropout must be in [0, 1), got "
                          << static_cast<double>(dropout);
  if (init != "kaiming" && init != "gaussian")
    return emitError(loc) << "--vlora-inject-lora: init must be 'kaiming' or "
                             "'gaussian', got '"
                          << static_cast<std::string>(init) << "'";
  if (seed < 0)
    return emitError(loc) << "--vlora-inject-lora: seed must be non-negative, got "
                          << static_cast<int64_t>(seed);
  for (int64_t layer : layersToTransform)
    if (layer < 0)
      return emitError(loc) << "--vlora-inject-lora: layers-to-transform has a "
                               "negative layer "
                            << layer;
  if (targetModules.empty()) {
    // Unsloth's get_peft_regex raises for these two.
    if (!vision && !language)
      return emitError(loc)
             << "--vlora-inject-lora: vision=false and language=false select "
                "no layers; enable at least one tower (or give "
                "target-modules)";
    if (!attention && !mlp)
      return emitError(loc)
             << "--vlora-inject-lora: attention=false and mlp=false select no "
                "modules; enable at least one of them (or give "
                "target-modules)";
  }
  return success();
}

FailureOr<ModuleMatcher>
InjectLoRAPass::parseMatcher(ArrayRef<std::string> elements,
                             llvm::StringRef option, Location loc) {
  ModuleMatcher matcher;
  if (elements.size() == 1 && looksLikeRegex(elements.front())) {
    std::string error;
    matcher.regex = compileRegex(elements.front(), error);
    if (!matcher.regex)
      return emitError(loc) << "--vlora-inject-lora: " << option
                            << " regex '" << elements.front()
                            << "' is invalid: " << error;
    matcher.regexText = elements.front();
    return matcher;
  }
  for (const std::string &name : elements) {
    if (name.empty() || looksLikeRegex(name))
      return emitError(loc)
             << "--vlora-inject-lora: " << option << " element '" << name
             << "' is not a module name; a regex must be the only element";
    matcher.names.push_back(name);
  }
  return matcher;
}

FailureOr<std::vector<PatternOverride>>
InjectLoRAPass::parsePatterns(ArrayRef<std::string> elements,
                              llvm::StringRef option, bool integer,
                              Location loc) {
  std::vector<PatternOverride> patterns;
  for (const std::string &element : elements) {
    llvm::StringRef text(element);
    size_t colon = text.rfind(':');
    auto bad = [&](const Twine &why) {
      return emitError(loc) << "--vlora-inject-lora: " << option << " element '"
                            << element << "' " << why
                            << " (expected pattern:"
                            << (integer ? "r" : "alpha") << ")";
    };
    if (colon == llvm::StringRef::npos || colon == 0)
      return bad("has no pattern");
    llvm::StringRef pattern = text.take_front(colon),
                    value = text.drop_front(colon + 1).trim();
    PatternOverride p;
    p.pattern = pattern.str();
    if (integer) {
      int64_t r;
      if (value.getAsInteger(10, r) || r <= 0)
        return bad("has no positive integer rank");
      p.value = r;
    } else {
      double a;
      if (value.getAsDouble(a) || !(a > 0) || !std::isfinite(a))
        return bad("has no positive alpha");
      p.value = a;
    }
    std::string error;
    std::optional<std::regex> regex =
        compileRegex("(.*\\.)?(" + p.pattern + ")", error);
    if (!regex)
      return emitError(loc) << "--vlora-inject-lora: " << option << " regex '"
                            << p.pattern << "' is invalid: " << error;
    p.regex = std::move(*regex);
    patterns.push_back(std::move(p));
  }
  return patterns;
}

bool InjectLoRAPass::selectedBySwitches(const TowerTags &tags) const {
  switch (tags.tower) {
  case TowerKind::projector:
    // The projector is a plain MLP bridge: its flag alone decides.
    return projector;
  case TowerKind::vision:
  case TowerKind::language:
    if (!(tags.tower == TowerKind::vision ? vision : language))
      return false;
    return (tags.block == BlockKind::attention && attention) ||
           (tags.block == BlockKind::mlp && mlp);
  case TowerKind::other:
    return false;
  }
  return false;
}

std::string InjectLoRAPass::switchesString() const {
  auto b = [](bool v) { return v ? "true" : "false"; };
  return std::string("vision=") + b(vision) + " language=" + b(language) +
         " attention=" + b(attention) + " mlp=" + b(mlp) +
         " projector=" + b(projector);
}

void InjectLoRAPass::runOnOperation() {
  ModuleOp module = getOperation();
  Location loc = module.getLoc();
  MLIRContext *ctx = &getContext();

  if (module->hasAttr(VLoRADialect::kLoRAConfigAttrName)) {
    emitError(loc) << "--vlora-inject-lora: the module already has LoRA "
                      "adapters ('"
                   << VLoRADialect::kLoRAConfigAttrName << "' is set)";
    return signalPassFailure();
  }
  if (failed(checkOptions(loc)))
    return signalPassFailure();
  FailureOr<ModuleMatcher> targets =
      parseMatcher(targetModules, "target-modules", loc);
  FailureOr<ModuleMatcher> excludes =
      parseMatcher(excludeModules, "exclude-modules", loc);
  if (failed(targets) || failed(excludes))
    return signalPassFailure();
  FailureOr<std::vector<PatternOverride>> rankPatterns =
      parsePatterns(rankPattern, "rank-pattern", /*integer=*/true, loc);
  FailureOr<std::vector<PatternOverride>> alphaPatterns =
      parsePatterns(alphaPattern, "alpha-pattern", /*integer=*/false, loc);
  if (failed(rankPatterns) || failed(alphaPatterns))
    return signalPassFailure();

  // Collect the candidates and the tagged ops that can never be targets.
  std::vector<Candidate> candidates;
  std::vector<NonTarget> nonTargets;
  module.walk([&](Operation *op) {
    auto moduleAttr =
        op->getAttrOfType<StringAttr>(VLoRADialect::kModuleAttrName);
    if (!moduleAttr)
      return;
    auto matmul = dyn_cast<MatmulOp>(op);
    std::optional<FrozenMatmul> frozen;
    if (matmul)
      frozen = getFrozenMatmul(matmul);
    std::optional<TowerTags> tags = getTowerTags(op);
    if (!matmul || !frozen || !tags) {
      nonTargets.push_back(
          {moduleAttr.str(),
           !matmul ? "is a '" + op->getName().getStringRef().str() +
                         "', not a matmul"
                   : (!frozen ? std::string("is a matmul without a frozen "
                                            "2-D weight")
                              : std::string("is not fully tagged"))});
      return;
    }
    if (tags->tower == TowerKind::other) {
      nonTargets.push_back({tags->module, "is in tower 'other' (lm_head), "
                                          "never a LoRA target"});
      return;
    }
    Candidate c{*frozen, *tags, ""};
    if (frozen->weightOperand != 1)
      c.unsupported = "its weight is the left operand (W @ x); "
                      "vlora.lora_matmul takes x @ W only";
    else if (matmul.getTransposeA())
      c.unsupported = "its input is transposed (transpose_a); "
                      "vlora.lora_matmul takes [..., in] inputs only";
    else if (!isa<FloatType>(
                 cast<RankedTensorType>(matmul.getType()).getElementType()))
      c.unsupported = "its element type is not a float type";
    candidates.push_back(std::move(c));
  });

  if (candidates.empty()) {
    emitError(loc) << "--vlora-inject-lora: no vlora.matmul carries the tags "
                      "of --vlora-classify-towers (run it first)";
    return signalPassFailure();
  }

  // Select.
  std::vector<bool> selected(candidates.size(), false);
  if (targets->empty()) {
    for (auto [i, c] : llvm::enumerate(candidates))
      selected[i] = selectedBySwitches(c.tags);
  } else {
    for (auto [i, c] : llvm::enumerate(candidates))
      selected[i] = targets->matches(c.tags.module);
    // A target that names only modules LoRA cannot take is an error; one
    // that names nothing is what PEFT allows for its generic lists.
    auto reportNonTargets = [&](auto &&matches, llvm::StringRef what,
                                bool isError) {
      SmallVector<std::string> named;
      for (const NonTarget &n : nonTargets)
        if (matches(n.module))
          named.push_back("'" + n.module + "' " + n.reason);
      for (auto [i, c] : llvm::enumerate(candidates))
        if (matches(c.tags.module) && !c.unsupported.empty())
          named.push_back("'" + c.tags.module + "': " + c.unsupported);
      if (named.empty())
        return success();
      auto diag = isError ? emitError(loc) : emitWarning(loc);
      diag << "--vlora-inject-lora: target-modules " << what << " "
           << listUpTo(named);
      return failure();
    };
    if (targets->isRegex()) {
      (void)reportNonTargets(
          [&](llvm::StringRef m) { return targets->matches(m); },
          "regex '" + targets->regexText + "' also matches modules LoRA "
          "cannot take, which are skipped:",
          /*isError=*/false);
    } else {
      bool ok = true;
      for (const std::string &name : targets->names) {
        auto matches = [&](llvm::StringRef m) {
          return ModuleMatcher::nameMatches(name, m);
        };
        bool anyTarget = llvm::any_of(candidates, [&](const Candidate &c) {
          return c.unsupported.empty() && matches(c.tags.module);
        });
        if (anyTarget)
          continue;
        bool anyModule =
            llvm::any_of(candidates,
                         [&](const Candidate &c) {
                           return matches(c.tags.module);
                         }) ||
            llvm::any_of(nonTargets,
                         [&](const NonTarget &n) { return matches(n.module); });
        if (anyModule) {
          ok &= succeeded(reportNonTargets(
              matches, "'" + name + "' names no module LoRA can take:",
              /*isError=*/true));
        } else {
          emitWarning(loc) << "--vlora-inject-lora: target-modules '" << name
                           << "' matches no module";
        }
      }
      if (!ok)
        return signalPassFailure();
    }
  }
  for (auto [i, c] : llvm::enumerate(candidates)) {
    if (!selected[i])
      continue;
    if (!excludes->empty() && excludes->matches(c.tags.module))
      selected[i] = false;
    else if (!layersToTransform.empty() &&
             (!c.tags.layer || !llvm::is_contained(layersToTransform,
                                                   *c.tags.layer)))
      selected[i] = false;
    else if (!c.unsupported.empty()) {
      c.matmul.op->emitRemark() << "--vlora-inject-lora: skipping '"
                                << c.tags.module << "': " << c.unsupported;
      selected[i] = false;
    }
  }

  if (llvm::none_of(selected, [](bool s) { return s; })) {
    SmallVector<std::string> listed;
    for (const Candidate &c : candidates)
      if (c.unsupported.empty())
        listed.push_back(describe(c));
    auto diag = emitError(loc) << "--vlora-inject-lora: no module matched (";
    if (!targets->empty())
      diag << "target-modules="
           << (targets->isRegex() ? targets->regexText
                                  : llvm::join(targets->names, ","));
    else
      diag << switchesString();
    if (!excludes->empty())
      diag << ", exclude-modules="
           << (excludes->isRegex() ? excludes->regexText
                                   : llvm::join(excludes->names, ","));
    if (!layersToTransform.empty()) {
      diag << ", layers-to-transform=";
      llvm::interleave(layersToTransform, diag, ",");
    }
    diag << "); the " << listed.size()
         << " candidate modules are: " << listUpTo(listed);
    return signalPassFailure();
  }

  // Ranks and alphas per module: the first matching pattern wins.
  auto lookup = [](std::vector<PatternOverride> &patterns,
                   llvm::StringRef module, double fallback) {
    for (PatternOverride &p : patterns)
      if (fullMatch(p.regex, module)) {
        p.used = true;
        return p.value;
      }
    return fallback;
  };

  // One adapter per module path (a module applied twice shares it).
  struct Adapter {
    std::string module;
    int64_t r, in, out;
    double alpha, scale;
    func::FuncOp func;
    ParamOp a, b;
  };
  std::map<std::string, Adapter> adapters;
  for (auto [i, c] : llvm::enumerate(candidates)) {
    if (!selected[i])
      continue;
    int64_t r = static_cast<int64_t>(
        lookup(*rankPatterns, c.tags.module, static_cast<double>(rank)));
    double a = lookup(*alphaPatterns, c.tags.module, alpha);
    auto [it, inserted] = adapters.try_emplace(c.tags.module);
    Adapter &adapter = it->second;
    if (inserted) {
      adapter = Adapter{c.tags.module, r, c.matmul.inFeatures,
                        c.matmul.outFeatures, a,
                        useRslora ? a / std::sqrt(static_cast<double>(r))
                                  : a / static_cast<double>(r),
                        c.matmul.op->getParentOfType<func::FuncOp>(),
                        ParamOp(), ParamOp()};
    } else if (adapter.in != c.matmul.inFeatures ||
               adapter.out != c.matmul.outFeatures ||
               adapter.func != c.matmul.op->getParentOfType<func::FuncOp>()) {
      c.matmul.op->emitError()
          << "--vlora-inject-lora: module '" << c.tags.module
          << "' is used by matmuls of different shapes or functions";
      return signalPassFailure();
    }
  }
  for (auto [what, patterns] :
       {std::make_pair("rank-pattern", &*rankPatterns),
        std::make_pair("alpha-pattern", &*alphaPatterns)})
    for (const PatternOverride &p : *patterns)
      if (!p.used)
        emitWarning(loc) << "--vlora-inject-lora: " << what << " '"
                         << p.pattern << "' matches no selected module";

  // Where the adapters' bytes live.
  std::map<std::string, SafetensorsTensor> initTensors;
  if (!initFrom.empty()) {
    FailureOr<std::map<std::string, SafetensorsTensor>> tensors =
        readSafetensorsHeader(initFrom, loc);
    if (failed(tensors))
      return signalPassFailure();
    initTensors = std::move(*tensors);
    SmallVector<std::string> missing, misShaped, extra;
    std::set<std::string> expected;
    for (auto &[modulePath, adapter] : adapters) {
      for (auto [factor, shape] :
           {std::make_pair(LoRAFactor::A,
                           SmallVector<int64_t>{adapter.r, adapter.in}),
            std::make_pair(LoRAFactor::B,
                           SmallVector<int64_t>{adapter.out, adapter.r})}) {
        std::string key = getPEFTLoRAKey(modulePath, factor);
        expected.insert(key);
        auto found = initTensors.find(key);
        if (found == initTensors.end())
          missing.push_back(key);
        else if (found->second.dtype != "F32" ||
                 ArrayRef<int64_t>(found->second.shape) != ArrayRef(shape))
          misShaped.push_back(key + " is " + found->second.dtype + " " +
                              shapeString(found->second.shape) + ", needs F32 " +
                              shapeString(shape));
      }
    }
    for (auto &[key, tensor] : initTensors)
      if (!expected.count(key))
        extra.push_back(key);
    bool ok = true;
    if (!missing.empty()) {
      emitError(loc) << "init-from '" << static_cast<std::string>(initFrom) << "' lacks "
                     << missing.size() << " adapter tensors of the selected "
                     << "modules: " << listUpTo(missing);
      ok = false;
    }
    if (!misShaped.empty()) {
      emitError(loc) << "init-from '" << static_cast<std::string>(initFrom) << "' has "
                     << misShaped.size()
                     << " adapter tensors of the wrong type or shape (r="
                     << static_cast<int64_t>(rank) << " and rank-pattern give the rank): "
                     << listUpTo(misShaped);
      ok = false;
    }
    if (!extra.empty()) {
      emitError(loc) << "init-from '" << static_cast<std::string>(initFrom) << "' has " << extra.size()
                     << " tensors that are no adapter of a selected module: "
                     << listUpTo(extra);
      ok = false;
    }
    if (!ok)
      return signalPassFailure();
  }

  // Create the parameters at the start of each function, in key order, and
  // lay out the bundle file's data section in the same order (the order the
  // safetensors writer uses for same-dtype tensors).
  Builder b(ctx);
  Type f32 = b.getF32Type();
  llvm::DenseMap<Operation *, Operation *> lastInserted;
  int64_t bundleOffset = 0;
  std::map<std::string, std::pair<Adapter *, LoRAFactor>> byKey;
  for (auto &[modulePath, adapter] : adapters) {
    byKey[getPEFTLoRAKey(modulePath, LoRAFactor::A)] = {&adapter, LoRAFactor::A};
    byKey[getPEFTLoRAKey(modulePath, LoRAFactor::B)] = {&adapter, LoRAFactor::B};
  }
  for (auto &[key, entry] : byKey) {
    auto [adapter, factor] = entry;
    SmallVector<int64_t> shape =
        factor == LoRAFactor::A ? SmallVector<int64_t>{adapter->r, adapter->in}
                                : SmallVector<int64_t>{adapter->out, adapter->r};
    auto type = RankedTensorType::get(shape, f32);
    int64_t length = type.getNumElements() * 4;
    WeightSource source = WeightSource::bundle;
    std::string file = kBundleAdapterFile.str();
    int64_t offset = bundleOffset;
    if (!initFrom.empty()) {
      const SafetensorsTensor &t = initTensors.at(key);
      source = WeightSource::external;
      file = initFrom;
      offset = t.offset;
    } else {
      bundleOffset += length;
    }
    OpBuilder builder(ctx);
    Block &entryBlock = adapter->func.getBody().front();
    Operation *&last = lastInserted[adapter->func];
    if (last)
      builder.setInsertionPointAfter(last);
    else
      builder.setInsertionPointToStart(&entryBlock);
    auto param = ParamOp::create(
        builder, NameLoc::get(b.getStringAttr(key)), type, b.getStringAttr(key),
        ParamRoleAttr::get(ctx, ParamRole::trainable),
        WeightSourceAttr::get(ctx, source), b.getStringAttr(file),
        b.getI64IntegerAttr(offset), b.getI64IntegerAttr(length));
    last = param;
    (factor == LoRAFactor::A ? adapter->a : adapter->b) = param;
    numTrainable += type.getNumElements();
  }

  // Rewrite the matmuls.
  for (auto [i, c] : llvm::enumerate(candidates)) {
    if (!selected[i])
      continue;
    Adapter &adapter = adapters.at(c.tags.module);
    MatmulOp matmul = c.matmul.op;
    OpBuilder builder(matmul);
    auto lora = LoRAMatmulOp::create(
        builder, matmul.getLoc(), matmul.getLhs(), matmul.getRhs(), adapter.a,
        adapter.b, /*rng=*/Value(), b.getF64FloatAttr(adapter.scale),
        b.getF64FloatAttr(dropout), matmul.getTransposeBAttr(),
        /*stream=*/IntegerAttr(), matmul.getF32ResultAttr());
    for (NamedAttribute attr : matmul->getDiscardableAttrs())
      lora->setAttr(attr.getName(), attr.getValue());
    matmul.getResult().replaceAllUsesWith(lora.getResult());
    matmul.erase();
    ++numInjected;
  }

  // The configuration, for the bundle's adapter_config.json.
  SmallVector<Attribute> targetNames;
  for (auto &[modulePath, adapter] : adapters)
    targetNames.push_back(b.getStringAttr(modulePath));
  auto patternDict = [&](const std::vector<PatternOverride> &patterns,
                         bool integer) {
    SmallVector<NamedAttribute> entries;
    for (const PatternOverride &p : patterns)
      entries.push_back(b.getNamedAttr(
          p.pattern, integer ? Attribute(b.getI64IntegerAttr(
                                   static_cast<int64_t>(p.value)))
                             : Attribute(b.getF64FloatAttr(p.value))));
    return b.getDictionaryAttr(entries);
  };
  SmallVector<NamedAttribute> config{
      b.getNamedAttr("r", b.getI64IntegerAttr(rank)),
      b.getNamedAttr("alpha", b.getF64FloatAttr(alpha)),
      b.getNamedAttr("dropout", b.getF64FloatAttr(dropout)),
      b.getNamedAttr("use_rslora", b.getBoolAttr(useRslora)),
      b.getNamedAttr("init", b.getStringAttr(init)),
      b.getNamedAttr("seed", b.getI64IntegerAttr(seed)),
      b.getNamedAttr("target_modules", b.getArrayAttr(targetNames)),
      b.getNamedAttr("rank_pattern", patternDict(*rankPatterns, true)),
      b.getNamedAttr("alpha_pattern", patternDict(*alphaPatterns, false)),
  };
  if (!initFrom.empty())
    config.push_back(b.getNamedAttr("init_from", b.getStringAttr(initFrom)));
  module->setAttr(VLoRADialect::kLoRAConfigAttrName,
                  b.getDictionaryAttr(config));
}

} // namespace
