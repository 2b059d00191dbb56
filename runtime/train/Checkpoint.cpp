//===- Checkpoint.cpp - trainer checkpoints and durable files -------------===//

#include "runtime/train/Checkpoint.h"

#include "runtime/FileHash.h"
#include "runtime/Runtime.h"
#include "runtime/Safetensors.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <sys/stat.h>
#include <unistd.h>

namespace vlora::train {
using runtime::Error;
using runtime::Expected;
using runtime::Status;
using Json = nlohmann::json;

namespace {
constexpr const char *kStateFile = "trainer_state.json";
constexpr const char *kAdapterFile = "adapter_model.safetensors";
constexpr const char *kOptimizerFile = "optimizer.safetensors";
constexpr const char *kConfigFile = "adapter_config.json";
constexpr const char *kTempPrefix = ".tmp-checkpoint-";
constexpr const char *kDeletePrefix = ".deleting-checkpoint-";

std::string join(const std::string &dir, const std::string &name) {
  return dir.empty() || dir.back() == '/' ? dir + name : dir + "/" + name;
}

std::string errnoText() { return std::strerror(errno); }

/// Writes and fsyncs a new file.
Status writeDurable(const std::string &path, const std::string &bytes) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    return Error("cannot create " + path + ": " + errnoText());
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      std::string why = errnoText();
      ::close(fd);
      return Error("cannot write " + path + ": " + why);
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    std::string why = errnoText();
    ::close(fd);
    return Error("cannot sync " + path + ": " + why);
  }
  if (::close(fd) != 0)
    return Error("cannot close " + path + ": " + errnoText());
  return Status::success();
}

std::string folderOf(const std::string &path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos)
    return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

/// The checksum of a state object: FNV-1a 64 of its dump without "checksum".
std::string stateChecksum(Json state) {
  state.erase("checksum");
  std::string text = state.dump();
  char out[32];
  std::snprintf(out, sizeof(out), "fnv1a64:%016llx",
                static_cast<unsigned long long>(runtime::fnv1a64(text.data(), text.size())));
  return out;
}
} // namespace

Status syncFolder(const std::string &dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return Error("cannot open folder " + dir + ": " + errnoText());
  int rc = ::fsync(fd);
  std::string why = errnoText();
  ::close(fd);
  if (rc != 0)
    return Error("cannot sync folder " + dir + ": " + why);
  return Status::success();
}

Status writeFileAtomic(const std::string &path, const std::string &bytes) {
  std::string temp = path + ".tmp." + std::to_string(::getpid());
  if (Status s = writeDurable(temp, bytes); !s) {
    ::unlink(temp.c_str());
    return s;
  }
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    std::string why = errnoText();
    ::unlink(temp.c_str());
    return Error("cannot rename " + temp + " to " + path + ": " + why);
  }
  return syncFolder(folderOf(path));
}

Expected<std::string> readWholeFile(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return Error("cannot open " + path + ": " + errnoText());
  std::stringstream s;
  s << in.rdbuf();
  if (in.bad())
    return Error("cannot read " + path);
  return s.str();
}

Expected<std::string> writeCheckpoint(const std::string &outputDir,
                                      const CheckpointState &state,
                                      const std::string &adapterConfig) {
  return runtime::catchErrors<std::string>([&]() -> Expected<std::string> {
    std::string name = "checkpoint-" + std::to_string(state.globalStep);
    std::string finalDir = join(outputDir, name);
    std::string temp = join(outputDir, kTempPrefix + std::to_string(state.globalStep) +
                                           "-" + std::to_string(::getpid()));
    std::error_code ec;
    std::filesystem::remove_all(temp, ec);
    if (::mkdir(temp.c_str(), 0755) != 0)
      return Error("cannot create " + temp + ": " + errnoText());
    auto cleanup = [&](Error e) {
      std::error_code ignored;
      std::filesystem::remove_all(temp, ignored);
      return e;
    };

    std::vector<runtime::SafetensorsEntry> adapters, moments;
    for (const AdapterState &a : state.adapters) {
      adapters.push_back({a.name, kernels::DType::F32, a.shape, a.value.data()});
      moments.push_back({a.name + ".exp_avg", kernels::DType::F32, a.shape, a.expAvg.data()});
      moments.push_back(
          {a.name + ".exp_avg_sq", kernels::DType::F32, a.shape, a.expAvgSq.data()});
    }
    if (Status s = runtime::writeSafetensors(join(temp, kAdapterFile), adapters,
                                             {{"format", "pt"}});
        !s)
      return cleanup(s.error());
    // Fault injection for the crash test (test/Tools/vlora-train-kill.test):
    // VLORA_TEST_KILL_IN_CHECKPOINT=N kills the process with SIGKILL while
    // checkpoint N is half written.
    if (const char *kill = std::getenv("VLORA_TEST_KILL_IN_CHECKPOINT");
        kill && std::to_string(state.globalStep) == kill)
      std::raise(SIGKILL);
    if (Status s = runtime::writeSafetensors(join(temp, kOptimizerFile), moments,
                                             {{"format", "pt"}});
        !s)
      return cleanup(s.error());
    if (Status s = writeDurable(join(temp, kConfigFile), adapterConfig); !s)
      return cleanup(s.error());

    Json j;
    j["format"] = "vlora-trainer-state";
    j["version"] = 1;
    j["global_step"] = state.globalStep;
    j["epoch"] = state.epoch;
    j["batch_in_epoch"] = state.batchInEpoch;
    j["micro_step"] = state.microStep;
    j["seed"] = state.seed;
    j["options"] = state.options;
    Json bundle;
    bundle["train_step_plan_hash"] = state.trainStepPlanHash;
    bundle["adapters"] = Json::array();
    for (const AdapterState &a : state.adapters)
      bundle["adapters"].push_back({{"name", a.name}, {"shape", a.shape}});
    j["bundle"] = bundle;
    for (const char *file : {kAdapterFile, kOptimizerFile, kConfigFile}) {
      Expected<std::string> hash = runtime::hashFile(join(temp, file));
      if (!hash)
        return cleanup(hash.error());
      j["files"][file] = *hash;
    }
    j["checksum"] = stateChecksum(j);
    if (Status s = writeDurable(join(temp, kStateFile), j.dump(2) + "\n"); !s)
      return cleanup(s.error());
    if (Status s = syncFolder(temp); !s)
      return cleanup(s.error());

    // Into place: exchanged with an existing folder of that name, if any.
    struct stat st;
    if (::stat(finalDir.c_str(), &st) == 0) {
      if (::renameat2(AT_FDCWD, temp.c_str(), AT_FDCWD, finalDir.c_str(),
                      RENAME_EXCHANGE) != 0)
        return cleanup(Error("cannot replace " + finalDir + ": " + errnoText()));
      if (Status s = syncFolder(outputDir); !s)
        return s.error();
      std::filesystem::remove_all(temp, ec); // the old checkpoint now
    } else {
      if (::rename(temp.c_str(), finalDir.c_str()) != 0)
        return cleanup(Error("cannot rename " + temp + " to " + finalDir + ": " + errnoText()));
      if (Status s = syncFolder(outputDir); !s)
        return s.error();
    }
    return finalDir;
  });
}

Expected<CheckpointState> readCheckpoint(const std::string &dir) {
  return runtime::catchErrors<CheckpointState>([&]() -> Expected<CheckpointState> {
    struct stat st;
    if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
      return Error("checkpoint " + dir + " is not a folder");
    std::string statePath = join(dir, kStateFile);
    Expected<std::string> text = readWholeFile(statePath);
    if (!text)
      return text.error();
    Json j;
    try {
      j = Json::parse(*text);
    } catch (const Json::exception &e) {
      return Error(statePath + ": corrupt checkpoint state (invalid JSON: " + e.what() + ")");
    }
    auto fail = [&](const std::string &what) {
      return Error(statePath + ": corrupt checkpoint state: " + what);
    };
    if (!j.is_object() || j.value("format", "") != "vlora-trainer-state")
      return fail("not a vlora trainer state");
    if (!j.contains("checksum") || !j["checksum"].is_string() ||
        j["checksum"].get<std::string>() != stateChecksum(j))
      return fail("checksum mismatch");
    if (j.value("version", 0) != 1)
      return fail("unknown version " + j.value("version", Json()).dump());
    CheckpointState s;
    try {
      s.globalStep = j.at("global_step").get<int64_t>();
      s.epoch = j.at("epoch").get<int64_t>();
      s.batchInEpoch = j.at("batch_in_epoch").get<int64_t>();
      s.microStep = j.at("micro_step").get<int64_t>();
      s.seed = j.at("seed").get<uint64_t>();
      s.options = j.at("options").get<std::map<std::string, std::string>>();
      s.trainStepPlanHash = j.at("bundle").at("train_step_plan_hash").get<std::string>();
      for (const Json &a : j.at("bundle").at("adapters")) {
        AdapterState as;
        as.name = a.at("name").get<std::string>();
        as.shape = a.at("shape").get<kernels::Shape>();
        for (int64_t d : as.shape)
          if (d < 0)
            return fail("adapter '" + as.name + "' has a negative dimension");
        s.adapters.push_back(std::move(as));
      }
      if (s.globalStep < 0 || s.epoch < 0 || s.batchInEpoch < 0 || s.microStep < 0)
        return fail("a negative step counter");
      for (const char *file : {kAdapterFile, kOptimizerFile, kConfigFile}) {
        std::string want = j.at("files").at(file).get<std::string>();
        std::string path = join(dir, file);
        Expected<std::string> hash = runtime::hashFile(path);
        if (!hash)
          return hash.error();
        if (*hash != want)
          return Error(path + ": corrupt or truncated checkpoint file (hash " + *hash +
                       ", " + kStateFile + " records " + want + ")");
      }
    } catch (const Json::exception &e) {
      return fail(e.what());
    }

    Expected<runtime::SafetensorsFile> adapters =
        runtime::SafetensorsFile::open(join(dir, kAdapterFile));
    if (!adapters)
      return adapters.error();
    Expected<runtime::SafetensorsFile> moments =
        runtime::SafetensorsFile::open(join(dir, kOptimizerFile));
    if (!moments)
      return moments.error();
    auto load = [&](const runtime::SafetensorsFile &file, const std::string &name,
                    const kernels::Shape &shape, std::vector<float> &out) -> Status {
      const runtime::SafetensorsTensor *t = file.find(name);
      if (!t)
        return Error(file.path() + ": missing tensor '" + name + "'");
      if (t->dtype != kernels::DType::F32 || t->shape != shape)
        return Error(file.path() + ": tensor '" + name + "' is " +
                     runtime::userTypeString(t->dtype, t->shape) + ", " + kStateFile +
                     " records F32" + kernels::shapeString(shape));
      out.resize(static_cast<size_t>(kernels::numElements(shape)));
      if (t->bytes)
        std::memcpy(out.data(), t->data, t->bytes);
      return Status::success();
    };
    for (AdapterState &a : s.adapters) {
      if (Status st = load(*adapters, a.name, a.shape, a.value); !st)
        return st.error();
      if (Status st = load(*moments, a.name + ".exp_avg", a.shape, a.expAvg); !st)
        return st.error();
      if (Status st = load(*moments, a.name + ".exp_avg_sq", a.shape, a.expAvgSq); !st)
        return st.error();
    }
    if (adapters->tensors().size() != s.adapters.size())
      return Error(adapters->path() + ": has " + std::to_string(adapters->tensors().size()) +
                   " tensors, " + kStateFile + " records " +
                   std::to_string(s.adapters.size()) + " adapters");
    return s;
  });
}

std::vector<std::pair<int64_t, std::string>> listCheckpoints(const std::string &outputDir) {
  std::vector<std::pair<int64_t, std::string>> out;
  DIR *d = ::opendir(outputDir.c_str());
  if (!d)
    return out;
  while (dirent *e = ::readdir(d)) {
    std::string name = e->d_name;
    const std::string prefix = "checkpoint-";
    if (name.rfind(prefix, 0) != 0 || name.size() == prefix.size())
      continue;
    std::string digits = name.substr(prefix.size());
    if (digits.find_first_not_of("0123456789") != std::string::npos || digits.size() > 18)
      continue;
    std::string path = join(outputDir, name);
    struct stat st;
    if (::stat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
      continue;
    out.push_back({std::stoll(digits), path});
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

Status pruneCheckpoints(const std::string &outputDir, int64_t limit,
                        const std::string &keep) {
  if (limit <= 0)
    return Status::success();
  auto all = listCheckpoints(outputDir);
  int64_t excess = static_cast<int64_t>(all.size()) - limit;
  for (const auto &[step, path] : all) {
    if (excess <= 0)
      break;
    if (path == keep)
      continue;
    std::string trash =
        join(outputDir, kDeletePrefix + std::to_string(step) + "-" + std::to_string(::getpid()));
    if (::rename(path.c_str(), trash.c_str()) != 0)
      return Error("cannot remove old checkpoint " + path + ": " + errnoText());
    std::error_code ec;
    std::filesystem::remove_all(trash, ec);
    if (ec)
      return Error("cannot remove old checkpoint " + trash + ": " + ec.message());
    --excess;
  }
  return syncFolder(outputDir);
}

void removeStaleTemporaries(const std::string &outputDir) {
  DIR *d = ::opendir(outputDir.c_str());
  if (!d)
    return;
  std::vector<std::string> stale;
  while (dirent *e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name.rfind(kTempPrefix, 0) == 0 || name.rfind(kDeletePrefix, 0) == 0)
      stale.push_back(join(outputDir, name));
  }
  ::closedir(d);
  for (const std::string &path : stale) {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
}

} // namespace vlora::train
