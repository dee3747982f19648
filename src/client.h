/*
 * The client's internals, shared by client.c (handles, connections,
 * blocking calls) and pending.c (calls that do not block, and the handle's
 * waitable). Nothing else includes it.
 */
#ifndef SHMRPC_CLIENT_H
#define SHMRPC_CLIENT_H

#include "core.h"

/* A connection: the mapped service, its lanes, the client token the
 * backend took. See client.c for how connections are replaced. */
typedef struct shmrpc__conn {
  /* What a call reads first. */
  shmrpc__os_service *service;
  const void *server;      /* server area: read-only, untrusted */
  void *calls;             /* calls area */
  uint32_t capacity;       /* validated when connecting */
  uint32_t lanes;
  uint64_t generation;     /* of the server connected to */
  volatile uint32_t dead;  /* 1 once its server died or stopped */
  volatile uint32_t suspect; /* a loop saw its server go: look now */
  shmrpc__lane lane[SHMRPC_MAX_LANES];
  shmrpc__spin spin[SHMRPC_MAX_LANES]; /* per lane: one call at a time */
  uint64_t retired_epoch;  /* when it was retired */
  struct shmrpc__conn *retired_next;
} shmrpc__conn;

struct shmrpc_client {
  shmrpc__conn *volatile conn;    /* the current connection, or NULL */
  volatile uint32_t active;       /* calls inside the handle */
  volatile uint32_t closing;      /* shmrpc_client_close has begun */
  volatile uint32_t connecting;   /* one thread (re)connects at a time */
  volatile uint64_t epoch;        /* bumped by each retirement */
  shmrpc__conn *volatile retired; /* replaced connections not closed yet */
  shmrpc__os_loop *volatile loop; /* the waitable, made on first use */
  int32_t spin_us;
  int global_namespace;
  int has_server_user;
  char server_user[SHMRPC_USER_MAX + 1];
  char name[SHMRPC_NAME_MAX + 1];
};

/* A call counts itself in `active` from before it loads the connection
 * until it is over (a call that does not block: until it is finished or
 * cancelled), so that no connection it uses is closed under it. enter
 * fails (SHMRPC_EINVAL) once the handle is closing. */
int shmrpc__client_enter(shmrpc_client *client);
void shmrpc__client_leave(shmrpc_client *client);

/* The handle's connection if it is alive, else a new one made before the
 * deadline (one thread connects; the others wait for it). */
int shmrpc__client_connect(shmrpc_client *client, shmrpc__deadline *deadline,
                           shmrpc__conn **out);

/* Forgets the calling thread's last application error (each call does). */
void shmrpc__client_clear_app_error(void);
/* The lane the calling thread used last: where its next call looks first
 * (its lines are likely in this CPU's cache). */
uint32_t shmrpc__client_lane_hint(void);

/* Is the server still there? Cheap checks first; the kernel has the last
 * word. 0, SHMRPC_ESHUTDOWN or SHMRPC_ESERVERDIED (the connection is then
 * marked dead for every call on it). */
int shmrpc__conn_health(shmrpc__conn *conn);

/* With a lane just taken: 0 if the server looks as it did at connect time,
 * else what shmrpc__conn_health says. Three loads when all is well: the
 * header's generation and state, the calls header's server_dead. */
int shmrpc__conn_check(shmrpc__conn *conn);

/* Before a call takes a lane, likely `lane` (the thread's last): asks for
 * the lines it will touch before it needs the first. After an idle spell
 * each is a cache miss (and each page a TLB miss); they then load side by
 * side rather than one after another (README, Performance: the doorbell
 * of a cold call rang at 1.8 us instead of 2.6 us). When they are cached
 * this is a few instructions. The backend's own words are its lane_try's to ask for. */
static inline void shmrpc__conn_prefetch(const shmrpc__conn *conn,
                                         uint32_t lane) {
  if (lane >= conn->lanes)
    lane = 0;
  SHMRPC__PREFETCH(conn->lane[lane].request);
  SHMRPC__PREFETCH(conn->lane[lane].answer);
  SHMRPC__PREFETCH(shmrpc__area_header(conn->server));
  SHMRPC__PREFETCH(shmrpc__area_doorbell(conn->server));
  SHMRPC__PREFETCH(shmrpc__area_calls_header(conn->calls));
}

/* With lane `index` held: makes its slot ours to post into, without
 * waiting. Returns 0 (idle), 1 (busy: the server still works on a call a
 * previous holder left; look again), or a negative error. */
int shmrpc__conn_prepare(shmrpc__conn *conn, uint32_t index);
/* The same, waiting until the deadline for a busy lane. */
int shmrpc__conn_prepare_wait(shmrpc__conn *conn, uint32_t index,
                              shmrpc__deadline *deadline);

/* Posts a call on the held, idle lane `index` and rings the server if it
 * needs it; returns the call's sequence number (*wait_flags: how to wait
 * for the answer), or 0 (shmrpc__conn_post_failed says why). A ring that
 * wakes a sleeping server marks the lane SHMRPC__SLEEPER_YIELDED first
 * (wait_flags then has SHMRPC__WAIT_NO_SPIN): the caller then calls
 * shmrpc__conn_yield. */
uint32_t shmrpc__conn_post(shmrpc__conn *conn, uint32_t index, uint32_t method,
                           const void *request, size_t request_len,
                           const shmrpc__deadline *deadline, int *wait_flags);

/* After a post that woke a sleeping server: yields the CPU, which the
 * scheduler often queued the woken worker on (it then runs now, and its
 * answer needs no wake-up), unless the lane rang a sleeping server less
 * than SHMRPC__YIELD_GAP_NS ago; then lowers the lane's YIELDED mark
 * unless the server did. Returns the time it read before the yield. */
uint64_t shmrpc__conn_yield(shmrpc__conn *conn, uint32_t index);

/* 1 once call `seq` of lane `index` is answered. */
static inline int shmrpc__conn_answered(const shmrpc__conn *conn,
                                        uint32_t index, uint32_t seq) {
  return shmrpc__load32_sc(&conn->lane[index].answer->response_seq) == seq;
}

/* Waits until the deadline for the answer of call `seq` on lane `index`,
 * spinning then sleeping. Returns 1 when answered, else SHMRPC_ETIMEDOUT or
 * what shmrpc__conn_health said. */
int shmrpc__conn_wait_answer(shmrpc__conn *conn, uint32_t index, uint32_t seq,
                             int wait_flags, shmrpc__deadline *deadline);

/* Why shmrpc__conn_post returned 0: what shmrpc__conn_health says if the
 * server died or changed (a new server clears the lanes), else
 * SHMRPC_EPROTO (someone wrote over the lane's lock). */
int shmrpc__conn_post_failed(shmrpc__conn *conn);

/* 0 while call `seq` of lane `index` is answered or still posted. Else what
 * shmrpc__conn_health says if the server died or changed (a new server
 * clears the lanes), or SHMRPC_EPROTO (another process withdrew or replaced
 * the call). */
int shmrpc__conn_call_lost(shmrpc__conn *conn, uint32_t index, uint32_t seq);

/* Gives up call `seq` of lane `index`: withdrawn if the server has not
 * taken it, else left for the lane's next holder to wait out. Returns 1 if
 * the answer arrived after all (take it), else 0. */
int shmrpc__conn_abandon(shmrpc__conn *conn, uint32_t index, uint32_t seq);

/* Copies the answer of lane `index` out, validated, and returns the call's
 * result (as shmrpc_call returns it). */
int shmrpc__conn_take_answer(shmrpc_client *client, shmrpc__conn *conn,
                             uint32_t index, void *response,
                             size_t response_cap, size_t *response_len);

/* Counts in the calls area what the server folds into its counters. */
void shmrpc__conn_report_timeout(shmrpc__conn *conn);
void shmrpc__conn_report_recovery(shmrpc__conn *conn);

/* pending.c: shmrpc_client_close ends the calling thread's calls that do
 * not block on this handle (they stay valid, as cancelled, until freed). */
void shmrpc__pending_detach(shmrpc_client *client);

#endif /* SHMRPC_CLIENT_H */
