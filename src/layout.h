/*
 * The two areas of a service, and the slot protocol of each lane.
 *
 * A service is split by who may write what:
 *
 *   server area   written only by the server; clients map it read-only.
 *                 It holds everything the server says: the header, the
 *                 doorbell's sleeper count, the counters, and per lane the
 *                 answer line, the error message and the response bytes.
 *   calls area    written by every caller (and the server); it holds per
 *                 lane the request line and the request bytes.
 *
 * So a peer that may call the service can write requests, but it cannot
 * change what the server answers, nor the header clients trust. Backends
 * place their own words (events, lane locks, the queue) before each area;
 * the core never sees them.
 *
 * Server area (each block starts on a 64-byte line):
 *
 *   header        magic, version, capacity, lanes, generation, state ...
 *   doorbell      request_sleepers
 *   stats         counters of the whole service
 *   answer[N]     per lane: response_seq, status, lengths, a response of
 *                 up to SHMRPC__INLINE_MAX bytes
 *   lane_info[N]  per lane: taken_seq, counters and what the server saw of
 *                 its lock
 *   message[N]    per lane: the application error message (256 bytes)
 *   response[N]   per lane: `capacity` bytes, rounded up to a line
 *
 * Calls area:
 *
 *   calls header  hints and counters callers report
 *   crowd         how many callers wait for answers (spinning policy)
 *   request[N]    per lane: slot_state, call_seq, method, request_len, the
 *                 caller's deadline, response_sleepers, a request of up to
 *                 SHMRPC__INLINE_MAX bytes
 *   payload[N]    per lane: `capacity` bytes, rounded up to a line
 *
 * Where the bytes of a message are follows from its length alone: up to
 * SHMRPC__INLINE_MAX in its writer's line, else in its area.
 *
 * The slot protocol, per lane (a caller owns the lane while it holds the
 * lane's lock):
 *
 * A call is posted by writing the request, method, length, then call_seq =
 * previous + 1 (skipping 0 and the sequence number the lane last answered)
 * by a compare-and-swap, then slot_state = POSTED if it is not already. The
 * server takes a posted call
 * whose call_seq it has not taken yet by storing taken_seq, then looks at
 * slot_state again; it answers by storing the result, then response_seq.
 * The lane is busy while taken_seq != response_seq.
 *
 * A caller that times out withdraws by storing slot_state = FREE, then
 * reading taken_seq. The server stores taken_seq, then reads slot_state.
 * Both stores and loads are sequentially consistent, so at least one side
 * sees the other: either the server sees FREE (it answers "withdrawn"
 * without running the handler) or the caller sees taken_seq == its call
 * (the server runs it; the lane stays busy and its next caller waits until
 * response_seq catches up, then ignores that answer). Either way the next
 * caller neither receives the late answer (it waits for its own sequence
 * number) nor overwrites a request the server still reads (it waits while
 * busy).
 *
 * Everything here may be written by a process other than its writer (the
 * calls area by any caller; the server area by another process of the
 * server's user): each field is read once into a local and validated
 * before use.
 */
#ifndef SHMRPC_LAYOUT_H
#define SHMRPC_LAYOUT_H

#include <stdint.h>

#define SHMRPC__MAGIC 0x43505253u /* "SRPC" */
#define SHMRPC__PROTOCOL_VERSION 7u
#define SHMRPC__LINE 64u
/* A request or response of at most this many bytes travels in its writer's
 * line (request_inline, response_inline) rather than in the payload areas,
 * so a small call moves three cache lines between the peers (the request
 * line, the answer line, the lane's info line) instead of five. */
#define SHMRPC__INLINE_MAX 32u
#define SHMRPC__MESSAGE_AREA 256u

enum shmrpc__slot_state {
  SHMRPC__SLOT_FREE = 0,  /* nothing posted, or the post was withdrawn */
  SHMRPC__SLOT_POSTED = 1 /* call_seq is posted (maybe taken, answered) */
};

enum shmrpc__server_state {
  SHMRPC__SERVER_STARTING = 0,
  SHMRPC__SERVER_RUNNING = 1,
  SHMRPC__SERVER_STOPPING = 2
};

/* response_sleepers: how the caller of a lane waits for its answer. */
enum shmrpc__sleeper {
  SHMRPC__SLEEPER_NONE = 0,  /* spinning, or not waiting */
  SHMRPC__SLEEPER_EVENT = 1, /* asleep on the lane's response event */
  SHMRPC__SLEEPER_FD = 2,    /* in an event loop on its waitable; the
                                bits above the low two name the waker */
  SHMRPC__SLEEPER_YIELDED = 3 /* it rang a sleeping server and may yield
                                its CPU to it (shmrpc__conn_yield): nothing
                                to wake, but no spin for the next call on
                                what may be its CPU */
};
#define SHMRPC__SLEEPER_MODE_MASK 3u

/* request_sleepers, in the server's doorbell line: how the server's idle
 * workers wait. A caller rings the request event only if some worker sleeps
 * and none spins (a spinning worker sees the call anyway; a busy one looks
 * for calls before it sleeps again), and pokes the server's waitable while
 * the server waits in an event loop. */
#define SHMRPC__SLEEPERS_FD 0x80000000u       /* in an event loop */
#define SHMRPC__SLEEPERS_SPINNING 0x7FFF0000u /* workers spinning, x 2^16 */
#define SHMRPC__SLEEPERS_ONE_SPINNER 0x00010000u
#define SHMRPC__SLEEPERS_ASLEEP 0x0000FFFFu   /* workers asleep */

/* The status of an answer (answer.status): 0 for success, SHMRPC_EAPP with
 * answer.app_code, or a transport code such as SHMRPC_ENOMETHOD. */

/* ---- Server area ------------------------------------------------------- */

typedef struct shmrpc__header {
  uint32_t magic;        /* SHMRPC__MAGIC, stored last at creation */
  uint32_t version;      /* SHMRPC__PROTOCOL_VERSION */
  uint32_t capacity;     /* bytes of each request and response area */
  uint32_t lanes;        /* 1 to SHMRPC_MAX_LANES */
  uint32_t workers;      /* the server's worker threads (diagnostics) */
  uint32_t server_pid;   /* for diagnostics only, never for liveness */
  uint32_t server_state; /* enum shmrpc__server_state */
  uint32_t reserved;
  uint64_t server_size;  /* total bytes of the server area */
  uint64_t calls_size;   /* total bytes of the calls area */
  uint64_t generation;   /* random per server instance */
  uint64_t start_ns;     /* server's monotonic clock at start */
} shmrpc__header;

typedef struct shmrpc__doorbell_line {
  uint32_t request_sleepers; /* see SHMRPC__SLEEPERS_FD */
  uint8_t pad[SHMRPC__LINE - 4];
} shmrpc__doorbell_line;

typedef struct shmrpc__stats_line {
  uint64_t timeouts;   /* calls that timed out in a client (reported) */
  uint64_t recoveries; /* lane locks taken over from dead clients (reported) */
  uint64_t repairs;    /* repair passes that put something back */
  uint64_t withdrawn;  /* calls the server found withdrawn as it took them
                          (a withdrawal it never saw is not counted) */
  uint64_t reserved[4];
} shmrpc__stats_line;

typedef struct shmrpc__answer_line {
  uint32_t response_seq; /* call_seq of the call this answers */
  int32_t status;        /* 0, SHMRPC_EAPP or a transport code */
  int32_t app_code;      /* handler's code when status is SHMRPC_EAPP */
  uint32_t response_len; /* bytes of the response */
  uint32_t message_len;  /* bytes in the lane's message */
  uint32_t reserved;
  uint64_t calls;        /* calls answered on this lane */
  uint8_t response_inline[SHMRPC__INLINE_MAX]; /* a response that fits */
} shmrpc__answer_line;

typedef struct shmrpc__lane_info {
  uint32_t taken_seq;        /* call_seq of the call the server took: not in
                                the answer line, which a waiting caller
                                polls, so that a call changes that line
                                once (its answer), not twice */
  uint32_t lock_owner_alive; /* 1 if the lock's owner lived at the last
                                look */
  uint64_t app_errors;       /* calls a handler failed */
  uint64_t bytes_in;         /* request bytes received */
  uint64_t bytes_out;        /* response bytes sent */
  uint64_t lock_seen;        /* the lane lock's owner at the last look */
  uint64_t lock_since_ns;    /* held by that owner since about then (0:
                                free) */
  uint64_t reserved[2];
} shmrpc__lane_info;

/* ---- Calls area -------------------------------------------------------- */

typedef struct shmrpc__calls_header {
  uint32_t server_dead;  /* hint set by a caller that saw the server die */
  uint32_t reserved;
  uint64_t timeouts;     /* calls that timed out, counted by clients */
  uint64_t recoveries;   /* lane locks clients took over */
  uint8_t pad[SHMRPC__LINE - 24];
} shmrpc__calls_header;

/* Callers waiting for answers, across every process: a caller spins only
 * while the waiting callers leave a CPU for each of them and one for the
 * server (else spinning takes the CPU the answers need, and the callers
 * that spin get every answer first). Its own line: every waiting caller
 * writes it. A writer can only make callers spin less, or no more than
 * their own windows allow. */
typedef struct shmrpc__crowd_line {
  uint32_t waiting;
  uint8_t pad[SHMRPC__LINE - 4];
} shmrpc__crowd_line;

typedef struct shmrpc__request_line {
  uint32_t slot_state;        /* enum shmrpc__slot_state */
  uint32_t call_seq;          /* sequence number of the posted call */
  uint32_t method;            /* method id of the posted call */
  uint32_t request_len;       /* bytes of the request */
  int32_t timeout_ms;         /* the caller's timeout as given (-1: none);
                                 counts when deadline_ns is 0 */
  uint32_t response_sleepers; /* enum shmrpc__sleeper */
  uint64_t deadline_ns;       /* the caller's deadline on the monotonic
                                 clock, or 0 if it has not read the clock */
  uint8_t request_inline[SHMRPC__INLINE_MAX]; /* a request that fits */
} shmrpc__request_line;

_Static_assert(sizeof(shmrpc__header) == SHMRPC__LINE, "header line");
_Static_assert(sizeof(shmrpc__doorbell_line) == SHMRPC__LINE, "doorbell");
_Static_assert(sizeof(shmrpc__stats_line) == SHMRPC__LINE, "stats line");
_Static_assert(sizeof(shmrpc__answer_line) == SHMRPC__LINE, "answer line");
_Static_assert(sizeof(shmrpc__lane_info) == SHMRPC__LINE, "lane info");
_Static_assert(sizeof(shmrpc__calls_header) == SHMRPC__LINE, "calls header");
_Static_assert(sizeof(shmrpc__crowd_line) == SHMRPC__LINE, "crowd line");
_Static_assert(sizeof(shmrpc__request_line) == SHMRPC__LINE, "request line");

/* ---- Offsets ----------------------------------------------------------- */

static inline uint64_t shmrpc__align_line(uint64_t bytes) {
  return (bytes + SHMRPC__LINE - 1) & ~(uint64_t)(SHMRPC__LINE - 1);
}

/* Server area. */
#define SHMRPC__OFF_HEADER 0u
#define SHMRPC__OFF_DOORBELL 64u
#define SHMRPC__OFF_STATS 128u
#define SHMRPC__OFF_ANSWERS 192u
static inline uint64_t shmrpc__off_lane_info(uint32_t lanes) {
  return SHMRPC__OFF_ANSWERS + (uint64_t)lanes * SHMRPC__LINE;
}
static inline uint64_t shmrpc__off_messages(uint32_t lanes) {
  return shmrpc__off_lane_info(lanes) + (uint64_t)lanes * SHMRPC__LINE;
}
static inline uint64_t shmrpc__off_responses(uint32_t lanes) {
  return shmrpc__off_messages(lanes) + (uint64_t)lanes * SHMRPC__MESSAGE_AREA;
}
static inline uint64_t shmrpc__server_size(uint32_t capacity,
                                           uint32_t lanes) {
  return shmrpc__off_responses(lanes) +
         (uint64_t)lanes * shmrpc__align_line(capacity);
}

/* Calls area. */
#define SHMRPC__OFF_CALLS_HEADER 0u
#define SHMRPC__OFF_CROWD 64u
#define SHMRPC__OFF_REQUESTS 128u
static inline uint64_t shmrpc__off_payloads(uint32_t lanes) {
  return SHMRPC__OFF_REQUESTS + (uint64_t)lanes * SHMRPC__LINE;
}
static inline uint64_t shmrpc__calls_size(uint32_t capacity, uint32_t lanes) {
  return shmrpc__off_payloads(lanes) +
         (uint64_t)lanes * shmrpc__align_line(capacity);
}

#endif /* SHMRPC_LAYOUT_H */
