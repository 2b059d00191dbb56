//===- Manifest.cpp - a bundle's manifest.json ----------------------------===//

#include "runtime/Manifest.h"

#include "runtime/Safetensors.h"

#include <nlohmann/json.hpp>

#include <cerrno>
#include <cstring>
#include <fstream>

namespace vlora::runtime {

namespace {
using Json = nlohmann::json;

/// A list of {"name", "dtype", "shape"} under `object[key]`; `where` names
/// the list in messages ("\"inputs\"", "\"programs\".train_step.inputs").
Status parseTensorList(const Json &object, const char *key, const std::string &where,
                       std::vector<TensorInfo> &out) {
  auto list = object.find(key);
  if (list == object.end() || !list->is_array())
    return Error("missing array " + where);
  for (const Json &t : *list) {
    if (!t.is_object() || !t.contains("name") || !t["name"].is_string() ||
        !t.contains("dtype") || !t["dtype"].is_string() || !t.contains("shape") ||
        !t["shape"].is_array())
      return Error("a " + where + " entry needs a string name and dtype and a shape: " +
                   t.dump());
    std::string name = t["name"].get<std::string>();
    auto dtype = parseSafetensorsDType(t["dtype"].get<std::string>());
    if (!dtype)
      return Error(where + ": tensor '" + name + "' has unknown dtype \"" +
                   t["dtype"].get<std::string>() + "\"");
    kernels::Shape shape;
    for (const Json &d : t["shape"]) {
      if (!d.is_number_unsigned())
        return Error(where + ": tensor '" + name +
                     "' has a shape entry that is not a non-negative integer");
      shape.push_back(d.get<int64_t>());
    }
    out.push_back({name, *dtype, std::move(shape)});
  }
  return Status::success();
}

/// A plan file name inside the bundle: no folders, no "..".
bool isPlainFileName(const std::string &name) {
  return !name.empty() && name != "." && name != ".." &&
         name.find('/') == std::string::npos && name.find('\0') == std::string::npos;
}

Status parsePrograms(const Json &json, std::map<std::string, ProgramRecord> &out) {
  if (!json.is_object())
    return Error("\"programs\" is not an object");
  for (auto it = json.begin(); it != json.end(); ++it) {
    std::string where = "\"programs\"." + it.key();
    const Json &p = it.value();
    if (!p.is_object())
      return Error(where + " is not an object");
    ProgramRecord r;
    auto plan = p.find("plan");
    if (plan == p.end() || !plan->is_string() ||
        !isPlainFileName(plan->get<std::string>()))
      return Error(where + ".plan must be a file name inside the bundle");
    r.plan = plan->get<std::string>();
    auto hash = p.find("plan_hash");
    if (hash == p.end() || !hash->is_string() ||
        hash->get<std::string>().rfind("fnv1a64:", 0) != 0)
      return Error(where + ".plan_hash must be a string \"fnv1a64:<hex>\"");
    r.planHash = hash->get<std::string>();
    auto arena = p.find("arena_bytes");
    if (arena == p.end() || !arena->is_number_unsigned())
      return Error(where + ".arena_bytes must be a non-negative integer");
    r.arenaBytes = arena->get<uint64_t>();
    if (Status s = parseTensorList(p, "inputs", where + ".inputs", r.inputs); !s)
      return s;
    if (Status s = parseTensorList(p, "outputs", where + ".outputs", r.outputs); !s)
      return s;
    out.emplace(it.key(), std::move(r));
  }
  return Status::success();
}

Status parseTraining(const Json &json, TrainingInfo &info) {
  if (!json.is_object())
    return Error("\"training\" is not an object");
  auto field = [&](const char *key) -> const Json * {
    auto it = json.find(key);
    return it == json.end() ? nullptr : &*it;
  };
  auto where = [](const char *key) { return std::string("\"training\".") + key; };
  const Json *inputs = field("model_inputs");
  if (!inputs || !inputs->is_array() || inputs->empty())
    return Error(where("model_inputs") + " must be a non-empty array of input names");
  for (const Json &n : *inputs) {
    if (!n.is_string() || n.get<std::string>().empty())
      return Error(where("model_inputs") + " has an entry that is not a name: " + n.dump());
    info.modelInputs.push_back(n.get<std::string>());
  }
  const Json *labels = field("labels");
  if (!labels || !labels->is_string() || labels->get<std::string>().empty())
    return Error(where("labels") + " must be the name of the labels input");
  info.labels = labels->get<std::string>();
  auto positive = [&](const char *key, int64_t &out) -> Status {
    const Json *v = field(key);
    if (!v || !v->is_number_integer() || v->get<int64_t>() <= 0)
      return Error(where(key) + " must be a positive integer");
    out = v->get<int64_t>();
    return Status::success();
  };
  if (Status s = positive("batch_size", info.batchSize); !s)
    return s;
  if (Status s = positive("sequence_length", info.sequenceLength); !s)
    return s;
  if (Status s = positive("vocab_size", info.vocabSize); !s)
    return s;
  if (const Json *v = field("ignore_index")) {
    if (!v->is_number_integer())
      return Error(where("ignore_index") + " must be an integer");
    info.ignoreIndex = v->get<int64_t>();
  }
  auto number = [&](const char *key, double &out, double lo, double hi,
                    bool loOpen, bool hiOpen) -> Status {
    const Json *v = field(key);
    if (!v)
      return Status::success(); // the default
    if (!v->is_number())
      return Error(where(key) + " must be a number");
    double x = v->get<double>();
    if (!(loOpen ? x > lo : x >= lo) || !(hiOpen ? x < hi : x <= hi))
      return Error(where(key) + " is " + v->dump() + ", outside " + (loOpen ? "(" : "[") +
                   std::to_string(lo) + ", " + std::to_string(hi) + (hiOpen ? ")" : "]"));
    out = x;
    return Status::success();
  };
  if (Status s = number("lora_dropout", info.loraDropout, 0, 1, false, true); !s)
    return s;
  if (Status s = number("adam_beta1", info.adamBeta1, 0, 1, false, true); !s)
    return s;
  if (Status s = number("adam_beta2", info.adamBeta2, 0, 1, false, true); !s)
    return s;
  if (Status s = number("adam_epsilon", info.adamEpsilon, 0, 1, true, false); !s)
    return s;
  if (Status s = parseTensorList(json, "adapters", where("adapters"), info.adapters); !s)
    return s;
  if (info.adapters.empty())
    return Error(where("adapters") + " is empty: the bundle has nothing to train");
  for (const TensorInfo &a : info.adapters)
    if (a.dtype != kernels::DType::F32)
      return Error(where("adapters") + ": adapter '" + a.name + "' is " +
                   safetensorsDTypeName(a.dtype) + ", only F32 adapters are trained");
  return Status::success();
}
} // namespace

Expected<Manifest> readManifest(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return Error("cannot open " + path + ": " + std::strerror(errno));
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception &e) {
    return Error(path + ": invalid JSON: " + e.what());
  }
  auto fail = [&](const std::string &what) { return Error(path + ": " + what); };
  if (!json.is_object())
    return fail("not a JSON object");
  auto version = json.find("format_version");
  if (version == json.end() || !version->is_number_integer())
    return fail("missing integer \"format_version\"");
  if (version->get<int64_t>() != kManifestFormatVersion)
    return fail("manifest format version " + std::to_string(version->get<int64_t>()) +
                ", this runtime reads " + std::to_string(kManifestFormatVersion));
  Manifest m;
  try {
    m.compilerVersion = json.value("compiler_version", "");
    m.planHash = json.value("plan_hash", "");
    if (auto model = json.find("model"); model != json.end()) {
      if (!model->is_object())
        return fail("\"model\" is not an object");
      m.modelPath = model->value("path", "");
      m.weightRoot = model->value("weight_root", "");
    }
    auto files = json.find("weight_files");
    if (files != json.end()) {
      if (!files->is_array())
        return fail("\"weight_files\" is not an array");
      for (const nlohmann::json &f : *files) {
        if (!f.is_object() || !f.contains("file") || !f["file"].is_string() ||
            !f.contains("size") || !f["size"].is_number_unsigned() ||
            !f.contains("hash") || !f["hash"].is_string() || !f.contains("root") ||
            !f["root"].is_string())
          return fail("a \"weight_files\" entry needs string root, file, hash and "
                      "a non-negative integer size: " + f.dump());
        std::string root = f["root"].get<std::string>();
        if (root != "model" && root != "bundle")
          return fail("weight file root must be \"model\" or \"bundle\", got \"" + root + "\"");
        m.weightFiles.push_back({root == "bundle" ? WeightRootKind::Bundle
                                                  : WeightRootKind::Model,
                                 f["file"].get<std::string>(),
                                 f["size"].get<uint64_t>(),
                                 f["hash"].get<std::string>()});
      }
    }
    if (Status s = parseTensorList(json, "inputs", "\"inputs\"", m.inputs); !s)
      return fail(s.message());
    if (Status s = parseTensorList(json, "outputs", "\"outputs\"", m.outputs); !s)
      return fail(s.message());
    if (auto programs = json.find("programs"); programs != json.end()) {
      if (Status s = parsePrograms(*programs, m.programs); !s)
        return fail(s.message());
    }
    if (auto training = json.find("training"); training != json.end()) {
      TrainingInfo info;
      if (Status s = parseTraining(*training, info); !s)
        return fail(s.message());
      m.training = std::move(info);
    }
  } catch (const nlohmann::json::exception &e) {
    return fail(e.what());
  }
  return m;
}

} // namespace vlora::runtime
