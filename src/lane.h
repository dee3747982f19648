/*
 * A lane, as a caller sees it: where its words are, and the steps of the
 * slot protocol (layout.h) every call takes, inline so that a call pays no
 * function call for them. The rest is in lane.c. Included at the end of
 * core.h, whose atomics, deadlines and layout it uses.
 */
#ifndef SHMRPC_LANE_H
#define SHMRPC_LANE_H

#include <string.h>

/* Where one lane's words are, for a caller. */
typedef struct shmrpc__lane {
  shmrpc__request_line *request;     /* calls area: ours to write */
  const shmrpc__answer_line *answer; /* server area: read-only, untrusted */
  const volatile uint32_t *taken;    /* server area (the lane's info line):
                                        the call_seq the server took */
  unsigned char *payload;            /* calls area */
  const unsigned char *response;     /* server area */
  const char *message;               /* server area */
} shmrpc__lane;

/* The server has answered every call it took on the lane. */
int shmrpc__lane_not_busy(const shmrpc__lane *lane);
/* Withdraws posted call `seq` (FREE first, then a look at taken_seq; the
 * server does the mirror image). Returns 1 if withdrawn, 0 if the server
 * has taken it. */
int shmrpc__lane_withdraw(shmrpc__lane *lane, uint32_t seq);

/* The lane is as a finished call leaves it: nothing posted, or the last
 * call posted, taken and answered. */
static inline int shmrpc__lane_idle(const shmrpc__lane *lane) {
  uint32_t state = shmrpc__load32_sc(&lane->request->slot_state);
  uint32_t posted = shmrpc__load32(&lane->request->call_seq);
  uint32_t taken = shmrpc__load32_sc(lane->taken);
  if (state != SHMRPC__SLOT_FREE &&
      (state != SHMRPC__SLOT_POSTED || posted != taken))
    return 0;
  return shmrpc__load32_sc(&lane->answer->response_seq) == taken;
}

/* Writes the request and posts it; returns the call's sequence number, or
 * 0 if another caller posted on the lane meanwhile (a writer broke its
 * lock). */
static inline uint32_t shmrpc__lane_post(shmrpc__lane *lane, uint32_t method,
                                         const void *request,
                                         size_t request_len,
                                         const shmrpc__deadline *deadline) {
  shmrpc__request_line *line = lane->request;
  /* The new sequence number publishes the call (the state may still say
   * POSTED from the last call); POSTED follows for a lane that was
   * withdrawn. It is never one the answer line already carries (the lane
   * is idle: taken_seq == response_seq): a writer who set call_seq just
   * below it would otherwise hand us the last call's answer. Nor 0, the
   * fresh lane's "nothing". */
  uint32_t previous = shmrpc__load32_relaxed(&line->call_seq);
  uint32_t answered = shmrpc__load32_relaxed(&lane->answer->response_seq);
  uint32_t seq = previous + 1u;
  while (SHMRPC__UNLIKELY(seq == answered || seq == 0))
    seq++;
  if (request_len > SHMRPC__INLINE_MAX)
    memcpy(lane->payload, request, request_len);
  else if (request_len > 0) /* request may be NULL when request_len is 0 */
    shmrpc__copy_small(line->request_inline, request, request_len);
  shmrpc__store32_relaxed(&line->method, method);
  shmrpc__store32_relaxed(&line->request_len, (uint32_t)request_len);
  /* The deadline travels with the call; reading the clock for it would
   * cost the hot path, so an unarmed one goes as the timeout alone. */
  shmrpc__store32_relaxed((volatile uint32_t *)&line->timeout_ms,
                          (uint32_t)deadline->timeout_ms);
  shmrpc__store64(
      &line->deadline_ns,
      deadline->armed && deadline->timeout_ms >= 0 ? deadline->end_ns : 0u);
  /* Only one caller can post a sequence number: if a writer let a second
   * caller onto this lane, one of the two fails here instead of both
   * taking the one answer. */
  if (SHMRPC__UNLIKELY(!shmrpc__cas32(&line->call_seq, previous, seq)))
    return 0;
  if (shmrpc__load32_relaxed(&line->slot_state) != SHMRPC__SLOT_POSTED)
    shmrpc__store32_sc(&line->slot_state, SHMRPC__SLOT_POSTED);
  return seq;
}

#endif /* SHMRPC_LANE_H */
