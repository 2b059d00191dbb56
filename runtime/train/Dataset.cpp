//===- Dataset.cpp - a training set in one safetensors file ---------------===//

#include "runtime/train/Dataset.h"

#include "runtime/Runtime.h"

#include <cstring>
#include <set>

namespace vlora::train {
using runtime::Error;
using runtime::Expected;
using runtime::SafetensorsTensor;
using runtime::TensorInfo;
using kernels::DType;

namespace {
/// Element `i` of an integer tensor (the mapping may be unaligned).
int64_t intAt(const SafetensorsTensor &t, int64_t i) {
  if (t.dtype == DType::I64) {
    int64_t v;
    std::memcpy(&v, t.data + i * 8, 8);
    return v;
  }
  int32_t v;
  std::memcpy(&v, t.data + i * 4, 4);
  return v;
}
} // namespace

Expected<Dataset> Dataset::open(const std::string &path, const DatasetSpec &spec,
                                std::vector<std::string> *warnings) {
  return runtime::catchErrors<Dataset>([&]() -> Expected<Dataset> {
    Expected<runtime::SafetensorsFile> file = runtime::SafetensorsFile::open(path);
    if (!file)
      return file.error();
    Dataset d(std::move(*file));
    d.spec_ = spec;
    std::set<std::string> wanted;
    const TensorInfo *firstTensor = nullptr;
    for (const TensorInfo &want : spec.tensors) {
      wanted.insert(want.name);
      const SafetensorsTensor *t = d.file_.find(want.name);
      if (want.shape.empty() || spec.batchSize <= 0 || want.shape[0] % spec.batchSize != 0)
        return Error(path + ": the bundle's input '" + want.name + "' is " +
                     runtime::userTypeString(want.dtype, want.shape) +
                     ", its first dimension is not a multiple of the batch size " +
                     std::to_string(spec.batchSize));
      int64_t rows = want.shape[0] / spec.batchSize; // k rows per example
      kernels::Shape trailing(want.shape.begin() + 1, want.shape.end());
      std::string expectedText = runtime::safetensorsDTypeName(want.dtype) +
                                 std::string("[N") +
                                 (rows == 1 ? "" : "*" + std::to_string(rows));
      for (int64_t dim : trailing)
        expectedText += ", " + std::to_string(dim);
      expectedText += "]";
      if (!t)
        return Error(path + ": missing tensor '" + want.name + "' (" + expectedText + ")");
      if (t->dtype != want.dtype || t->shape.size() != want.shape.size() ||
          !std::equal(trailing.begin(), trailing.end(), t->shape.begin() + 1) ||
          t->shape[0] % rows != 0)
        return Error(path + ": tensor '" + want.name + "' is " +
                     runtime::userTypeString(t->dtype, t->shape) + ", the bundle takes " +
                     expectedText);
      int64_t n = t->shape[0] / rows;
      if (!firstTensor) {
        firstTensor = &want;
        d.examples_ = n;
      } else if (n != d.examples_) {
        return Error(path + ": tensor '" + want.name + "' has " + std::to_string(n) +
                     " examples, '" + firstTensor->name + "' has " +
                     std::to_string(d.examples_));
      }
      d.tensors_.push_back(t);
      d.rowBytes_.push_back(static_cast<size_t>(rows * kernels::numElements(trailing)) *
                            kernels::dtypeSize(want.dtype));
    }
    if (!firstTensor)
      return Error(path + ": the bundle takes no tensors");
    if (d.examples_ == 0)
      return Error(path + ": the dataset is empty (0 examples)");
    for (const SafetensorsTensor &t : d.file_.tensors())
      if (!wanted.count(t.name) && warnings)
        warnings->push_back(path + ": tensor '" + t.name +
                            "' is not an input of the bundle; ignored");

    // Token ids and labels.
    for (size_t k = 0; k < spec.tensors.size(); ++k) {
      const TensorInfo &info = spec.tensors[k];
      bool isLabels = info.name == spec.labels;
      if (!isLabels && info.name != spec.tokenIds)
        continue;
      const SafetensorsTensor &t = *d.tensors_[k];
      if (t.dtype != DType::I64 && t.dtype != DType::I32)
        return Error(path + ": tensor '" + t.name + "' must be I64 or I32, it is " +
                     runtime::safetensorsDTypeName(t.dtype));
      int64_t row = static_cast<int64_t>(d.rowBytes_[k] / kernels::dtypeSize(t.dtype));
      if (isLabels)
        d.validLabels_.assign(d.examples_, 0);
      for (int64_t e = 0; e < d.examples_; ++e) {
        for (int64_t j = 0; j < row; ++j) {
          int64_t v = intAt(t, e * row + j);
          bool ok = v >= 0 && v < spec.vocabSize;
          if (isLabels && v == spec.ignoreIndex)
            ok = true;
          if (!ok)
            return Error(path + ": tensor '" + t.name + "' example " + std::to_string(e) +
                         " position " + std::to_string(j) + ": " +
                         (isLabels ? "label " : "token id ") + std::to_string(v) +
                         " is outside [0, " + std::to_string(spec.vocabSize) + ")" +
                         (isLabels ? " and is not ignore_index (" +
                                         std::to_string(spec.ignoreIndex) + ")"
                                   : ""));
          // The loss shifts the labels by one along the sequence: the first
          // position of each row is never predicted.
          if (isLabels && j % t.shape.back() != 0 && v != spec.ignoreIndex)
            ++d.validLabels_[e];
        }
      }
    }
    if (d.validLabels_.empty())
      return Error(path + ": the bundle's labels input '" + spec.labels +
                   "' is not among the dataset's tensors");
    int64_t total = 0;
    for (int64_t n : d.validLabels_)
      total += n;
    if (total == 0)
      return Error(path + ": every label of '" + spec.labels + "' (after the shift by "
                   "one position) is ignore_index (" + std::to_string(spec.ignoreIndex) +
                   "): nothing to train on");
    return d;
  });
}

std::vector<uint8_t> Dataset::gather(size_t index, const std::vector<int64_t> &examples) const {
  size_t row = rowBytes_[index];
  std::vector<uint8_t> out(row * examples.size());
  const uint8_t *data = tensors_[index]->data;
  for (size_t i = 0; i < examples.size(); ++i)
    if (row)
      std::memcpy(out.data() + i * row, data + static_cast<size_t>(examples[i]) * row, row);
  return out;
}

namespace {
uint64_t splitmix64(uint64_t &state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
} // namespace

std::vector<int64_t> epochPermutation(int64_t n, uint64_t seed, int64_t epoch) {
  std::vector<int64_t> order(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    order[i] = i;
  uint64_t state = seed;
  state = splitmix64(state) ^ (static_cast<uint64_t>(epoch) * 0xd1b54a32d192ed03ull);
  for (int64_t i = n - 1; i > 0; --i) {
    // Lemire's multiply-shift range reduction (a bias of at most n / 2^64).
    uint64_t r = splitmix64(state);
    auto j = static_cast<int64_t>(
        (static_cast<unsigned __int128>(r) * static_cast<uint64_t>(i + 1)) >> 64);
    std::swap(order[i], order[j]);
  }
  return order;
}

} // namespace vlora::train
