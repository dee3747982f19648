/*
 * The content of the benchmark's messages, and how it is checked.
 *
 * A request of n bytes (n >= 8) carries a tag (client number and call
 * number) in its first and its last 8 bytes; the rest is a fixed pattern.
 * The server answers with n bytes copied from a private template, stamped
 * with the tag's complement at both ends. Checking both ends of every
 * message costs almost nothing and catches a stale, truncated, misrouted or
 * half-written answer.
 */
#ifndef SHMRPC_BENCH_PAYLOAD_H
#define SHMRPC_BENCH_PAYLOAD_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* The tag of call number `call` of client number `client`. */
static inline uint64_t bench_tag(int client, uint64_t call) {
  return ((uint64_t)(unsigned)client << 48) ^ (call + 1u);
}

/* Writes tag into the first and the last 8 bytes of message (len >= 8). */
static inline void bench_stamp(unsigned char *message, size_t len,
                               uint64_t tag) {
  memcpy(message, &tag, sizeof tag);
  memcpy(message + len - sizeof tag, &tag, sizeof tag);
}

/* Reads the tag of message; returns 0 if its two ends disagree. */
static inline int bench_read_tag(const unsigned char *message, size_t len,
                                 uint64_t *tag) {
  uint64_t head;
  uint64_t tail;
  memcpy(&head, message, sizeof head);
  memcpy(&tail, message + len - sizeof tail, sizeof tail);
  *tag = head;
  return head == tail;
}

/* Fills a buffer with the pattern that the tags are stamped on. */
static inline void bench_fill_pattern(unsigned char *buffer, size_t len) {
  for (size_t i = 0; i < len; i++) {
    buffer[i] = (unsigned char)(i * 31u + 7u);
  }
}

/*
 * Server side: writes the answer to a request of request_len bytes into out
 * (request_len bytes), copying the body from template unless out is the
 * template itself (the stream servers stamp their template and send it).
 * A request whose two tags disagree gets an answer tagged 0, which the
 * client rejects.
 */
static inline void bench_answer(const unsigned char *request,
                                size_t request_len, unsigned char *out,
                                const unsigned char *template_body) {
  uint64_t tag;
  if (out != template_body) {
    memcpy(out, template_body, request_len);
  }
  if (!bench_read_tag(request, request_len, &tag)) {
    tag = ~(uint64_t)0;
  }
  bench_stamp(out, request_len, ~tag);
}

/* Client side: 1 if response is the right answer to the call tagged tag. */
static inline int bench_check_answer(const unsigned char *response,
                                     size_t response_len, size_t expected_len,
                                     uint64_t tag) {
  uint64_t got;
  if (response_len != expected_len) {
    return 0;
  }
  return bench_read_tag(response, response_len, &got) && got == ~tag;
}

#endif /* SHMRPC_BENCH_PAYLOAD_H */
