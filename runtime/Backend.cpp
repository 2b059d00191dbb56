//===- Backend.cpp - choosing a backend by device name --------------------===//

#include "runtime/Backend.h"

namespace vlora::runtime {

Expected<std::unique_ptr<Backend>> createBackend(const std::string &device) {
  if (device == "cpu")
    return createCpuBackend();
  if (device == "cuda") {
#ifdef VLORA_HAVE_CUDA
    return createCudaBackend();
#else
    return Error("device 'cuda': this vlora was built without CUDA (no CUDA "
                 "compiler was found when it was configured); use --device "
                 "cpu or rebuild with the CUDA toolkit");
#endif
  }
  return Error("unknown device '" + device + "' (known devices: cpu, cuda)");
}

} // namespace vlora::runtime
