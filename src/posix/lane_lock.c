/*
 * Lane locks of the POSIX backend: a 32-bit word per lane in the calls
 * object, owned by this library and validated on every read, never a
 * structure another library trusts.
 *
 * A lock word is 0 when the lane is free, else (check << 16) | (token + 1),
 * where token names the client connection that holds it and check mixes
 * the token with the server's generation. Each connection holds its token
 * for its lifetime as an OFD write lock on byte POSIX_TOKEN_BASE + token of
 * the calls object: the kernel drops it when the process dies (or the
 * connection closes), so "the owner is gone" is the kernel's word, never a
 * pid's and never the mapping's. A caller that has waited a slice for a lane
 * asks the kernel about the recorded owner's token and takes over the lane
 * of an owner that is gone; the slot protocol repairs the lane.
 *
 * What a writer of the mapping can do to a lock word: a value that fails
 * the check is garbage, taken over at once; a value naming a dead or free
 * token is taken over after a slice. A value that names a live connection
 * (another, or the caller's own), written on purpose, keeps that lane from
 * others until that connection closes (the other lanes serve): no process
 * can tell a live connection that it does not hold a lane without asking
 * it, and a connection's threads share its name, so even the connection
 * cannot tell a forged word from one of its threads' holding.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "posix.h"

static uint32_t lock_word(const shmrpc__os_service *service, uint32_t token) {
  uint32_t owner = token + 1u;
  uint32_t check = (owner * 0x9E3779B1u) ^ (service->lock_check * 0x85EBCA6Bu);
  return (check & 0xFFFF0000u) | owner;
}

/* The token a valid lock word names, or POSIX_TOKENS for garbage. */
static uint32_t word_token(const shmrpc__os_service *service, uint32_t word) {
  uint32_t owner = word & 0xFFFFu;
  if (owner == 0 || lock_word(service, owner - 1u) != word)
    return POSIX_TOKENS;
  return owner - 1u;
}

static volatile uint32_t *lock_of(const shmrpc__os_service *service,
                                  uint32_t lane) {
  return &service->calls_prefix->lane[lane].lock;
}

static int token_lock(int fd, uint32_t token, short type, int query) {
  struct flock lock;
  memset(&lock, 0, sizeof(lock));
  lock.l_type = type;
  lock.l_whence = SEEK_SET;
  lock.l_start = POSIX_TOKEN_BASE + (off_t)token;
  lock.l_len = 1;
  POSIX_COUNT_SYSCALL();
  if (query) {
    if (fcntl(fd, F_OFD_GETLK, &lock) != 0)
      return 1; /* cannot tell: assume alive, never steal on a guess */
    return lock.l_type != F_UNLCK;
  }
  return fcntl(fd, F_OFD_SETLK, &lock);
}

int posix_token_alive(shmrpc__os_service *service, uint32_t token) {
  /* Any lock there, read or write, keeps the token alive. */
  return token_lock(service->calls_fd, token, F_WRLCK, 1);
}

int posix_token_take(shmrpc__os_service *service) {
  uint32_t start = (uint32_t)(shmrpc__os_random64() % POSIX_TOKENS), i, lane;
  for (i = 0; i < POSIX_TOKENS; i++) {
    uint32_t token = (start + i) % POSIX_TOKENS;
    if (token_lock(service->calls_fd, token, F_WRLCK, 0) != 0) {
      if (errno == EAGAIN || errno == EACCES)
        continue;
      return shmrpc__error_detail(SHMRPC_EOS,
                                  "taking a client token of service '%s': %s",
                                  service->name, strerror(errno));
    }
    service->token = token;
    service->lock_mine = lock_word(service, token);
    /* A connection that held this token before us is dead (the kernel gave
     * us its lock): lanes it still holds are free. The slot protocol
     * repairs them when someone takes them. */
    for (lane = 0; lane < service->lanes; lane++) {
      volatile uint32_t *word = lock_of(service, lane);
      uint32_t seen = shmrpc__load32_sc(word);
      if (seen != 0 && word_token(service, seen) == token)
        (void)shmrpc__cas32(word, seen, 0u);
    }
    return 0;
  }
  return shmrpc__error_detail(SHMRPC_ENOSPC,
                              "service '%s' has no free client token (all %u "
                              "are held)",
                              service->name, POSIX_TOKENS);
}

int posix_lane_free(const shmrpc__os_service *service, uint32_t lane) {
  return shmrpc__load32_sc(lock_of(service, lane)) == 0;
}

/* Claims `lane` for this connection by replacing `seen` with our word. */
static int claim(shmrpc__os_service *service, uint32_t lane, uint32_t seen) {
  volatile uint32_t *word = lock_of(service, lane);
  uint32_t mine = service->lock_mine;
  return shmrpc__cas32(word, seen, mine);
}

SHMRPC__HOT int posix_lane_take(shmrpc__os_service *service, uint32_t lane,
                                int prove_dead) {
  uint32_t seen = shmrpc__load32_sc(lock_of(service, lane)), token;
  if (seen == 0)
    return claim(service, lane, 0) ? 0 : POSIX_LANE_BUSY;
  token = word_token(service, seen);
  if (token == POSIX_TOKENS) /* garbage: nobody holds it */
    return claim(service, lane, seen) ? SHMRPC__ABANDONED : POSIX_LANE_BUSY;
  /* Our own name: a thread of this connection holds the lane. (What a dead
   * former holder of our token left was cleared when we took the token; a
   * writer who forges our name pins the lane as any live name does.) */
  if (token == service->token)
    return POSIX_LANE_BUSY;
  if (prove_dead && !posix_token_alive(service, token))
    return claim(service, lane, seen) ? SHMRPC__ABANDONED : POSIX_LANE_BUSY;
  return POSIX_LANE_BUSY;
}

SHMRPC__HOT void shmrpc__os_lane_release(shmrpc__os_service *service,
                                         uint32_t lane) {
  volatile uint32_t *word = lock_of(service, lane);
  uint32_t mine = service->lock_mine;
  /* If someone rewrote the word meanwhile, leave it: it is not ours to
   * clear, and whoever it names is judged by its own token. */
  (void)shmrpc__cas32(word, mine, 0u);
  posix_queue_wake_head(service);
}

int shmrpc__os_lane_query(shmrpc__os_service *service, uint32_t lane,
                          shmrpc__os_lane_info *out) {
  uint32_t seen, token;
  memset(out, 0, sizeof(*out));
  if (lane >= service->lanes || service->calls_prefix == NULL)
    return SHMRPC_EINVAL;
  seen = shmrpc__load32_sc(lock_of(service, lane));
  out->owner = seen;
  if (seen == 0)
    return 0;
  token = word_token(service, seen);
  out->held = token != POSIX_TOKENS;
  out->owner_alive = out->held && posix_token_alive(service, token);
  return 0;
}

int shmrpc__os_lane_recover(shmrpc__os_service *service, uint32_t lane) {
  volatile uint32_t *word;
  uint32_t seen, token;
  if (lane >= service->lanes || service->calls_prefix == NULL)
    return 0;
  word = lock_of(service, lane);
  seen = shmrpc__load32_sc(word);
  if (seen == 0)
    return 0;
  token = word_token(service, seen);
  if (token != POSIX_TOKENS && posix_token_alive(service, token))
    return 0;
  /* A live caller that takes the lane meanwhile replaces `seen`: then
   * this fails and its lock stands. */
  return shmrpc__cas32(word, seen, 0u);
}
