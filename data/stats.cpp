#include "data/stats.h"

#include <chrono>
#include <cmath>

#include <fmt/format.h>

#include "core/format.h"

namespace lorakit::data {

int64_t LengthHistogram::percentile(double p) const {
  if (total_ == 0) return 0;
  const auto rank = static_cast<int64_t>(std::ceil(p / 100.0 * static_cast<double>(total_)));
  int64_t seen = 0;
  for (const auto& [length, count] : counts_) {
    seen += count;
    if (seen >= std::max<int64_t>(rank, 1)) return length;
  }
  return max();
}

void DataStats::add(const Example& example) {
  ++kept;
  truncated += example.truncated;
  prompt.add(example.prompt_tokens);
  response.add(example.response_tokens);
  total.add(example.prompt_tokens + example.response_tokens);
  if (example.class_label >= 0 && static_cast<size_t>(example.class_label) < label_counts.size()) ++label_counts[example.class_label];
}

DataStats DataStats::scan(RecordReader& reader, const ExampleBuilder& builder) {
  DataStats stats;
  stats.path = reader.path();
  stats.label_names = builder.labels();
  stats.label_counts.assign(stats.label_names.size(), 0);
  const auto start = std::chrono::steady_clock::now();
  Record record;
  std::string reason;
  while (reader.next(record)) {
    ++stats.rows;
    if (auto example = builder.build(record, reader.path(), reason))
      stats.add(*example);
    else
      ++stats.skipped[reason];
  }
  stats.bytes = reader.bytes_read();
  stats.bad_rows = reader.bad_rows();
  stats.bad_row_examples = reader.bad_row_examples();
  stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return stats;
}

std::string DataStats::report() const {
  std::string out = fmt::format("{}: {} rows read ({}, {:.1f} s), {} kept\n", path, with_commas(rows),
                                human_bytes(bytes), seconds, with_commas(kept));
  for (const auto& [reason, count] : skipped) out += fmt::format("  skipped {:>8}  {}\n", with_commas(count), reason);
  if (bad_rows > 0) {
    out += fmt::format("  skipped {:>8}  malformed rows (--skip-bad-rows), e.g.:\n", with_commas(bad_rows));
    for (const auto& message : bad_row_examples) out += "    " + message + "\n";
  }
  const int64_t lost = skipped.count("truncation removed every response token")
                           ? skipped.at("truncation removed every response token") : 0;
  const auto row = [](const char* name, const LengthHistogram& h) {
    return fmt::format("  {:<10} {:>7} {:>7} {:>7} {:>7} {:>7}\n", name, h.percentile(50), h.percentile(90),
                       h.percentile(99), h.max(), h.count());
  };
  out += fmt::format("  {:<10} {:>7} {:>7} {:>7} {:>7} {:>7}\n", "tokens", "p50", "p90", "p99", "max", "examples");
  if (!label_names.empty()) {  // a classifier's text is its input; nothing is a response
    out += row("text", total);
    std::string counts;
    for (size_t k = 0; k < label_names.size(); ++k)
      counts += fmt::format("{}{} {}", k ? ", " : "", label_names[k], with_commas(label_counts[k]));
    out += fmt::format("  labels     {}\n", counts);
    out += fmt::format("  truncated {} of {} kept examples\n", with_commas(truncated), with_commas(kept));
    return out;
  }
  out += row("prompt", prompt) + row("response", response) + row("total", total);
  out += fmt::format("  truncated {} of {} kept examples; {} dropped because truncation removed every response token\n",
                     with_commas(truncated), with_commas(kept), with_commas(lost));
  if (lost > 0) out += "  warning: raise max_seq_len or shorten prompts: those rows would never be trained\n";
  return out;
}

nlohmann::json DataStats::to_json() const {
  const auto lengths = [](const LengthHistogram& h) {
    return nlohmann::json{{"p50", h.percentile(50)}, {"p90", h.percentile(90)}, {"p99", h.percentile(99)},
                          {"max", h.max()}};
  };
  nlohmann::json out = {{"path", path}, {"rows", rows}, {"kept", kept}, {"truncated", truncated}, {"skipped", skipped}, {"bad_rows", bad_rows},
          {"bytes", bytes}, {"seconds", seconds}, {"prompt_tokens", lengths(prompt)},
          {"response_tokens", lengths(response)}, {"total_tokens", lengths(total)}};
  if (!label_names.empty()) {
    out["labels"] = nlohmann::json::object();
    for (size_t k = 0; k < label_names.size(); ++k) out["labels"][label_names[k]] = label_counts[k];
  }
  return out;
}

}  // namespace lorakit::data
