/*
 * Fork safety of the POSIX backend.
 *
 * OFD locks belong to the open file description, which a fork() child
 * shares with its parent: a child that kept its copies would keep a dead
 * server looking alive (its liveness lock), block a new server (the name's
 * lock), hold its parent's client token, and keep the FIFOs from reporting
 * the server's death. So every open service is on a list, and in the child
 * a pthread_atfork handler closes the child's copies of every descriptor,
 * unmaps its copies of the mappings (which reference the same open file
 * descriptions) and marks the services forked: the parent's descriptions lose only a
 * reference, and the child's handles refuse to serve and reconnect before
 * they call; nothing in the child may touch the old mappings again.
 *
 * A child made by exec (posix_spawn, system) closes everything anyway: every
 * descriptor here is O_CLOEXEC. A child made by clone(2) without the libc
 * fork wrapper runs no handler; do not do that with shmrpc handles open.
 */
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#include "posix.h"

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t registry_once = PTHREAD_ONCE_INIT;
static shmrpc__os_service *registry_head;

static void before_fork(void) { pthread_mutex_lock(&registry_lock); }

static void after_fork_parent(void) { pthread_mutex_unlock(&registry_lock); }

static void close_child_copy(int *fd) {
  if (*fd >= 0)
    close(*fd);
  *fd = -1;
}

/* A mapping holds a reference to the open file description it was made
 * from, just as a descriptor does, and so keeps its OFD locks: the child's
 * mappings go too. */
static void unmap_child_copy(void **map, size_t size) {
  if (*map != NULL)
    munmap(*map, size);
  *map = NULL;
}

volatile unsigned posix_fork_generation;

static void after_fork_child(void) {
  shmrpc__os_service *service;
  posix_fork_generation++;
  for (service = registry_head; service != NULL;
       service = service->registry_next) {
    service->forked = 1;
    unmap_child_copy(&service->server_map, service->server_map_size);
    unmap_child_copy(&service->calls_map, service->calls_map_size);
    service->server_prefix = NULL;
    service->calls_prefix = NULL;
    close_child_copy(&service->server_fd);
    close_child_copy(&service->calls_fd);
    close_child_copy(&service->lock_fd);
    posix_waitables_close(service);
  }
  pthread_mutex_unlock(&registry_lock);
}

static void registry_init(void) {
  (void)pthread_atfork(before_fork, after_fork_parent, after_fork_child);
}

void posix_registry_add(shmrpc__os_service *service) {
  pthread_once(&registry_once, registry_init);
  pthread_mutex_lock(&registry_lock);
  service->registry_prev = NULL;
  service->registry_next = registry_head;
  if (registry_head != NULL)
    registry_head->registry_prev = service;
  registry_head = service;
  pthread_mutex_unlock(&registry_lock);
}

void posix_registry_remove(shmrpc__os_service *service) {
  pthread_mutex_lock(&registry_lock);
  if (service->registry_prev != NULL)
    service->registry_prev->registry_next = service->registry_next;
  else if (registry_head == service)
    registry_head = service->registry_next;
  if (service->registry_next != NULL)
    service->registry_next->registry_prev = service->registry_prev;
  service->registry_prev = service->registry_next = NULL;
  pthread_mutex_unlock(&registry_lock);
}
