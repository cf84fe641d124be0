// Switchboard benchmark load generator: a single-threaded epoll WebSocket
// client (RFC 6455 client side, no TLS), cheaper per message than the servers
// it drives. Built by bench/run.sh with the machine's gcc:
//
//   gcc -O2 -o bench/out/loadgen bench/loadgen.c
//
// Modes (one JSON line on stdout at the end; diagnostics on stderr):
//   relay    N receiver sockets connect first, then N senders; sender i sends
//            to receiver i and keeps W messages in flight (a message is done
//            when its receiver got it); or, with --rate, an open loop at R
//            messages/s over all senders. Reports msgs/s and latency.
//   fanout   M member sockets, then 1 publisher keeping W publishes in flight;
//            a publish is done when every member got it. Reports deliveries/s.
//   idle     K sockets, spread over source addresses 127.0.0.1..127.0.0.X,
//            each waits for its first frame; prints {"ready":K} and holds them
//            until stdin closes (or --hold-s passes).
//   connect  open + upgrade + first frame + close, C at a time, for D seconds.
//   setup    N callee sockets (--port) and N callers (--port2); each pair runs
//            WebRTC call setups: the caller sends an offer (--size bytes of
//            payload) and --candidates candidates (--cand-size) at once, the
//            callee answers the offer's arrival with an answer and as many
//            candidates; every frame is acknowledged (--ack-marker). A setup is
//            done when both sides have every ack and every frame of the other;
//            its time runs from the offer sent to that moment. Closed loop (each
//            pair starts its next setup at once) or, with --rate, R setups/s
//            started on idle pairs. Reports setups/s and setup-time percentiles.
//   storm    K sockets on --port (node A) as in idle; prints {"ready":K}. When A
//            drains (draining frame, then close 1012 at its moment), each
//            reconnects to --port2 (node B) with the i-th of --reconnect-tokens,
//            as the client SDK does on 1012; prints one JSON line when all are
//            back (or lost), then holds them until stdin closes (or --hold-s).
//
// The same binary drives every system under test: paths and frames are
// templates. {i} is the connection's index, {tok} the i-th line of a token
// file, {p} the payload. The payload is 16 hex digits of CLOCK_MONOTONIC ns at
// send time, 8 hex digits of a sequence number, then 'x' padding up to --size.
// Receivers find it after --marker (e.g. "payload":") in each text frame, or at
// the start of the frame when the marker is empty.
//
// Every process this tool starts is itself; it stops by itself (setup and hold
// timeouts) and only ever connects to 127.0.0.0/8.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

// ── small helpers ─────────────────────────────────────────────────────────

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *fmt, ...) {
  va_list ap;
  char msg[512];
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  fprintf(stderr, "loadgen: %s\n", msg);
  // One JSON line on stdout too, so the orchestrator can always parse the outcome.
  printf("{\"error\":\"");
  for (const char *p = msg; *p; p++) putchar(*p == '"' || *p == '\\' ? '\'' : *p);
  printf("\"}\n");
  fflush(stdout);
  exit(1);
}

static void *xmalloc(size_t n) {
  void *p = malloc(n);
  if (!p) die("out of memory");
  return p;
}

static void *xrealloc(void *p, size_t n) {
  p = realloc(p, n);
  if (!p) die("out of memory");
  return p;
}

static uint32_t rng_state = 2463534242u;
static uint32_t rng(void) {
  uint32_t x = rng_state;
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  return rng_state = x;
}

static const char HEX[] = "0123456789abcdef";

static void put_hex(char *out, uint64_t v, int digits) {
  for (int i = digits - 1; i >= 0; i--) {
    out[i] = HEX[v & 15];
    v >>= 4;
  }
}

// Parses `digits` hex digits; returns -1 when one is not a hex digit.
static int get_hex(const char *in, int digits, uint64_t *out) {
  uint64_t v = 0;
  for (int i = 0; i < digits; i++) {
    char c = in[i];
    int d;
    if (c >= '0' && c <= '9') d = c - '0';
    else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
    else return -1;
    v = (v << 4) | (uint64_t)d;
  }
  *out = v;
  return 0;
}

static void base64(const unsigned char *in, int n, char *out) {
  static const char T[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  int o = 0;
  for (int i = 0; i < n; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0) | (i + 2 < n ? in[i + 2] : 0);
    out[o++] = T[(v >> 18) & 63];
    out[o++] = T[(v >> 12) & 63];
    out[o++] = i + 1 < n ? T[(v >> 6) & 63] : '=';
    out[o++] = i + 2 < n ? T[v & 63] : '=';
  }
  out[o] = 0;
}

// ── options ───────────────────────────────────────────────────────────────

enum mode { M_RELAY, M_FANOUT, M_IDLE, M_CONNECT, M_SETUP, M_STORM };

static struct {
  enum mode mode;
  char host[64];
  int port, port2;
  int count;  // pairs, members, idle connections
  int window;
  int size;
  double duration, warmup, rate, hold_s, setup_timeout, stall_s;
  int settle_ms;
  const char *recv_path, *send_path;
  const char *send_fmt, *join_fmt, *ready_marker, *marker;
  char **recv_tokens, **send_tokens;
  int n_recv_tokens, n_send_tokens;
  int sources;
  int concurrency;
  int max_inflight;  // open loop: cap per sender
  int index_base;    // idle: {i} of connection k is index_base + k (several idle processes, distinct users)
  // setup mode: the frames' templates (caller: offer and candidate; callee: answer and candidate)
  const char *offer_fmt, *cand_fmt, *answer_fmt, *cand_back_fmt, *ack_marker;
  int candidates, cand_size;
  char **reconnect_tokens;  // storm: the fresh tokens presented to node B
  int n_reconnect_tokens;
  int resume;            // storm: present the welcome's session as &resume= on reconnect
  double storm_timeout;  // storm: seconds from the first draining frame until the clients not back are lost
} opt;

static char **read_lines(const char *file, int *n) {
  FILE *f = fopen(file, "r");
  if (!f) die("cannot open %s: %s", file, strerror(errno));
  char **lines = NULL;
  int cap = 0, cnt = 0;
  char *line = NULL;
  size_t lcap = 0;
  ssize_t len;
  while ((len = getline(&line, &lcap, f)) > 0) {
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
    if (len == 0) continue;
    if (cnt == cap) lines = xrealloc(lines, sizeof(char *) * (size_t)(cap = cap ? cap * 2 : 1024));
    lines[cnt++] = strdup(line);
  }
  free(line);
  fclose(f);
  *n = cnt;
  return lines;
}

// A frame template split once around {p}: a frame is prefix + payload + suffix.
typedef struct tpl {
  char *pre, *suf;
  size_t pre_len, suf_len;
} tpl_t;

// Expands {i} and {tok} (and leaves {p} alone) into a new string.
static char *expand(const char *tpl, int i, char **tokens, int n_tokens) {
  size_t cap = strlen(tpl) + 64, len = 0;
  char *out = xmalloc(cap);
  for (const char *p = tpl; *p;) {
    const char *sub = NULL;
    char num[24];
    size_t skip = 1;
    if (strncmp(p, "{i}", 3) == 0) {
      snprintf(num, sizeof num, "%d", i);
      sub = num;
      skip = 3;
    } else if (strncmp(p, "{tok}", 5) == 0) {
      if (n_tokens == 0) die("template %s needs a token file", tpl);
      sub = tokens[i % n_tokens];
      skip = 5;
    }
    size_t add = sub ? strlen(sub) : 1;
    if (len + add + 1 > cap) out = xrealloc(out, cap = (len + add + 1) * 2);
    if (sub) memcpy(out + len, sub, add);
    else out[len] = *p;
    len += add;
    p += skip;
  }
  out[len] = 0;
  return out;
}

// ── latency histogram: 1 µs buckets up to ~4 s, then one overflow bucket ──

#define HIST_N (1 << 22)
static uint32_t *hist;
static uint64_t hist_count, hist_overflow, hist_max_us;

static void hist_add(uint64_t ns) {
  uint64_t us = ns / 1000;
  if (us > hist_max_us) hist_max_us = us;
  if (us >= HIST_N) hist_overflow++;
  else hist[us]++;
  hist_count++;
}

static void hist_reset(void) {
  memset(hist, 0, sizeof(uint32_t) * HIST_N);
  hist_count = hist_overflow = hist_max_us = 0;
}

static double hist_pct(double q) {
  if (hist_count == 0) return 0;
  uint64_t want = (uint64_t)(q * (double)hist_count);
  if (want >= hist_count) want = hist_count - 1;
  uint64_t seen = 0;
  for (uint64_t i = 0; i < HIST_N; i++) {
    seen += hist[i];
    if (seen > want) return (double)i;
  }
  return (double)hist_max_us;
}

// ── connections ───────────────────────────────────────────────────────────

enum state { S_FREE, S_CONNECTING, S_HANDSHAKE, S_OPEN, S_JOINING, S_READY, S_CLOSED };
enum role { R_RECV, R_SEND, R_MEMBER, R_PUB, R_IDLE, R_CONNECT, R_STORM };

typedef struct conn {
  int fd;
  unsigned gen;  // bumped on every (re)connect: work for an old socket stops when it changes
  enum state state;
  enum role role;
  int idx;
  int retries;
  uint64_t attempt;  // connect mode: which token this attempt uses (fixed when it opens, not when it upgrades)
  char *wbuf;
  size_t wlen, wcap, woff;
  char *rbuf;  // leftover bytes of an incomplete frame or HTTP response
  size_t rlen, rcap;
  int want_out;
  int dirty;
  int inflight;
  uint64_t last_progress;
  tpl_t tpl;  // the send template, with {i} expanded
} conn_t;

// Storm mode's hooks into the shared connection code (see the storm section below).
static const char *storm_path(conn_t *c);
static int storm_port(conn_t *c);
static int storm_frame(conn_t *c, int opcode, const unsigned char *data, size_t len, uint64_t now);
static int storm_back(conn_t *c, uint64_t now);
static int storm_retry(conn_t *c, const char *why);
static void storm_closed(conn_t *c, unsigned code, uint64_t now);

static int ep;
static conn_t **dirty_list;
static int n_dirty, dirty_cap;
static unsigned char *gbuf;
#define GBUF_CAP (1 << 20)

static struct {
  uint64_t msgs, sent, lost, late, skipped, other_frames, errors, failures, connects, publishes;
  int ready, connecting, closed_unexpectedly;
} st;

static int measuring, sending;
static char first_error[256];

static void note_error(const char *what, const unsigned char *data, size_t len) {
  st.errors++;
  if (first_error[0]) return;
  size_t n = len < 160 ? len : 160;
  int o = snprintf(first_error, sizeof first_error, "%s: ", what);
  for (size_t i = 0; i < n && o < (int)sizeof first_error - 1; i++) {
    char c = (char)data[i];
    first_error[o++] = (c == '"' || c == '\\' || c < 32) ? '\'' : c;
  }
  first_error[o] = 0;
}

static void mark_dirty(conn_t *c) {
  if (c->dirty) return;
  c->dirty = 1;
  if (n_dirty == dirty_cap) dirty_list = xrealloc(dirty_list, sizeof(conn_t *) * (size_t)(dirty_cap = dirty_cap ? dirty_cap * 2 : 1024));
  dirty_list[n_dirty++] = c;
}

static void wreserve(conn_t *c, size_t add) {
  if (c->woff > 0 && c->woff == c->wlen) c->woff = c->wlen = 0;
  if (c->wlen + add <= c->wcap) return;
  if (c->woff > 0) {
    memmove(c->wbuf, c->wbuf + c->woff, c->wlen - c->woff);
    c->wlen -= c->woff;
    c->woff = 0;
    if (c->wlen + add <= c->wcap) return;
  }
  c->wcap = (c->wlen + add) * 2;
  c->wbuf = xrealloc(c->wbuf, c->wcap);
}

// Appends a masked client frame whose payload is the concatenation of parts.
static void ws_frame(conn_t *c, int opcode, const char **parts, const size_t *lens, int nparts) {
  size_t len = 0;
  for (int i = 0; i < nparts; i++) len += lens[i];
  wreserve(c, len + 14);
  unsigned char *h = (unsigned char *)c->wbuf + c->wlen;
  size_t hl;
  h[0] = (unsigned char)(0x80 | opcode);
  if (len < 126) {
    h[1] = (unsigned char)(0x80 | len);
    hl = 2;
  } else if (len < 65536) {
    h[1] = 0x80 | 126;
    h[2] = (unsigned char)(len >> 8);
    h[3] = (unsigned char)len;
    hl = 4;
  } else {
    h[1] = 0x80 | 127;
    for (int i = 0; i < 8; i++) h[2 + i] = (unsigned char)(len >> (56 - 8 * i));
    hl = 10;
  }
  uint32_t key = rng();
  unsigned char mk[4];
  memcpy(mk, &key, 4);
  memcpy(h + hl, mk, 4);
  hl += 4;
  unsigned char *p = h + hl;
  size_t o = 0;
  for (int i = 0; i < nparts; i++) {
    memcpy(p + o, parts[i], lens[i]);
    o += lens[i];
  }
  // Mask 8 bytes at a time (the key repeats every 4 bytes), then the tail.
  uint64_t k8 = (uint64_t)key | (uint64_t)key << 32, w;
  size_t i = 0;
  for (; i + 8 <= len; i += 8) {
    memcpy(&w, p + i, 8);
    w ^= k8;
    memcpy(p + i, &w, 8);
  }
  for (; i < len; i++) p[i] ^= mk[i & 3];
  c->wlen += hl + len;
  mark_dirty(c);
}

static void ws_text(conn_t *c, const char *text) {
  size_t len = strlen(text);
  ws_frame(c, 1, &text, &len, 1);
}

static char *padding;  // 'x' * the largest payload size
static uint64_t pub_seq;

// Appends one frame of template t from c whose payload is stamped now with seq and padded to size bytes.
static void send_stamped(conn_t *c, const tpl_t *t, uint64_t seq, int size) {
  char head[24];
  put_hex(head, now_ns(), 16);
  put_hex(head + 16, seq, 8);
  const char *parts[4] = {t->pre, head, padding, t->suf};
  size_t lens[4] = {t->pre_len, 24, (size_t)size - 24, t->suf_len};
  ws_frame(c, 1, parts, lens, 4);
  st.sent++;
}

// Sends one payload message from sender/publisher c, stamped now.
static void send_payload(conn_t *c, uint64_t seq) {
  send_stamped(c, &c->tpl, seq, opt.size);
  c->inflight++;
}

// Splits fmt around {p} and expands {i} = i in both halves.
static tpl_t split_template(const char *fmt, int i) {
  const char *pp = strstr(fmt, "{p}");
  if (!pp) die("the frame template %s needs {p}", fmt);
  char *pre = strndup(fmt, (size_t)(pp - fmt));
  tpl_t t = {.pre = expand(pre, i, NULL, 0), .suf = expand(pp + 3, i, NULL, 0)};
  free(pre);
  t.pre_len = strlen(t.pre);
  t.suf_len = strlen(t.suf);
  return t;
}

static void ep_mod(conn_t *c, int out) {
  struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0), .data.ptr = c};
  if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) < 0) die("epoll_ctl: %s", strerror(errno));
  c->want_out = out;
}

static void conn_close(conn_t *c, int rst) {
  if (c->fd >= 0) {
    if (rst) {
      struct linger l = {1, 0};
      setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    }
    close(c->fd);  // also leaves the epoll set
    c->fd = -1;
  }
  c->state = S_CLOSED;
  c->wlen = c->woff = c->rlen = 0;
}

static void conn_failed(conn_t *c, const char *why);

// A ready connection closed under us (EOF, reset): counted, or in storm mode the signal to reconnect.
static void ready_conn_lost(conn_t *c) {
  if (c->role == R_STORM) {
    storm_closed(c, 0, now_ns());
    return;
  }
  st.closed_unexpectedly++;
  conn_close(c, 0);
}

static void flush(conn_t *c) {
  c->dirty = 0;
  if (c->fd < 0 || c->state == S_CONNECTING) return;
  while (c->woff < c->wlen) {
    ssize_t n = send(c->fd, c->wbuf + c->woff, c->wlen - c->woff, MSG_NOSIGNAL);
    if (n > 0) {
      c->woff += (size_t)n;
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (!c->want_out) ep_mod(c, 1);
      return;
    }
    if (n < 0 && errno == EINTR) continue;
    if (c->state != S_READY) {
      conn_failed(c, strerror(errno));
      return;
    }
    ready_conn_lost(c);
    return;
  }
  c->woff = c->wlen = 0;
  if (c->want_out) ep_mod(c, 0);
}

static unsigned src_counter;

// Starts a non-blocking connect; the request goes out when the socket is writable.
static void conn_start(conn_t *c, int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) die("socket: %s (raise ulimit -n?)", strerror(errno));
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (opt.sources > 1) {
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    struct sockaddr_in src = {.sin_family = AF_INET, .sin_port = 0};
    src.sin_addr.s_addr = htonl(0x7f000001u + (src_counter++ % (unsigned)opt.sources));
    if (bind(fd, (struct sockaddr *)&src, sizeof src) < 0) die("bind 127.0.0.x: %s", strerror(errno));
  }
  struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  inet_pton(AF_INET, opt.host, &dst.sin_addr);
  int r = connect(fd, (struct sockaddr *)&dst, sizeof dst);
  if (r < 0 && errno != EINPROGRESS) die("connect: %s", strerror(errno));
  c->fd = fd;
  c->gen++;
  c->state = S_CONNECTING;
  c->rlen = c->wlen = c->woff = 0;
  c->dirty = 0;
  struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
  c->want_out = 1;
  if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) die("epoll_ctl add: %s", strerror(errno));
  st.connecting++;
}

static void send_upgrade(conn_t *c, const char *path, int port) {
  unsigned char key[16];
  for (int i = 0; i < 16; i += 4) {
    uint32_t r = rng();
    memcpy(key + i, &r, 4);
  }
  char key64[32];
  base64(key, 16, key64);
  char head[512];
  int n = snprintf(head, sizeof head,
                   " HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n",
                   opt.host, port, key64);
  size_t plen = strlen(path);
  wreserve(c, plen + (size_t)n + 8);
  memcpy(c->wbuf + c->wlen, "GET ", 4);
  memcpy(c->wbuf + c->wlen + 4, path, plen);
  memcpy(c->wbuf + c->wlen + 4 + plen, head, (size_t)n);
  c->wlen += 4 + plen + (size_t)n;
  c->state = S_HANDSHAKE;
  flush(c);
}

// ── the modes' connection sets ────────────────────────────────────────────

static conn_t *recv_conns, *send_conns;  // relay: receivers/senders; fanout: members/publisher; idle/connect: recv_conns
static int n_recv, n_send;
static int open_next;     // next connection index to open in the current set
static int opening_send;  // 0: opening recv_conns, 1: opening send_conns
static uint64_t conn_attempts;

static const char *path_of(conn_t *c) {
  // Paths are expanded on demand (connect mode cycles through tokens).
  static char *last;
  if (c->role == R_STORM) return storm_path(c);
  free(last);
  if (c->role == R_SEND || c->role == R_PUB) last = expand(opt.send_path, c->idx, opt.send_tokens, opt.n_send_tokens);
  else {
    int i = c->role == R_CONNECT ? (int)(c->attempt % 1000000007u) : c->role == R_IDLE ? opt.index_base + c->idx : c->idx;
    last = expand(opt.recv_path, i, opt.recv_tokens, opt.n_recv_tokens);
  }
  return last;
}

static int port_of(conn_t *c) {
  if (c->role == R_STORM) return storm_port(c);
  return (c->role == R_SEND || c->role == R_PUB) ? opt.port2 : opt.port;
}

static void on_ready(conn_t *c);
static void on_payload(conn_t *c, const unsigned char *data, size_t len, uint64_t now);

static void on_frame(conn_t *c, int opcode, const unsigned char *data, size_t len, uint64_t now) {
  if (opcode == 9) {  // ping → pong with the same data
    const char *p = (const char *)data;
    ws_frame(c, 10, &p, &len, 1);
    return;
  }
  if (opcode == 10) return;
  if (c->role == R_STORM && storm_frame(c, opcode, data, len, now)) return;
  if (opcode == 8) {
    if (c->state != S_READY || c->role == R_CONNECT) {
      char why[64];
      unsigned code = len >= 2 ? (unsigned)data[0] << 8 | data[1] : 0;
      snprintf(why, sizeof why, "closed by the server with %u", code);
      note_error(why, len > 2 ? data + 2 : data, len > 2 ? len - 2 : 0);
      conn_failed(c, why);
    } else {
      note_error("closed by the server", data, len);
      st.closed_unexpectedly++;
      conn_close(c, 0);
    }
    return;
  }
  switch (c->state) {
    case S_OPEN:
      if (opt.join_fmt && c->role != R_IDLE && c->role != R_CONNECT && (opt.mode == M_FANOUT)) {
        ws_text(c, opt.join_fmt);
        c->state = S_JOINING;
        return;
      }
      if (opt.ready_marker && !memmem(data, len, opt.ready_marker, strlen(opt.ready_marker))) return;
      on_ready(c);
      return;
    case S_JOINING:
      if (opt.ready_marker && !memmem(data, len, opt.ready_marker, strlen(opt.ready_marker))) {
        if (memmem(data, len, "\"error\"", 7)) note_error("join", data, len);
        return;
      }
      on_ready(c);
      return;
    case S_READY:
      on_payload(c, data, len, now);
      return;
    default:
      return;
  }
}

// Parses complete frames from buf; returns bytes consumed. Stops early when c closes.
static size_t parse_frames(conn_t *c, unsigned char *buf, size_t len, uint64_t now) {
  size_t at = 0;
  unsigned gen = c->gen;
  while (len - at >= 2 && c->fd >= 0 && c->gen == gen) {
    unsigned char *p = buf + at;
    size_t avail = len - at;
    int opcode = p[0] & 15;
    int masked = p[1] & 0x80;
    uint64_t plen = p[1] & 0x7f;
    size_t hl = 2;
    if (plen == 126) {
      if (avail < 4) break;
      plen = (uint64_t)p[2] << 8 | p[3];
      hl = 4;
    } else if (plen == 127) {
      if (avail < 10) break;
      plen = 0;
      for (int i = 0; i < 8; i++) plen = plen << 8 | p[2 + i];
      hl = 10;
    }
    if (masked) hl += 4;
    if (avail < hl + plen) break;
    if (masked)
      for (uint64_t i = 0; i < plen; i++) p[hl + i] ^= p[hl - 4 + (i & 3)];
    on_frame(c, opcode, p + hl, (size_t)plen, now);
    at += hl + (size_t)plen;
  }
  return at;
}

static void on_handshake_data(conn_t *c, unsigned char *buf, size_t len, uint64_t now, size_t *consumed) {
  unsigned char *end = memmem(buf, len, "\r\n\r\n", 4);
  *consumed = 0;
  if (!end) {
    *consumed = 0;
    if (len > 8192) conn_failed(c, "HTTP response too long");
    return;
  }
  if (len < 12 || memcmp(buf, "HTTP/1.1 101", 12) != 0) {
    note_error("upgrade refused", buf, (size_t)(end - buf));
    conn_failed(c, "upgrade refused");
    return;
  }
  c->state = S_OPEN;
  size_t head = (size_t)(end - buf) + 4;
  *consumed = head + parse_frames(c, buf + head, len - head, now);
}

static void on_readable(conn_t *c) {
  unsigned gen = c->gen;
  for (;;) {
    // Leftover bytes first, then fresh data, in one contiguous buffer.
    size_t left = c->rlen;
    if (left) memcpy(gbuf, c->rbuf, left);
    ssize_t n = recv(c->fd, gbuf + left, GBUF_CAP - left, 0);
    if (n == 0) {
      if (c->state != S_READY || c->role == R_CONNECT) conn_failed(c, "closed by the server before it was ready");
      else ready_conn_lost(c);
      return;
    }
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      if (errno == EINTR) continue;
      if (c->state != S_READY || c->role == R_CONNECT) conn_failed(c, strerror(errno));
      else ready_conn_lost(c);
      return;
    }
    uint64_t now = now_ns();
    size_t total = left + (size_t)n, used;
    if (c->state == S_HANDSHAKE) on_handshake_data(c, gbuf, total, now, &used);
    else used = parse_frames(c, gbuf, total, now);
    if (c->fd < 0 || c->gen != gen) return;
    size_t rest = total - used;
    if (rest > c->rcap) c->rbuf = xrealloc(c->rbuf, c->rcap = rest * 2);
    if (rest) memmove(c->rbuf, gbuf + used, rest);
    c->rlen = rest;
    if ((size_t)n < GBUF_CAP - left) return;  // drained (level-triggered: epoll says when there is more)
  }
}

static void on_connected(conn_t *c) {
  int err = 0;
  socklen_t l = sizeof err;
  getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
  if (err) {
    conn_failed(c, strerror(err));
    return;
  }
  ep_mod(c, 0);
  send_upgrade(c, path_of(c), port_of(c));
}

// ── mode logic ────────────────────────────────────────────────────────────

enum phase { P_CONNECT, P_SETTLE, P_WARM, P_MEASURE, P_HOLD, P_DONE };
static enum phase phase;
static uint64_t t_phase, t_setup_start, t_run_start, t_measure_start, t_measure_end, last_stall_check;
static int stdin_open = 1;

static void open_more(void);

static void conn_failed(conn_t *c, const char *why) {
  int was_connecting = c->state != S_READY;
  conn_close(c, c->role == R_CONNECT);
  if (was_connecting && st.connecting > 0) st.connecting--;
  if (c->role == R_STORM && storm_retry(c, why)) return;
  st.failures++;
  if (c->role == R_CONNECT) {
    open_more();
    return;
  }
  if (c->retries++ >= 3) die("connection %d failed 4 times: %s%s%s", c->idx, why, first_error[0] ? " — " : "", first_error);
  conn_start(c, port_of(c));
}

static void fill_window(conn_t *c) {
  while (c->inflight < opt.window) {
    if (opt.mode == M_FANOUT) send_payload(c, pub_seq++);
    else send_payload(c, 0);
  }
  c->last_progress = now_ns();
}

#define RING (1 << 16)
static uint32_t *ring;

// Finds the stamp (16 hex ns + 8 hex seq) after --marker (or at the start); 0 when found.
static int find_stamp(const unsigned char *data, size_t len, uint64_t *ts, uint64_t *seq) {
  const unsigned char *p = data;
  size_t ml = opt.marker ? strlen(opt.marker) : 0;
  if (ml) {
    p = memmem(data, len, opt.marker, ml);
    if (!p) return -1;
    p += ml;
  }
  if ((size_t)(data + len - p) < 24 || get_hex((const char *)p, 16, ts) || get_hex((const char *)p + 16, 8, seq)) return -1;
  return 0;
}

// ── setup mode: one call setup per pair at a time ──

typedef struct call {
  uint64_t t0;    // when the offer went out; 0 while the pair is idle
  uint32_t seq;   // this pair's setup number, carried in every payload: frames of an abandoned setup are not counted
  int caller_acks, callee_acks, caller_got, callee_got;
  int dead;       // a setup that stalled retires its pair (acks carry no setup number to tell them apart)
} call_t;

static call_t *calls;
static tpl_t *setup_tpls;  // per pair: [0] offer, [1] caller's candidate, [2] answer, [3] callee's candidate
static uint64_t setups, setups_failed;

static void start_call(int i, uint64_t now) {
  call_t *k = &calls[i];
  conn_t *caller = &send_conns[i];
  if (k->dead || k->t0 || caller->fd < 0) return;
  *k = (call_t){.t0 = now, .seq = k->seq + 1};
  send_stamped(caller, &setup_tpls[4 * i], k->seq, opt.size);
  for (int n = 0; n < opt.candidates; n++) send_stamped(caller, &setup_tpls[4 * i + 1], k->seq, opt.cand_size);
}

static void on_setup_frame(conn_t *c, const unsigned char *data, size_t len, uint64_t now) {
  int i = c->idx, is_caller = c->role == R_SEND;
  call_t *k = &calls[i];
  if (memmem(data, len, opt.ack_marker, strlen(opt.ack_marker))) {
    if (!k->t0) {
      st.late++;
      return;
    }
    if (is_caller) k->caller_acks++;
    else k->callee_acks++;
  } else if (memmem(data, len, "\"error\"", 7)) {
    note_error("setup", data, len);
    return;
  } else {
    uint64_t ts, seq;
    if (find_stamp(data, len, &ts, &seq)) {
      st.other_frames++;
      return;
    }
    if (!k->t0 || seq != k->seq) {
      st.late++;
      return;
    }
    if (measuring) st.msgs++;
    if (is_caller) k->caller_got++;
    else if (++k->callee_got == 1) {  // the offer arrived (order is kept per pair): answer it, then trickle candidates
      send_stamped(c, &setup_tpls[4 * i + 2], k->seq, opt.size);
      for (int n = 0; n < opt.candidates; n++) send_stamped(c, &setup_tpls[4 * i + 3], k->seq, opt.cand_size);
    }
  }
  int per_side = 1 + opt.candidates;
  if (k->caller_acks < per_side || k->callee_acks < per_side || k->caller_got < per_side || k->callee_got < per_side) return;
  if (measuring) {
    setups++;
    hist_add(now - k->t0);
  }
  k->t0 = 0;
  if (sending && opt.rate <= 0) start_call(i, now);
}

static void on_payload(conn_t *c, const unsigned char *data, size_t len, uint64_t now) {
  if (opt.mode == M_SETUP) {
    on_setup_frame(c, data, len, now);
    return;
  }
  if (c->role == R_SEND || c->role == R_PUB) {
    st.other_frames++;
    if (memmem(data, len, "\"error\"", 7)) note_error("sender got", data, len);
    return;
  }
  uint64_t ts, seq;
  if (find_stamp(data, len, &ts, &seq)) {
    st.other_frames++;
    return;
  }
  if (c->role == R_IDLE) return;
  if (measuring) {
    st.msgs++;
    hist_add(now > ts ? now - ts : 0);
  }
  if (opt.mode == M_RELAY) {
    conn_t *s = &send_conns[c->idx];
    if (s->inflight > 0) s->inflight--;
    else st.late++;
    s->last_progress = now;
    if (sending && opt.rate == 0 && s->fd >= 0) send_payload(s, 0);
  } else if (opt.mode == M_FANOUT) {
    uint32_t *slot = &ring[seq & (RING - 1)];
    if (++*slot == (uint32_t)n_recv) {
      conn_t *pub = &send_conns[0];
      if (measuring) st.publishes++;
      if (pub->inflight > 0) pub->inflight--;
      else st.late++;
      pub->last_progress = now;
      if (sending && pub->fd >= 0) {
        ring[pub_seq & (RING - 1)] = 0;
        send_payload(pub, pub_seq++);
      }
    }
  }
}

static void on_ready(conn_t *c) {
  c->state = S_READY;
  if (st.connecting > 0) st.connecting--;
  if (c->role == R_STORM && storm_back(c, now_ns())) return;
  if (c->role == R_CONNECT) {
    if (measuring) st.connects++;
    conn_close(c, 1);
    open_more();
    return;
  }
  st.ready++;
  open_more();
}

static int phase_target(void) { return opening_send ? n_send : n_recv; }

static void open_more(void) {
  if (opt.mode == M_CONNECT) {
    if (phase == P_DONE) return;
    while (st.connecting < opt.concurrency) {
      conn_t *c = NULL;
      for (int i = 0; i < n_recv; i++)
        if (recv_conns[(open_next + i) % n_recv].state != S_CONNECTING && recv_conns[(open_next + i) % n_recv].state != S_HANDSHAKE &&
            recv_conns[(open_next + i) % n_recv].state != S_OPEN) {
          c = &recv_conns[(open_next + i) % n_recv];
          open_next = (open_next + i + 1) % n_recv;
          break;
        }
      if (!c) return;
      // Each attempt presents a token of its own: running out would let a token cache help, so it is an error.
      if (opt.n_recv_tokens > 0 && conn_attempts >= (uint64_t)opt.n_recv_tokens) die("connect: all %d tokens used; give more", opt.n_recv_tokens);
      c->attempt = conn_attempts++;
      conn_start(c, port_of(c));
    }
    return;
  }
  conn_t *set = opening_send ? send_conns : recv_conns;
  while (st.connecting < opt.concurrency && open_next < phase_target()) conn_start(&set[open_next++], port_of(&set[0]));
}

static void start_sending(uint64_t now) {
  sending = 1;
  t_run_start = now;
  if (opt.rate > 0) return;
  if (opt.mode == M_SETUP)
    for (int i = 0; i < n_send; i++) start_call(i, now);
  else if (opt.mode == M_RELAY)
    for (int i = 0; i < n_send; i++) fill_window(&send_conns[i]);
  else {
    conn_t *pub = &send_conns[0];
    while (pub->inflight < opt.window) {
      ring[pub_seq & (RING - 1)] = 0;
      send_payload(pub, pub_seq++);
    }
    pub->last_progress = now;
  }
}

static uint64_t rate_sent, rr;

// Open loop in setup mode: a setup is due every 1/rate s, started on the next idle pair (skipped when none is).
static void pace_setups(uint64_t now) {
  uint64_t due = (uint64_t)(opt.rate * (double)(now - t_run_start) / 1e9);
  while (rate_sent < due) {
    rate_sent++;
    int started = 0;
    for (int tried = 0; tried < n_send && !started; tried++) {
      int i = (int)(rr++ % (uint64_t)n_send);
      if (calls[i].dead || calls[i].t0 || send_conns[i].fd < 0) continue;
      start_call(i, now);
      started = 1;
    }
    if (!started) st.skipped++;
  }
}

static void pace(uint64_t now) {
  if (opt.mode == M_SETUP) {
    pace_setups(now);
    return;
  }
  uint64_t due = (uint64_t)(opt.rate * (double)(now - t_run_start) / 1e9);
  while (rate_sent < due) {
    int tried = 0;
    conn_t *s = NULL;
    while (tried < n_send) {
      conn_t *cand = &send_conns[rr++ % (uint64_t)n_send];
      tried++;
      if (cand->fd >= 0 && cand->inflight < opt.max_inflight) {
        s = cand;
        break;
      }
    }
    rate_sent++;
    if (!s) {
      st.skipped++;
      continue;
    }
    send_payload(s, 0);
  }
}

// A sender that heard nothing for stall_s has lost its window (a message sent before the
// recipient's node subscribed, a dropped socket): count it lost and refill.
static void check_stalls(uint64_t now) {
  if (now - last_stall_check < 200000000ull) return;
  last_stall_check = now;
  uint64_t limit = (uint64_t)(opt.stall_s * 1e9);
  if (opt.mode == M_SETUP) {
    for (int i = 0; i < n_send; i++)
      if (calls[i].t0 && calls[i].t0 + limit < now) {
        setups_failed++;
        calls[i].t0 = 0;
        calls[i].dead = 1;
      }
    return;
  }
  for (int i = 0; i < n_send; i++) {
    conn_t *s = &send_conns[i];
    if (s->fd < 0 || s->inflight == 0 || s->last_progress + limit > now) continue;
    st.lost += (uint64_t)s->inflight;
    s->inflight = 0;
    if (opt.rate > 0) continue;
    if (opt.mode == M_FANOUT) {
      while (s->inflight < opt.window) {
        ring[pub_seq & (RING - 1)] = 0;
        send_payload(s, pub_seq++);
      }
      s->last_progress = now;
    } else fill_window(s);
  }
}

static double cpu_seconds(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}
static double cpu_at_measure;

// ── storm mode: a node drains, its clients reconnect to another ───────────
//
// K clients connect to --port (node A) with --recv-tokens, each ready on its
// first frame (or --ready-marker), as in idle mode. When A drains (SIGTERM,
// SPEC §6.3), every client gets {"type":"draining","reconnect_after_ms":N} at
// once and, N ms later, a close 1012. A closed client reconnects to --port2
// (node B) as the client SDK does on 1012 (src/client/close-policy.ts 'drain',
// client.ts delayFor): it waits until the draining frame's moment has passed,
// max(0, drain_at - now), plus a jitter uniform in [0, 250 ms) (the SDK's
// backoff initialMs 500 × jitter 0.5 × random), and with --resume presents the
// welcome's session as &resume= (the SDK resumes after 1012). A close without
// 1012 (EOF, another code) waits the SDK's first backoff delay instead. Unlike
// the SDK, which keeps a token that is still fresh, the reconnect presents the
// i-th line of --reconnect-tokens: a new JWT of the same user, as a client
// whose token provider is asked again (Switchboard caches no verification, so
// B pays for each). Reconnects are not limited by --concurrency: real clients
// do not take turns. A reconnect that fails (refused, closed before its
// welcome) is retried after the SDK's backoff (500 ms × 2^n, jittered down to
// half) at most STORM_RETRIES times; a client not back then, or not back
// within --storm-timeout of the first draining frame, is lost.
//
// The storm's clock starts at the first draining frame (or the first close,
// for a drain without one) and stops at the last welcome from B.

#define STORM_RETRIES 5
#define SDK_JITTER_NS 250000000ull   // initialMs 500 × jitter 0.5
#define SDK_BACKOFF_NS 500000000ull  // initialMs, doubled per failed attempt

typedef struct {
  uint64_t drain_at;    // when the draining frame said this client would be closed
  uint64_t due;         // when its pending reconnect starts
  uint64_t attempt_at;  // when its current attempt on B started (connect → welcome is its latency)
  int attempts;         // failed attempts on B
  char on_b, back, lost, resumed;
  char session[64];  // the welcome's session on A, URL-encoded
} storm_client;

static storm_client *storm_clients;
static int *storm_heap, storm_heap_n;  // pending reconnects, a binary min-heap on due
static struct {
  uint64_t t0, last_close, first_reconnect, last_back, done_at;
  uint64_t failures;
  int draining_frames, closed_1012, closed_other, back, lost, resumed, dropped_after_back, done;
  double cpu_at_t0;
} storm;

static void storm_init(void) {
  storm_clients = calloc((size_t)n_recv, sizeof(storm_client));
  storm_heap = calloc((size_t)n_recv, sizeof(int));
  if (!storm_clients || !storm_heap) die("out of memory");
  if (opt.n_reconnect_tokens == 0) die("storm mode needs --reconnect-tokens");
}

static uint64_t due_of(int k) { return storm_clients[storm_heap[k]].due; }

static void heap_swap(int a, int b) {
  int t = storm_heap[a];
  storm_heap[a] = storm_heap[b];
  storm_heap[b] = t;
}

static void storm_schedule(conn_t *c, uint64_t due) {
  storm_clients[c->idx].due = due;
  int k = storm_heap_n++;
  storm_heap[k] = c->idx;
  for (; k > 0 && due_of((k - 1) / 2) > due_of(k); k = (k - 1) / 2) heap_swap(k, (k - 1) / 2);
}

static int storm_pop(void) {
  int top = storm_heap[0];
  storm_heap[0] = storm_heap[--storm_heap_n];
  for (int k = 0;;) {
    int l = 2 * k + 1, r = l + 1, m = k;
    if (l < storm_heap_n && due_of(l) < due_of(m)) m = l;
    if (r < storm_heap_n && due_of(r) < due_of(m)) m = r;
    if (m == k) break;
    heap_swap(k, m);
    k = m;
  }
  return top;
}

static const char *storm_path(conn_t *c) {
  static char *last;
  storm_client *s = &storm_clients[c->idx];
  free(last);
  if (!s->on_b) return last = expand(opt.recv_path, c->idx, opt.recv_tokens, opt.n_recv_tokens);
  char *path = expand(opt.recv_path, c->idx, opt.reconnect_tokens, opt.n_reconnect_tokens);
  if (!opt.resume || !s->session[0]) return last = path;
  last = xmalloc(strlen(path) + sizeof s->session + 16);
  sprintf(last, "%s%sresume=%s", path, strchr(path, '?') ? "&" : "?", s->session);
  free(path);
  return last;
}

static int storm_port(conn_t *c) { return storm_clients[c->idx].on_b ? opt.port2 : opt.port; }

// Copies the JSON string after `key` in data into out, percent-encoding what a query may not hold.
static void json_string_after(const unsigned char *data, size_t len, const char *key, char *out, size_t cap) {
  size_t kl = strlen(key), o = 0;
  const unsigned char *p = memmem(data, len, key, kl);
  out[0] = 0;
  if (!p) return;
  for (p += kl; p < data + len && *p != '"' && o + 4 < cap; p++) {
    if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == '.' || *p == '~')
      out[o++] = (char)*p;
    else o += (size_t)snprintf(out + o, cap - o, "%%%02X", *p);
  }
  out[o] = 0;
}

static uint64_t storm_backoff_ns(int attempt) {
  uint64_t base = SDK_BACKOFF_NS << attempt;
  return base - (uint64_t)((double)(base / 2) * ((double)rng() / 4294967296.0));
}

static int storm_frame(conn_t *c, int opcode, const unsigned char *data, size_t len, uint64_t now) {
  storm_client *s = &storm_clients[c->idx];
  if (c->state == S_OPEN) {  // the welcome, about to make the client ready: keep its session for --resume
    if (opcode == 1 && !s->on_b) json_string_after(data, len, "\"session\":\"", s->session, sizeof s->session);
    if (opcode == 1 && s->on_b) s->resumed = memmem(data, len, "\"resumed\":true", 14) != NULL;
    return 0;
  }
  if (c->state != S_READY) return 0;
  if (opcode == 8) {
    storm_closed(c, len >= 2 ? (unsigned)data[0] << 8 | data[1] : 0, now);
    return 1;
  }
  const char *key = "\"reconnect_after_ms\":";
  const unsigned char *p = memmem(data, len, key, strlen(key));
  if (opcode == 1 && !s->on_b && p && memmem(data, len, "\"type\":\"draining\"", 17)) {
    uint64_t ms = 0;
    for (p += strlen(key); p < data + len && *p >= '0' && *p <= '9'; p++) ms = ms * 10 + (uint64_t)(*p - '0');
    s->drain_at = now + ms * 1000000ull;
    storm.draining_frames++;
    if (!storm.t0) storm.t0 = now, storm.cpu_at_t0 = cpu_seconds();
  }
  return 1;  // nothing else a storm client receives matters
}

static void storm_closed(conn_t *c, unsigned code, uint64_t now) {
  storm_client *s = &storm_clients[c->idx];
  conn_close(c, 0);
  if (s->on_b) {  // back, then closed again: reported, not reconnected
    storm.dropped_after_back++;
    return;
  }
  if (!storm.t0) storm.t0 = now, storm.cpu_at_t0 = cpu_seconds();
  storm.last_close = now;
  s->on_b = 1;
  uint64_t wait;
  if (code == 1012) {
    storm.closed_1012++;
    wait = (s->drain_at > now ? s->drain_at - now : 0) + (uint64_t)((double)SDK_JITTER_NS * ((double)rng() / 4294967296.0));
  } else {
    storm.closed_other++;
    wait = storm_backoff_ns(0);
  }
  storm_schedule(c, now + wait);
}

// conn_failed's hook: 0 while the client is still being set up on A (the generic retry applies).
static int storm_retry(conn_t *c, const char *why) {
  storm_client *s = &storm_clients[c->idx];
  if (!s->on_b) return 0;
  storm.failures++;
  note_error("reconnect failed", (const unsigned char *)why, strlen(why));
  if (s->attempts >= STORM_RETRIES) {
    s->lost = 1;
    storm.lost++;
    return 1;
  }
  storm_schedule(c, now_ns() + storm_backoff_ns(s->attempts++));
  return 1;
}

// on_ready's hook: 0 for a client ready on A (the generic count), 1 for one back on B.
static int storm_back(conn_t *c, uint64_t now) {
  storm_client *s = &storm_clients[c->idx];
  if (!s->on_b) return 0;
  s->back = 1;
  storm.back++;
  storm.resumed += s->resumed;
  storm.last_back = now;
  // In ms buckets (ns / 10^3 as if µs): a reconnect in a storm can take seconds, past the µs histogram's 1 s.
  hist_add((now - s->attempt_at) / 1000);
  return 1;
}

static void storm_result(uint64_t now) {
  for (int i = 0; i < n_recv; i++)
    if (!storm_clients[i].back && !storm_clients[i].lost) {
      storm_clients[i].lost = 1;
      storm.lost++;
    }
  storm.done = 1;
  storm.done_at = now;
  double back_ms = storm.back ? (double)(storm.last_back - storm.t0) / 1e6 : 0;
  double span_s = storm.back ? (double)(storm.last_back - storm.first_reconnect) / 1e9 : 0;
  printf("{\"mode\":\"storm\",\"clients\":%d,\"back\":%d,\"lost\":%d,\"failures\":%llu,\"resumed\":%d,\"draining_frames\":%d,"
         "\"closed_1012\":%d,\"closed_other\":%d,\"dropped_after_back\":%d,\"back_ms\":%.1f,\"closes_ms\":%.1f,"
         "\"first_reconnect_ms\":%.1f,\"connects_per_s\":%.1f,\"connect_p50_ms\":%.2f,\"connect_p99_ms\":%.2f,"
         "\"connect_max_ms\":%.2f,\"loadgen_cpu\":%.3f,\"first_error\":\"%s\"}\n",
         n_recv, storm.back, storm.lost, (unsigned long long)storm.failures, storm.resumed, storm.draining_frames, storm.closed_1012,
         storm.closed_other, storm.dropped_after_back, back_ms, storm.last_close ? (double)(storm.last_close - storm.t0) / 1e6 : 0,
         storm.first_reconnect ? (double)(storm.first_reconnect - storm.t0) / 1e6 : 0, span_s > 0 ? storm.back / span_s : 0,
         hist_pct(0.5), hist_pct(0.99), (double)hist_max_us,
         (cpu_seconds() - storm.cpu_at_t0) / ((double)(now - storm.t0) / 1e9), first_error);
  fflush(stdout);
}

// P_HOLD in storm mode: wait for the drain, start the reconnects that are due, report, then hold.
// Stdin closing ends it in any phase (before the result: the orchestrator gave up on the run).
static void storm_tick(uint64_t now) {
  now = now_ns();  // later than the times stamped while this turn's events were read (unsigned differences below)
  if (!stdin_open) {
    phase = P_DONE;
    return;
  }
  if (storm.done) {
    if ((double)(now - storm.done_at) / 1e9 >= opt.hold_s) phase = P_DONE;
    return;
  }
  if (!storm.t0) {
    if ((double)(now - t_phase) / 1e9 >= opt.hold_s) die("node A did not drain within --hold-s %.0f s", opt.hold_s);
    return;
  }
  while (storm_heap_n > 0 && due_of(0) <= now) {
    conn_t *c = &recv_conns[storm_pop()];
    storm_clients[c->idx].attempt_at = now;
    if (!storm.first_reconnect) storm.first_reconnect = now;
    conn_start(c, opt.port2);
  }
  if (storm.back + storm.lost >= n_recv || (double)(now - storm.t0) / 1e9 >= opt.storm_timeout) storm_result(now);
}

// The epoll timeout: the default, or less when a reconnect falls due sooner.
static int storm_wait_ms(int dflt) {
  if (opt.mode != M_STORM || storm_heap_n == 0) return dflt;
  uint64_t now = now_ns(), due = due_of(0);
  if (due <= now) return 0;
  uint64_t ms = (due - now + 999999) / 1000000;
  return ms < (uint64_t)dflt ? (int)ms : dflt;
}

static void tick(uint64_t now) {
  double since_phase = (double)(now - t_phase) / 1e9;
  switch (phase) {
    case P_CONNECT:
      if ((double)(now - t_setup_start) / 1e9 > opt.setup_timeout)
        die("setup timed out: %d of %d connections ready, %d connecting, %llu failures%s%s", st.ready, n_recv + n_send, st.connecting,
            (unsigned long long)st.failures, first_error[0] ? " — " : "", first_error);
      if (opt.mode == M_CONNECT) return;
      if (!opening_send && st.ready >= n_recv) {
        if (opt.mode == M_IDLE || opt.mode == M_STORM) {
          phase = P_HOLD;
          t_phase = now;
          printf("{\"ready\":%d,\"setup_s\":%.3f,\"failures\":%llu}\n", st.ready, (double)(now - t_setup_start) / 1e9,
                 (unsigned long long)st.failures);
          fflush(stdout);
          return;
        }
        opening_send = 1;
        open_next = 0;
        open_more();
      }
      if (opening_send && st.ready >= n_recv + n_send) {
        phase = P_SETTLE;
        t_phase = now;
      }
      return;
    case P_SETTLE:
      if (since_phase * 1000 >= opt.settle_ms) {
        phase = P_WARM;
        t_phase = now;
        start_sending(now);
      }
      return;
    case P_WARM:
      if (opt.rate > 0) pace(now);
      if (opt.rate <= 0 || opt.mode == M_SETUP) check_stalls(now);
      if (since_phase >= opt.warmup) {
        phase = P_MEASURE;
        t_phase = t_measure_start = now;
        st.msgs = st.sent = st.lost = st.late = st.skipped = st.other_frames = st.errors = st.publishes = 0;
        setups = 0;  // setups_failed counts the whole run: a stalled setup is a failure whenever it happens
        hist_reset();
        measuring = 1;
        cpu_at_measure = cpu_seconds();
        printf("{\"phase\":\"measure\"}\n");  // the orchestrator samples the servers' CPU time now and at the result
        fflush(stdout);
      }
      return;
    case P_MEASURE:
      if (opt.rate > 0) pace(now);
      if (opt.rate <= 0 || opt.mode == M_SETUP) check_stalls(now);
      if (since_phase >= opt.duration) {
        measuring = 0;
        sending = 0;
        t_measure_end = now;
        phase = P_DONE;
      }
      return;
    case P_HOLD:
      if (opt.mode == M_STORM) {
        storm_tick(now);
        return;
      }
      if (!stdin_open || since_phase >= opt.hold_s) phase = P_DONE;
      return;
    case P_DONE:
      return;
  }
}

static void usage(void) {
  fprintf(stderr,
          "usage: loadgen --mode relay|fanout|idle|connect|setup|storm --port P [--port2 P2] [--host 127.0.0.1]\n"
          "  --count N (pairs | members | connections)  --window W  --size BYTES  --rate MSGS_PER_S\n"
          "  --duration S  --warmup S  --settle-ms MS  --hold-s S  --setup-timeout S  --stall-s S\n"
          "  --recv-path TPL  --send-path TPL  --recv-tokens FILE  --send-tokens FILE\n"
          "  --send-fmt TPL  --join-fmt FRAME  --ready-marker STR  --marker STR\n"
          "  --sources X (bind to 127.0.0.1..127.0.0.X)  --concurrency C  --max-inflight N  --index-base B (idle)\n"
          "  setup: --offer-fmt TPL --cand-fmt TPL (caller)  --answer-fmt TPL --cand-back-fmt TPL (callee)\n"
          "         --candidates K (10)  --cand-size BYTES (200)  --ack-marker STR\n"

          "  storm: --reconnect-tokens FILE (fresh tokens for --port2)  --resume  --storm-timeout S\n");
  exit(2);
}

int main(int argc, char **argv) {
  signal(SIGPIPE, SIG_IGN);
  strcpy(opt.host, "127.0.0.1");
  opt.count = 100;
  opt.window = 1;
  opt.size = 64;
  opt.duration = 5;
  opt.warmup = 1;
  opt.hold_s = 300;
  opt.setup_timeout = 60;
  opt.stall_s = 2;
  opt.sources = 1;
  opt.concurrency = 256;
  opt.max_inflight = 1000;
  opt.storm_timeout = 35;  // DRAIN_SPREAD_MS's default 5 s + 30 s
  opt.recv_path = "/ws?id=r{i}";
  opt.send_path = "/ws?id=s{i}&to=r{i}";
  opt.send_fmt = "{p}";
  opt.marker = "";
  opt.offer_fmt = opt.cand_fmt = opt.answer_fmt = opt.cand_back_fmt = "{p}";
  opt.ack_marker = "\"type\":\"ack\"";
  opt.candidates = 10;
  opt.cand_size = 200;
  int mode_set = 0;
  static struct option longopts[] = {
      {"mode", 1, 0, 'm'},          {"host", 1, 0, 'h'},          {"port", 1, 0, 'p'},          {"port2", 1, 0, 'P'},
      {"count", 1, 0, 'n'},         {"window", 1, 0, 'w'},        {"size", 1, 0, 's'},          {"rate", 1, 0, 'r'},
      {"duration", 1, 0, 'd'},      {"warmup", 1, 0, 'W'},        {"settle-ms", 1, 0, 'S'},     {"hold-s", 1, 0, 'H'},
      {"setup-timeout", 1, 0, 'T'}, {"stall-s", 1, 0, 'L'},       {"recv-path", 1, 0, 'a'},     {"send-path", 1, 0, 'b'},
      {"recv-tokens", 1, 0, 'A'},   {"send-tokens", 1, 0, 'B'},   {"send-fmt", 1, 0, 'f'},      {"join-fmt", 1, 0, 'j'},
      {"ready-marker", 1, 0, 'R'},  {"marker", 1, 0, 'k'},        {"sources", 1, 0, 'x'},       {"concurrency", 1, 0, 'c'},
      {"max-inflight", 1, 0, 'I'},  {"index-base", 1, 0, 'i'},    {"offer-fmt", 1, 0, 'o'},     {"cand-fmt", 1, 0, 'C'},
      {"answer-fmt", 1, 0, 'O'},    {"cand-back-fmt", 1, 0, 'D'}, {"candidates", 1, 0, 'K'},    {"cand-size", 1, 0, 'z'},
      {"ack-marker", 1, 0, 'Q'},    {"reconnect-tokens", 1, 0, 'E'}, {"resume", 0, 0, 'U'}, {"storm-timeout", 1, 0, 'Z'},
      {0, 0, 0, 0}};
  int ch;
  while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
    switch (ch) {
      case 'm':
        mode_set = 1;
        if (!strcmp(optarg, "relay")) opt.mode = M_RELAY;
        else if (!strcmp(optarg, "fanout")) opt.mode = M_FANOUT;
        else if (!strcmp(optarg, "idle")) opt.mode = M_IDLE;
        else if (!strcmp(optarg, "connect")) opt.mode = M_CONNECT;
        else if (!strcmp(optarg, "setup")) opt.mode = M_SETUP;
        else if (!strcmp(optarg, "storm")) opt.mode = M_STORM;
        else usage();
        break;
      case 'h': snprintf(opt.host, sizeof opt.host, "%s", optarg); break;
      case 'p': opt.port = atoi(optarg); break;
      case 'P': opt.port2 = atoi(optarg); break;
      case 'n': opt.count = atoi(optarg); break;
      case 'w': opt.window = atoi(optarg); break;
      case 's': opt.size = atoi(optarg); break;
      case 'r': opt.rate = atof(optarg); break;
      case 'd': opt.duration = atof(optarg); break;
      case 'W': opt.warmup = atof(optarg); break;
      case 'S': opt.settle_ms = atoi(optarg); break;
      case 'H': opt.hold_s = atof(optarg); break;
      case 'T': opt.setup_timeout = atof(optarg); break;
      case 'L': opt.stall_s = atof(optarg); break;
      case 'a': opt.recv_path = optarg; break;
      case 'b': opt.send_path = optarg; break;
      case 'A': opt.recv_tokens = read_lines(optarg, &opt.n_recv_tokens); break;
      case 'B': opt.send_tokens = read_lines(optarg, &opt.n_send_tokens); break;
      case 'f': opt.send_fmt = optarg; break;
      case 'j': opt.join_fmt = optarg[0] ? optarg : NULL; break;
      case 'R': opt.ready_marker = optarg[0] ? optarg : NULL; break;
      case 'k': opt.marker = optarg; break;
      case 'x': opt.sources = atoi(optarg); break;
      case 'c': opt.concurrency = atoi(optarg); break;
      case 'I': opt.max_inflight = atoi(optarg); break;
      case 'i': opt.index_base = atoi(optarg); break;
      case 'o': opt.offer_fmt = optarg; break;
      case 'C': opt.cand_fmt = optarg; break;
      case 'O': opt.answer_fmt = optarg; break;
      case 'D': opt.cand_back_fmt = optarg; break;
      case 'K': opt.candidates = atoi(optarg); break;
      case 'z': opt.cand_size = atoi(optarg); break;
      case 'Q': opt.ack_marker = optarg; break;
      case 'E': opt.reconnect_tokens = read_lines(optarg, &opt.n_reconnect_tokens); break;
      case 'U': opt.resume = 1; break;
      case 'Z': opt.storm_timeout = atof(optarg); break;
      default: usage();
    }
  }
  if (!mode_set || opt.port <= 0 || opt.count <= 0 || opt.window <= 0 || opt.concurrency <= 0) usage();
  if (opt.port2 <= 0) opt.port2 = opt.port;
  if (opt.size < 24) opt.size = 24;
  if (opt.cand_size < 24) opt.cand_size = 24;
  if (opt.candidates < 0) die("--candidates must be 0 or more");
  if (opt.sources < 1 || opt.sources > 250) die("--sources must be 1..250");
  struct in_addr a;
  if (inet_pton(AF_INET, opt.host, &a) != 1 || (ntohl(a.s_addr) >> 24) != 127) die("only loopback (127.0.0.0/8) hosts are allowed");
  rng_state ^= (uint32_t)now_ns() ^ (uint32_t)getpid();
  if (!rng_state) rng_state = 1;

  hist = calloc(HIST_N, sizeof(uint32_t));
  ring = calloc(RING, sizeof(uint32_t));
  gbuf = xmalloc(GBUF_CAP);
  size_t pad = (size_t)(opt.size > opt.cand_size ? opt.size : opt.cand_size);
  padding = xmalloc(pad);
  memset(padding, 'x', pad);
  if (!hist || !ring) die("out of memory");
  ep = epoll_create1(EPOLL_CLOEXEC);

  switch (opt.mode) {
    case M_RELAY:
    case M_SETUP: n_recv = n_send = opt.count; break;
    case M_FANOUT: n_recv = opt.count; n_send = 1; break;
    case M_IDLE: n_recv = opt.count; n_send = 0; break;
    case M_CONNECT: n_recv = opt.concurrency; n_send = 0; break;
    case M_STORM: n_recv = opt.count; n_send = 0; break;
  }
  recv_conns = calloc((size_t)n_recv, sizeof(conn_t));
  send_conns = calloc(n_send ? (size_t)n_send : 1, sizeof(conn_t));
  enum role rrole = opt.mode == M_RELAY || opt.mode == M_SETUP ? R_RECV
                    : opt.mode == M_FANOUT ? R_MEMBER
                    : opt.mode == M_IDLE   ? R_IDLE
                    : opt.mode == M_STORM  ? R_STORM
                                           : R_CONNECT;
  if (opt.mode == M_STORM) storm_init();
  for (int i = 0; i < n_recv; i++) recv_conns[i] = (conn_t){.fd = -1, .state = S_FREE, .role = rrole, .idx = i};
  // The send template is split once around {p}: a message is prefix + payload + suffix.
  for (int i = 0; i < n_send; i++) {
    conn_t *c = &send_conns[i];
    *c = (conn_t){.fd = -1, .state = S_FREE, .role = opt.mode == M_FANOUT ? R_PUB : R_SEND, .idx = i};
    if (opt.mode != M_SETUP) c->tpl = split_template(opt.send_fmt, i);
  }
  if (opt.mode == M_SETUP) {
    calls = calloc((size_t)opt.count, sizeof(call_t));
    setup_tpls = xmalloc(sizeof(tpl_t) * 4 * (size_t)opt.count);
    if (!calls) die("out of memory");
    const char *fmts[4] = {opt.offer_fmt, opt.cand_fmt, opt.answer_fmt, opt.cand_back_fmt};
    for (int i = 0; i < opt.count; i++)
      for (int f = 0; f < 4; f++) setup_tpls[4 * i + f] = split_template(fmts[f], i);
  }
  if (opt.mode == M_IDLE || opt.mode == M_STORM) {
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
    if (epoll_ctl(ep, EPOLL_CTL_ADD, 0, &ev) < 0) stdin_open = 1;  // not pollable (a file): hold until hold_s
  }

  uint64_t now = now_ns();
  t_setup_start = t_phase = now;
  phase = P_CONNECT;
  if (opt.mode == M_CONNECT) {
    phase = P_WARM;
    sending = 1;
  }
  open_more();

  struct epoll_event evs[1024];
  while (phase != P_DONE) {
    int timeout = (phase == P_WARM || phase == P_MEASURE || phase == P_SETTLE) ? 1 : 20;
    int n = epoll_wait(ep, evs, 1024, storm_wait_ms(timeout));
    if (n < 0 && errno != EINTR) die("epoll_wait: %s", strerror(errno));
    now = now_ns();
    for (int i = 0; i < n; i++) {
      conn_t *c = evs[i].data.ptr;
      if (!c) {  // stdin (idle mode): closed or readable
        char tmp[256];
        ssize_t r = read(0, tmp, sizeof tmp);
        if (r <= 0 && !(r < 0 && errno == EAGAIN)) {
          stdin_open = 0;
          epoll_ctl(ep, EPOLL_CTL_DEL, 0, NULL);
        }
        continue;
      }
      if (c->fd < 0) continue;
      uint32_t e = evs[i].events;
      if (c->state == S_CONNECTING) {
        if (e & (EPOLLOUT | EPOLLERR | EPOLLHUP)) on_connected(c);
        continue;
      }
      if (e & (EPOLLIN | EPOLLERR | EPOLLHUP)) on_readable(c);
      if (c->fd >= 0 && (e & EPOLLOUT)) flush(c);
    }
    if (opt.mode == M_CONNECT) {
      double since = (double)(now - t_phase) / 1e9;
      if (phase == P_WARM && since >= opt.warmup) {
        phase = P_MEASURE;
        t_phase = t_measure_start = now;
        st.connects = st.failures = 0;
        measuring = 1;
        cpu_at_measure = cpu_seconds();
        printf("{\"phase\":\"measure\"}\n");
        fflush(stdout);
      } else if (phase == P_MEASURE && since >= opt.duration) {
        measuring = 0;
        t_measure_end = now;
        phase = P_DONE;
      }
    } else tick(now);
    for (int i = 0; i < n_dirty; i++) flush(dirty_list[i]);
    n_dirty = 0;
  }

  if (opt.mode == M_IDLE || opt.mode == M_STORM) return 0;  // exit closes every socket (storm printed its result already)
  double secs = (double)(t_measure_end - t_measure_start) / 1e9;
  double cpu = (cpu_seconds() - cpu_at_measure) / secs;
  if (opt.mode == M_SETUP) {
    printf("{\"mode\":\"setup\",\"count\":%d,\"candidates\":%d,\"rate\":%.0f,\"duration_s\":%.3f,\"setups\":%llu,\"setups_per_s\":%.1f,"
           "\"msgs_per_s\":%.1f,\"p50_us\":%.0f,\"p90_us\":%.0f,\"p99_us\":%.0f,\"p999_us\":%.0f,\"max_us\":%llu,\"setups_failed\":%llu,"
           "\"skipped\":%llu,\"late\":%llu,\"other_frames\":%llu,\"errors\":%llu,\"closed\":%d,\"setup_s\":%.3f,\"loadgen_cpu\":%.3f,"
           "\"first_error\":\"%s\"}\n",
           opt.count, opt.candidates, opt.rate, secs, (unsigned long long)setups, (double)setups / secs, (double)st.msgs / secs,
           hist_pct(0.5), hist_pct(0.9), hist_pct(0.99), hist_pct(0.999), (unsigned long long)hist_max_us, (unsigned long long)setups_failed,
           (unsigned long long)st.skipped, (unsigned long long)st.late, (unsigned long long)st.other_frames, (unsigned long long)st.errors,
           st.closed_unexpectedly, (double)(t_run_start - t_setup_start) / 1e9, cpu, first_error);
    return 0;
  }
  if (opt.mode == M_CONNECT) {
    printf("{\"mode\":\"connect\",\"concurrency\":%d,\"sources\":%d,\"duration_s\":%.3f,\"connects\":%llu,\"connects_per_s\":%.1f,"
           "\"failures\":%llu,\"loadgen_cpu\":%.3f,\"first_error\":\"%s\"}\n",
           opt.concurrency, opt.sources, secs, (unsigned long long)st.connects, (double)st.connects / secs, (unsigned long long)st.failures,
           cpu, first_error);
    return 0;
  }
  printf("{\"mode\":\"%s\",\"count\":%d,\"window\":%d,\"size\":%d,\"rate\":%.0f,\"duration_s\":%.3f,\"msgs\":%llu,\"msgs_per_s\":%.1f,"
         "\"publishes_per_s\":%.1f,\"p50_us\":%.0f,\"p90_us\":%.0f,\"p99_us\":%.0f,\"p999_us\":%.0f,\"max_us\":%llu,\"sent\":%llu,"
         "\"lost\":%llu,\"late\":%llu,\"skipped\":%llu,\"other_frames\":%llu,\"errors\":%llu,\"closed\":%d,\"setup_s\":%.3f,"
         "\"loadgen_cpu\":%.3f,\"first_error\":\"%s\"}\n",
         opt.mode == M_RELAY ? "relay" : "fanout", opt.count, opt.window, opt.size, opt.rate, secs, (unsigned long long)st.msgs,
         (double)st.msgs / secs, (double)st.publishes / secs, hist_pct(0.5), hist_pct(0.9), hist_pct(0.99), hist_pct(0.999),
         (unsigned long long)hist_max_us, (unsigned long long)st.sent, (unsigned long long)st.lost, (unsigned long long)st.late,
         (unsigned long long)st.skipped, (unsigned long long)st.other_frames, (unsigned long long)st.errors, st.closed_unexpectedly,
         (double)(t_run_start - t_setup_start) / 1e9, cpu, first_error);
  return 0;
}
