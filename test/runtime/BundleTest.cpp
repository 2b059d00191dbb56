//===- BundleTest.cpp - vlora-run on a hand-made bundle, good and bad -----===//
//
// Runs the vlora-run binary on a bundle built in the test (plan.pb,
// manifest.json, a model folder with w.bin) and checks its output, and that
// each bad input is one clear line naming the file or tensor, exit status 1,
// no crash, and no half-written output file.
//
//===----------------------------------------------------------------------===//

#include "TestBundle.h"

#include "runtime/Safetensors.h"

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <sstream>
#include <sys/wait.h>

using namespace vlora;
using namespace vlora::runtime;
using kernels::DType;

namespace {

struct ToolResult {
  int status; // exit status, or 128 + signal
  std::string output;
};

ToolResult runTool(const std::string &args) {
  std::string command = std::string(VLORA_RUN_PATH) + " " + args + " 2>&1";
  FILE *pipe = ::popen(command.c_str(), "r");
  if (!pipe)
    return {-1, "popen failed"};
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), pipe)) > 0)
    out.append(buf, n);
  int raw = ::pclose(pipe);
  int status = WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + WTERMSIG(raw);
  return {status, out};
}

std::string readAll(const std::string &path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

class VloraRun : public ::testing::Test {
protected:
  void SetUp() override {
    dir = test::makeTempDir("bundle");
    bundle = dir + "/bundle";
    ::mkdir(bundle.c_str(), 0755);
    test::writeBundle(bundle, test::tinyPlan());
    inputs = dir + "/in.safetensors";
    outputs = dir + "/out.safetensors";
    writeInputs({{"x", DType::F32, {2, 3}, test::kX.data()}});
  }
  void writeInputs(const std::vector<SafetensorsEntry> &entries) {
    ASSERT_TRUE(writeSafetensors(inputs, entries).ok());
  }
  ToolResult run() {
    return runTool("'" + bundle + "' --inputs '" + inputs + "' --outputs '" + outputs + "'");
  }
  /// One line "vlora-run: error: ...<want>...", exit 1, output untouched.
  void expectError(const std::string &want) {
    std::ofstream(outputs) << "previous";
    ToolResult r = run();
    EXPECT_EQ(r.status, 1) << r.output;
    EXPECT_EQ(r.output.rfind("vlora-run: error: ", 0), 0u) << r.output;
    EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
    EXPECT_NE(r.output.find(want), std::string::npos) << r.output;
    EXPECT_EQ(readAll(outputs), "previous");
  }

  std::string dir, bundle, inputs, outputs;
};

TEST_F(VloraRun, RunsTheBundle) {
  ToolResult r = run();
  ASSERT_EQ(r.status, 0) << r.output;
  auto out = SafetensorsFile::open(outputs);
  ASSERT_TRUE(out.ok()) << out.message();
  const SafetensorsTensor *probs = out->find("probs");
  ASSERT_TRUE(probs);
  EXPECT_EQ(probs->dtype, DType::F32);
  EXPECT_EQ(probs->shape, (kernels::Shape{2, 4}));
  std::vector<float> got(8);
  std::memcpy(got.data(), probs->data, 32);
  std::vector<double> want = test::expectedProbs();
  for (int i = 0; i < 8; ++i)
    EXPECT_NEAR(got[i], want[i], 1e-6) << "element " << i << " (tolerance 1e-6 abs)";
}

TEST_F(VloraRun, UsageErrors) {
  ToolResult r = runTool("");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("vlora-run: error: no bundle folder given"), std::string::npos);
  r = runTool("'" + bundle + "' --inputs");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("--inputs needs a file"), std::string::npos);
  r = runTool("'" + bundle + "' --inputs a --outputs b --device tpu");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("unknown device 'tpu' (known devices: cpu, cuda)"), std::string::npos);
}

TEST_F(VloraRun, CorruptPlan) {
  std::ofstream(bundle + "/plan.pb", std::ios::binary | std::ios::trunc)
      << std::string("\xff\xff\xff\xff\x0f", 5);
  expectError(bundle + "/plan.pb: corrupt or truncated plan");
}

TEST_F(VloraRun, TruncatedPlan) {
  std::string bytes = test::tinyPlan().SerializeAsString();
  std::ofstream(bundle + "/plan.pb", std::ios::binary | std::ios::trunc)
      << bytes.substr(0, bytes.size() / 2);
  expectError(bundle + "/plan.pb: ");
}

TEST_F(VloraRun, PlanHashInTheManifest) {
  // A plan cut at a protobuf field boundary still parses; the manifest's
  // plan_hash catches it.
  std::string m = readAll(bundle + "/manifest.json");
  std::string hash = *hashFile(bundle + "/plan.pb");
  m.insert(m.size() - 1, ", \"plan_hash\": \"" + hash + "\"");
  std::ofstream(bundle + "/manifest.json", std::ios::trunc) << m;
  ToolResult ok = run();
  ASSERT_EQ(ok.status, 0) << ok.output;
  plan::Plan p = test::tinyPlan();
  p.mutable_steps()->RemoveLast();
  std::ofstream(bundle + "/plan.pb", std::ios::binary | std::ios::trunc) << p.SerializeAsString();
  expectError(bundle + "/plan.pb: corrupt or truncated plan (hash fnv1a64:");
}

TEST_F(VloraRun, OtherFormatVersion) {
  plan::Plan p = test::tinyPlan();
  p.set_format_version(2);
  std::ofstream(bundle + "/plan.pb", std::ios::binary | std::ios::trunc) << p.SerializeAsString();
  expectError(bundle + "/plan.pb: plan format version 2, this runtime reads 1");
}

TEST_F(VloraRun, MissingPlanAndManifest) {
  ::unlink((bundle + "/manifest.json").c_str());
  expectError("cannot open " + bundle + "/manifest.json");
  test::writeBundle(bundle, test::tinyPlan());
  ::unlink((bundle + "/plan.pb").c_str());
  expectError("cannot open " + bundle + "/plan.pb");
}

TEST_F(VloraRun, MissingWeightFile) {
  ::unlink((bundle + "/model/w.bin").c_str());
  expectError("missing weight file " + bundle + "/model/w.bin");
}

TEST_F(VloraRun, ChangedWeights) {
  std::string w = readAll(bundle + "/model/w.bin");
  w[10] ^= 1; // same size, other bytes
  std::ofstream(bundle + "/model/w.bin", std::ios::binary | std::ios::trunc) << w;
  expectError("weights changed since compile: " + bundle + "/model/w.bin (hash fnv1a64:");
  std::ofstream(bundle + "/model/w.bin", std::ios::binary | std::ios::app) << "more";
  expectError("weights changed since compile: " + bundle +
              "/model/w.bin has 56 bytes, the bundle was compiled with 52");
}

TEST_F(VloraRun, InputsMissingATensor) {
  writeInputs({{"y", DType::F32, {2, 3}, test::kX.data()}});
  expectError(inputs + ": missing input tensor 'x' (F32[2, 3])");
}

TEST_F(VloraRun, InputsWrongDType) {
  std::vector<double> x(6, 1.0);
  writeInputs({{"x", DType::F64, {2, 3}, x.data()}});
  expectError(inputs + ": input 'x' has dtype F64, the bundle was compiled for F32");
}

TEST_F(VloraRun, InputsWrongShape) {
  writeInputs({{"x", DType::F32, {3, 2}, test::kX.data()}});
  expectError(inputs + ": input 'x' has shape [3, 2], the bundle was compiled for [2, 3]");
}

TEST_F(VloraRun, InputsTruncatedHeader) {
  std::string bytes = readAll(inputs);
  std::ofstream(inputs, std::ios::binary | std::ios::trunc) << bytes.substr(0, 20);
  expectError(inputs + ": truncated safetensors header");
}

TEST_F(VloraRun, InputsOffsetsPastTheEnd) {
  std::string bytes = readAll(inputs);
  std::ofstream(inputs, std::ios::binary | std::ios::trunc) << bytes.substr(0, bytes.size() - 4);
  expectError(inputs + ": tensor 'x': data_offsets [0, 24] go past the end of the data (20 bytes)");
}

TEST_F(VloraRun, InputsFileMissing) {
  ::unlink(inputs.c_str());
  expectError("cannot open " + inputs);
}

TEST_F(VloraRun, ManifestDisagreesWithPlan) {
  std::string m = readAll(bundle + "/manifest.json");
  m.replace(m.find("\"shape\": [2, 3]"), 15, "\"shape\": [2, 5]");
  std::ofstream(bundle + "/manifest.json", std::ios::trunc) << m;
  expectError(bundle + "/manifest.json: input 'x' is F32[2, 5] but the plan has F32[2, 3]");
}

} // namespace
