/*
 * shmrpc: the command-line tool. Lists the services of this user, shows a
 * service's counters, pings it, lists its methods, and removes the names
 * dead servers left behind, and calls any method. Uses the public API only.
 *
 * This file parses the command line and prints the help; the commands live
 * in services.c, calls.c and call.c.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shmrpc.h"
#include "tool.h"

/* The options a command accepts besides --json and --help. */
enum {
  OPT_TIMEOUT = 1u << 0,
  OPT_COUNT = 1u << 1,
  OPT_SIZE = 1u << 2,
  OPT_ALL = 1u << 3,
  OPT_GLOBAL = 1u << 4,
  OPT_FORMAT = 1u << 5, /* call --in, --out */
  OPT_SERVER_USER = 1u << 6,
  OPT_LAST = OPT_SERVER_USER
};

typedef struct tool_command {
  const char *name;
  int (*run)(const tool_options *options);
  int min_operands;
  int max_operands; /* -1: any number */
  unsigned accepted;
  const char *help; /* the text `shmrpc COMMAND --help` prints */
} tool_command;

static const tool_command commands[] = {
    {"list", tool_list, 0, 0, OPT_ALL,
     "usage: shmrpc list [--json] [--all]\n"
     "\n"
     "Lists every shmrpc service of this user on this machine, live or\n"
     "stale, without calling any: its name, the server's pid, its state,\n"
     "the slot capacity in bytes and the calls it has served.\n"
     "\n"
     "States: alive (a server holds the name), stale (its server died;\n"
     "'shmrpc clean' removes it), incomplete (no control block yet: a server\n"
     "starting, or one that died while starting). With --all, also names\n"
     "this user cannot use: no-access (another user's) and foreign (another\n"
     "user's, another protocol version, or not a shmrpc service).\n"
     "\n"
     "--json prints {\"services\": [{\"name\", \"state\", \"alive\",\n"
     "\"server_pid\", \"capacity\", \"calls\"}, ...]}; an entry without a\n"
     "readable control block has \"error\" (e.g. \"SHMRPC_ENOSERVER\") "
     "instead\n"
     "of the numbers.\n"
     "\n"
     "Windows cannot enumerate named objects: there list fails (exit 1);\n"
     "use 'shmrpc stat NAME'.\n"},
    {"stat", tool_stat, 1, 1, OPT_GLOBAL,
     "usage: shmrpc stat [--json] [--global] NAME\n"
     "\n"
     "Reads the control block of service NAME without calling it: whether\n"
     "its server is alive, the server's pid and generation (random per\n"
     "server instance), the slot capacity, the slot's state now (free,\n"
     "posted or busy), the uptime, and the counters: calls served\n"
     "(built-in methods included), application errors, calls that timed out\n"
     "in a client, slot locks recovered from dead clients, control blocks\n"
     "the server repaired after someone wrote over them, and the request\n"
     "and response bytes.\n"
     "\n"
     "--json prints {\"name\", \"state\", \"alive\", \"server_pid\",\n"
     "\"generation\" (a hex string), \"capacity\", \"slot_state\",\n"
     "\"uptime_ms\" (0 when stale), \"calls\", \"app_errors\", \"timeouts\",\n"
     "\"recoveries\", \"repairs\", \"bytes_in\", \"bytes_out\"}.\n"
     "\n"
     "Exits 1 if no service NAME exists.\n"},
    {"ping", tool_ping, 1, 1,
     OPT_TIMEOUT | OPT_COUNT | OPT_SIZE | OPT_GLOBAL | OPT_SERVER_USER,
     "usage: shmrpc ping [--json] [-n COUNT] [--size BYTES] [--timeout MS]\n"
     "                   [--global] [--server-user USER] NAME\n"
     "\n"
     "Makes COUNT round trips (default 10) to the built-in ping method of\n"
     "service NAME, each sending BYTES bytes (default 16) that must come back\n"
     "unchanged, and prints the latency of a round trip as seen by this\n"
     "process: min, p50, p99 (nearest rank), max and mean. --timeout bounds\n"
     "the wait for the server to appear and for each answer (default 1000\n"
     "ms; -1 waits forever, though a dead server still ends the wait).\n"
     "\n"
     "--json prints {\"name\", \"count\", \"size\", \"min_ns\", \"p50_ns\",\n"
     "\"p99_ns\", \"max_ns\", \"mean_ns\"}.\n"
     "\n"
     "Exits 1 if the server cannot be reached or a round trip fails, 2 if\n"
     "BYTES exceeds the service's slot capacity.\n"},
    {"methods", tool_methods, 1, 1, OPT_TIMEOUT | OPT_GLOBAL | OPT_SERVER_USER,
     "usage: shmrpc methods [--json] [--timeout MS] [--global]\n"
     "                      [--server-user USER] NAME\n"
     "\n"
     "Asks service NAME for the methods its server registered (the built-in\n"
     "list method) and prints their ids and names, by id. Every server also\n"
     "answers the built-in ping and list methods, which are not listed.\n"
     "--timeout bounds the wait for the server and its answer (default 1000\n"
     "ms).\n"
     "\n"
     "--json prints {\"name\", \"methods\": [{\"id\", \"name\"}, ...]}.\n"},
    {"clean", tool_clean, 0, -1, OPT_GLOBAL,
     "usage: shmrpc clean [--json] [--global] [NAME...]\n"
     "\n"
     "Removes the names that servers which died left behind, and says what\n"
     "it removed. Without NAME: every service of this user whose server is\n"
     "dead; live services, other users' names and names with no control\n"
     "block yet (a server may be starting) are left alone. With NAMEs: those\n"
     "services, if no live server holds them. A new server takes a dead\n"
     "server's names over anyway: this is for tidying up. On Windows names\n"
     "vanish with their last handle, so there is never anything to remove.\n"
     "\n"
     "--json prints {\"removed\": [{\"name\", \"server_pid\", \"reason\"}],\n"
     "\"skipped\": [{\"name\", \"reason\"}], \"absent\": [{\"name\"}] (with\n"
     "NAMEs only), \"failed\": [{\"name\", \"error\", \"message\"}]}.\n"
     "\n"
     "Exits 1 if a NAME has a live server or a removal fails; a NAME that\n"
     "does not exist is not an error.\n"},
    {"call", tool_call, 2, -1,
     OPT_TIMEOUT | OPT_GLOBAL | OPT_FORMAT | OPT_SERVER_USER,
     tool_call_help},
};

#define COMMAND_COUNT (sizeof(commands) / sizeof(commands[0]))

static const char general_help[] =
    "usage: shmrpc COMMAND [OPTIONS] [ARGS]\n"
    "       shmrpc COMMAND --help | shmrpc --help | shmrpc --version\n"
    "\n"
    "Looks at and exercises the shmrpc services of this user on this\n"
    "machine.\n"
    "\n"
    "Commands:\n"
    "  list               every service: name, server pid, alive or stale,\n"
    "                     slot capacity, calls served\n"
    "  stat NAME          a service's counters, uptime, slot state, liveness\n"
    "                     and generation\n"
    "  ping NAME          round trips to the built-in ping method, with their\n"
    "                     latency (min, p50, p99, max)\n"
    "  methods NAME       the methods the server registered: id and name\n"
    "  call NAME METHOD [ARGS...]\n"
    "                     call a method (by id or name) with a request made\n"
    "                     of ARGS, and print the answer\n"
    "  clean [NAME...]    remove the names of services whose server died\n"
#ifdef SHMRPC_TOOL_BRIDGE
    "  bridge export NAME --listen URL\n"
    "                     serve service NAME to the network over nng\n"
    "                     (loopback only unless --allow-remote)\n"
    "  bridge import URL --as NAME\n"
    "                     publish the export at URL as local service NAME\n"
#endif
    "  help [COMMAND]     this text, or a command's\n"
    "\n"
    "Options (each command's --help says which it takes):\n"
    "  --json             print one JSON document on stdout instead of text\n"
    "  --timeout MS       ping, methods, call: how long to wait for the server\n"
    "                     and for each answer (default 1000; -1 waits\n"
    "                     forever)\n"
    "  -n, --count COUNT  ping: round trips to make (default 10)\n"
    "  --size BYTES       ping: bytes sent and echoed per round trip\n"
    "                     (default 16)\n"
    "  --all              list: also names this user cannot use\n"
    "  --in FORMAT        call: how ARGS make the request (i64, str, text,\n"
    "                     hex, file; default i64)\n"
    "  --out FORMAT       call: how the answer is printed (i64, str, text,\n"
    "                     hex, raw)\n"
    "  --server-user USER ping, methods, call: the user the server must run as\n"
    "                     (a name or id; a SID on Windows). Without it only\n"
    "                     services of this user or the administrator are\n"
    "                     trusted\n"
    "  --global           Windows: use Global\\ names instead of Local\\\n"
    "  -h, --help         show help; after a command, that command's\n"
    "  --version          print the tool's and the library's versions\n"
    "\n"
    "Exit status:\n"
    "  0  success\n"
    "  1  runtime error: no such service, no live server, a timeout, a\n"
    "     failed call, an operating-system error\n"
    "  2  usage error: unknown command or option, a missing or bad argument\n"
    "  3  call: the method's handler failed (an application error; its code\n"
    "     and message are printed)\n"
    "\n"
    "Errors are one line on stderr: \"shmrpc: COMMAND: what went wrong\".\n"
    "With --json, stdout carries one JSON document and nothing else; a\n"
    "command that fails outright prints none.\n";

void tool_error(const char *command, const char *format, ...) {
  va_list args;
  fflush(stdout); /* keep the order of what a terminal shows */
  if (command != NULL)
    fprintf(stderr, "shmrpc: %s: ", command);
  else
    fputs("shmrpc: ", stderr);
  va_start(args, format);
  vfprintf(stderr, format, args);
  va_end(args);
  fputc('\n', stderr);
}

int tool_fail(const char *command, const char *what, const char *name,
              int err) {
  /* The library's most specific message: which object, which user, what
   * the operating system said. */
  if (name != NULL)
    tool_error(command, "%s '%s': %s (%s)", what, name,
               shmrpc_error_message(err), shmrpc_err_name(err));
  else
    tool_error(command, "%s: %s (%s)", what, shmrpc_error_message(err),
               shmrpc_err_name(err));
  return err == SHMRPC_EINVAL ? TOOL_EXIT_USAGE : TOOL_EXIT_RUNTIME;
}

static const tool_command *find_command(const char *name) {
  size_t i;
  for (i = 0; i < COMMAND_COUNT; i++) {
    if (strcmp(commands[i].name, name) == 0)
      return &commands[i];
  }
  return NULL;
}

/* Reports a usage error in one line, pointing at the right help, and
 * returns TOOL_EXIT_USAGE. command may be NULL. */
static int usage_error(const char *command, const char *format, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

static int usage_error(const char *command, const char *format, ...) {
  char message[256];
  va_list args;
  va_start(args, format);
  vsnprintf(message, sizeof(message), format, args);
  va_end(args);
  tool_error(command, "%s (see 'shmrpc %s%s--help')", message,
             command != NULL ? command : "", command != NULL ? " " : "");
  return TOOL_EXIT_USAGE;
}

int tool_parse_long(const char *text, long min, long max, long *out) {
  char *end;
  long value;
  errno = 0;
  value = strtol(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || value < min || value > max)
    return -1;
  *out = value;
  return 0;
}

#define OPTION_KINDS 7 /* the OPT_* flags */
_Static_assert(1u << (OPTION_KINDS - 1) == OPT_LAST,
               "OPTION_KINDS counts the OPT_* flags");

/* The command line as given: options in any order around the operands. */
typedef struct parsed_line {
  tool_options options;
  unsigned given;                         /* OPT_* flags that appeared */
  const char *first_option[OPTION_KINDS]; /* each one's spelling */
  int help;
  int version;
} parsed_line;

static void note_option(parsed_line *line, unsigned flag, const char *arg) {
  unsigned bit = 0;
  while ((1u << bit) != flag)
    bit++;
  line->given |= flag;
  if (line->first_option[bit] == NULL)
    line->first_option[bit] = arg;
}

/* The value of an option: the rest of "--name=value", or the next
 * argument; NULL if there is none. */
static const char *option_value(int argc, char **argv, int *i,
                                const char *equals) {
  if (equals != NULL)
    return equals + 1;
  if (*i + 1 >= argc)
    return NULL;
  return argv[++*i];
}

/* Reads argv into line; the operands go to `operands`, which has room for
 * argc entries. Returns 0, or an exit code after reporting. */
static int parse_line(int argc, char **argv, char **operands,
                      parsed_line *line) {
  tool_options *options = &line->options;
  int i, only_operands = 0;

  memset(line, 0, sizeof(*line));
  options->timeout_ms = TOOL_DEFAULT_TIMEOUT_MS;
  options->count = TOOL_DEFAULT_PING_COUNT;
  options->size = TOOL_DEFAULT_PING_SIZE;
  options->operands = operands;

  for (i = 1; i < argc; i++) {
    char *arg = argv[i];
    const char *equals, *value;
    size_t name_len;
    long number;

    /* A negative number is an operand (call's int64 ARGS), not an option. */
    if (only_operands || arg[0] != '-' || arg[1] == '\0' ||
        isdigit((unsigned char)arg[1])) {
      if (options->command == NULL)
        options->command = arg;
      else
        options->operands[options->operand_count++] = arg;
      continue;
    }
    if (strcmp(arg, "--") == 0) {
      only_operands = 1;
      continue;
    }
    equals = strchr(arg, '=');
    name_len = equals != NULL ? (size_t)(equals - arg) : strlen(arg);
#define IS(option)                                                             \
  (name_len == strlen(option) && strncmp(arg, option, name_len) == 0)
    if (equals != NULL && (IS("-h") || IS("--help") || IS("--version") ||
                           IS("--json") || IS("--all") || IS("--global"))) {
      return usage_error(options->command, "option '%.*s' takes no value",
                         (int)name_len, arg);
    } else if (IS("-h") || IS("--help")) {
      line->help = 1;
    } else if (IS("--version")) {
      line->version = 1;
    } else if (IS("--json")) {
      options->json = 1;
    } else if (IS("--all")) {
      options->all = 1;
      note_option(line, OPT_ALL, "--all");
    } else if (IS("--global")) {
      options->global_namespace = 1;
      note_option(line, OPT_GLOBAL, "--global");
    } else if (IS("--timeout")) {
      value = option_value(argc, argv, &i, equals);
      if (value == NULL)
        return usage_error(options->command, "--timeout needs a value in ms");
      if (tool_parse_long(value, -1, INT32_MAX, &number) != 0)
        return usage_error(options->command,
                           "bad --timeout '%s' (milliseconds, or -1 for "
                           "no limit)",
                           value);
      options->timeout_ms = (int32_t)number;
      note_option(line, OPT_TIMEOUT, "--timeout");
    } else if (IS("--server-user")) {
      value = option_value(argc, argv, &i, equals);
      if (value == NULL || value[0] == '\0')
        return usage_error(options->command,
                           "--server-user needs a user name or id");
      options->server_user = value;
      note_option(line, OPT_SERVER_USER, "--server-user");
    } else if (IS("--in") || IS("--out")) {
      int is_in = IS("--in");
      value = option_value(argc, argv, &i, equals);
      if (value == NULL)
        return usage_error(options->command, "%s needs a format",
                           is_in ? "--in" : "--out");
      if (is_in)
        options->in = value;
      else
        options->out = value;
      note_option(line, OPT_FORMAT, is_in ? "--in" : "--out");
    } else if (IS("-n") || IS("--count")) {
      value = option_value(argc, argv, &i, equals);
      if (value == NULL)
        return usage_error(options->command, "%s needs a count", arg);
      if (tool_parse_long(value, 1, TOOL_MAX_PING_COUNT, &number) != 0)
        return usage_error(options->command,
                           "bad count '%s' (1 to 10000000 round trips)", value);
      options->count = number;
      note_option(line, OPT_COUNT, IS("-n") ? "-n" : "--count");
    } else if (IS("--size")) {
      value = option_value(argc, argv, &i, equals);
      if (value == NULL)
        return usage_error(options->command, "--size needs a byte count");
      if (tool_parse_long(value, 0, (long)SHMRPC_MAX_CAPACITY, &number) != 0)
        return usage_error(options->command, "bad --size '%s' (bytes)", value);
      options->size = (size_t)number;
      note_option(line, OPT_SIZE, "--size");
    } else {
      return usage_error(options->command, "unknown option '%s'", arg);
    }
#undef IS
  }
  return 0;
}

static int print_help(const char *text) {
  fputs(text, stdout);
  return TOOL_EXIT_OK;
}

static int finish(int exit_code) {
  /* Output that never arrived is a failure too (a full disk, a closed
   * pipe): say so instead of exiting 0. */
  if (fflush(stdout) != 0 || ferror(stdout)) {
    tool_error(NULL, "cannot write the output");
    return exit_code == TOOL_EXIT_OK ? TOOL_EXIT_RUNTIME : exit_code;
  }
  return exit_code;
}

static int run(int argc, char **argv, char **operands) {
  const tool_command *command;
  parsed_line line;
  size_t i;
  int rc;
#ifdef SHMRPC_TOOL_BRIDGE
  /* The bridge has options of its own: it parses its line itself. */
  if (argc >= 2 && strcmp(argv[1], "bridge") == 0)
    return finish(tool_bridge(argc - 1, argv + 1));
#endif
  rc = parse_line(argc, argv, operands, &line);
  if (rc != 0)
    return rc;

  if (line.options.command == NULL) {
    if (line.version) {
      printf("shmrpc %s (library %s)\n", SHMRPC_VERSION_STRING,
             shmrpc_version_string());
      return finish(TOOL_EXIT_OK);
    }
    if (line.help)
      return finish(print_help(general_help));
    tool_error(NULL, "no command given (see 'shmrpc --help')");
    return TOOL_EXIT_USAGE;
  }
  if (strcmp(line.options.command, "help") == 0) {
    if (line.options.operand_count == 0)
      return finish(print_help(general_help));
#ifdef SHMRPC_TOOL_BRIDGE
    if (line.options.operand_count == 1 &&
        strcmp(line.options.operands[0], "bridge") == 0) {
      tool_bridge_help();
      return finish(TOOL_EXIT_OK);
    }
#endif
    command = find_command(line.options.operands[0]);
    if (command == NULL || line.options.operand_count > 1) {
      tool_error("help", "no command '%s' (see 'shmrpc --help')",
                 line.options.operands[0]);
      return TOOL_EXIT_USAGE;
    }
    return finish(print_help(command->help));
  }
  command = find_command(line.options.command);
  if (command == NULL) {
    tool_error(NULL, "unknown command '%s' (see 'shmrpc --help')",
               line.options.command);
    return TOOL_EXIT_USAGE;
  }
  if (line.help)
    return finish(print_help(command->help));
  if (line.version)
    return usage_error(command->name, "--version takes no command");

  for (i = 0; i < sizeof(line.first_option) / sizeof(line.first_option[0]);
       i++) {
    if ((line.given & (1u << i)) != 0 && (command->accepted & (1u << i)) == 0)
      return usage_error(command->name, "this command takes no %s",
                         line.first_option[i]);
  }
  if (line.options.operand_count < command->min_operands)
    return usage_error(command->name, line.options.operand_count == 0
                                          ? "missing service NAME"
                                          : "missing METHOD");
  if (command->max_operands >= 0 &&
      line.options.operand_count > command->max_operands)
    return usage_error(command->name, "unexpected argument '%s'",
                       line.options.operands[command->max_operands]);
  return finish(command->run(&line.options));
}

int main(int argc, char **argv) {
  char **operands = calloc((size_t)argc + 1, sizeof(*operands));
  int exit_code;
  if (operands == NULL) {
    tool_error(NULL, "out of memory");
    return TOOL_EXIT_RUNTIME;
  }
  exit_code = run(argc, argv, operands);
  free(operands);
  return exit_code;
}
