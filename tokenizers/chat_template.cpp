#include "tokenizers/chat_template.h"

#include "core/error.h"
#include "tokenizers/chat_render.h"
#include "tokenizers/unicode.h"

namespace lorakit::tokenizers {
namespace {

using nlohmann::ordered_json;
using chat::Output;
using chat::text_of;
using chat::truthy;

// Python's str[n:] on code points.
std::string drop_code_points(const std::string& text, size_t n) {
  size_t pos = 0;
  for (size_t i = 0; i < n && pos < text.size(); ++i) pos += utf8_length(static_cast<unsigned char>(text[pos]));
  return text.substr(std::min(pos, text.size()));
}

constexpr const char* kEndOfTurn = "[|endofturn|]";
constexpr const char* kEmptyThink = "<think>\n\n</think>\n\n";

std::string exaone4_tools(const ordered_json& tools) {
  std::string out =
      "# Available Tools"
      "\nYou can use none, one, or multiple of the following tools by calling them as functions to help "
      "with the user\u2019s query."
      "\nHere are the tools available to you in JSON format within <tool> and </tool> tags:\n";
  for (const auto& tool : tools) out += "<tool>" + python_json(tool) + "</tool>\n";
  out +=
      "\nFor each function call you want to make, return a JSON object with function name and arguments "
      "within <tool_call> and </tool_call> tags, like:"
      "\n<tool_call>{\"name\": function_1_name, \"arguments\": {argument_1_name: argument_1_value, "
      "argument_2_name: argument_2_value}}</tool_call>"
      "\n<tool_call>{\"name\": function_2_name, \"arguments\": {...}}</tool_call>\n..."
      "\nNote that if no argument name is specified for a tool, you can just print the argument value "
      "directly, without the argument name or JSON formatting.";
  return out;
}

// EXAONE 4.0's chat_template.jinja, statement by statement.
std::vector<ChatSegment> render_exaone4(const ordered_json& messages, const ChatOptions& options) {
  Output out;
  const bool has_tools = options.tools.is_array() && !options.tools.empty();
  const size_t n = messages.size();
  for (size_t i = 0; i < n; ++i) {
    const ordered_json& msg = messages[i];
    if (!msg.is_object() || !msg.contains("role") || !msg["role"].is_string())
      fail("chat message {}: expected an object with a string \"role\", found {}", i, msg.dump());
    const std::string role = msg["role"].get<std::string>();
    if (role != "user" && role != "assistant" && role != "system" && role != "tool")
      fail("chat message {}: unknown role '{}' (EXAONE 4.0 knows system, user, assistant, tool)", i, role);
    const bool last = i + 1 == n;

    if (i == 0) {
      if (role == "system") {
        out.add("[|system|]\n" + text_of(msg, "content", i), false);
        if (has_tools) out.add("\n\n" + exaone4_tools(options.tools), false);
        out.add(std::string(kEndOfTurn) + "\n", false);
        continue;
      }
      if (has_tools) out.add("[|system|]\n" + exaone4_tools(options.tools) + kEndOfTurn + "\n", false);
    }

    if (role == "assistant") {
      out.add("[|assistant|]\n", false);
      if (truthy(msg, "content")) {
        const std::string content_in = text_of(msg, "content", i);
        std::string content = content_in;
        std::optional<std::string> reasoning;
        if (const size_t close = content_in.find("</think>"); close != std::string::npos) {
          content = python_strip(content_in.substr(content_in.rfind("</think>") + 8));
          std::string r = python_strip(content_in.substr(0, close));
          if (r.starts_with("<think>")) r = python_strip(drop_code_points(r, 9));
          reasoning = r;
        }
        if (truthy(msg, "reasoning_content")) reasoning = text_of(msg, "reasoning_content", i);
        if (!options.skip_think && last && reasoning)
          out.add("<think>\n" + *reasoning + "\n</think>\n\n", true);
        else
          out.add(kEmptyThink, false);
        out.add(content, true);
      }
      if (truthy(msg, "tool_calls")) {
        if (truthy(msg, "content"))
          out.add("\n", true);
        else
          out.add(kEmptyThink, false);
        const ordered_json& calls = msg["tool_calls"];
        for (size_t c = 0; c < calls.size(); ++c) {
          ordered_json call = calls[c];
          if (call.contains("function")) call = call["function"];
          ordered_json arguments;
          if (call.contains("arguments"))
            arguments = call["arguments"];
          else if (call.contains("parameters"))
            arguments = call["parameters"];
          else
            fail("chat message {}: tool_calls[{}] has no \"arguments\" or \"parameters\"", i, c);
          const std::string name = call.contains("name") && call["name"].is_string() ? call["name"].get<std::string>() : "";
          out.add("<tool_call>{\"name\": \"" + name + "\", \"arguments\": " + python_json(arguments) + "}</tool_call>", true);
          if (c + 1 < calls.size()) out.add("\n", true);
        }
      }
      out.add(kEndOfTurn, true);
      out.add("\n", false);
    } else if (role == "tool") {
      if (i == 0 || messages[i - 1].value("role", "") != "tool") out.add("[|tool|]\n", false);
      if (msg.contains("content"))
        out.add("<tool_result>{\"result\": " + python_json(msg["content"]) + "}</tool_result>", false);
      if (last || messages[i + 1].value("role", "") != "tool")
        out.add(std::string(kEndOfTurn) + "\n", false);
      else
        out.add("\n", false);
    } else {
      out.add("[|" + role + "|]\n" + text_of(msg, "content", i) + kEndOfTurn + "\n", false);
    }
  }
  if (options.add_generation_prompt)
    out.add(std::string("[|assistant|]\n") + (options.enable_thinking.value_or(false) ? "<think>\n" : kEmptyThink), false);
  return out.segments;
}

}  // namespace

ChatFormat detect_chat_format(const std::string& source) {
  const auto has = [&](const char* marker) { return source.find(marker) != std::string::npos; };
  if (has("[|system|][|endofturn|]") && has("'[|' + message['role'] + '|]'")) return ChatFormat::Exaone3;
  if (has("[|endofturn|]") && has("[|assistant|]")) return ChatFormat::Exaone4;
  if (has("<|start_header_id|>") && has("Cutting Knowledge Date")) return ChatFormat::Llama31;
  if (has("<|start_header_id|>") && has("message['content'] | trim + '<|eot_id|>'")) return ChatFormat::Llama3;
  if (has("<|im_start|>") && has("<think>") && has("last_query_index")) return ChatFormat::Qwen3;
  if (has("You are a helpful assistant<|im_end|>") && has("(loop.last and add_generation_prompt) or not loop.last"))
    return ChatFormat::Qwen15;
  if (has("<|im_start|>system\\nYou are a helpful assistant.<|im_end|>") && !has("tools") &&
      has("{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"))
    return ChatFormat::Qwen2;
  if (has("<start_of_turn>") && has("<end_of_turn>") && has("set role = 'model'")) return ChatFormat::Gemma;
  return ChatFormat::None;
}

const char* chat_format_name(ChatFormat format) {
  switch (format) {
    case ChatFormat::Exaone4: return "exaone4";
    case ChatFormat::Exaone3: return "exaone3";
    case ChatFormat::Llama3: return "llama3";
    case ChatFormat::Llama31: return "llama3.1";
    case ChatFormat::Qwen15: return "qwen1.5";
    case ChatFormat::Qwen2: return "qwen2";
    case ChatFormat::Qwen3: return "qwen3";
    case ChatFormat::Gemma: return "gemma";
    case ChatFormat::None: break;
  }
  return "none";
}

std::string known_chat_formats() { return "exaone4, exaone3, llama3, llama3.1, qwen1.5, qwen2, qwen3, gemma"; }

std::vector<ChatSegment> render_chat(ChatFormat format, const ordered_json& messages, const ChatOptions& options) {
  if (!messages.is_array()) fail("chat messages: expected an array of {{\"role\", \"content\"}} objects");
  switch (format) {
    case ChatFormat::Exaone4: return render_exaone4(messages, options);
    case ChatFormat::Exaone3: return chat::render_exaone3(messages, options);
    case ChatFormat::Llama3: return chat::render_llama3(messages, options);
    case ChatFormat::Llama31: return chat::render_llama31(messages, options);
    case ChatFormat::Qwen15: return chat::render_qwen15(messages, options);
    case ChatFormat::Qwen2: return chat::render_qwen2(messages, options);
    case ChatFormat::Qwen3: return chat::render_qwen3(messages, options);
    case ChatFormat::Gemma: return chat::render_gemma(messages, options);
    case ChatFormat::None: break;
  }
  fail("this model has no chat template lorakit can render (lorakit renders: {}); "
       "hint: use data.prompt_template with named fields instead", known_chat_formats());
}

std::string render_chat_text(ChatFormat format, const ordered_json& messages, const ChatOptions& options) {
  std::string text;
  for (const ChatSegment& segment : render_chat(format, messages, options)) text += segment.text;
  return text;
}

std::string python_json(const ordered_json& value) {
  if (value.is_object()) {
    std::string out = "{";
    bool first = true;
    for (const auto& [key, item] : value.items()) {
      out += (first ? "" : ", ") + ordered_json(key).dump(-1, ' ', false) + ": " + python_json(item);
      first = false;
    }
    return out + "}";
  }
  if (value.is_array()) {
    std::string out = "[";
    for (size_t i = 0; i < value.size(); ++i) out += (i ? ", " : "") + python_json(value[i]);
    return out + "]";
  }
  if (value.is_boolean()) return value.get<bool>() ? "true" : "false";
  if (value.is_null()) return "null";
  return value.dump(-1, ' ', false);
}

}  // namespace lorakit::tokenizers
