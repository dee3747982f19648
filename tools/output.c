/* Output of the tool: a small JSON writer, safe printing of text that came
 * from another process, and the formats of durations and sizes. */
#include <stdio.h>
#include <string.h>

#include "tool.h"

/* The length of the valid UTF-8 sequence at the start of the len bytes at
 * text (1 to 4), or 0 if they do not start with one. Overlong forms,
 * surrogates and code points above U+10FFFF are invalid. *code_point gets
 * the decoded value. */
static size_t utf8_sequence(const unsigned char *text, size_t len,
                            uint32_t *code_point) {
  uint32_t value, min;
  size_t need, i;
  unsigned char lead = text[0];

  if (lead < 0x80) {
    *code_point = lead;
    return 1;
  }
  if (lead >= 0xC2 && lead <= 0xDF) {
    need = 2;
    value = lead & 0x1Fu;
    min = 0x80;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    need = 3;
    value = lead & 0x0Fu;
    min = 0x800;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    need = 4;
    value = lead & 0x07u;
    min = 0x10000;
  } else {
    return 0;
  }
  if (len < need)
    return 0;
  for (i = 1; i < need; i++) {
    if ((text[i] & 0xC0u) != 0x80u)
      return 0;
    value = (value << 6) | (text[i] & 0x3Fu);
  }
  if (value < min || value > 0x10FFFFu ||
      (value >= 0xD800u && value <= 0xDFFFu))
    return 0;
  *code_point = value;
  return need;
}

/* ---- JSON --------------------------------------------------------------- */

void tool_json_init(tool_json *json) {
  json->depth = 0;
  json->has_items[0] = 0;
  json->after_key = 0;
}

/* Writes the comma a value or key needs before it, and marks its level as
 * having items. */
static void separate(tool_json *json) {
  if (json->after_key) {
    json->after_key = 0;
    return;
  }
  if (json->has_items[json->depth])
    putchar(',');
  json->has_items[json->depth] = 1;
}

static void open_level(tool_json *json, char bracket) {
  separate(json);
  putchar(bracket);
  /* Deeper nesting than the tool ever writes would be a bug; stay valid
   * anyway by sharing the last level's state. */
  if (json->depth + 1 < TOOL_JSON_MAX_DEPTH)
    json->depth++;
  json->has_items[json->depth] = 0;
}

static void close_level(tool_json *json, char bracket) {
  putchar(bracket);
  if (json->depth > 0)
    json->depth--;
}

void tool_json_object_begin(tool_json *json) { open_level(json, '{'); }
void tool_json_object_end(tool_json *json) { close_level(json, '}'); }
void tool_json_array_begin(tool_json *json) { open_level(json, '['); }
void tool_json_array_end(tool_json *json) { close_level(json, ']'); }

/* Writes a quoted, escaped JSON string. */
static void put_json_string(const char *text, size_t len) {
  const unsigned char *bytes = (const unsigned char *)text;
  size_t i = 0;
  putchar('"');
  while (i < len) {
    uint32_t code_point;
    size_t step = utf8_sequence(bytes + i, len - i, &code_point);
    if (step == 0) {
      fputs("\\ufffd", stdout); /* not UTF-8: say so, never pass it on */
      i++;
      continue;
    }
    if (step > 1) {
      fwrite(bytes + i, 1, step, stdout);
    } else {
      switch (code_point) {
      case '"':
        fputs("\\\"", stdout);
        break;
      case '\\':
        fputs("\\\\", stdout);
        break;
      case '\n':
        fputs("\\n", stdout);
        break;
      case '\r':
        fputs("\\r", stdout);
        break;
      case '\t':
        fputs("\\t", stdout);
        break;
      default:
        if (code_point < 0x20 || code_point == 0x7F)
          printf("\\u%04x", (unsigned)code_point);
        else
          putchar((int)code_point);
      }
    }
    i += step;
  }
  putchar('"');
}

void tool_json_key(tool_json *json, const char *key) {
  separate(json);
  put_json_string(key, strlen(key));
  putchar(':');
  json->after_key = 1;
}

void tool_json_string(tool_json *json, const char *text, size_t len) {
  separate(json);
  put_json_string(text, len);
}

void tool_json_cstring(tool_json *json, const char *text) {
  tool_json_string(json, text, strlen(text));
}

void tool_json_uint(tool_json *json, uint64_t value) {
  separate(json);
  printf("%llu", (unsigned long long)value);
}

void tool_json_int(tool_json *json, int64_t value) {
  separate(json);
  printf("%lld", (long long)value);
}

void tool_json_bool(tool_json *json, int value) {
  separate(json);
  fputs(value ? "true" : "false", stdout);
}

void tool_json_finish(tool_json *json) {
  (void)json;
  putchar('\n');
  fflush(stdout);
}

/* ---- Text -------------------------------------------------------------- */

void tool_print_text(const char *text, size_t len) {
  const unsigned char *bytes = (const unsigned char *)text;
  size_t i = 0;
  while (i < len) {
    uint32_t code_point;
    size_t step = utf8_sequence(bytes + i, len - i, &code_point);
    /* C0 and C1 controls could move the cursor or start an escape
     * sequence: show them, and any byte that is not UTF-8, as \xNN. */
    if (step == 0 || code_point < 0x20 ||
        (code_point >= 0x7F && code_point <= 0x9F)) {
      size_t shown = step == 0 ? 1 : step, k;
      for (k = 0; k < shown; k++)
        printf("\\x%02x", bytes[i + k]);
      i += shown;
      continue;
    }
    fwrite(bytes + i, 1, step, stdout);
    i += step;
  }
}

/* ---- Formats ----------------------------------------------------------- */

void tool_format_duration(char *out, size_t cap, uint64_t ns) {
  if (ns < 1000u)
    snprintf(out, cap, "%llu ns", (unsigned long long)ns);
  else if (ns < 1000000u)
    snprintf(out, cap, "%.1f us", (double)ns / 1e3);
  else if (ns < 1000000000u)
    snprintf(out, cap, "%.3f ms", (double)ns / 1e6);
  else
    snprintf(out, cap, "%.3f s", (double)ns / 1e9);
}

void tool_format_uptime(char *out, size_t cap, uint64_t ms) {
  uint64_t seconds = ms / 1000u;
  unsigned s = (unsigned)(seconds % 60u), m = (unsigned)(seconds / 60u % 60u),
           h = (unsigned)(seconds / 3600u % 24u);
  unsigned long long days = (unsigned long long)(seconds / 86400u);
  if (ms < 60000u)
    snprintf(out, cap, "%.3f s", (double)ms / 1e3);
  else if (days > 0)
    snprintf(out, cap, "%llud %02uh %02um %02us", days, h, m, s);
  else if (h > 0)
    snprintf(out, cap, "%uh %02um %02us", h, m, s);
  else
    snprintf(out, cap, "%um %02us", m, s);
}

void tool_format_bytes(char *out, size_t cap, uint64_t bytes) {
  static const char *const units[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
  double scaled = (double)bytes;
  size_t unit = 0;
  if (bytes < 1024u) {
    snprintf(out, cap, "%llu bytes", (unsigned long long)bytes);
    return;
  }
  scaled /= 1024.0;
  while (scaled >= 1024.0 && unit + 1 < sizeof(units) / sizeof(units[0])) {
    scaled /= 1024.0;
    unit++;
  }
  snprintf(out, cap, "%llu bytes (%.1f %s)", (unsigned long long)bytes, scaled,
           units[unit]);
}
