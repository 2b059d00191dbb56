//===- Checkpoint.h - trainer checkpoints and durable files -----*- C++ -*-===//
//
// OUT/checkpoint-N/ holds
//   adapter_model.safetensors  the adapters (PEFT keys, F32, {"format":"pt"})
//   adapter_config.json        the bundle's PEFT config, as is
//   optimizer.safetensors      <key>.exp_avg and <key>.exp_avg_sq per adapter
//   trainer_state.json         where the run is (step, epoch, position in the
//                              epoch's permutation, micro-step counter), the
//                              options a resume must keep, the bundle's
//                              identity, the hash of each file above, and a
//                              checksum of its own content.
// A checkpoint is written into a temporary folder next to it (every file
// fsync'd, the folder fsync'd), renamed into place (atomically exchanged
// with an existing folder of the same name) and the parent fsync'd: a kill
// at any moment leaves every previous checkpoint intact.
//
//===----------------------------------------------------------------------===//

#ifndef VLORA_RUNTIME_TRAIN_CHECKPOINT_H
#define VLORA_RUNTIME_TRAIN_CHECKPOINT_H

#include "runtime/Error.h"
#include "vlora/kernels/Tensor.h"

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace vlora::train {

/// One trained tensor and its AdamW moments.
struct AdapterState {
  std::string name; // PEFT key
  kernels::Shape shape;
  std::vector<float> value, expAvg, expAvgSq;
};

struct CheckpointState {
  int64_t globalStep = 0;   // optimizer updates done
  int64_t epoch = 0;        // the epoch the next micro-batch comes from
  int64_t batchInEpoch = 0; // micro-batches of that epoch already consumed
  int64_t microStep = 0;    // micro-batches run so far (dropout counter)
  uint64_t seed = 0;
  /// Options that must not change on resume, as canonical text
  /// ("learning_rate" -> "5e-05").
  std::map<std::string, std::string> options;
  /// The bundle: hash of train_step.pb; adapters' names/shapes are in
  /// `adapters`.
  std::string trainStepPlanHash;
  std::vector<AdapterState> adapters;
};

/// Writes `state` as `outputDir`/checkpoint-<globalStep>, replacing a folder
/// of that name atomically. `adapterConfig` is the adapter_config.json text.
runtime::Expected<std::string> writeCheckpoint(const std::string &outputDir,
                                               const CheckpointState &state,
                                               const std::string &adapterConfig);

/// Reads and checks a checkpoint folder: every file present, intact (hashes
/// recorded in trainer_state.json) and consistent; errors name the file.
runtime::Expected<CheckpointState> readCheckpoint(const std::string &dir);

/// The checkpoint-N folders of `outputDir`, by increasing N.
std::vector<std::pair<int64_t, std::string>> listCheckpoints(const std::string &outputDir);

/// Deletes the oldest checkpoints so that at most `limit` remain (each is
/// renamed out of the way before it is removed, so a half-deleted folder is
/// never mistaken for a checkpoint). `keep` is never deleted.
runtime::Status pruneCheckpoints(const std::string &outputDir, int64_t limit,
                                 const std::string &keep);

/// Removes temporary folders a killed run left in `outputDir`.
void removeStaleTemporaries(const std::string &outputDir);

/// Writes `bytes` to `path` atomically: a temporary file in the same folder,
/// fsync, rename over `path`, fsync of the folder.
runtime::Status writeFileAtomic(const std::string &path, const std::string &bytes);

/// Reads a whole file; errors name it.
runtime::Expected<std::string> readWholeFile(const std::string &path);

/// fsync of a folder (after entries in it were created or renamed).
runtime::Status syncFolder(const std::string &dir);

} // namespace vlora::train

#endif // VLORA_RUNTIME_TRAIN_CHECKPOINT_H
