// The replication floor without a runtime: the sequential part of
// floor.ts in C, to tell what Bun costs from what the machine costs.
//
//   cc -O2 -o /tmp/floor scripts/bench/floor.c -lsqlite3
//   /tmp/floor PORT DIR OPS [file|sqlite]
//
// Forks two followers and a leader on 127.0.0.1 ports PORT to PORT+2, then
// sends OPS 300-byte requests one at a time (after 300 unmeasured ones) and
// prints throughput, latency percentiles and each node's CPU per request.
// Each node makes every request durable before it counts: with `file`, it
// overwrites a 4,120-byte record (a SQLite WAL frame of a 4 KiB page) in a
// preallocated file and calls fsync; with `sqlite`, it inserts a 280-byte row
// in its own transaction into a WAL database with synchronous=FULL. The
// leader sends the request to both followers before its own write and
// replies once it and one follower are done. Needs SQLite's headers
// (Debian's libsqlite3-dev).

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define REQUEST_BYTES 300
#define ACK_BYTES 16
#define RECORD_BYTES 4120
#define RECORD_SLOTS 1000
#define ROW_BYTES 280
#define WARMUP_REQUESTS 300

static int base_port;
static const char *directory;
static int use_sqlite;
static sqlite3 *db;
static sqlite3_stmt *insert_row;

static void fail(const char *operation) {
  perror(operation);
  exit(1);
}

static void read_exactly(int fd, void *buffer, size_t length) {
  for (size_t done = 0; done < length;) {
    ssize_t count = read(fd, (char *)buffer + done, length - done);
    if (count <= 0) exit(0); // The peer closed the connection: the run is over.
    done += (size_t)count;
  }
}

static void write_all(int fd, const void *buffer, size_t length) {
  for (size_t done = 0; done < length;) {
    ssize_t count = write(fd, (const char *)buffer + done, length - done);
    if (count <= 0) fail("write");
    done += (size_t)count;
  }
}

static struct sockaddr_in loopback(int port) {
  struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  return address;
}

static void set_no_delay(int socket_fd) {
  int one = 1;
  setsockopt(socket_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static int accept_one(int port) {
  int listener = socket(AF_INET, SOCK_STREAM, 0), one = 1;
  setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in address = loopback(port);
  if (bind(listener, (struct sockaddr *)&address, sizeof address) != 0 || listen(listener, 1) != 0) fail("listen");
  int connection = accept(listener, NULL, NULL);
  if (connection < 0) fail("accept");
  close(listener);
  set_no_delay(connection);
  return connection;
}

static int connect_with_retry(int port) {
  for (int attempt = 0; attempt < 500; attempt++) {
    int connection = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in address = loopback(port);
    if (connect(connection, (struct sockaddr *)&address, sizeof address) == 0) {
      set_no_delay(connection);
      return connection;
    }
    close(connection);
    usleep(10000);
  }
  fail("connect");
  return -1;
}

/** Opens this node's log and returns its file descriptor, or -1 for a SQLite log. */
static int open_log(const char *name) {
  char path[4096];
  if (use_sqlite) {
    snprintf(path, sizeof path, "%s/%s.db", directory, name);
    // A database left by an earlier run would already have the table.
    char extra[4200];
    unlink(path);
    snprintf(extra, sizeof extra, "%s-wal", path);
    unlink(extra);
    snprintf(extra, sizeof extra, "%s-shm", path);
    unlink(extra);
    if (sqlite3_open(path, &db) != SQLITE_OK) fail("sqlite3_open");
    const char *schema = "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; CREATE TABLE log (idx INTEGER PRIMARY KEY, data BLOB NOT NULL);";
    if (sqlite3_exec(db, schema, NULL, NULL, NULL) != SQLITE_OK) fail("create the log table");
    if (sqlite3_prepare_v2(db, "INSERT INTO log (idx, data) VALUES (?, ?)", -1, &insert_row, NULL) != SQLITE_OK) fail("prepare");
    return -1;
  }
  snprintf(path, sizeof path, "%s/%s.log", directory, name);
  int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) fail("open");
  static char zeros[RECORD_BYTES];
  for (int slot = 0; slot < RECORD_SLOTS; slot++) write_all(fd, zeros, RECORD_BYTES);
  if (fsync(fd) != 0) fail("fsync");
  return fd;
}

/** Makes request `number` durable in this node's log. */
static void write_durably(int fd, long number) {
  if (use_sqlite) {
    static char row[ROW_BYTES];
    if (sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) fail("BEGIN");
    sqlite3_bind_int64(insert_row, 1, number + 1);
    sqlite3_bind_blob(insert_row, 2, row, ROW_BYTES, SQLITE_STATIC);
    if (sqlite3_step(insert_row) != SQLITE_DONE) fail("INSERT");
    sqlite3_reset(insert_row);
    if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) fail("COMMIT");
    return;
  }
  static char record[RECORD_BYTES];
  if (pwrite(fd, record, RECORD_BYTES, (off_t)(number % RECORD_SLOTS) * RECORD_BYTES) != RECORD_BYTES) fail("pwrite");
  if (fsync(fd) != 0) fail("fsync");
}

static void run_follower(int id) {
  int fd = open_log(id == 1 ? "follower-1" : "follower-2");
  int leader = accept_one(base_port + id);
  char request[REQUEST_BYTES], ack[ACK_BYTES] = {0};
  for (long number = 0;; number++) {
    read_exactly(leader, request, REQUEST_BYTES);
    write_durably(fd, number);
    write_all(leader, ack, ACK_BYTES);
  }
}

static void run_leader(void) {
  int fd = open_log("leader");
  int followers[2] = {connect_with_retry(base_port + 1), connect_with_retry(base_port + 2)};
  int client = accept_one(base_port);
  long unacknowledged[2] = {0, 0};
  char request[REQUEST_BYTES], ack[ACK_BYTES];
  for (long number = 0;; number++) {
    read_exactly(client, request, REQUEST_BYTES);
    for (int i = 0; i < 2; i++) {
      write_all(followers[i], request, REQUEST_BYTES);
      unacknowledged[i]++;
    }
    write_durably(fd, number);
    // A follower that still owes an older acknowledgement has not stored this request.
    int stored = 0;
    while (!stored) {
      struct pollfd ready[2] = {{followers[0], POLLIN, 0}, {followers[1], POLLIN, 0}};
      if (poll(ready, 2, -1) < 0) fail("poll");
      for (int i = 0; i < 2; i++) {
        if (!(ready[i].revents & POLLIN)) continue;
        read_exactly(followers[i], ack, ACK_BYTES);
        if (--unacknowledged[i] == 0) stored = 1;
      }
    }
    write_all(client, "+OK\r\n", 5);
  }
}

static double now_seconds(void) {
  struct timespec time;
  clock_gettime(CLOCK_MONOTONIC, &time);
  return (double)time.tv_sec + (double)time.tv_nsec / 1e9;
}

static int compare_doubles(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  if (argc < 4 || argc > 5 || (argc == 5 && strcmp(argv[4], "file") != 0 && strcmp(argv[4], "sqlite") != 0)) {
    fprintf(stderr, "usage: %s PORT DIR OPS [file|sqlite]\n", argv[0]);
    return 2;
  }
  base_port = atoi(argv[1]);
  directory = argv[2];
  int ops = atoi(argv[3]);
  use_sqlite = argc == 5 && strcmp(argv[4], "sqlite") == 0;
  if (base_port <= 0 || base_port > 65533 || ops <= 0) {
    fprintf(stderr, "PORT must be from 1 to 65533 and OPS positive\n");
    return 2;
  }

  pid_t nodes[3];
  const char *names[3] = {"follower-1", "follower-2", "leader"};
  for (int i = 0; i < 3; i++) {
    nodes[i] = fork();
    if (nodes[i] < 0) fail("fork");
    if (nodes[i] == 0) {
      if (i < 2) run_follower(i + 1);
      else run_leader();
      return 0;
    }
  }

  int leader = connect_with_retry(base_port);
  char request[REQUEST_BYTES], reply[5];
  memset(request, 'v', REQUEST_BYTES);
  for (int i = 0; i < WARMUP_REQUESTS; i++) {
    write_all(leader, request, REQUEST_BYTES);
    read_exactly(leader, reply, sizeof reply);
  }
  double *latencies = malloc(sizeof(double) * (size_t)ops);
  double started = now_seconds();
  for (int i = 0; i < ops; i++) {
    double sent = now_seconds();
    write_all(leader, request, REQUEST_BYTES);
    read_exactly(leader, reply, sizeof reply);
    latencies[i] = (now_seconds() - sent) * 1e6;
  }
  double elapsed = now_seconds() - started;
  qsort(latencies, (size_t)ops, sizeof(double), compare_doubles);
  printf("%s: %.0f requests/s, p50 %.0f us, p90 %.0f us, p99 %.0f us\n", use_sqlite ? "sqlite" : "file", ops / elapsed,
         latencies[ops / 2], latencies[(long)ops * 9 / 10], latencies[(long)ops * 99 / 100]);

  close(leader);
  for (int i = 0; i < 3; i++) {
    kill(nodes[i], SIGTERM);
    struct rusage usage;
    if (wait4(nodes[i], NULL, 0, &usage) < 0) fail("wait4");
    double user = usage.ru_utime.tv_sec * 1e6 + usage.ru_utime.tv_usec, system = usage.ru_stime.tv_sec * 1e6 + usage.ru_stime.tv_usec;
    printf("  %s: %.0f us user, %.0f us system per request, setup included\n", names[i], user / (ops + WARMUP_REQUESTS),
           system / (ops + WARMUP_REQUESTS));
  }
  free(latencies);
  return 0;
}
