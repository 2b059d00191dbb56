//===- SafetensorsTest.cpp - safetensors round trip and corruptions -------===//

#include "TestBundle.h"

#include "runtime/FileHash.h"
#include "runtime/Safetensors.h"

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <sstream>

using namespace vlora::runtime;
using vlora::kernels::DType;

namespace {

std::string readAll(const std::string &path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

/// A file with the given header text (not padded) and `dataBytes` zeros.
void writeRaw(const std::string &path, const std::string &header, size_t dataBytes,
              uint64_t declaredLength = UINT64_MAX) {
  uint64_t n = declaredLength == UINT64_MAX ? header.size() : declaredLength;
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i)
    bytes[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  bytes += header;
  bytes += std::string(dataBytes, '\0');
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

TEST(Safetensors, RoundTrip) {
  std::string dir = vlora::test::makeTempDir("st");
  std::string path = dir + "/t.safetensors";
  std::vector<float> a = {1, 2, 3, 4, 5, 6};
  std::vector<int64_t> ids = {7, -8};
  std::vector<uint8_t> mask = {1, 0, 1};
  std::vector<uint16_t> half = {0x3c00};
  Status s = writeSafetensors(path,
                              {{"zeta", DType::F32, {2, 3}, a.data()},
                               {"alpha", DType::F32, {6}, a.data()},
                               {"ids", DType::I64, {2}, ids.data()},
                               {"mask", DType::Bool, {3}, mask.data()},
                               {"h", DType::BF16, {1}, half.data()},
                               {"empty", DType::F32, {0, 4}, nullptr},
                               {"scalar", DType::F32, {}, a.data()}},
                              {{"format", "pt"}});
  ASSERT_TRUE(s.ok()) << s.message();
  std::string bytes = readAll(path);
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  EXPECT_EQ(n % 8, 0u);
  std::string header = bytes.substr(8, n);
  // The safetensors library's layout: by descending dtype, then name;
  // compact JSON; space padding.
  EXPECT_EQ(header.rfind("{\"__metadata__\":{\"format\":\"pt\"},\"ids\":{\"dtype\":\"I64\",\"shape\":[2],"
                         "\"data_offsets\":[0,16]},\"alpha\":",
                         0),
            0u)
      << header;
  EXPECT_LT(header.find("\"zeta\""), header.find("\"h\""));
  EXPECT_LT(header.find("\"h\""), header.find("\"mask\""));

  Expected<SafetensorsFile> file = SafetensorsFile::open(path);
  ASSERT_TRUE(file.ok()) << file.message();
  EXPECT_EQ(file->metadata().at("format"), "pt");
  ASSERT_EQ(file->tensors().size(), 7u);
  const SafetensorsTensor *z = file->find("zeta");
  ASSERT_TRUE(z);
  EXPECT_EQ(z->dtype, DType::F32);
  EXPECT_EQ(z->shape, (vlora::kernels::Shape{2, 3}));
  ASSERT_EQ(z->bytes, 24u);
  EXPECT_EQ(std::memcmp(z->data, a.data(), 24), 0);
  EXPECT_EQ(std::memcmp(file->find("ids")->data, ids.data(), 16), 0);
  EXPECT_EQ(file->find("empty")->bytes, 0u);
  EXPECT_EQ(file->find("scalar")->bytes, 4u);
  EXPECT_EQ(file->find("nope"), nullptr);
}

TEST(Safetensors, WriterIsAtomicAndChecksNames) {
  std::string dir = vlora::test::makeTempDir("st-atomic");
  std::string path = dir + "/t.safetensors";
  float v = 1;
  ASSERT_TRUE(writeSafetensors(path, {{"a", DType::F32, {1}, &v}}).ok());
  std::string before = readAll(path);
  Status dup = writeSafetensors(path, {{"a", DType::F32, {1}, &v}, {"a", DType::F32, {1}, &v}});
  EXPECT_EQ(dup.message(), path + ": tensor 'a' is given twice");
  EXPECT_EQ(readAll(path), before); // untouched
  Status noDir = writeSafetensors(dir + "/missing/t.safetensors", {{"a", DType::F32, {1}, &v}});
  EXPECT_FALSE(noDir.ok());
  EXPECT_NE(noDir.message().find("cannot create a temporary file next to " + dir +
                                 "/missing/t.safetensors"),
            std::string::npos);
}

struct BadFile {
  const char *what;
  std::string header;
  size_t dataBytes;
  uint64_t declared;
  const char *message;
};

class SafetensorsBad : public ::testing::TestWithParam<BadFile> {};

TEST_P(SafetensorsBad, IsRefusedNamingTheFileAndTensor) {
  std::string dir = vlora::test::makeTempDir("st-bad");
  std::string path = dir + "/in.safetensors";
  const BadFile &c = GetParam();
  writeRaw(path, c.header, c.dataBytes, c.declared);
  Expected<SafetensorsFile> file = SafetensorsFile::open(path);
  ASSERT_FALSE(file.ok()) << c.what;
  EXPECT_EQ(file.message().rfind(path + ": ", 0), 0u) << file.message();
  EXPECT_NE(file.message().find(c.message), std::string::npos) << file.message();
}

const std::string kGood = R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";

const BadFile kBadFiles[] = {
    {"header length past end", kGood, 0, 1000,
     "truncated safetensors header: it declares 1000 bytes but the file has only"},
    {"huge header length", kGood, 0, uint64_t(1) << 40, "exceeds the 100000000-byte limit"},
    {"invalid json", R"({"x":{"dtype":)", 8, UINT64_MAX, "invalid safetensors header JSON"},
    {"not an object", "[1,2]", 0, UINT64_MAX, "safetensors header is not a JSON object"},
    {"entry not object", R"({"x":3})", 0, UINT64_MAX, "tensor 'x': entry is not an object"},
    {"missing dtype", R"({"x":{"shape":[2],"data_offsets":[0,8]}})", 8, UINT64_MAX,
     "tensor 'x': missing or non-string \"dtype\""},
    {"unknown dtype", R"({"x":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[0,2]}})", 2,
     UINT64_MAX, "tensor 'x': unsupported dtype \"F8_E4M3\""},
    {"negative shape", R"({"x":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8,
     UINT64_MAX, "tensor 'x': shape [-2] has an entry that is not a non-negative integer"},
    {"shape overflow",
     R"({"x":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", 8,
     UINT64_MAX, "tensor 'x': shape [4294967296,4294967296] overflows"},
    {"missing shape", R"({"x":{"dtype":"F32","data_offsets":[0,8]}})", 8, UINT64_MAX,
     "tensor 'x': missing or non-array \"shape\""},
    {"offsets arity", R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", 8, UINT64_MAX,
     "tensor 'x': \"data_offsets\" must be two non-negative integers"},
    {"offsets reversed", R"({"x":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}})", 8,
     UINT64_MAX, "tensor 'x': data_offsets [8, 0] end before they begin"},
    {"offsets past end", kGood, 4, UINT64_MAX,
     "tensor 'x': data_offsets [0, 8] go past the end of the data (4 bytes)"},
    {"size mismatch", R"({"x":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8,
     UINT64_MAX, "tensor 'x': data_offsets [0, 8] hold 8 bytes but dtype F32 and shape [3] need 12"},
    {"overlap",
     R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"y":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
     12, UINT64_MAX, "tensors 'x' and 'y' overlap in the data buffer"},
    {"metadata not strings", R"({"__metadata__":{"a":1}})", 0, UINT64_MAX,
     "__metadata__ value of 'a' is not a string"},
};

INSTANTIATE_TEST_SUITE_P(Cases, SafetensorsBad, ::testing::ValuesIn(kBadFiles),
                         [](const ::testing::TestParamInfo<BadFile> &info) {
                           std::string name = info.param.what;
                           for (char &c : name)
                             if (!isalnum(static_cast<unsigned char>(c)))
                               c = '_';
                           return name;
                         });

TEST(Safetensors, ShortAndMissingFiles) {
  std::string dir = vlora::test::makeTempDir("st-short");
  std::ofstream(dir + "/short", std::ios::binary) << "abc";
  auto s = SafetensorsFile::open(dir + "/short");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.message(), dir + "/short: truncated safetensors file: 3 bytes, less than the "
                               "8-byte header length");
  std::ofstream(dir + "/empty", std::ios::binary);
  EXPECT_FALSE(SafetensorsFile::open(dir + "/empty").ok());
  auto m = SafetensorsFile::open(dir + "/none");
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.message(), "cannot open " + dir + "/none: No such file or directory");
}

TEST(FileHash, FNV1a64) {
  EXPECT_EQ(fnv1a64("", 0), 0xcbf29ce484222325ull);
  EXPECT_EQ(fnv1a64("a", 1), 0xaf63dc4c8601ec8cull);
  EXPECT_EQ(fnv1a64("foobar", 6), 0x85944171f73967e8ull);
  std::string dir = vlora::test::makeTempDir("hash");
  // Larger than the streaming buffer, so chunks are chained.
  std::string big(3 << 20, 'x');
  big[12345] = 'y';
  std::ofstream(dir + "/f", std::ios::binary) << big;
  char want[32];
  std::snprintf(want, sizeof(want), "fnv1a64:%016llx",
                static_cast<unsigned long long>(fnv1a64(big.data(), big.size())));
  Expected<std::string> h = hashFile(dir + "/f");
  ASSERT_TRUE(h.ok()) << h.message();
  EXPECT_EQ(*h, want);
  EXPECT_EQ(hashFile(dir + "/nope").message(),
            "cannot open " + dir + "/nope: No such file or directory");
}

} // namespace
