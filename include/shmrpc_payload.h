/*
 * shmrpc payload helpers: bounds-checked writing and reading of typed fields
 * in a request or response buffer the caller provides.
 *
 * Wire format, the same on every machine:
 * - u8, u16, u32, u64: little-endian, 1, 2, 4 and 8 bytes, no padding.
 * - i32, i64: two's complement, little-endian, 4 and 8 bytes.
 * - f64: the IEEE-754 binary64 bits of the double as a little-endian u64.
 * - bytes and strings: a u32 length, then that many bytes. A string is not
 *   NUL-terminated on the wire and its bytes are not checked (no UTF-8 or
 *   embedded-NUL check).
 *
 * Errors are sticky: the first failing put or get records its code in the
 * writer's or reader's `err`, leaves the buffer and position as they were
 * before that call, and every later call returns the same code without doing
 * anything. A caller may therefore check each call, or only once at the end:
 *
 *   size_t capacity;
 *   void *area = shmrpc_reply_buffer(reply, &capacity);
 *   shmrpc_writer w;
 *   shmrpc_writer_init(&w, area, capacity);
 *   shmrpc_put_u32(&w, count);
 *   shmrpc_put_str(&w, label);
 *   if (w.err != 0)
 *     return shmrpc_reply_error(reply, 1, "answer too large");
 *   return shmrpc_reply_commit(reply, w.len);
 *
 *   shmrpc_reader r;
 *   uint32_t count;
 *   const char *label;
 *   size_t label_len;
 *   shmrpc_reader_init(&r, response, response_len);
 *   shmrpc_get_u32(&r, &count);
 *   shmrpc_get_str(&r, &label, &label_len);
 *   if (shmrpc_reader_done(&r, SHMRPC_TRAILING_ERROR) != 0)
 *     ... malformed answer ...
 *
 * A failed get stores a zero value (0, 0.0, or an empty non-NULL string or
 * byte range of length 0) in its outputs, so a caller that checks only at the
 * end never reads an uninitialized variable.
 *
 * Nothing here allocates or keeps global state; writers and readers are
 * plain structs the caller owns. A writer or reader is used by one thread at
 * a time.
 */
#ifndef SHMRPC_PAYLOAD_H
#define SHMRPC_PAYLOAD_H

#include <stddef.h>
#include <stdint.h>

#include "shmrpc.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Writer ------------------------------------------------------------ */

/* Appends fields to a caller's buffer. Read the fields; change them only
 * through the functions below. */
typedef struct shmrpc_writer {
  unsigned char *data; /* the caller's buffer */
  size_t cap;          /* its size in bytes */
  size_t len;          /* bytes written so far; never more than cap */
  int err;             /* 0, or the first error (sticky) */
} shmrpc_writer;

/*
 * Starts writing at the beginning of data, which holds cap bytes.
 * data may be NULL only when cap is 0 (every put then fails with
 * SHMRPC_ETOOBIG); a NULL data with a non-zero cap records SHMRPC_EINVAL.
 */
SHMRPC_EXTERN void shmrpc_writer_init(shmrpc_writer *w, void *data, size_t cap);

/*
 * shmrpc_put_u8() .. shmrpc_put_i64(): append value in 1, 2, 4 or 8 bytes,
 * little-endian (signed values as two's complement).
 * Return 0, or:
 * - SHMRPC_ETOOBIG: the value does not fit in the bytes left (nothing is
 *   written; the error is recorded).
 * - the recorded error, if an earlier call failed.
 * - SHMRPC_EINVAL: w is NULL.
 */
SHMRPC_EXTERN int shmrpc_put_u8(shmrpc_writer *w, uint8_t value);
SHMRPC_EXTERN int shmrpc_put_u16(shmrpc_writer *w, uint16_t value);
SHMRPC_EXTERN int shmrpc_put_u32(shmrpc_writer *w, uint32_t value);
SHMRPC_EXTERN int shmrpc_put_u64(shmrpc_writer *w, uint64_t value);
SHMRPC_EXTERN int shmrpc_put_i32(shmrpc_writer *w, int32_t value);
SHMRPC_EXTERN int shmrpc_put_i64(shmrpc_writer *w, int64_t value);

/*
 * Appends value as its IEEE-754 binary64 bits in 8 little-endian bytes.
 * Every value round-trips bit for bit, including -0.0, infinities and the
 * payload of a NaN. Returns as shmrpc_put_u64().
 */
SHMRPC_EXTERN int shmrpc_put_f64(shmrpc_writer *w, double value);

/*
 * Appends len as a u32, then the len bytes at data. data may be NULL when
 * len is 0.
 * Returns 0, or:
 * - SHMRPC_ETOOBIG: the prefix and the bytes do not both fit, or len exceeds
 *   UINT32_MAX (nothing is written; the error is recorded).
 * - SHMRPC_EINVAL: data is NULL and len is not 0 (recorded), or w is NULL.
 * - the recorded error, if an earlier call failed.
 */
SHMRPC_EXTERN int shmrpc_put_bytes(shmrpc_writer *w, const void *data,
                                   size_t len);

/*
 * Appends the NUL-terminated str as a u32 length (strlen(str)) and its bytes,
 * without the NUL. Returns as shmrpc_put_bytes(); a NULL str is
 * SHMRPC_EINVAL (recorded).
 */
SHMRPC_EXTERN int shmrpc_put_str(shmrpc_writer *w, const char *str);

/* ---- Reader ------------------------------------------------------------ */

/* Takes fields from the front of a caller's buffer. Read the fields; change
 * them only through the functions below. */
typedef struct shmrpc_reader {
  const unsigned char *data; /* the caller's buffer */
  size_t len;                /* its size in bytes */
  size_t pos;                /* bytes consumed so far; never more than len */
  int err;                   /* 0, or the first error (sticky) */
} shmrpc_reader;

/*
 * Starts reading at the beginning of the len bytes at data. The reader
 * points into data, which must stay valid and unchanged while it is read.
 * data may be NULL only when len is 0; a NULL data with a non-zero len
 * records SHMRPC_EINVAL.
 */
SHMRPC_EXTERN void shmrpc_reader_init(shmrpc_reader *r, const void *data,
                                      size_t len);

/*
 * shmrpc_get_u8() .. shmrpc_get_i64(): take a value written by the matching
 * put and store it in *out.
 * Return 0, or:
 * - SHMRPC_EPROTO: fewer bytes are left than the value needs (nothing is
 *   consumed; the error is recorded).
 * - the recorded error, if an earlier call failed.
 * - SHMRPC_EINVAL: r or out is NULL (recorded if r is not NULL).
 * On any error *out (if not NULL) is set to 0.
 */
SHMRPC_EXTERN int shmrpc_get_u8(shmrpc_reader *r, uint8_t *out);
SHMRPC_EXTERN int shmrpc_get_u16(shmrpc_reader *r, uint16_t *out);
SHMRPC_EXTERN int shmrpc_get_u32(shmrpc_reader *r, uint32_t *out);
SHMRPC_EXTERN int shmrpc_get_u64(shmrpc_reader *r, uint64_t *out);
SHMRPC_EXTERN int shmrpc_get_i32(shmrpc_reader *r, int32_t *out);
SHMRPC_EXTERN int shmrpc_get_i64(shmrpc_reader *r, int64_t *out);

/* Takes a double written by shmrpc_put_f64(), bit for bit. Returns as
 * shmrpc_get_u64(); on error *out is set to 0.0. */
SHMRPC_EXTERN int shmrpc_get_f64(shmrpc_reader *r, double *out);

/*
 * Takes a u32 length and that many bytes, and points *data at the bytes
 * inside the reader's buffer (no copy) with their count in *len.
 * Returns 0, or:
 * - SHMRPC_EPROTO: the length prefix is cut short, or it exceeds the bytes
 *   left after it (nothing is consumed; the error is recorded).
 * - the recorded error, if an earlier call failed.
 * - SHMRPC_EINVAL: r, data or len is NULL (recorded if r is not NULL).
 * On any error *data (if not NULL) points at a valid empty range and *len (if
 * not NULL) is 0.
 */
SHMRPC_EXTERN int shmrpc_get_bytes(shmrpc_reader *r, const void **data,
                                   size_t *len);

/*
 * Takes a string written by shmrpc_put_str() or shmrpc_put_bytes(): *str
 * points at its *len bytes inside the reader's buffer. It is NOT
 * NUL-terminated; print it with "%.*s" or copy it with
 * shmrpc_get_str_copy(). Returns as shmrpc_get_bytes(); on error *str (if not
 * NULL) is "" and *len (if not NULL) is 0.
 */
SHMRPC_EXTERN int shmrpc_get_str(shmrpc_reader *r, const char **str,
                                 size_t *len);

/*
 * Takes a string like shmrpc_get_str(), copies it into dst (dst_size bytes)
 * and appends a NUL. *len (len may be NULL) receives the string's length
 * without the NUL.
 * Returns 0, or:
 * - SHMRPC_ETOOBIG: the string and its NUL need more than dst_size bytes.
 *   Nothing is consumed and the error is recorded, so the reader stops here;
 *   *len still receives the string's length (dst_size must be at least
 *   *len + 1) to let the caller size a buffer and read again from a fresh
 *   reader.
 * - SHMRPC_EPROTO, the recorded error, or SHMRPC_EINVAL (r or dst is NULL),
 *   as shmrpc_get_bytes().
 * On any error dst (if not NULL and dst_size > 0) holds "" and, except for
 * SHMRPC_ETOOBIG, *len is 0.
 */
SHMRPC_EXTERN int shmrpc_get_str_copy(shmrpc_reader *r, char *dst,
                                      size_t dst_size, size_t *len);

/* What shmrpc_reader_done() makes of bytes left unread. */
enum shmrpc_trailing {
  SHMRPC_TRAILING_ERROR = 0, /* unread bytes are SHMRPC_EPROTO */
  SHMRPC_TRAILING_OK = 1     /* unread bytes are fine, e.g. fields a newer
                                peer appended */
};

/*
 * Ends reading. Returns the recorded error if any get failed; otherwise, with
 * SHMRPC_TRAILING_ERROR, SHMRPC_EPROTO when bytes are left unread; otherwise
 * 0. SHMRPC_EINVAL if r is NULL or trailing is neither SHMRPC_TRAILING_*
 * value. Records nothing.
 */
SHMRPC_EXTERN int shmrpc_reader_done(const shmrpc_reader *r, int trailing);

#ifdef __cplusplus
}
#endif

#endif /* SHMRPC_PAYLOAD_H */
