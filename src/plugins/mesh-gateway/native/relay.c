/*
 * meshfed mesh gateway: the native connection engine of the `native` data plane (an optional
 * Node-API addon; relay.ts loads it, scripts/build-native.sh builds it).
 *
 * Division of labour: this engine owns the sockets — it accepts, reads the client's first bytes,
 * runs the hello and connect deadlines, connects where it is told to, and moves bytes — on Node's
 * own libuv loop. Every decision stays in TypeScript (proxy.ts): parsing the ClientHello, routing,
 * endpoint choice and failover, refusals, counters, draining. A relayed TLS connection costs two
 * calls into JavaScript (its ClientHello, its close) instead of one per read, write and
 * end-of-stream, which is what dominated the gateway's CPU per connection.
 *
 * Per connection:
 *   PEEK        reading the client; each chunk goes to JavaScript (EV_DATA) and is kept; the hello
 *               deadline runs. JavaScript answers with connect(), pause() (hello complete, routing
 *               continues asynchronously) or destroy(). Once paused, further client bytes and its
 *               end of stream are kept for the upstream, not passed to JavaScript.
 *   CONNECTING  one upstream attempt with its connect deadline; the upstream is read from the
 *               start (one epoll registration for connect and reads). Success: the kept bytes are
 *               written to the upstream first, then RELAY. Failure or deadline: EV_CONNECT_FAILED,
 *               and JavaScript calls connect() again or destroy().
 *   RELAY       per direction one read buffer (16 KiB, 64 KiB once a read fills it) and at most
 *               one write in flight; a write that does not finish at once stops reading the source
 *               until it completes (backpressure); end of stream from one side, once its data is
 *               written, shuts down the other side's write side (half-close); both ended and
 *               flushed, or any error, closes both and reports EV_CLOSED.
 * A client that ends, fails or misses the hello deadline before it is connected: EV_CLIENT_END
 * (errno, 1 when it was the deadline).
 * destroy() never calls back.
 *
 * JavaScript API (typed in relay.ts):
 *   new Relay(onevent, helloTimeoutMs, maxPeekBytes)
 *   onevent(kind, id, a, b, data)   kinds and arguments: see EV_* below
 *   relay.listen(host, port, backlog) -> 0 or a negative errno;  relay.address() -> [host, port, family]
 *   relay.unlisten()
 *   relay.connect(id, host, port, timeoutMs, sourceAddress) -> 0 or a negative errno (no event then)
 *   relay.pause(id)                 a PEEK client's hello is complete (no more EV_DATA, no deadline)
 *   relay.destroy(id)               -> [bytesUp, bytesDown] or undefined
 *   relay.bytes(id)                 -> [bytesUp, bytesDown] or undefined
 *   relay.connected(id)             -> whether the pair is relaying
 *   relay.peer(id)                  -> "address:port" of the client, or undefined
 *   relay.unreported                connections not yet reported to JavaScript (no event yet)
 *   relay.destroyUnreported()       -> how many such connections were closed
 */
#define NAPI_VERSION 8
#include <node_api.h>
#include <uv.h>

#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <string.h>

#define SMALL_BUFFER (16 * 1024)
#define LARGE_BUFFER (64 * 1024)

enum { EV_DATA = 1, EV_CLIENT_END = 2, EV_CONNECT_FAILED = 3, EV_CLOSED = 4, EV_ACCEPT_ERROR = 5 };
enum { PEEK, CONNECTING, RELAY, CLOSING };

typedef struct relay_s relay_t;
typedef struct conn_s conn_t;

typedef struct side_s {
  uv_tcp_t tcp; /* first member: a handle pointer is a side pointer */
  conn_t *conn;
  struct side_s *peer;
  char *buf;
  size_t cap;
  int grow;       /* the last read filled the buffer: the next one gets a large buffer */
  int eof;        /* end of stream read from this side */
  int writing;    /* a write of this side's data to the peer is in flight */
  uint64_t bytes; /* bytes from this side handed to the peer */
  uv_write_t wreq;
  uv_connect_t creq; /* upstream sides: their connect (one per attempt: an abandoned one is
                        cancelled only when its handle's close is processed) */
} side_t;

struct conn_s {
  relay_t *relay;
  uint32_t id;
  int state;
  int reported;  /* JavaScript has heard of it */
  int paused;    /* the hello is complete: later bytes are kept, not passed to JavaScript */
  int deadline;  /* closed by the hello deadline (EV_CLIENT_END's second argument) */
  int handles;   /* handles whose close callback is still due */
  side_t *client;
  side_t *upstream; /* the current attempt or the relayed upstream */
  uv_timer_t timer; /* hello deadline, then connect deadline */
  char *kept;       /* client bytes read before the upstream is connected */
  size_t kept_len, kept_cap;
};

struct relay_s {
  napi_env env;
  napi_ref self; /* weak; strong while listening or relaying (it calls back) */
  napi_ref onevent;
  napi_async_context actx;
  uv_loop_t *loop;
  uv_tcp_t *server; /* while listening */
  uint32_t servers;  /* listener handles not yet closed (a failed listen closes its own) */
  uint64_t hello_timeout;
  size_t max_peek;
  conn_t **slots;
  uint32_t nslots, next_id, nfree;
  uint32_t *free_ids;
  uint32_t conns;      /* connections in a slot */
  uint32_t unreported; /* of which JavaScript has not heard */
  uint32_t live;       /* connections allocated (closing ones included) */
  uint32_t holds;      /* reasons to keep the JavaScript object alive */
  int finalized;
};

/* ---- slots and lifetime ---------------------------------------------------------------------- */

static void hold(relay_t *r) {
  if (r->holds++ == 0 && !r->finalized) napi_reference_ref(r->env, r->self, NULL);
}

static void release(relay_t *r) {
  if (--r->holds == 0 && !r->finalized) napi_reference_unref(r->env, r->self, NULL);
}

static int slot_take(relay_t *r, conn_t *c) {
  uint32_t id;
  if (r->nfree > 0) {
    id = r->free_ids[--r->nfree];
  } else {
    if (r->next_id == r->nslots) {
      uint32_t n = r->nslots ? r->nslots * 2 : 256;
      conn_t **s = realloc(r->slots, n * sizeof *s);
      if (!s) return UV_ENOMEM;
      r->slots = s;
      uint32_t *f = realloc(r->free_ids, n * sizeof *f);
      if (!f) return UV_ENOMEM;
      r->free_ids = f;
      r->nslots = n;
    }
    id = r->next_id++;
  }
  r->slots[id] = c;
  c->id = id;
  r->conns++;
  return 0;
}

static conn_t *slot_get(relay_t *r, int64_t id) {
  if (id < 0 || (uint64_t)id >= r->next_id) return NULL;
  return r->slots[id];
}

static void relay_free(relay_t *r) {
  free(r->slots);
  free(r->free_ids);
  free(r);
}

static void conn_maybe_free(conn_t *c) {
  if (c->state != CLOSING || c->handles > 0) return;
  relay_t *r = c->relay;
  free(c->kept);
  free(c);
  if (--r->live == 0 && r->finalized && r->servers == 0) relay_free(r);
}

static void on_side_close(uv_handle_t *h) {
  side_t *s = (side_t *)h;
  conn_t *c = s->conn;
  free(s->buf);
  free(s);
  c->handles--;
  conn_maybe_free(c);
}

static void on_timer_close(uv_handle_t *h) {
  conn_t *c = h->data;
  c->handles--;
  conn_maybe_free(c);
}

static side_t *side_new(conn_t *c) {
  side_t *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->conn = c;
  if (uv_tcp_init(c->relay->loop, &s->tcp) < 0) {
    free(s);
    return NULL;
  }
  c->handles++;
  return s;
}

static void side_close(side_t *s) {
  if (s && !uv_is_closing((uv_handle_t *)&s->tcp)) uv_close((uv_handle_t *)&s->tcp, on_side_close);
}

/* ---- events to JavaScript --------------------------------------------------------------------- */

static void mark_reported(conn_t *c) {
  if (!c->reported) {
    c->reported = 1;
    c->relay->unreported--;
  }
}

/* One event to JavaScript; `c` is NULL for listener events (id 0). */
static void emit(relay_t *r, int kind, conn_t *c, double a, double b, const char *data, size_t len) {
  if (c) mark_reported(c);
  if (r->finalized || !r->onevent) return;
  napi_env env = r->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value cb, recv, argv[5];
  int ok = napi_get_reference_value(env, r->onevent, &cb) == napi_ok && cb &&
           napi_get_reference_value(env, r->self, &recv) == napi_ok && recv && /* an object: MakeCallback needs one */
           napi_create_int32(env, kind, &argv[0]) == napi_ok && napi_create_uint32(env, c ? c->id : 0, &argv[1]) == napi_ok &&
           napi_create_double(env, a, &argv[2]) == napi_ok && napi_create_double(env, b, &argv[3]) == napi_ok;
  if (ok) {
    if (data) ok = napi_create_buffer_copy(env, len, data, NULL, &argv[4]) == napi_ok;
    else ok = napi_get_undefined(env, &argv[4]) == napi_ok;
  }
  if (ok && napi_make_callback(env, r->actx, recv, cb, 5, argv, NULL) != napi_ok) {
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (pending) {
      napi_value e;
      napi_get_and_clear_last_exception(env, &e);
      napi_fatal_exception(env, e);
    }
  }
  napi_close_handle_scope(env, scope);
}

/* Close everything of a connection once; `kind` != 0: report it (EV_CLOSED or EV_CLIENT_END). */
static void conn_close(conn_t *c, int kind, int err) {
  if (c->state == CLOSING) return;
  relay_t *r = c->relay;
  uint64_t up = c->client ? c->client->bytes : 0, down = c->upstream ? c->upstream->bytes : 0;
  c->state = CLOSING;
  r->slots[c->id] = NULL;
  r->free_ids[r->nfree++] = c->id;
  r->conns--;
  mark_reported(c);
  side_close(c->client);
  side_close(c->upstream);
  if (!uv_is_closing((uv_handle_t *)&c->timer)) uv_close((uv_handle_t *)&c->timer, on_timer_close);
  hold(r); /* the event below may drop the last other hold */
  if (kind == EV_CLOSED) emit(r, EV_CLOSED, c, (double)up, (double)down, NULL, 0);
  else if (kind == EV_CLIENT_END) emit(r, EV_CLIENT_END, c, err, c->deadline, NULL, 0);
  release(r); /* the connection's own hold */
  release(r);
  conn_maybe_free(c);
}

/* ---- relaying --------------------------------------------------------------------------------- */

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *out);

/* Read from `s` (already reading is fine). */
static int start_reading(side_t *s) {
  int err = uv_read_start((uv_stream_t *)&s->tcp, on_alloc, on_read);
  return err == UV_EALREADY ? 0 : err;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *out) {
  (void)suggested;
  side_t *s = (side_t *)h;
  if (s->grow && s->cap < LARGE_BUFFER) {
    char *b = malloc(LARGE_BUFFER);
    if (b) {
      free(s->buf);
      s->buf = b;
      s->cap = LARGE_BUFFER;
    }
  }
  s->grow = 0;
  if (!s->buf) {
    s->buf = malloc(SMALL_BUFFER);
    s->cap = s->buf ? SMALL_BUFFER : 0;
  }
  *out = uv_buf_init(s->buf, (unsigned int)s->cap); /* len 0: libuv reports UV_ENOBUFS */
}

/* `src` ended and its data is all written: close the pair when the other way is done too, else
 * shut down the peer's write side. */
static void ended(side_t *src) {
  side_t *dst = src->peer;
  conn_t *c = src->conn;
  if (dst->eof && !dst->writing) {
    conn_close(c, EV_CLOSED, 0);
    return;
  }
  /* shutdown(2) itself rather than uv_shutdown(): nothing is queued towards `dst` (its only
   * writer is `src`, whose writes are done), and libuv would arm and disarm write interest for it
   * (two epoll_ctl calls per connection) */
  uv_os_fd_t fd;
  int err = uv_fileno((uv_handle_t *)&dst->tcp, &fd);
  if (err == 0 && shutdown(fd, SHUT_WR) < 0) err = uv_translate_sys_error(errno);
  if (err < 0) conn_close(c, EV_CLOSED, err);
}

static void on_write(uv_write_t *req, int status) {
  side_t *src = req->data;
  conn_t *c = src->conn;
  src->writing = 0;
  if (c->state != RELAY) return;
  if (src == c->client && c->kept) {
    free(c->kept);
    c->kept = NULL;
  }
  if (status < 0) {
    conn_close(c, EV_CLOSED, status);
    return;
  }
  if (src->eof) {
    ended(src);
    return;
  }
  int err = start_reading(src);
  if (err < 0) conn_close(c, EV_CLOSED, err);
}

/* Hand `len` bytes read from `src` to its peer: 0, or a negative errno. */
static int forward(side_t *src, char *data, size_t len) {
  side_t *dst = src->peer;
  src->bytes += len;
  uv_buf_t b = uv_buf_init(data, (unsigned int)len);
  int n = uv_try_write((uv_stream_t *)&dst->tcp, &b, 1);
  if (n == (int)len) return 0;
  if (n == UV_EAGAIN) n = 0;
  if (n < 0) return n;
  b = uv_buf_init(data + n, (unsigned int)(len - (size_t)n));
  src->writing = 1;
  src->wreq.data = src;
  uv_read_stop((uv_stream_t *)&src->tcp);
  int err = uv_write(&src->wreq, (uv_stream_t *)&dst->tcp, &b, 1, on_write);
  if (err < 0) src->writing = 0;
  return err;
}

static void peek_read(conn_t *c, ssize_t nread);

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
  (void)buf;
  side_t *s = (side_t *)stream;
  conn_t *c = s->conn;
  if (c->state != RELAY) {
    if (s == c->client && c->state != CLOSING) peek_read(c, nread);
    return;
  }
  if (nread > 0) {
    if ((size_t)nread == s->cap) s->grow = 1;
    int err = forward(s, s->buf, (size_t)nread);
    if (err < 0) conn_close(c, EV_CLOSED, err);
    return;
  }
  if (nread == 0) return;
  if (nread == UV_EOF) {
    uv_read_stop(stream);
    s->eof = 1;
    if (!s->writing) ended(s);
    return;
  }
  conn_close(c, EV_CLOSED, (int)nread);
}

/* ---- before the upstream: hello and connect ------------------------------------------------- */

static void on_deadline(uv_timer_t *t) {
  conn_t *c = t->data;
  if (c->state == PEEK) {
    c->deadline = 1;
    conn_close(c, EV_CLIENT_END, UV_ETIMEDOUT);
  } else if (c->state == CONNECTING) {
    side_close(c->upstream);
    c->upstream = NULL;
    c->state = PEEK;
    c->paused = 1;
    emit(c->relay, EV_CONNECT_FAILED, c, UV_ETIMEDOUT, 0, NULL, 0);
  }
}

/* The client before its upstream is connected (PEEK, CONNECTING). */
static void peek_read(conn_t *c, ssize_t nread) {
  side_t *s = c->client;
  if (nread == 0) return;
  if (nread == UV_EOF && c->paused) {
    /* a complete hello, then end of stream: pass both on once connected */
    uv_read_stop((uv_stream_t *)&s->tcp);
    s->eof = 1;
    return;
  }
  if (nread < 0) {
    conn_close(c, EV_CLIENT_END, (int)nread);
    return;
  }
  size_t n = (size_t)nread;
  if (c->kept_len + n > c->relay->max_peek) {
    if (!c->paused) {
      conn_close(c, EV_CLIENT_END, UV_E2BIG);
      return;
    }
    /* routed: keep what fits, read the rest once connected */
    uv_read_stop((uv_stream_t *)&s->tcp);
    s->grow = 0;
  }
  if (c->kept_len + n > c->kept_cap) {
    size_t cap = c->kept_cap ? c->kept_cap * 2 : 1024;
    while (cap < c->kept_len + n) cap *= 2;
    char *k = realloc(c->kept, cap);
    if (!k) {
      conn_close(c, EV_CLIENT_END, UV_ENOMEM);
      return;
    }
    c->kept = k;
    c->kept_cap = cap;
  }
  memcpy(c->kept + c->kept_len, s->buf, n);
  c->kept_len += n;
  if (!c->paused) emit(c->relay, EV_DATA, c, 0, 0, s->buf, n);
}

static void on_connect(uv_connect_t *req, int status) {
  side_t *up = (side_t *)req->handle;
  conn_t *c = up->conn;
  if (c->state != CONNECTING || c->upstream != up) return; /* abandoned attempt */
  uv_timer_stop(&c->timer);
  if (status < 0) {
    side_close(up);
    c->upstream = NULL;
    c->state = PEEK;
    c->paused = 1;
    emit(c->relay, EV_CONNECT_FAILED, c, status, 0, NULL, 0);
    return;
  }
  c->state = RELAY;
  side_t *cl = c->client;
  cl->peer = up;
  up->peer = cl;
  uv_tcp_nodelay(&up->tcp, 1);
  int err = 0;
  if (c->kept_len > 0) {
    err = forward(cl, c->kept, c->kept_len);
    if (err == 0 && !cl->writing) {
      free(c->kept);
      c->kept = NULL;
    }
  }
  if (err < 0) {
    conn_close(c, EV_CLOSED, err);
    return;
  }
  /* the upstream reads since its connect started; the client kept being read unless it ended or
   * filled the kept buffer */
  if (cl->writing) return;
  if (cl->eof) ended(cl);
  else if ((err = start_reading(cl)) < 0) conn_close(c, EV_CLOSED, err);
}

static void on_connection(uv_stream_t *server, int status) {
  relay_t *r = server->data;
  if (status < 0) {
    /* EMFILE and the like: nothing accepted (libuv keeps listening); JavaScript logs it */
    emit(r, EV_ACCEPT_ERROR, NULL, status, 0, NULL, 0);
    return;
  }
  conn_t *c = calloc(1, sizeof *c);
  if (!c) return;
  c->relay = r;
  c->client = side_new(c);
  if (!c->client) {
    free(c);
    return;
  }
  r->live++;
  uv_timer_init(r->loop, &c->timer);
  c->timer.data = c;
  c->handles++;
  if (uv_accept(server, (uv_stream_t *)&c->client->tcp) < 0 || slot_take(r, c) < 0) {
    c->state = CLOSING;
    side_close(c->client);
    uv_close((uv_handle_t *)&c->timer, on_timer_close);
    return;
  }
  r->unreported++;
  hold(r);
  c->state = PEEK;
  uv_tcp_nodelay(&c->client->tcp, 1);
  uv_timer_start(&c->timer, on_deadline, r->hello_timeout, 0);
  int err = uv_read_start((uv_stream_t *)&c->client->tcp, on_alloc, on_read);
  if (err < 0) conn_close(c, EV_CLIENT_END, err);
}

/* ---- JavaScript API --------------------------------------------------------------------------- */

static relay_t *unwrap(napi_env env, napi_callback_info info, size_t *argc, napi_value *argv) {
  napi_value self;
  void *data = NULL;
  if (napi_get_cb_info(env, info, argc, argv, &self, NULL) != napi_ok) return NULL;
  if (napi_unwrap(env, self, &data) != napi_ok) return NULL;
  return data;
}

static conn_t *conn_arg(napi_env env, relay_t *r, napi_value v) {
  int64_t id = -1;
  if (napi_get_value_int64(env, v, &id) != napi_ok) return NULL;
  conn_t *c = slot_get(r, id);
  return c && c->state != CLOSING ? c : NULL;
}

/* The open connection named by a method's only argument (an id), or NULL. */
static conn_t *conn_of_call(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  relay_t *r = unwrap(env, info, &argc, argv);
  if (!r || argc < 1) return NULL;
  return conn_arg(env, r, argv[0]);
}

/* An address as text and its port. */
static int addr_name(const struct sockaddr_storage *addr, char *name, size_t size) {
  if (addr->ss_family == AF_INET6) {
    uv_ip6_name((const struct sockaddr_in6 *)addr, name, size);
    return ntohs(((const struct sockaddr_in6 *)addr)->sin6_port);
  }
  uv_ip4_name((const struct sockaddr_in *)addr, name, size);
  return ntohs(((const struct sockaddr_in *)addr)->sin_port);
}

static napi_value int_value(napi_env env, int32_t v) {
  napi_value out;
  napi_create_int32(env, v, &out);
  return out;
}

static int string_arg(napi_env env, napi_value v, char *out, size_t size) {
  size_t len = 0;
  if (napi_get_value_string_utf8(env, v, out, size, &len) != napi_ok) return -1;
  return len + 1 < size ? 0 : -1;
}

static int make_addr(const char *host, int port, struct sockaddr_storage *out) {
  if (strchr(host, ':')) return uv_ip6_addr(host, port, (struct sockaddr_in6 *)out);
  return uv_ip4_addr(host, port, (struct sockaddr_in *)out);
}

static void on_server_close(uv_handle_t *h);

/* The environment is going away (process exit, worker end): close every socket now, so that no
 * handle of ours is left open on its loop. */
static void relay_env_cleanup(void *arg) {
  relay_t *r = arg;
  r->finalized = 1; /* no more calls into JavaScript */
  if (r->server) {
    uv_close((uv_handle_t *)r->server, on_server_close);
    r->server = NULL;
  }
  for (uint32_t i = 0; i < r->next_id; i++) {
    conn_t *c = r->slots[i];
    if (c && c->state != CLOSING) conn_close(c, 0, 0);
  }
}

static void relay_finalize(napi_env env, void *data, void *hint) {
  (void)hint;
  relay_t *r = data;
  napi_remove_env_cleanup_hook(env, relay_env_cleanup, r);
  r->finalized = 1;
  napi_delete_reference(env, r->self);
  if (r->onevent) napi_delete_reference(env, r->onevent);
  r->onevent = NULL;
  napi_async_destroy(env, r->actx);
  if (r->live == 0 && r->servers == 0) relay_free(r);
}

static napi_value relay_new(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3], self;
  if (napi_get_cb_info(env, info, &argc, argv, &self, NULL) != napi_ok) return NULL;
  napi_valuetype t = napi_undefined;
  if (argc >= 1) napi_typeof(env, argv[0], &t);
  double hello_ms = 0, max_peek = 0;
  if (t != napi_function || argc < 3 || napi_get_value_double(env, argv[1], &hello_ms) != napi_ok ||
      napi_get_value_double(env, argv[2], &max_peek) != napi_ok || hello_ms < 1 || max_peek < 1) {
    napi_throw_type_error(env, NULL, "Relay(onevent, helloTimeoutMs, maxPeekBytes): a function and two positive numbers");
    return NULL;
  }
  relay_t *r = calloc(1, sizeof *r);
  if (!r) {
    napi_throw_error(env, NULL, "Relay: out of memory");
    return NULL;
  }
  r->env = env;
  r->hello_timeout = (uint64_t)hello_ms;
  r->max_peek = (size_t)max_peek;
  napi_value name;
  if (napi_get_uv_event_loop(env, &r->loop) != napi_ok ||
      napi_create_string_utf8(env, "meshfed.mesh-gateway.relay", NAPI_AUTO_LENGTH, &name) != napi_ok) {
    free(r);
    napi_throw_error(env, NULL, "Relay: no event loop");
    return NULL;
  }
  if (napi_async_init(env, self, name, &r->actx) != napi_ok) {
    free(r);
    return NULL;
  }
  if (napi_create_reference(env, argv[0], 1, &r->onevent) != napi_ok) {
    napi_async_destroy(env, r->actx);
    free(r);
    return NULL;
  }
  if (napi_wrap(env, self, r, relay_finalize, NULL, &r->self) != napi_ok) {
    napi_delete_reference(env, r->onevent);
    napi_async_destroy(env, r->actx);
    free(r);
    return NULL;
  }
  napi_add_env_cleanup_hook(env, relay_env_cleanup, r);
  return self;
}

static void on_server_close(uv_handle_t *h) {
  relay_t *r = h->data;
  free(h);
  if (--r->servers == 0 && r->finalized && r->live == 0) relay_free(r);
}

static napi_value relay_listen(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  relay_t *r = unwrap(env, info, &argc, argv);
  if (!r) return NULL;
  char host[64];
  int32_t port = -1, backlog = 511;
  if (argc < 3 || string_arg(env, argv[0], host, sizeof host) < 0 || napi_get_value_int32(env, argv[1], &port) != napi_ok ||
      napi_get_value_int32(env, argv[2], &backlog) != napi_ok || port < 0 || port > 65535) {
    napi_throw_type_error(env, NULL, "Relay.listen(host, port, backlog): an IP address and two integers");
    return NULL;
  }
  if (r->server) return int_value(env, UV_EALREADY);
  struct sockaddr_storage addr;
  int err = make_addr(host, port, &addr);
  if (err < 0) return int_value(env, err);
  uv_tcp_t *server = malloc(sizeof *server);
  if (!server) return int_value(env, UV_ENOMEM);
  err = uv_tcp_init(r->loop, server);
  if (err < 0) {
    free(server);
    return int_value(env, err);
  }
  server->data = r;
  r->servers++;
  err = uv_tcp_bind(server, (const struct sockaddr *)&addr, 0);
  if (err == 0) err = uv_listen((uv_stream_t *)server, backlog, on_connection);
  if (err < 0) {
    uv_close((uv_handle_t *)server, on_server_close);
    return int_value(env, err);
  }
  r->server = server;
  hold(r);
  return int_value(env, 0);
}

static napi_value relay_address(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  relay_t *r = unwrap(env, info, &argc, NULL);
  if (!r) return NULL;
  napi_value out, v;
  napi_get_undefined(env, &out);
  if (!r->server) return out;
  struct sockaddr_storage addr;
  int len = sizeof addr;
  if (uv_tcp_getsockname(r->server, (struct sockaddr *)&addr, &len) < 0) return out;
  char name[64] = "";
  int v6 = addr.ss_family == AF_INET6, port = addr_name(&addr, name, sizeof name);
  napi_create_array_with_length(env, 3, &out);
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &v);
  napi_set_element(env, out, 0, v);
  napi_create_int32(env, port, &v);
  napi_set_element(env, out, 1, v);
  napi_create_string_utf8(env, v6 ? "IPv6" : "IPv4", NAPI_AUTO_LENGTH, &v);
  napi_set_element(env, out, 2, v);
  return out;
}

static napi_value relay_unlisten(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  relay_t *r = unwrap(env, info, &argc, NULL);
  if (!r) return NULL;
  if (r->server) {
    uv_close((uv_handle_t *)r->server, on_server_close);
    r->server = NULL;
    release(r);
  }
  return NULL;
}

static napi_value relay_connect(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  relay_t *r = unwrap(env, info, &argc, argv);
  if (!r) return NULL;
  char host[64], source[64] = "";
  int32_t port = -1;
  double timeout_ms = 0;
  napi_valuetype st = napi_undefined;
  if (argc >= 5) napi_typeof(env, argv[4], &st);
  if (argc < 5 || string_arg(env, argv[1], host, sizeof host) < 0 || napi_get_value_int32(env, argv[2], &port) != napi_ok ||
      napi_get_value_double(env, argv[3], &timeout_ms) != napi_ok || port < 0 || port > 65535 || timeout_ms < 1 ||
      (st == napi_string && string_arg(env, argv[4], source, sizeof source) < 0)) {
    napi_throw_type_error(env, NULL, "Relay.connect(id, host, port, timeoutMs, sourceAddress): bad arguments");
    return NULL;
  }
  conn_t *c = conn_arg(env, r, argv[0]);
  if (!c) return int_value(env, UV_EBADF);
  if (c->state != PEEK) return int_value(env, UV_EALREADY);
  struct sockaddr_storage addr, src;
  int err = make_addr(host, port, &addr);
  if (err == 0 && source[0]) err = make_addr(source, 0, &src);
  if (err < 0) return int_value(env, err);
  side_t *up = side_new(c);
  if (!up) return int_value(env, UV_ENOMEM);
  if (source[0]) err = uv_tcp_bind(&up->tcp, (const struct sockaddr *)&src, 0);
  if (err == 0) err = uv_tcp_connect(&up->creq, &up->tcp, (const struct sockaddr *)&addr, on_connect);
  /* reading from the start: one epoll registration for the connect and the reads (libuv would
   * otherwise drop write interest and re-add the descriptor: two more epoll_ctl calls) */
  if (err == 0) err = start_reading(up);
  if (err < 0) {
    side_close(up);
    return int_value(env, err);
  }
  /* the client stays readable: a TLS client sends nothing more before the server's hello, and
   * what it does send (or its end of stream) is kept and passed on once connected */
  c->paused = 1;
  c->upstream = up;
  c->state = CONNECTING;
  uv_timer_start(&c->timer, on_deadline, (uint64_t)timeout_ms, 0);
  return int_value(env, 0);
}

static napi_value relay_pause(napi_env env, napi_callback_info info) {
  conn_t *c = conn_of_call(env, info);
  if (c && c->state == PEEK && !c->paused) {
    /* the hello is complete: JavaScript routes it (maybe after a DNS lookup) and connects; more
     * bytes are kept, not passed on, and the hello deadline no longer applies */
    c->paused = 1;
    uv_timer_stop(&c->timer);
  }
  return NULL;
}

static napi_value pair_bytes(napi_env env, conn_t *c) {
  napi_value arr, up, down;
  napi_create_array_with_length(env, 2, &arr);
  napi_create_double(env, c->client ? (double)c->client->bytes : 0, &up);
  napi_create_double(env, c->upstream ? (double)c->upstream->bytes : 0, &down);
  napi_set_element(env, arr, 0, up);
  napi_set_element(env, arr, 1, down);
  return arr;
}

static napi_value relay_destroy(napi_env env, napi_callback_info info) {
  conn_t *c = conn_of_call(env, info);
  if (!c) return NULL;
  napi_value out = pair_bytes(env, c);
  conn_close(c, 0, 0);
  return out;
}

static napi_value relay_bytes(napi_env env, napi_callback_info info) {
  conn_t *c = conn_of_call(env, info);
  return c ? pair_bytes(env, c) : NULL;
}

static napi_value relay_connected(napi_env env, napi_callback_info info) {
  napi_value out;
  conn_t *c = conn_of_call(env, info);
  napi_get_boolean(env, c && c->state == RELAY, &out);
  return out;
}

static napi_value relay_peer(napi_env env, napi_callback_info info) {
  napi_value out;
  conn_t *c = conn_of_call(env, info);
  if (!c) return NULL;
  struct sockaddr_storage addr;
  int len = sizeof addr;
  if (uv_tcp_getpeername(&c->client->tcp, (struct sockaddr *)&addr, &len) < 0) return NULL;
  char name[64] = "", label[80];
  int port = addr_name(&addr, name, sizeof name);
  snprintf(label, sizeof label, "%s:%d", name, port);
  napi_create_string_utf8(env, label, NAPI_AUTO_LENGTH, &out);
  return out;
}

static napi_value relay_unreported(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  relay_t *r = unwrap(env, info, &argc, NULL);
  if (!r) return NULL;
  napi_value v;
  napi_create_uint32(env, r->unreported, &v);
  return v;
}

static napi_value relay_destroy_unreported(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  relay_t *r = unwrap(env, info, &argc, NULL);
  if (!r) return NULL;
  uint32_t n = 0;
  for (uint32_t i = 0; i < r->next_id; i++) {
    conn_t *c = r->slots[i];
    if (c && !c->reported && c->state != CLOSING) {
      conn_close(c, 0, 0);
      n++;
    }
  }
  napi_value v;
  napi_create_uint32(env, n, &v);
  return v;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"listen", NULL, relay_listen, NULL, NULL, NULL, napi_default_method, NULL},
      {"address", NULL, relay_address, NULL, NULL, NULL, napi_default_method, NULL},
      {"unlisten", NULL, relay_unlisten, NULL, NULL, NULL, napi_default_method, NULL},
      {"connect", NULL, relay_connect, NULL, NULL, NULL, napi_default_method, NULL},
      {"pause", NULL, relay_pause, NULL, NULL, NULL, napi_default_method, NULL},
      {"destroy", NULL, relay_destroy, NULL, NULL, NULL, napi_default_method, NULL},
      {"bytes", NULL, relay_bytes, NULL, NULL, NULL, napi_default_method, NULL},
      {"connected", NULL, relay_connected, NULL, NULL, NULL, napi_default_method, NULL},
      {"peer", NULL, relay_peer, NULL, NULL, NULL, napi_default_method, NULL},
      {"destroyUnreported", NULL, relay_destroy_unreported, NULL, NULL, NULL, napi_default_method, NULL},
      {"unreported", NULL, NULL, relay_unreported, NULL, NULL, napi_enumerable, NULL},
  };
  napi_value cls;
  if (napi_define_class(env, "Relay", NAPI_AUTO_LENGTH, relay_new, NULL, sizeof props / sizeof props[0], props, &cls) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "Relay", cls) != napi_ok) return NULL;
  return exports;
}

NAPI_MODULE_INIT() { return init(env, exports); }
