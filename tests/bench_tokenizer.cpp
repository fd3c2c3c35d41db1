// Encoding speed of lorakit's tokenizer, one thread: bench_tokenizer MODEL_DIR CORPUS.json PASSES
// CORPUS.json is a JSON array of texts. Prints one JSON object: tokens, seconds of the first
// (cold-cache) pass and the best of the later passes, tokens/s. scripts/bench_tokenizers.py runs
// it next to HF tokenizers on the same corpus.
#include <chrono>
#include <cstdio>
#include <fstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "tokenizers/tokenizer.h"

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: bench_tokenizer MODEL_DIR CORPUS.json PASSES\n");
    return 2;
  }
  const auto texts = nlohmann::json::parse(std::ifstream(argv[2])).get<std::vector<std::string>>();
  const int passes = std::max(2, std::atoi(argv[3]));
  const auto load_start = std::chrono::steady_clock::now();
  const auto tokenizer = lorakit::tokenizers::load_tokenizer(argv[1]);
  const double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - load_start).count();
  size_t tokens = 0, bytes = 0;
  double first = 0, best = 1e30;
  for (int pass = 0; pass < passes; ++pass) {
    size_t count = 0;
    const auto start = std::chrono::steady_clock::now();
    for (const auto& text : texts) count += tokenizer.encode(text, false).size();
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (pass == 0) {
      first = seconds;
      tokens = count;
      for (const auto& text : texts) bytes += text.size();
    } else {
      best = std::min(best, seconds);
    }
  }
  fmt::print("{}\n", nlohmann::json{{"tokens", tokens}, {"bytes", bytes}, {"load_s", load_s}, {"first_pass_s", first},
                                    {"best_pass_s", best}, {"tokens_per_s_first", tokens / first},
                                    {"tokens_per_s_best", tokens / best}}.dump());
  return 0;
}
