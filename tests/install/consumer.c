/*
 * A program built against an installed shmrpc, as a user would build it: a
 * server thread serves an "add" method, main calls it once through a real
 * service and checks the sum. Exits 0 only if everything worked.
 *
 * It uses the installed headers only: shmrpc.h for the calls and
 * shmrpc_payload.h for the request and response fields.
 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <shmrpc.h>
#include <shmrpc_payload.h>

#define METHOD_ADD 1u

/* How long either side waits for the other before the test fails. */
#define PATIENCE_MS 10000
#define SERVE_SLICE_MS 100

/* What the server thread shares with main. */
typedef struct server_thread {
  char name[SHMRPC_NAME_MAX + 1]; /* the service name */
  int served;                     /* set by the handler once it answered */
  int result;                     /* 0, or the first failure of the thread */
  const char *failed_step;        /* which call failed, for the message */
} server_thread;

/* Answers an i64 pair with their sum as an i64. */
static int handle_add(void *user_data, const void *request,
                      size_t request_len, shmrpc_reply *reply) {
  server_thread *thread = user_data;
  shmrpc_reader r;
  shmrpc_writer w;
  int64_t a;
  int64_t b;
  size_t capacity;
  void *area;
  int err;

  shmrpc_reader_init(&r, request, request_len);
  shmrpc_get_i64(&r, &a);
  shmrpc_get_i64(&r, &b);
  if (shmrpc_reader_done(&r, SHMRPC_TRAILING_ERROR) != 0)
    return shmrpc_reply_error(reply, 1, "expected two i64");

  area = shmrpc_reply_buffer(reply, &capacity);
  shmrpc_writer_init(&w, area, capacity);
  /* The client's values are small enough not to overflow. */
  shmrpc_put_i64(&w, a + b);
  if (w.err != 0)
    return shmrpc_reply_error(reply, 2, "no room for the answer");
  err = shmrpc_reply_commit(reply, w.len);
  if (err == 0)
    thread->served = 1;
  return err;
}

static void *serve(void *arg) {
  server_thread *thread = arg;
  shmrpc_server *server = NULL;
  int err;

  err = shmrpc_server_create(&server, thread->name, NULL);
  if (err != 0) {
    thread->failed_step = "shmrpc_server_create";
    thread->result = err;
    return NULL;
  }
  err = shmrpc_server_register(server, METHOD_ADD, "add", handle_add, thread);
  if (err != 0) {
    thread->failed_step = "shmrpc_server_register";
    thread->result = err;
  }
  /* Serve in slices until the add call has been answered, so that anything
   * else the client might send first does not end the test early. */
  for (int waited = 0; err == 0 && !thread->served && waited < PATIENCE_MS;
       waited += SERVE_SLICE_MS) {
    err = shmrpc_server_run_once(server, SERVE_SLICE_MS);
    if (err == SHMRPC_ETIMEDOUT)
      err = 0;
    if (err != 0) {
      thread->failed_step = "shmrpc_server_run_once";
      thread->result = err;
    }
  }
  if (err == 0 && !thread->served) {
    thread->failed_step = "waiting for the call";
    thread->result = SHMRPC_ETIMEDOUT;
  }
  shmrpc_server_destroy(server);
  return NULL;
}

/* Calls add(a, b) on the service; 0 and *sum, or a negative code. */
static int call_add(const char *name, int64_t a, int64_t b, int64_t *sum) {
  shmrpc_client *client = NULL;
  unsigned char request[16];
  unsigned char response[64];
  size_t response_len = 0;
  shmrpc_writer w;
  shmrpc_reader r;
  int err;

  err = shmrpc_client_open(&client, name, NULL, PATIENCE_MS);
  if (err != 0) {
    fprintf(stderr, "consumer: shmrpc_client_open: %s\n",
            shmrpc_strerror(err));
    return err;
  }
  shmrpc_writer_init(&w, request, sizeof request);
  shmrpc_put_i64(&w, a);
  shmrpc_put_i64(&w, b);
  err = w.err;
  if (err == 0)
    err = shmrpc_call(client, METHOD_ADD, request, w.len, response,
                      sizeof response, &response_len, PATIENCE_MS);
  if (err == SHMRPC_EAPP) {
    const char *message;
    int32_t code = shmrpc_client_app_error(client, &message);
    fprintf(stderr, "consumer: the handler failed: %d %s\n", (int)code,
            message);
  } else if (err != 0) {
    fprintf(stderr, "consumer: shmrpc_call: %s\n", shmrpc_strerror(err));
  }
  shmrpc_client_close(client);
  if (err != 0)
    return err;

  shmrpc_reader_init(&r, response, response_len);
  shmrpc_get_i64(&r, sum);
  err = shmrpc_reader_done(&r, SHMRPC_TRAILING_ERROR);
  if (err != 0)
    fprintf(stderr, "consumer: malformed response: %s\n",
            shmrpc_strerror(err));
  return err;
}

int main(void) {
  static server_thread thread;
  const int64_t a = 4000000000000;
  const int64_t b = -1234567;
  int64_t sum = 0;
  pthread_t tid;
  int err;

  /* The headers and the library must be the same release. */
  if (strcmp(shmrpc_version_string(), SHMRPC_VERSION_STRING) != 0 ||
      shmrpc_version() != SHMRPC_VERSION_HEX) {
    fprintf(stderr, "consumer: header %s but library %s\n",
            SHMRPC_VERSION_STRING, shmrpc_version_string());
    return 1;
  }

  snprintf(thread.name, sizeof thread.name, "shmrpc-install-%ld",
           (long)getpid());
  if (pthread_create(&tid, NULL, serve, &thread) != 0) {
    fprintf(stderr, "consumer: pthread_create failed\n");
    return 1;
  }
  err = call_add(thread.name, a, b, &sum);
  pthread_join(tid, NULL);

  if (thread.result != 0) {
    fprintf(stderr, "consumer: server: %s: %s\n", thread.failed_step,
            shmrpc_err_name(thread.result));
    return 1;
  }
  if (err != 0)
    return 1;
  printf("shmrpc %s: %lld + %lld = %lld\n", shmrpc_version_string(),
         (long long)a, (long long)b, (long long)sum);
  if (sum != a + b) {
    fprintf(stderr, "consumer: wrong sum, expected %lld\n",
            (long long)(a + b));
    return 1;
  }
  return 0;
}
