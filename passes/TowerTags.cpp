//===- TowerTags.cpp - reading and writing tower tags ---------------------===//

#include "passes/TowerTags.h"

#include "mlir/IR/Builders.h"

using namespace mlir;
using namespace vlora;

ParamOp vlora::traceFrozenParam(Value value) {
  while (Operation *def = value.getDefiningOp()) {
    if (auto param = dyn_cast<ParamOp>(def))
      return param.getRole() == ParamRole::frozen ? param : ParamOp();
    if (isa<ReshapeOp, TransposeOp, CastOp>(def)) {
      value = def->getOperand(0);
      continue;
    }
    return ParamOp();
  }
  return ParamOp();
}

std::optional<FrozenMatmul> vlora::getFrozenMatmul(MatmulOp op) {
  auto result = cast<RankedTensorType>(op.getType());
  for (unsigned operand : {1u, 0u}) {
    Value v = op->getOperand(operand);
    auto type = cast<RankedTensorType>(v.getType());
    if (type.getRank() != 2)
      continue;
    ParamOp param = traceFrozenParam(v);
    if (!param || cast<RankedTensorType>(param.getType()).getRank() != 2)
      continue;
    // The weight as used: rhs [K, N] (or [N, K] with transpose_b); lhs
    // weights (W @ x) are rare but are handled the same way.
    int64_t k, n;
    if (operand == 1) {
      k = op.getTransposeB() ? type.getDimSize(1) : type.getDimSize(0);
      n = result.getShape().back();
    } else {
      k = op.getTransposeA() ? type.getDimSize(0) : type.getDimSize(1);
      n = result.getShape()[result.getRank() - 2];
    }
    return FrozenMatmul{op, param, operand, k, n};
  }
  return std::nullopt;
}

std::optional<TowerTags> vlora::getTowerTags(Operation *op) {
  auto tower = op->getAttrOfType<TowerKindAttr>(VLoRADialect::kTowerAttrName);
  auto block = op->getAttrOfType<BlockKindAttr>(VLoRADialect::kBlockAttrName);
  auto module = op->getAttrOfType<StringAttr>(VLoRADialect::kModuleAttrName);
  if (!tower || !block || !module)
    return std::nullopt;
  TowerTags tags;
  tags.tower = tower.getValue();
  tags.block = block.getValue();
  tags.module = module.getValue().str();
  if (auto layer = op->getAttrOfType<IntegerAttr>(VLoRADialect::kLayerAttrName))
    tags.layer = layer.getInt();
  return tags;
}

void vlora::setTowerTags(Operation *op, const TowerTags &tags) {
  MLIRContext *ctx = op->getContext();
  Builder b(ctx);
  op->setAttr(VLoRADialect::kTowerAttrName, TowerKindAttr::get(ctx, tags.tower));
  op->setAttr(VLoRADialect::kBlockAttrName, BlockKindAttr::get(ctx, tags.block));
  if (tags.layer)
    op->setAttr(VLoRADialect::kLayerAttrName, b.getI64IntegerAttr(*tags.layer));
  else
    op->removeAttr(VLoRADialect::kLayerAttrName);
  // No module path: the matmul multiplies by a bare parameter, which is not
  // a module PEFT can adapt; without the path nothing selects it.
  if (tags.module.empty())
    op->removeAttr(VLoRADialect::kModuleAttrName);
  else
    op->setAttr(VLoRADialect::kModuleAttrName, b.getStringAttr(tags.module));
}

bool vlora::isSelected(const TowerTags &tags, const TowerSelection &sel) {
  switch (tags.tower) {
  case TowerKind::projector:
    return sel.projector;
  case TowerKind::other:
    return false;
  case TowerKind::vision:
    if (!sel.vision)
      return false;
    break;
  case TowerKind::language:
    if (!sel.language)
      return false;
    break;
  }
  return (tags.block == BlockKind::attention && sel.attention) ||
         (tags.block == BlockKind::mlp && sel.mlp);
}

StringRef vlora::stringifyTower(TowerKind tower) { return stringifyTowerKind(tower); }
StringRef vlora::stringifyBlock(BlockKind block) { return stringifyBlockKind(block); }
