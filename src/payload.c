/*
 * Typed payload fields (include/shmrpc_payload.h).
 *
 * Every value is assembled and taken apart byte by byte with shifts, so the
 * code needs no aligned buffer and works the same on any host byte order.
 * Bounds are checked as `n > cap - len` with len <= cap kept as an
 * invariant, so no sum can overflow.
 */
#include "shmrpc_payload.h"

#include <stdint.h>
#include <string.h>

/* The wire format stores a double as its 8 bytes of binary64 bits, and
 * lengths up to UINT32_MAX must fit in a size_t. */
_Static_assert(sizeof(double) == sizeof(uint64_t),
               "double must be 64 bits (IEEE-754 binary64)");
_Static_assert(SIZE_MAX >= UINT32_MAX, "size_t must hold a u32 length");

/* Bytes of a length prefix. */
#define PREFIX_SIZE 4u

/* What an empty result points at, so that no output pointer is ever NULL and
 * no pointer arithmetic is ever done on NULL. */
static const unsigned char empty_bytes[1] = {0};

static void store_le(unsigned char *at, uint64_t value, size_t size) {
  for (size_t i = 0; i < size; i++)
    at[i] = (unsigned char)(value >> (8u * i));
}

static uint64_t load_le(const unsigned char *at, size_t size) {
  uint64_t value = 0;
  for (size_t i = 0; i < size; i++)
    value |= (uint64_t)at[i] << (8u * i);
  return value;
}

/* ---- Writer ------------------------------------------------------------ */

void shmrpc_writer_init(shmrpc_writer *w, void *data, size_t cap) {
  if (w == NULL)
    return;
  w->data = data;
  w->cap = cap;
  w->len = 0;
  w->err = 0;
  if (data == NULL) {
    /* With no buffer there is nothing to write into; a non-zero capacity
     * claims otherwise and is a caller bug. */
    w->cap = 0;
    if (cap != 0)
      w->err = SHMRPC_EINVAL;
  }
}

/* Records err as the writer's first error and returns the recorded one. */
static int writer_fail(shmrpc_writer *w, int err) {
  if (w->err == 0)
    w->err = err;
  return w->err;
}

/* Claims the next size bytes: on success *at points at them and they count
 * as written. On failure nothing changes but the recorded error. */
static int writer_claim(shmrpc_writer *w, size_t size, unsigned char **at) {
  if (w == NULL)
    return SHMRPC_EINVAL;
  if (w->err != 0)
    return w->err;
  /* Only a caller that changed the fields by hand gets here. */
  if (w->len > w->cap || (w->data == NULL && w->cap != 0))
    return writer_fail(w, SHMRPC_EINVAL);
  if (size > w->cap - w->len)
    return writer_fail(w, SHMRPC_ETOOBIG);
  *at = w->data + w->len;
  w->len += size;
  return 0;
}

static int put_le(shmrpc_writer *w, uint64_t value, size_t size) {
  unsigned char *at;
  int err = writer_claim(w, size, &at);
  if (err == 0)
    store_le(at, value, size);
  return err;
}

int shmrpc_put_u8(shmrpc_writer *w, uint8_t value) {
  return put_le(w, value, 1);
}

int shmrpc_put_u16(shmrpc_writer *w, uint16_t value) {
  return put_le(w, value, 2);
}

int shmrpc_put_u32(shmrpc_writer *w, uint32_t value) {
  return put_le(w, value, 4);
}

int shmrpc_put_u64(shmrpc_writer *w, uint64_t value) {
  return put_le(w, value, 8);
}

/* Converting a negative value to an unsigned type is defined as adding
 * 2^N, which is exactly its two's complement bit pattern. */
int shmrpc_put_i32(shmrpc_writer *w, int32_t value) {
  return put_le(w, (uint32_t)value, 4);
}

int shmrpc_put_i64(shmrpc_writer *w, int64_t value) {
  return put_le(w, (uint64_t)value, 8);
}

int shmrpc_put_f64(shmrpc_writer *w, double value) {
  uint64_t bits;
  memcpy(&bits, &value, sizeof bits);
  return put_le(w, bits, 8);
}

int shmrpc_put_bytes(shmrpc_writer *w, const void *data, size_t len) {
  unsigned char *at;
  int err;
  if (w == NULL)
    return SHMRPC_EINVAL;
  if (data == NULL && len != 0)
    return writer_fail(w, SHMRPC_EINVAL);
#if SIZE_MAX > UINT32_MAX
  if (len > UINT32_MAX)
    return writer_fail(w, SHMRPC_ETOOBIG);
#endif
  if (len > SIZE_MAX - PREFIX_SIZE)
    return writer_fail(w, SHMRPC_ETOOBIG);
  /* One claim for prefix and bytes, so a field never ends up half written. */
  err = writer_claim(w, PREFIX_SIZE + len, &at);
  if (err != 0)
    return err;
  store_le(at, len, PREFIX_SIZE);
  if (len != 0)
    memcpy(at + PREFIX_SIZE, data, len);
  return 0;
}

int shmrpc_put_str(shmrpc_writer *w, const char *str) {
  if (w == NULL)
    return SHMRPC_EINVAL;
  if (str == NULL)
    return writer_fail(w, SHMRPC_EINVAL);
  return shmrpc_put_bytes(w, str, strlen(str));
}

/* ---- Reader ------------------------------------------------------------ */

void shmrpc_reader_init(shmrpc_reader *r, const void *data, size_t len) {
  if (r == NULL)
    return;
  r->data = data;
  r->len = len;
  r->pos = 0;
  r->err = 0;
  if (data == NULL) {
    /* An empty buffer still gets a real address, so that an empty field
     * read from it points somewhere valid. */
    r->data = empty_bytes;
    r->len = 0;
    if (len != 0)
      r->err = SHMRPC_EINVAL;
  }
}

/* Records err as the reader's first error and returns the recorded one. */
static int reader_fail(shmrpc_reader *r, int err) {
  if (r->err == 0)
    r->err = err;
  return r->err;
}

/* Takes the next size bytes: on success *at points at them and they count
 * as consumed. On failure nothing changes but the recorded error. */
static int reader_take(shmrpc_reader *r, size_t size,
                       const unsigned char **at) {
  if (r == NULL)
    return SHMRPC_EINVAL;
  if (r->err != 0)
    return r->err;
  /* Only a caller that changed the fields by hand gets here. */
  if (r->data == NULL || r->pos > r->len)
    return reader_fail(r, SHMRPC_EINVAL);
  if (size > r->len - r->pos)
    return reader_fail(r, SHMRPC_EPROTO);
  *at = r->data + r->pos;
  r->pos += size;
  return 0;
}

/* Takes a little-endian value of size bytes into *value (0 on error). out is
 * the caller's output pointer, checked here only for NULL. */
static int get_le(shmrpc_reader *r, const void *out, uint64_t *value,
                  size_t size) {
  const unsigned char *at;
  int err;
  *value = 0;
  if (out == NULL)
    return r == NULL ? SHMRPC_EINVAL : reader_fail(r, SHMRPC_EINVAL);
  err = reader_take(r, size, &at);
  if (err == 0)
    *value = load_le(at, size);
  return err;
}

int shmrpc_get_u8(shmrpc_reader *r, uint8_t *out) {
  uint64_t value;
  int err = get_le(r, out, &value, 1);
  if (out != NULL)
    *out = (uint8_t)value;
  return err;
}

int shmrpc_get_u16(shmrpc_reader *r, uint16_t *out) {
  uint64_t value;
  int err = get_le(r, out, &value, 2);
  if (out != NULL)
    *out = (uint16_t)value;
  return err;
}

int shmrpc_get_u32(shmrpc_reader *r, uint32_t *out) {
  uint64_t value;
  int err = get_le(r, out, &value, 4);
  if (out != NULL)
    *out = (uint32_t)value;
  return err;
}

int shmrpc_get_u64(shmrpc_reader *r, uint64_t *out) {
  uint64_t value;
  int err = get_le(r, out, &value, 8);
  if (out != NULL)
    *out = value;
  return err;
}

/* Converting an unsigned value above the signed maximum to the signed type
 * is implementation-defined, so the two's complement pattern is decoded by
 * arithmetic instead: bits b with the top bit set stand for b - 2^N. */
int shmrpc_get_i32(shmrpc_reader *r, int32_t *out) {
  uint64_t value;
  int err = get_le(r, out, &value, 4);
  uint32_t bits = (uint32_t)value;
  if (out != NULL)
    *out = bits <= INT32_MAX ? (int32_t)bits
                             : (int32_t)(bits - 0x80000000u) + INT32_MIN;
  return err;
}

int shmrpc_get_i64(shmrpc_reader *r, int64_t *out) {
  uint64_t bits;
  int err = get_le(r, out, &bits, 8);
  if (out != NULL)
    *out = bits <= INT64_MAX
               ? (int64_t)bits
               : (int64_t)(bits - 0x8000000000000000u) + INT64_MIN;
  return err;
}

int shmrpc_get_f64(shmrpc_reader *r, double *out) {
  uint64_t value;
  int err = get_le(r, out, &value, 8);
  if (out != NULL) {
    if (err == 0)
      memcpy(out, &value, sizeof *out);
    else
      *out = 0.0;
  }
  return err;
}

/* Takes a length prefix and the bytes it counts; *at and *len describe them.
 * On failure nothing is consumed, *at is empty_bytes and *len is 0. */
static int get_counted(shmrpc_reader *r, const unsigned char **at,
                       size_t *len) {
  const unsigned char *prefix;
  size_t start;
  size_t count;
  int err;
  *at = empty_bytes;
  *len = 0;
  err = reader_take(r, PREFIX_SIZE, &prefix);
  if (err != 0)
    return err;
  start = r->pos - PREFIX_SIZE;
  count = (size_t)load_le(prefix, PREFIX_SIZE);
  err = reader_take(r, count, at);
  if (err != 0) {
    r->pos = start;
    *at = empty_bytes;
    return err;
  }
  *len = count;
  return 0;
}

int shmrpc_get_bytes(shmrpc_reader *r, const void **data, size_t *len) {
  const unsigned char *at = empty_bytes;
  size_t count = 0;
  int err;
  if (r == NULL)
    err = SHMRPC_EINVAL;
  else if (data == NULL || len == NULL)
    err = reader_fail(r, SHMRPC_EINVAL);
  else
    err = get_counted(r, &at, &count);
  if (data != NULL)
    *data = at;
  if (len != NULL)
    *len = count;
  return err;
}

int shmrpc_get_str(shmrpc_reader *r, const char **str, size_t *len) {
  const unsigned char *at = empty_bytes;
  size_t count = 0;
  int err;
  if (r == NULL)
    err = SHMRPC_EINVAL;
  else if (str == NULL || len == NULL)
    err = reader_fail(r, SHMRPC_EINVAL);
  else
    err = get_counted(r, &at, &count);
  if (str != NULL)
    *str = (const char *)at;
  if (len != NULL)
    *len = count;
  return err;
}

int shmrpc_get_str_copy(shmrpc_reader *r, char *dst, size_t dst_size,
                        size_t *len) {
  const unsigned char *at = empty_bytes;
  size_t count = 0;
  int err;
  if (dst != NULL && dst_size != 0)
    dst[0] = '\0';
  if (len != NULL)
    *len = 0;
  if (r == NULL)
    return SHMRPC_EINVAL;
  if (dst == NULL)
    return reader_fail(r, SHMRPC_EINVAL);
  err = get_counted(r, &at, &count);
  if (err != 0)
    return err;
  if (len != NULL)
    *len = count;
  /* count < dst_size leaves room for the NUL without computing count + 1. */
  if (count >= dst_size) {
    r->pos -= PREFIX_SIZE + count;
    return reader_fail(r, SHMRPC_ETOOBIG);
  }
  memcpy(dst, at, count);
  dst[count] = '\0';
  return 0;
}

int shmrpc_reader_done(const shmrpc_reader *r, int trailing) {
  if (r == NULL ||
      (trailing != SHMRPC_TRAILING_ERROR && trailing != SHMRPC_TRAILING_OK))
    return SHMRPC_EINVAL;
  if (r->err != 0)
    return r->err;
  if (trailing == SHMRPC_TRAILING_ERROR && r->pos != r->len)
    return SHMRPC_EPROTO;
  return 0;
}
