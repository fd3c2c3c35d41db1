// YAML recipes through load_recipe, with the `--set key=value` overrides that follow a "\n----\n"
// line (one per line), and the resolved recipe written back as YAML, as `lorakit train` does.
#include <sstream>

#include "fuzz/harness.h"
#include "trainer/recipe.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto [yaml, set_lines] = lorakit::fuzz::split(lorakit::fuzz::as_view(data, size), "\n----\n");
  const auto path = lorakit::fuzz::write_file("recipe.yaml", yaml);
  std::vector<std::string> overrides;
  std::istringstream lines{std::string(set_lines)};
  for (std::string line; std::getline(lines, line);) overrides.push_back(line);
  lorakit::fuzz::expect_clear_error([&] { (void)lorakit::trainer::recipe_yaml(lorakit::trainer::load_recipe(path.string(), overrides)); });
  return 0;
}
