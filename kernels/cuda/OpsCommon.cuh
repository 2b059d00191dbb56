//===- OpsCommon.cuh - what the CUDA op twins share -------------*- CUDA -*-===//
//
// The data-error record of a Context: a kernel that meets a data-dependent
// failure (an index out of range, a label outside the vocabulary) records
// the first one with recordDataError; ops::takeDataError (Device.cu) reads
// it after synchronising and turns it into a Status.
//
//===----------------------------------------------------------------------===//

#ifndef VLORA_KERNELS_CUDA_OPSCOMMON_CUH
#define VLORA_KERNELS_CUDA_OPSCOMMON_CUH

#include "Primitives.cuh"

namespace vlora::kernels::cuda::detail {

/// What went wrong; takeDataError words the message from it.
enum class DataErrorCode : int32_t {
  None = 0,
  IndexOutOfRange = 1,    // value outside [lo, hi)
  LabelOutOfRange = 2,    // a label outside [0, hi) that is not ignored
  TooManyTrueValues = 3,  // mask has `value` true values, room for `hi`
  TooFewSourceValues = 4, // source has `hi` elements, mask needs `value`
  BadStep = 5,            // adamW step < 1
  NegativeScalar = 6,     // adamW lr or weight decay < 0 (value: bits)
  DivisionByZero = 7,     // integer division by zero
};

/// The record: written once (first failure wins) by device code.
struct DataError {
  int32_t code;     // DataErrorCode
  int32_t op;       // which function: an OpId
  int64_t value, lo, hi;
};

/// The functions that can record a data error (for the message).
enum class OpId : int32_t {
  Gather = 1, GatherGrad, GatherElements, GatherND, ScatterND, MaskedScatter,
  MaskedSelect, CrossEntropy, CrossEntropyGrad, LinearCrossEntropy, AdamW,
  Binary, Embedding
};
const char *opIdName(OpId op);

/// The context's device record (Context::Impl::dataError).
DataError *dataErrorOf(Context &ctx);

#ifdef __CUDACC__
/// Records the first data error; later ones are dropped.
__device__ inline void recordDataError(DataError *record, DataErrorCode code,
                                       OpId op, int64_t value, int64_t lo,
                                       int64_t hi) {
  if (atomicCAS(reinterpret_cast<int *>(&record->code), 0,
                static_cast<int>(code)) == 0) {
    record->op = static_cast<int32_t>(op);
    record->value = value;
    record->lo = lo;
    record->hi = hi;
  }
}
#endif

} // namespace vlora::kernels::cuda::detail

#endif // VLORA_KERNELS_CUDA_OPSCOMMON_CUH
