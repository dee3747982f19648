/* The calculator service: method ids, wire format and the evaluator. */
#ifndef CALC_H
#define CALC_H

#include <stddef.h>
#include <stdint.h>

#define CALC_DEFAULT_NAME "calc"

/* Methods, and their bodies in the typed format of shmrpc_payload.h
 * (little-endian integers; a string is a u32 length and its bytes):
 *
 *   add, sub, mul, div, mod   request: i64 a, i64 b      answer: i64
 *   eval                      request: str expression    answer: i64
 *   sleep                     request: i64 milliseconds  answer: i64 (the
 *                             same, once it has slept)
 *
 * A request with missing or extra bytes fails with CALC_ERR_BAD_REQUEST. */
enum calc_method {
  CALC_ADD = 1,
  CALC_SUB = 2,
  CALC_MUL = 3,
  CALC_DIV = 4,
  CALC_MOD = 5,
  CALC_EVAL = 6,
  CALC_SLEEP = 7
};

/* Application error codes. */
enum calc_error {
  CALC_ERR_BAD_REQUEST = 1,
  CALC_ERR_OVERFLOW = 2,
  CALC_ERR_DIV_ZERO = 3,
  CALC_ERR_SYNTAX = 4
};

/* Applies a binary operation. Returns 0 and sets *result, or a calc_error
 * with a message in msg. */
int calc_apply(int method, int64_t a, int64_t b, int64_t *result,
               char *msg, size_t msg_cap);

/* Evaluates integers with + - * / %, parentheses and unary minus. Returns 0
 * and sets *result, or a calc_error with a message naming the position. */
int calc_eval(const char *text, size_t len, int64_t *result, char *msg,
              size_t msg_cap);

#endif
