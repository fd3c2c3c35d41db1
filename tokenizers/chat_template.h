// Chat templates rendered in C++ (no Jinja engine): each supported format reproduces its
// model's chat_template.jinja exactly as transformers' apply_chat_template renders it. The output
// is split into segments that say which text the model should learn in supervised fine-tuning.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace lorakit::tokenizers {

enum class ChatFormat { None, Exaone4 };

// Recognises a known template by its markers; None when the template is unknown or empty.
ChatFormat detect_chat_format(const std::string& template_source);
const char* chat_format_name(ChatFormat format);

struct ChatOptions {
  bool add_generation_prompt = false;
  bool enable_thinking = false;  // EXAONE: the generation prompt opens "<think>\n"
  bool skip_think = true;        // EXAONE: the last assistant turn keeps its reasoning when false
  nlohmann::ordered_json tools = nlohmann::ordered_json::array();
};

struct ChatSegment {
  std::string text;
  bool assistant = false;  // assistant content (and tool calls) plus its end-of-turn token
};

// `messages`: an array of {"role", "content", optional "reasoning_content", "tool_calls"}, as
// given to apply_chat_template. Errors name the message index and what is wrong.
std::vector<ChatSegment> render_chat(ChatFormat format, const nlohmann::ordered_json& messages,
                                     const ChatOptions& options = {});
std::string render_chat_text(ChatFormat format, const nlohmann::ordered_json& messages,
                             const ChatOptions& options = {});

// json.dumps(value, ensure_ascii=False) with Python's default separators (", " and ": "), as
// the templates' `tojson` filter prints.
std::string python_json(const nlohmann::ordered_json& value);

}  // namespace lorakit::tokenizers
