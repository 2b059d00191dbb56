//===- TestBundle.h - hand-built plans and bundles for runtime tests ------===//
//
// A tiny program built with the generated protobuf API:
//   probs = softmax(x · W + b, axis -1)
// with x an input f32[2, 3], W a weight f32[3, 4] in "w.bin" (model root),
// b an inline constant f32[4]; and the bundle folder around it.
//
//===----------------------------------------------------------------------===//

#ifndef VLORA_TEST_RUNTIME_TESTBUNDLE_H
#define VLORA_TEST_RUNTIME_TESTBUNDLE_H

#include "plan.pb.h"
#include "runtime/FileHash.h"
#include "runtime/plan/PlanFormat.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>
#include <sys/stat.h>

namespace vlora::test {

inline const std::vector<float> kX = {0.5f, -1.0f, 2.0f, 1.5f, 0.25f, -0.75f};
inline const std::vector<float> kW = {0.1f, 0.2f,  -0.3f, 0.4f, -0.5f, 0.6f,
                                      0.7f, -0.8f, 0.9f,  1.0f, -1.1f, 1.2f};
inline const std::vector<float> kB = {0.01f, -0.02f, 0.03f, -0.04f};

/// softmax(x · W + b) in double.
inline std::vector<double> expectedProbs() {
  std::vector<double> out(8);
  for (int r = 0; r < 2; ++r) {
    double z[4], mx = -1e300, sum = 0;
    for (int c = 0; c < 4; ++c) {
      z[c] = kB[c];
      for (int k = 0; k < 3; ++k)
        z[c] += double(kX[r * 3 + k]) * kW[k * 4 + c];
      mx = std::max(mx, z[c]);
    }
    for (int c = 0; c < 4; ++c)
      sum += std::exp(z[c] - mx);
    for (int c = 0; c < 4; ++c)
      out[r * 4 + c] = std::exp(z[c] - mx) / sum;
  }
  return out;
}

inline void setType(plan::TensorType *t, plan::DType dtype, std::vector<int64_t> shape) {
  t->set_dtype(dtype);
  for (int64_t d : shape)
    t->add_shape(d);
}

inline plan::Value *addValue(plan::Plan &p, std::vector<int64_t> shape, std::string name,
                             plan::DType dtype = plan::F32) {
  plan::Value *v = p.add_values();
  setType(v->mutable_type(), dtype, std::move(shape));
  v->set_name(std::move(name));
  return v;
}

inline plan::Step *addStep(plan::Plan &p, const std::string &kernel,
                           std::vector<uint32_t> inputs, std::vector<uint32_t> outputs,
                           const std::string &location) {
  plan::Step *s = p.add_steps();
  s->set_kernel(kernel);
  for (uint32_t i : inputs)
    s->add_inputs(i);
  for (uint32_t o : outputs)
    s->add_outputs(o);
  s->set_location(location);
  return s;
}

inline plan::Attribute *addAttr(plan::Step *s, const std::string &name) {
  plan::Attribute *a = s->add_attributes();
  a->set_name(name);
  return a;
}

/// The valid tiny plan.
inline plan::Plan tinyPlan() {
  plan::Plan p;
  p.set_format_version(plan::kFormatVersion);
  p.set_compiler_version("test");
  p.set_arena_bytes(256);
  plan::Weight *w = p.add_weights();
  w->set_name("W");
  w->set_root(plan::MODEL);
  w->set_file("w.bin");
  w->set_offset(4); // after the file's 4-byte prefix
  w->set_length(48);
  setType(w->mutable_type(), plan::F32, {3, 4});
  addValue(p, {2, 3}, "x")->set_arena_offset(0);
  addValue(p, {3, 4}, "W")->set_weight(0);
  addValue(p, {4}, "b")->set_constant(
      std::string(reinterpret_cast<const char *>(kB.data()), kB.size() * 4));
  addValue(p, {2, 4}, "xw")->set_arena_offset(64);
  addValue(p, {2, 4}, "logits")->set_arena_offset(128);
  addValue(p, {2, 4}, "probs")->set_arena_offset(192);
  plan::Binding *in = p.add_inputs();
  in->set_name("x");
  in->set_value(0);
  plan::Binding *out = p.add_outputs();
  out->set_name("probs");
  out->set_value(5);
  addStep(p, "matmul", {0, 1}, {3}, "/MatMul");
  addStep(p, "add", {3, 2}, {4}, "/Add");
  addAttr(addStep(p, "softmax", {4}, {5}, "/Softmax"), "axis")->set_i(-1);
  return p;
}

/// The weight file: 4 bytes of prefix, then W.
inline void writeWeights(const std::string &path) {
  std::ofstream f(path, std::ios::binary);
  f.write("HDR!", 4);
  f.write(reinterpret_cast<const char *>(kW.data()), kW.size() * 4);
}

inline std::string makeTempDir(const std::string &tag) {
  std::string templ = std::string(::testing::TempDir()) + "vlora-" + tag + "-XXXXXX";
  std::vector<char> buf(templ.begin(), templ.end());
  buf.push_back('\0');
  if (!::mkdtemp(buf.data()))
    return "";
  return buf.data();
}

/// Writes plan.pb, manifest.json and the model folder with w.bin into
/// `dir` (the model folder is dir/model). Returns the manifest text.
inline std::string writeBundle(const std::string &dir, const plan::Plan &p) {
  std::string modelDir = dir + "/model";
  ::mkdir(modelDir.c_str(), 0755);
  writeWeights(modelDir + "/w.bin");
  std::ofstream(dir + "/plan.pb", std::ios::binary) << p.SerializeAsString();
  std::string hash = *runtime::hashFile(modelDir + "/w.bin");
  std::string manifest =
      "{\"format_version\": 1, \"compiler_version\": \"test\", \"model\": {\"path\": \"" +
      modelDir + "/model.onnx\", \"weight_root\": \"" + modelDir +
      "\"}, \"weight_files\": [{\"root\": \"model\", \"file\": \"w.bin\", \"size\": 52, "
      "\"hash\": \"" + hash + "\"}], \"inputs\": [{\"name\": \"x\", \"dtype\": \"F32\", "
      "\"shape\": [2, 3]}], \"outputs\": [{\"name\": \"probs\", \"dtype\": \"F32\", "
      "\"shape\": [2, 4]}], \"options\": {}}";
  std::ofstream(dir + "/manifest.json") << manifest;
  return manifest;
}

} // namespace vlora::test

#endif // VLORA_TEST_RUNTIME_TESTBUNDLE_H
