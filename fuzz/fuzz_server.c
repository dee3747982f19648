/*
 * libFuzzer target over the server's request validation, dispatch and
 * repair pass, for protocol 7 (the server area and the calls area of
 * src/layout.h, and the POSIX backend's words around them).
 *
 * One real server lives for the whole process: FUZZ_LANES lanes, one
 * worker, served on the fuzzing thread. The target opens the same service a
 * second time through the platform layer (shmrpc__os_service_open), as any
 * client process could, holds a lane lock with that connection's token, and
 * plays a hostile caller. Per input it writes fuzzed values into one lane's
 * request line and payload (and may post an honest call on a second lane),
 * may scribble the other words any caller can reach (the calls-area header
 * and crowd line; the backend's doorbell, queue, ring, lane lock and event
 * words) and the words only a process of the server's user can reach (the
 * header, the lane's answer line, the doorbell word, the backend's server
 * prefix), lets the server serve with shmrpc_server_run_once() or
 * shmrpc_server_dispatch(), and, if the input asks, runs its repair pass one
 * to three times. An oracle that knows what each method answers and what
 * the repair pass must put back then checks what the server wrote, and traps
 * on any difference. AddressSanitizer and UBSan catch the rest: setup()
 * poisons the unused bytes after each per-lane area, and the rest of each
 * object's last page, in every mapping of both objects (see guard_areas).
 *
 * The library's clock is this target's: CMakeLists.txt links it with
 * --wrap=shmrpc__os_now_ns, and the clock stands still except where an
 * input asks for a repair pass, which it then makes due (the server runs
 * the pass at most once per SHMRPC__REPAIR_GAP_NS, 50 ms). So the pass runs
 * exactly when an input asks for it, every input is deterministic, and the
 * deadline a handler reads (shmrpc_reply_timeout) is exact.
 *
 * Input layout (bytes past the end of a short input read as zero; integers
 * are little-endian):
 *
 *   0       call flags: bits 0-3 choose the method: 0 echo, 1 summary,
 *           2 fail, 3 sized, 4 SHMRPC_METHOD_PING, 5 SHMRPC_METHOD_LIST,
 *           6 refuse, 7 timeout (each handler says what it reads), 8 a
 *           reserved id that is not built in, 9 the raw id below the
 *           reserved ones, 10-15 the raw id (see pick_method);
 *           CALL_RAW_STATE, CALL_RAW_LENGTH, CALL_RAW_SEQ take those
 *           fields from the input rather than as a caller posts them;
 *           CALL_SECOND also posts an honest ping on another lane
 *   1       serve flags: bits 0-1 the lane; SERVE_DISPATCH serves with
 *           shmrpc_server_dispatch (its repair pass comes before the
 *           calls), else run_once (repair passes after it); SERVE_REPAIR
 *           runs the repair pass, bits 4-5 that many more times (0 to 2;
 *           3 reads as 2); bits 6-7 the deadline mode (see DEADLINE_*)
 *   2       word flags: WORDS_CALLS scribbles bytes 35-62, WORDS_BACKEND
 *           bytes 63-91, WORDS_SERVER bytes 92-121 (as a process of the
 *           server's user; ignored if the server's mapping was not found);
 *           bits 4-5 put the honest call on lane + 1 + (value % 3); bits
 *           6-7 the lock mode (see LOCK_*)
 *   3..6    call_seq (CALL_RAW_SEQ; else the previous one + 1, as posted)
 *   7..10   a raw method id (method choices 8 and up)
 *   11..14  request_len (CALL_RAW_LENGTH; else the payload's length)
 *   15..18  slot_state (CALL_RAW_STATE; else SHMRPC__SLOT_POSTED)
 *   19..22  timeout_ms
 *   23..30  deadline_ns, as the deadline mode says
 *   31..34  response_sleepers
 *   35..58  calls header: server_dead, reserved, timeouts (u64),
 *           recoveries (u64)
 *   59..62  crowd line: waiting
 *   63..66  the backend's doorbell (the request event word)
 *   67..70  queue head          71..74  queue tail
 *   75      a ring slot's index 76..79  its ticket     80..83  its state
 *   84..87  the lane's lock word, as the lock mode says
 *   88..91  the lane's event word
 *   92      a header word's index (% 16)           93..96  its value
 *   97..100 the lane's taken_seq (its info line)   101..104 its answer's
 *                                                  response_seq
 *   105..112 the lane's answer calls counter
 *   113..116 the doorbell line's request_sleepers
 *   117     a server prefix word's index (% 14)    118..121 its value
 *   122..   the request payload (at most FUZZ_CAPACITY bytes count)
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core.h"
#include "posix/posix.h"
#include "shmrpc_payload.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FUZZ_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) && !defined(FUZZ_ASAN)
#define FUZZ_ASAN 1
#endif
#ifdef FUZZ_ASAN
#include <sanitizer/asan_interface.h>
#endif

/* A capacity that is not a multiple of the 64-byte line leaves a gap after
 * each lane's payload and response area; setup() poisons those gaps, so a
 * read or write even one byte past an area is reported. */
#define FUZZ_CAPACITY 3700u
#define FUZZ_LANES 4u
/* The lane whose lock this target's connection holds for its lifetime. */
#define HELD_LANE 0u
/* SHMRPC__REPAIR_GAP_NS of src/server.c: how far the clock moves to make a
 * repair pass due. setup() checks that it does. */
#define FUZZ_REPAIR_GAP_NS 50000000u
/* The doorbell word between inputs: setup() leaves the server in its event
 * loop (shmrpc_server_dispatch), and every later dispatch leaves it there. */
#define DOORBELL_IDLE SHMRPC__SLEEPERS_FD
/* The backend's server prefix words that its repair puts back. */
#define PREFIX_CHECKED offsetof(posix_server_prefix, pad)
#define CALLS_PREFIX_BYTES                                                     \
  (sizeof(posix_calls_prefix) + FUZZ_LANES * sizeof(posix_lane_words))

/* Bytes the target writes where the server must not read, or must
 * overwrite. */
#define DECOY_PAYLOAD 0xd1
#define DECOY_INLINE 0xd2
#define DECOY_RESPONSE 0xd3
#define DECOY_RESPONSE_INLINE 0xd4
#define DECOY_MESSAGE 0xd5

/* The registered methods. SIZED_ID is the highest id a handler may have
 * and SIZED_NAME as long as a method name may be. */
#define ECHO_ID 1u
#define SUMMARY_ID 2u
#define FAIL_ID 3u
#define REFUSE_ID 4u
#define TIMEOUT_ID 5u
#define SIZED_ID (SHMRPC_METHOD_RESERVED - 1u)
#define SIZED_NAME                                                             \
  "sized-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUV"

_Static_assert(sizeof(SIZED_NAME) - 1 == SHMRPC_NAME_MAX,
               "SIZED_NAME is as long as a method name may be");
_Static_assert(FUZZ_LANES <= 4, "the input chooses a lane with two bits");

/* The summary handler's answer to a request it cannot parse. */
#define MALFORMED_CODE 22
#define MALFORMED_MESSAGE "malformed request"
/* Longest label the summary handler accepts, without its NUL. */
#define LABEL_MAX 47u
/* Longest message the fail handler passes on; longer than
 * SHMRPC_MESSAGE_MAX, so the truncation is exercised. */
#define FAIL_MESSAGE_MAX 511u
/* The refuse handler's application error, set before it fails the call. */
#define REFUSE_APP_CODE 77
#define REFUSE_MESSAGE "refused by the application"

enum input_offset {
  AT_CALL_FLAGS = 0,
  AT_SERVE_FLAGS = 1,
  AT_WORD_FLAGS = 2,
  AT_SEQ = 3,
  AT_METHOD = 7,
  AT_REQUEST_LEN = 11,
  AT_SLOT_STATE = 15,
  AT_TIMEOUT = 19,
  AT_DEADLINE = 23,
  AT_SLEEPERS = 31,
  AT_CALLS_HEADER = 35,
  AT_CROWD = 59,
  AT_DOORBELL_EVENT = 63,
  AT_QUEUE_HEAD = 67,
  AT_QUEUE_TAIL = 71,
  AT_RING_INDEX = 75,
  AT_RING_TICKET = 76,
  AT_RING_STATE = 80,
  AT_LANE_LOCK = 84,
  AT_LANE_EVENT = 88,
  AT_HEADER_WORD = 92,
  AT_HEADER_VALUE = 93,
  AT_TAKEN_SEQ = 97,
  AT_RESPONSE_SEQ = 101,
  AT_ANSWER_CALLS = 105,
  AT_DOORBELL = 113,
  AT_PREFIX_WORD = 117,
  AT_PREFIX_VALUE = 118,
  AT_PAYLOAD = 122
};

/* Byte 0. */
#define CALL_METHOD_MASK 0x0fu
#define CALL_RAW_STATE 0x10u  /* slot_state from the input, not POSTED */
#define CALL_RAW_LENGTH 0x20u /* request_len from the input */
#define CALL_RAW_SEQ 0x40u    /* call_seq from the input, not the next one */
#define CALL_SECOND 0x80u     /* an honest ping on another lane as well */
/* Byte 1. */
#define SERVE_LANE_MASK 0x03u
#define SERVE_DISPATCH 0x04u
#define SERVE_REPAIR 0x08u
#define SERVE_PASSES_SHIFT 4
#define SERVE_DEADLINE_SHIFT 6
/* Byte 2. */
#define WORDS_CALLS 0x01u
#define WORDS_BACKEND 0x02u
#define WORDS_SERVER 0x04u
#define WORDS_SECOND_LANE_SHIFT 4
#define WORDS_LOCK_SHIFT 6

/* Where deadline_ns comes from. */
enum deadline_mode {
  DEADLINE_NONE = 0,  /* 0: the caller did not read its clock */
  DEADLINE_RAW = 1,   /* the input's 64 bits */
  DEADLINE_AHEAD = 2, /* now + the input's value % 2^40 ns */
  DEADLINE_BEHIND = 3 /* now - the input's value % now: already past */
};

/* What happens to the lane's lock word with WORDS_BACKEND. */
enum lock_mode {
  LOCK_KEEP = 0, /* left as it is */
  LOCK_RAW = 1,  /* the input's value */
  LOCK_MINE = 2, /* the lock word of this target's live connection */
  LOCK_FREE = 3  /* 0 */
};

/* The entry points libFuzzer calls. */
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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

/* The one server of this process, a caller's view of it, and what the
 * oracle knows of the server's private state. */
static struct fuzz_state {
  int ready;
  char name[SHMRPC_NAME_MAX + 1];
  shmrpc_server *server;
  shmrpc__os_service *view;         /* a second, client-side opening */
  const unsigned char *server_area; /* in the view: read-only */
  unsigned char *calls_area;        /* in the view */
  posix_calls_prefix *calls_prefix; /* in the view, before calls_area */
  unsigned char *server_object;     /* the server's own (writable) mapping
                                       of its object; NULL if not found */
  unsigned char *server_calls;      /* the server's own mapping of the
                                       calls object; NULL if not found */
  size_t page;
  int lane_fifo[FUZZ_LANES];            /* read sides of the lanes' FIFOs */
  uint32_t my_lock;                     /* the lock word of HELD_LANE */
  shmrpc__header header;                /* as the server published it */
  unsigned char prefix[PREFIX_CHECKED]; /* the backend's server prefix */
  uint32_t taken[FUZZ_LANES];           /* the last call_seq taken per lane */
  uint64_t calls[FUZZ_LANES];           /* calls answered per lane */
  uint32_t next_lane;                   /* where the server looks first */
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

/* ---- The library's clock ------------------------------------------------- */

/* With --wrap=shmrpc__os_now_ns (see CMakeLists.txt) every clock read of
 * the library comes here. The clock starts at the real monotonic time and
 * moves only in advance_clock(). */
static uint64_t fuzz_clock_ns;

uint64_t __real_shmrpc__os_now_ns(void);
uint64_t __wrap_shmrpc__os_now_ns(void);

uint64_t __wrap_shmrpc__os_now_ns(void) { return fuzz_clock_ns; }

/* Makes the server's next repair pass due. */
static void advance_clock(void) { fuzz_clock_ns += FUZZ_REPAIR_GAP_NS; }

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

/* FAIL_ID: fails in the ways an application may. */
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

/* What REFUSE_ID does, chosen by the first request byte; the code is the
 * i32 that follows it. */
enum refuse_mode {
  REFUSE_PLAIN = 0,       /* return shmrpc_reply_fail(code) */
  REFUSE_AFTER_WRITE = 1, /* write the request as a response, then that */
  REFUSE_AFTER_ERROR = 2, /* an application error first, then that */
  REFUSE_THEN_SUCCEED = 3 /* shmrpc_reply_fail(code), then return 0 */
};

static void parse_refuse_request(const unsigned char *request,
                                 size_t request_len, int *mode, int32_t *code) {
  unsigned char head[5] = {0};
  memcpy(head, request, request_len < 5 ? request_len : 5);
  *mode = head[0] & 3;
  *code = (int32_t)le32(head + 1);
}

/* REFUSE_ID: fails the call with a transport code, as a bridge does. */
static int handle_refuse(void *user_data, const void *request,
                         size_t request_len, shmrpc_reply *reply) {
  int mode;
  int32_t code;
  (void)user_data;
  parse_refuse_request(request, request_len, &mode, &code);
  switch (mode) {
  case REFUSE_PLAIN:
    return shmrpc_reply_fail(reply, code);
  case REFUSE_AFTER_WRITE:
    if (shmrpc_reply_write(reply, request, request_len) != 0)
      return SHMRPC_EPROTO;
    return shmrpc_reply_fail(reply, code);
  case REFUSE_AFTER_ERROR:
    shmrpc_reply_error(reply, REFUSE_APP_CODE, REFUSE_MESSAGE);
    return shmrpc_reply_fail(reply, code);
  default:
    (void)shmrpc_reply_fail(reply, code);
    return 0;
  }
}

/* TIMEOUT_ID: answers i32 shmrpc_reply_timeout() and u32
 * shmrpc_reply_method(), which come from the caller's request line. */
static int handle_timeout(void *user_data, const void *request,
                          size_t request_len, shmrpc_reply *reply) {
  unsigned char out[8];
  (void)user_data;
  (void)request;
  (void)request_len;
  put_le32(out, (uint32_t)shmrpc_reply_timeout(reply));
  put_le32(out + 4, shmrpc_reply_method(reply));
  return shmrpc_reply_write(reply, out, sizeof(out));
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

/* The registered methods, in the order SHMRPC_METHOD_LIST gives them. */
static const struct fuzz_method {
  uint32_t id;
  const char *name;
  shmrpc_handler handler;
} methods[] = {{ECHO_ID, "echo", handle_echo},
               {SUMMARY_ID, "summary", handle_summary},
               {FAIL_ID, "fail", handle_fail},
               {REFUSE_ID, "refuse", handle_refuse},
               {TIMEOUT_ID, "timeout", handle_timeout},
               {SIZED_ID, SIZED_NAME, handle_sized}};

#define METHOD_COUNT (sizeof(methods) / sizeof(methods[0]))

/* ---- Where things are ---------------------------------------------------- */

static shmrpc__request_line *request_line(uint32_t lane) {
  return shmrpc__area_request(fuzz.calls_area, lane);
}

static unsigned char *payload_area(uint32_t lane) {
  return shmrpc__area_payload(fuzz.calls_area, FUZZ_LANES, FUZZ_CAPACITY, lane);
}

static const shmrpc__answer_line *answer_line(uint32_t lane) {
  return shmrpc__area_answer(fuzz.server_area, lane);
}

static const shmrpc__lane_info *lane_info(uint32_t lane) {
  return shmrpc__area_lane_info(fuzz.server_area, FUZZ_LANES, lane);
}

static const unsigned char *response_area(uint32_t lane) {
  return shmrpc__area_response(fuzz.server_area, FUZZ_LANES, FUZZ_CAPACITY,
                               lane);
}

static const char *message_area(uint32_t lane) {
  return shmrpc__area_message(fuzz.server_area, FUZZ_LANES, lane);
}

static const shmrpc__stats_line *stats_line(void) {
  return shmrpc__area_stats(fuzz.server_area);
}

static volatile uint32_t *doorbell_word(void) {
  return &shmrpc__area_doorbell(fuzz.server_area)->request_sleepers;
}

/* The server's own mapping of its area, which a process of the server's
 * user may write; NULL if it was not found. */
static unsigned char *writable_server_area(void) {
  return fuzz.server_object == NULL ? NULL
                                    : fuzz.server_object + POSIX_SERVER_PREFIX;
}

/* ---- Set-up and tear-down ------------------------------------------------ */

/* Finds the mapping of /dev/shm/shmrpc.NAME<suffix> that does not hold
 * `not_this` (the view's): the server's own. NULL unless there is exactly
 * one. */
static unsigned char *find_other_mapping(const char *suffix,
                                         const void *not_this) {
  char wanted[SHMRPC_NAME_MAX + 32], line[512], path[256];
  unsigned long start, end, found_start = 0;
  uintptr_t view = (uintptr_t)not_this;
  int found = 0;
  FILE *maps = fopen("/proc/self/maps", "r");

  if (maps == NULL)
    return NULL;
  snprintf(wanted, sizeof(wanted), "/dev/shm/shmrpc.%s%s", fuzz.name, suffix);
  while (fgets(line, sizeof(line), maps) != NULL) {
    if (sscanf(line, "%lx-%lx %*s %*s %*s %*s %255s", &start, &end, path) !=
            3 ||
        strcmp(path, wanted) != 0 || (view >= start && view < end))
      continue;
    found_start = start;
    found++;
  }
  fclose(maps);
  return found == 1 ? (unsigned char *)(uintptr_t)found_start : NULL;
}

#ifdef FUZZ_ASAN
static void guard(unsigned char *at, size_t len, int poison) {
  if (len == 0)
    return;
  if (poison)
    __asan_poison_memory_region(at, len);
  else
    __asan_unpoison_memory_region(at, len);
}

/* From `end` to the end of its page. */
static void guard_tail(unsigned char *end, int poison) {
  uintptr_t at = (uintptr_t)end;
  uintptr_t page_end = (at + fuzz.page - 1) & ~(uintptr_t)(fuzz.page - 1);
  guard(end, (size_t)(page_end - at), poison);
}

/* The bytes of a server object no one may touch: each message area's byte
 * past SHMRPC_MESSAGE_MAX, each response area's gap to the next line, and
 * the rest of the last page. */
static void guard_server_object(unsigned char *object, int poison) {
  unsigned char *area = object + POSIX_SERVER_PREFIX;
  uint64_t stride = shmrpc__align_line(FUZZ_CAPACITY);
  uint32_t lane;
  for (lane = 0; lane < FUZZ_LANES; lane++) {
    guard(area + shmrpc__off_messages(FUZZ_LANES) +
              (uint64_t)lane * SHMRPC__MESSAGE_AREA + SHMRPC_MESSAGE_MAX,
          SHMRPC__MESSAGE_AREA - SHMRPC_MESSAGE_MAX, poison);
    guard(area + shmrpc__off_responses(FUZZ_LANES) + lane * stride +
              FUZZ_CAPACITY,
          (size_t)(stride - FUZZ_CAPACITY), poison);
  }
  guard_tail(area + shmrpc__server_size(FUZZ_CAPACITY, FUZZ_LANES), poison);
}

/* The same for a calls object: each payload area's gap, the last page. */
static void guard_calls_object(unsigned char *object, int poison) {
  unsigned char *area = object + CALLS_PREFIX_BYTES;
  uint64_t stride = shmrpc__align_line(FUZZ_CAPACITY);
  uint32_t lane;
  for (lane = 0; lane < FUZZ_LANES; lane++)
    guard(area + shmrpc__off_payloads(FUZZ_LANES) + lane * stride +
              FUZZ_CAPACITY,
          (size_t)(stride - FUZZ_CAPACITY), poison);
  guard_tail(area + shmrpc__calls_size(FUZZ_CAPACITY, FUZZ_LANES), poison);
}

/* AddressSanitizer knows nothing of shared memory: these poison (or
 * unpoison) the unused bytes of every mapping of both objects, the view's
 * and the server's own. */
static void guard_areas(int poison) {
  guard_server_object(
      (unsigned char *)(uintptr_t)(fuzz.server_area - POSIX_SERVER_PREFIX),
      poison);
  guard_calls_object((unsigned char *)fuzz.calls_prefix, poison);
  if (fuzz.server_object != NULL)
    guard_server_object(fuzz.server_object, poison);
  if (fuzz.server_calls != NULL)
    guard_calls_object(fuzz.server_calls, poison);
}
#else
static void guard_areas(int poison) { (void)poison; }
#endif

static void teardown(void) {
  uint32_t lane;
  if (!fuzz.ready)
    return;
  fuzz.ready = 0;
  /* The addresses may be mapped again after the unmapping. */
  guard_areas(0);
  for (lane = 0; lane < FUZZ_LANES; lane++)
    if (fuzz.lane_fifo[lane] >= 0)
      close(fuzz.lane_fifo[lane]);
  shmrpc__os_service_close(fuzz.view);
  shmrpc_server_destroy(fuzz.server);
}

static void fail_setup(const char *what, int rc) {
  fprintf(stderr, "fuzz_server: %s: %s\n", what, shmrpc_strerror(rc));
  abort();
}

/* Reads what a lane's FIFO holds, without waiting; returns the bytes. */
static size_t drain_fifo(uint32_t lane) {
  unsigned char bytes[256];
  size_t total = 0;
  ssize_t got;
  if (fuzz.lane_fifo[lane] < 0)
    return 0;
  while ((got = read(fuzz.lane_fifo[lane], bytes, sizeof(bytes))) > 0)
    total += (size_t)got;
  return total;
}

/* Checks, once, that the clock decides when the repair pass runs: the pass
 * clears a caller's "server dead" hint. */
static void check_repair_control(void) {
  volatile uint32_t *dead =
      &shmrpc__area_calls_header(fuzz.calls_area)->server_dead;
  int step, rc;
  for (step = 0; step < 3; step++) {
    shmrpc__store32(dead, 1);
    if (step != 1)
      advance_clock();
    rc = shmrpc_server_dispatch(fuzz.server);
    if (rc != 0)
      fail_setup("shmrpc_server_dispatch", rc);
    if (shmrpc__load32(dead) != (step == 1 ? 1u : 0u))
      fail_setup(step == 1 ? "a repair pass ran while the clock stood still"
                           : "no repair pass ran when the clock said so "
                             "(has SHMRPC__REPAIR_GAP_NS changed?)",
                 SHMRPC_EPROTO);
  }
  shmrpc__store32(dead, 0);
}

/* Creates the server and the caller's view, once per process. */
static void setup(void) {
  shmrpc_server_options options;
  shmrpc__os_open_options open_options;
  const void *server_area = NULL;
  void *calls_area = NULL;
  size_t server_size = 0, calls_size = 0, i;
  uint32_t lane;
  int rc;

  if (fuzz.ready)
    return;
  fuzz_clock_ns = __real_shmrpc__os_now_ns();
  fuzz.page = (size_t)sysconf(_SC_PAGESIZE);
  for (lane = 0; lane < FUZZ_LANES; lane++)
    fuzz.lane_fifo[lane] = -1;
  snprintf(fuzz.name, sizeof(fuzz.name), "fuzz-%lu",
           (unsigned long)shmrpc__os_pid());
  shmrpc_server_options_init(&options);
  options.capacity = FUZZ_CAPACITY;
  options.lanes = FUZZ_LANES;
  options.workers = 1;
  /* With no spinning, run_once(server, 0) with nothing posted returns at
   * once instead of spinning 100 microseconds per input. */
  options.spin_us = 0;
  rc = shmrpc_server_create(&fuzz.server, fuzz.name, &options);
  if (rc != 0)
    fail_setup("shmrpc_server_create", rc);
  for (i = 0; i < METHOD_COUNT; i++) {
    rc = shmrpc_server_register(fuzz.server, methods[i].id, methods[i].name,
                                methods[i].handler, NULL);
    if (rc != 0)
      fail_setup("shmrpc_server_register", rc);
  }

  memset(&open_options, 0, sizeof(open_options));
  rc = shmrpc__os_service_open(fuzz.name, &open_options, &fuzz.view,
                               &server_area, &server_size, &calls_area,
                               &calls_size);
  if (rc != 0)
    fail_setup("shmrpc__os_service_open", rc);
  if (server_size < shmrpc__server_size(FUZZ_CAPACITY, FUZZ_LANES) ||
      calls_size < shmrpc__calls_size(FUZZ_CAPACITY, FUZZ_LANES))
    fail_setup("the mapped areas are too small", SHMRPC_EPROTO);
  fuzz.server_area = server_area;
  fuzz.calls_area = calls_area;
  fuzz.calls_prefix =
      (posix_calls_prefix *)(void *)((unsigned char *)calls_area -
                                     CALLS_PREFIX_BYTES);
  memcpy(&fuzz.header, fuzz.server_area, sizeof(fuzz.header));
  if (fuzz.header.magic != SHMRPC__MAGIC ||
      fuzz.header.version != SHMRPC__PROTOCOL_VERSION ||
      fuzz.header.capacity != FUZZ_CAPACITY || fuzz.header.lanes != FUZZ_LANES)
    fail_setup("the header is not this protocol's as created", SHMRPC_EPROTO);
  memcpy(fuzz.prefix, fuzz.server_area - POSIX_SERVER_PREFIX,
         sizeof(fuzz.prefix));

  /* A lane this connection holds: its lock word names a live token, which
   * the repair pass must leave alone. */
  rc = shmrpc__os_lane_try(fuzz.view, HELD_LANE, &lane);
  if (rc != 0 || lane != HELD_LANE)
    fail_setup("shmrpc__os_lane_try", rc != 0 ? rc : SHMRPC_EPROTO);
  fuzz.my_lock = shmrpc__load32(&fuzz.calls_prefix->lane[HELD_LANE].lock);
  if (fuzz.my_lock == 0)
    fail_setup("the held lane's lock word is 0", SHMRPC_EPROTO);

  /* The read sides of the lanes' FIFOs, as a caller's event loop opens
   * them: the server writes a byte into one to wake that lane's caller. */
  for (lane = 0; lane < FUZZ_LANES; lane++) {
    char path[POSIX_PATH_MAX];
    snprintf(path, sizeof(path), "/dev/shm/shmrpc.%s@%u", fuzz.name,
             (unsigned)lane);
    fuzz.lane_fifo[lane] = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fuzz.lane_fifo[lane] < 0)
      fail_setup("opening a lane's FIFO", SHMRPC_EOS);
  }

  fuzz.server_object = find_other_mapping("", fuzz.server_area);
  fuzz.server_calls = find_other_mapping("@calls", fuzz.calls_area);
  if (fuzz.server_object == NULL || fuzz.server_calls == NULL)
    fprintf(stderr, "fuzz_server: note: the server's own mappings were not "
                    "found; only the view's are guarded, and the server "
                    "area is not scribbled\n");
#ifndef FUZZ_ASAN
  fprintf(stderr, "fuzz_server: note: built without AddressSanitizer; the "
                  "shared areas are not guarded\n");
#endif
  guard_areas(1);
  fuzz.ready = 1;
  atexit(teardown);
  /* Leaves the server in its event loop (DOORBELL_IDLE). */
  check_repair_control();
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
  int timeout_answer; /* TIMEOUT_ID: see check_timeout_answer */
  int64_t timeout_ms; /* the milliseconds it must say */
} expected_answer;

/* Maps the method bits of the call flags onto a method id. */
static uint32_t pick_method(unsigned choice, uint32_t raw) {
  static const uint32_t chosen[] = {
      ECHO_ID,   SUMMARY_ID,         FAIL_ID,
      SIZED_ID,  SHMRPC_METHOD_PING, SHMRPC_METHOD_LIST,
      REFUSE_ID, TIMEOUT_ID};
  if (choice < sizeof(chosen) / sizeof(chosen[0]))
    return chosen[choice];
  if (choice == 8) /* reserved, not built in */
    return SHMRPC_METHOD_LIST + 1u + raw % (UINT32_MAX - SHMRPC_METHOD_LIST);
  if (choice == 9) /* below the reserved ids: registered or not */
    return raw % SHMRPC_METHOD_RESERVED;
  return raw;
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

/* The codes shmrpc_reply_fail() accepts, as include/shmrpc.h lists them. */
static int transport_code(int32_t code) {
  static const int32_t allowed[] = {
      SHMRPC_ETIMEDOUT, SHMRPC_ENOSERVER, SHMRPC_ESERVERDIED, SHMRPC_ESHUTDOWN,
      SHMRPC_ENOMETHOD, SHMRPC_ETOOBIG,   SHMRPC_EACCES,      SHMRPC_EUNTRUSTED,
      SHMRPC_EAGAIN,    SHMRPC_ECANCELED};
  size_t i;
  for (i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++)
    if (allowed[i] == code)
      return 1;
  return 0;
}

static void expect_refuse(const unsigned char *request, size_t request_len,
                          expected_answer *out) {
  int mode;
  int32_t code;
  parse_refuse_request(request, request_len, &mode, &code);
  if (transport_code(code)) {
    /* The transport code wins over a response and an application error. */
    out->status = code;
    return;
  }
  /* shmrpc_reply_fail() refused the code with SHMRPC_EINVAL. */
  switch (mode) {
  case REFUSE_AFTER_ERROR:
    expect_app_error(REFUSE_APP_CODE, REFUSE_MESSAGE, out);
    break;
  case REFUSE_THEN_SUCCEED:
    out->status = 0;
    break;
  default:
    expect_app_error(1, shmrpc_strerror(SHMRPC_EINVAL), out);
    break;
  }
}

/* What shmrpc_reply_timeout() must say with the clock at now_ns: the
 * caller's deadline if it sent one, else its timeout counted from now. */
static int64_t expected_timeout(int32_t timeout_ms, uint64_t deadline_ns,
                                uint64_t now_ns) {
  if (deadline_ns == 0)
    return timeout_ms < 0 ? SHMRPC_INFINITE : timeout_ms;
  if (now_ns >= deadline_ns)
    return 0;
  return (int64_t)((deadline_ns - now_ns) / 1000000u);
}

/* The built-in list: each method as u32 id, u32 name length, name. */
static size_t expected_list(unsigned char *out) {
  size_t i, len = 0;
  for (i = 0; i < METHOD_COUNT; i++) {
    size_t name_len = strlen(methods[i].name);
    put_le32(out + len, methods[i].id);
    put_le32(out + len + 4, (uint32_t)name_len);
    memcpy(out + len + 8, methods[i].name, name_len);
    len += 8 + name_len;
  }
  return len;
}

/* ---- One input ----------------------------------------------------------- */

/* One call this input posts, as the oracle sees it. */
typedef struct fuzz_call {
  uint32_t lane;
  uint32_t seq;
  uint32_t method;
  uint32_t request_len;
  uint32_t slot_state;
  int32_t timeout_ms;
  uint64_t deadline_ns;
  uint32_t sleepers;
  const unsigned char *request; /* FUZZ_CAPACITY bytes, zero past input */
  unsigned char *payload;       /* what its payload area must hold */
  shmrpc__request_line line;    /* what its request line must hold */
  shmrpc__lane_info info;       /* its lane's counters before */
  int posted;                   /* the server must take it */
  int served;                   /* the server took and answered it */
  uint64_t serve_clock_ns;      /* the clock while it was served */
} fuzz_call;

/* Everything one input did, and what the server must do with it. */
typedef struct fuzz_round {
  unsigned char in[AT_PAYLOAD]; /* the input's fixed fields */
  unsigned call_flags, serve_flags, word_flags;
  fuzz_call call[2]; /* the fuzzed call, and maybe an honest one */
  int calls;
  int passes; /* repair passes this input runs */
  int passes_run;
  int quiet;        /* some pass saw no call in flight */
  uint32_t fixed;   /* lanes whose answer line a pass put back */
  uint32_t cleared; /* lanes whose lock word the first pass cleared */
  /* The calls object's words as the input left them. */
  unsigned char calls_prefix[CALLS_PREFIX_BYTES];
  shmrpc__calls_header calls_header;
  shmrpc__crowd_line crowd;
  /* The server area's words as the input left them (WORDS_SERVER). */
  int server_words;
  shmrpc__header header;
  unsigned char prefix[PREFIX_CHECKED];
  uint32_t taken_seq, response_seq, doorbell;
  uint64_t answer_calls;
  shmrpc__stats_line stats;               /* before */
  shmrpc__request_line lines[FUZZ_LANES]; /* every request line, before */
} fuzz_round;

/* What the calls object's prefix and first lines held before the input:
 * put back after it, so that inputs do not depend on each other. */
static unsigned char saved_prefix[CALLS_PREFIX_BYTES];
static unsigned char saved_lines[SHMRPC__OFF_REQUESTS];

/* The next call_seq a caller posts on the lane (see shmrpc__lane_post):
 * never 0, never the one the server took last. */
static uint32_t next_seq(uint32_t lane) {
  uint32_t seq = shmrpc__load32(&request_line(lane)->call_seq) + 1u;
  while (seq == 0 || seq == fuzz.taken[lane])
    seq++;
  return seq;
}

/* Writes the call into its lane as a caller would, slot_state last. The
 * bytes go where request_len says; the other place holds a decoy, so that
 * the server must read the right one. */
static void post(fuzz_call *call) {
  shmrpc__request_line *line = request_line(call->lane);
  shmrpc__request_line *image = &call->line;

  memset(call->payload, DECOY_PAYLOAD, FUZZ_CAPACITY);
  memset(image, 0, sizeof(*image));
  memset(image->request_inline, DECOY_INLINE, sizeof(image->request_inline));
  if (call->request_len <= SHMRPC__INLINE_MAX)
    memcpy(image->request_inline, call->request, sizeof(image->request_inline));
  else
    memcpy(call->payload, call->request, FUZZ_CAPACITY);
  image->slot_state = call->slot_state;
  image->call_seq = call->seq;
  image->method = call->method;
  image->request_len = call->request_len;
  image->timeout_ms = call->timeout_ms;
  image->response_sleepers = call->sleepers;
  image->deadline_ns = call->deadline_ns;

  memcpy(payload_area(call->lane), call->payload, FUZZ_CAPACITY);
  memcpy(line->request_inline, image->request_inline,
         sizeof(line->request_inline));
  line->method = call->method;
  line->request_len = call->request_len;
  line->timeout_ms = call->timeout_ms;
  line->response_sleepers = call->sleepers;
  line->deadline_ns = call->deadline_ns;
  shmrpc__store32_sc(&line->call_seq, call->seq);
  shmrpc__store32_sc(&line->slot_state, call->slot_state);
  call->posted = call->slot_state == SHMRPC__SLOT_POSTED &&
                 call->seq != fuzz.taken[call->lane];
}

/* The fuzzed call of this input. */
static void post_fuzzed(fuzz_round *r, const uint8_t *data, size_t size) {
  static unsigned char request[FUZZ_CAPACITY];
  static unsigned char payload[FUZZ_CAPACITY];
  fuzz_call *call = &r->call[0];
  const unsigned char *in = r->in;
  size_t payload_len = size > AT_PAYLOAD ? size - AT_PAYLOAD : 0;
  uint64_t raw_deadline = le64(in + AT_DEADLINE);

  if (payload_len > FUZZ_CAPACITY)
    payload_len = FUZZ_CAPACITY;
  memset(request, 0, sizeof(request));
  if (payload_len > 0)
    memcpy(request, data + AT_PAYLOAD, payload_len);
  call->lane = r->serve_flags & SERVE_LANE_MASK;
  call->request = request;
  call->payload = payload;
  call->seq =
      (r->call_flags & CALL_RAW_SEQ) ? le32(in + AT_SEQ) : next_seq(call->lane);
  call->method =
      pick_method(r->call_flags & CALL_METHOD_MASK, le32(in + AT_METHOD));
  call->request_len = (r->call_flags & CALL_RAW_LENGTH)
                          ? le32(in + AT_REQUEST_LEN)
                          : (uint32_t)payload_len;
  call->slot_state = (r->call_flags & CALL_RAW_STATE)
                         ? le32(in + AT_SLOT_STATE)
                         : (uint32_t)SHMRPC__SLOT_POSTED;
  call->timeout_ms = (int32_t)le32(in + AT_TIMEOUT);
  call->sleepers = le32(in + AT_SLEEPERS);
  switch (r->serve_flags >> SERVE_DEADLINE_SHIFT) {
  case DEADLINE_RAW:
    call->deadline_ns = raw_deadline;
    break;
  case DEADLINE_AHEAD:
    call->deadline_ns = fuzz_clock_ns + raw_deadline % ((uint64_t)1 << 40);
    break;
  case DEADLINE_BEHIND:
    call->deadline_ns = fuzz_clock_ns - raw_deadline % fuzz_clock_ns;
    break;
  default:
    call->deadline_ns = 0;
    break;
  }
  post(call);
  r->calls = 1;
}

/* An honest caller's ping on another lane: a hostile neighbour must not
 * change its answer. */
static void post_honest(fuzz_round *r) {
  static unsigned char request[FUZZ_CAPACITY];
  static unsigned char payload[FUZZ_CAPACITY];
  fuzz_call *call = &r->call[1];
  uint32_t offset = (r->word_flags >> WORDS_SECOND_LANE_SHIFT) & 3u;

  call->lane = (r->call[0].lane + 1u + offset % (FUZZ_LANES - 1u)) % FUZZ_LANES;
  call->seq = next_seq(call->lane);
  memcpy(request, "ping", 4);
  put_le32(request + 4, call->seq);
  call->request = request;
  call->payload = payload;
  call->method = SHMRPC_METHOD_PING;
  call->request_len = 8;
  call->slot_state = SHMRPC__SLOT_POSTED;
  call->timeout_ms = SHMRPC_INFINITE;
  call->deadline_ns = 0;
  call->sleepers = SHMRPC__SLEEPER_NONE;
  post(call);
  r->calls = 2;
}

/* The calls-area words any caller may write: the header (a caller's hint
 * that the server died, the counters callers report) and the crowd line. */
static void scribble_calls_words(const fuzz_round *r) {
  shmrpc__calls_header *header = shmrpc__area_calls_header(fuzz.calls_area);
  const unsigned char *in = r->in + AT_CALLS_HEADER;
  if (!(r->word_flags & WORDS_CALLS))
    return;
  header->server_dead = le32(in);
  header->reserved = le32(in + 4);
  header->timeouts = le64(in + 8);
  header->recoveries = le64(in + 16);
  shmrpc__area_crowd(fuzz.calls_area)->waiting = le32(r->in + AT_CROWD);
}

/* The backend's words in the calls object, which any caller may write. */
static void scribble_backend_words(const fuzz_round *r) {
  posix_calls_prefix *prefix = fuzz.calls_prefix;
  const unsigned char *in = r->in;
  uint32_t lane = r->call[0].lane;
  posix_ring_slot *slot = &prefix->ring[in[AT_RING_INDEX] % POSIX_RING];
  if (!(r->word_flags & WORDS_BACKEND))
    return;
  prefix->doorbell = le32(in + AT_DOORBELL_EVENT);
  prefix->head = le32(in + AT_QUEUE_HEAD);
  prefix->tail = le32(in + AT_QUEUE_TAIL);
  slot->ticket = le32(in + AT_RING_TICKET);
  slot->state = le32(in + AT_RING_STATE);
  switch (r->word_flags >> WORDS_LOCK_SHIFT) {
  case LOCK_RAW:
    prefix->lane[lane].lock = le32(in + AT_LANE_LOCK);
    break;
  case LOCK_MINE:
    prefix->lane[lane].lock = fuzz.my_lock;
    break;
  case LOCK_FREE:
    prefix->lane[lane].lock = 0;
    break;
  default:
    break;
  }
  prefix->lane[lane].event = le32(in + AT_LANE_EVENT);
}

/* The server area's words, as a process of the server's user could write
 * them: a header word, the fuzzed lane's sequence numbers and call count,
 * the doorbell word, a word of the backend's server prefix. */
static void scribble_server_words(fuzz_round *r) {
  unsigned char *area = writable_server_area();
  shmrpc__answer_line *answer;
  const unsigned char *in = r->in;
  unsigned header_word = in[AT_HEADER_WORD] % (sizeof(shmrpc__header) / 4);
  unsigned prefix_word = in[AT_PREFIX_WORD] % (PREFIX_CHECKED / 4);
  if (!(r->word_flags & WORDS_SERVER) || area == NULL)
    return;
  r->server_words = 1;
  answer = shmrpc__area_answer(area, r->call[0].lane);
  memcpy(area + 4 * header_word, in + AT_HEADER_VALUE, 4);
  memcpy(fuzz.server_object + 4 * prefix_word, in + AT_PREFIX_VALUE, 4);
  shmrpc__area_lane_info(area, FUZZ_LANES, r->call[0].lane)->taken_seq =
      le32(in + AT_TAKEN_SEQ);
  answer->response_seq = le32(in + AT_RESPONSE_SEQ);
  answer->calls = le64(in + AT_ANSWER_CALLS);
  shmrpc__area_doorbell(area)->request_sleepers = le32(in + AT_DOORBELL);
}

/* Fills the response and message of each lane called with decoys, so that
 * an answer must bring its own bytes. */
static void fill_answers(const fuzz_round *r) {
  unsigned char *area = writable_server_area();
  int i;
  if (area == NULL)
    return;
  for (i = 0; i < r->calls; i++) {
    uint32_t lane = r->call[i].lane;
    memset(shmrpc__area_response(area, FUZZ_LANES, FUZZ_CAPACITY, lane),
           DECOY_RESPONSE, FUZZ_CAPACITY);
    memset(shmrpc__area_answer(area, lane)->response_inline,
           DECOY_RESPONSE_INLINE, SHMRPC__INLINE_MAX);
    memset(shmrpc__area_message(area, FUZZ_LANES, lane), DECOY_MESSAGE,
           SHMRPC_MESSAGE_MAX);
  }
}

/* Records what the words hold now that the input has written them. */
static void record_words(fuzz_round *r) {
  int i;
  memcpy(r->calls_prefix, fuzz.calls_prefix, sizeof(r->calls_prefix));
  memcpy(&r->calls_header, shmrpc__area_calls_header(fuzz.calls_area),
         sizeof(r->calls_header));
  memcpy(&r->crowd, shmrpc__area_crowd(fuzz.calls_area), sizeof(r->crowd));
  memcpy(&r->header, fuzz.server_area, sizeof(r->header));
  memcpy(r->prefix, fuzz.server_area - POSIX_SERVER_PREFIX, sizeof(r->prefix));
  r->taken_seq = lane_info(r->call[0].lane)->taken_seq;
  r->response_seq = answer_line(r->call[0].lane)->response_seq;
  r->answer_calls = answer_line(r->call[0].lane)->calls;
  r->doorbell = shmrpc__load32(doorbell_word());
  memcpy(&r->stats, stats_line(), sizeof(r->stats));
  for (i = 0; i < (int)FUZZ_LANES; i++)
    memcpy(&r->lines[i], request_line((uint32_t)i), sizeof(r->lines[i]));
  for (i = 0; i < r->calls; i++)
    memcpy(&r->call[i].info, lane_info(r->call[i].lane),
           sizeof(r->call[i].info));
}

/* Before a repair pass: what it sees, and so what it must do. A lane is
 * quiet when its request line shows the call the server took last; an
 * answer line that does not say what the server knows is put back (and
 * its caller woken); the first pass clears every lock word that names no
 * live connection (only this target's is live). */
static void before_pass(fuzz_round *r) {
  uint32_t lane;
  int quiet = 1;
  for (lane = 0; lane < FUZZ_LANES; lane++) {
    const shmrpc__answer_line *answer = answer_line(lane);
    uint32_t lock = shmrpc__load32(&fuzz.calls_prefix->lane[lane].lock);
    if (shmrpc__load32(&request_line(lane)->call_seq) != fuzz.taken[lane])
      quiet = 0;
    if (lane_info(lane)->taken_seq != fuzz.taken[lane] ||
        answer->response_seq != fuzz.taken[lane] ||
        answer->calls != fuzz.calls[lane])
      r->fixed |= 1u << lane;
    if (r->passes_run == 0 && lock != 0 && lock != fuzz.my_lock)
      r->cleared |= 1u << lane;
  }
  if (quiet)
    r->quiet = 1;
  r->passes_run++;
  advance_clock();
}

/* The served call, in the oracle's books. */
static void record_served(fuzz_call *call) {
  call->served = 1;
  fuzz.taken[call->lane] = call->seq;
  fuzz.calls[call->lane]++;
  fuzz.next_lane = (call->lane + 1u) % FUZZ_LANES;
}

/* How far after the lane the server looks first comes `lane`. */
static uint32_t scan_rank(uint32_t lane) {
  return (lane + FUZZ_LANES - fuzz.next_lane) % FUZZ_LANES;
}

/* Lets the server serve, as the serve flags say, and runs the repair
 * passes. */
static void serve(fuzz_round *r) {
  fuzz_call *order[2];
  int posted = 0, i, rc;
  for (i = 0; i < r->calls; i++)
    if (r->call[i].posted)
      order[posted++] = &r->call[i];
  /* The server looks at the lanes from the one after its last call. */
  if (posted == 2 && scan_rank(order[1]->lane) < scan_rank(order[0]->lane)) {
    fuzz_call *first = order[1];
    order[1] = order[0];
    order[0] = first;
  }

  if (r->serve_flags & SERVE_DISPATCH) {
    /* dispatch() repairs before it serves. */
    if (r->passes > 0)
      before_pass(r);
    for (i = 0; i < posted; i++)
      order[i]->serve_clock_ns = fuzz_clock_ns;
    rc = shmrpc_server_dispatch(fuzz.server);
    CHECK(rc == posted);
  } else {
    if (posted > 0)
      order[0]->serve_clock_ns = fuzz_clock_ns;
    rc = shmrpc_server_run_once(fuzz.server, 0);
    CHECK(rc == (posted > 0 ? 0 : SHMRPC_ETIMEDOUT));
    if (posted > 1) {
      /* One call per run_once: the other caller gives up (else the
       * dispatch() of a repair pass would serve it). */
      shmrpc__store32_sc(&request_line(order[1]->lane)->slot_state,
                         SHMRPC__SLOT_FREE);
      order[1]->line.slot_state = SHMRPC__SLOT_FREE;
      r->lines[order[1]->lane].slot_state = SHMRPC__SLOT_FREE;
      posted = 1;
    }
  }
  for (i = 0; i < posted; i++)
    record_served(order[i]);

  while (r->passes_run < r->passes) {
    before_pass(r);
    rc = shmrpc_server_dispatch(fuzz.server);
    CHECK(rc == 0);
  }
}

/* The timeout handler's answer: the method and the milliseconds left. A
 * deadline further than INT32_MAX milliseconds away may read as INT32_MAX
 * or SHMRPC_INFINITE, but as nothing else: no negative value but
 * SHMRPC_INFINITE, and never fewer milliseconds than are left. */
static void check_timeout_answer(const unsigned char *response,
                                 const expected_answer *expected) {
  int32_t said = (int32_t)le32(response);
  int right = expected->timeout_ms <= INT32_MAX
                  ? said == expected->timeout_ms
                  : said == INT32_MAX || said == SHMRPC_INFINITE;
  CHECK(le32(response + 4) == TIMEOUT_ID);
  if (!right)
    fprintf(stderr,
            "fuzz_server: shmrpc_reply_timeout() said %ld, with %lld ms "
            "left\n",
            (long)said, (long long)expected->timeout_ms);
  CHECK(right);
}

/* What this call must get. */
static void expect_answer(const fuzz_call *call, unsigned char *scratch,
                          unsigned char *filled, fail_request *parsed,
                          expected_answer *out) {
  const unsigned char *request = call->request;
  uint32_t request_len = call->request_len;
  const struct fuzz_method *entry = NULL;
  size_t i;

  memset(out, 0, sizeof(*out));
  out->message = "";
  for (i = 0; i < METHOD_COUNT; i++)
    if (methods[i].id == call->method)
      entry = &methods[i];
  if (request_len > FUZZ_CAPACITY) {
    out->status = SHMRPC_ETOOBIG;
  } else if (call->method == ECHO_ID ||
             (entry == NULL && call->method == SHMRPC_METHOD_PING)) {
    out->response = request;
    out->response_len = request_len;
  } else if (entry == NULL && call->method == SHMRPC_METHOD_LIST) {
    out->response_len = expected_list(scratch);
    out->response = scratch;
  } else if (call->method == SUMMARY_ID) {
    expect_summary(request, request_len, scratch, out);
  } else if (call->method == FAIL_ID) {
    expect_fail(request, request_len, parsed, out);
  } else if (call->method == REFUSE_ID) {
    expect_refuse(request, request_len, out);
  } else if (call->method == TIMEOUT_ID) {
    out->response_len = 8;
    out->timeout_answer = 1;
    out->timeout_ms = expected_timeout(call->timeout_ms, call->deadline_ns,
                                       call->serve_clock_ns);
  } else if (call->method == SIZED_ID) {
    unsigned char head[5] = {0};
    uint32_t length;
    memcpy(head, request, request_len < 5 ? request_len : 5);
    length = le32(head);
    if (length > FUZZ_CAPACITY) {
      out->status = SHMRPC_ETOOBIG;
    } else {
      memset(filled, head[4], length);
      out->response = filled;
      out->response_len = length;
    }
  } else {
    out->status = SHMRPC_ENOMETHOD;
  }
}

/* The answer line, response, message and counters of a call served. */
static void check_answer(const fuzz_call *call) {
  static unsigned char scratch[FUZZ_CAPACITY]; /* expected responses */
  static unsigned char filled[FUZZ_CAPACITY];  /* a sized answer */
  static fail_request parsed;
  const shmrpc__answer_line *answer = answer_line(call->lane);
  const shmrpc__lane_info *info = lane_info(call->lane);
  const unsigned char *response = response_area(call->lane);
  expected_answer expected;

  CHECK(info->taken_seq == call->seq);
  CHECK(answer->response_seq == call->seq);
  CHECK(answer->calls == fuzz.calls[call->lane]);

  /* Invariants of every answer. */
  CHECK(answer->status == 0 || answer->status == SHMRPC_EAPP ||
        answer->status == SHMRPC_ENOMETHOD || transport_code(answer->status));
  CHECK(answer->response_len <= FUZZ_CAPACITY);
  CHECK(answer->message_len <= SHMRPC_MESSAGE_MAX);
  CHECK(answer->status == 0 || answer->response_len == 0);
  CHECK(answer->status == SHMRPC_EAPP ||
        (answer->message_len == 0 && answer->app_code == 0));
  CHECK(answer->status != SHMRPC_EAPP || answer->app_code > 0);
  /* A small answer is also in the answer line, where the caller reads it. */
  if (answer->response_len <= SHMRPC__INLINE_MAX)
    CHECK(memcmp(answer->response_inline, response, answer->response_len) == 0);

  /* What this particular call must answer. */
  expect_answer(call, scratch, filled, &parsed, &expected);
  CHECK(answer->status == expected.status);
  CHECK(answer->response_len == expected.response_len);
  if (expected.response != NULL)
    CHECK(memcmp(response, expected.response, expected.response_len) == 0);
  if (expected.timeout_answer)
    check_timeout_answer(response, &expected);
  if (expected.status == SHMRPC_EAPP) {
    CHECK(answer->app_code == expected.app_code);
    CHECK(answer->message_len == expected.message_len);
    CHECK(memcmp(message_area(call->lane), expected.message,
                 expected.message_len) == 0);
  }

  /* The lane's counters count it once. */
  CHECK(info->bytes_in - call->info.bytes_in ==
        (call->request_len <= FUZZ_CAPACITY ? call->request_len : 0u));
  CHECK(info->bytes_out - call->info.bytes_out == answer->response_len);
  CHECK(info->app_errors - call->info.app_errors ==
        (answer->status == SHMRPC_EAPP ? 1u : 0u));
}

/* The request lines: the server writes only response_sleepers (to 0, once
 * it answered a caller that sleeps), and never a payload area. */
static void check_requests(const fuzz_round *r) {
  uint32_t lane;
  int i;
  for (i = 0; i < r->calls; i++) {
    const fuzz_call *call = &r->call[i];
    shmrpc__request_line want = call->line;
    if (call->served)
      want.response_sleepers = 0;
    CHECK(memcmp(request_line(call->lane), &want, sizeof(want)) == 0);
    CHECK(memcmp(payload_area(call->lane), call->payload, FUZZ_CAPACITY) == 0);
  }
  for (lane = 0; lane < FUZZ_LANES; lane++) {
    int called = 0;
    for (i = 0; i < r->calls; i++)
      called |= r->call[i].lane == lane;
    if (!called)
      CHECK(memcmp(request_line(lane), &r->lines[lane],
                   sizeof(r->lines[lane])) == 0);
  }
}

/* The answer lines: each says the last call the server took, unless an
 * input's writer changed it and no pass has run since. */
static void check_answer_lines(const fuzz_round *r) {
  uint32_t lane;
  for (lane = 0; lane < FUZZ_LANES; lane++) {
    const shmrpc__answer_line *answer = answer_line(lane);
    int served = 0, i;
    for (i = 0; i < r->calls; i++)
      if (r->call[i].lane == lane && r->call[i].served) {
        served = 1;
        check_answer(&r->call[i]);
      }
    if (served)
      continue;
    if (r->server_words && r->passes == 0 && lane == r->call[0].lane) {
      CHECK(lane_info(lane)->taken_seq == r->taken_seq);
      CHECK(answer->response_seq == r->response_seq);
      CHECK(answer->calls == r->answer_calls);
    } else {
      CHECK(lane_info(lane)->taken_seq == fuzz.taken[lane]);
      CHECK(answer->response_seq == fuzz.taken[lane]);
      CHECK(answer->calls == fuzz.calls[lane]);
    }
  }
}

/* The wake-ups: an answer to a caller asleep on its event sets the lane's
 * event, one to a caller in an event loop writes a byte into the lane's
 * FIFO, one to a caller that yielded wakes nothing; a pass that put an
 * answer line back sets its event too. */
static void check_wakeups(const fuzz_round *r) {
  const posix_calls_prefix *before =
      (const posix_calls_prefix *)(const void *)r->calls_prefix;
  uint32_t lane, events[FUZZ_LANES] = {0}, bytes[FUZZ_LANES] = {0};
  int i;
  for (i = 0; i < r->calls; i++) {
    const fuzz_call *call = &r->call[i];
    if (!call->served || call->sleepers == 0)
      continue;
    if ((call->sleepers & SHMRPC__SLEEPER_MODE_MASK) == SHMRPC__SLEEPER_FD)
      bytes[call->lane]++;
    else if ((call->sleepers & SHMRPC__SLEEPER_MODE_MASK) !=
             SHMRPC__SLEEPER_YIELDED)
      events[call->lane]++;
  }
  for (lane = 0; lane < FUZZ_LANES; lane++) {
    uint32_t event = shmrpc__load32(&fuzz.calls_prefix->lane[lane].event);
    CHECK(event - before->lane[lane].event ==
          events[lane] + ((r->fixed >> lane) & 1u));
    if (bytes[lane] > 0 || r->call[0].lane == lane)
      CHECK(drain_fifo(lane) == bytes[lane]);
  }
}

/* The words callers write and the repair pass reads: without a pass the
 * server leaves them as they are; a pass folds the reported counters into
 * its own (bounded), clears the "server dead" hint, zeroes the crowd when
 * no call is in flight, and frees the lanes whose lock names no live
 * connection (then wakes the queue's head). */
static void check_calls_words(const fuzz_round *r) {
  const posix_calls_prefix *before =
      (const posix_calls_prefix *)(const void *)r->calls_prefix;
  const posix_calls_prefix *now = fuzz.calls_prefix;
  const shmrpc__stats_line *stats = stats_line();
  shmrpc__calls_header header = r->calls_header;
  shmrpc__crowd_line crowd = r->crowd;
  posix_ring_slot ring[POSIX_RING];
  uint64_t timeouts = 0, recoveries = 0;
  uint32_t lane, cleared = 0;

  memcpy(ring, before->ring, sizeof(ring));
  if (r->passes > 0) {
    timeouts = header.timeouts < SHMRPC__REPORT_MAX ? header.timeouts
                                                    : SHMRPC__REPORT_MAX;
    recoveries = header.recoveries < SHMRPC__REPORT_MAX ? header.recoveries
                                                        : SHMRPC__REPORT_MAX;
    header.server_dead = 0;
    header.timeouts = 0;
    header.recoveries = 0;
    if (r->quiet)
      crowd.waiting = 0;
    for (lane = 0; lane < FUZZ_LANES; lane++)
      cleared += (r->cleared >> lane) & 1u;
    recoveries += cleared;
    if (cleared > 0 && before->head != before->tail) {
      posix_ring_slot *head = &ring[before->head % POSIX_RING];
      if (head->ticket == before->head && head->state == POSIX_WAITER_SLEEPING)
        head->state = POSIX_WAITER_WOKEN;
    }
  }
  CHECK(memcmp(shmrpc__area_calls_header(fuzz.calls_area), &header,
               sizeof(header)) == 0);
  CHECK(memcmp(shmrpc__area_crowd(fuzz.calls_area), &crowd, sizeof(crowd)) ==
        0);
  CHECK(stats->timeouts - r->stats.timeouts == timeouts);
  CHECK(stats->recoveries - r->stats.recoveries == recoveries);
  CHECK(stats->withdrawn == r->stats.withdrawn);
  CHECK(stats->repairs - r->stats.repairs <= (uint64_t)r->passes);

  CHECK(now->head == before->head && now->tail == before->tail);
  CHECK(memcmp(now->ring, ring, sizeof(ring)) == 0);
  for (lane = 0; lane < FUZZ_LANES; lane++) {
    uint32_t lock = now->lane[lane].lock;
    const shmrpc__lane_info *info = lane_info(lane);
    CHECK(lock == (((r->cleared >> lane) & 1u) ? 0u : before->lane[lane].lock));
    if (r->passes == 0)
      continue;
    /* What the pass saw of each lock, for shmrpc stat. */
    CHECK(lock == 0 || lock == fuzz.my_lock);
    CHECK(info->lock_seen == lock);
    CHECK(info->lock_owner_alive == (lock != 0 ? 1u : 0u));
    CHECK((info->lock_since_ns != 0) == (lock != 0));
  }
}

/* What only the server may write: the header and the backend's server
 * prefix say what it published unless an input's writer changed them and
 * no pass has run since; the doorbell word is balanced, and right again
 * after three passes. */
static void check_server_words(const fuzz_round *r) {
  const posix_calls_prefix *before =
      (const posix_calls_prefix *)(const void *)r->calls_prefix;
  uint32_t doorbell = shmrpc__load32(doorbell_word());
  uint32_t rings = fuzz.calls_prefix->doorbell - before->doorbell;
  int wrong = (r->doorbell & ~SHMRPC__SLEEPERS_FD) != 0;
  int changed = r->server_words && r->passes == 0;

  CHECK(memcmp(fuzz.server_area, changed ? &r->header : &fuzz.header,
               sizeof(fuzz.header)) == 0);
  CHECK(memcmp(fuzz.server_area - POSIX_SERVER_PREFIX,
               changed ? r->prefix : fuzz.prefix, PREFIX_CHECKED) == 0);
  if (!r->server_words) {
    CHECK(doorbell == DOORBELL_IDLE);
    CHECK(rings == 0);
  } else if (r->passes == 3) {
    /* Put back only once it stayed wrong, and the same, for two passes. */
    CHECK(doorbell == DOORBELL_IDLE);
    CHECK(rings == (wrong ? 1u : 0u));
  } else {
    CHECK(rings <= 1u);
  }
}

/* Leaves the lanes and words as the input found them: the callers leave,
 * and a writer who changed the server area puts it back. */
static void restore(const fuzz_round *r) {
  unsigned char *area = writable_server_area();
  int i;
  for (i = 0; i < r->calls; i++)
    shmrpc__store32_sc(&request_line(r->call[i].lane)->slot_state,
                       SHMRPC__SLOT_FREE);
  memcpy(fuzz.calls_prefix, saved_prefix, sizeof(saved_prefix));
  memcpy(fuzz.calls_area, saved_lines, sizeof(saved_lines));
  if (r->server_words && area != NULL) {
    shmrpc__answer_line *answer = shmrpc__area_answer(area, r->call[0].lane);
    memcpy(area, &fuzz.header, sizeof(fuzz.header));
    memcpy(fuzz.server_object, fuzz.prefix, sizeof(fuzz.prefix));
    shmrpc__area_lane_info(area, FUZZ_LANES, r->call[0].lane)->taken_seq =
        fuzz.taken[r->call[0].lane];
    answer->response_seq = fuzz.taken[r->call[0].lane];
    answer->calls = fuzz.calls[r->call[0].lane];
    shmrpc__store32(&shmrpc__area_doorbell(area)->request_sleepers,
                    DOORBELL_IDLE);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static fuzz_round this_round;
  fuzz_round *r = &this_round;

  setup();
  memset(r, 0, sizeof(*r));
  if (size > 0)
    memcpy(r->in, data, size < AT_PAYLOAD ? size : AT_PAYLOAD);
  r->call_flags = r->in[AT_CALL_FLAGS];
  r->serve_flags = r->in[AT_SERVE_FLAGS];
  r->word_flags = r->in[AT_WORD_FLAGS];
  if (r->serve_flags & SERVE_REPAIR) {
    int more = (int)((r->serve_flags >> SERVE_PASSES_SHIFT) & 3u);
    r->passes = 1 + (more > 2 ? 2 : more);
  }
  memcpy(saved_prefix, fuzz.calls_prefix, sizeof(saved_prefix));
  memcpy(saved_lines, fuzz.calls_area, sizeof(saved_lines));

  post_fuzzed(r, data, size);
  if (r->call_flags & CALL_SECOND)
    post_honest(r);
  scribble_calls_words(r);
  scribble_backend_words(r);
  scribble_server_words(r);
  fill_answers(r);
  record_words(r);

  serve(r);

  check_requests(r);
  check_answer_lines(r);
  check_wakeups(r);
  check_calls_words(r);
  check_server_words(r);
  restore(r);
  return 0;
}
