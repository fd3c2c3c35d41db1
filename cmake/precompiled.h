// The headers nearly every library file includes, precompiled once per build (LORAKIT_PCH, see the
// top-level CMakeLists.txt): ATen's Tensor and operators alone are ~370k lines after preprocessing,
// and parsing them was half of each file's compile time. This only speeds the build: every file
// still includes what it uses, and -DLORAKIT_PCH=OFF builds without it.
#pragma once

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <ATen/TensorOperators.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/linear.h>
#include <ATen/ops/matmul.h>
#include <ATen/ops/zeros.h>
#include <c10/core/GradMode.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
