/*
 * Tests of the typed payload helpers (include/shmrpc_payload.h): the byte
 * layout against literal arrays, round trips of extreme values, every writer
 * at exact fit and one byte short, every reader on every truncation, hostile
 * length prefixes, sticky errors, and argument checks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <float.h>
#include <math.h>
#include <string.h>

#include "shmrpc_payload.h"

/* Fill byte for buffers, so that a write where none belongs shows up. */
#define GUARD 0xA5u

/* Fails the test naming the table case, for checks inside loops. */
#define CHECK(c, cond)                                                         \
  do {                                                                         \
    if (!(cond))                                                               \
      fail_msg("case %s: %s", (c)->name, #cond);                               \
  } while (0)

static uint64_t bits_of(double value) {
  uint64_t bits;
  memcpy(&bits, &value, sizeof bits);
  return bits;
}

static double double_of(uint64_t bits) {
  double value;
  memcpy(&value, &bits, sizeof value);
  return value;
}

/* ---- One table of fields: how to write one, how to read it back, and its
 * exact bytes on the wire. ------------------------------------------------ */

typedef struct field_case {
  const char *name;
  /* Writes the case's value. */
  int (*put)(shmrpc_writer *w);
  /* Reads a value; if it returns 0 the value must be the case's value,
   * otherwise the outputs must hold the zero value. Returns 1 if they do. */
  int (*get)(shmrpc_reader *r, int *err);
  size_t size;
  unsigned char bytes[16];
} field_case;

static int put_u8(shmrpc_writer *w) { return shmrpc_put_u8(w, 0xAB); }
static int get_u8(shmrpc_reader *r, int *err) {
  uint8_t v = 7;
  *err = shmrpc_get_u8(r, &v);
  return *err == 0 ? v == 0xAB : v == 0;
}

static int put_u16(shmrpc_writer *w) { return shmrpc_put_u16(w, 0x1234); }
static int get_u16(shmrpc_reader *r, int *err) {
  uint16_t v = 7;
  *err = shmrpc_get_u16(r, &v);
  return *err == 0 ? v == 0x1234 : v == 0;
}

static int put_u32(shmrpc_writer *w) { return shmrpc_put_u32(w, 0x89ABCDEFu); }
static int get_u32(shmrpc_reader *r, int *err) {
  uint32_t v = 7;
  *err = shmrpc_get_u32(r, &v);
  return *err == 0 ? v == 0x89ABCDEFu : v == 0;
}

static int put_u64(shmrpc_writer *w) {
  return shmrpc_put_u64(w, 0x0123456789ABCDEFu);
}
static int get_u64(shmrpc_reader *r, int *err) {
  uint64_t v = 7;
  *err = shmrpc_get_u64(r, &v);
  return *err == 0 ? v == 0x0123456789ABCDEFu : v == 0;
}

static int put_i32(shmrpc_writer *w) { return shmrpc_put_i32(w, -2); }
static int get_i32(shmrpc_reader *r, int *err) {
  int32_t v = 7;
  *err = shmrpc_get_i32(r, &v);
  return *err == 0 ? v == -2 : v == 0;
}

static int put_i64(shmrpc_writer *w) { return shmrpc_put_i64(w, INT64_MIN); }
static int get_i64(shmrpc_reader *r, int *err) {
  int64_t v = 7;
  *err = shmrpc_get_i64(r, &v);
  return *err == 0 ? v == INT64_MIN : v == 0;
}

static int put_f64(shmrpc_writer *w) { return shmrpc_put_f64(w, -2.5); }
static int get_f64(shmrpc_reader *r, int *err) {
  double v = 7.0;
  *err = shmrpc_get_f64(r, &v);
  return *err == 0 ? bits_of(v) == bits_of(-2.5) : bits_of(v) == bits_of(0.0);
}

static int put_bytes(shmrpc_writer *w) {
  return shmrpc_put_bytes(w, "\x01\x00\xFF", 3);
}
static int get_bytes(shmrpc_reader *r, int *err) {
  const void *data = NULL;
  size_t len = 7;
  *err = shmrpc_get_bytes(r, &data, &len);
  if (data == NULL)
    return 0;
  return *err == 0 ? len == 3 && memcmp(data, "\x01\x00\xFF", 3) == 0
                   : len == 0;
}

static int put_empty_bytes(shmrpc_writer *w) {
  return shmrpc_put_bytes(w, NULL, 0);
}
static int get_empty_bytes(shmrpc_reader *r, int *err) {
  const void *data = NULL;
  size_t len = 7;
  *err = shmrpc_get_bytes(r, &data, &len);
  return data != NULL && len == 0;
}

static int put_str(shmrpc_writer *w) { return shmrpc_put_str(w, "hey"); }
static int get_str(shmrpc_reader *r, int *err) {
  const char *str = NULL;
  size_t len = 7;
  *err = shmrpc_get_str(r, &str, &len);
  if (str == NULL)
    return 0;
  return *err == 0 ? len == 3 && memcmp(str, "hey", 3) == 0
                   : len == 0 && str[0] == '\0';
}

static int get_str_copy(shmrpc_reader *r, int *err) {
  char dst[8];
  size_t len = 7;
  memset(dst, 'x', sizeof dst);
  *err = shmrpc_get_str_copy(r, dst, sizeof dst, &len);
  return *err == 0 ? len == 3 && strcmp(dst, "hey") == 0
                   : len == 0 && dst[0] == '\0';
}

static int put_empty_str(shmrpc_writer *w) { return shmrpc_put_str(w, ""); }
static int get_empty_str(shmrpc_reader *r, int *err) {
  const char *str = NULL;
  size_t len = 7;
  *err = shmrpc_get_str(r, &str, &len);
  return str != NULL && len == 0;
}

static const field_case field_cases[] = {
    {"u8", put_u8, get_u8, 1, {0xAB}},
    {"u16", put_u16, get_u16, 2, {0x34, 0x12}},
    {"u32", put_u32, get_u32, 4, {0xEF, 0xCD, 0xAB, 0x89}},
    {"u64",
     put_u64,
     get_u64,
     8,
     {0xEF, 0xCD, 0xAB, 0x89, 0x67, 0x45, 0x23, 0x01}},
    {"i32", put_i32, get_i32, 4, {0xFE, 0xFF, 0xFF, 0xFF}},
    {"i64", put_i64, get_i64, 8, {0, 0, 0, 0, 0, 0, 0, 0x80}},
    /* -2.5 is sign 1, exponent 0x400, mantissa 0x4000000000000. */
    {"f64", put_f64, get_f64, 8, {0, 0, 0, 0, 0, 0, 0x04, 0xC0}},
    {"bytes", put_bytes, get_bytes, 7, {3, 0, 0, 0, 0x01, 0x00, 0xFF}},
    {"empty bytes", put_empty_bytes, get_empty_bytes, 4, {0, 0, 0, 0}},
    {"str", put_str, get_str, 7, {3, 0, 0, 0, 'h', 'e', 'y'}},
    {"str copy", put_str, get_str_copy, 7, {3, 0, 0, 0, 'h', 'e', 'y'}},
    {"empty str", put_empty_str, get_empty_str, 4, {0, 0, 0, 0}},
};

#define FIELD_CASES (sizeof field_cases / sizeof field_cases[0])

static int all_guard(const unsigned char *at, size_t len) {
  for (size_t i = 0; i < len; i++)
    if (at[i] != GUARD)
      return 0;
  return 1;
}

/* Every writer into a buffer of exactly its size writes exactly the literal
 * bytes and nothing past them. */
static void test_put_exact_fit(void **state) {
  (void)state;
  for (size_t i = 0; i < FIELD_CASES; i++) {
    const field_case *c = &field_cases[i];
    unsigned char buffer[32];
    shmrpc_writer w;
    memset(buffer, GUARD, sizeof buffer);
    shmrpc_writer_init(&w, buffer, c->size);
    CHECK(c, c->put(&w) == 0);
    CHECK(c, w.err == 0);
    CHECK(c, w.len == c->size);
    CHECK(c, memcmp(buffer, c->bytes, c->size) == 0);
    CHECK(c, all_guard(buffer + c->size, sizeof buffer - c->size));
  }
}

/* Every writer one byte short fails with SHMRPC_ETOOBIG, writes nothing and
 * records the error; also after an earlier field, and with no buffer. */
static void test_put_one_byte_short(void **state) {
  (void)state;
  for (size_t i = 0; i < FIELD_CASES; i++) {
    const field_case *c = &field_cases[i];
    unsigned char buffer[32];
    shmrpc_writer w;

    memset(buffer, GUARD, sizeof buffer);
    shmrpc_writer_init(&w, buffer, c->size - 1);
    CHECK(c, c->put(&w) == SHMRPC_ETOOBIG);
    CHECK(c, w.err == SHMRPC_ETOOBIG);
    CHECK(c, w.len == 0);
    CHECK(c, all_guard(buffer, sizeof buffer));

    memset(buffer, GUARD, sizeof buffer);
    shmrpc_writer_init(&w, buffer, 1 + c->size - 1);
    CHECK(c, shmrpc_put_u8(&w, 0x11) == 0);
    CHECK(c, c->put(&w) == SHMRPC_ETOOBIG);
    CHECK(c, w.len == 1);
    CHECK(c, buffer[0] == 0x11);
    CHECK(c, all_guard(buffer + 1, sizeof buffer - 1));

    shmrpc_writer_init(&w, NULL, 0);
    CHECK(c, w.err == 0);
    CHECK(c, c->put(&w) == SHMRPC_ETOOBIG);
    CHECK(c, w.len == 0);
  }
}

/* Every reader takes its literal bytes back, to the last byte. */
static void test_get_exact(void **state) {
  (void)state;
  for (size_t i = 0; i < FIELD_CASES; i++) {
    const field_case *c = &field_cases[i];
    shmrpc_reader r;
    int err = -100;
    shmrpc_reader_init(&r, c->bytes, c->size);
    CHECK(c, c->get(&r, &err));
    CHECK(c, err == 0);
    CHECK(c, r.pos == c->size);
    CHECK(c, shmrpc_reader_done(&r, SHMRPC_TRAILING_ERROR) == 0);
  }
}

/* Every reader fails with SHMRPC_EPROTO on every truncation of its field,
 * consumes nothing, zeroes its outputs and records the error. */
static void test_get_past_end(void **state) {
  (void)state;
  for (size_t i = 0; i < FIELD_CASES; i++) {
    const field_case *c = &field_cases[i];
    for (size_t len = 0; len < c->size; len++) {
      shmrpc_reader r;
      int err = 0;
      shmrpc_reader_init(&r, c->bytes, len);
      CHECK(c, c->get(&r, &err));
      CHECK(c, err == SHMRPC_EPROTO);
      CHECK(c, r.err == SHMRPC_EPROTO);
      CHECK(c, r.pos == 0);
      CHECK(c, shmrpc_reader_done(&r, SHMRPC_TRAILING_OK) == SHMRPC_EPROTO);
    }
    /* And after an earlier field, so pos is not 0. */
    {
      unsigned char buffer[32];
      shmrpc_reader r;
      uint8_t first;
      int err = 0;
      buffer[0] = 0x11;
      memcpy(buffer + 1, c->bytes, c->size);
      shmrpc_reader_init(&r, buffer, c->size);
      CHECK(c, shmrpc_get_u8(&r, &first) == 0 && first == 0x11);
      CHECK(c, c->get(&r, &err));
      CHECK(c, err == SHMRPC_EPROTO);
      CHECK(c, r.pos == 1);
    }
  }
}

/* ---- Round trips of extreme values -------------------------------------- */

static void test_round_trip_integers(void **state) {
  static const uint8_t u8s[] = {0, 1, 0x7F, 0x80, UINT8_MAX};
  static const uint16_t u16s[] = {0, 1, 0x00FF, 0xFF00, 0x8000, UINT16_MAX};
  static const uint32_t u32s[] = {0, 1, 0x80000000u, 0x01020304u, UINT32_MAX};
  static const uint64_t u64s[] = {0, 1, 0x8000000000000000u,
                                  0x0102030405060708u, UINT64_MAX};
  static const int32_t i32s[] = {INT32_MIN, INT32_MIN + 1, -1, 0, 1, INT32_MAX};
  static const int64_t i64s[] = {INT64_MIN, INT64_MIN + 1, -1, 0, 1, INT64_MAX};
  unsigned char buffer[256];
  shmrpc_writer w;
  shmrpc_reader r;
  size_t i;
  (void)state;

  shmrpc_writer_init(&w, buffer, sizeof buffer);
  for (i = 0; i < sizeof u8s / sizeof u8s[0]; i++)
    shmrpc_put_u8(&w, u8s[i]);
  for (i = 0; i < sizeof u16s / sizeof u16s[0]; i++)
    shmrpc_put_u16(&w, u16s[i]);
  for (i = 0; i < sizeof u32s / sizeof u32s[0]; i++)
    shmrpc_put_u32(&w, u32s[i]);
  for (i = 0; i < sizeof u64s / sizeof u64s[0]; i++)
    shmrpc_put_u64(&w, u64s[i]);
  for (i = 0; i < sizeof i32s / sizeof i32s[0]; i++)
    shmrpc_put_i32(&w, i32s[i]);
  for (i = 0; i < sizeof i64s / sizeof i64s[0]; i++)
    shmrpc_put_i64(&w, i64s[i]);
  assert_int_equal(w.err, 0);
  assert_int_equal(w.len, 5 * 1 + 6 * 2 + 5 * 4 + 5 * 8 + 6 * 4 + 6 * 8);

  shmrpc_reader_init(&r, buffer, w.len);
  for (i = 0; i < sizeof u8s / sizeof u8s[0]; i++) {
    uint8_t v;
    assert_int_equal(shmrpc_get_u8(&r, &v), 0);
    assert_int_equal(v, u8s[i]);
  }
  for (i = 0; i < sizeof u16s / sizeof u16s[0]; i++) {
    uint16_t v;
    assert_int_equal(shmrpc_get_u16(&r, &v), 0);
    assert_int_equal(v, u16s[i]);
  }
  for (i = 0; i < sizeof u32s / sizeof u32s[0]; i++) {
    uint32_t v;
    assert_int_equal(shmrpc_get_u32(&r, &v), 0);
    assert_int_equal(v, u32s[i]);
  }
  for (i = 0; i < sizeof u64s / sizeof u64s[0]; i++) {
    uint64_t v;
    assert_int_equal(shmrpc_get_u64(&r, &v), 0);
    assert_true(v == u64s[i]);
  }
  for (i = 0; i < sizeof i32s / sizeof i32s[0]; i++) {
    int32_t v;
    assert_int_equal(shmrpc_get_i32(&r, &v), 0);
    assert_true(v == i32s[i]);
  }
  for (i = 0; i < sizeof i64s / sizeof i64s[0]; i++) {
    int64_t v;
    assert_int_equal(shmrpc_get_i64(&r, &v), 0);
    assert_true(v == i64s[i]);
  }
  assert_int_equal(shmrpc_reader_done(&r, SHMRPC_TRAILING_ERROR), 0);
}

/* The extremes of each integer type, byte for byte. */
static void test_integer_layout(void **state) {
  static const unsigned char expected[] = {
      0xFF,                                           /* u8 255 */
      0xFF, 0xFF,                                     /* u16 max */
      0xFF, 0xFF, 0xFF, 0xFF,                         /* u32 max */
      0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, /* u64 max */
      0x00, 0x00, 0x00, 0x80,                         /* i32 min */
      0xFF, 0xFF, 0xFF, 0x7F,                         /* i32 max */
      0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, /* i64 -1 */
      0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F, /* i64 max */
      0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, /* u64 0x0102... */
  };
  unsigned char buffer[sizeof expected];
  shmrpc_writer w;
  (void)state;
  shmrpc_writer_init(&w, buffer, sizeof buffer);
  assert_int_equal(shmrpc_put_u8(&w, UINT8_MAX), 0);
  assert_int_equal(shmrpc_put_u16(&w, UINT16_MAX), 0);
  assert_int_equal(shmrpc_put_u32(&w, UINT32_MAX), 0);
  assert_int_equal(shmrpc_put_u64(&w, UINT64_MAX), 0);
  assert_int_equal(shmrpc_put_i32(&w, INT32_MIN), 0);
  assert_int_equal(shmrpc_put_i32(&w, INT32_MAX), 0);
  assert_int_equal(shmrpc_put_i64(&w, -1), 0);
  assert_int_equal(shmrpc_put_i64(&w, INT64_MAX), 0);
  assert_int_equal(shmrpc_put_u64(&w, 0x0102030405060708u), 0);
  assert_int_equal(w.len, sizeof expected);
  assert_memory_equal(buffer, expected, sizeof expected);
}

/* Doubles travel as their bits: -0.0 keeps its sign, infinities stay
 * infinite, a NaN keeps its payload. */
static void test_round_trip_doubles(void **state) {
  static const uint64_t patterns[] = {
      0x0000000000000000u, /* +0.0 */
      0x8000000000000000u, /* -0.0 */
      0x7FF0000000000000u, /* +infinity */
      0xFFF0000000000000u, /* -infinity */
      0x7FF8000000000000u, /* the default quiet NaN */
      0x7FF8000000012345u, /* a quiet NaN with a payload */
      0xFFF800000000BEEFu, /* a negative quiet NaN with a payload */
      0x0000000000000001u, /* the smallest subnormal */
      0x7FEFFFFFFFFFFFFFu, /* DBL_MAX */
      0x3FF0000000000000u, /* 1.0 */
  };
  (void)state;
  for (size_t i = 0; i < sizeof patterns / sizeof patterns[0]; i++) {
    unsigned char buffer[8];
    shmrpc_writer w;
    shmrpc_reader r;
    double back = 1.0;
    shmrpc_writer_init(&w, buffer, sizeof buffer);
    assert_int_equal(shmrpc_put_f64(&w, double_of(patterns[i])), 0);
    for (size_t b = 0; b < 8; b++)
      assert_int_equal(buffer[b], (patterns[i] >> (8 * b)) & 0xFF);
    shmrpc_reader_init(&r, buffer, w.len);
    assert_int_equal(shmrpc_get_f64(&r, &back), 0);
    assert_true(bits_of(back) == patterns[i]);
  }
  /* The same through ordinary double values. */
  {
    static const double values[] = {-0.0,     INFINITY,    -INFINITY, DBL_MAX,
                                    -DBL_MIN, DBL_EPSILON, 0.1};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
      unsigned char buffer[8];
      shmrpc_writer w;
      shmrpc_reader r;
      double back = 1.0;
      shmrpc_writer_init(&w, buffer, sizeof buffer);
      assert_int_equal(shmrpc_put_f64(&w, values[i]), 0);
      shmrpc_reader_init(&r, buffer, w.len);
      assert_int_equal(shmrpc_get_f64(&r, &back), 0);
      assert_true(bits_of(back) == bits_of(values[i]));
    }
  }
  {
    unsigned char buffer[16];
    shmrpc_writer w;
    shmrpc_reader r;
    double zero = 1.0;
    double nan_back = 1.0;
    shmrpc_writer_init(&w, buffer, sizeof buffer);
    shmrpc_put_f64(&w, -0.0);
    shmrpc_put_f64(&w, NAN);
    shmrpc_reader_init(&r, buffer, w.len);
    shmrpc_get_f64(&r, &zero);
    shmrpc_get_f64(&r, &nan_back);
    assert_int_equal(shmrpc_reader_done(&r, SHMRPC_TRAILING_ERROR), 0);
    assert_true(zero == 0.0 && signbit(zero));
    assert_true(isnan(nan_back));
  }
}

/* Strings and bytes: contents, embedded NULs, and a string exactly filling
 * the copy buffer. */
static void test_round_trip_strings(void **state) {
  static const unsigned char blob[] = {0x00, 'a', 0x00, 0xFF};
  unsigned char buffer[64];
  shmrpc_writer w;
  shmrpc_reader r;
  const char *str;
  const void *data;
  size_t len;
  char copy[6];
  (void)state;

  shmrpc_writer_init(&w, buffer, sizeof buffer);
  shmrpc_put_str(&w, "hello");
  shmrpc_put_bytes(&w, blob, sizeof blob);
  shmrpc_put_str(&w, "abcde");
  shmrpc_put_str(&w, "");
  assert_int_equal(w.err, 0);
  assert_int_equal(w.len, 4 + 5 + 4 + 4 + 4 + 5 + 4);

  shmrpc_reader_init(&r, buffer, w.len);
  assert_int_equal(shmrpc_get_str(&r, &str, &len), 0);
  assert_int_equal(len, 5);
  assert_memory_equal(str, "hello", 5);
  assert_ptr_equal(str, (const char *)buffer + 4);
  assert_int_equal(shmrpc_get_bytes(&r, &data, &len), 0);
  assert_int_equal(len, sizeof blob);
  assert_memory_equal(data, blob, sizeof blob);
  /* "abcde" needs exactly 6 bytes with its NUL. */
  memset(copy, 'x', sizeof copy);
  assert_int_equal(shmrpc_get_str_copy(&r, copy, sizeof copy, &len), 0);
  assert_int_equal(len, 5);
  assert_string_equal(copy, "abcde");
  assert_int_equal(shmrpc_get_str_copy(&r, copy, sizeof copy, NULL), 0);
  assert_string_equal(copy, "");
  assert_int_equal(shmrpc_reader_done(&r, SHMRPC_TRAILING_ERROR), 0);
}

/* ---- Hostile input ------------------------------------------------------ */

/* A length prefix one larger than the bytes behind it. */
static void test_prefix_exceeds_remainder(void **state) {
  static const unsigned char wire[] = {0x2A, 4, 0, 0, 0, 'a', 'b', 'c'};
  shmrpc_reader r;
  uint8_t first;
  const char *str = NULL;
  size_t len = 9;
  char copy[16];
  (void)state;

  shmrpc_reader_init(&r, wire, sizeof wire);
  assert_int_equal(shmrpc_get_u8(&r, &first), 0);
  assert_int_equal(shmrpc_get_str(&r, &str, &len), SHMRPC_EPROTO);
  assert_non_null(str);
  assert_string_equal(str, "");
  assert_int_equal(len, 0);
  assert_int_equal(r.pos, 1);
  assert_int_equal(r.err, SHMRPC_EPROTO);

  shmrpc_reader_init(&r, wire + 1, sizeof wire - 1);
  strcpy(copy, "unchanged");
  assert_int_equal(shmrpc_get_str_copy(&r, copy, sizeof copy, &len),
                   SHMRPC_EPROTO);
  assert_string_equal(copy, "");
  assert_int_equal(len, 0);

  /* One byte fewer in the prefix and it is fine. */
  {
    unsigned char fixed[sizeof wire - 1];
    memcpy(fixed, wire + 1, sizeof fixed);
    fixed[0] = 3;
    shmrpc_reader_init(&r, fixed, sizeof fixed);
    assert_int_equal(shmrpc_get_str_copy(&r, copy, sizeof copy, &len), 0);
    assert_string_equal(copy, "abc");
  }
}

/* A prefix of 0xFFFFFFFF must not wrap any bounds arithmetic. */
static void test_hostile_prefix(void **state) {
  unsigned char wire[64];
  shmrpc_reader r;
  const void *data = NULL;
  size_t len = 9;
  char copy[8];
  (void)state;
  memset(wire, 'z', sizeof wire);
  wire[0] = wire[1] = wire[2] = wire[3] = 0xFF;

  shmrpc_reader_init(&r, wire, sizeof wire);
  assert_int_equal(shmrpc_get_bytes(&r, &data, &len), SHMRPC_EPROTO);
  assert_non_null(data);
  assert_int_equal(len, 0);
  assert_int_equal(r.pos, 0);

  shmrpc_reader_init(&r, wire, sizeof wire);
  assert_int_equal(shmrpc_get_str_copy(&r, copy, sizeof copy, &len),
                   SHMRPC_EPROTO);

  /* Also with the reader already deep into the buffer. */
  shmrpc_reader_init(&r, wire, sizeof wire);
  {
    uint64_t skip;
    wire[40] = wire[41] = wire[42] = wire[43] = 0xFF;
    for (int i = 0; i < 5; i++)
      assert_int_equal(shmrpc_get_u64(&r, &skip), 0);
    assert_int_equal(r.pos, 40);
    assert_int_equal(shmrpc_get_bytes(&r, &data, &len), SHMRPC_EPROTO);
    assert_int_equal(r.pos, 40);
  }
}

/* A copy buffer one byte too small: SHMRPC_ETOOBIG with the size needed,
 * nothing consumed, and the reader stopped. */
static void test_str_copy_too_small(void **state) {
  static const unsigned char wire[] = {5, 0, 0, 0, 'a', 'b', 'c', 'd', 'e'};
  shmrpc_reader r;
  char copy[5];
  size_t len = 0;
  uint8_t byte;
  (void)state;

  shmrpc_reader_init(&r, wire, sizeof wire);
  memset(copy, 'x', sizeof copy);
  assert_int_equal(shmrpc_get_str_copy(&r, copy, sizeof copy, &len),
                   SHMRPC_ETOOBIG);
  assert_int_equal(len, 5);
  assert_int_equal(copy[0], '\0');
  assert_int_equal(r.pos, 0);
  assert_int_equal(r.err, SHMRPC_ETOOBIG);
  assert_int_equal(shmrpc_get_u8(&r, &byte), SHMRPC_ETOOBIG);

  /* With no room at all, not even the NUL is written. */
  shmrpc_reader_init(&r, wire, sizeof wire);
  copy[0] = 'x';
  assert_int_equal(shmrpc_get_str_copy(&r, copy, 0, &len), SHMRPC_ETOOBIG);
  assert_int_equal(copy[0], 'x');
  assert_int_equal(len, 5);
}

/* ---- Sticky errors and the end of reading -------------------------------- */

static void test_writer_sticky(void **state) {
  unsigned char buffer[8];
  shmrpc_writer w;
  (void)state;
  memset(buffer, GUARD, sizeof buffer);
  shmrpc_writer_init(&w, buffer, sizeof buffer);
  assert_int_equal(shmrpc_put_u32(&w, 1), 0);
  assert_int_equal(shmrpc_put_u64(&w, 2), SHMRPC_ETOOBIG);
  /* These would fit, but the first failure stops the writer, so no field
   * lands where the failed one belonged. */
  assert_int_equal(shmrpc_put_u8(&w, 3), SHMRPC_ETOOBIG);
  assert_int_equal(shmrpc_put_u32(&w, 4), SHMRPC_ETOOBIG);
  assert_int_equal(shmrpc_put_str(&w, ""), SHMRPC_ETOOBIG);
  assert_int_equal(shmrpc_put_bytes(&w, NULL, 1), SHMRPC_ETOOBIG);
  assert_int_equal(w.err, SHMRPC_ETOOBIG);
  assert_int_equal(w.len, 4);
  assert_true(all_guard(buffer + 4, 4));
}

static void test_reader_sticky(void **state) {
  static const unsigned char wire[] = {1, 0, 2, 0, 0, 0, 0, 0, 0, 0};
  shmrpc_reader r;
  uint16_t a;
  uint64_t b = 9;
  uint8_t c = 9;
  const char *str = NULL;
  size_t len = 9;
  (void)state;
  shmrpc_reader_init(&r, wire, 9);
  assert_int_equal(shmrpc_get_u16(&r, &a), 0);
  assert_int_equal(a, 1);
  assert_int_equal(shmrpc_get_u64(&r, &b), SHMRPC_EPROTO);
  assert_true(b == 0);
  /* Would succeed, but the reader has stopped. */
  assert_int_equal(shmrpc_get_u8(&r, &c), SHMRPC_EPROTO);
  assert_int_equal(c, 0);
  assert_int_equal(shmrpc_get_str(&r, &str, &len), SHMRPC_EPROTO);
  assert_string_equal(str, "");
  assert_int_equal(len, 0);
  assert_int_equal(r.pos, 2);
  assert_int_equal(shmrpc_reader_done(&r, SHMRPC_TRAILING_OK), SHMRPC_EPROTO);
  assert_int_equal(shmrpc_reader_done(&r, SHMRPC_TRAILING_ERROR),
                   SHMRPC_EPROTO);
}

static void test_reader_done(void **state) {
  static const unsigned char wire[] = {7, 8};
  shmrpc_reader r;
  uint8_t byte;
  (void)state;
  shmrpc_reader_init(&r, wire, sizeof wire);
  assert_int_equal(shmrpc_get_u8(&r, &byte), 0);
  assert_int_equal(shmrpc_reader_done(&r, SHMRPC_TRAILING_ERROR),
                   SHMRPC_EPROTO);
  assert_int_equal(shmrpc_reader_done(&r, SHMRPC_TRAILING_OK), 0);
  /* Asking records nothing: the reader goes on. */
  assert_int_equal(r.err, 0);
  assert_int_equal(shmrpc_get_u8(&r, &byte), 0);
  assert_int_equal(byte, 8);
  assert_int_equal(shmrpc_reader_done(&r, SHMRPC_TRAILING_ERROR), 0);
  assert_int_equal(shmrpc_reader_done(&r, 2), SHMRPC_EINVAL);
  assert_int_equal(shmrpc_reader_done(NULL, SHMRPC_TRAILING_OK), SHMRPC_EINVAL);

  shmrpc_reader_init(&r, NULL, 0);
  assert_int_equal(shmrpc_reader_done(&r, SHMRPC_TRAILING_ERROR), 0);
  assert_int_equal(shmrpc_get_u8(&r, &byte), SHMRPC_EPROTO);
}

/* ---- Argument checks ---------------------------------------------------- */

static void test_invalid_arguments(void **state) {
  unsigned char buffer[16];
  shmrpc_writer w;
  shmrpc_reader r;
  uint32_t value = 9;
  const void *data;
  size_t len;
  (void)state;

  shmrpc_writer_init(NULL, buffer, sizeof buffer);
  shmrpc_reader_init(NULL, buffer, sizeof buffer);
  assert_int_equal(shmrpc_put_u8(NULL, 1), SHMRPC_EINVAL);
  assert_int_equal(shmrpc_put_f64(NULL, 1.0), SHMRPC_EINVAL);
  assert_int_equal(shmrpc_put_bytes(NULL, "a", 1), SHMRPC_EINVAL);
  assert_int_equal(shmrpc_put_str(NULL, "a"), SHMRPC_EINVAL);
  assert_int_equal(shmrpc_get_u32(NULL, &value), SHMRPC_EINVAL);
  assert_int_equal(value, 0);
  assert_int_equal(shmrpc_get_bytes(NULL, &data, &len), SHMRPC_EINVAL);
  assert_int_equal(shmrpc_get_str_copy(NULL, (char *)buffer, 4, NULL),
                   SHMRPC_EINVAL);

  /* A NULL buffer with a size claims memory that is not there. */
  shmrpc_writer_init(&w, NULL, 8);
  assert_int_equal(w.err, SHMRPC_EINVAL);
  assert_int_equal(shmrpc_put_u8(&w, 1), SHMRPC_EINVAL);
  shmrpc_reader_init(&r, NULL, 8);
  assert_int_equal(r.err, SHMRPC_EINVAL);
  assert_int_equal(shmrpc_get_u8(&r, (uint8_t *)buffer), SHMRPC_EINVAL);

  /* Bad field arguments are recorded like any other error. */
  shmrpc_writer_init(&w, buffer, sizeof buffer);
  assert_int_equal(shmrpc_put_bytes(&w, NULL, 1), SHMRPC_EINVAL);
  assert_int_equal(shmrpc_put_u8(&w, 1), SHMRPC_EINVAL);
  assert_int_equal(w.len, 0);
  shmrpc_writer_init(&w, buffer, sizeof buffer);
  assert_int_equal(shmrpc_put_str(&w, NULL), SHMRPC_EINVAL);
  assert_int_equal(w.err, SHMRPC_EINVAL);

  memset(buffer, 0, sizeof buffer);
  shmrpc_reader_init(&r, buffer, sizeof buffer);
  assert_int_equal(shmrpc_get_u32(&r, NULL), SHMRPC_EINVAL);
  assert_int_equal(r.err, SHMRPC_EINVAL);
  assert_int_equal(r.pos, 0);
  shmrpc_reader_init(&r, buffer, sizeof buffer);
  assert_int_equal(shmrpc_get_bytes(&r, NULL, &len), SHMRPC_EINVAL);
  assert_int_equal(len, 0);
  shmrpc_reader_init(&r, buffer, sizeof buffer);
  assert_int_equal(shmrpc_get_str(&r, NULL, &len), SHMRPC_EINVAL);
  shmrpc_reader_init(&r, buffer, sizeof buffer);
  assert_int_equal(shmrpc_get_str_copy(&r, NULL, 4, &len), SHMRPC_EINVAL);
  assert_int_equal(r.err, SHMRPC_EINVAL);
}

/* A length that does not fit the u32 prefix is refused before any bounds
 * check could be fooled by it. */
static void test_put_bytes_too_long(void **state) {
  unsigned char buffer[8];
  shmrpc_writer w;
  (void)state;
  shmrpc_writer_init(&w, buffer, sizeof buffer);
  /* The data pointer is never read: the length is refused first. */
  assert_int_equal(shmrpc_put_bytes(&w, buffer, SIZE_MAX), SHMRPC_ETOOBIG);
  assert_int_equal(w.len, 0);
  shmrpc_writer_init(&w, buffer, sizeof buffer);
  assert_int_equal(shmrpc_put_bytes(&w, buffer, SIZE_MAX - 3), SHMRPC_ETOOBIG);
  shmrpc_writer_init(&w, buffer, sizeof buffer);
  assert_int_equal(shmrpc_put_bytes(&w, buffer, (size_t)UINT32_MAX),
                   SHMRPC_ETOOBIG);
  assert_int_equal(w.len, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_put_exact_fit),
      cmocka_unit_test(test_put_one_byte_short),
      cmocka_unit_test(test_get_exact),
      cmocka_unit_test(test_get_past_end),
      cmocka_unit_test(test_round_trip_integers),
      cmocka_unit_test(test_integer_layout),
      cmocka_unit_test(test_round_trip_doubles),
      cmocka_unit_test(test_round_trip_strings),
      cmocka_unit_test(test_prefix_exceeds_remainder),
      cmocka_unit_test(test_hostile_prefix),
      cmocka_unit_test(test_str_copy_too_small),
      cmocka_unit_test(test_writer_sticky),
      cmocka_unit_test(test_reader_sticky),
      cmocka_unit_test(test_reader_done),
      cmocka_unit_test(test_invalid_arguments),
      cmocka_unit_test(test_put_bytes_too_long),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
