/*
 * The bridge's wire format: what an import sends an export in one nng
 * message, and what comes back. docs/PROTOCOL.md ("The bridge wire format")
 * describes it byte by byte; this file is its one implementation.
 *
 * Every integer is little-endian. A request is a 16-byte header and the
 * payload; an answer is a 20-byte header, the message and the payload:
 *
 *   request  0 'S' 'B' version kind | 4 method u32 | 8 timeout_ms i32 |
 *            12 payload_len u32 | 16 payload
 *   answer   0 'S' 'B' version kind | 4 status i32 | 8 app_code i32 |
 *            12 message_len u16 | 14 reserved u16 (0) | 16 payload_len u32 |
 *            20 message | payload
 *
 * The decoders trust nothing: each field is read once, validated, and only
 * then used. They need no nng, so the fuzzer (fuzz/fuzz_bridge_wire.c)
 * drives them directly.
 */
#ifndef SHMRPC_BRIDGE_WIRE_H
#define SHMRPC_BRIDGE_WIRE_H

#include <stddef.h>
#include <stdint.h>

#define BRIDGE_WIRE_MAGIC0 0x53u /* 'S' */
#define BRIDGE_WIRE_MAGIC1 0x42u /* 'B' */
#define BRIDGE_WIRE_VERSION 1u
#define BRIDGE_WIRE_REQUEST_HEADER 16u
#define BRIDGE_WIRE_ANSWER_HEADER 20u
/* The longest message an answer carries (SHMRPC_MESSAGE_MAX). */
#define BRIDGE_WIRE_MESSAGE_MAX 255u
/* What nng adds to a message on the wire beyond its body: req/rep carries
 * a 4-byte request id, and 4 more bytes per device it passes. Limits on
 * received sizes allow for this much of it. */
#define BRIDGE_WIRE_NNG_SLACK 64u
/* The payload of a hello answer: the exported slot capacity (u32). */
#define BRIDGE_WIRE_HELLO_PAYLOAD 4u

/* What a message is. An answer's kind is its request's kind with the
 * answer bit set. */
enum bridge_wire_kind {
  BRIDGE_WIRE_CALL = 1,  /* call method with the payload */
  BRIDGE_WIRE_HELLO = 2, /* what is exported: its slot capacity */
  BRIDGE_WIRE_ANSWER_BIT = 0x80
};

/* A decoded request. payload points into the decoded buffer. */
typedef struct bridge_request {
  unsigned kind;      /* BRIDGE_WIRE_CALL or BRIDGE_WIRE_HELLO */
  uint32_t method;    /* 0 for a hello */
  int32_t timeout_ms; /* the caller's remaining time: -1 none, else >= 0 */
  const unsigned char *payload;
  size_t payload_len;
} bridge_request;

/* A decoded answer. message and payload point into the decoded buffer;
 * message is not NUL-terminated. */
typedef struct bridge_answer {
  unsigned kind;    /* the request's kind | BRIDGE_WIRE_ANSWER_BIT */
  int32_t status;   /* 0, SHMRPC_EAPP or another negative SHMRPC_E* code */
  int32_t app_code; /* > 0 when status is SHMRPC_EAPP, else 0 */
  const char *message;
  size_t message_len; /* at most BRIDGE_WIRE_MESSAGE_MAX */
  const unsigned char *payload;
  size_t payload_len;
} bridge_answer;

/* Writes a request header for payload_len bytes of payload into out.
 * Returns BRIDGE_WIRE_REQUEST_HEADER. */
size_t bridge_wire_put_request(unsigned char out[BRIDGE_WIRE_REQUEST_HEADER],
                               unsigned kind, uint32_t method,
                               int32_t timeout_ms, uint32_t payload_len);

/* Writes the header of the answer to a request of kind request_kind (the
 * answer bit is added here) into out; the message_len bytes of message and
 * the payload follow it. Returns BRIDGE_WIRE_ANSWER_HEADER. */
size_t bridge_wire_put_answer(unsigned char out[BRIDGE_WIRE_ANSWER_HEADER],
                              unsigned request_kind, int32_t status,
                              int32_t app_code, uint16_t message_len,
                              uint32_t payload_len);

/*
 * Decodes the len bytes at data as a request whose payload may hold at most
 * max_payload bytes. Returns 0, or:
 * - SHMRPC_EPROTO: not a well-formed request of this version (*why names
 *   the field);
 * - SHMRPC_ETOOBIG: well formed, but the payload exceeds max_payload.
 * *why (if why is not NULL) is a static string, "" on success.
 */
int bridge_wire_get_request(const void *data, size_t len, size_t max_payload,
                            bridge_request *out, const char **why);

/*
 * Decodes the len bytes at data as the answer to a request of kind
 * request_kind, with a payload of at most max_payload bytes. Returns 0,
 * SHMRPC_EPROTO or SHMRPC_ETOOBIG, as bridge_wire_get_request().
 */
int bridge_wire_get_answer(const void *data, size_t len, unsigned request_kind,
                           size_t max_payload, bridge_answer *out,
                           const char **why);

/* Reads the slot capacity out of a hello answer's payload. Returns 0, or
 * SHMRPC_EPROTO if it is not 1 to SHMRPC_MAX_CAPACITY bytes. Bytes after the
 * first four are fields a newer export added, and are ignored. */
int bridge_wire_get_hello(const bridge_answer *answer, uint32_t *capacity);

#endif /* SHMRPC_BRIDGE_WIRE_H */
