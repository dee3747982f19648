/*
 * A lane, as the caller that holds it sees it: the slot protocol of
 * layout.h, one lane at a time. The lane's lock (which caller holds it) is
 * the backend's; this file only reads and writes the lane's lines. What
 * every call does (is the lane idle, post) is inline, in lane.h.
 */
#include "core.h"

SHMRPC__HOT int shmrpc__lane_not_busy(const shmrpc__lane *lane) {
  return shmrpc__load32_sc(&lane->answer->response_seq) ==
                 shmrpc__load32(lane->taken)
             ? 1
             : 0;
}

int shmrpc__lane_withdraw(shmrpc__lane *lane, uint32_t seq) {
  shmrpc__store32_sc(&lane->request->slot_state, SHMRPC__SLOT_FREE);
  return shmrpc__load32_sc(lane->taken) != seq;
}
