//===- TowerTags.h - reading and writing tower tags -------------*- C++ -*-===//
//
// The contract between --vlora-classify-towers and the passes that read its
// tags (--vlora-report-towers, --vlora-inject-lora): which matmuls are LoRA
// candidates, how their frozen weight is found, and the tags on them.
//
//===----------------------------------------------------------------------===//

#ifndef VLORA_PASSES_TOWERTAGS_H
#define VLORA_PASSES_TOWERTAGS_H

#include "VLoRA/IR/VLoRADialect.h"
#include "VLoRA/IR/VLoRAOps.h"

#include <optional>
#include <string>

namespace vlora {

/// A matmul whose one operand is a frozen weight: a LoRA candidate.
struct FrozenMatmul {
  MatmulOp op;
  ParamOp weight;         ///< the frozen parameter the weight operand comes from
  unsigned weightOperand; ///< 1 when the weight is the rhs (the usual case)
  int64_t inFeatures;     ///< contraction size (K)
  int64_t outFeatures;    ///< output features (N)
};

/// Follows `value` back through reshape/transpose/cast ops to a frozen
/// `vlora.param`; null if it does not come from one.
ParamOp traceFrozenParam(mlir::Value value);

/// The frozen-weight view of `op`, or nothing when neither operand is a
/// (possibly transposed, reshaped or cast) frozen 2-D parameter.
std::optional<FrozenMatmul> getFrozenMatmul(MatmulOp op);

/// The tags set by --vlora-classify-towers.
struct TowerTags {
  TowerKind tower = TowerKind::other;
  BlockKind block = BlockKind::other;
  std::optional<int64_t> layer;
  /// Hugging Face module path, e.g. model.layers.0.mlp.up_proj; empty for a
  /// matmul by a bare parameter (not an nn.Linear), which is never adapted.
  std::string module;
};

/// Reads the tags of `op`; nothing if it has not been classified.
std::optional<TowerTags> getTowerTags(mlir::Operation *op);
/// Writes the tags onto `op`.
void setTowerTags(mlir::Operation *op, const TowerTags &tags);

/// Unsloth's switches (finetune_vision_layers, ...) plus the projector flag.
struct TowerSelection {
  bool vision = true, language = true, attention = true, mlp = true,
       projector = false;
};

/// Whether the switches select a module with `tags`: its tower is enabled and
/// so is its block; projector modules (plain MLPs) only need `projector`;
/// `other` (the head) is never selected.
bool isSelected(const TowerTags &tags, const TowerSelection &selection);

/// A PEFT `target_modules` regular expression (Python `re.fullmatch`
/// semantics) that matches exactly `modules`, grouped by layer and leaf.
std::string buildTargetModulesRegex(llvm::ArrayRef<std::string> modules);

llvm::StringRef stringifyTower(TowerKind tower);
llvm::StringRef stringifyBlock(BlockKind block);

} // namespace vlora

#endif // VLORA_PASSES_TOWERTAGS_H
