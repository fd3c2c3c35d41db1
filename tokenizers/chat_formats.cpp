// The chat templates of the Llama-3, Qwen and EXAONE 3.5 families, each rendered statement by
// statement as its chat_template.jinja does under transformers' apply_chat_template (the templates
// are quoted in scripts/chat_oracle.py's sources: ../shared/models/*/tokenizer_config.json).
// Trainable segments: an assistant turn's content (reasoning, tool calls) and its end-of-turn token;
// headers, the newline after the end token and empty think blocks are prompt.
#include <ctime>

#include "tokenizers/chat_render.h"
#include "tokenizers/unicode.h"

namespace lorakit::tokenizers::chat {

namespace {

// Jinja's `x | tojson(indent=4)`: json.dumps(x, ensure_ascii=False, indent=4).
std::string python_json_indented(const ordered_json& value) { return value.dump(4, ' ', false); }

// Jinja's `x | tojson` for a tool result: mappings and iterables (strings too) as JSON, else str().
std::string tool_content(const ordered_json& content) {
  return content.is_object() || content.is_array() || content.is_string() ? python_json(content) : content.dump();
}

// strftime_now("%d %b %Y"), as transformers provides it to templates.
std::string today() {
  const std::time_t now = std::time(nullptr);
  std::tm local{};
  localtime_r(&now, &local);
  char buffer[32];
  std::strftime(buffer, sizeof buffer, "%d %b %Y", &local);
  return buffer;
}

constexpr const char* kEot = "<|eot_id|>";

}  // namespace

// Meta-Llama-3-*-Instruct and Bllossom: BOS once, `<|start_header_id|>role<|end_header_id|>\n\n`,
// the content trimmed, `<|eot_id|>`.
std::vector<ChatSegment> render_llama3(const ordered_json& messages, const ChatOptions& options) {
  Output out;
  for (size_t i = 0; i < messages.size(); ++i) {
    const std::string role = role_of(messages[i], i, {}, "the Llama 3 template");
    const bool assistant = role == "assistant";
    out.add((i == 0 ? options.bos_token : "") + "<|start_header_id|>" + role + "<|end_header_id|>\n\n", false);
    out.add(python_strip(text_of(messages[i], "content", i)) + kEot, assistant);
  }
  if (options.add_generation_prompt) out.add("<|start_header_id|>assistant<|end_header_id|>\n\n", false);
  return out.segments;
}

// Llama 3.1 / 3.2 Instruct: the system header with the knowledge and today's date, tools in the
// first user message (tools_in_user_message, the default), single tool calls, ipython results.
std::vector<ChatSegment> render_llama31(const ordered_json& messages, const ChatOptions& options) {
  Output out;
  const bool has_tools = options.tools.is_array() && !options.tools.empty();
  size_t first = 0;
  std::string system_message;
  if (!messages.empty() && role_of(messages[0], 0, {}, "the Llama 3.1 template") == "system") {
    system_message = python_strip(text_of(messages[0], "content", 0));
    first = 1;
  }
  out.add(options.bos_token + "<|start_header_id|>system<|end_header_id|>\n\n", false);
  if (has_tools) out.add("Environment: ipython\n", false);
  out.add("Cutting Knowledge Date: December 2023\nToday Date: " +
              (options.date_string.empty() ? today() : options.date_string) + "\n\n" + system_message + kEot,
          false);
  if (has_tools) {
    if (first >= messages.size())
      fail("chat messages: the Llama 3.1 template puts tools in the first user message, but there is none");
    std::string text = "<|start_header_id|>user<|end_header_id|>\n\n"
                       "Given the following functions, please respond with a JSON for a function call "
                       "with its proper arguments that best answers the given prompt.\n\n"
                       "Respond in the format {\"name\": function name, \"parameters\": dictionary of argument name "
                       "and its value}.Do not use variables.\n\n";
    for (const auto& tool : options.tools) text += python_json_indented(tool) + "\n\n";
    out.add(text + python_strip(text_of(messages[first], "content", first)) + kEot, false);
    ++first;
  }
  for (size_t i = first; i < messages.size(); ++i) {
    const ordered_json& msg = messages[i];
    const std::string role = role_of(msg, i, {}, "the Llama 3.1 template");
    if (msg.contains("tool_calls")) {
      const ordered_json& calls = msg["tool_calls"];
      if (!calls.is_array() || calls.size() != 1)
        fail("chat message {}: this model only supports single tool-calls at once (the Llama 3.1 template)", i);
      const ordered_json call = calls[0].value("function", ordered_json::object());
      out.add("<|start_header_id|>assistant<|end_header_id|>\n\n", false);
      out.add("{\"name\": \"" + call.value("name", "") + "\", \"parameters\": " +
                  python_json(call.value("arguments", ordered_json::object())) + "}" + kEot,
              true);
    } else if (role == "tool" || role == "ipython") {
      out.add("<|start_header_id|>ipython<|end_header_id|>\n\n" + tool_content(msg.value("content", ordered_json())) + kEot,
              false);
    } else {
      out.add("<|start_header_id|>" + role + "<|end_header_id|>\n\n", false);
      out.add(python_strip(text_of(msg, "content", i)) + kEot, role == "assistant");
    }
  }
  if (options.add_generation_prompt) out.add("<|start_header_id|>assistant<|end_header_id|>\n\n", false);
  return out.segments;
}

namespace {

// ChatML with a default system turn, as Qwen1.5-Chat and Qwen2-Instruct ship it. Qwen1.5 closes the
// last message with `<|im_end|>` only when a generation prompt follows (so SFT text ends without it)
// and opens the prompt only after a non-assistant turn; Qwen2 always closes and always opens.
std::vector<ChatSegment> render_chatml(const ordered_json& messages, const ChatOptions& options,
                                       const std::string& default_system, bool qwen15, const char* family) {
  Output out;
  const size_t n = messages.size();
  for (size_t i = 0; i < n; ++i) {
    const std::string role = role_of(messages[i], i, {}, family);
    if (i == 0 && role != "system") out.add("<|im_start|>system\n" + default_system + "<|im_end|>\n", false);
    const bool assistant = role == "assistant", last = i + 1 == n;
    out.add("<|im_start|>" + role + "\n", false);
    out.add(text_of(messages[i], "content", i), assistant);
    if (!qwen15 || (last && options.add_generation_prompt) || !last) {
      out.add("<|im_end|>", assistant);
      out.add("\n", false);
    }
  }
  const bool after_assistant = n > 0 && messages[n - 1].value("role", "") == "assistant";
  if (options.add_generation_prompt && (!qwen15 || (n > 0 && !after_assistant))) out.add("<|im_start|>assistant\n", false);
  return out.segments;
}

}  // namespace

std::vector<ChatSegment> render_qwen15(const ordered_json& messages, const ChatOptions& options) {
  return render_chatml(messages, options, "You are a helpful assistant", true, "the Qwen1.5 template");
}

std::vector<ChatSegment> render_qwen2(const ordered_json& messages, const ChatOptions& options) {
  return render_chatml(messages, options, "You are a helpful assistant.", false, "the Qwen2 template");
}

// Qwen3: thinking blocks on the turns after the last user query, reasoning from reasoning_content or
// an inline <think>...</think>, tools in the system turn, tool results folded into user turns, and
// `enable_thinking=false` closing an empty think block in the generation prompt.
std::vector<ChatSegment> render_qwen3(const ordered_json& messages, const ChatOptions& options) {
  Output out;
  const size_t n = messages.size();
  const std::vector<std::string> roles = {"system", "user", "assistant", "tool"};
  const auto role = [&](size_t i) { return role_of(messages[i], i, roles, "the Qwen3 template"); };
  const auto content_of = [&](size_t i) {
    const ordered_json& msg = messages[i];
    return msg.contains("content") && msg["content"].is_string() ? msg["content"].get<std::string>() : std::string();
  };
  const bool first_is_system = n > 0 && role(0) == "system";
  if (options.tools.is_array() && !options.tools.empty()) {
    std::string text = "<|im_start|>system\n";
    if (first_is_system) text += content_of(0) + "\n\n";
    text += "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
            "You are provided with function signatures within <tools></tools> XML tags:\n<tools>";
    for (const auto& tool : options.tools) text += "\n" + python_json(tool);
    text += "\n</tools>\n\nFor each function call, return a json object with function name and arguments within "
            "<tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": "
            "<args-json-object>}\n</tool_call><|im_end|>\n";
    out.add(text, false);
  } else if (first_is_system) {
    out.add("<|im_start|>system\n" + content_of(0) + "<|im_end|>\n", false);
  }
  // The last user query (not a wrapped tool response), searched from the end.
  size_t last_query = n == 0 ? 0 : n - 1;
  for (size_t k = n; k-- > 0;) {
    const ordered_json& msg = messages[k];
    if (role(k) == "user" && msg.contains("content") && msg["content"].is_string()) {
      const std::string c = msg["content"].get<std::string>();
      if (!(c.starts_with("<tool_response>") && c.ends_with("</tool_response>"))) {
        last_query = k;
        break;
      }
    }
  }
  for (size_t i = 0; i < n; ++i) {
    const ordered_json& msg = messages[i];
    const std::string r = role(i);
    std::string content = content_of(i);
    const bool last = i + 1 == n;
    if (r == "user" || (r == "system" && i > 0)) {
      out.add("<|im_start|>" + r + "\n" + content + "<|im_end|>\n", false);
    } else if (r == "assistant") {
      std::string reasoning;
      if (msg.contains("reasoning_content") && msg["reasoning_content"].is_string()) {
        reasoning = msg["reasoning_content"].get<std::string>();
      } else if (const size_t close = content.find("</think>"); close != std::string::npos) {
        std::string before = strip_chars(content.substr(0, close), "\n", false, true);
        if (const size_t open = before.rfind("<think>"); open != std::string::npos) before = before.substr(open + 7);
        reasoning = strip_chars(before, "\n", true, false);
        content = strip_chars(content.substr(content.rfind("</think>") + 8), "\n", true, false);
      }
      out.add("<|im_start|>assistant\n", false);
      if (i > last_query && (last || !reasoning.empty())) {
        const std::string inner = strip_chars(reasoning, "\n");
        out.add("<think>\n" + inner + "\n</think>\n\n", !inner.empty());
        out.add(strip_chars(content, "\n", true, false), true);
      } else {
        out.add(content, true);
      }
      if (truthy(msg, "tool_calls")) {
        const ordered_json& calls = msg["tool_calls"];
        for (size_t c = 0; c < calls.size(); ++c) {
          if ((c == 0 && !content.empty()) || c > 0) out.add("\n", true);
          ordered_json call = calls[c];
          if (call.contains("function") && !call["function"].is_null()) call = call["function"];
          const ordered_json arguments = call.value("arguments", ordered_json());
          out.add("<tool_call>\n{\"name\": \"" + call.value("name", "") + "\", \"arguments\": " +
                      (arguments.is_string() ? arguments.get<std::string>() : python_json(arguments)) + "}\n</tool_call>",
                  true);
        }
      }
      out.add("<|im_end|>", true);
      out.add("\n", false);
    } else if (r == "tool") {
      if (i == 0 || messages[i - 1].value("role", "") != "tool") out.add("<|im_start|>user", false);
      out.add("\n<tool_response>\n" + content + "\n</tool_response>", false);
      if (last || messages[i + 1].value("role", "") != "tool") out.add("<|im_end|>\n", false);
    }
  }
  if (options.add_generation_prompt) {
    out.add("<|im_start|>assistant\n", false);
    if (options.enable_thinking == false) out.add("<think>\n\n</think>\n\n", false);
  }
  return out.segments;
}

// Gemma and Gemma-2 IT: BOS, `<start_of_turn>user|model\n` + the content trimmed + `<end_of_turn>\n`,
// turns alternating from the user; the template refuses a system turn, and so does lorakit.
std::vector<ChatSegment> render_gemma(const ordered_json& messages, const ChatOptions& options) {
  Output out;
  out.add(options.bos_token, false);
  for (size_t i = 0; i < messages.size(); ++i) {
    const std::string role = role_of(messages[i], i, {}, "the Gemma template");
    if (i == 0 && role == "system")
      fail("chat message 0: System role not supported (the Gemma template); hint: put the instructions in the "
           "first user turn");
    if ((role == "user") != (i % 2 == 0))
      fail("chat message {}: Conversation roles must alternate user/assistant/user/assistant/... (the Gemma template)", i);
    const bool assistant = role == "assistant";
    out.add("<start_of_turn>" + std::string(assistant ? "model" : role) + "\n", false);
    out.add(python_strip(text_of(messages[i], "content", i)) + "<end_of_turn>", assistant);
    out.add("\n", false);
  }
  if (options.add_generation_prompt) out.add("<start_of_turn>model\n", false);
  return out.segments;
}

// EXAONE 3.0 / 3.5 Instruct: `[|role|]content`, a newline after user turns and `[|endofturn|]\n`
// after the others, an empty system turn first when there is none.
std::vector<ChatSegment> render_exaone3(const ordered_json& messages, const ChatOptions& options) {
  Output out;
  for (size_t i = 0; i < messages.size(); ++i) {
    const std::string role = role_of(messages[i], i, {}, "the EXAONE 3.5 template");
    if (i == 0 && role != "system") out.add("[|system|][|endofturn|]\n", false);
    const bool assistant = role == "assistant";
    out.add("[|" + role + "|]", false);
    out.add(text_of(messages[i], "content", i), assistant);
    if (role == "user") {
      out.add("\n", false);
    } else {
      out.add("[|endofturn|]", assistant);
      out.add("\n", false);
    }
  }
  if (options.add_generation_prompt) out.add("[|assistant|]", false);
  return out.segments;
}

}  // namespace lorakit::tokenizers::chat
