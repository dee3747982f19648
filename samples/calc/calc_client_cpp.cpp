/* calc_client_cpp [--name NAME] [--timeout MS] OP ARGS...: the calculator
 * client of calc_client.c, written with the C++ interface (shmrpc.hpp).
 * Same arguments, output and exit codes: 0 success, 2 usage or bad number,
 * 3 no server, 4 timeout, 5 application error, 6 any other error. */
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "calc.h"
#include "shmrpc.hpp"

namespace {

enum exit_code { EXIT_USAGE = 2, EXIT_NOSERVER = 3, EXIT_TIMEOUT = 4,
                 EXIT_APP = 5, EXIT_OTHER = 6 };

struct operation {
  std::string_view name;
  std::uint32_t method;
  int args; /* integer arguments; 0 means one expression string */
};
constexpr operation operations[] = {
    {"add", CALC_ADD, 2}, {"sub", CALC_SUB, 2}, {"mul", CALC_MUL, 2},
    {"div", CALC_DIV, 2}, {"mod", CALC_MOD, 2}, {"eval", CALC_EVAL, 0},
    {"sleep", CALC_SLEEP, 1}};

int usage(std::FILE *to, int code) {
  std::fputs("usage: calc_client_cpp [--name NAME] [--timeout MS] "
             "add|sub|mul|div|mod A B | eval EXPR | sleep MS\n",
             to);
  return code;
}

bool parse_i64(const char *text, std::int64_t &out) {
  char *end = nullptr;
  errno = 0;
  long long value = std::strtoll(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0')
    return false;
  out = value;
  return true;
}

int exit_code_for(int code) {
  switch (code) {
  case SHMRPC_ENOSERVER:
  case SHMRPC_ESERVERDIED:
  case SHMRPC_ESHUTDOWN:
    return EXIT_NOSERVER;
  case SHMRPC_ETIMEDOUT:
    return EXIT_TIMEOUT;
  case SHMRPC_EAPP:
    return EXIT_APP;
  case SHMRPC_EINVAL:
    return EXIT_USAGE;
  default:
    return EXIT_OTHER;
  }
}

} // namespace

int main(int argc, char **argv) {
  std::string name = CALC_DEFAULT_NAME;
  std::int64_t timeout_ms = 5000;
  int i = 1;
  for (; i < argc && std::string_view(argv[i]).substr(0, 2) == "--"; i++) {
    std::string_view option = argv[i];
    if (option == "--help")
      return usage(stdout, 0);
    if (i + 1 >= argc)
      return usage(stderr, EXIT_USAGE);
    if (option == "--name") {
      name = argv[++i];
    } else if (option == "--timeout") {
      if (!parse_i64(argv[++i], timeout_ms) || timeout_ms < -1 ||
          timeout_ms > INT32_MAX) {
        std::fprintf(stderr, "calc_client_cpp: bad timeout '%s'\n", argv[i]);
        return EXIT_USAGE;
      }
    } else {
      return usage(stderr, EXIT_USAGE);
    }
  }
  if (i >= argc)
    return usage(stderr, EXIT_USAGE);
  const operation *op = nullptr;
  for (const operation &candidate : operations)
    if (candidate.name == argv[i])
      op = &candidate;
  if (op == nullptr || argc - i - 1 != (op->args == 0 ? 1 : op->args))
    return usage(stderr, EXIT_USAGE);
  if (shmrpc_name_check(name.c_str()) != 0) {
    std::fprintf(stderr,
                 "calc_client_cpp: invalid service name '%s' (1 to %d "
                 "characters of [A-Za-z0-9._-])\n",
                 name.c_str(), SHMRPC_NAME_MAX);
    return EXIT_USAGE;
  }

  std::string request;
  if (op->args == 0) {
    request = shmrpc::pack(std::string_view(argv[i + 1]));
  } else {
    for (int a = 1; a <= op->args; a++) {
      std::int64_t value;
      if (!parse_i64(argv[i + a], value)) {
        std::fprintf(stderr, "calc_client_cpp: not a 64-bit integer: '%s'\n",
                     argv[i + a]);
        return EXIT_USAGE;
      }
      request += shmrpc::pack(value);
    }
  }

  /* One budget for opening and calling: the call gets what is left. */
  auto start = std::chrono::steady_clock::now();
  try {
    shmrpc::client client(name, static_cast<std::int32_t>(timeout_ms));
    std::int32_t left = SHMRPC_INFINITE;
    if (timeout_ms >= 0) {
      auto spent = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::steady_clock::now() - start)
                       .count();
      left = static_cast<std::int32_t>(spent < timeout_ms ? timeout_ms - spent : 0);
    }
    std::string answer = client.call(op->method, request, left);
    std::printf("%lld\n", static_cast<long long>(
                              shmrpc::unpack<std::int64_t>(answer)));
    return 0;
  } catch (const shmrpc::app_error &e) {
    std::fprintf(stderr, "calc_client_cpp: %s: %s (code %d)\n",
                 std::string(op->name).c_str(), e.app_message().c_str(),
                 static_cast<int>(e.app_code()));
    return EXIT_APP;
  } catch (const shmrpc::error &e) {
    std::fprintf(stderr, "calc_client_cpp: %s on '%s': %s\n",
                 std::string(op->name).c_str(), name.c_str(),
                 shmrpc_strerror(e.code()));
    return exit_code_for(e.code());
  }
}
