//===- Runtime.cpp - open a bundle, bind inputs, run, read outputs --------===//

#include "runtime/Runtime.h"

#include "runtime/FileHash.h"
#include "runtime/Safetensors.h"

#include <cstring>
#include <map>
#include <mutex>
#include <sys/stat.h>
#include <tuple>

namespace vlora::runtime {
using kernels::DType;

std::string userTypeString(DType dtype, const kernels::Shape &shape) {
  return std::string(safetensorsDTypeName(dtype)) + kernels::shapeString(shape);
}

namespace {
std::string joinPath(const std::string &folder, const std::string &file) {
  if (folder.empty())
    return file;
  return folder.back() == '/' ? folder + file : folder + "/" + file;
}

std::string folderOf(const std::string &path) {
  size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

const char *rootName(WeightRootKind root) {
  return root == WeightRootKind::Bundle ? "bundle" : "model";
}

/// hashFile() once per process for the same file: keyed by path, device,
/// inode, size and modification time (ns), so a file changed in between is
/// hashed again. Opening the three programs of a training bundle reads each
/// weight file once.
Expected<std::string> cachedWeightHash(const std::string &path, const struct stat &st) {
  using Key = std::tuple<std::string, uint64_t, uint64_t, int64_t, int64_t, int64_t>;
  static std::mutex mutex;
  static std::map<Key, std::string> hashes;
  Key key{path,
          static_cast<uint64_t>(st.st_dev),
          static_cast<uint64_t>(st.st_ino),
          static_cast<int64_t>(st.st_size),
          static_cast<int64_t>(st.st_mtim.tv_sec),
          static_cast<int64_t>(st.st_mtim.tv_nsec)};
  {
    std::lock_guard<std::mutex> lock(mutex);
    if (auto it = hashes.find(key); it != hashes.end())
      return it->second;
  }
  Expected<std::string> hash = hashFile(path);
  if (hash) {
    std::lock_guard<std::mutex> lock(mutex);
    hashes.emplace(key, *hash);
  }
  return hash;
}
} // namespace

Expected<std::unique_ptr<Runtime>> Runtime::open(const std::string &bundleDir,
                                                 const std::string &device,
                                                 const std::string &programName) {
  return catchErrors<std::unique_ptr<Runtime>>(
      [&]() -> Expected<std::unique_ptr<Runtime>> {
        struct stat st;
        if (::stat(bundleDir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
          return Error(bundleDir + " is not a bundle folder");
        std::string manifestPath = joinPath(bundleDir, "manifest.json");
        Expected<Manifest> manifest = readManifest(manifestPath);
        if (!manifest)
          return manifest.error();

        // The forward plan.pb or one of "programs".
        std::string planPath = joinPath(bundleDir, "plan.pb");
        std::string planHash = manifest->planHash;
        const std::vector<TensorInfo> *declaredInputs = &manifest->inputs;
        const std::vector<TensorInfo> *declaredOutputs = &manifest->outputs;
        const ProgramRecord *record = nullptr;
        if (!programName.empty()) {
          auto it = manifest->programs.find(programName);
          if (it == manifest->programs.end()) {
            if (manifest->programs.empty())
              return Error(manifestPath + ": no program '" + programName +
                           "': the bundle has no \"programs\" (compile it with --train)");
            std::string known;
            for (const auto &[name, r] : manifest->programs)
              known += (known.empty() ? "" : ", ") + name;
            return Error(manifestPath + ": no program '" + programName +
                         "' in \"programs\" (it has " + known + ")");
          }
          record = &it->second;
          planPath = joinPath(bundleDir, record->plan);
          planHash = record->planHash;
          declaredInputs = &record->inputs;
          declaredOutputs = &record->outputs;
        }
        if (!planHash.empty()) {
          Expected<std::string> hash = hashFile(planPath);
          if (!hash)
            return hash.error();
          if (*hash != planHash)
            return Error(planPath + ": corrupt or truncated plan (hash " + *hash +
                         ", the manifest records " + planHash + ")");
        }
        Expected<Program> program = loadPlan(planPath);
        if (!program)
          return program.error();
        if (record && record->arenaBytes != program->arenaBytes)
          return Error(manifestPath + ": \"programs\"." + programName + ".arena_bytes is " +
                       std::to_string(record->arenaBytes) + " but " + planPath + " has " +
                       std::to_string(program->arenaBytes));

        // The manifest and the plan describe the same graph interface.
        auto sameInterface = [&](const std::vector<TensorInfo> &declared,
                                 const std::vector<Binding> &bound,
                                 const char *kind) -> Status {
          if (declared.size() != bound.size())
            return Error(manifestPath + ": lists " + std::to_string(declared.size()) +
                         " " + kind + "s for " + planPath + ", the plan has " +
                         std::to_string(bound.size()));
          for (const TensorInfo &t : declared) {
            const Binding *b = nullptr;
            for (const Binding &x : bound)
              if (x.name == t.name)
                b = &x;
            if (!b)
              return Error(manifestPath + ": " + kind + " '" + t.name +
                           "' is not in the plan");
            const ProgramValue &v = program->values[b->value];
            if (v.dtype != t.dtype || v.shape != t.shape)
              return Error(manifestPath + ": " + kind + " '" + t.name + "' is " +
                           userTypeString(t.dtype, t.shape) + " but the plan has " +
                           userTypeString(v.dtype, v.shape));
          }
          return Status::success();
        };
        if (Status s = sameInterface(*declaredInputs, program->inputs, "input"); !s)
          return s.error();
        if (Status s = sameInterface(*declaredOutputs, program->outputs, "output"); !s)
          return s.error();

        std::string modelRoot = manifest->weightRoot.empty()
                                    ? folderOf(manifest->modelPath)
                                    : manifest->weightRoot;
        // Every weight file: present, and unchanged since compile.
        for (const WeightFileRecord &f : manifest->weightFiles) {
          std::string path = joinPath(
              f.root == WeightRootKind::Bundle ? bundleDir : modelRoot, f.file);
          struct stat fs;
          if (::stat(path.c_str(), &fs) != 0)
            return Error("missing weight file " + path + ": " + std::strerror(errno));
          if (static_cast<uint64_t>(fs.st_size) != f.size)
            return Error("weights changed since compile: " + path + " has " +
                         std::to_string(fs.st_size) + " bytes, the bundle was compiled with " +
                         std::to_string(f.size));
          Expected<std::string> hash = cachedWeightHash(path, fs);
          if (!hash)
            return hash.error();
          if (*hash != f.hash)
            return Error("weights changed since compile: " + path + " (hash " + *hash +
                         ", compiled with " + f.hash + ")");
        }
        for (const ProgramWeight &w : program->weights) {
          bool listed = false;
          for (const WeightFileRecord &f : manifest->weightFiles)
            listed |= f.root == w.root && f.file == w.file;
          if (!listed)
            return Error(manifestPath + ": weight file '" + w.file + "' (" +
                         rootName(w.root) + " root) used by weight '" + w.name +
                         "' is not listed in \"weight_files\"");
        }

        auto rt = std::make_unique<Runtime>(Private{});
        rt->program_ = std::move(*program);
        rt->manifest_ = std::move(*manifest);
        if (Status s = rt->initialise(modelRoot, bundleDir, device); !s)
          return s.error();
        return rt;
      });
}

Expected<std::unique_ptr<Runtime>> Runtime::create(Program program,
                                                   const std::string &modelRoot,
                                                   const std::string &bundleRoot,
                                                   const std::string &device) {
  return catchErrors<std::unique_ptr<Runtime>>(
      [&]() -> Expected<std::unique_ptr<Runtime>> {
        auto rt = std::make_unique<Runtime>(Private{});
        rt->program_ = std::move(program);
        if (Status s = rt->initialise(modelRoot, bundleRoot, device); !s)
          return s.error();
        return rt;
      });
}

Status Runtime::initialise(const std::string &modelRoot,
                           const std::string &bundleRoot,
                           const std::string &device) {
  for (const Binding &b : program_.inputs) {
    const ProgramValue &v = program_.values[b.value];
    inputs_.push_back({b.name, v.dtype, v.shape});
  }
  for (const Binding &b : program_.outputs) {
    const ProgramValue &v = program_.values[b.value];
    outputs_.push_back({b.name, v.dtype, v.shape});
  }
  inputSet_.assign(inputs_.size(), false);

  // Map each weight file once; check every weight's bytes are inside it.
  std::map<std::pair<WeightRootKind, std::string>, size_t> fileIndex;
  std::vector<const void *> &weights = weights_;
  for (const ProgramWeight &w : program_.weights) {
    auto key = std::make_pair(w.root, w.file);
    auto it = fileIndex.find(key);
    if (it == fileIndex.end()) {
      std::string path =
          joinPath(w.root == WeightRootKind::Bundle ? bundleRoot : modelRoot, w.file);
      Expected<MappedFile> file = MappedFile::open(path);
      if (!file)
        return Error("missing weight file: " + file.message());
      files_.push_back(std::move(*file));
      it = fileIndex.emplace(key, files_.size() - 1).first;
    }
    const MappedFile &file = files_[it->second];
    if (w.offset > file.size() || w.length > file.size() - w.offset)
      return Error(file.path() + ": weight '" + w.name + "' bytes [" +
                   std::to_string(w.offset) + ", " + std::to_string(w.offset + w.length) +
                   ") go past the end of the file (" + std::to_string(file.size()) +
                   " bytes)");
    const uint8_t *data = file.data() + w.offset;
    if (reinterpret_cast<uintptr_t>(data) % kernels::dtypeSize(w.dtype) != 0 ||
        w.length == 0) {
      // Unaligned for its elements (ONNX initializers often are): copy.
      alignedCopies_.emplace_back((w.length + 7) / 8 + 1, 0);
      if (w.length)
        std::memcpy(alignedCopies_.back().data(), data, w.length);
      data = reinterpret_cast<const uint8_t *>(alignedCopies_.back().data());
    }
    weights.push_back(data);
  }

  Expected<std::unique_ptr<Backend>> backend = createBackend(device);
  if (!backend)
    return backend.error();
  backend_ = std::move(*backend);
  device_ = device;
  return backend_->prepare(program_, weights);
}

bool Runtime::deviceMemory(DeviceMemoryUse &use) const {
  return backend_ && backend_->deviceMemory(use);
}

Status Runtime::replaceBundleWeights(const std::string &path) {
  return catchErrors<bool>([&]() -> Expected<bool> {
           Expected<SafetensorsFile> file = SafetensorsFile::open(path);
           if (!file)
             return file.error();
           std::map<std::string, size_t> bundleWeights;
           for (size_t i = 0; i < program_.weights.size(); ++i)
             if (program_.weights[i].root == WeightRootKind::Bundle)
               bundleWeights.emplace(program_.weights[i].name, i);
           if (bundleWeights.empty())
             return Error(path + ": the bundle has no adapters (bundle-root weights) "
                                 "to replace");
           // Check everything first: a failure leaves the runtime unchanged.
           std::vector<std::pair<size_t, const SafetensorsTensor *>> replacements;
           for (const SafetensorsTensor &t : file->tensors()) {
             auto it = bundleWeights.find(t.name);
             if (it == bundleWeights.end())
               return Error(path + ": tensor '" + t.name +
                            "' is not an adapter of the bundle (was it trained "
                            "with another bundle or LoRA configuration?)");
             const ProgramWeight &w = program_.weights[it->second];
             if (t.dtype != w.dtype || t.shape != w.shape)
               return Error(path + ": tensor '" + t.name + "' is " +
                            userTypeString(t.dtype, t.shape) + ", the bundle's adapter is " +
                            userTypeString(w.dtype, w.shape));
             replacements.emplace_back(it->second, &t);
           }
           for (const auto &[name, index] : bundleWeights)
             if (!file->find(name))
               return Error(path + ": missing adapter tensor '" + name + "' (" +
                            userTypeString(program_.weights[index].dtype,
                                           program_.weights[index].shape) +
                            ")");
           for (const auto &[index, t] : replacements) {
             alignedCopies_.emplace_back((t->bytes + 7) / 8 + 1, 0);
             if (t->bytes)
               std::memcpy(alignedCopies_.back().data(), t->data, t->bytes);
             weights_[index] = alignedCopies_.back().data();
           }
           // The backend places weights at prepare(): prepare again.
           Expected<std::unique_ptr<Backend>> backend = createBackend(device_);
           if (!backend)
             return backend.error();
           backend_ = std::move(*backend);
           if (Status s = backend_->prepare(program_, weights_); !s)
             return s.error();
           inputSet_.assign(inputs_.size(), false);
           ran_ = false;
           return true;
         })
      .status();
}

Status Runtime::setInput(const std::string &name, DType dtype,
                         const kernels::Shape &shape, const void *data,
                         size_t bytes) {
  for (size_t i = 0; i < inputs_.size(); ++i) {
    const TensorInfo &t = inputs_[i];
    if (t.name != name)
      continue;
    if (t.dtype != dtype)
      return Error("input '" + name + "' has dtype " + safetensorsDTypeName(dtype) +
                   ", the bundle was compiled for " + safetensorsDTypeName(t.dtype));
    if (t.shape != shape)
      return Error("input '" + name + "' has shape " + kernels::shapeString(shape) +
                   ", the bundle was compiled for " + kernels::shapeString(t.shape));
    const ProgramValue &v = program_.values[program_.inputs[i].value];
    if (bytes != v.bytes)
      return Error("input '" + name + "' has " + std::to_string(bytes) +
                   " bytes, " + userTypeString(t.dtype, t.shape) + " needs " +
                   std::to_string(v.bytes));
    Status s = backend_->write(program_.inputs[i].value, data);
    if (s)
      inputSet_[i] = true;
    return s;
  }
  return Error("the bundle has no input '" + name + "'");
}

Status Runtime::setInputsFrom(
    const std::vector<std::pair<std::string, std::string>> &pairs,
    const Runtime &source) {
  if (source.device_ != device_)
    return Error("inputs cannot come from a runtime on device '" + source.device_ +
                 "' (this one is on '" + device_ + "')");
  std::vector<Backend::Copy> copies;
  std::vector<size_t> set;
  for (const auto &[name, sourceName] : pairs) {
    const Binding *from = nullptr;
    for (const Binding &b : source.program_.outputs)
      if (b.name == sourceName)
        from = &b;
    if (from && !source.ran_)
      return Error("output '" + sourceName + "' read before a successful run");
    if (!from)
      for (const Binding &b : source.program_.inputs)
        if (b.name == sourceName)
          from = &b;
    if (!from)
      return Error("the source bundle has no output or input '" + sourceName + "'");
    const ProgramValue &sv = source.program_.values[from->value];
    size_t i = 0;
    while (i < inputs_.size() && inputs_[i].name != name)
      ++i;
    if (i == inputs_.size())
      return Error("the bundle has no input '" + name + "'");
    uint32_t value = program_.inputs[i].value;
    const ProgramValue &v = program_.values[value];
    if (sv.dtype != v.dtype || sv.shape != v.shape)
      return Error("input '" + name + "' is " + userTypeString(v.dtype, v.shape) +
                   ", '" + sourceName + "' is " + userTypeString(sv.dtype, sv.shape));
    copies.push_back({value, source.backend_->address(from->value)});
    set.push_back(i);
  }
  Status s = backend_->copyIn(copies);
  if (s)
    for (size_t i : set)
      inputSet_[i] = true;
  return s;
}

Status Runtime::setInputZero(const std::string &name) {
  for (size_t i = 0; i < inputs_.size(); ++i) {
    if (inputs_[i].name != name)
      continue;
    Status s = backend_->zero(program_.inputs[i].value);
    if (s)
      inputSet_[i] = true;
    return s;
  }
  return Error("the bundle has no input '" + name + "'");
}

Status Runtime::run() {
  for (size_t i = 0; i < inputs_.size(); ++i)
    if (!inputSet_[i])
      return Error("input '" + inputs_[i].name + "' was not given");
  Status s = backend_->run();
  if (s)
    ran_ = true;
  return s;
}

Expected<std::vector<uint8_t>> Runtime::output(const std::string &name) const {
  if (!ran_)
    return Error("output '" + name + "' read before a successful run");
  for (const Binding &b : program_.outputs) {
    if (b.name != name)
      continue;
    std::vector<uint8_t> bytes(program_.values[b.value].bytes);
    if (Status s = backend_->read(b.value, bytes.data()); !s)
      return s.error();
    return bytes;
  }
  return Error("the bundle has no output '" + name + "'");
}

} // namespace vlora::runtime
