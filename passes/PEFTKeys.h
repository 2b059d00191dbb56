//===- PEFTKeys.h - PEFT's names for LoRA adapter tensors -------*- C++ -*-===//
//
// The one place that knows how PEFT names the tensors of a LoRA adapter in
// `adapter_model.safetensors`: `base_model.model.<module>.lora_A.weight`
// (`[r, in]`) and `base_model.model.<module>.lora_B.weight` (`[out, r]`),
// where `<module>` is the Hugging Face module path (`vlora.module`).
// --vlora-inject-lora names the adapter parameters with it; the bundle and
// adapter writers and readers use it too.
//
//===----------------------------------------------------------------------===//

#ifndef VLORA_PASSES_PEFTKEYS_H
#define VLORA_PASSES_PEFTKEYS_H

#include "llvm/ADT/StringRef.h"
#include "llvm/ADT/Twine.h"

#include <optional>
#include <string>
#include <utility>

namespace vlora {

/// The two factors of a LoRA update `B · A`.
enum class LoRAFactor { A, B };

/// PEFT's key of one LoRA factor of the module at `modulePath`.
inline std::string getPEFTLoRAKey(llvm::StringRef modulePath,
                                  LoRAFactor factor) {
  return ("base_model.model." + llvm::Twine(modulePath) + ".lora_" +
          (factor == LoRAFactor::A ? "A" : "B") + ".weight")
      .str();
}

/// The module path and factor of a PEFT LoRA key; nothing when `key` is not
/// one (e.g. a DoRA magnitude or a `modules_to_save` tensor).
inline std::optional<std::pair<std::string, LoRAFactor>>
parsePEFTLoRAKey(llvm::StringRef key) {
  if (!key.consume_front("base_model.model."))
    return std::nullopt;
  LoRAFactor factor;
  if (key.consume_back(".lora_A.weight"))
    factor = LoRAFactor::A;
  else if (key.consume_back(".lora_B.weight"))
    factor = LoRAFactor::B;
  else
    return std::nullopt;
  if (key.empty())
    return std::nullopt;
  return std::make_pair(key.str(), factor);
}

} // namespace vlora

#endif // VLORA_PASSES_PEFTKEYS_H
