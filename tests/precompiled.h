// The tests' precompiled header (LORAKIT_PCH): the library's set plus ATen's whole operator set,
// which tests/tensor_compare.h includes, and GoogleTest.
#pragma once

#include "cmake/precompiled.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
