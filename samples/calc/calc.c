/* Arithmetic with overflow checks, and the expression evaluator. */
#include "calc.h"

#include <stdio.h>

int calc_apply(int method, int64_t a, int64_t b, int64_t *result, char *msg,
               size_t msg_cap) {
  switch (method) {
  case CALC_ADD:
    if (__builtin_add_overflow(a, b, result))
      goto overflow;
    return 0;
  case CALC_SUB:
    if (__builtin_sub_overflow(a, b, result))
      goto overflow;
    return 0;
  case CALC_MUL:
    if (__builtin_mul_overflow(a, b, result))
      goto overflow;
    return 0;
  case CALC_DIV:
  case CALC_MOD:
    if (b == 0) {
      snprintf(msg, msg_cap, "division by zero");
      return CALC_ERR_DIV_ZERO;
    }
    if (a == INT64_MIN && b == -1)
      goto overflow;
    *result = method == CALC_DIV ? a / b : a % b;
    return 0;
  default:
    snprintf(msg, msg_cap, "unknown operation");
    return CALC_ERR_BAD_REQUEST;
  }
overflow:
  snprintf(msg, msg_cap, "integer overflow");
  return CALC_ERR_OVERFLOW;
}

/* Recursive descent over:
 *   expr   := term (('+' | '-') term)*
 *   term   := unary (('*' | '/' | '%') unary)*
 *   unary  := '-' unary | '+' unary | primary
 *   primary:= NUMBER | '(' expr ')'
 */
typedef struct parser {
  const char *text;
  size_t len;
  size_t pos;
  int depth;
  int err;
  char *msg;
  size_t msg_cap;
} parser;

#define CALC_MAX_DEPTH 200

static void skip_space(parser *p) {
  while (p->pos < p->len && (p->text[p->pos] == ' ' || p->text[p->pos] == '\t'))
    p->pos++;
}

static int fail(parser *p, int err, const char *what) {
  if (p->err == 0) {
    p->err = err;
    snprintf(p->msg, p->msg_cap, "%s at position %zu", what, p->pos + 1);
  }
  return p->err;
}

static int peek(parser *p) {
  skip_space(p);
  return p->pos < p->len ? (unsigned char)p->text[p->pos] : -1;
}

static int64_t parse_expr(parser *p);

static int64_t parse_primary(parser *p) {
  int c = peek(p);
  if (c == '(') {
    int64_t value;
    p->pos++;
    value = parse_expr(p);
    if (p->err)
      return 0;
    if (peek(p) != ')') {
      fail(p, CALC_ERR_SYNTAX, "expected ')'");
      return 0;
    }
    p->pos++;
    return value;
  }
  if (c >= '0' && c <= '9') {
    int64_t value = 0;
    while (p->pos < p->len && p->text[p->pos] >= '0' && p->text[p->pos] <= '9') {
      int digit = p->text[p->pos] - '0';
      if (__builtin_mul_overflow(value, 10, &value) ||
          __builtin_add_overflow(value, digit, &value)) {
        fail(p, CALC_ERR_OVERFLOW, "number too large");
        return 0;
      }
      p->pos++;
    }
    return value;
  }
  fail(p, CALC_ERR_SYNTAX, c < 0 ? "unexpected end" : "unexpected character");
  return 0;
}

static int64_t parse_unary(parser *p) {
  int c = peek(p);
  int64_t value;
  if (c != '-' && c != '+')
    return parse_primary(p);
  if (++p->depth > CALC_MAX_DEPTH) {
    fail(p, CALC_ERR_SYNTAX, "nested too deeply");
    return 0;
  }
  p->pos++;
  value = parse_unary(p);
  p->depth--;
  if (p->err)
    return 0;
  if (c == '-') {
    if (value == INT64_MIN) {
      fail(p, CALC_ERR_OVERFLOW, "integer overflow");
      return 0;
    }
    value = -value;
  }
  return value;
}

static int64_t parse_term(parser *p) {
  int64_t value = parse_unary(p);
  for (;;) {
    int c = peek(p), method, rc;
    size_t at = p->pos;
    int64_t rhs, result = 0;
    char why[64];
    if (p->err || (c != '*' && c != '/' && c != '%'))
      return value;
    method = c == '*' ? CALC_MUL : c == '/' ? CALC_DIV : CALC_MOD;
    p->pos++;
    rhs = parse_unary(p);
    if (p->err)
      return 0;
    rc = calc_apply(method, value, rhs, &result, why, sizeof(why));
    if (rc != 0) {
      p->pos = at;
      fail(p, rc, why);
      return 0;
    }
    value = result;
  }
}

static int64_t parse_expr(parser *p) {
  int64_t value;
  if (++p->depth > CALC_MAX_DEPTH) {
    fail(p, CALC_ERR_SYNTAX, "nested too deeply");
    return 0;
  }
  value = parse_term(p);
  for (;;) {
    int c = peek(p), rc;
    size_t at = p->pos;
    int64_t rhs, result = 0;
    char why[64];
    if (p->err || (c != '+' && c != '-'))
      break;
    p->pos++;
    rhs = parse_term(p);
    if (p->err)
      break;
    rc = calc_apply(c == '+' ? CALC_ADD : CALC_SUB, value, rhs, &result, why,
                    sizeof(why));
    if (rc != 0) {
      p->pos = at;
      fail(p, rc, why);
      break;
    }
    value = result;
  }
  p->depth--;
  return value;
}

int calc_eval(const char *text, size_t len, int64_t *result, char *msg,
              size_t msg_cap) {
  parser p = {text, len, 0, 0, 0, msg, msg_cap};
  int64_t value = parse_expr(&p);
  if (p.err == 0 && peek(&p) != -1)
    fail(&p, CALC_ERR_SYNTAX, "unexpected character");
  if (p.err != 0)
    return p.err;
  *result = value;
  return 0;
}
