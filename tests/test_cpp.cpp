/*
 * The C++ interface (include/shmrpc.hpp): typed payloads, RAII server and
 * client, handlers of every accepted shape, exceptions and their
 * non-throwing forms, against a server on a thread of this process and
 * against the C test server in a helper process. CMake builds it with the
 * project's C++ compiler and again with the other one (g++ and clang++).
 */
#include <array>
#include <atomic>
#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <csetjmp>
#include <stdexcept>
#include <string>
#include <vector>

extern "C" {
#include <cmocka.h>

#include "helpers.h"
}

#include "shmrpc.hpp"

using std::int64_t;

namespace {

/* A shmrpc::server running run() on a thread until the object dies. The
 * thread is the tests' own (proc.h), not std::thread: MinGW's win32 thread
 * model has none. */
class served {
public:
  explicit served(shmrpc::server &server) : server_(server) {
    assert_int_equal(test_thread_start(&thread_, &served::serve, this), 0);
  }
  ~served() {
    server_.stop();
    test_thread_join(thread_);
  }
  served(const served &) = delete;
  served &operator=(const served &) = delete;

private:
  static void serve(void *self) { static_cast<served *>(self)->server_.run(); }
  shmrpc::server &server_;
  test_thread *thread_ = nullptr;
};

/* Runs fn and returns the shmrpc::error it throws; fails if it throws none
 * or another type. */
template <class F> shmrpc::error expect_error(F &&fn) {
  try {
    fn();
  } catch (const shmrpc::error &e) {
    return e;
  }
  fail_msg("%s", "no shmrpc::error was thrown");
  return shmrpc::error(0);
}

void test_pack_round_trip(void **) {
  std::string body = shmrpc::pack(std::uint8_t{7}, std::uint16_t{0xBEEF},
                                  std::uint32_t{1u << 31}, std::int32_t{-5},
                                  int64_t{-1234567890123}, 2.5, "text",
                                  std::string("with\0nul", 8));
  assert_int_equal(body.size(), 1 + 2 + 4 + 4 + 8 + 8 + (4 + 4) + (4 + 8));
  /* Little-endian on the wire, whatever the machine. */
  assert_int_equal(static_cast<unsigned char>(body[1]), 0xEF);
  assert_int_equal(static_cast<unsigned char>(body[2]), 0xBE);

  auto [u8, u16, u32, i32, i64, f64, text, nul] =
      shmrpc::unpack<std::uint8_t, std::uint16_t, std::uint32_t, std::int32_t,
                     int64_t, double, std::string_view, std::string>(body);
  assert_int_equal(u8, 7);
  assert_int_equal(u16, 0xBEEF);
  assert_int_equal(u32, 1u << 31);
  assert_int_equal(i32, -5);
  assert_true(i64 == -1234567890123);
  assert_true(f64 == 2.5);
  assert_true(text == "text");
  assert_true(nul == std::string("with\0nul", 8));

  /* One type: the value itself. */
  assert_true(shmrpc::unpack<int64_t>(shmrpc::pack(int64_t{42})) == 42);
}

void test_unpack_rejects_malformed(void **) {
  std::string two = shmrpc::pack(int64_t{1}, int64_t{2});
  /* Cut short, and with bytes left over: both SHMRPC_EPROTO. */
  shmrpc::error short_body =
      expect_error([&] { shmrpc::unpack<int64_t, int64_t>(two.substr(0, 12)); });
  assert_int_equal(short_body.code(), SHMRPC_EPROTO);
  shmrpc::error trailing = expect_error([&] { shmrpc::unpack<int64_t>(two); });
  assert_int_equal(trailing.code(), SHMRPC_EPROTO);
  assert_string_equal(trailing.name(), "SHMRPC_EPROTO");

  /* A reader may allow the fields a newer peer appended. */
  shmrpc::reader r(two);
  assert_true(r.i64() == 1);
  r.done(true);
  assert_int_equal(r.remaining(), 8);

  /* A writer out of room records SHMRPC_ETOOBIG and writes nothing more. */
  std::array<unsigned char, 10> area{};
  shmrpc::writer w(area.data(), area.size());
  w.i64(1).i64(2);
  assert_int_equal(w.err(), SHMRPC_ETOOBIG);
  assert_int_equal(w.size(), 8);
  assert_int_equal(expect_error([&] { w.check(); }).code(), SHMRPC_ETOOBIG);
}

void test_bytes_view_sources(void **) {
  const std::vector<unsigned char> bytes{1, 2, 3};
  const std::array<char, 2> chars{{'h', 'i'}};
  const std::string text = "abc";
  shmrpc::bytes_view from_vector(bytes), from_array(chars), from_text(text),
      from_literal("hello"), from_pointer(bytes.data(), 2);
  assert_int_equal(from_vector.size(), 3);
  assert_true(from_array.str() == "hi");
  assert_true(from_text.data() == text.data());
  assert_int_equal(from_literal.size(), 5);
  assert_int_equal(from_pointer.size(), 2);
  assert_true(shmrpc::bytes_view().empty());
}

/* Every handler shape, and what a throwing handler's caller sees. */
void test_server_and_client(void **) {
  const std::string name = test_service_name("cpp");
  shmrpc::server server(name);
  std::atomic<int> echoed{0};

  /* A lambda of the request, returning the answer. */
  server.method(1, "add", [](shmrpc::bytes_view request) {
    auto [a, b] = shmrpc::unpack<int64_t, int64_t>(request);
    if ((b > 0 && a > INT64_MAX - b) || (b < 0 && a < INT64_MIN - b))
      throw shmrpc::app_error(2, "integer overflow");
    return shmrpc::pack(a + b);
  });
  /* A function object writing in place through the reply. */
  struct upper {
    std::atomic<int> *count;
    void operator()(shmrpc::bytes_view request, shmrpc::reply &reply) const {
      shmrpc::mutable_bytes area = reply.buffer();
      if (request.size() > area.size())
        throw shmrpc::error(SHMRPC_ETOOBIG);
      auto *out = static_cast<char *>(area.data());
      for (std::size_t i = 0; i < request.size(); i++) {
        char c = request.str()[i];
        out[i] = c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c;
      }
      reply.commit(request.size());
      ++*count;
    }
  };
  server.method(2, "upper", upper{&echoed});
  /* void: an empty answer. */
  server.method(3, "nothing", [](shmrpc::bytes_view) {});
  server.method(4, "throws", [](shmrpc::bytes_view) -> std::string {
    throw std::runtime_error("plain C++ exception");
  });
  /* A forwarded call's transport error reaches the caller as itself. */
  server.method(5, "forwarded", [](shmrpc::bytes_view) {
    throw shmrpc::error(SHMRPC_ETIMEDOUT);
  });
  server.method(6, "vector", [](shmrpc::bytes_view) {
    return std::vector<std::uint8_t>{9, 8, 7};
  });
  assert_int_equal(
      expect_error([&] { server.method(1, "again", [](shmrpc::bytes_view) {}); })
          .code(),
      SHMRPC_EEXIST);

  /* Moving the server keeps its handlers. */
  shmrpc::server moved(std::move(server));
  assert_false(static_cast<bool>(server));
  served running(moved);

  shmrpc::client client(name, T_READY_MS);
  assert_int_equal(client.capacity(), SHMRPC_DEFAULT_CAPACITY);
  assert_true(shmrpc::unpack<int64_t>(
                  client.call(1, shmrpc::pack(int64_t{40}, int64_t{2}))) == 42);
  assert_true(client.call(2, "Hello, world") == "HELLO, WORLD");
  assert_int_equal(echoed.load(), 1);
  assert_true(client.call(3).empty());
  assert_true(client.call(6) == std::string("\x09\x08\x07"));

  /* Into the caller's buffer; too small is SHMRPC_ETOOBIG. */
  std::array<char, 4> small{};
  assert_int_equal(client.call(2, "abcd", {small.data(), small.size()}), 4);
  assert_memory_equal(small.data(), "ABCD", 4);
  assert_int_equal(
      expect_error([&] { client.call(2, "abcde", {small.data(), small.size()}); })
          .code(),
      SHMRPC_ETOOBIG);

  /* The handler's app_error arrives with its code and message. */
  try {
    client.call(1, shmrpc::pack(INT64_MAX, int64_t{1}));
    fail_msg("%s", "overflow did not throw");
  } catch (const shmrpc::app_error &e) {
    assert_int_equal(e.code(), SHMRPC_EAPP);
    assert_int_equal(e.app_code(), 2);
    assert_string_equal(e.app_message().c_str(), "integer overflow");
    assert_non_null(std::strstr(e.what(), "integer overflow"));
  }
  shmrpc::error plain = expect_error([&] { client.call(4); });
  assert_int_equal(plain.code(), SHMRPC_EAPP);
  assert_int_equal(plain.app_code(), 1);
  assert_string_equal(plain.app_message().c_str(), "plain C++ exception");
  assert_int_equal(expect_error([&] { client.call(5); }).code(),
                   SHMRPC_ETIMEDOUT);
  /* A request the handler cannot take (unpack throws EPROTO). */
  assert_int_equal(expect_error([&] { client.call(1, "x"); }).app_code(), 1);
  assert_int_equal(expect_error([&] { client.call(99); }).code(),
                   SHMRPC_ENOMETHOD);

  /* The non-throwing forms. */
  std::string answer = "unchanged";
  shmrpc::status st = client.try_call(1, shmrpc::pack(INT64_MIN, int64_t{-1}),
                                      answer);
  assert_false(static_cast<bool>(st));
  assert_int_equal(st.code, SHMRPC_EAPP);
  assert_int_equal(st.app_code, 2);
  assert_string_equal(st.app_message.c_str(), "integer overflow");
  assert_string_equal(st.name(), "SHMRPC_EAPP");
  assert_true(answer == "unchanged");
  st = client.try_call(2, "ok", answer);
  assert_true(st.ok());
  assert_true(answer == "OK");
  st = client.try_call(99, {}, answer);
  assert_int_equal(st.code, SHMRPC_ENOMETHOD);
  assert_true(st.message() == shmrpc_strerror(SHMRPC_ENOMETHOD));

  /* A second server of the name is refused, without throwing too. */
  shmrpc::server second;
  assert_int_equal(shmrpc::server::create(second, name).code, SHMRPC_EEXIST);
  assert_false(static_cast<bool>(second));
}

/* The fallback sees every id nobody registered, built-ins included. */
void test_fallback(void **) {
  const std::string name = test_service_name("cppfallback");
  shmrpc::server server(name);
  server.method(1, "one", [](shmrpc::bytes_view) { return std::string("1"); });
  server.fallback([](shmrpc::bytes_view request, shmrpc::reply &reply) {
    return shmrpc::pack(reply.method(), request.string());
  });
  served running(server);
  shmrpc::client client(name, T_READY_MS);
  assert_true(client.call(1) == "1");
  auto [id, echoed] =
      shmrpc::unpack<std::uint32_t, std::string>(client.call(77, "x"));
  assert_int_equal(id, 77);
  assert_true(echoed == "x");
  auto [ping_id, ping_body] = shmrpc::unpack<std::uint32_t, std::string>(
      client.call(SHMRPC_METHOD_PING, "p"));
  assert_int_equal(ping_id, SHMRPC_METHOD_PING);
  assert_true(ping_body == "p");
}

/* A missing service: ENOSERVER, thrown or returned. */
void test_client_errors(void **) {
  const std::string missing = test_service_name("cppmissing");
  shmrpc::client client;
  assert_int_equal(shmrpc::client::open(client, missing, SHMRPC_NOWAIT).code,
                   SHMRPC_ENOSERVER);
  assert_false(static_cast<bool>(client));
  shmrpc::error e = expect_error([&] { shmrpc::client c(missing, 0); });
  assert_int_equal(e.code(), SHMRPC_ENOSERVER);
  assert_non_null(std::strstr(e.what(), "SHMRPC_ENOSERVER"));
  assert_int_equal(expect_error([&] { shmrpc::client c("bad/name", 0); }).code(),
                   SHMRPC_EINVAL);
  assert_int_equal(expect_error([&] { shmrpc::server s("bad/name"); }).code(),
                   SHMRPC_EINVAL);
}

/* The C test server in another process, called through the C++ client. */
void test_cross_process(void **) {
  const std::string name = test_service_name("cppproc");
  test_proc *helper = test_spawn_server(name.c_str(), "4096");
  {
    shmrpc::client client(name, T_READY_MS);
    unsigned char request[16];
    test_put_u64(request, 40);
    test_put_u64(request + 8, 2);
    std::string sum = client.call(T_ADD, {request, sizeof(request)}, T_EXIT_MS);
    assert_int_equal(sum.size(), 8);
    assert_int_equal(
        test_get_u64(reinterpret_cast<const unsigned char *>(sum.data())), 42);
    try {
      client.call(T_FAIL, {}, T_EXIT_MS);
      fail_msg("%s", "T_FAIL did not throw");
    } catch (const shmrpc::app_error &e) {
      assert_int_equal(e.app_code(), T_FAIL_CODE);
      assert_string_equal(e.app_message().c_str(), T_FAIL_MESSAGE);
    }
    test_stop_server(client.native(), helper);
  }
  test_proc_free(helper);
}

} // namespace

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_pack_round_trip),
      cmocka_unit_test(test_unpack_rejects_malformed),
      cmocka_unit_test(test_bytes_view_sources),
      cmocka_unit_test(test_server_and_client),
      cmocka_unit_test(test_fallback),
      cmocka_unit_test(test_client_errors),
      cmocka_unit_test(test_cross_process),
  };
  test_proc_init(argv[0]);
  int helper = test_helper_main(argc, argv);
  if (helper >= 0)
    return helper;
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}
