/*
 * libFuzzer target over the bridge's wire decoders (bridge/wire.c): what an
 * export makes of any request and an import of any answer that arrives
 * from the network.
 *
 * Input layout:
 *   0      mode: bit 0 set decodes an answer, clear a request; bit 1 picks
 *          the kind of request the answer is for (hello if set, else call)
 *   1..4   the largest payload allowed (u32, little-endian)
 *   5..    the message, as it came off the network
 *
 * Oracle: a message either decodes into fields that obey every rule of
 * docs/PROTOCOL.md and point inside the message, with a header that
 * re-encodes to the very bytes received, or is refused with SHMRPC_EPROTO or
 * SHMRPC_ETOOBIG and a reason. And the same fields, encoded afresh, always
 * decode back to themselves. AddressSanitizer and UBSan catch the rest.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shmrpc.h"
#include "wire.h"

#define CHECK(condition)                                                       \
  do {                                                                         \
    if (!(condition)) {                                                        \
      fprintf(stderr, "fuzz_bridge_wire: invariant failed at line %d: %s\n",   \
              __LINE__, #condition);                                           \
      __builtin_trap();                                                        \
    }                                                                          \
  } while (0)

/* 1 if [part, part + part_len) lies inside [data, data + len). */
static int inside(const void *part, size_t part_len, const uint8_t *data,
                  size_t len) {
  const uint8_t *at = part;
  return at >= data && at <= data + len &&
         part_len <= (size_t)(data + len - at);
}

static void refused(int rc, const char *why) {
  CHECK(rc == SHMRPC_EPROTO || rc == SHMRPC_ETOOBIG);
  CHECK(why != NULL && why[0] != '\0');
}

static void check_request(const uint8_t *data, size_t len, size_t max) {
  unsigned char header[BRIDGE_WIRE_REQUEST_HEADER];
  unsigned char *copy;
  bridge_request req, again;
  const char *why = NULL;
  int rc = bridge_wire_get_request(data, len, max, &req, &why);
  if (rc != 0) {
    refused(rc, why);
    return;
  }
  CHECK(why != NULL && why[0] == '\0');
  CHECK(req.kind == BRIDGE_WIRE_CALL || req.kind == BRIDGE_WIRE_HELLO);
  CHECK(req.timeout_ms >= SHMRPC_INFINITE);
  CHECK(req.payload_len <= max);
  CHECK(BRIDGE_WIRE_REQUEST_HEADER + req.payload_len == len);
  CHECK(inside(req.payload, req.payload_len, data, len));
  CHECK(req.kind != BRIDGE_WIRE_HELLO ||
        (req.method == 0 && req.payload_len == 0));
  CHECK(bridge_wire_put_request(header, req.kind, req.method, req.timeout_ms,
                                (uint32_t)req.payload_len) == sizeof(header));
  CHECK(memcmp(header, data, sizeof(header)) == 0);

  /* Encoded afresh in a buffer of its own, it decodes to itself. */
  copy = malloc(len);
  CHECK(copy != NULL);
  memcpy(copy, header, sizeof(header));
  if (req.payload_len > 0)
    memcpy(copy + sizeof(header), req.payload, req.payload_len);
  CHECK(bridge_wire_get_request(copy, len, max, &again, &why) == 0);
  CHECK(again.kind == req.kind && again.method == req.method &&
        again.timeout_ms == req.timeout_ms &&
        again.payload_len == req.payload_len);
  free(copy);
}

static void check_answer(const uint8_t *data, size_t len, unsigned kind,
                         size_t max) {
  unsigned char header[BRIDGE_WIRE_ANSWER_HEADER];
  bridge_answer answer;
  const char *why = NULL;
  uint32_t capacity = 0;
  int rc = bridge_wire_get_answer(data, len, kind, max, &answer, &why);
  if (rc != 0) {
    refused(rc, why);
    return;
  }
  CHECK(answer.kind == (kind | BRIDGE_WIRE_ANSWER_BIT));
  CHECK(answer.status <= 0);
  CHECK(answer.message_len <= BRIDGE_WIRE_MESSAGE_MAX);
  CHECK(answer.payload_len <= max);
  CHECK(BRIDGE_WIRE_ANSWER_HEADER + answer.message_len + answer.payload_len ==
        len);
  CHECK(inside(answer.message, answer.message_len, data, len));
  CHECK(inside(answer.payload, answer.payload_len, data, len));
  if (answer.status == 0)
    CHECK(answer.app_code == 0 && answer.message_len == 0);
  else
    CHECK(answer.payload_len == 0);
  if (answer.status == SHMRPC_EAPP)
    CHECK(answer.app_code > 0);
  else
    CHECK(answer.app_code == 0);
  CHECK(bridge_wire_put_answer(header, answer.kind & ~BRIDGE_WIRE_ANSWER_BIT,
                               answer.status, answer.app_code,
                               (uint16_t)answer.message_len,
                               (uint32_t)answer.payload_len) == sizeof(header));
  CHECK(memcmp(header, data, sizeof(header)) == 0);
  if (kind == BRIDGE_WIRE_HELLO && answer.status == 0 &&
      bridge_wire_get_hello(&answer, &capacity) == 0)
    CHECK(capacity > 0 && capacity <= SHMRPC_MAX_CAPACITY);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  uint32_t max = 0;
  uint8_t mode;
  size_t i;
  if (size < 5)
    return 0;
  mode = data[0];
  for (i = 0; i < 4; i++)
    max |= (uint32_t)data[1 + i] << (8 * i);
  if (mode & 1u)
    check_answer(data + 5, size - 5,
                 (mode & 2u) ? BRIDGE_WIRE_HELLO : BRIDGE_WIRE_CALL, max);
  else
    check_request(data + 5, size - 5, max);
  return 0;
}
