//===- Manifest.cpp - a bundle's manifest.json ----------------------------===//

#include "runtime/Manifest.h"

#include "runtime/Safetensors.h"

#include <nlohmann/json.hpp>

#include <cerrno>
#include <cstring>
#include <fstream>

namespace vlora::runtime {

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
    auto tensors = [&](const char *key, std::vector<TensorInfo> &out) -> Status {
      auto list = json.find(key);
      if (list == json.end() || !list->is_array())
        return fail(std::string("missing array \"") + key + "\"");
      for (const nlohmann::json &t : *list) {
        if (!t.is_object() || !t.contains("name") || !t["name"].is_string() ||
            !t.contains("dtype") || !t["dtype"].is_string() || !t.contains("shape") ||
            !t["shape"].is_array())
          return fail(std::string("an \"") + key +
                      "\" entry needs a string name and dtype and a shape: " + t.dump());
        auto dtype = parseSafetensorsDType(t["dtype"].get<std::string>());
        if (!dtype)
          return fail("tensor '" + t["name"].get<std::string>() + "' has unknown dtype \"" +
                      t["dtype"].get<std::string>() + "\"");
        kernels::Shape shape;
        for (const nlohmann::json &d : t["shape"]) {
          if (!d.is_number_unsigned())
            return fail("tensor '" + t["name"].get<std::string>() +
                        "' has a shape entry that is not a non-negative integer");
          shape.push_back(d.get<int64_t>());
        }
        out.push_back({t["name"].get<std::string>(), *dtype, std::move(shape)});
      }
      return Status::success();
    };
    if (Status s = tensors("inputs", m.inputs); !s)
      return s.error();
    if (Status s = tensors("outputs", m.outputs); !s)
      return s.error();
  } catch (const nlohmann::json::exception &e) {
    return fail(e.what());
  }
  return m;
}

} // namespace vlora::runtime
