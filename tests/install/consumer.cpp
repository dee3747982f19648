// The C++ counterpart of consumer.c: built against an installed shmrpc
// with the header-only shmrpc.hpp, it serves "add" on a thread, calls it
// once through a real service and prints the same line as consumer.c.
// Exits 0 only if everything worked.
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>

#include <unistd.h>

#include <shmrpc.hpp>

int main() {
  const std::int64_t a = 4000000000000, b = -1234567;
  if (shmrpc::version() != SHMRPC_VERSION_STRING) {
    std::fprintf(stderr, "consumer_cpp: header %s but library %s\n",
                 SHMRPC_VERSION_STRING, shmrpc_version_string());
    return 1;
  }
  const std::string name = "shmrpc-install-cpp-" + std::to_string(getpid());
  try {
    shmrpc::server server(name);
    server.method(1, "add", [](shmrpc::bytes_view request) {
      auto [x, y] = shmrpc::unpack<std::int64_t, std::int64_t>(request);
      return shmrpc::pack(x + y); // the values are small enough
    });
    std::thread serving([&server] { server.run(); });
    std::int64_t sum = 0;
    try {
      shmrpc::client client(name, 10000);
      sum = shmrpc::unpack<std::int64_t>(
          client.call(1, shmrpc::pack(a, b), 10000));
    } catch (...) {
      server.stop();
      serving.join();
      throw;
    }
    server.stop();
    serving.join();
    std::printf("shmrpc %s: %lld + %lld = %lld\n", shmrpc_version_string(),
                static_cast<long long>(a), static_cast<long long>(b),
                static_cast<long long>(sum));
    return sum == a + b ? 0 : 1;
  } catch (const shmrpc::error &e) {
    std::fprintf(stderr, "consumer_cpp: %s\n", e.what());
    return 1;
  }
}
