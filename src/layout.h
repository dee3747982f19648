/*
 * The control block at the start of a service's area, and the slot protocol.
 *
 * Area layout (each block starts on its own 64-byte cache line):
 *
 *   header    written once by the server before it publishes `magic`
 *   client    written by the caller that holds the slot mutex
 *   server    written by the server while it answers
 *   stats     counters
 *   message   the application error message of the last answer
 *   request   `capacity` bytes, written by the caller
 *   response  `capacity` bytes, written by the server
 *
 * Each line has one writer, so the hot path moves each line once per call.
 * The caller that holds the slot mutex writes the client line; the server
 * writes the server line. (Each side also raises a "sleepers" flag in the
 * other's line, but only on its way into the kernel; the side that wakes it
 * lowers the flag, in its own line.)
 *
 *   client: slot_state (FREE or POSTED), call_seq, method, request_len,
 *           the caller's deadline
 *   server: taken_seq (the call it took), response_seq (the call answered)
 *
 * Where the bytes of a message are follows from its length alone: up to
 * SHMRPC__INLINE_MAX in the line of its writer, else in its area.
 *
 * A call is posted by writing the request, method, length, then call_seq =
 * previous + 1, then slot_state = POSTED. The server takes a posted call
 * whose call_seq it has not taken yet by storing taken_seq, then looks at
 * slot_state again; it answers by storing the result, then response_seq.
 * The slot is busy while taken_seq != response_seq.
 *
 * A caller that times out withdraws by storing slot_state = FREE, then
 * reading taken_seq. The server stores taken_seq, then reads slot_state.
 * Both stores and loads are sequentially consistent, so at least one side
 * sees the other: either the server sees FREE (it answers "withdrawn"
 * without running the handler) or the caller sees taken_seq == its call
 * (the server runs it; the slot stays busy and the next caller waits until
 * response_seq catches up, then ignores that answer). Either way the next
 * caller neither receives the late answer (it waits for its own sequence
 * number) nor overwrites a request the server still reads (it waits while
 * busy).
 *
 * Everything here may be written by any process that can open the mapping:
 * each field is read once into a local and validated before use.
 */
#ifndef SHMRPC_LAYOUT_H
#define SHMRPC_LAYOUT_H

#include <stdint.h>

#define SHMRPC__MAGIC 0x43505253u /* "SRPC" */
#define SHMRPC__PROTOCOL_VERSION 4u
#define SHMRPC__LINE 64u
/* A request or response of at most this many bytes travels in its writer's
 * line (request_inline, response_inline) rather than in the payload areas,
 * so a small call moves two cache lines between the peers instead of four. */
#define SHMRPC__INLINE_MAX 32u

enum shmrpc__slot_state {
  SHMRPC__SLOT_FREE = 0,  /* nothing posted, or the post was withdrawn */
  SHMRPC__SLOT_POSTED = 1 /* call_seq is posted (maybe taken, answered) */
};

enum shmrpc__server_state {
  SHMRPC__SERVER_STARTING = 0,
  SHMRPC__SERVER_RUNNING = 1,
  SHMRPC__SERVER_STOPPING = 2
};

/* The status of an answer (server.status): 0 for success, SHMRPC_EAPP with
 * server.app_code, or a transport code such as SHMRPC_ENOMETHOD. */

typedef struct shmrpc__header {
  uint32_t magic;         /* SHMRPC__MAGIC, stored last at creation */
  uint32_t version;       /* SHMRPC__PROTOCOL_VERSION */
  uint32_t capacity;      /* bytes of the request and of the response area */
  uint32_t area_size;     /* total bytes of the area */
  uint64_t generation;    /* random per server instance */
  uint64_t start_ns;      /* server's monotonic clock at start */
  uint32_t server_pid;    /* for diagnostics only, never for liveness */
  uint32_t server_state;  /* enum shmrpc__server_state */
  uint32_t server_dead;   /* hint set by a caller that saw the server die */
  uint8_t pad[SHMRPC__LINE - 44];
} shmrpc__header;

typedef struct shmrpc__client_line {
  uint32_t slot_state;         /* enum shmrpc__slot_state */
  uint32_t call_seq;           /* sequence number of the posted call */
  uint32_t method;             /* method id of the posted call */
  uint32_t request_len;        /* bytes of the request */
  uint64_t deadline_ns;        /* the caller's deadline on the monotonic
                                  clock, or 0 if it has not read the clock */
  int32_t timeout_ms;          /* the caller's timeout as given (-1: none);
                                  counts when deadline_ns is 0 */
  uint32_t request_sleepers;   /* 1 while the server sleeps on requests */
  uint8_t request_inline[SHMRPC__INLINE_MAX]; /* a request that fits */
} shmrpc__client_line;

typedef struct shmrpc__server_line {
  uint32_t taken_seq;          /* call_seq of the call the server took */
  uint32_t response_seq;       /* call_seq of the call this answers */
  int32_t status;              /* 0, SHMRPC_EAPP or a transport code */
  int32_t app_code;            /* handler's code when status is SHMRPC_EAPP */
  uint32_t response_len;       /* bytes of the response */
  uint32_t message_len;        /* bytes in message[] */
  uint32_t response_sleepers;  /* 1 while the slot's holder sleeps */
  uint8_t response_inline[SHMRPC__INLINE_MAX]; /* a response that fits */
  uint8_t pad[SHMRPC__LINE - 28 - SHMRPC__INLINE_MAX];
} shmrpc__server_line;

typedef struct shmrpc__stats_line {
  uint64_t calls;
  uint64_t app_errors;
  uint64_t timeouts;
  uint64_t recoveries;
  uint64_t bytes_in;
  uint64_t bytes_out;
  uint64_t reserved[2];        /* [0]: control-block repairs by the server */
} shmrpc__stats_line;

#define SHMRPC__MESSAGE_AREA 256u

typedef struct shmrpc__control {
  shmrpc__header header;
  shmrpc__client_line client;
  shmrpc__server_line server;
  shmrpc__stats_line stats;
  char message[SHMRPC__MESSAGE_AREA];
} shmrpc__control;

_Static_assert(sizeof(shmrpc__header) == SHMRPC__LINE, "header line");
_Static_assert(sizeof(shmrpc__client_line) == SHMRPC__LINE, "client line");
_Static_assert(sizeof(shmrpc__server_line) == SHMRPC__LINE, "server line");
_Static_assert(sizeof(shmrpc__stats_line) == SHMRPC__LINE, "stats line");
_Static_assert(sizeof(shmrpc__control) % SHMRPC__LINE == 0, "control size");

/* Offsets of the payload areas for a given capacity. */
static inline uint64_t shmrpc__request_offset(void) {
  return sizeof(shmrpc__control);
}
static inline uint64_t shmrpc__response_offset(uint32_t capacity) {
  uint64_t aligned = ((uint64_t)capacity + SHMRPC__LINE - 1) &
                     ~(uint64_t)(SHMRPC__LINE - 1);
  return sizeof(shmrpc__control) + aligned;
}
static inline uint64_t shmrpc__area_size(uint32_t capacity) {
  uint64_t aligned = ((uint64_t)capacity + SHMRPC__LINE - 1) &
                     ~(uint64_t)(SHMRPC__LINE - 1);
  return shmrpc__response_offset(capacity) + aligned;
}

#endif /* SHMRPC_LAYOUT_H */
