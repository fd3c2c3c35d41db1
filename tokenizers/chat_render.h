// Internal to tokenizers/: what the chat template renderers share (chat_template.cpp has EXAONE
// 4.0's and the dispatch, chat_formats.cpp the other families').
#pragma once

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "tokenizers/chat_template.h"

namespace lorakit::tokenizers::chat {

using nlohmann::ordered_json;

// The rendered text as segments; consecutive text of the same kind joins one segment.
struct Output {
  std::vector<ChatSegment> segments;
  void add(std::string_view text, bool assistant) {
    if (text.empty()) return;
    if (!segments.empty() && segments.back().assistant == assistant)
      segments.back().text += text;
    else
      segments.push_back({std::string(text), assistant});
  }
};

// Jinja truthiness of msg.<key>: present, not null, not "" / [] / {} / false.
inline bool truthy(const ordered_json& message, const char* key) {
  if (!message.contains(key)) return false;
  const ordered_json& v = message[key];
  if (v.is_null()) return false;
  if (v.is_string()) return !v.get_ref<const std::string&>().empty();
  if (v.is_array() || v.is_object()) return !v.empty();
  if (v.is_boolean()) return v.get<bool>();
  return true;
}

// msg.<key> as a string ("" when absent or null); another type is an error naming the message.
inline std::string text_of(const ordered_json& message, const char* key, size_t index) {
  if (!message.contains(key) || message[key].is_null()) return "";
  if (!message[key].is_string())
    fail("chat message {}: \"{}\" must be a string, found {}", index, key, message[key].dump());
  return message[key].get<std::string>();
}

// The message's role, checked against the roles the template knows (`family` names it in errors;
// no roles: the template renders any).
inline std::string role_of(const ordered_json& message, size_t index, const std::vector<std::string>& roles,
                           const char* family) {
  if (!message.is_object() || !message.contains("role") || !message["role"].is_string())
    fail("chat message {}: expected an object with a string \"role\", found {}", index, message.dump());
  std::string role = message["role"].get<std::string>();
  if (!roles.empty() && std::find(roles.begin(), roles.end(), role) == roles.end())
    fail("chat message {}: unknown role '{}' ({} knows {})", index, role, family, fmt::join(roles, ", "));
  return role;
}

// Python's str.strip(chars) / lstrip / rstrip for a set of ASCII characters.
inline std::string strip_chars(std::string_view s, std::string_view chars, bool left = true, bool right = true) {
  size_t begin = 0, end = s.size();
  while (left && begin < end && chars.find(s[begin]) != std::string_view::npos) ++begin;
  while (right && end > begin && chars.find(s[end - 1]) != std::string_view::npos) --end;
  return std::string(s.substr(begin, end - begin));
}

std::vector<ChatSegment> render_gemma(const ordered_json& messages, const ChatOptions& options);
std::vector<ChatSegment> render_exaone3(const ordered_json& messages, const ChatOptions& options);
std::vector<ChatSegment> render_llama3(const ordered_json& messages, const ChatOptions& options);
std::vector<ChatSegment> render_llama31(const ordered_json& messages, const ChatOptions& options);
std::vector<ChatSegment> render_qwen2(const ordered_json& messages, const ChatOptions& options);
std::vector<ChatSegment> render_qwen15(const ordered_json& messages, const ChatOptions& options);
std::vector<ChatSegment> render_qwen3(const ordered_json& messages, const ChatOptions& options);

}  // namespace lorakit::tokenizers::chat
