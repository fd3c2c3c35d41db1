// Chat templates rendered in C++ (no Jinja engine): each supported format reproduces its
// model's chat_template.jinja exactly as transformers' apply_chat_template renders it. The output
// is split into segments that say which text the model should learn in supervised fine-tuning.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace lorakit::tokenizers {

// The template families lorakit renders: EXAONE 4.0, EXAONE 3.0/3.5, Llama 3 (Meta-Llama-3 and
// Bllossom), Llama 3.1/3.2 (dated system header, tools), Qwen1.5's and Qwen2's ChatML, Qwen3 (thinking, tools),
// Gemma / Gemma-2 IT.
enum class ChatFormat { None, Exaone4, Exaone3, Llama3, Llama31, Qwen15, Qwen2, Qwen3, Gemma };

// Recognises a known template by its markers; None when the template is unknown or empty.
ChatFormat detect_chat_format(const std::string& template_source);
const char* chat_format_name(ChatFormat format);
// "exaone4, exaone3, llama3, llama3.1, qwen1.5, qwen2, qwen3, gemma", for messages.
std::string known_chat_formats();

struct ChatOptions {
  bool add_generation_prompt = false;
  // Unset is the template's default: EXAONE 4.0 without thinking, Qwen3 with it. EXAONE: true opens
  // "<think>\n" in the generation prompt; Qwen3: false closes an empty think block there.
  std::optional<bool> enable_thinking;
  bool skip_think = true;        // EXAONE: the last assistant turn keeps its reasoning when false
  nlohmann::ordered_json tools = nlohmann::ordered_json::array();
  std::string bos_token;    // the tokenizer's, for templates that print it (Llama 3)
  std::string date_string;  // Llama 3.1: "Today Date"; empty: today, as strftime_now("%d %b %Y")
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
