/*
 * fastpath.h: the native engine's fast path (header-only, C11, every function static).
 *
 * Two pure pieces relay.c uses to route a connection without calling JavaScript:
 *
 *  - fp_parse_hello(): a TLS ClientHello parser that mirrors parseClientHello() of client-hello.ts
 *    check for check. It only answers "incomplete", "a hello with this (lower-cased) server name",
 *    or "defer" (anything else: JavaScript re-parses the same bytes and decides, so every
 *    rejection, a hello without a server name and a name longer than 255 bytes are all "defer").
 *
 *  - fp_table_*() / fp_route(): the route table the engine may take by itself, decoded from the
 *    buffer encodeFastRoutes() (fast-routes.ts) builds, looked up like matchChain() in routing.ts
 *    followed by the cluster resolution of SniProxy#route in proxy.ts.
 *
 * Binary route table format (integers big-endian; str = u16 byte length + UTF-8 bytes, no NUL):
 *
 *   u32 version = 1
 *   u32 nclusters
 *     per cluster: str name, u32 slot, u32 timeoutMs, u8 fast (0|1), u16 nendpoints,
 *                  per endpoint: str ip (IPv4 or IPv6 literal), u16 port
 *   u32 nexact   per entry: str serverName, i32 target
 *   u32 nwild    per entry: str suffix (with its leading dot), i32 target
 *   i32 catchAll
 *
 * A target is a cluster index (position in the cluster list), FP_ASK (-1: JavaScript decides),
 * or FP_SNI_CLUSTER (-2: the cluster named like the server name); catchAll may also be
 * FP_NO_ROUTE (-3: no catch-all chain). Endpoints are parsed (and must be IP literals with a
 * non-zero port) only for fast clusters; a fast cluster has at least one endpoint.
 *
 * The test-only Node-API exports (fp_register) are at the end of the file.
 */
#ifndef MESHFED_FASTPATH_H
#define MESHFED_FASTPATH_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <node_api.h>

/* ------------------------------------------------------------------------------------------ */
/* ClientHello parser                                                                           */
/* ------------------------------------------------------------------------------------------ */

enum { FP_INCOMPLETE = 0, FP_HELLO = 1, FP_DEFER = 2 };

#define FP_CONTENT_HANDSHAKE 22
#define FP_HANDSHAKE_CLIENT_HELLO 1
#define FP_RECORD_HEADER 5
#define FP_HANDSHAKE_HEADER 4
#define FP_MAX_RECORD_FRAGMENT 16384
#define FP_MAX_HELLO_RECORDS 32
#define FP_MAX_SNI 255
#define FP_EXT_SERVER_NAME 0
#define FP_EXT_ALPN 16
/* Hellos gathered from several records up to this size are copied to the stack, larger ones to the heap. */
#define FP_STACK_HELLO (FP_MAX_RECORD_FRAGMENT + FP_HANDSHAKE_HEADER)
/* Extension types remembered in a list before switching to a 65536-bit set (duplicate detection). */
#define FP_SEEN_LIST 64

static inline size_t fp_u16(const uint8_t *p) { return ((size_t)p[0] << 8) | (size_t)p[1]; }

/* handshakeHeader() of client-hello.ts: 0 and *total (header included), or -1 (a rejection). */
static int fp_handshake_header(const uint8_t *h, size_t max_hello, size_t *total) {
  if (h[0] != FP_HANDSHAKE_CLIENT_HELLO) return -1;
  size_t body = ((size_t)h[1] << 16) | ((size_t)h[2] << 8) | (size_t)h[3];
  size_t t = body + FP_HANDSHAKE_HEADER;
  if (t > max_hello) return -1; /* too-large */
  if (body < 38) return -1;
  *total = t;
  return 0;
}

/* Copy the first `want` handshake bytes of the fragments (nfrag >= 1) to `out`. */
static void fp_gather(const uint8_t *buf, const size_t *fstart, const size_t *flen, unsigned nfrag, uint8_t *out, size_t want) {
  size_t n = flen[0] < want ? flen[0] : want;
  memcpy(out, buf + fstart[0], n);
  for (unsigned i = 1; i < nfrag && n < want; i++) {
    size_t take = flen[i] < want - n ? flen[i] : want - n;
    memcpy(out + n, buf + fstart[i], take);
    n += take;
  }
}

/* parseServerName(): -1 a rejection (or a name too long for the fast path), 0 no host_name, 1 a host_name (in sni). */
static int fp_server_name(const uint8_t *q, size_t l, char *sni, size_t *sni_len) {
  if (l == 0) return 0; /* empty extension: tolerated, no name */
  if (l < 2) return -1;
  size_t list = fp_u16(q);
  if (2 + list != l || list == 0) return -1;
  size_t p = 2;
  int have = 0;
  while (p < l) {
    if (p + 3 > l) return -1;
    unsigned type = q[p];
    size_t nl = fp_u16(q + p + 1);
    p += 3;
    if (p + nl > l) return -1;
    if (type == 0) {
      if (have) return -1;        /* two host_name entries */
      if (nl == 0) return -1;     /* empty host_name */
      if (nl > FP_MAX_SNI) return -1; /* hello or not, JavaScript decides */
      for (size_t i = 0; i < nl; i++) {
        unsigned c = q[p + i];
        if (c < 0x21 || c > 0x7e) return -1;
        if (c >= 0x41 && c <= 0x5a) c += 0x20;
        sni[i] = (char)c;
      }
      sni[nl] = '\0';
      *sni_len = nl;
      have = 1;
    }
    p += nl;
  }
  return have;
}

/* parseAlpn(): 0 well-formed, -1 a rejection. */
static int fp_alpn(const uint8_t *q, size_t l) {
  if (l < 2) return -1;
  size_t list = fp_u16(q);
  if (2 + list != l || list == 0) return -1;
  size_t p = 2;
  while (p < l) {
    size_t n = q[p];
    p += 1;
    if (n == 0 || p + n > l) return -1;
    p += n;
  }
  return 0;
}

/* parseBody(): the complete handshake message (header included, end = its length). */
static int fp_parse_body(const uint8_t *msg, size_t end, char *sni, size_t *sni_len) {
  size_t p = FP_HANDSHAKE_HEADER + 2 + 32; /* legacy_version, random (end >= 42) */
  if (p + 1 > end) return FP_DEFER;
  size_t sid = msg[p];
  if (sid > 32) return FP_DEFER;
  p += 1 + sid;
  if (p + 2 > end) return FP_DEFER;
  size_t cs = fp_u16(msg + p);
  if (cs < 2 || cs % 2 != 0) return FP_DEFER;
  p += 2 + cs;
  if (p + 1 > end) return FP_DEFER;
  size_t cm = msg[p];
  if (cm < 1) return FP_DEFER;
  p += 1 + cm;
  if (p > end) return FP_DEFER;
  if (p == end) return FP_DEFER; /* a hello without extensions: no server name */
  if (p + 2 > end) return FP_DEFER;
  size_t ext = fp_u16(msg + p);
  p += 2;
  if (p + ext != end) return FP_DEFER;

  uint16_t seen_list[FP_SEEN_LIST];
  unsigned nseen = 0;
  uint64_t seen_bits[65536 / 64]; /* initialised only past FP_SEEN_LIST extensions */
  int use_bits = 0;
  int have_name = 0;
  while (p < end) {
    if (p + 4 > end) return FP_DEFER;
    unsigned type = (unsigned)fp_u16(msg + p);
    size_t l = fp_u16(msg + p + 2);
    p += 4;
    if (p + l > end) return FP_DEFER;
    if (use_bits) {
      if (seen_bits[type >> 6] & ((uint64_t)1 << (type & 63))) return FP_DEFER;
      seen_bits[type >> 6] |= (uint64_t)1 << (type & 63);
    } else {
      for (unsigned i = 0; i < nseen; i++)
        if (seen_list[i] == type) return FP_DEFER;
      if (nseen < FP_SEEN_LIST) {
        seen_list[nseen++] = (uint16_t)type;
      } else {
        memset(seen_bits, 0, sizeof seen_bits);
        for (unsigned i = 0; i < nseen; i++) seen_bits[seen_list[i] >> 6] |= (uint64_t)1 << (seen_list[i] & 63);
        seen_bits[type >> 6] |= (uint64_t)1 << (type & 63);
        use_bits = 1;
      }
    }
    if (type == FP_EXT_SERVER_NAME) {
      int r = fp_server_name(msg + p, l, sni, sni_len);
      if (r < 0) return FP_DEFER;
      have_name = r;
    } else if (type == FP_EXT_ALPN) {
      if (fp_alpn(msg + p, l) < 0) return FP_DEFER;
    }
    p += l;
  }
  return have_name ? FP_HELLO : FP_DEFER;
}

/*
 * Parse the bytes a client sent so far. FP_HELLO: a complete, well-formed ClientHello with a
 * host_name; its lower-cased name is written to sni (NUL-terminated, at most 255 chars + NUL; a
 * longer name gives FP_DEFER) and *sni_len set. FP_INCOMPLETE: exactly when parseClientHello
 * would say 'incomplete'. FP_DEFER: everything else (any rejection, too large, no server_name,
 * a name longer than 255): JavaScript re-parses and decides. max_hello is the handshake message
 * limit (header included), as parseClientHello's maxHelloBytes. sni may be written to even when
 * the result is not FP_HELLO.
 */
static int fp_parse_hello(const uint8_t *buf, size_t len, size_t max_hello, char sni[256], size_t *sni_len) {
  if (len < 1) return FP_INCOMPLETE;
  if (buf[0] != FP_CONTENT_HANDSHAKE) return FP_DEFER;
  if (len < 2) return FP_INCOMPLETE;
  if (buf[1] != 3) return FP_DEFER;
  if (len < 3) return FP_INCOMPLETE;
  if (buf[2] > 4) return FP_DEFER;

  size_t fstart[FP_MAX_HELLO_RECORDS], flen[FP_MAX_HELLO_RECORDS];
  unsigned nfrag = 0;
  int known = 0;        /* handshake length known */
  size_t hlen = 0;      /* handshake message length, header included */
  size_t collected = 0; /* handshake bytes in complete records */
  size_t offset = 0;    /* start of the next record (always <= len) */
  while (!known || collected < hlen) {
    if (len - offset < FP_RECORD_HEADER) return FP_INCOMPLETE;
    if (buf[offset] != FP_CONTENT_HANDSHAKE) return FP_DEFER;
    if (buf[offset + 1] != 3) return FP_DEFER;
    size_t rl = fp_u16(buf + offset + 3);
    if (rl == 0) return FP_DEFER;
    if (rl > FP_MAX_RECORD_FRAGMENT) return FP_DEFER;
    if (nfrag >= FP_MAX_HELLO_RECORDS) return FP_DEFER;
    size_t start = offset + FP_RECORD_HEADER;
    size_t end = start + rl;
    /* The handshake header may be readable in a partial first record: refuse early, as TS does. */
    if (!known && collected == 0) {
      size_t avail = (len < end ? len : end) - start;
      if (avail >= FP_HANDSHAKE_HEADER) {
        if (fp_handshake_header(buf + start, max_hello, &hlen) < 0) return FP_DEFER;
        known = 1;
      }
    }
    if (len < end) return FP_INCOMPLETE;
    fstart[nfrag] = start;
    flen[nfrag] = rl;
    nfrag++;
    collected += rl;
    offset = end;
    if (!known && collected >= FP_HANDSHAKE_HEADER) {
      uint8_t hdr[FP_HANDSHAKE_HEADER];
      fp_gather(buf, fstart, flen, nfrag, hdr, FP_HANDSHAKE_HEADER);
      if (fp_handshake_header(hdr, max_hello, &hlen) < 0) return FP_DEFER;
      known = 1;
    }
  }
  if (collected > hlen) return FP_DEFER; /* data after the ClientHello in its last record */
  if (nfrag == 1) return fp_parse_body(buf + fstart[0], hlen, sni, sni_len);
  uint8_t stack_msg[FP_STACK_HELLO];
  uint8_t *msg = stack_msg;
  if (hlen > sizeof stack_msg) {
    msg = (uint8_t *)malloc(hlen); /* at most 32 records of 16 KiB */
    if (msg == NULL) return FP_DEFER;
  }
  fp_gather(buf, fstart, flen, nfrag, msg, hlen);
  int rc = fp_parse_body(msg, hlen, sni, sni_len);
  if (msg != stack_msg) free(msg);
  return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* Fast route table                                                                             */
/* ------------------------------------------------------------------------------------------ */

#define FP_TABLE_VERSION 1
#define FP_ASK (-1)
#define FP_SNI_CLUSTER (-2)
#define FP_NO_ROUTE (-3)
/* Longest IP literal accepted in the table (an IPv6 address with an embedded IPv4 one is 45). */
#define FP_MAX_IP_TEXT 63

typedef struct fp_endpoint {
  struct sockaddr_storage addr;
  socklen_t addrlen;
} fp_endpoint;

typedef struct fp_cluster {
  uint32_t slot;         /* the JavaScript side's id of the cluster (slotOf) */
  uint32_t timeout_ms;   /* connect timeout */
  int fast;              /* 0: JavaScript routes connections to this cluster */
  uint32_t nendpoints;   /* 0 unless fast */
  fp_endpoint *endpoints;
  char *name;            /* NUL-terminated (the table owns it) */
  size_t name_len;       /* bytes of name (a name may hold a NUL) */
} fp_cluster;

/* One slot of an open-addressing hash map from a byte string to an int32. key == NULL: empty. */
typedef struct fp_map_slot {
  const char *key;
  uint32_t len;
  uint32_t hash;
  int32_t value;
} fp_map_slot;

typedef struct fp_map {
  fp_map_slot *slots;
  size_t mask; /* capacity - 1 (capacity a power of two, at least twice the entries) */
} fp_map;

struct fp_table {
  uint32_t nclusters;
  fp_cluster *clusters;
  fp_map by_name;  /* cluster name -> index */
  fp_map exact;    /* server name -> target */
  fp_map wildcard; /* suffix with its leading dot -> target */
  uint32_t nwildcard;
  int32_t catch_all;
  char *strings;   /* every name, NUL-terminated */
};
typedef struct fp_table fp_table;

/*
 * FNV-1a over the bytes from the last to the first: the hashes of every suffix of a name come
 * out of one backward pass (fp_route's wildcard walk).
 */
#define FP_FNV_OFFSET 2166136261u
#define FP_FNV_PRIME 16777619u
static inline uint32_t fp_hash_step(uint32_t h, uint8_t c) { return (h ^ c) * FP_FNV_PRIME; }
static uint32_t fp_hash(const char *s, size_t len) {
  uint32_t h = FP_FNV_OFFSET;
  while (len > 0) h = fp_hash_step(h, (uint8_t)s[--len]);
  return h;
}

static int fp_map_init(fp_map *m, size_t n) {
  size_t cap = 8;
  while (cap < n * 2) cap <<= 1;
  m->slots = (fp_map_slot *)calloc(cap, sizeof(fp_map_slot));
  if (m->slots == NULL) return -1;
  m->mask = cap - 1;
  return 0;
}

/* 0 inserted, 1 the key is there already. */
static int fp_map_put(fp_map *m, const char *key, uint32_t len, int32_t value) {
  uint32_t h = fp_hash(key, len);
  for (size_t i = h & m->mask;; i = (i + 1) & m->mask) {
    fp_map_slot *s = &m->slots[i];
    if (s->key == NULL) {
      s->key = key;
      s->len = len;
      s->hash = h;
      s->value = value;
      return 0;
    }
    if (s->hash == h && s->len == len && memcmp(s->key, key, len) == 0) return 1;
  }
}

/* The value of key (hash = fp_hash(key, len)) in *value: 1 found, 0 not. */
static int fp_map_get(const fp_map *m, const char *key, size_t len, uint32_t h, int32_t *value) {
  if (m->slots == NULL) return 0;
  for (size_t i = h & m->mask;; i = (i + 1) & m->mask) {
    const fp_map_slot *s = &m->slots[i];
    if (s->key == NULL) return 0;
    if (s->hash == h && s->len == len && memcmp(s->key, key, len) == 0) {
      *value = s->value;
      return 1;
    }
  }
}

static void fp_table_free(fp_table *t) {
  if (t == NULL) return;
  if (t->clusters != NULL)
    for (uint32_t i = 0; i < t->nclusters; i++) free(t->clusters[i].endpoints);
  free(t->clusters);
  free(t->by_name.slots);
  free(t->exact.slots);
  free(t->wildcard.slots);
  free(t->strings);
  free(t);
}

typedef struct fp_reader {
  const uint8_t *p;
  size_t left;
} fp_reader;

static int fp_read_u8(fp_reader *r, uint32_t *v) {
  if (r->left < 1) return -1;
  *v = r->p[0];
  r->p += 1;
  r->left -= 1;
  return 0;
}
static int fp_read_u16(fp_reader *r, uint32_t *v) {
  if (r->left < 2) return -1;
  *v = ((uint32_t)r->p[0] << 8) | r->p[1];
  r->p += 2;
  r->left -= 2;
  return 0;
}
static int fp_read_u32(fp_reader *r, uint32_t *v) {
  if (r->left < 4) return -1;
  *v = ((uint32_t)r->p[0] << 24) | ((uint32_t)r->p[1] << 16) | ((uint32_t)r->p[2] << 8) | r->p[3];
  r->p += 4;
  r->left -= 4;
  return 0;
}
static int fp_read_i32(fp_reader *r, int32_t *v) {
  uint32_t u;
  if (fp_read_u32(r, &u) < 0) return -1;
  *v = u <= INT32_MAX ? (int32_t)u : -(int32_t)(UINT32_MAX - u) - 1;
  return 0;
}
/* A string: points into the input (not NUL-terminated). */
static int fp_read_str(fp_reader *r, const uint8_t **s, uint32_t *len) {
  if (fp_read_u16(r, len) < 0 || r->left < *len) return -1;
  *s = r->p;
  r->p += *len;
  r->left -= *len;
  return 0;
}

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static void fp_errorf(char *err, size_t errlen, const char *fmt, ...) {
  if (err == NULL || errlen == 0) return;
  int n = snprintf(err, errlen, "fast route table: ");
  if (n < 0 || (size_t)n >= errlen) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
  va_end(ap);
}

/* Copy a string to the arena, NUL-terminated. */
static char *fp_intern(char **arena, const uint8_t *s, uint32_t len) {
  char *out = *arena;
  memcpy(out, s, len);
  out[len] = '\0';
  *arena += len + 1;
  return out;
}

static int fp_valid_target(int32_t target, uint32_t nclusters) {
  return target == FP_ASK || target == FP_SNI_CLUSTER || (target >= 0 && (uint32_t)target < nclusters);
}

/* Names in messages are cut to this many bytes; bytes outside printable ASCII show as '?'. */
#define FP_ERR_NAME 80
typedef struct fp_shown { char text[FP_ERR_NAME + 4]; } fp_shown;
static fp_shown fp_show(const void *s, size_t len) {
  fp_shown out;
  size_t n = len < FP_ERR_NAME ? len : FP_ERR_NAME;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = ((const unsigned char *)s)[i];
    out.text[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
  }
  if (len > n) memcpy(out.text + n, "...", 4);
  else out.text[n] = '\0';
  return out;
}

/* Read the route entries (exact or wildcard) into m. */
static int fp_decode_routes(fp_reader *r, fp_table *t, fp_map *m, uint32_t *count, char **arena, const char *what, int wildcard, char *err, size_t errlen) {
  uint32_t n;
  if (fp_read_u32(r, &n) < 0) {
    fp_errorf(err, errlen, "truncated before the %s count", what);
    return -1;
  }
  if (n > r->left / 6) {
    fp_errorf(err, errlen, "truncated: %u %s entries do not fit in the %zu bytes left", n, what, r->left);
    return -1;
  }
  if (fp_map_init(m, n) < 0) {
    fp_errorf(err, errlen, "out of memory");
    return -1;
  }
  *count = n;
  for (uint32_t i = 0; i < n; i++) {
    const uint8_t *s;
    uint32_t len;
    int32_t target;
    if (fp_read_str(r, &s, &len) < 0 || fp_read_i32(r, &target) < 0) {
      fp_errorf(err, errlen, "truncated in %s entry %u", what, i);
      return -1;
    }
    if (wildcard && (len < 2 || s[0] != '.')) {
      fp_errorf(err, errlen, "wildcard suffix %u \"%s\" does not start with a dot and a label", i, fp_show(s, len).text);
      return -1;
    }
    if (!fp_valid_target(target, t->nclusters)) {
      fp_errorf(err, errlen, "%s entry \"%s\": target %d is out of range (%u clusters)", what, fp_show(s, len).text, (int)target, t->nclusters);
      return -1;
    }
    char *key = fp_intern(arena, s, len);
    if (fp_map_put(m, key, len, target) != 0) {
      fp_errorf(err, errlen, "duplicate %s entry \"%s\"", what, fp_show(key, len).text);
      return -1;
    }
  }
  return 0;
}

/* Parse an IP literal and port into ep: 0, or -1 when it is not an IP address. */
static int fp_parse_endpoint(const uint8_t *ip, uint32_t len, uint32_t port, fp_endpoint *ep) {
  char text[FP_MAX_IP_TEXT + 1];
  if (len == 0 || len > FP_MAX_IP_TEXT) return -1;
  memcpy(text, ip, len);
  text[len] = '\0';
  if (strlen(text) != len) return -1; /* an embedded NUL */
  memset(ep, 0, sizeof *ep);
  if (memchr(text, ':', len) != NULL) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ep->addr;
    if (inet_pton(AF_INET6, text, &a->sin6_addr) != 1) return -1;
    a->sin6_family = AF_INET6;
    a->sin6_port = htons((uint16_t)port);
    ep->addrlen = (socklen_t)sizeof *a;
  } else {
    struct sockaddr_in *a = (struct sockaddr_in *)&ep->addr;
    if (inet_pton(AF_INET, text, &a->sin_addr) != 1) return -1;
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    ep->addrlen = (socklen_t)sizeof *a;
  }
  return 0;
}

/* Decode a table built by encodeFastRoutes(): the table, or NULL with a message in err. */
static fp_table *fp_table_decode(const uint8_t *buf, size_t len, char *err, size_t errlen) {
  if (err != NULL && errlen > 0) err[0] = '\0';
  fp_reader rd = {buf, len};
  fp_reader *r = &rd;
  uint32_t version, nclusters;
  if (fp_read_u32(r, &version) < 0) {
    fp_errorf(err, errlen, "truncated: %zu bytes, no version", len);
    return NULL;
  }
  if (version != FP_TABLE_VERSION) {
    fp_errorf(err, errlen, "unsupported version %u (expected %u)", version, (unsigned)FP_TABLE_VERSION);
    return NULL;
  }
  if (fp_read_u32(r, &nclusters) < 0) {
    fp_errorf(err, errlen, "truncated before the cluster count");
    return NULL;
  }
  /* A cluster takes at least 13 bytes: refuse absurd counts before allocating. */
  if (nclusters > r->left / 13) {
    fp_errorf(err, errlen, "truncated: %u clusters do not fit in the %zu bytes left", nclusters, r->left);
    return NULL;
  }
  fp_table *t = (fp_table *)calloc(1, sizeof *t);
  if (t == NULL) {
    fp_errorf(err, errlen, "out of memory");
    return NULL;
  }
  /* Every string takes its length + 2 bytes in the input, and length + 1 in the arena. */
  t->strings = (char *)malloc(len + 1);
  t->clusters = (fp_cluster *)calloc(nclusters > 0 ? nclusters : 1, sizeof(fp_cluster));
  if (t->strings == NULL || t->clusters == NULL || fp_map_init(&t->by_name, nclusters) < 0) {
    fp_errorf(err, errlen, "out of memory");
    goto fail;
  }
  t->nclusters = nclusters;
  char *arena = t->strings;
  for (uint32_t i = 0; i < nclusters; i++) {
    fp_cluster *c = &t->clusters[i];
    const uint8_t *name;
    uint32_t name_len, fast, nep;
    if (fp_read_str(r, &name, &name_len) < 0 || fp_read_u32(r, &c->slot) < 0 || fp_read_u32(r, &c->timeout_ms) < 0 || fp_read_u8(r, &fast) < 0 ||
        fp_read_u16(r, &nep) < 0) {
      fp_errorf(err, errlen, "truncated in cluster %u", i);
      goto fail;
    }
    c->name = fp_intern(&arena, name, name_len);
    c->name_len = name_len;
    const fp_shown shown = fp_show(name, name_len);
    if (fast > 1) {
      fp_errorf(err, errlen, "cluster \"%s\": fast flag %u is not 0 or 1", shown.text, fast);
      goto fail;
    }
    if (fp_map_put(&t->by_name, c->name, name_len, (int32_t)i) != 0) {
      fp_errorf(err, errlen, "duplicate cluster name \"%s\"", shown.text);
      goto fail;
    }
    c->fast = (int)fast;
    if (fast && nep == 0) {
      fp_errorf(err, errlen, "fast cluster \"%s\" has no endpoints", shown.text);
      goto fail;
    }
    if (fast) {
      c->endpoints = (fp_endpoint *)calloc(nep, sizeof(fp_endpoint));
      if (c->endpoints == NULL) {
        fp_errorf(err, errlen, "out of memory");
        goto fail;
      }
    }
    for (uint32_t e = 0; e < nep; e++) {
      const uint8_t *ip;
      uint32_t ip_len, port;
      if (fp_read_str(r, &ip, &ip_len) < 0 || fp_read_u16(r, &port) < 0) {
        fp_errorf(err, errlen, "truncated in endpoint %u of cluster \"%s\"", e, shown.text);
        goto fail;
      }
      if (!fast) continue;
      if (fp_parse_endpoint(ip, ip_len, port, &c->endpoints[e]) < 0) {
        fp_errorf(err, errlen, "cluster \"%s\": endpoint %u \"%s\" is not an IPv4 or IPv6 address", shown.text, e, fp_show(ip, ip_len).text);
        goto fail;
      }
      if (port == 0) {
        fp_errorf(err, errlen, "cluster \"%s\": endpoint %u has port 0", shown.text, e);
        goto fail;
      }
      c->nendpoints = e + 1;
    }
  }
  uint32_t nexact;
  if (fp_decode_routes(r, t, &t->exact, &nexact, &arena, "exact", 0, err, errlen) < 0) goto fail;
  if (fp_decode_routes(r, t, &t->wildcard, &t->nwildcard, &arena, "wildcard", 1, err, errlen) < 0) goto fail;
  if (fp_read_i32(r, &t->catch_all) < 0) {
    fp_errorf(err, errlen, "truncated before the catch-all");
    goto fail;
  }
  if (!fp_valid_target(t->catch_all, nclusters) && t->catch_all != FP_NO_ROUTE) {
    fp_errorf(err, errlen, "catch-all target %d is out of range (%u clusters)", (int)t->catch_all, nclusters);
    goto fail;
  }
  if (r->left != 0) {
    fp_errorf(err, errlen, "%zu unexpected bytes after the catch-all", r->left);
    goto fail;
  }
  return t;
fail:
  fp_table_free(t);
  return NULL;
}

/* The cluster a chain target sends `sni` to, when it is fast; else NULL. */
static const fp_cluster *fp_resolve(const fp_table *t, int32_t target, const char *sni, size_t sni_len, uint32_t sni_hash) {
  const fp_cluster *c;
  if (target >= 0) {
    c = &t->clusters[target];
  } else if (target == FP_SNI_CLUSTER) {
    int32_t i;
    if (!fp_map_get(&t->by_name, sni, sni_len, sni_hash, &i)) return NULL;
    c = &t->clusters[i];
  } else {
    return NULL; /* FP_ASK, FP_NO_ROUTE */
  }
  return c->fast ? c : NULL;
}

/*
 * The cluster a server name (lower-cased, as fp_parse_hello returns it) goes to when the engine
 * may route it itself, or NULL when JavaScript must decide (no route, unsupported chain or
 * cluster, unknown cluster, a cluster marked not fast). Any name fp_parse_hello cannot return
 * (empty, longer than 255 bytes, bytes outside 0x21-0x7e, upper case) gives NULL too.
 */
static const fp_cluster *fp_route(const fp_table *t, const char *sni, size_t sni_len) {
  if (t == NULL || sni_len == 0 || sni_len > FP_MAX_SNI) return NULL;
  /* suffix_hash[i] = fp_hash(sni + i, sni_len - i), one backward pass. */
  uint32_t suffix_hash[FP_MAX_SNI + 1];
  uint32_t h = FP_FNV_OFFSET;
  for (size_t i = sni_len; i > 0; i--) {
    uint8_t c = (uint8_t)sni[i - 1];
    if (c < 0x21 || c > 0x7e || (c >= 'A' && c <= 'Z')) return NULL;
    h = fp_hash_step(h, c);
    suffix_hash[i - 1] = h;
  }
  int32_t target;
  if (fp_map_get(&t->exact, sni, sni_len, suffix_hash[0], &target)) return fp_resolve(t, target, sni, sni_len, suffix_hash[0]);
  if (t->nwildcard > 0) {
    /* matchChain: from the first dot, longest suffix first; the `*` stands for at least one label. */
    const char *d = (const char *)memchr(sni, '.', sni_len);
    while (d != NULL) {
      size_t dot = (size_t)(d - sni);
      if (dot == 0 || dot >= sni_len - 1) break;
      if (fp_map_get(&t->wildcard, d, sni_len - dot, suffix_hash[dot], &target)) return fp_resolve(t, target, sni, sni_len, suffix_hash[0]);
      d = (const char *)memchr(d + 1, '.', sni_len - dot - 1);
    }
  }
  return fp_resolve(t, t->catch_all, sni, sni_len, suffix_hash[0]);
}

/* ------------------------------------------------------------------------------------------ */
/* Test-only Node-API exports                                                                    */
/* ------------------------------------------------------------------------------------------ */

/* Bytes of a Buffer or any TypedArray / DataView argument: 0, or -1 with a TypeError thrown. */
static int fp_napi_bytes(napi_env env, napi_value v, const uint8_t **data, size_t *len, const char *what) {
  bool is = false;
  void *p = NULL;
  if (napi_is_buffer(env, v, &is) == napi_ok && is) {
    if (napi_get_buffer_info(env, v, &p, len) != napi_ok) goto bad;
    *data = (const uint8_t *)p;
    return 0;
  }
  if (napi_is_typedarray(env, v, &is) == napi_ok && is) {
    napi_typedarray_type type;
    size_t n, off;
    napi_value ab;
    if (napi_get_typedarray_info(env, v, &type, &n, &p, &ab, &off) != napi_ok) goto bad;
    size_t width = 1;
    switch (type) {
      case napi_int16_array: case napi_uint16_array: width = 2; break;
      case napi_int32_array: case napi_uint32_array: case napi_float32_array: width = 4; break;
      case napi_float64_array: case napi_bigint64_array: case napi_biguint64_array: width = 8; break;
      default: break;
    }
    *data = (const uint8_t *)p;
    *len = n * width;
    return 0;
  }
bad:
  napi_throw_type_error(env, NULL, what);
  return -1;
}

static napi_value fp_napi_kind(napi_env env, const char *kind, const char *sni, size_t sni_len) {
  napi_value obj, v;
  if (napi_create_object(env, &obj) != napi_ok) return NULL;
  if (napi_create_string_utf8(env, kind, NAPI_AUTO_LENGTH, &v) != napi_ok || napi_set_named_property(env, obj, "kind", v) != napi_ok) return NULL;
  if (sni != NULL) {
    if (napi_create_string_latin1(env, sni, sni_len, &v) != napi_ok || napi_set_named_property(env, obj, "sni", v) != napi_ok) return NULL;
  }
  return obj;
}

/* parseHello(buf, maxHello = 16384) -> { kind: 'incomplete' } | { kind: 'hello', sni } | { kind: 'defer' } */
static napi_value fp_napi_parse_hello(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (argc < 1) {
    napi_throw_type_error(env, NULL, "parseHello(buf, maxHello): buf must be a Buffer");
    return NULL;
  }
  const uint8_t *data = NULL;
  size_t len = 0;
  if (fp_napi_bytes(env, argv[0], &data, &len, "parseHello(buf, maxHello): buf must be a Buffer") < 0) return NULL;
  size_t max_hello = FP_MAX_RECORD_FRAGMENT; /* DEFAULT_MAX_CLIENT_HELLO_BYTES */
  if (argc >= 2) {
    napi_valuetype vt;
    if (napi_typeof(env, argv[1], &vt) != napi_ok) return NULL;
    if (vt == napi_number) {
      double d;
      if (napi_get_value_double(env, argv[1], &d) != napi_ok) return NULL;
      /* `total > maxHello` in TS, total an integer: NaN never refuses, a fraction acts as its floor. */
      if (d != d || d >= 18446744073709551615.0) max_hello = SIZE_MAX;
      else if (d <= 0) max_hello = 0;
      else max_hello = (size_t)d;
    } else if (vt != napi_undefined) {
      napi_throw_type_error(env, NULL, "parseHello(buf, maxHello): maxHello must be a number");
      return NULL;
    }
  }
  char sni[FP_MAX_SNI + 1];
  size_t sni_len = 0;
  int rc = fp_parse_hello(data, len, max_hello, sni, &sni_len);
  if (rc == FP_HELLO) return fp_napi_kind(env, "hello", sni, sni_len);
  return fp_napi_kind(env, rc == FP_INCOMPLETE ? "incomplete" : "defer", NULL, 0);
}

/* routeLookup(table, sni) -> cluster name | null; throws Error with the decode message on a bad table. */
static napi_value fp_napi_route_lookup(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  const uint8_t *data = NULL;
  size_t len = 0;
  if (argc < 2) {
    napi_throw_type_error(env, NULL, "routeLookup(table, sni): two arguments expected");
    return NULL;
  }
  if (fp_napi_bytes(env, argv[0], &data, &len, "routeLookup(table, sni): table must be a Buffer") < 0) return NULL;
  size_t sni_len = 0;
  if (napi_get_value_string_utf8(env, argv[1], NULL, 0, &sni_len) != napi_ok) {
    napi_throw_type_error(env, NULL, "routeLookup(table, sni): sni must be a string");
    return NULL;
  }
  char *sni = (char *)malloc(sni_len + 1);
  if (sni == NULL) {
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  napi_get_value_string_utf8(env, argv[1], sni, sni_len + 1, &sni_len);
  char err[256];
  fp_table *t = fp_table_decode(data, len, err, sizeof err);
  napi_value out = NULL;
  if (t == NULL) {
    napi_throw_error(env, NULL, err);
  } else {
    const fp_cluster *c = fp_route(t, sni, sni_len);
    if (c == NULL) napi_get_null(env, &out);
    else napi_create_string_utf8(env, c->name, c->name_len, &out);
  }
  fp_table_free(t);
  free(sni);
  return out;
}

/*
 * Register the test-only exports on `exports`:
 *   parseHello(buf: Buffer, maxHello: number) -> { kind: 'incomplete' } | { kind: 'hello', sni: string } | { kind: 'defer' }
 *   routeLookup(table: Buffer, sni: string) -> cluster name | null (throws Error with the decode message on a bad table)
 */
static void fp_register(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"parseHello", NULL, fp_napi_parse_hello, NULL, NULL, NULL, napi_enumerable, NULL},
      {"routeLookup", NULL, fp_napi_route_lookup, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}

#endif /* MESHFED_FASTPATH_H */
