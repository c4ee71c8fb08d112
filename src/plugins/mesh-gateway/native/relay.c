/*
 * meshfed mesh gateway: the native connection engine of the `native` data plane (an optional
 * Node-API addon; relay.ts loads it, scripts/build-native.sh builds it). Linux only (epoll).
 *
 * Division of labour. The engine runs its own thread with its own epoll loop (each connection's
 * sockets registered once, edge-triggered, for reading and writing, and never re-armed; the
 * listener level-triggered, one accept per event) and owns the sockets:
 * it accepts, reads each client's first bytes, runs the hello and connect deadlines, connects and
 * moves bytes. TypeScript (proxy.ts) stays the authority for everything else. The engine parses
 * the ClientHello itself (fastpath.h) and, when the routes TypeScript pushed (setRoutes) send the
 * server name to a cluster of IP endpoints, picks the endpoint (round robin or random), fails over
 * and relays without JavaScript hearing of the connection at all — its counters are read with
 * engineStats(). Everything else — no or unusual server name, a route that needs DNS, an
 * unsupported chain, a malformed or non-TLS hello — is handed to JavaScript with the bytes read
 * so far (EV_DATA), and from then on the connection is driven by JavaScript exactly as before:
 * connect(), pause(), destroy(). So are connections the engine cannot finish itself: every
 * endpoint failed (EV_FAST_FAILED) or the client went away before its upstream was connected
 * (EV_CLIENT_END).
 *
 * Per connection:
 *   PEEK        reading the client into `kept` (the hello deadline runs). Before the hand-over each
 *               read is parsed; after it each chunk goes to JavaScript (EV_DATA) until it calls
 *               pause() (hello complete; later bytes and the end of stream are kept) or connect() —
 *               unless the engine's parser already found the hello complete (any verdict but
 *               incomplete): then later bytes are kept at once, as JavaScript needs no more to
 *               decide. An end of stream after the hand-over is kept and reported (EV_CLIENT_EOF).
 *   CONNECTING  one upstream attempt with its connect deadline. Success: the kept bytes are written
 *               first, then RELAY. Failure or deadline: the next endpoint (fast path) or
 *               EV_CONNECT_FAILED (JavaScript calls connect() again or destroy()).
 *   RELAY       per direction one buffer (16 KiB, 64 KiB once a read fills it); a write that does
 *               not finish stops reading the source until the destination is writable again
 *               (backpressure); end of stream from one side, once its data is written, shuts down
 *               the other side's write side (half-close); both ended and flushed, or any error,
 *               closes both (EV_CLOSED when JavaScript knows the connection).
 *
 * Threads. Every piece of engine state is guarded by one mutex: the engine thread holds it while
 * it handles a batch of epoll events and its timers, JavaScript's calls hold it while they run.
 * Events for JavaScript are queued and delivered on Node's loop through a uv_async_t (one wake-up
 * per batch). Connection ids carry a generation (slot | generation << 24) so that an id JavaScript
 * holds never names a later connection; epoll registrations carry the id (and, for upstreams, the
 * attempt), so a stale event for a closed descriptor is recognised and dropped.
 *
 * JavaScript API (typed in relay.ts):
 *   new Relay(onevent, helloTimeoutMs, maxPeekBytes, maxHelloBytes, random, sourceAddress)
 *   onevent(kind, id, a, b, data)   kinds and arguments: see EV_* below
 *   relay.listen(host, port, backlog) -> 0 or a negative errno;  relay.address() -> [host, port, family]
 *   relay.unlisten()
 *   relay.setRoutes(buffer)         the routes the engine may take by itself (fastpath.h); throws on a bad table
 *   relay.connect(id, host, port, timeoutMs, sourceAddress) -> 0, a negative errno (no event then),
 *                                   or UV_ECANCELED when the connection is gone (its end event is queued)
 *   relay.pause(id)                 a PEEK client's hello is complete (no more EV_DATA, no deadline)
 *   relay.destroy(id)               -> [bytesUp, bytesDown] or undefined; no event for it follows
 *   relay.bytes(id)                 -> [bytesUp, bytesDown] or undefined
 *   relay.connected(id)             -> whether the pair is relaying
 *   relay.peer(id)                  -> "address:port" of the client, or undefined
 *   relay.unreported                open connections JavaScript has not heard of (peeking or fast)
 *   relay.destroyUnreported()       -> how many such connections that were still peeking were closed
 *                                   (fast ones past their hello are closed too and counted as done)
 *   relay.engineStats()             -> [open, done, spliced, bytesUp, bytesDown, then per cluster slot:
 *                                   connections, active, connectFailures, bytesUp, bytesDown] for the
 *                                   connections JavaScript never heard of
 *   parseHello(buf, maxHello), routeLookup(table, sni)   test exports of fastpath.h
 */
#define NAPI_VERSION 8
#include <node_api.h>
#include <uv.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "fastpath.h"

#define SMALL_BUFFER (16 * 1024)
#define LARGE_BUFFER (64 * 1024)
#define SLOT_BITS 24
#define SLOT_MASK ((1u << SLOT_BITS) - 1)
#define MAX_SLOTS (1u << SLOT_BITS)
#define TAG_LISTENER 0
#define TAG_WAKE 1
#define READABLE (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)

/* Events for JavaScript: onevent(kind, id, a, b, data). */
enum {
  EV_DATA = 1,           /* bytes of a handed-over client (the first one: everything read so far) */
  EV_CLIENT_END = 2,     /* the client ended (a = UV_EOF), failed (a = -errno) or missed the hello deadline (b = 1)
                            before it was connected; closed */
  EV_CONNECT_FAILED = 3, /* an attempt JavaScript started failed (a = -errno, -ETIMEDOUT for the deadline) */
  EV_CLOSED = 4,         /* a relayed pair JavaScript knows closed (a = bytes up, b = bytes down) */
  EV_ACCEPT_ERROR = 5,   /* accept failed (a = -errno; id 0); retried when a connection closes */
  EV_FAST_FAILED = 6,    /* an engine-routed client whose endpoints all failed (a = last -errno, b = stats slot,
                            data = its bytes); still open: JavaScript refuses it */
  EV_IDLE = 7,           /* not listening, and no connection (or none of the engine's own) is left (id 0) */
  EV_CLIENT_EOF = 8      /* a handed-over client, not connected, ended its stream (kept for its upstream) */
};
enum { PEEK, CONNECTING, RELAY };

typedef struct relay_s relay_t;
typedef struct conn_s conn_t;

typedef struct side_s {
  int fd;
  char *buf;           /* data read from this side, [off, len) not yet written to the peer */
  size_t cap, off, len;
  int grow;            /* the last read filled the buffer: the next one gets a large buffer */
  int eof;             /* end of stream read */
  int shut;            /* eof, flushed, and the peer's write side shut down */
  int unread;          /* reading stopped before the socket was drained (its edge is spent) */
  uint64_t bytes;      /* bytes read from this side (handed to the peer) */
} side_t;

typedef struct table_ref_s {
  fp_table *t;
  uint32_t refs;
} table_ref_t;

struct conn_s {
  uint64_t id;
  int state;
  int reported;  /* JavaScript has heard of it (or destroyed it) */
  int handed;    /* handed to JavaScript: its reads are EV_DATA */
  int paused;    /* the hello is complete: later bytes are kept, not passed to JavaScript */
  int judged;    /* handed over with a complete verdict: JavaScript needs no more bytes to decide */
  int fast;      /* routed by the engine */
  int spliced;   /* counted as spliced (fast) */
  uint32_t slot;   /* fast: the cluster's stats slot */
  side_t client, up;
  uint32_t attempt; /* upstream attempt number (the low bits tag its epoll registration) */
  /* fast path */
  table_ref_t *table;
  const fp_cluster *cluster;
  uint32_t start, tried;
  int last_err;
  /* deadline: hello, then connect */
  int64_t deadline; /* ms, monotonic; 0: none */
  uint32_t heap_at; /* index in the timer heap + 1; 0: not in it */
  char *kept;       /* client bytes read before the upstream is connected */
  size_t kept_len, kept_cap;
  struct sockaddr_storage peer;
  socklen_t peer_len;
};

typedef struct event_s {
  int kind;
  uint64_t id;
  double a, b;
  char *data;
  size_t len;
} event_t;

typedef struct slot_stats_s {
  double connections, active, connect_failures, bytes_up, bytes_down;
  uint32_t rr; /* round-robin position */
} slot_stats_t;

struct relay_s {
  napi_env env;
  napi_ref self; /* weak; strong while listening or holding connections (it calls back) */
  napi_ref onevent;
  napi_async_context actx;
  uv_loop_t *loop;
  uv_async_t *async;
  int held;
  int finalized;
  int refs; /* the JavaScript object and the async handle: freed when both are gone */
  /* options */
  int64_t hello_timeout;
  size_t max_peek, max_hello;
  int random;
  struct sockaddr_storage source;
  socklen_t source_len;
  /* engine */
  pthread_mutex_t mu;
  pthread_t thread;
  int running, stop;
  int quiet; /* stopping: no more events */
  int ep, wake;
  int lfd; /* listener, -1 when not listening */
  int accept_blocked; /* accepting failed (EMFILE…): the listener is out of the epoll set until a connection closes */
  int in_batch;       /* the engine thread is handling events: it recomputes its wait itself */
  int64_t wait_until;
  conn_t **slots;
  uint32_t *gens;
  uint32_t nslots, next_slot, nfree;
  uint32_t *free_slots;
  uint32_t live;  /* connections open */
  uint32_t owned; /* of which JavaScript has not heard */
  conn_t **heap;
  uint32_t nheap, heap_cap;
  table_ref_t *table;
  slot_stats_t *stats;
  uint32_t nstats;
  double done, spliced, bytes_up, bytes_down; /* closed fast connections */
  uint32_t rng;
  /* events for JavaScript */
  event_t *q;
  uint32_t nq, q_cap;
  event_t *delivering; /* the batch on_async is delivering (main thread only) */
  uint32_t ndelivering;
};

/* ---- small helpers ------------------------------------------------------------------------- */

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t conn_tag(const conn_t *c, int upstream) {
  return (c->id << 8) | ((uint64_t)(upstream ? (c->attempt & 0x7f) : 0) << 1) | (upstream ? 1 : 0);
}

static void wake_engine(relay_t *r) {
  uint64_t one = 1;
  if (r->wake >= 0) (void)!write(r->wake, &one, sizeof one);
}

/* The largest stats slot a table names (0 for none). */
static uint32_t fp_table_max_slot(const fp_table *t) {
  uint32_t m = 0;
  for (uint32_t i = 0; i < t->nclusters; i++)
    if (t->clusters[i].slot > m) m = t->clusters[i].slot;
  return m;
}

static void table_unref(table_ref_t *t) {
  if (t && --t->refs == 0) {
    fp_table_free(t->t);
    free(t);
  }
}

/* ---- timers: a binary heap of connections by deadline ----------------------------------------- */

static void heap_swap(relay_t *r, uint32_t i, uint32_t j) {
  conn_t *a = r->heap[i], *b = r->heap[j];
  r->heap[i] = b;
  r->heap[j] = a;
  b->heap_at = i + 1;
  a->heap_at = j + 1;
}

static void heap_up(relay_t *r, uint32_t i) {
  while (i > 0) {
    uint32_t p = (i - 1) / 2;
    if (r->heap[p]->deadline <= r->heap[i]->deadline) break;
    heap_swap(r, i, p);
    i = p;
  }
}

static void heap_down(relay_t *r, uint32_t i) {
  for (;;) {
    uint32_t l = 2 * i + 1, m = i;
    if (l < r->nheap && r->heap[l]->deadline < r->heap[m]->deadline) m = l;
    if (l + 1 < r->nheap && r->heap[l + 1]->deadline < r->heap[m]->deadline) m = l + 1;
    if (m == i) return;
    heap_swap(r, i, m);
    i = m;
  }
}

static void timer_stop(relay_t *r, conn_t *c) {
  if (!c->heap_at) return;
  uint32_t i = c->heap_at - 1;
  c->heap_at = 0;
  c->deadline = 0;
  r->nheap--;
  if (i == r->nheap) return;
  r->heap[i] = r->heap[r->nheap];
  r->heap[i]->heap_at = i + 1;
  heap_down(r, i);
  heap_up(r, i);
}

/* Arm (or re-arm) a connection's deadline `ms` from now: 0, or -ENOMEM. */
static int timer_start(relay_t *r, conn_t *c, int64_t ms) {
  timer_stop(r, c);
  if (r->nheap == r->heap_cap) {
    uint32_t n = r->heap_cap ? r->heap_cap * 2 : 256;
    conn_t **h = realloc(r->heap, n * sizeof *h);
    if (!h) return -ENOMEM;
    r->heap = h;
    r->heap_cap = n;
  }
  c->deadline = now_ms() + ms;
  r->heap[r->nheap] = c;
  c->heap_at = ++r->nheap;
  heap_up(r, r->nheap - 1);
  if (!r->in_batch && c->deadline < r->wait_until) wake_engine(r); /* the engine sleeps longer than this */
  return 0;
}

/* ---- slots ---------------------------------------------------------------------------------- */

static int slot_take(relay_t *r, conn_t *c) {
  uint32_t s;
  if (r->nfree > 0) {
    s = r->free_slots[--r->nfree];
  } else {
    if (r->next_slot == r->nslots) {
      if (r->nslots == MAX_SLOTS) return -EMFILE;
      uint32_t n = r->nslots ? r->nslots * 2 : 256;
      conn_t **sl = realloc(r->slots, n * sizeof *sl);
      if (!sl) return -ENOMEM;
      r->slots = sl;
      uint32_t *g = realloc(r->gens, n * sizeof *g);
      if (!g) return -ENOMEM;
      r->gens = g;
      uint32_t *f = realloc(r->free_slots, n * sizeof *f);
      if (!f) return -ENOMEM;
      r->free_slots = f;
      r->nslots = n;
    }
    s = r->next_slot++;
    r->gens[s] = 0;
  }
  /* generations stay below 2^29 so that ids are exact doubles (< 2^53) */
  r->gens[s] = (r->gens[s] + 1) & ((1u << 29) - 1);
  if (r->gens[s] == 0) r->gens[s] = 1;
  r->slots[s] = c;
  c->id = ((uint64_t)r->gens[s] << SLOT_BITS) | s;
  return 0;
}

static conn_t *conn_get(relay_t *r, uint64_t id) {
  uint32_t s = (uint32_t)(id & SLOT_MASK);
  if (s >= r->next_slot) return NULL;
  conn_t *c = r->slots[s];
  return c && c->id == id ? c : NULL;
}

/* ---- events to JavaScript --------------------------------------------------------------------- */

/* Queue an event (engine thread, lock held); `data` is copied. */
static void push_event(relay_t *r, int kind, conn_t *c, double a, double b, const char *data, size_t len) {
  if (r->quiet) return;
  if (c && !c->reported) {
    c->reported = 1; /* counted as JavaScript's from now on, even if the event is lost to ENOMEM */
    r->owned--;
  }
  if (r->nq == r->q_cap) {
    uint32_t n = r->q_cap ? r->q_cap * 2 : 64;
    event_t *q = realloc(r->q, n * sizeof *q);
    if (!q) return;
    r->q = q;
    r->q_cap = n;
  }
  event_t *e = &r->q[r->nq];
  e->kind = kind;
  e->id = c ? c->id : 0;
  e->a = a;
  e->b = b;
  e->data = NULL;
  e->len = 0;
  if (data && len > 0) {
    e->data = malloc(len);
    if (!e->data) return;
    memcpy(e->data, data, len);
    e->len = len;
  }
  r->nq++;
  uv_async_send(r->async);
}

/* ---- closing -------------------------------------------------------------------------------- */

static void side_free(side_t *s) {
  if (s->fd >= 0) close(s->fd);
  s->fd = -1;
  free(s->buf);
  s->buf = NULL;
}


/* Close everything of a connection now; `kind` (EV_CLOSED or EV_CLIENT_END) is reported when
 * JavaScript knows it, or for EV_CLIENT_END always (the connection is then reported by it). */
static void conn_close(relay_t *r, conn_t *c, int kind, int err, int deadline) {
  uint32_t s = (uint32_t)(c->id & SLOT_MASK);
  r->slots[s] = NULL;
  r->free_slots[r->nfree++] = s;
  timer_stop(r, c);
  if (c->spliced) {
    slot_stats_t *st = &r->stats[c->slot];
    st->active--;
    st->bytes_up += (double)c->client.bytes;
    st->bytes_down += (double)c->up.bytes;
  }
  int was_owned = !c->reported;
  if (kind == EV_CLIENT_END) {
    push_event(r, EV_CLIENT_END, c, err, deadline, NULL, 0);
  } else if (c->reported) {
    if (kind == EV_CLOSED) push_event(r, EV_CLOSED, c, (double)c->client.bytes, (double)c->up.bytes, NULL, 0);
  } else {
    /* a fast connection JavaScript never heard of */
    r->owned--;
    r->done++;
    r->bytes_up += (double)c->client.bytes;
    r->bytes_down += (double)c->up.bytes;
  }
  side_free(&c->client);
  side_free(&c->up);
  table_unref(c->table);
  free(c->kept);
  free(c);
  r->live--;
  if (r->lfd < 0 && (r->live == 0 || (was_owned && r->owned == 0))) push_event(r, EV_IDLE, NULL, 0, 0, NULL, 0);
  if (r->accept_blocked && r->lfd >= 0) {
    /* a descriptor is free again: watch the listener again (epoll reports what is pending) */
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = TAG_LISTENER};
    if (epoll_ctl(r->ep, EPOLL_CTL_ADD, r->lfd, &ev) == 0) r->accept_blocked = 0;
  }
}

/* ---- relaying ------------------------------------------------------------------------------- */

/* Move what `src` has read (and reads) to `dst`: 1 when `src` has ended and its data is written
 * (the write side of `dst` then shut down), 0 when waiting for the socket(s), or a negative errno.
 * `more`: 0 only flush (and read on if an earlier call stopped before draining `src`), 1 read until
 * a short read (edge-triggered: new data brings a new edge), 2 read until EAGAIN or end (the socket
 * reported an end or error). */
static int pump(side_t *src, side_t *dst, int more) {
  if (src->unread && more == 0) more = 2;
  src->unread = 0;
  for (;;) {
    while (src->off < src->len) {
      ssize_t n = send(dst->fd, src->buf + src->off, src->len - src->off, MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN) {
          src->unread = more != 0; /* resumed when `dst` is writable */
          return 0;
        }
        return -errno;
      }
      src->off += (size_t)n;
    }
    src->off = src->len = 0;
    if (src->eof || !more) break;
    size_t want = src->grow ? LARGE_BUFFER : SMALL_BUFFER;
    if (src->cap < want) {
      char *b = malloc(want);
      if (b) {
        free(src->buf);
        src->buf = b;
        src->cap = want;
      } else if (!src->buf) {
        return -ENOMEM;
      }
    }
    src->grow = 0;
    ssize_t n = read(src->fd, src->buf, src->cap);
    if (n > 0) {
      src->len = (size_t)n;
      src->bytes += (uint64_t)n;
      if ((size_t)n == src->cap) src->grow = 1;
      else if (more == 1) more = 0; /* drained: a new edge comes with new data */
      continue;
    }
    if (n == 0) {
      src->eof = 1;
      break;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN) return 0;
    return -errno;
  }
  if (!src->eof) return 0;
  if (!src->shut) {
    src->shut = 1;
    if (shutdown(dst->fd, SHUT_WR) < 0 && errno != ENOTCONN) return -errno;
  }
  return 1;
}

/* Run both directions after an event (`in_client`/`in_up`: that side is readable, 2 when it also
 * reported an end or error; `out_client`/`out_up`: that side is writable). */
static void relay_run(relay_t *r, conn_t *c, int in_client, int out_client, int in_up, int out_up) {
  int a = c->client.shut, b = c->up.shut;
  if (!a && (in_client || (out_up && (c->client.off < c->client.len || c->client.unread)))) a = pump(&c->client, &c->up, in_client);
  if (a < 0) {
    conn_close(r, c, EV_CLOSED, a, 0);
    return;
  }
  if (!b && (in_up || (out_client && (c->up.off < c->up.len || c->up.unread)))) b = pump(&c->up, &c->client, in_up);
  if (b < 0) {
    conn_close(r, c, EV_CLOSED, b, 0);
    return;
  }
  if (c->client.shut && c->up.shut) conn_close(r, c, EV_CLOSED, 0, 0);
}

/* ---- connecting ------------------------------------------------------------------------------ */

/* Start an attempt to `addr`: 0 (the outcome comes later), or a negative errno. */
static int attempt_start(relay_t *r, conn_t *c, const struct sockaddr *addr, socklen_t alen, int64_t timeout_ms,
                         const struct sockaddr *src, socklen_t slen) {
  int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (src && slen > 0 && bind(fd, src, slen) < 0) {
    int err = -errno;
    close(fd);
    return err;
  }
  if (connect(fd, addr, alen) < 0 && errno != EINPROGRESS) {
    int err = -errno;
    close(fd);
    return err;
  }
  c->attempt++;
  c->up.fd = fd;
  struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.u64 = conn_tag(c, 1)};
  if (epoll_ctl(r->ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
    int err = -errno;
    close(fd);
    c->up.fd = -1;
    return err;
  }
  c->state = CONNECTING;
  c->paused = 1;
  int err = timer_start(r, c, timeout_ms);
  if (err < 0) {
    close(fd);
    c->up.fd = -1;
    c->state = PEEK;
    return err;
  }
  return 0;
}

/* The next endpoint of a fast connection's cluster; every one tried: hand it to JavaScript. */
static void fast_next(relay_t *r, conn_t *c) {
  const fp_cluster *cl = c->cluster;
  while (c->tried < cl->nendpoints) {
    const fp_endpoint *ep = &cl->endpoints[(c->start + c->tried) % cl->nendpoints];
    c->tried++;
    int err = attempt_start(r, c, (const struct sockaddr *)&ep->addr, ep->addrlen, cl->timeout_ms,
                            r->source_len ? (const struct sockaddr *)&r->source : NULL, r->source_len);
    if (err == 0) return;
    c->last_err = err;
    r->stats[cl->slot].connect_failures++;
  }
  /* JavaScript refuses it (upstream-failed) and logs it; the client is still open */
  c->handed = 1;
  c->paused = 1;
  push_event(r, EV_FAST_FAILED, c, c->last_err, cl->slot, c->kept, c->kept_len);
}

/* The current attempt failed (`err`; -ETIMEDOUT for the deadline). */
static void attempt_failed(relay_t *r, conn_t *c, int err) {
  timer_stop(r, c);
  side_free(&c->up);
  c->up.eof = c->up.shut = 0;
  c->up.bytes = 0;
  c->state = PEEK;
  c->paused = 1;
  if (c->fast && !c->handed) {
    c->last_err = err;
    r->stats[c->slot].connect_failures++;
    fast_next(r, c);
  } else {
    push_event(r, EV_CONNECT_FAILED, c, err, 0, NULL, 0);
  }
}

/* The upstream connected (`in_up`: it is readable too, as for relay_run). */
static void connected(relay_t *r, conn_t *c, int in_up) {
  timer_stop(r, c);
  c->state = RELAY;
  if (c->fast) {
    c->spliced = 1;
    slot_stats_t *st = &r->stats[c->slot];
    st->connections++;
    st->active++;
    r->spliced++;
    table_unref(c->table); /* the endpoints are no longer needed */
    c->table = NULL;
    c->cluster = NULL;
  }
  /* the kept bytes become the client's pending data */
  side_t *cl = &c->client;
  if (c->kept) {
    cl->buf = c->kept;
    cl->cap = c->kept_cap;
    cl->off = 0;
    cl->len = c->kept_len;
    c->kept = NULL;
    c->kept_len = c->kept_cap = 0;
  }
  /* the upstream is writable: the kept bytes go first, then the client is read on if a full kept
   * buffer stopped its reading (client.unread); the upstream's own first bytes, if any came with
   * this event */
  relay_run(r, c, 0, 0, in_up, 1);
}

/* ---- before the upstream: the hello --------------------------------------------------------- */

/* The first bytes a fast-path parse needs before it can progress (saves parsing partial records). */
static size_t hello_needed(const char *kept, size_t len) {
  if (len < 5) return 5;
  const uint8_t *b = (const uint8_t *)kept;
  size_t record = ((size_t)b[3] << 8) | b[4];
  if (b[0] != 22 || b[1] != 3 || b[2] > 4 || record > 16384) return 0; /* not TLS or malformed: parse now (it defers) */
  return 5 + record;
}

/* Hand the connection to JavaScript with what was read so far. */
static void hand_over(relay_t *r, conn_t *c) {
  c->handed = 1;
  push_event(r, EV_DATA, c, 0, 0, c->kept, c->kept_len);
}

/* A complete hello (parsed here): route it, or hand it over. */
static void route_hello(relay_t *r, conn_t *c) {
  char sni[256];
  size_t sni_len = 0;
  int v = fp_parse_hello((const uint8_t *)c->kept, c->kept_len, r->max_hello, sni, &sni_len);
  if (v == FP_INCOMPLETE) {
    /* more than JavaScript's reader buffers for a hello (it refuses it as too large) */
    if (c->kept_len > r->max_hello + 5 * 64 + 16384) hand_over(r, c);
    return;
  }
  const fp_cluster *cl = v == FP_HELLO && r->table ? fp_route(r->table->t, sni, sni_len) : NULL;
  if (!cl) {
    /* JavaScript's parser reaches the same verdict (fastpath.h mirrors it): later bytes are kept
     * for the upstream, not passed on, while it decides (events are not synchronous) */
    c->judged = 1;
    hand_over(r, c);
    return;
  }
  c->fast = 1;
  c->paused = 1;
  c->table = r->table;
  c->table->refs++;
  c->cluster = cl;
  c->slot = cl->slot;
  if (r->random) {
    r->rng = r->rng * 1664525u + 1013904223u;
    c->start = (r->rng >> 8) % cl->nendpoints;
  } else {
    c->start = r->stats[cl->slot].rr++ % cl->nendpoints;
  }
  timer_stop(r, c);
  fast_next(r, c);
}

/* The client is readable before its upstream is connected (PEEK, CONNECTING). */
static void peek_read(relay_t *r, conn_t *c, int ended) {
  side_t *s = &c->client;
  if (s->eof) return;
  s->unread = 0;
  for (;;) {
    if (c->kept_len >= r->max_peek) {
      if (!c->paused && !c->judged) {
        conn_close(r, c, EV_CLIENT_END, -E2BIG, 0);
        return;
      }
      s->unread = 1; /* routed: the rest (and its end) is read once connected */
      return;
    }
    if (c->kept_len == c->kept_cap) {
      size_t cap = c->kept_cap ? c->kept_cap * 2 : 2048;
      if (cap > r->max_peek) cap = r->max_peek;
      char *k = realloc(c->kept, cap);
      if (!k) {
        conn_close(r, c, EV_CLIENT_END, -ENOMEM, 0);
        return;
      }
      c->kept = k;
      c->kept_cap = cap;
    }
    ssize_t n = read(s->fd, c->kept + c->kept_len, c->kept_cap - c->kept_len);
    if (n > 0) {
      size_t got = (size_t)n;
      size_t at = c->kept_len;
      int drained = c->kept_len + got < c->kept_cap && !ended;
      c->kept_len += got;
      s->bytes += got;
      if (c->handed) {
        if (!c->paused && !c->judged) push_event(r, EV_DATA, c, 0, 0, c->kept + at, got);
      } else if (c->state == PEEK && !c->fast) {
        /* judge the hello as soon as it can be complete: a client that sends its first data right
         * behind it must not fill the buffer first */
        size_t need = hello_needed(c->kept, c->kept_len);
        if (need == 0 || c->kept_len >= need) {
          uint64_t id = c->id;
          route_hello(r, c);
          if (!conn_get(r, id)) return;
        }
      }
      if (drained) break;
      continue;
    }
    if (n == 0) {
      if (!c->handed && !c->paused && c->state == PEEK && !c->fast) {
        /* judge what came before the end first: a complete hello is still served */
        uint64_t id = c->id;
        route_hello(r, c);
        if (!conn_get(r, id)) return;
      }
      if (c->paused) {
        s->eof = 1; /* a complete hello, then end of stream: passed on once connected */
        return;
      }
      if (c->handed) {
        /* JavaScript has the bytes but may not have judged them yet (events are queued): the end
         * is kept, and EV_CLIENT_EOF tells it; a hello it found incomplete is refused then */
        s->eof = 1;
        push_event(r, EV_CLIENT_EOF, c, UV_EOF, 0, NULL, 0);
        return;
      }
      conn_close(r, c, EV_CLIENT_END, UV_EOF, 0);
      return;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN) break;
    conn_close(r, c, EV_CLIENT_END, -errno, 0);
    return;
  }
}

/* ---- the engine thread ---------------------------------------------------------------------- */

static void accept_one(relay_t *r, int fd, const struct sockaddr_storage *addr, socklen_t alen) {
  conn_t *c = calloc(1, sizeof *c);
  if (!c || slot_take(r, c) < 0) {
    free(c);
    close(fd);
    return;
  }
  c->client.fd = fd;
  c->up.fd = -1;
  c->peer = *addr;
  c->peer_len = alen;
  c->state = PEEK;
  r->live++;
  r->owned++;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.u64 = conn_tag(c, 0)};
  if (epoll_ctl(r->ep, EPOLL_CTL_ADD, fd, &ev) < 0 || timer_start(r, c, r->hello_timeout) < 0) {
    conn_close(r, c, EV_CLIENT_END, -errno, 0);
    return;
  }
  /* the hello is often there already */
  peek_read(r, c, 0);
}

/* The listener is level-triggered: one connection per event (as nginx without multi_accept), so
 * no accept4 call ends in EAGAIN; epoll reports the listener again while more are pending. */
static void try_accept(relay_t *r) {
  while (r->lfd >= 0 && !r->accept_blocked) {
    struct sockaddr_storage addr;
    socklen_t alen = sizeof addr;
    int fd = accept4(r->lfd, (struct sockaddr *)&addr, &alen, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      accept_one(r, fd, &addr, alen);
      return;
    }
    if (errno == EINTR || errno == ECONNABORTED) continue;
    if (errno == EAGAIN) return;
    /* EMFILE and the like: nothing accepted. A level-triggered listener would be reported again at
     * once: it leaves the epoll set until a connection closes (JavaScript logs the error) */
    int err = errno;
    epoll_ctl(r->ep, EPOLL_CTL_DEL, r->lfd, NULL);
    r->accept_blocked = 1;
    push_event(r, EV_ACCEPT_ERROR, NULL, -err, 0, NULL, 0);
    return;
  }
}

static void on_epoll_event(relay_t *r, const struct epoll_event *ev) {
  uint64_t tag = ev->data.u64;
  if (tag == TAG_LISTENER) {
    try_accept(r);
    return;
  }
  if (tag == TAG_WAKE) {
    uint64_t n;
    (void)!read(r->wake, &n, sizeof n);
    return;
  }
  conn_t *c = conn_get(r, tag >> 8);
  if (!c) return;
  int upstream = (int)(tag & 1);
  if (upstream && (c->up.fd < 0 || ((tag >> 1) & 0x7f) != (c->attempt & 0x7f))) return; /* an earlier attempt */
  uint32_t e = ev->events;
  int in = (e & READABLE) ? ((e & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) ? 2 : 1) : 0;
  int out = (e & (EPOLLOUT | EPOLLERR | EPOLLHUP)) ? 1 : 0;
  switch (c->state) {
    case PEEK:
      if (!upstream && in) peek_read(r, c, in == 2);
      return;
    case CONNECTING:
      if (!upstream) {
        if (in) peek_read(r, c, in == 2);
        return;
      }
      if (out || in) {
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(c->up.fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
        if (err) attempt_failed(r, c, -err);
        else if (out) connected(r, c, in);
      }
      return;
    case RELAY:
      if (upstream) relay_run(r, c, 0, 0, in, out);
      else relay_run(r, c, in, out, 0, 0);
      return;
  }
}

static void run_timers(relay_t *r) {
  int64_t now = now_ms();
  while (r->nheap > 0 && r->heap[0]->deadline <= now) {
    conn_t *c = r->heap[0];
    timer_stop(r, c);
    if (c->state == PEEK && !c->paused) conn_close(r, c, EV_CLIENT_END, -ETIMEDOUT, 1);
    else if (c->state == CONNECTING) attempt_failed(r, c, -ETIMEDOUT);
  }
}

static void *engine_main(void *arg) {
  relay_t *r = arg;
  struct epoll_event evs[128];
  pthread_mutex_lock(&r->mu);
  while (!r->stop) {
    int timeout = -1;
    r->wait_until = INT64_MAX;
    if (r->nheap > 0) {
      int64_t d = r->heap[0]->deadline - now_ms();
      timeout = d < 0 ? 0 : d > 60000 ? 60000 : (int)d;
      r->wait_until = r->heap[0]->deadline;
    }
    pthread_mutex_unlock(&r->mu);
    int n = epoll_wait(r->ep, evs, 128, timeout);
    pthread_mutex_lock(&r->mu);
    if (r->stop) break;
    r->in_batch = 1;
    for (int i = 0; i < n; i++) on_epoll_event(r, &evs[i]);
    if (r->nheap > 0) run_timers(r);
    r->in_batch = 0;
  }
  pthread_mutex_unlock(&r->mu);
  return NULL;
}

/* Start the engine thread (main thread): 0 or a negative errno. */
static int engine_start(relay_t *r) {
  if (r->running) return 0;
  r->ep = epoll_create1(EPOLL_CLOEXEC);
  if (r->ep < 0) return -errno;
  r->wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.u64 = TAG_WAKE};
  if (r->wake < 0 || epoll_ctl(r->ep, EPOLL_CTL_ADD, r->wake, &ev) < 0) {
    int err = -errno;
    if (r->wake >= 0) close(r->wake);
    close(r->ep);
    r->wake = r->ep = -1;
    return err;
  }
  r->stop = 0;
  r->quiet = 0;
  int err = pthread_create(&r->thread, NULL, engine_main, r);
  if (err) {
    close(r->wake);
    close(r->ep);
    r->wake = r->ep = -1;
    return -err;
  }
  r->running = 1;
  return 0;
}

/* Stop the engine thread and close every socket (main thread; no events). */
static void engine_stop(relay_t *r) {
  if (!r->running) return;
  pthread_mutex_lock(&r->mu);
  r->stop = 1;
  wake_engine(r);
  pthread_mutex_unlock(&r->mu);
  pthread_join(r->thread, NULL);
  r->running = 0;
  r->quiet = 1;
  if (r->lfd >= 0) close(r->lfd);
  r->lfd = -1;
  for (uint32_t i = 0; i < r->next_slot; i++) {
    conn_t *c = r->slots[i];
    if (!c) continue;
    c->reported = 1; /* no accounting, no events */
    conn_close(r, c, 0, 0, 0);
  }
  close(r->wake);
  close(r->ep);
  r->wake = r->ep = -1;
}

/* ---- Node's side: events, lifetime ------------------------------------------------------------ */

static void relay_free(relay_t *r) {
  if (--r->refs > 0) return;
  for (uint32_t i = 0; i < r->nq; i++) free(r->q[i].data);
  free(r->q);
  free(r->slots);
  free(r->gens);
  free(r->free_slots);
  free(r->heap);
  free(r->stats);
  table_unref(r->table);
  pthread_mutex_destroy(&r->mu);
  free(r);
}

static void on_async_close(uv_handle_t *h) {
  relay_t *r = h->data;
  free(h);
  relay_free(r);
}

static void close_async(relay_t *r) {
  if (r->async) {
    uv_close((uv_handle_t *)r->async, on_async_close);
    r->async = NULL;
  }
}

/* Keep the JavaScript object and Node's loop alive (listening, or connections open). */
static void hold(relay_t *r) {
  if (r->held || r->finalized) return;
  r->held = 1;
  napi_reference_ref(r->env, r->self, NULL);
  if (r->async) uv_ref((uv_handle_t *)r->async);
}

/* Not listening and no connection left: let go of the object and the loop, stop the thread. */
static void maybe_release(relay_t *r) {
  if (!r->held || r->finalized) return;
  pthread_mutex_lock(&r->mu);
  int idle = r->lfd < 0 && r->live == 0;
  pthread_mutex_unlock(&r->mu);
  if (!idle) return;
  engine_stop(r);
  r->held = 0;
  if (r->async) uv_unref((uv_handle_t *)r->async);
  napi_reference_unref(r->env, r->self, NULL);
}

/* One event to JavaScript. */
static void emit(relay_t *r, const event_t *e) {
  if (r->finalized || !r->onevent) return;
  napi_env env = r->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value cb, recv, argv[5];
  int ok = napi_get_reference_value(env, r->onevent, &cb) == napi_ok && cb &&
           napi_get_reference_value(env, r->self, &recv) == napi_ok && recv && /* an object: MakeCallback needs one */
           napi_create_int32(env, e->kind, &argv[0]) == napi_ok && napi_create_double(env, (double)e->id, &argv[1]) == napi_ok &&
           napi_create_double(env, e->a, &argv[2]) == napi_ok && napi_create_double(env, e->b, &argv[3]) == napi_ok;
  if (ok) {
    if (e->data) ok = napi_create_buffer_copy(env, e->len, e->data, NULL, &argv[4]) == napi_ok;
    else ok = napi_get_undefined(env, &argv[4]) == napi_ok;
  }
  if (ok && napi_make_callback(env, r->actx, recv, cb, 5, argv, NULL) != napi_ok) {
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (pending) {
      napi_value ex;
      napi_get_and_clear_last_exception(env, &ex);
      napi_fatal_exception(env, ex);
    }
  }
  napi_close_handle_scope(env, scope);
}

/* Deliver the queued events (Node's loop). */
static void on_async(uv_async_t *h) {
  relay_t *r = h->data;
  if (r->finalized) return;
  pthread_mutex_lock(&r->mu);
  event_t *batch = r->q;
  uint32_t n = r->nq;
  r->q = NULL;
  r->nq = r->q_cap = 0;
  pthread_mutex_unlock(&r->mu);
  r->delivering = batch;
  r->ndelivering = n;
  for (uint32_t i = 0; i < n; i++) {
    if (batch[i].kind) emit(r, &batch[i]); /* 0: purged by destroy() meanwhile */
    if (r->finalized) break;
  }
  r->delivering = NULL;
  r->ndelivering = 0;
  for (uint32_t i = 0; i < n; i++) free(batch[i].data);
  free(batch);
  maybe_release(r);
}

/* No event for `id` after destroy() (main thread; lock held). */
static void purge_events(relay_t *r, uint64_t id) {
  for (uint32_t i = 0; i < r->nq; i++)
    if (r->q[i].id == id) r->q[i].kind = 0;
  for (uint32_t i = 0; i < r->ndelivering; i++)
    if (r->delivering[i].id == id) r->delivering[i].kind = 0;
}

/* The environment is going away (process exit, worker end): stop the thread, close every socket. */
static void relay_env_cleanup(void *arg) {
  relay_t *r = arg;
  r->finalized = 1; /* no more calls into JavaScript */
  engine_stop(r);
  close_async(r);
}

static void relay_finalize(napi_env env, void *data, void *hint) {
  (void)hint;
  relay_t *r = data;
  if (!r->finalized) napi_remove_env_cleanup_hook(env, relay_env_cleanup, r);
  r->finalized = 1;
  engine_stop(r);
  close_async(r);
  napi_delete_reference(env, r->self);
  if (r->onevent) napi_delete_reference(env, r->onevent);
  r->onevent = NULL;
  napi_async_destroy(env, r->actx);
  relay_free(r);
}

/* ---- JavaScript API --------------------------------------------------------------------------- */

static relay_t *unwrap(napi_env env, napi_callback_info info, size_t *argc, napi_value *argv) {
  napi_value self;
  void *data = NULL;
  if (napi_get_cb_info(env, info, argc, argv, &self, NULL) != napi_ok) return NULL;
  if (napi_unwrap(env, self, &data) != napi_ok) return NULL;
  return data;
}

static int id_arg(napi_env env, napi_value v, uint64_t *id) {
  double d = -1;
  if (napi_get_value_double(env, v, &d) != napi_ok || !(d >= 0) || d > 9007199254740991.0) return -1;
  *id = (uint64_t)d;
  return 0;
}

/* A method whose only argument is an id: the relay and the id. */
static relay_t *id_call(napi_env env, napi_callback_info info, uint64_t *id) {
  size_t argc = 1;
  napi_value argv[1];
  relay_t *r = unwrap(env, info, &argc, argv);
  if (!r || argc < 1 || id_arg(env, argv[0], id) < 0) return NULL;
  return r;
}

static int addr_name(const struct sockaddr_storage *addr, char *name, size_t size) {
  if (addr->ss_family == AF_INET6) {
    inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)addr)->sin6_addr, name, size);
    return ntohs(((const struct sockaddr_in6 *)addr)->sin6_port);
  }
  inet_ntop(AF_INET, &((const struct sockaddr_in *)addr)->sin_addr, name, size);
  return ntohs(((const struct sockaddr_in *)addr)->sin_port);
}

static napi_value int_value(napi_env env, int32_t v) {
  napi_value out;
  napi_create_int32(env, v, &out);
  return out;
}

static napi_value double_value(napi_env env, double v) {
  napi_value out;
  napi_create_double(env, v, &out);
  return out;
}

static int string_arg(napi_env env, napi_value v, char *out, size_t size) {
  size_t len = 0;
  if (napi_get_value_string_utf8(env, v, out, size, &len) != napi_ok) return -1;
  return len + 1 < size ? 0 : -1;
}

/* An IP address and port: its length, or a negative errno. */
static int make_addr(const char *host, int port, struct sockaddr_storage *out) {
  memset(out, 0, sizeof *out);
  if (strchr(host, ':')) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)out;
    a->sin6_family = AF_INET6;
    a->sin6_port = htons((uint16_t)port);
    return inet_pton(AF_INET6, host, &a->sin6_addr) == 1 ? (int)sizeof *a : -EINVAL;
  }
  struct sockaddr_in *a = (struct sockaddr_in *)out;
  a->sin_family = AF_INET;
  a->sin_port = htons((uint16_t)port);
  return inet_pton(AF_INET, host, &a->sin_addr) == 1 ? (int)sizeof *a : -EINVAL;
}

static napi_value relay_new(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6], self;
  if (napi_get_cb_info(env, info, &argc, argv, &self, NULL) != napi_ok) return NULL;
  napi_valuetype t = napi_undefined, st = napi_undefined;
  if (argc >= 1) napi_typeof(env, argv[0], &t);
  if (argc >= 6) napi_typeof(env, argv[5], &st);
  double hello_ms = 0, max_peek = 0, max_hello = 0;
  bool random = false;
  char source[64] = "";
  if (t != napi_function || argc < 5 || napi_get_value_double(env, argv[1], &hello_ms) != napi_ok ||
      napi_get_value_double(env, argv[2], &max_peek) != napi_ok || napi_get_value_double(env, argv[3], &max_hello) != napi_ok ||
      napi_get_value_bool(env, argv[4], &random) != napi_ok || hello_ms < 1 || max_peek < 1 || max_hello < 1 ||
      (st == napi_string && string_arg(env, argv[5], source, sizeof source) < 0)) {
    napi_throw_type_error(env, NULL, "Relay(onevent, helloTimeoutMs, maxPeekBytes, maxHelloBytes, random, sourceAddress): a function, three positive numbers, a boolean and an optional IP address");
    return NULL;
  }
  relay_t *r = calloc(1, sizeof *r);
  if (!r) {
    napi_throw_error(env, NULL, "Relay: out of memory");
    return NULL;
  }
  if (source[0]) {
    int len = make_addr(source, 0, &r->source);
    if (len < 0) {
      free(r);
      napi_throw_type_error(env, NULL, "Relay: sourceAddress is not an IP address");
      return NULL;
    }
    r->source_len = (socklen_t)len;
  }
  r->env = env;
  r->hello_timeout = (int64_t)hello_ms;
  r->max_peek = (size_t)max_peek;
  r->max_hello = (size_t)max_hello;
  r->random = random;
  r->rng = (uint32_t)now_ms() ^ (uint32_t)(uintptr_t)r;
  r->lfd = r->ep = r->wake = -1;
  r->wait_until = INT64_MAX;
  r->refs = 2;
  pthread_mutex_init(&r->mu, NULL);
  napi_value name;
  r->async = malloc(sizeof *r->async);
  if (!r->async || napi_get_uv_event_loop(env, &r->loop) != napi_ok || uv_async_init(r->loop, r->async, on_async) < 0 ||
      napi_create_string_utf8(env, "meshfed.mesh-gateway.relay", NAPI_AUTO_LENGTH, &name) != napi_ok) {
    free(r->async);
    pthread_mutex_destroy(&r->mu);
    free(r);
    napi_throw_error(env, NULL, "Relay: no event loop");
    return NULL;
  }
  r->async->data = r;
  uv_unref((uv_handle_t *)r->async);
  if (napi_async_init(env, self, name, &r->actx) != napi_ok || napi_create_reference(env, argv[0], 1, &r->onevent) != napi_ok ||
      napi_wrap(env, self, r, relay_finalize, NULL, &r->self) != napi_ok) {
    r->refs = 1;
    close_async(r); /* frees r */
    napi_throw_error(env, NULL, "Relay: could not initialise");
    return NULL;
  }
  napi_add_env_cleanup_hook(env, relay_env_cleanup, r);
  return self;
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
  if (r->lfd >= 0) return int_value(env, -EALREADY);
  struct sockaddr_storage addr;
  int alen = make_addr(host, port, &addr);
  if (alen < 0) return int_value(env, alen);
  int fd = socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return int_value(env, -errno);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(fd, (struct sockaddr *)&addr, (socklen_t)alen) < 0 || listen(fd, backlog) < 0) {
    int err = -errno;
    close(fd);
    return int_value(env, err);
  }
  int err = engine_start(r);
  if (err < 0) {
    close(fd);
    return int_value(env, err);
  }
  pthread_mutex_lock(&r->mu);
  struct epoll_event ev = {.events = EPOLLIN, .data.u64 = TAG_LISTENER}; /* level-triggered: see try_accept */
  if (epoll_ctl(r->ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
    err = -errno;
    close(fd);
  } else {
    r->lfd = fd;
  }
  pthread_mutex_unlock(&r->mu);
  if (err < 0) {
    hold(r);
    maybe_release(r); /* stops the thread again */
    return int_value(env, err);
  }
  hold(r);
  return int_value(env, 0);
}

static napi_value relay_address(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  relay_t *r = unwrap(env, info, &argc, NULL);
  if (!r) return NULL;
  napi_value out, v;
  napi_get_undefined(env, &out);
  pthread_mutex_lock(&r->mu);
  struct sockaddr_storage addr;
  socklen_t len = sizeof addr;
  int ok = r->lfd >= 0 && getsockname(r->lfd, (struct sockaddr *)&addr, &len) == 0;
  pthread_mutex_unlock(&r->mu);
  if (!ok) return out;
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
  pthread_mutex_lock(&r->mu);
  if (r->lfd >= 0) {
    close(r->lfd); /* leaves the epoll set with it */
    r->lfd = -1;
    r->accept_blocked = 0;
  }
  pthread_mutex_unlock(&r->mu);
  maybe_release(r);
  return NULL;
}

static napi_value relay_set_routes(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  relay_t *r = unwrap(env, info, &argc, argv);
  if (!r) return NULL;
  void *data = NULL;
  size_t len = 0;
  bool is_buffer = false;
  if (argc < 1 || napi_is_buffer(env, argv[0], &is_buffer) != napi_ok || !is_buffer || napi_get_buffer_info(env, argv[0], &data, &len) != napi_ok) {
    napi_throw_type_error(env, NULL, "Relay.setRoutes(buffer): a Buffer");
    return NULL;
  }
  char err[256] = "";
  fp_table *t = fp_table_decode(data, len, err, sizeof err);
  table_ref_t *ref = t ? calloc(1, sizeof *ref) : NULL;
  uint32_t max_slot = 0;
  slot_stats_t *stats = NULL;
  if (t && ref) {
    ref->t = t;
    ref->refs = 1;
    max_slot = fp_table_max_slot(t);
  }
  pthread_mutex_lock(&r->mu);
  if (ref && max_slot >= r->nstats) {
    uint32_t n = max_slot + 1 > 2 * r->nstats ? max_slot + 1 : 2 * r->nstats;
    stats = realloc(r->stats, n * sizeof *stats);
    if (stats) {
      memset(stats + r->nstats, 0, (n - r->nstats) * sizeof *stats);
      r->stats = stats;
      r->nstats = n;
    }
  } else {
    stats = r->stats;
  }
  table_ref_t *old = NULL;
  if (ref && stats) {
    old = r->table;
    r->table = ref;
    ref = NULL;
  }
  table_unref(old); /* connections that hold it keep it */
  pthread_mutex_unlock(&r->mu);
  if (!t) {
    napi_throw_error(env, NULL, err[0] ? err : "Relay.setRoutes: bad routes");
    return NULL;
  }
  if (ref) {
    table_unref(ref);
    napi_throw_error(env, NULL, "Relay.setRoutes: out of memory");
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
  uint64_t id = 0;
  napi_valuetype st = napi_undefined;
  if (argc >= 5) napi_typeof(env, argv[4], &st);
  if (argc < 5 || id_arg(env, argv[0], &id) < 0 || string_arg(env, argv[1], host, sizeof host) < 0 ||
      napi_get_value_int32(env, argv[2], &port) != napi_ok || napi_get_value_double(env, argv[3], &timeout_ms) != napi_ok ||
      port < 0 || port > 65535 || timeout_ms < 1 || (st == napi_string && string_arg(env, argv[4], source, sizeof source) < 0)) {
    napi_throw_type_error(env, NULL, "Relay.connect(id, host, port, timeoutMs, sourceAddress): bad arguments");
    return NULL;
  }
  struct sockaddr_storage addr, src;
  int alen = make_addr(host, port, &addr), slen = 0;
  if (alen < 0) return int_value(env, alen);
  if (source[0] && (slen = make_addr(source, 0, &src)) < 0) return int_value(env, slen);
  pthread_mutex_lock(&r->mu);
  conn_t *c = conn_get(r, id);
  int err;
  if (!c) err = UV_ECANCELED; /* closed: its end event is queued */
  else if (c->state != PEEK) err = -EALREADY;
  else err = attempt_start(r, c, (struct sockaddr *)&addr, (socklen_t)alen, (int64_t)timeout_ms, slen > 0 ? (struct sockaddr *)&src : NULL, (socklen_t)slen);
  pthread_mutex_unlock(&r->mu);
  return int_value(env, err);
}

static napi_value relay_pause(napi_env env, napi_callback_info info) {
  uint64_t id;
  relay_t *r = id_call(env, info, &id);
  if (!r) return NULL;
  pthread_mutex_lock(&r->mu);
  conn_t *c = conn_get(r, id);
  if (c && c->state == PEEK && !c->paused) {
    /* the hello is complete: JavaScript routes it (maybe after a DNS lookup) and connects; more
     * bytes are kept, not passed on, and the hello deadline no longer applies */
    c->paused = 1;
    timer_stop(r, c);
  }
  pthread_mutex_unlock(&r->mu);
  return NULL;
}

static napi_value pair_bytes(napi_env env, double up, double down) {
  napi_value arr;
  napi_create_array_with_length(env, 2, &arr);
  napi_set_element(env, arr, 0, double_value(env, up));
  napi_set_element(env, arr, 1, double_value(env, down));
  return arr;
}

static napi_value relay_destroy(napi_env env, napi_callback_info info) {
  uint64_t id;
  relay_t *r = id_call(env, info, &id);
  if (!r) return NULL;
  pthread_mutex_lock(&r->mu);
  conn_t *c = conn_get(r, id);
  double up = 0, down = 0;
  if (c) {
    up = (double)c->client.bytes;
    down = (double)c->up.bytes;
    if (!c->reported) {
      c->reported = 1;
      r->owned--;
    }
    conn_close(r, c, 0, 0, 0);
  }
  purge_events(r, id);
  pthread_mutex_unlock(&r->mu);
  maybe_release(r);
  return c ? pair_bytes(env, up, down) : NULL;
}

static napi_value relay_bytes(napi_env env, napi_callback_info info) {
  uint64_t id;
  relay_t *r = id_call(env, info, &id);
  if (!r) return NULL;
  pthread_mutex_lock(&r->mu);
  conn_t *c = conn_get(r, id);
  double up = c ? (double)c->client.bytes : 0, down = c ? (double)c->up.bytes : 0;
  pthread_mutex_unlock(&r->mu);
  return c ? pair_bytes(env, up, down) : NULL;
}

static napi_value relay_connected(napi_env env, napi_callback_info info) {
  uint64_t id;
  relay_t *r = id_call(env, info, &id);
  if (!r) return NULL;
  pthread_mutex_lock(&r->mu);
  conn_t *c = conn_get(r, id);
  int yes = c && c->state == RELAY;
  pthread_mutex_unlock(&r->mu);
  napi_value out;
  napi_get_boolean(env, yes, &out);
  return out;
}

static napi_value relay_peer(napi_env env, napi_callback_info info) {
  uint64_t id;
  relay_t *r = id_call(env, info, &id);
  if (!r) return NULL;
  pthread_mutex_lock(&r->mu);
  conn_t *c = conn_get(r, id);
  struct sockaddr_storage addr;
  if (c) addr = c->peer;
  pthread_mutex_unlock(&r->mu);
  if (!c) return NULL;
  char name[64] = "", label[80];
  int port = addr_name(&addr, name, sizeof name);
  snprintf(label, sizeof label, "%s:%d", name, port);
  napi_value out;
  napi_create_string_utf8(env, label, NAPI_AUTO_LENGTH, &out);
  return out;
}

static napi_value relay_unreported(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  relay_t *r = unwrap(env, info, &argc, NULL);
  if (!r) return NULL;
  pthread_mutex_lock(&r->mu);
  uint32_t n = r->owned;
  pthread_mutex_unlock(&r->mu);
  napi_value v;
  napi_create_uint32(env, n, &v);
  return v;
}

static napi_value relay_destroy_unreported(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  relay_t *r = unwrap(env, info, &argc, NULL);
  if (!r) return NULL;
  uint32_t n = 0;
  pthread_mutex_lock(&r->mu);
  for (uint32_t i = 0; i < r->next_slot; i++) {
    conn_t *c = r->slots[i];
    if (!c || c->reported) continue;
    if (!c->fast) {
      /* still peeking: JavaScript counts it as refused */
      c->reported = 1;
      r->owned--;
      n++;
    }
    conn_close(r, c, 0, 0, 0);
  }
  pthread_mutex_unlock(&r->mu);
  maybe_release(r);
  napi_value v;
  napi_create_uint32(env, n, &v);
  return v;
}

static napi_value relay_engine_stats(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  relay_t *r = unwrap(env, info, &argc, NULL);
  if (!r) return NULL;
  pthread_mutex_lock(&r->mu);
  uint32_t ns = r->nstats;
  double head[5] = {r->owned, r->done, r->spliced, r->bytes_up, r->bytes_down};
  slot_stats_t *st = ns ? malloc(ns * sizeof *st) : NULL;
  if (st) memcpy(st, r->stats, ns * sizeof *st);
  else ns = 0;
  for (uint32_t i = 0; i < r->next_slot; i++) {
    conn_t *c = r->slots[i];
    if (!c || c->reported || !c->spliced) continue;
    head[3] += (double)c->client.bytes;
    head[4] += (double)c->up.bytes;
    if (st) {
      st[c->slot].bytes_up += (double)c->client.bytes;
      st[c->slot].bytes_down += (double)c->up.bytes;
    }
  }
  pthread_mutex_unlock(&r->mu);
  napi_value out;
  napi_create_array_with_length(env, 5 + 5 * (size_t)ns, &out);
  for (uint32_t i = 0; i < 5; i++) napi_set_element(env, out, i, double_value(env, head[i]));
  for (uint32_t i = 0; i < ns; i++) {
    napi_set_element(env, out, 5 + 5 * i, double_value(env, st[i].connections));
    napi_set_element(env, out, 6 + 5 * i, double_value(env, st[i].active));
    napi_set_element(env, out, 7 + 5 * i, double_value(env, st[i].connect_failures));
    napi_set_element(env, out, 8 + 5 * i, double_value(env, st[i].bytes_up));
    napi_set_element(env, out, 9 + 5 * i, double_value(env, st[i].bytes_down));
  }
  free(st);
  return out;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"listen", NULL, relay_listen, NULL, NULL, NULL, napi_default_method, NULL},
      {"address", NULL, relay_address, NULL, NULL, NULL, napi_default_method, NULL},
      {"unlisten", NULL, relay_unlisten, NULL, NULL, NULL, napi_default_method, NULL},
      {"setRoutes", NULL, relay_set_routes, NULL, NULL, NULL, napi_default_method, NULL},
      {"connect", NULL, relay_connect, NULL, NULL, NULL, napi_default_method, NULL},
      {"pause", NULL, relay_pause, NULL, NULL, NULL, napi_default_method, NULL},
      {"destroy", NULL, relay_destroy, NULL, NULL, NULL, napi_default_method, NULL},
      {"bytes", NULL, relay_bytes, NULL, NULL, NULL, napi_default_method, NULL},
      {"connected", NULL, relay_connected, NULL, NULL, NULL, napi_default_method, NULL},
      {"peer", NULL, relay_peer, NULL, NULL, NULL, napi_default_method, NULL},
      {"destroyUnreported", NULL, relay_destroy_unreported, NULL, NULL, NULL, napi_default_method, NULL},
      {"engineStats", NULL, relay_engine_stats, NULL, NULL, NULL, napi_default_method, NULL},
      {"unreported", NULL, NULL, relay_unreported, NULL, NULL, napi_enumerable, NULL},
  };
  napi_value cls;
  if (napi_define_class(env, "Relay", NAPI_AUTO_LENGTH, relay_new, NULL, sizeof props / sizeof props[0], props, &cls) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "Relay", cls) != napi_ok) return NULL;
  fp_register(env, exports);
  return exports;
}

NAPI_MODULE_INIT() { return init(env, exports); }
