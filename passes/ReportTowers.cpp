//===- ReportTowers.cpp - print the tower classification ------------------===//
//
// --vlora-report-towers prints the matmuls tagged by --vlora-classify-towers
// and the PEFT `target_modules` regex that selects exactly the modules the
// given switches select.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"
#include "passes/TowerTags.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Support/FileUtilities.h"
#include "llvm/ADT/MapVector.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/ToolOutputFile.h"

#include <map>
#include <set>

namespace vlora {
#define GEN_PASS_DEF_VLORAREPORTTOWERS
#include "passes/Passes.h.inc"
} // namespace vlora

using namespace mlir;
using namespace vlora;

/// Escapes the regex metacharacters of a module path component.
static std::string escapeRegex(StringRef s) {
  std::string out;
  for (char c : s) {
    if (StringRef(".^$|()[]{}*+?\\").contains(c))
      out += '\\';
    out += c;
  }
  return out;
}

std::string vlora::buildTargetModulesRegex(ArrayRef<std::string> modules) {
  // Group by template (the path with its layer index replaced), then by the
  // path before the leaf: prefix\.(?:0|1)\.mid\.(?:q_proj|k_proj).
  struct Group {
    std::set<int64_t> layers;
    bool hasLayer = false;
  };
  std::map<std::pair<std::string, std::string>, Group> templates;
  for (const std::string &module : modules) {
    SmallVector<StringRef> parts;
    StringRef(module).split(parts, '.');
    std::string head, tail;
    std::optional<int64_t> layer;
    size_t layerAt = parts.size();
    for (size_t i = 0; i + 1 < parts.size(); ++i) {
      int64_t v;
      if ((parts[i] == "layers" || parts[i] == "layer" || parts[i] == "blocks" ||
           parts[i] == "h" || parts[i] == "block") &&
          !parts[i + 1].getAsInteger(10, v)) {
        layer = v;
        layerAt = i + 1;
        break;
      }
    }
    SmallVector<std::string> escaped;
    for (StringRef p : parts)
      escaped.push_back(escapeRegex(p));
    if (layer) {
      head = llvm::join(ArrayRef(escaped).take_front(layerAt), "\\.");
      tail = llvm::join(ArrayRef(escaped).drop_front(layerAt + 1), "\\.");
    } else {
      head = llvm::join(escaped, "\\.");
    }
    Group &g = templates[{head, tail}];
    g.hasLayer = layer.has_value();
    if (layer)
      g.layers.insert(*layer);
  }
  // Merge leaves that share a prefix and a layer set.
  std::map<std::tuple<std::string, std::string, std::string>, std::vector<std::string>>
      merged;
  for (auto &[key, group] : templates) {
    auto [head, tail] = key;
    std::string layers;
    if (group.hasLayer) {
      SmallVector<std::string> ls;
      for (int64_t l : group.layers)
        ls.push_back(std::to_string(l));
      layers = ls.size() == 1 ? ls.front() : "(?:" + llvm::join(ls, "|") + ")";
    }
    std::string path = group.hasLayer ? tail : head;
    size_t dot = path.rfind("\\.");
    std::string prefix = dot == std::string::npos ? "" : path.substr(0, dot);
    std::string leaf = dot == std::string::npos ? path : path.substr(dot + 2);
    merged[{group.hasLayer ? head : "", layers, prefix}].push_back(leaf);
  }
  SmallVector<std::string> alternatives;
  for (auto &[key, leaves] : merged) {
    auto &[head, layers, prefix] = key;
    std::string leafPart = leaves.size() == 1
                               ? leaves.front()
                               : "(?:" + llvm::join(leaves, "|") + ")";
    std::string alt;
    if (!head.empty())
      alt = head + "\\." + layers + "\\.";
    if (!prefix.empty())
      alt += prefix + "\\.";
    alt += leafPart;
    alternatives.push_back(alt);
  }
  if (alternatives.size() == 1)
    return alternatives.front();
  return "(?:" + llvm::join(alternatives, "|") + ")";
}

namespace {
struct ReportTowersPass
    : public vlora::impl::VLoRAReportTowersBase<ReportTowersPass> {
  using Base::Base;

  void runOnOperation() override {
    std::string error;
    auto file = openOutputFile(output, &error);
    if (!file) {
      getOperation().emitError() << "--vlora-report-towers: " << error;
      return signalPassFailure();
    }
    llvm::raw_ostream &os = file->os();
    TowerSelection selection{vision, language, attention, mlp, projector};

    struct Row {
      TowerTags tags;
      int64_t in, out;
    };
    std::vector<Row> rows;
    size_t width = 6;
    bool untagged = false;
    getOperation().walk([&](MatmulOp op) {
      auto fm = getFrozenMatmul(op);
      if (!fm)
        return;
      auto tags = getTowerTags(op);
      if (!tags) {
        // A classified matmul by a bare parameter has no module: nothing
        // can adapt it, so it is not a row.
        untagged |= !op->hasAttr(VLoRADialect::kTowerAttrName);
        return;
      }
      rows.push_back({*tags, fm->inFeatures, fm->outFeatures});
      width = std::max(width, tags->module.size());
    });
    if (untagged) {
      getOperation().emitError("--vlora-report-towers needs the tags of "
                               "--vlora-classify-towers; run it first");
      return signalPassFailure();
    }

    os << llvm::left_justify("module", width) << "  tower      block      layer      in     out\n";
    std::vector<std::string> selected;
    std::map<std::string, int> counts;
    for (const Row &r : rows) {
      os << llvm::left_justify(r.tags.module, width) << "  "
         << llvm::left_justify(stringifyTower(r.tags.tower), 9) << "  "
         << llvm::left_justify(stringifyBlock(r.tags.block), 9) << "  "
         << llvm::right_justify(r.tags.layer ? std::to_string(*r.tags.layer) : "-", 5)
         << "  " << llvm::format_decimal(r.in, 6) << "  "
         << llvm::format_decimal(r.out, 6) << "\n";
      ++counts[(stringifyTower(r.tags.tower) + "/" + stringifyBlock(r.tags.block)).str()];
      if (isSelected(r.tags, selection))
        selected.push_back(r.tags.module);
    }
    os << "\n" << rows.size() << " matmuls with frozen weights:";
    for (auto &[kind, count] : counts)
      os << " " << kind << "=" << count;
    os << "\nselected by vision=" << vision << " language=" << language
       << " attention=" << attention << " mlp=" << mlp
       << " projector=" << projector << ": " << selected.size() << "\n";
    if (!selected.empty())
      os << "target_modules = r\"" << buildTargetModulesRegex(selected) << "\"\n";
    file->keep();
  }
};
} // namespace
