//===- Philox.h - Philox-4x32-10, the dropout RNG of every backend -*- C++ -*-===//
//
// The counter-based generator of Salmon et al., "Parallel random numbers: as
// easy as 1, 2, 3" (SC'11), as in Random123 and cuRAND: 10 rounds, key
// (seed low, seed high), counter (offset low, offset high, 0, 0). Dropout
// draws element i from counter offset i, so the CPU and the GPU produce the
// same mask for the same seed without sharing state. Header-only; usable from
// host and device code.
//
//===----------------------------------------------------------------------===//

#ifndef VLORA_KERNELS_REFERENCE_PHILOX_H
#define VLORA_KERNELS_REFERENCE_PHILOX_H

#include <cstdint>

#ifdef __CUDACC__
#define VLORA_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define VLORA_HOST_DEVICE inline
#endif

namespace vlora::kernels::philox {

struct Block {
  uint32_t x[4];
};

VLORA_HOST_DEVICE void mulhilo(uint32_t a, uint32_t b, uint32_t &hi,
                               uint32_t &lo) {
  uint64_t product = static_cast<uint64_t>(a) * b;
  hi = static_cast<uint32_t>(product >> 32);
  lo = static_cast<uint32_t>(product);
}

/// Philox-4x32 with `rounds` rounds (10 is the standard generator).
VLORA_HOST_DEVICE Block philox4x32(Block counter, uint32_t key0, uint32_t key1,
                                   int rounds = 10) {
  for (int round = 0; round < rounds; ++round) {
    if (round > 0) {
      key0 += 0x9E3779B9u;
      key1 += 0xBB67AE85u;
    }
    uint32_t hi0, lo0, hi1, lo1;
    mulhilo(0xD2511F53u, counter.x[0], hi0, lo0);
    mulhilo(0xCD9E8D57u, counter.x[2], hi1, lo1);
    counter = Block{{hi1 ^ counter.x[1] ^ key0, lo1, hi0 ^ counter.x[3] ^ key1,
                     lo0}};
  }
  return counter;
}

/// A uniform float in [0, 1) for element `offset` of stream `seed`: the top
/// 24 bits of the first output word.
VLORA_HOST_DEVICE float uniform(uint64_t seed, uint64_t offset) {
  Block counter{{static_cast<uint32_t>(offset),
                 static_cast<uint32_t>(offset >> 32), 0u, 0u}};
  Block out = philox4x32(counter, static_cast<uint32_t>(seed),
                         static_cast<uint32_t>(seed >> 32));
  return static_cast<float>(out.x[0] >> 8) * (1.0f / 16777216.0f);
}

/// SplitMix64's finaliser (Steele, Lea and Flood, "Fast splittable
/// pseudorandom number generators", OOPSLA'14): a bijective 64-bit mix.
VLORA_HOST_DEVICE uint64_t splitMix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/// The Philox key of one dropout site in one micro-step: `seed` and
/// `counter` are the training program's `dropout_rng` = [seed, counter],
/// `stream` the `lora_matmul`'s `stream` attribute (docs/training.md). Each
/// input is mixed in turn, so neighbouring counters or streams give
/// unrelated keys.
VLORA_HOST_DEVICE uint64_t streamSeed(uint64_t seed, uint64_t counter,
                                      uint64_t stream) {
  return splitMix64(splitMix64(splitMix64(seed) ^ counter) ^ stream);
}

/// Dropout's keep decision for element `offset`: kept with probability 1-p.
VLORA_HOST_DEVICE bool keep(uint64_t seed, uint64_t offset, float p) {
  return uniform(seed, offset) >= p;
}

} // namespace vlora::kernels::philox

#endif // VLORA_KERNELS_REFERENCE_PHILOX_H
