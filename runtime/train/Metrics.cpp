//===- Metrics.cpp - metrics.jsonl records --------------------------------===//

#include "runtime/train/Metrics.h"

#include <nlohmann/json.hpp>

#include <fstream>

namespace vlora::train {
using Json = nlohmann::json;

std::string metricsLine(const MetricsRecord &r) {
  // Insertion order, so the line reads step first.
  nlohmann::ordered_json j;
  j["step"] = r.step;
  j["epoch"] = r.epoch;
  j["loss"] = r.loss ? nlohmann::ordered_json(*r.loss) : nlohmann::ordered_json();
  j["grad_norm"] = r.gradNorm;
  j["learning_rate"] = r.learningRate;
  j["tokens_per_second"] = r.tokensPerSecond;
  j["elapsed"] = r.elapsed;
  return j.dump() + "\n";
}

runtime::Expected<std::vector<MetricsRecord>> readMetrics(const std::string &path) {
  std::vector<MetricsRecord> out;
  std::ifstream in(path);
  if (!in)
    return out;
  std::string line;
  for (int lineNo = 1; std::getline(in, line); ++lineNo) {
    if (line.empty())
      continue;
    try {
      Json j = Json::parse(line);
      MetricsRecord r;
      r.step = j.at("step").get<int64_t>();
      r.epoch = j.at("epoch").get<double>();
      if (!j.at("loss").is_null())
        r.loss = j.at("loss").get<double>();
      r.gradNorm = j.at("grad_norm").get<double>();
      r.learningRate = j.at("learning_rate").get<double>();
      r.tokensPerSecond = j.at("tokens_per_second").get<double>();
      r.elapsed = j.at("elapsed").get<double>();
      out.push_back(r);
    } catch (const Json::exception &e) {
      // A run killed while appending leaves a partial last line: stop there.
      if (in.peek() == std::char_traits<char>::eof())
        break;
      return runtime::Error(path + ":" + std::to_string(lineNo) + ": bad metrics record: " +
                            e.what());
    }
  }
  return out;
}

} // namespace vlora::train
