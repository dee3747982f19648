/*
 * libFuzzer target over the server's request validation and dispatch.
 *
 * One real server lives for the whole process. The target opens the same
 * service a second time through the platform layer, as any client process
 * could, and plays a hostile caller: it writes fuzzed values into the control
 * block (slot state, sequence number, method id, request length, the server
 * line, header fields, the message area), copies the rest of the input into
 * the request area and lets shmrpc_server_run_once() serve it. Then it checks
 * the answer against an oracle that knows what each method must answer, and
 * traps on any difference. AddressSanitizer and UBSan catch the rest.
 *
 * Input layout (bytes past the end of a short input read as zero):
 *
 *   0      flags, see FLAG_*; bits 0-2 choose the method (see pick_method)
 *   1..4   call_seq
 *   5..8   a raw method id
 *   9..12  request_len (used with FLAG_RAW_LENGTH)
 *   13..16 slot_state (used with FLAG_RAW_STATE)
 *   17..40 the server line: taken_seq and response_seq (both from the
 *          first word), status, app_code, response_len, message_len,
 *          response_sleepers (used with FLAG_SERVER_LINE)
 *   41..60 header: magic, capacity, area_size, server_state, server_dead
 *          (used with FLAG_HEADER)
 *   61     a byte to fill the message area with (used with FLAG_MESSAGE)
 *   62..   the request payload
 *
 * All integers are little-endian.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "shmrpc_payload.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FUZZ_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) && !defined(FUZZ_ASAN)
#define FUZZ_ASAN 1
#endif
/* Guarding the areas needs ASan and /proc/self/maps to find the server's
 * own mapping. */
#if defined(FUZZ_ASAN) && defined(__linux__)
#define FUZZ_GUARDS 1
#include <sanitizer/asan_interface.h>
#endif

/* A capacity that is not a multiple of the 64-byte line leaves a gap after
 * the request area and after the response area. AddressSanitizer knows
 * nothing of shared memory, so setup() poisons those gaps (see guard_areas):
 * a read or write even one byte past either area is then reported. */
#define FUZZ_CAPACITY 3700u

/* The registered methods. SIZED_ID is the highest id a handler may have
 * and SIZED_NAME as long as a method name may be. */
#define ECHO_ID 1u
#define SUMMARY_ID 2u
#define FAIL_ID 3u
#define SIZED_ID (SHMRPC_METHOD_RESERVED - 1u)
#define SIZED_NAME                                                             \
  "sized-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUV"

_Static_assert(sizeof(SIZED_NAME) - 1 == SHMRPC_NAME_MAX,
               "SIZED_NAME is as long as a method name may be");

/* The summary handler's answer to a request it cannot parse. */
#define MALFORMED_CODE 22
#define MALFORMED_MESSAGE "malformed request"
/* Longest label the summary handler accepts, without its NUL. */
#define LABEL_MAX 47u
/* Longest message the fail handler passes on; longer than
 * SHMRPC_MESSAGE_MAX, so the truncation is exercised. */
#define FAIL_MESSAGE_MAX 511u

enum input_offset {
  AT_FLAGS = 0,
  AT_SEQ = 1,
  AT_METHOD = 5,
  AT_REQUEST_LEN = 9,
  AT_SLOT_STATE = 13,
  AT_SERVER_LINE = 17,
  AT_HEADER = 41,
  AT_MESSAGE_FILL = 61,
  AT_PAYLOAD = 62
};

enum input_flag {
  FLAG_METHOD_MASK = 0x07,
  FLAG_RAW_STATE = 0x08,   /* slot_state from the input, not POSTED */
  FLAG_RAW_LENGTH = 0x10,  /* request_len from the input, not the payload's */
  FLAG_SERVER_LINE = 0x20, /* server line from the input, not zeros */
  FLAG_HEADER = 0x40,      /* header fields from the input */
  FLAG_MESSAGE = 0x80      /* message area filled with garbage */
};

/* Stops the process, naming the broken invariant, so that libFuzzer saves
 * the input. */
#define CHECK(condition)                                                       \
  do {                                                                         \
    if (!(condition)) {                                                        \
      fprintf(stderr, "fuzz_server: invariant failed at line %d: %s\n",        \
              __LINE__, #condition);                                           \
      __builtin_trap();                                                        \
    }                                                                          \
  } while (0)

/* The one server of this process and a caller's view of its area. */
static struct fuzz_state {
  int ready;
  char name[SHMRPC_NAME_MAX + 1];
  shmrpc_server *server;
  shmrpc__os_service *view;    /* a second, client-side opening */
  shmrpc__control *control;    /* in the view */
  unsigned char *request_area; /* in the view */
  unsigned char *response_area;
  shmrpc__header header;      /* as the server published it */
  unsigned char *server_area; /* the server's mapping; NULL if not found */
} fuzz;

/* ---- Little-endian helpers ----------------------------------------------- */

static uint32_t le32(const unsigned char *at) {
  return (uint32_t)at[0] | (uint32_t)at[1] << 8 | (uint32_t)at[2] << 16 |
         (uint32_t)at[3] << 24;
}

static uint64_t le64(const unsigned char *at) {
  return (uint64_t)le32(at) | (uint64_t)le32(at + 4) << 32;
}

static void put_le32(unsigned char *at, uint32_t value) {
  at[0] = (unsigned char)value;
  at[1] = (unsigned char)(value >> 8);
  at[2] = (unsigned char)(value >> 16);
  at[3] = (unsigned char)(value >> 24);
}

static void put_le64(unsigned char *at, uint64_t value) {
  put_le32(at, (uint32_t)value);
  put_le32(at + 4, (uint32_t)(value >> 32));
}

static double f64_from_bits(uint64_t bits) {
  double value;
  memcpy(&value, &bits, sizeof(value));
  return value;
}

static uint64_t f64_bits(double value) {
  uint64_t bits;
  memcpy(&bits, &value, sizeof(bits));
  return bits;
}

/* ---- Handlers ------------------------------------------------------------ */

/* ECHO_ID: answers the request unchanged. */
static int handle_echo(void *user_data, const void *request, size_t request_len,
                       shmrpc_reply *reply) {
  (void)user_data;
  return shmrpc_reply_write(reply, request, request_len);
}

/* SUMMARY_ID: request i64 base, str label, u32 count, count f64 values;
 * answer i64 base + count, the label, u32 count and the f64 sum, written
 * with the payload writer straight into the response area. */
static int handle_summary(void *user_data, const void *request,
                          size_t request_len, shmrpc_reply *reply) {
  shmrpc_reader reader;
  shmrpc_writer writer;
  char label[LABEL_MAX + 1];
  size_t label_len, capacity, i;
  int64_t base;
  uint32_t count;
  double sum = 0.0, value;
  void *out;

  (void)user_data;
  shmrpc_reader_init(&reader, request, request_len);
  shmrpc_get_i64(&reader, &base);
  shmrpc_get_str_copy(&reader, label, sizeof(label), &label_len);
  shmrpc_get_u32(&reader, &count);
  /* A hostile count must not spin: stop at the first failed get. */
  for (i = 0; i < count && shmrpc_get_f64(&reader, &value) == 0; i++)
    sum += value;
  if (shmrpc_reader_done(&reader, SHMRPC_TRAILING_ERROR) != 0)
    return shmrpc_reply_error(reply, MALFORMED_CODE, MALFORMED_MESSAGE);

  out = shmrpc_reply_buffer(reply, &capacity);
  shmrpc_writer_init(&writer, out, capacity);
  shmrpc_put_i64(&writer, (int64_t)((uint64_t)base + count));
  shmrpc_put_bytes(&writer, label, label_len);
  shmrpc_put_u32(&writer, count);
  shmrpc_put_f64(&writer, sum);
  if (writer.err != 0)
    return writer.err;
  return shmrpc_reply_commit(reply, writer.len);
}

/* What FAIL_ID does, chosen by the first request byte. */
enum fail_mode {
  FAIL_WITH_MESSAGE = 0, /* return shmrpc_reply_error(code, message) */
  FAIL_RETURN_CODE = 1,  /* return the code as it is, any sign */
  FAIL_AFTER_WRITE = 2,  /* write a response, then fail without message */
  FAIL_THEN_TOOBIG = 3   /* fail with a message, then return ETOOBIG */
};

/* The fail handler's request: mode, i32 code, message up to a NUL. */
typedef struct fail_request {
  int mode;
  int32_t code;
  char message[FAIL_MESSAGE_MAX + 1];
} fail_request;

static void parse_fail_request(const unsigned char *request, size_t request_len,
                               fail_request *out) {
  unsigned char head[5] = {0};
  size_t i, len = 0;
  memcpy(head, request, request_len < 5 ? request_len : 5);
  out->mode = head[0] & 3;
  out->code = (int32_t)le32(head + 1);
  for (i = 5; i < request_len && len < FAIL_MESSAGE_MAX; i++) {
    if (request[i] == '\0')
      break;
    out->message[len++] = (char)request[i];
  }
  out->message[len] = '\0';
}

/* FAIL_ID: fails in the ways a handler may. */
static int handle_fail(void *user_data, const void *request, size_t request_len,
                       shmrpc_reply *reply) {
  fail_request parsed;
  (void)user_data;
  parse_fail_request(request, request_len, &parsed);
  switch (parsed.mode) {
  case FAIL_WITH_MESSAGE:
    return shmrpc_reply_error(reply, parsed.code, parsed.message);
  case FAIL_RETURN_CODE:
    return parsed.code;
  case FAIL_AFTER_WRITE:
    if (shmrpc_reply_write(reply, parsed.message, strlen(parsed.message)) != 0)
      return SHMRPC_EPROTO;
    shmrpc_reply_error(reply, parsed.code, NULL);
    return 0;
  default:
    shmrpc_reply_error(reply, parsed.code, parsed.message);
    return SHMRPC_ETOOBIG;
  }
}

/* SIZED_ID: request u32 length, u8 fill; answers length fill bytes written
 * in place, or SHMRPC_ETOOBIG when the length exceeds the capacity. */
static int handle_sized(void *user_data, const void *request,
                        size_t request_len, shmrpc_reply *reply) {
  unsigned char head[5] = {0};
  size_t capacity;
  uint32_t length;
  unsigned char *out;

  (void)user_data;
  memcpy(head, request, request_len < 5 ? request_len : 5);
  length = le32(head);
  out = shmrpc_reply_buffer(reply, &capacity);
  memset(out, head[4], length < capacity ? length : capacity);
  /* SHMRPC_ETOOBIG when too long: the call fails with it. */
  return shmrpc_reply_commit(reply, length);
}

/* ---- Set-up and tear-down ------------------------------------------------ */

#ifdef FUZZ_GUARDS
/* Finds the server's own mapping of the area: the mapping of the same shared
 * memory object that is not the view, at the same offset. */
static unsigned char *find_server_area(void) {
  char wanted[SHMRPC_NAME_MAX + 32], line[512], path[256];
  unsigned long start, end, view_start = 0, server_start = 0;
  uintptr_t view = (uintptr_t)fuzz.control;
  int found_view = 0, found_server = 0;
  FILE *maps = fopen("/proc/self/maps", "r");

  if (maps == NULL)
    return NULL;
  snprintf(wanted, sizeof(wanted), "/dev/shm/shmrpc.%s", fuzz.name);
  while (fgets(line, sizeof(line), maps) != NULL) {
    if (sscanf(line, "%lx-%lx %*s %*s %*s %*s %255s", &start, &end, path) !=
            3 ||
        strcmp(path, wanted) != 0)
      continue;
    if (view >= start && view < end) {
      view_start = start;
      found_view = 1;
    } else {
      server_start = start;
      found_server++;
    }
  }
  fclose(maps);
  if (!found_view || found_server != 1)
    return NULL;
  return (unsigned char *)(uintptr_t)server_start + (view - view_start);
}

/* Poisons (or unpoisons) the gaps after the request and the response area
 * of one mapping of the area. */
static void guard_area(unsigned char *area, int poison) {
  uint64_t request_end = shmrpc__request_offset() + FUZZ_CAPACITY;
  uint64_t response_start = shmrpc__response_offset(FUZZ_CAPACITY);
  uint64_t response_end = response_start + FUZZ_CAPACITY;
  uint64_t area_end = shmrpc__area_size(FUZZ_CAPACITY);
  void (*apply)(void const volatile *, size_t) =
      poison ? __asan_poison_memory_region : __asan_unpoison_memory_region;
  apply(area + request_end, (size_t)(response_start - request_end));
  apply(area + response_end, (size_t)(area_end - response_end));
}

static void guard_areas(int poison) {
  guard_area((unsigned char *)fuzz.control, poison);
  if (fuzz.server_area != NULL)
    guard_area(fuzz.server_area, poison);
}
#else
static void guard_areas(int poison) { (void)poison; }
#endif

static void teardown(void) {
  if (!fuzz.ready)
    return;
  fuzz.ready = 0;
  /* The addresses may be mapped again after the unmapping. */
  guard_areas(0);
  shmrpc__os_service_close(fuzz.view);
  shmrpc_server_destroy(fuzz.server);
}

static void fail_setup(const char *what, int rc) {
  fprintf(stderr, "fuzz_server: %s: %s\n", what, shmrpc_strerror(rc));
  abort();
}

/* Creates the server and the caller's view, once per process. */
static void setup(void) {
  shmrpc_server_options options;
  void *area = NULL;
  size_t area_size = 0;
  int rc;

  if (fuzz.ready)
    return;
  snprintf(fuzz.name, sizeof(fuzz.name), "fuzz-%lu",
           (unsigned long)shmrpc__os_pid());
  shmrpc_server_options_init(&options);
  options.capacity = FUZZ_CAPACITY;
  /* With no spinning, run_once(server, 0) on a slot that is not POSTED
   * returns at once instead of spinning 100 microseconds per input. */
  options.spin_us = 0;
  rc = shmrpc_server_create(&fuzz.server, fuzz.name, &options);
  if (rc != 0)
    fail_setup("shmrpc_server_create", rc);
  if ((rc = shmrpc_server_register(fuzz.server, ECHO_ID, "echo", handle_echo,
                                   NULL)) != 0 ||
      (rc = shmrpc_server_register(fuzz.server, SUMMARY_ID, "summary",
                                   handle_summary, NULL)) != 0 ||
      (rc = shmrpc_server_register(fuzz.server, FAIL_ID, "fail", handle_fail,
                                   NULL)) != 0 ||
      (rc = shmrpc_server_register(fuzz.server, SIZED_ID, SIZED_NAME,
                                   handle_sized, NULL)) != 0)
    fail_setup("shmrpc_server_register", rc);

  rc = shmrpc__os_service_open(fuzz.name, 0, &fuzz.view, &area, &area_size);
  if (rc != 0)
    fail_setup("shmrpc__os_service_open", rc);
  if (area_size < shmrpc__area_size(FUZZ_CAPACITY))
    fail_setup("the mapped area is too small", SHMRPC_EPROTO);
  fuzz.control = area;
  fuzz.request_area = shmrpc__request_area(area);
  fuzz.response_area = shmrpc__response_area(area, FUZZ_CAPACITY);
  memcpy(&fuzz.header, &fuzz.control->header, sizeof(fuzz.header));
#ifdef FUZZ_GUARDS
  fuzz.server_area = find_server_area();
  if (fuzz.server_area == NULL)
    fprintf(stderr, "fuzz_server: note: the server's mapping was not found; "
                    "only the view's areas are guarded\n");
#else
  fprintf(stderr, "fuzz_server: note: built without AddressSanitizer; the "
                  "shared areas are not guarded\n");
#endif
  guard_areas(1);
  fuzz.ready = 1;
  atexit(teardown);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  setup();
  return 0;
}

/* ---- The oracle ---------------------------------------------------------- */

/* What the server must answer for one call. */
typedef struct expected_answer {
  int32_t status;
  int32_t app_code;
  size_t response_len;
  const unsigned char *response; /* NULL: content not checked */
  const char *message;           /* for SHMRPC_EAPP */
  size_t message_len;
} expected_answer;

/* Maps the method bits of the flags onto a method id. */
static uint32_t pick_method(unsigned choice, uint32_t raw) {
  switch (choice) {
  case 0:
    return ECHO_ID;
  case 1:
    return SUMMARY_ID;
  case 2:
    return FAIL_ID;
  case 3:
    return SIZED_ID;
  case 4:
    return SHMRPC_METHOD_PING;
  case 5:
    return SHMRPC_METHOD_LIST;
  case 6:
    /* Reserved but not built in, or not registered at all. */
    return (raw & 1u) ? SHMRPC_METHOD_LIST + 1u + (raw >> 1)
                      : raw % SHMRPC_METHOD_RESERVED;
  default:
    return raw;
  }
}

/* The summary handler's answer, computed without the payload reader. */
static void expect_summary(const unsigned char *request, size_t request_len,
                           unsigned char *scratch, expected_answer *out) {
  size_t pos = 0, label_len, i;
  uint64_t base;
  uint32_t count;
  double sum = 0.0;

  out->status = SHMRPC_EAPP;
  out->app_code = MALFORMED_CODE;
  out->message = MALFORMED_MESSAGE;
  out->message_len = strlen(MALFORMED_MESSAGE);
  if (request_len < 12)
    return;
  base = le64(request);
  label_len = le32(request + 8);
  pos = 12;
  if (label_len > LABEL_MAX || label_len > request_len - pos ||
      request_len - pos - label_len < 4)
    return;
  pos += label_len;
  count = le32(request + pos);
  pos += 4;
  if ((request_len - pos) % 8 != 0 || (request_len - pos) / 8 != count)
    return;
  for (i = 0; i < count; i++)
    sum += f64_from_bits(le64(request + pos + 8 * i));

  put_le64(scratch, base + count);
  put_le32(scratch + 8, (uint32_t)label_len);
  memcpy(scratch + 12, request + 12, label_len);
  put_le32(scratch + 12 + label_len, count);
  put_le64(scratch + 16 + label_len, f64_bits(sum));
  out->status = 0;
  out->app_code = 0;
  out->message = "";
  out->message_len = 0;
  out->response = scratch;
  out->response_len = 24 + label_len;
}

static void expect_app_error(int32_t code, const char *message,
                             expected_answer *out) {
  size_t len = strlen(message);
  out->status = SHMRPC_EAPP;
  out->app_code = code > 0 ? code : 1;
  out->message = message;
  out->message_len = len > SHMRPC_MESSAGE_MAX ? SHMRPC_MESSAGE_MAX : len;
}

static void expect_fail(const unsigned char *request, size_t request_len,
                        fail_request *parsed, expected_answer *out) {
  parse_fail_request(request, request_len, parsed);
  switch (parsed->mode) {
  case FAIL_WITH_MESSAGE:
  case FAIL_THEN_TOOBIG:
    expect_app_error(parsed->code, parsed->message, out);
    break;
  case FAIL_RETURN_CODE:
    if (parsed->code == 0) {
      out->status = 0;
    } else if (parsed->code == SHMRPC_ETOOBIG) {
      out->status = SHMRPC_ETOOBIG;
    } else if (parsed->code > 0) {
      expect_app_error(parsed->code, "", out);
    } else {
      expect_app_error(1, shmrpc_strerror(parsed->code), out);
    }
    break;
  default:
    expect_app_error(parsed->code, "", out);
    break;
  }
}

/* The built-in list: each method as u32 id, u32 name length, name. */
static size_t expected_list(unsigned char *out) {
  static const struct {
    uint32_t id;
    const char *name;
  } methods[] = {{ECHO_ID, "echo"},
                 {SUMMARY_ID, "summary"},
                 {FAIL_ID, "fail"},
                 {SIZED_ID, SIZED_NAME}};
  size_t i, len = 0;
  for (i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
    size_t name_len = strlen(methods[i].name);
    put_le32(out + len, methods[i].id);
    put_le32(out + len + 4, (uint32_t)name_len);
    memcpy(out + len + 8, methods[i].name, name_len);
    len += 8 + name_len;
  }
  return len;
}

/* Whether each 32-bit word of the header is as this input wrote it or as
 * the server published it at start. */
static int header_as_written_or_published(const shmrpc__header *written) {
  unsigned char now[sizeof(shmrpc__header)];
  const unsigned char *before = (const unsigned char *)written;
  const unsigned char *published = (const unsigned char *)&fuzz.header;
  size_t at;
  memcpy(now, &fuzz.control->header, sizeof(now));
  for (at = 0; at < sizeof(now); at += 4) {
    if (memcmp(now + at, before + at, 4) != 0 &&
        memcmp(now + at, published + at, 4) != 0)
      return 0;
  }
  return 1;
}

/* ---- One input ----------------------------------------------------------- */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static unsigned char request[FUZZ_CAPACITY];    /* the request's bytes */
  static unsigned char area_bytes[FUZZ_CAPACITY]; /* what the area holds */
  unsigned char inline_bytes[SHMRPC__INLINE_MAX]; /* and the client line */
  static unsigned char scratch[FUZZ_CAPACITY]; /* expected responses */
  static uint32_t last_taken; /* the last call the server took (and answered) */
  static unsigned char filled[FUZZ_CAPACITY];  /* a sized answer */
  unsigned char prefix[AT_PAYLOAD] = {0};
  shmrpc__control *control;
  shmrpc__server_line line_before;
  shmrpc__header header_before;
  expected_answer expected;
  fail_request parsed;
  size_t payload_len;
  uint32_t flags, seq, method, request_len, slot_state;
  uint64_t calls_before;
  int rc;

  setup();
  control = fuzz.control;
  memcpy(prefix, data, size < AT_PAYLOAD ? size : AT_PAYLOAD);
  payload_len = size > AT_PAYLOAD ? size - AT_PAYLOAD : 0;
  if (payload_len > FUZZ_CAPACITY)
    payload_len = FUZZ_CAPACITY;

  flags = prefix[AT_FLAGS];
  seq = le32(prefix + AT_SEQ);
  method = pick_method(flags & FLAG_METHOD_MASK, le32(prefix + AT_METHOD));
  request_len = (flags & FLAG_RAW_LENGTH) ? le32(prefix + AT_REQUEST_LEN)
                                          : (uint32_t)payload_len;
  slot_state = (flags & FLAG_RAW_STATE) ? le32(prefix + AT_SLOT_STATE)
                                        : (uint32_t)SHMRPC__SLOT_POSTED;

  /* The caller's side of the slot, written as a hostile caller would. */
  memset(request, 0, sizeof(request));
  if (payload_len > 0)
    memcpy(request, data + AT_PAYLOAD, payload_len);
  /* Where the bytes are follows from request_len: the server must read
   * them there, so the other place holds a decoy. */
  memset(area_bytes, 0xd1, sizeof(area_bytes));
  memset(inline_bytes, 0xd2, sizeof(inline_bytes));
  if (request_len <= SHMRPC__INLINE_MAX)
    memcpy(inline_bytes, request, sizeof(inline_bytes));
  else
    memcpy(area_bytes, request, sizeof(area_bytes));
  memcpy(fuzz.request_area, area_bytes, sizeof(area_bytes));
  memcpy(control->client.request_inline, inline_bytes, sizeof(inline_bytes));
  control->client.call_seq = seq;
  control->client.method = method;
  control->client.request_len = request_len;
  control->client.request_sleepers = 0;
  memset(&control->server, 0, sizeof(control->server));
  if (flags & FLAG_SERVER_LINE) {
    const unsigned char *at = prefix + AT_SERVER_LINE;
    control->server.taken_seq = le32(at);
    control->server.response_seq = le32(at);
    control->server.status = (int32_t)le32(at + 4);
    control->server.app_code = (int32_t)le32(at + 8);
    control->server.response_len = le32(at + 12);
    control->server.message_len = le32(at + 16);
    control->server.response_sleepers = le32(at + 20);
  }
  memcpy(&control->header, &fuzz.header, sizeof(fuzz.header));
  if (flags & FLAG_HEADER) {
    const unsigned char *at = prefix + AT_HEADER;
    control->header.magic = le32(at);
    control->header.capacity = le32(at + 4);
    control->header.area_size = le32(at + 8);
    control->header.server_state = le32(at + 12);
    control->header.server_dead = le32(at + 16);
  }
  memset(control->message, (flags & FLAG_MESSAGE) ? prefix[AT_MESSAGE_FILL] : 0,
         sizeof(control->message));
  memcpy(&line_before, &control->server, sizeof(line_before));
  memcpy(&header_before, &control->header, sizeof(header_before));
  calls_before = control->stats.calls;
  shmrpc__store32_sc(&control->client.slot_state, slot_state);

  rc = shmrpc_server_run_once(fuzz.server, 0);

  /* The server never writes the caller's request. It may put back the
   * header it published, but write nothing else there. */
  CHECK(memcmp(fuzz.request_area, area_bytes, sizeof(area_bytes)) == 0);
  CHECK(memcmp(control->client.request_inline, inline_bytes,
               sizeof(inline_bytes)) == 0);
  CHECK(header_as_written_or_published(&header_before));

  /* The caller's line is the caller's: the server never writes it. */
  CHECK(control->client.slot_state == slot_state);
  CHECK(control->client.call_seq == seq);

  if (slot_state != SHMRPC__SLOT_POSTED || seq == last_taken) {
    /* Nothing new was posted: nothing may be taken or answered. An idle
     * server puts back its own sequence numbers (a forged taken_seq would
     * look like a call in progress) and leaves the rest of its line. */
    CHECK(rc == SHMRPC_ETIMEDOUT);
    CHECK(control->server.taken_seq == last_taken);
    CHECK(control->server.response_seq == last_taken);
    CHECK(control->server.status == line_before.status);
    CHECK(control->server.response_len == line_before.response_len);
    CHECK(control->stats.calls == calls_before);
    goto done;
  }

  CHECK(rc == 0);
  CHECK(control->server.taken_seq == seq);
  CHECK(control->server.response_seq == seq);
  CHECK(control->stats.calls == calls_before + 1);
  last_taken = seq;

  /* Invariants of every answer. */
  CHECK(control->server.status == 0 || control->server.status == SHMRPC_EAPP ||
        control->server.status == SHMRPC_ENOMETHOD ||
        control->server.status == SHMRPC_ETOOBIG);
  CHECK(control->server.response_len <= FUZZ_CAPACITY);
  CHECK(control->server.message_len <= SHMRPC_MESSAGE_MAX);
  CHECK(control->server.status == 0 || control->server.response_len == 0);
  CHECK(control->server.status == SHMRPC_EAPP ||
        (control->server.message_len == 0 && control->server.app_code == 0));
  CHECK(control->server.status != SHMRPC_EAPP || control->server.app_code > 0);

  /* What this particular call must answer. */
  memset(&expected, 0, sizeof(expected));
  expected.message = "";
  if (request_len > FUZZ_CAPACITY) {
    expected.status = SHMRPC_ETOOBIG;
  } else if (method == ECHO_ID || method == SHMRPC_METHOD_PING) {
    expected.response = request;
    expected.response_len = request_len;
  } else if (method == SHMRPC_METHOD_LIST) {
    expected.response_len = expected_list(scratch);
    expected.response = scratch;
  } else if (method == SUMMARY_ID) {
    expect_summary(request, request_len, scratch, &expected);
  } else if (method == FAIL_ID) {
    expect_fail(request, request_len, &parsed, &expected);
  } else if (method == SIZED_ID) {
    unsigned char head[5] = {0};
    uint32_t length;
    memcpy(head, request, request_len < 5 ? request_len : 5);
    length = le32(head);
    if (length > FUZZ_CAPACITY) {
      expected.status = SHMRPC_ETOOBIG;
    } else {
      memset(filled, head[4], length);
      expected.response = filled;
      expected.response_len = length;
    }
  } else {
    expected.status = SHMRPC_ENOMETHOD;
  }

  CHECK(control->server.status == expected.status);
  CHECK(control->server.response_len == expected.response_len);
  if (expected.response != NULL)
    CHECK(memcmp(fuzz.response_area, expected.response,
                 expected.response_len) == 0);
  /* A small answer is also in the server's line, where the caller reads
   * it. */
  if (expected.response != NULL && expected.response_len <= SHMRPC__INLINE_MAX)
    CHECK(memcmp(control->server.response_inline, expected.response,
                 expected.response_len) == 0);
  if (expected.status == SHMRPC_EAPP) {
    CHECK(control->server.app_code == expected.app_code);
    CHECK(control->server.message_len == expected.message_len);
    CHECK(memcmp(control->message, expected.message, expected.message_len) ==
          0);
  }

done:
  /* Leave the slot as a well-behaved caller would. */
  shmrpc__store32_sc(&control->client.slot_state, SHMRPC__SLOT_FREE);
  memcpy(&control->header, &fuzz.header, sizeof(fuzz.header));
  return 0;
}
