/*
 * shmrpc.hpp: a header-only C++17 interface over the C API of shmrpc.h.
 *
 *   shmrpc::server server("calc");
 *   server.method(1, "add", [](shmrpc::bytes_view request) {
 *     auto [a, b] = shmrpc::unpack<std::int64_t, std::int64_t>(request);
 *     return shmrpc::pack(a + b);
 *   });
 *   server.run();                       // until server.stop()
 *
 *   shmrpc::client client("calc", 1000); // waits up to 1 s for the server
 *   std::string answer = client.call(1, shmrpc::pack(std::int64_t{2},
 *                                                    std::int64_t{3}));
 *   std::int64_t sum = shmrpc::unpack<std::int64_t>(answer);
 *
 * What it adds to the C API, and nothing more:
 * - RAII: shmrpc::server and shmrpc::client own their handle (move-only).
 * - Handlers are any callable (lambda, function object, function pointer).
 * - Bytes are shmrpc::bytes_view: from a std::string_view, a pointer and a
 *   size, or any contiguous container of bytes.
 * - Errors are shmrpc::error exceptions that carry the SHMRPC_E* code and,
 *   for SHMRPC_EAPP, the handler's code and message (shmrpc::app_error).
 *   Every throwing call has a noexcept form that returns shmrpc::status.
 * - pack() and unpack() write and read the typed wire format of
 *   shmrpc_payload.h; shmrpc::writer and shmrpc::reader do it field by field.
 *
 * Thread safety is the C API's: a server's handlers run on the threads that
 * run it, a client handle is used as shmrpc.h allows. Handlers must not let
 * an exception reach the C library, and do not need to: every exception a
 * handler throws becomes an answer (see server::method).
 */
#ifndef SHMRPC_HPP
#define SHMRPC_HPP

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "shmrpc.h"
#include "shmrpc_payload.h"

namespace shmrpc {

/* ---- Bytes ------------------------------------------------------------- */

/* A read-only view of bytes somebody else owns. */
class bytes_view {
public:
  constexpr bytes_view() noexcept = default;
  constexpr bytes_view(const void *data, std::size_t size) noexcept
      : data_(data), size_(size) {}
  constexpr bytes_view(std::string_view text) noexcept
      : data_(text.data()), size_(text.size()) {}
  bytes_view(const char *text) noexcept : bytes_view(std::string_view(text)) {}
  bytes_view(const std::string &text) noexcept
      : data_(text.data()), size_(text.size()) {}
  /* Any contiguous container of byte-sized elements: std::vector<char>,
   * std::vector<unsigned char>, std::array<std::uint8_t, N>, ... */
  template <class C,
            class E = std::remove_pointer_t<decltype(std::declval<const C &>().data())>,
            class = std::enable_if_t<sizeof(E) == 1 && std::is_trivial_v<E> &&
                                     !std::is_convertible_v<const C &, std::string_view>>>
  bytes_view(const C &container) noexcept
      : data_(container.data()), size_(container.size()) {}

  constexpr const void *data() const noexcept { return data_; }
  constexpr std::size_t size() const noexcept { return size_; }
  constexpr bool empty() const noexcept { return size_ == 0; }
  std::string_view str() const noexcept {
    return {static_cast<const char *>(data_), size_};
  }
  std::string string() const { return std::string(str()); }

private:
  const void *data_ = nullptr;
  std::size_t size_ = 0;
};

/* A writable range of bytes somebody else owns. */
class mutable_bytes {
public:
  constexpr mutable_bytes() noexcept = default;
  constexpr mutable_bytes(void *data, std::size_t size) noexcept
      : data_(data), size_(size) {}
  constexpr void *data() const noexcept { return data_; }
  constexpr std::size_t size() const noexcept { return size_; }

private:
  void *data_ = nullptr;
  std::size_t size_ = 0;
};

/* ---- Errors ------------------------------------------------------------ */

/* The outcome of a call that does not throw: 0 or a SHMRPC_E* code, and for
 * SHMRPC_EAPP the handler's code and message. */
struct status {
  int code = 0;              /* 0 or a negative SHMRPC_E* code */
  std::int32_t app_code = 0; /* the handler's code when code == SHMRPC_EAPP */
  std::string app_message;   /* and its message ("" if none) */

  explicit operator bool() const noexcept { return code == 0; }
  bool ok() const noexcept { return code == 0; }
  /* "SHMRPC_ETIMEDOUT", ... ("SHMRPC_UNKNOWN" for a code this library
   * does not know). */
  const char *name() const noexcept { return shmrpc_err_name(code); }
  /* The library's message for the code; for SHMRPC_EAPP the handler's. */
  std::string message() const {
    if (code == SHMRPC_EAPP && !app_message.empty())
      return app_message;
    return shmrpc_strerror(code);
  }
  /* Throws the matching exception; does nothing when ok(). */
  void throw_if_error() const;
};

/* A failed shmrpc call: code() is the SHMRPC_E* code; for SHMRPC_EAPP also
 * the handler's code and message. Copying it (even as the base of an
 * app_error) keeps all three, and never throws. */
class error : public std::runtime_error {
public:
  explicit error(int code)
      : std::runtime_error(describe(code, 0, "")), code_(code) {}
  int code() const noexcept { return code_; }
  const char *name() const noexcept { return shmrpc_err_name(code_); }
  /* The handler's code and message: set only when code() is SHMRPC_EAPP. */
  std::int32_t app_code() const noexcept { return app_code_; }
  const std::string &app_message() const noexcept { return *app_message_; }

protected:
  error(int code, std::int32_t app_code, std::string app_message)
      : std::runtime_error(describe(code, app_code, app_message)),
        code_(code), app_code_(app_code),
        app_message_(
            std::make_shared<const std::string>(std::move(app_message))) {}

private:
  static std::string describe(int code, std::int32_t app_code,
                              const std::string &app_message) {
    std::string text = shmrpc_err_name(code);
    text += ": ";
    if (code == SHMRPC_EAPP) {
      text += "application error " + std::to_string(app_code);
      if (!app_message.empty())
        text += ": " + app_message;
    } else {
      text += shmrpc_strerror(code);
    }
    return text;
  }
  int code_;
  std::int32_t app_code_ = 0;
  /* Shared, so that copying an exception cannot throw. */
  std::shared_ptr<const std::string> app_message_ =
      std::make_shared<const std::string>();
};

/* A handler's failure (SHMRPC_EAPP) with its code and message. A handler of
 * a shmrpc::server may throw one to answer with that error; catch it to
 * tell a handler's failure from the transport's. */
class app_error : public error {
public:
  /* code 0 is sent as 1, as shmrpc_reply_error() does. */
  explicit app_error(std::int32_t app_code, std::string app_message = {})
      : error(SHMRPC_EAPP, app_code, std::move(app_message)) {}
};

inline void status::throw_if_error() const {
  if (code == SHMRPC_EAPP)
    throw app_error(app_code, app_message);
  if (code != 0)
    throw error(code);
}

namespace detail {
inline void check(int rc) {
  if (rc != 0)
    throw error(rc);
}
} // namespace detail

/* ---- Typed payloads (shmrpc_payload.h) -------------------------------- */

/* Appends typed fields to a buffer it does not own. Errors are sticky, as in
 * shmrpc_writer: check err() once at the end, or call check(). */
class writer {
public:
  writer(void *data, std::size_t capacity) noexcept {
    shmrpc_writer_init(&w_, data, capacity);
  }
  explicit writer(mutable_bytes area) noexcept
      : writer(area.data(), area.size()) {}

  writer &u8(std::uint8_t v) noexcept { return did(shmrpc_put_u8(&w_, v)); }
  writer &u16(std::uint16_t v) noexcept { return did(shmrpc_put_u16(&w_, v)); }
  writer &u32(std::uint32_t v) noexcept { return did(shmrpc_put_u32(&w_, v)); }
  writer &u64(std::uint64_t v) noexcept { return did(shmrpc_put_u64(&w_, v)); }
  writer &i32(std::int32_t v) noexcept { return did(shmrpc_put_i32(&w_, v)); }
  writer &i64(std::int64_t v) noexcept { return did(shmrpc_put_i64(&w_, v)); }
  writer &f64(double v) noexcept { return did(shmrpc_put_f64(&w_, v)); }
  writer &bytes(bytes_view v) noexcept {
    return did(shmrpc_put_bytes(&w_, v.data(), v.size()));
  }
  /* A string: a u32 length and its bytes (shmrpc_put_bytes, so it may hold
   * NUL bytes). */
  writer &str(std::string_view v) noexcept {
    return did(shmrpc_put_bytes(&w_, v.data(), v.size()));
  }
  /* Writes value with the field its type names (see pack()). */
  template <class T> writer &put(const T &value) noexcept;

  std::size_t size() const noexcept { return w_.len; }
  int err() const noexcept { return w_.err; }
  /* Throws shmrpc::error if any put failed (SHMRPC_ETOOBIG: no room). */
  void check() const { detail::check(w_.err); }

private:
  writer &did(int) noexcept { return *this; } /* the error is sticky */
  shmrpc_writer w_;
};

/* Takes typed fields from the front of bytes it does not own. Errors are
 * sticky; done() (or check()) throws shmrpc::error(SHMRPC_EPROTO) for a
 * malformed body. A string or bytes field points into the buffer. */
class reader {
public:
  explicit reader(bytes_view data) noexcept {
    shmrpc_reader_init(&r_, data.data(), data.size());
  }
  std::uint8_t u8() noexcept { return get<std::uint8_t>(shmrpc_get_u8); }
  std::uint16_t u16() noexcept { return get<std::uint16_t>(shmrpc_get_u16); }
  std::uint32_t u32() noexcept { return get<std::uint32_t>(shmrpc_get_u32); }
  std::uint64_t u64() noexcept { return get<std::uint64_t>(shmrpc_get_u64); }
  std::int32_t i32() noexcept { return get<std::int32_t>(shmrpc_get_i32); }
  std::int64_t i64() noexcept { return get<std::int64_t>(shmrpc_get_i64); }
  double f64() noexcept { return get<double>(shmrpc_get_f64); }
  bytes_view bytes() noexcept {
    const void *data = nullptr;
    std::size_t len = 0;
    shmrpc_get_bytes(&r_, &data, &len);
    return {data, len};
  }
  std::string_view str() noexcept {
    const char *text = nullptr;
    std::size_t len = 0;
    shmrpc_get_str(&r_, &text, &len);
    return {text, len};
  }
  /* Reads a field of the type T names (see pack()). */
  template <class T> T get() noexcept;

  int err() const noexcept { return r_.err; }
  std::size_t remaining() const noexcept { return r_.len - r_.pos; }
  void check() const { detail::check(r_.err); }
  /* Throws unless every field was read without error and, unless
   * allow_trailing, nothing is left over. */
  void done(bool allow_trailing = false) const {
    detail::check(shmrpc_reader_done(
        &r_, allow_trailing ? SHMRPC_TRAILING_OK : SHMRPC_TRAILING_ERROR));
  }

private:
  template <class T, class F> T get(F *fn) noexcept {
    T value{};
    fn(&r_, &value);
    return value;
  }
  shmrpc_reader r_;
};

namespace detail {
template <class T> struct field; /* the wire field each C++ type maps to */
#define SHMRPC__FIELD(type, name, size_bytes)                                  \
  template <> struct field<type> {                                             \
    static void put(writer &w, type v) noexcept { w.name(v); }                 \
    static type get(reader &r) noexcept { return r.name(); }                   \
    static std::size_t size(type) noexcept { return size_bytes; }              \
  };
SHMRPC__FIELD(std::uint8_t, u8, 1)
SHMRPC__FIELD(std::uint16_t, u16, 2)
SHMRPC__FIELD(std::uint32_t, u32, 4)
SHMRPC__FIELD(std::uint64_t, u64, 8)
SHMRPC__FIELD(std::int32_t, i32, 4)
SHMRPC__FIELD(std::int64_t, i64, 8)
SHMRPC__FIELD(double, f64, 8)
#undef SHMRPC__FIELD
template <> struct field<std::string_view> {
  static void put(writer &w, std::string_view v) noexcept { w.str(v); }
  static std::string_view get(reader &r) noexcept { return r.str(); }
  static std::size_t size(std::string_view v) noexcept { return 4 + v.size(); }
};
template <> struct field<std::string> {
  static void put(writer &w, const std::string &v) noexcept { w.str(v); }
  static std::string get(reader &r) { return std::string(r.str()); }
  static std::size_t size(const std::string &v) noexcept {
    return 4 + v.size();
  }
};
template <> struct field<bytes_view> {
  static void put(writer &w, bytes_view v) noexcept { w.bytes(v); }
  static bytes_view get(reader &r) noexcept { return r.bytes(); }
  static std::size_t size(bytes_view v) noexcept { return 4 + v.size(); }
};
/* String literals and char pointers are strings. */
template <class T>
using field_type =
    std::conditional_t<std::is_convertible_v<const T &, const char *>,
                       std::string_view, std::decay_t<T>>;
} // namespace detail

template <class T> writer &writer::put(const T &value) noexcept {
  detail::field<detail::field_type<T>>::put(*this, value);
  return *this;
}

template <class T> T reader::get() noexcept {
  return detail::field<T>::get(*this);
}

/*
 * Encodes values in the typed wire format of shmrpc_payload.h, each as the
 * field its type names: std::uint8_t .. std::uint64_t, std::int32_t and
 * std::int64_t as integers of their size, double as f64, and
 * std::string, std::string_view, a string literal or bytes_view as a u32
 * length and the bytes. The type decides the wire: pack(2) is an i32,
 * pack(std::int64_t{2}) an i64. Other types do not compile.
 */
template <class... T> std::string pack(const T &...values) {
  std::size_t size =
      (std::size_t{0} + ... +
       detail::field<detail::field_type<T>>::size(values));
  std::string out(size, '\0');
  writer w(out.data(), out.size());
  (w.put(values), ...);
  w.check();
  return out;
}

/*
 * Decodes a body that holds exactly the fields T... (see pack()): one value
 * for one type, else a std::tuple (for structured bindings). Throws
 * shmrpc::error(SHMRPC_EPROTO) for a body that is cut short or too long.
 * std::string_view and bytes_view results point into data.
 */
template <class... T> auto unpack(bytes_view data) {
  static_assert(sizeof...(T) > 0, "unpack needs at least one type");
  reader r(data);
  /* Braced initialisation reads the fields left to right. */
  std::tuple<T...> values{r.get<T>()...};
  r.done();
  if constexpr (sizeof...(T) == 1)
    return std::get<0>(std::move(values));
  else
    return values;
}

/* ---- Server ------------------------------------------------------------ */

/* The answer a handler is building; valid during the call only. */
class reply {
public:
  explicit reply(shmrpc_reply *native) noexcept : r_(native) {}
  /* Copies data as the answer; throws error(SHMRPC_ETOOBIG) if it does not
   * fit the slot. */
  void write(bytes_view data) {
    detail::check(shmrpc_reply_write(r_, data.data(), data.size()));
  }
  /* The answer area itself, for writing in place; then commit(). */
  mutable_bytes buffer() noexcept {
    std::size_t capacity = 0;
    void *area = shmrpc_reply_buffer(r_, &capacity);
    return {area, capacity};
  }
  void commit(std::size_t len) { detail::check(shmrpc_reply_commit(r_, len)); }
  /* The method id the caller called (useful in a fallback). */
  std::uint32_t method() const noexcept { return shmrpc_reply_method(r_); }
  /* Milliseconds the caller still waits (SHMRPC_INFINITE: forever). */
  std::int32_t timeout_ms() noexcept { return shmrpc_reply_timeout(r_); }
  shmrpc_reply *native() const noexcept { return r_; }

private:
  shmrpc_reply *r_;
};

/* Options of a server: the C struct, with the defaults filled in. */
inline shmrpc_server_options server_options() noexcept {
  shmrpc_server_options options;
  shmrpc_server_options_init(&options);
  return options;
}

class server {
public:
  /* Creates and publishes service `name` (see shmrpc_server_create).
   * Throws shmrpc::error. */
  explicit server(const std::string &name,
                  const shmrpc_server_options *options = nullptr) {
    detail::check(shmrpc_server_create(&s_, name.c_str(), options));
  }
  /* The non-throwing form: leaves *out empty unless it returns ok(). */
  static status create(server &out, const std::string &name,
                       const shmrpc_server_options *options = nullptr) noexcept {
    shmrpc_server *native = nullptr;
    status st;
    st.code = shmrpc_server_create(&native, name.c_str(), options);
    if (st.code == 0)
      out = server(native);
    return st;
  }
  server() noexcept = default;
  server(server &&other) noexcept { swap(other); }
  server &operator=(server &&other) noexcept {
    server(std::move(other)).swap(*this);
    return *this;
  }
  server(const server &) = delete;
  server &operator=(const server &) = delete;
  /* Removes every name (shmrpc_server_destroy). Must not run while run()
   * does on another thread: stop() it and join that thread first. */
  ~server() { shmrpc_server_destroy(s_); }

  /*
   * Registers a handler for method id (below SHMRPC_METHOD_RESERVED) under a
   * short name. The handler is any callable taking the request as a
   * shmrpc::bytes_view and, optionally, a shmrpc::reply& second:
   *   R handler(shmrpc::bytes_view request)
   *   R handler(shmrpc::bytes_view request, shmrpc::reply &reply)
   * R is void (an empty answer, or what it wrote through reply) or anything
   * bytes_view accepts (std::string, std::vector<std::uint8_t>, ...), which
   * becomes the answer. What it throws becomes the answer too:
   * shmrpc::app_error its code and message; a shmrpc::error with a code
   * shmrpc_reply_fail() allows (a call it forwarded timed out, say) that
   * transport error; any other exception application error 1 with what().
   * Throws shmrpc::error (SHMRPC_EEXIST for a taken id).
   */
  template <class F>
  server &method(std::uint32_t id, const std::string &name, F &&handler) {
    auto owned = make_entry(std::forward<F>(handler));
    detail::check(shmrpc_server_register(s_, id, name.c_str(), &trampoline,
                                         owned.get()));
    handlers_.push_back(std::move(owned));
    return *this;
  }
  /* Registers a handler, of the same shapes, for every id no handler was
   * registered for (see shmrpc_server_set_fallback); reply.method() says
   * which was called. */
  template <class F> server &fallback(F &&handler) {
    auto owned = make_entry(std::forward<F>(handler));
    detail::check(shmrpc_server_set_fallback(s_, &trampoline, owned.get()));
    handlers_.push_back(std::move(owned));
    return *this;
  }

  /* Serves until stop(). Throws shmrpc::error on failure. */
  void run() { detail::check(shmrpc_server_run(s_)); }
  /* Serves at most one call, waiting up to timeout_ms: true if one was
   * served, false if none came or the server was stopped. */
  bool run_once(std::int32_t timeout_ms) {
    int rc = shmrpc_server_run_once(s_, timeout_ms);
    if (rc == SHMRPC_ETIMEDOUT || rc == SHMRPC_ESHUTDOWN)
      return false;
    detail::check(rc);
    return true;
  }
  /* Safe from any thread and from a signal handler. */
  void stop() noexcept { shmrpc_server_stop(s_); }
  shmrpc_stats stats() const {
    shmrpc_stats out;
    detail::check(shmrpc_server_stats(s_, &out));
    return out;
  }
  shmrpc_server *native() const noexcept { return s_; }
  explicit operator bool() const noexcept { return s_ != nullptr; }
  void swap(server &other) noexcept {
    std::swap(s_, other.s_);
    handlers_.swap(other.handlers_);
  }

private:
  explicit server(shmrpc_server *native) noexcept : s_(native) {}

  /* A registered callable. Each lives on the heap, so the pointer the C
   * library keeps as user_data survives moving the server. */
  struct entry_base {
    virtual ~entry_base() = default;
    virtual void handle(bytes_view request, reply &out) = 0;
  };
  template <class F> struct entry final : entry_base {
    explicit entry(F fn) : fn_(std::move(fn)) {}
    void handle(bytes_view request, reply &out) override {
      if constexpr (std::is_invocable_v<F &, bytes_view, reply &>)
        answer(out, [&] { return fn_(request, out); });
      else
        answer(out, [&] { return fn_(request); });
    }
    template <class G> static void answer(reply &out, G &&call) {
      using R = decltype(call());
      if constexpr (std::is_void_v<R>)
        call();
      else
        out.write(bytes_view(call()));
    }
    F fn_;
  };
  template <class F> static std::unique_ptr<entry_base> make_entry(F &&fn) {
    using D = std::decay_t<F>;
    static_assert(std::is_invocable_v<D &, bytes_view, reply &> ||
                      std::is_invocable_v<D &, bytes_view>,
                  "a handler takes (shmrpc::bytes_view) or "
                  "(shmrpc::bytes_view, shmrpc::reply&)");
    return std::make_unique<entry<D>>(std::forward<F>(fn));
  }

  /* The C handler: no exception may cross into the library. */
  static int trampoline(void *user_data, const void *request,
                        std::size_t request_len, shmrpc_reply *native) {
    reply out(native);
    try {
      static_cast<entry_base *>(user_data)->handle({request, request_len},
                                                   out);
      return 0;
    } catch (const error &e) {
      if (e.code() == SHMRPC_EAPP)
        return shmrpc_reply_error(native, e.app_code(),
                                  e.app_message().c_str());
      if (e.code() != SHMRPC_EINVAL &&
          shmrpc_reply_fail(native, e.code()) == e.code())
        return e.code();
      return shmrpc_reply_error(native, 1, e.what());
    } catch (const std::exception &e) {
      return shmrpc_reply_error(native, 1, e.what());
    } catch (...) {
      return shmrpc_reply_error(native, 1, "unknown C++ exception");
    }
  }

  shmrpc_server *s_ = nullptr;
  std::vector<std::unique_ptr<entry_base>> handlers_;
};

/* ---- Client ------------------------------------------------------------ */

/* Options of a client: the C struct, with the defaults filled in. */
inline shmrpc_client_options client_options() noexcept {
  shmrpc_client_options options;
  shmrpc_client_options_init(&options);
  return options;
}

/* call()'s timeout argument meaning "the client's default timeout". */
inline constexpr std::int32_t default_timeout = INT32_MIN;

class client {
public:
  /* Opens service `name`, waiting up to timeout_ms for its server (see
   * shmrpc_client_open); timeout_ms is also the default timeout of call().
   * Throws shmrpc::error. */
  explicit client(const std::string &name, std::int32_t timeout_ms = 1000,
                  const shmrpc_client_options *options = nullptr)
      : timeout_ms_(timeout_ms) {
    detail::check(shmrpc_client_open(&c_, name.c_str(), options, timeout_ms));
  }
  /* The non-throwing form: leaves *out empty unless it returns ok(). */
  static status open(client &out, const std::string &name,
                     std::int32_t timeout_ms = 1000,
                     const shmrpc_client_options *options = nullptr) noexcept {
    shmrpc_client *native = nullptr;
    status st;
    st.code = shmrpc_client_open(&native, name.c_str(), options, timeout_ms);
    if (st.code == 0)
      out = client(native, timeout_ms);
    return st;
  }
  client() noexcept = default;
  client(client &&other) noexcept { swap(other); }
  client &operator=(client &&other) noexcept {
    client(std::move(other)).swap(*this);
    return *this;
  }
  client(const client &) = delete;
  client &operator=(const client &) = delete;
  ~client() { shmrpc_client_close(c_); }

  /* Calls method and returns the answer. Throws shmrpc::app_error for a
   * handler's failure, shmrpc::error for any other. */
  std::string call(std::uint32_t method, bytes_view request = {},
                   std::int32_t timeout_ms = default_timeout) {
    std::string answer;
    try_call(method, request, answer, timeout_ms).throw_if_error();
    return answer;
  }
  /* Calls method with the answer copied into `response`; returns its
   * length. Throws error(SHMRPC_ETOOBIG) if it does not fit. */
  std::size_t call(std::uint32_t method, bytes_view request,
                   mutable_bytes response,
                   std::int32_t timeout_ms = default_timeout) {
    std::size_t len = 0;
    try_call(method, request, response, len, timeout_ms).throw_if_error();
    return len;
  }

  /* The non-throwing forms of call(). */
  status try_call(std::uint32_t method, bytes_view request,
                  std::string &answer,
                  std::int32_t timeout_ms = default_timeout) noexcept {
    /* An answer fits the slot: read it into a per-thread buffer of the
     * slot's capacity (allocated once, not per call), then copy it out. */
    static thread_local std::vector<unsigned char> scratch;
    std::size_t len = 0;
    status st;
    try {
      std::size_t capacity = shmrpc_client_capacity(c_);
      if (scratch.size() < capacity)
        scratch.resize(capacity);
      st = try_call(method, request, {scratch.data(), scratch.size()}, len,
                    timeout_ms);
      if (st.ok())
        answer.assign(reinterpret_cast<const char *>(scratch.data()), len);
    } catch (const std::bad_alloc &) {
      st = status{};
      st.code = SHMRPC_ENOMEM;
    }
    return st;
  }
  status try_call(std::uint32_t method, bytes_view request,
                  mutable_bytes response, std::size_t &response_len,
                  std::int32_t timeout_ms = default_timeout) noexcept {
    status st;
    if (timeout_ms == default_timeout)
      timeout_ms = timeout_ms_;
    response_len = 0;
    st.code = shmrpc_call(c_, method, request.data(), request.size(),
                          response.data(), response.size(), &response_len,
                          timeout_ms);
    if (st.code == SHMRPC_EAPP) {
      const char *message = nullptr;
      st.app_code = shmrpc_client_app_error(c_, &message);
      try {
        st.app_message = message != nullptr ? message : "";
      } catch (...) { /* keep the code without its message */
      }
    }
    return st;
  }

  /* The slot capacity of the connected service (0 if disconnected). */
  std::size_t capacity() const noexcept { return shmrpc_client_capacity(c_); }
  std::int32_t timeout_ms() const noexcept { return timeout_ms_; }
  void set_timeout_ms(std::int32_t timeout_ms) noexcept {
    timeout_ms_ = timeout_ms;
  }
  shmrpc_client *native() const noexcept { return c_; }
  explicit operator bool() const noexcept { return c_ != nullptr; }
  void swap(client &other) noexcept {
    std::swap(c_, other.c_);
    std::swap(timeout_ms_, other.timeout_ms_);
  }

private:
  client(shmrpc_client *native, std::int32_t timeout_ms) noexcept
      : c_(native), timeout_ms_(timeout_ms) {}
  shmrpc_client *c_ = nullptr;
  std::int32_t timeout_ms_ = 1000;
};

/* The linked library's version, e.g. "0.1.0". */
inline std::string_view version() noexcept { return shmrpc_version_string(); }

} // namespace shmrpc

#endif /* SHMRPC_HPP */
