/*
 * Baselines over byte streams: a Unix domain socket pair (SOCK_STREAM) and a
 * pair of pipes. A message is an 8-byte length followed by the payload,
 * written with one writev and read with readv loops until complete, so big
 * messages take as many system calls as the kernel buffers force.
 *
 * Copies per call, as for a shared-memory call: the client's request buffer
 * into the kernel, the kernel into the server's private buffer; the
 * server's response (its template, stamped) into the kernel, the kernel into
 * the client's response buffer.
 *
 * Only one call is in flight on a connection, so a read never takes bytes
 * of the next message. The server stops at end of file, once the client
 * and the parent have closed their ends.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "bench.h"
#include "payload.h"

int bench_big_buffers = 0;

/* Kernel buffer size asked for with --big-buffers. */
#define BENCH_BIG_BUFFER (2u * 1024u * 1024u)
#define BENCH_BIG_PIPE (1024u * 1024u)

typedef struct stream_state {
  const char *name;
  size_t max_size;
  int server_read;  /* the server reads requests here */
  int server_write; /* and writes responses here */
  int client_read;
  int client_write;
} stream_state;

static void close_fd(int *fd) {
  if (*fd >= 0) {
    close(*fd);
  }
  *fd = -1;
}

/* Closes both fds of one side (a socket is its own read and write end). */
static void close_side(int *read_fd, int *write_fd) {
  if (*read_fd == *write_fd) {
    *write_fd = -1;
  }
  close_fd(read_fd);
  close_fd(write_fd);
}

static int stream_prepare(const char *name, int use_socket, void **out,
                          size_t max_size) {
  stream_state *state = calloc(1, sizeof *state);
  if (state == NULL) {
    bench_error("out of memory");
    return -1;
  }
  state->name = name;
  state->max_size = max_size;
  if (use_socket) {
    int pair[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, pair) != 0) {
      bench_error("socketpair: %s", strerror(errno));
      free(state);
      return -1;
    }
    if (bench_big_buffers) {
      int bytes = (int)BENCH_BIG_BUFFER;
      for (int i = 0; i < 2; i++) {
        setsockopt(pair[i], SOL_SOCKET, SO_SNDBUF, &bytes, sizeof bytes);
        setsockopt(pair[i], SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes);
      }
    }
    state->client_read = state->client_write = pair[0];
    state->server_read = state->server_write = pair[1];
  } else {
    int to_server[2];
    int to_client[2];
    if (pipe(to_server) != 0) {
      bench_error("pipe: %s", strerror(errno));
      free(state);
      return -1;
    }
    if (pipe(to_client) != 0) {
      bench_error("pipe: %s", strerror(errno));
      close(to_server[0]);
      close(to_server[1]);
      free(state);
      return -1;
    }
    if (bench_big_buffers) {
      fcntl(to_server[1], F_SETPIPE_SZ, (int)BENCH_BIG_PIPE);
      fcntl(to_client[1], F_SETPIPE_SZ, (int)BENCH_BIG_PIPE);
    }
    state->server_read = to_server[0];
    state->client_write = to_server[1];
    state->client_read = to_client[0];
    state->server_write = to_client[1];
  }
  *out = state;
  return 0;
}

static int unix_prepare(void **out, size_t max_size) {
  return stream_prepare("unix", 1, out, max_size);
}

static int pipe_prepare(void **out, size_t max_size) {
  return stream_prepare("pipe", 0, out, max_size);
}

/* The part of a message (an 8-byte length, then the payload) still to move
 * after `done` of its `total` bytes: the rest of the length and up to
 * payload_room bytes of payload, or the rest of the payload. Returns the
 * number of iovecs filled. */
static int message_iov(struct iovec iov[2], uint64_t *header, void *payload,
                       size_t payload_room, size_t done, size_t total) {
  if (done < sizeof *header) {
    iov[0].iov_base = (char *)header + done;
    iov[0].iov_len = sizeof *header - done;
    iov[1].iov_base = payload;
    iov[1].iov_len = payload_room;
    return 2;
  }
  iov[0].iov_base = (char *)payload + (done - sizeof *header);
  iov[0].iov_len = total - done;
  return 1;
}

/* Writes the length and the payload, looping over partial writes. */
static int write_message(int fd, const void *payload, size_t len) {
  uint64_t header = len;
  struct iovec iov[2];
  size_t done = 0;
  size_t total = sizeof header + len;
  while (done < total) {
    int count =
        message_iov(iov, &header, (void *)(uintptr_t)payload, len, done, total);
    ssize_t rc = writev(fd, iov, count);
    if (rc < 0) {
      if (errno == EINTR) {
        continue;
      }
      bench_error("writev: %s", strerror(errno));
      return -1;
    }
    done += (size_t)rc;
  }
  return 0;
}

/* Reads one message into payload (cap bytes). Returns 0 with *len set, 1 at
 * a clean end of file before the message, -1 on error. */
static int read_message(int fd, void *payload, size_t cap, size_t *len) {
  uint64_t header = 0;
  size_t done = 0;
  size_t total = SIZE_MAX;
  while (done < total) {
    struct iovec iov[2];
    int count = message_iov(iov, &header, payload, cap, done, total);
    ssize_t rc = readv(fd, iov, count);
    if (rc < 0) {
      if (errno == EINTR) {
        continue;
      }
      bench_error("readv: %s", strerror(errno));
      return -1;
    }
    if (rc == 0) {
      if (done == 0) {
        return 1;
      }
      bench_error("end of file inside a message");
      return -1;
    }
    done += (size_t)rc;
    if (total == SIZE_MAX && done >= sizeof header) {
      if (header > cap || header < BENCH_MIN_SIZE) {
        bench_error("bad message length %llu", (unsigned long long)header);
        return -1;
      }
      total = sizeof header + (size_t)header;
    }
  }
  if (done != total) {
    bench_error("read past the end of a message");
    return -1;
  }
  *len = (size_t)header;
  return 0;
}

static int stream_serve(void *opaque, int ready_fd) {
  stream_state *state = opaque;
  close_side(&state->client_read, &state->client_write);
  unsigned char *request = malloc(state->max_size);
  unsigned char *response = malloc(state->max_size);
  if (request == NULL || response == NULL) {
    bench_error("out of memory");
    return -1;
  }
  memset(request, 0, state->max_size);
  bench_fill_pattern(response, state->max_size);
  bench_signal_ready(ready_fd);
  for (;;) {
    size_t len;
    int rc = read_message(state->server_read, request, state->max_size, &len);
    if (rc == 1) {
      break;
    }
    if (rc != 0) {
      return -1;
    }
    /* The template is the response buffer: stamping it is all the writing
     * the server does before the kernel copies it. */
    bench_answer(request, len, response, response);
    if (write_message(state->server_write, response, len) != 0) {
      return -1;
    }
  }
  free(request);
  free(response);
  return 0;
}

static int stream_connect(void *opaque, void **conn) {
  stream_state *state = opaque;
  close_side(&state->server_read, &state->server_write);
  *conn = state;
  return 0;
}

static int stream_call(void *opaque, const void *request, size_t request_len,
                       void *response, size_t response_cap,
                       size_t *response_len) {
  stream_state *state = opaque;
  if (write_message(state->client_write, request, request_len) != 0) {
    return -1;
  }
  int rc = read_message(state->client_read, response, response_cap,
                        response_len);
  if (rc == 1) {
    bench_error("%s: the server closed the connection", state->name);
  }
  return rc == 0 ? 0 : -1;
}

static void stream_disconnect(void *opaque) {
  stream_state *state = opaque;
  close_side(&state->client_read, &state->client_write);
}

static void stream_stop(void *opaque, pid_t server_pid) {
  stream_state *state = opaque;
  (void)server_pid;
  /* With the clients gone, closing the parent's copies gives the server end
   * of file. */
  close_side(&state->client_read, &state->client_write);
  close_side(&state->server_read, &state->server_write);
}

static void stream_release(void *opaque) {
  stream_state *state = opaque;
  stream_stop(state, 0);
  free(state);
}

const bench_transport bench_transport_unix = {
    .name = "unix",
    .description = "Unix domain socket pair, SOCK_STREAM, length-prefixed "
                   "writev/readv loops",
    .max_clients = 1,
    .prepare = unix_prepare,
    .serve = stream_serve,
    .connect = stream_connect,
    .call = stream_call,
    .disconnect = stream_disconnect,
    .stop = stream_stop,
    .release = stream_release,
};

const bench_transport bench_transport_pipe = {
    .name = "pipe",
    .description = "two pipes, length-prefixed writev/readv loops",
    .max_clients = 1,
    .prepare = pipe_prepare,
    .serve = stream_serve,
    .connect = stream_connect,
    .call = stream_call,
    .disconnect = stream_disconnect,
    .stop = stream_stop,
    .release = stream_release,
};
