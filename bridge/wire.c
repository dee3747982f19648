/* The bridge's wire format (see wire.h and docs/PROTOCOL.md). Built on the
 * bounds-checked readers and writers of shmrpc_payload.h, so that no field
 * is read past the end of a message. */
#include "wire.h"

#include "shmrpc.h"
#include "shmrpc_payload.h"

/* The four bytes that open every message. */
static void put_prefix(shmrpc_writer *writer, unsigned kind) {
  shmrpc_put_u8(writer, BRIDGE_WIRE_MAGIC0);
  shmrpc_put_u8(writer, BRIDGE_WIRE_MAGIC1);
  shmrpc_put_u8(writer, BRIDGE_WIRE_VERSION);
  shmrpc_put_u8(writer, (uint8_t)kind);
}

size_t bridge_wire_put_request(unsigned char out[BRIDGE_WIRE_REQUEST_HEADER],
                               unsigned kind, uint32_t method,
                               int32_t timeout_ms, uint32_t payload_len) {
  shmrpc_writer writer;
  shmrpc_writer_init(&writer, out, BRIDGE_WIRE_REQUEST_HEADER);
  put_prefix(&writer, kind);
  shmrpc_put_u32(&writer, method);
  shmrpc_put_i32(&writer, timeout_ms);
  shmrpc_put_u32(&writer, payload_len);
  return writer.len;
}

size_t bridge_wire_put_answer(unsigned char out[BRIDGE_WIRE_ANSWER_HEADER],
                              unsigned request_kind, int32_t status,
                              int32_t app_code, uint16_t message_len,
                              uint32_t payload_len) {
  shmrpc_writer writer;
  shmrpc_writer_init(&writer, out, BRIDGE_WIRE_ANSWER_HEADER);
  put_prefix(&writer, request_kind | BRIDGE_WIRE_ANSWER_BIT);
  shmrpc_put_i32(&writer, status);
  shmrpc_put_i32(&writer, app_code);
  shmrpc_put_u16(&writer, message_len);
  shmrpc_put_u16(&writer, 0);
  shmrpc_put_u32(&writer, payload_len);
  return writer.len;
}

/* Fails a decode: records why and returns the code. */
static int refuse(const char **why, const char *reason, int code) {
  if (why != NULL)
    *why = reason;
  return code;
}

/* Reads and checks the prefix; *kind gets the kind byte as it came. */
static int get_prefix(shmrpc_reader *reader, unsigned *kind, const char **why) {
  uint8_t magic0, magic1, version, kind_byte;
  shmrpc_get_u8(reader, &magic0);
  shmrpc_get_u8(reader, &magic1);
  shmrpc_get_u8(reader, &version);
  shmrpc_get_u8(reader, &kind_byte);
  if (reader->err != 0)
    return refuse(why, "shorter than a header", SHMRPC_EPROTO);
  if (magic0 != BRIDGE_WIRE_MAGIC0 || magic1 != BRIDGE_WIRE_MAGIC1)
    return refuse(why, "not a shmrpc bridge message (bad magic)",
                  SHMRPC_EPROTO);
  if (version != BRIDGE_WIRE_VERSION)
    return refuse(why, "unsupported bridge protocol version", SHMRPC_EPROTO);
  *kind = kind_byte;
  return 0;
}

/* Starts decoding the len bytes at data: clears *why, reads the prefix. */
static int begin(shmrpc_reader *reader, const void *data, size_t len,
                 unsigned *kind, const char **why) {
  refuse(why, "", 0);
  shmrpc_reader_init(reader, data, len);
  return get_prefix(reader, kind, why);
}

int bridge_wire_get_request(const void *data, size_t len, size_t max_payload,
                            bridge_request *out, const char **why) {
  shmrpc_reader reader;
  uint32_t method, payload_len;
  int32_t timeout_ms;
  unsigned kind = 0;
  int rc;

  rc = begin(&reader, data, len, &kind, why);
  if (rc != 0)
    return rc;
  shmrpc_get_u32(&reader, &method);
  shmrpc_get_i32(&reader, &timeout_ms);
  shmrpc_get_u32(&reader, &payload_len);
  if (reader.err != 0)
    return refuse(why, "shorter than a request header", SHMRPC_EPROTO);
  if (kind != BRIDGE_WIRE_CALL && kind != BRIDGE_WIRE_HELLO)
    return refuse(why, "unknown request kind", SHMRPC_EPROTO);
  if (timeout_ms < SHMRPC_INFINITE)
    return refuse(why, "negative timeout other than -1", SHMRPC_EPROTO);
  /* Compared as sizes: payload_len cannot be trusted to fit anything. */
  if ((size_t)payload_len != len - reader.pos)
    return refuse(why, "payload length disagrees with the message length",
                  SHMRPC_EPROTO);
  if (kind == BRIDGE_WIRE_HELLO && (method != 0 || payload_len != 0))
    return refuse(why, "a hello carries no method and no payload",
                  SHMRPC_EPROTO);
  if ((size_t)payload_len > max_payload)
    return refuse(why, "payload larger than the exported slot", SHMRPC_ETOOBIG);
  out->kind = kind;
  out->method = method;
  out->timeout_ms = timeout_ms;
  out->payload = (const unsigned char *)data + reader.pos;
  out->payload_len = payload_len;
  return 0;
}

int bridge_wire_get_answer(const void *data, size_t len, unsigned request_kind,
                           size_t max_payload, bridge_answer *out,
                           const char **why) {
  shmrpc_reader reader;
  uint32_t payload_len;
  uint16_t message_len, reserved;
  int32_t status, app_code;
  unsigned kind = 0;
  size_t body;
  int rc;

  rc = begin(&reader, data, len, &kind, why);
  if (rc != 0)
    return rc;
  shmrpc_get_i32(&reader, &status);
  shmrpc_get_i32(&reader, &app_code);
  shmrpc_get_u16(&reader, &message_len);
  shmrpc_get_u16(&reader, &reserved);
  shmrpc_get_u32(&reader, &payload_len);
  if (reader.err != 0)
    return refuse(why, "shorter than an answer header", SHMRPC_EPROTO);
  if (kind != (request_kind | BRIDGE_WIRE_ANSWER_BIT))
    return refuse(why, "not the answer to the request sent", SHMRPC_EPROTO);
  if (reserved != 0)
    return refuse(why, "reserved field is not zero", SHMRPC_EPROTO);
  if (message_len > BRIDGE_WIRE_MESSAGE_MAX)
    return refuse(why, "message longer than 255 bytes", SHMRPC_EPROTO);
  body = len - reader.pos;
  if (message_len > body || (size_t)payload_len != body - message_len)
    return refuse(why, "lengths disagree with the message length",
                  SHMRPC_EPROTO);
  if (status > 0)
    return refuse(why, "positive status", SHMRPC_EPROTO);
  if (status == 0 && (app_code != 0 || message_len != 0))
    return refuse(why, "a success carries no code and no message",
                  SHMRPC_EPROTO);
  if (status == SHMRPC_EAPP && app_code <= 0)
    return refuse(why, "an application error needs a positive code",
                  SHMRPC_EPROTO);
  if (status != SHMRPC_EAPP && status != 0 && app_code != 0)
    return refuse(why, "a transport error carries no application code",
                  SHMRPC_EPROTO);
  if (status != 0 && payload_len != 0)
    return refuse(why, "an error carries no payload", SHMRPC_EPROTO);
  if ((size_t)payload_len > max_payload)
    return refuse(why, "payload larger than the local slot", SHMRPC_ETOOBIG);
  out->kind = kind;
  out->status = status;
  out->app_code = app_code;
  out->message = (const char *)data + reader.pos;
  out->message_len = message_len;
  out->payload = (const unsigned char *)data + reader.pos + message_len;
  out->payload_len = payload_len;
  return 0;
}

int bridge_wire_get_hello(const bridge_answer *answer, uint32_t *capacity) {
  shmrpc_reader reader;
  uint32_t value;
  shmrpc_reader_init(&reader, answer->payload, answer->payload_len);
  shmrpc_get_u32(&reader, &value);
  if (shmrpc_reader_done(&reader, SHMRPC_TRAILING_OK) != 0 || value == 0 ||
      value > SHMRPC_MAX_CAPACITY)
    return SHMRPC_EPROTO;
  *capacity = value;
  return 0;
}
