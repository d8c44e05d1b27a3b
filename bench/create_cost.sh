#!/usr/bin/env bash
# What storing one new session costs Redis, by the way it is sent: a fresh redis-server,
# N new records per way (in pipelines of 496, so that the network hardly counts), and the
# server's own CPU time (utime + stime from /proc) divided by N. The ways:
#
#   set           SET key value EX ttl         (what the peers send; not a hash)
#   hset+pexpire  HSET then PEXPIRE            (not atomic: a record could lose its TTL)
#   multi         MULTI HSET PEXPIRE EXEC      (atomic)
#   restore       RESTORE key ttl payload      (atomic; Rondo's way, payload from DUMP)
#   script        EVALSHA of Rondo's NEW_RECORDS script, one record per call
#   script x8     the same script, eight records per call
#
# usage: bench/create_cost.sh        env (optional): N (200000)
#
# Only the redis-server this script starts is stopped, by PID.
set -euo pipefail

N=${N:-200000}
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" redis-server redis-cli python3

REDIS_PORT=$(free_port)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
  --logfile "$WORK/redis.log" &
REDIS_PID=$!
wait_for_redis "$REDIS_PORT"

python3 - "$REDIS_PORT" "$REDIS_PID" "$N" "$ROOT/framework/src/session/store/redis.rs" <<'PY'
import os, socket, sys, time
port, pid, n, source = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
ticks = os.sysconf("SC_CLK_TCK")
sock = socket.create_connection(("127.0.0.1", port))

def enc(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)

def call(*args):
    sock.sendall(enc(*args))
    time.sleep(0.05)
    return sock.recv(1 << 16)

def cpu():
    fields = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])

def key(i):
    return b"bench:session:%064x" % (i * 7919 + 12345)

def run(name, command, replies, per=1):
    call("FLUSHALL")
    batch = 496
    before = cpu()
    for start in range(0, n, batch):
        sock.sendall(b"".join(command(i) for i in range(start, start + batch, per)))
        want, got = batch // per * replies, b""
        while got.count(b"\r\n") < want:
            got += sock.recv(1 << 20)
    time.sleep(0.1)
    print("%-13s %5.2f us of Redis CPU per new session" % (name, (cpu() - before) * 1e6 / ticks / n))

now, ttl = b"1764590000", b"86400000"
fields = [b"_v", b"1", b"_c", now, b"_r", now, b"d:n", b"\x01"]
run("set", lambda i: enc(b"SET", key(i), b"\x81\xa1n\x01" + b"x" * 20, b"EX", b"86400"), 1)
run("hset+pexpire", lambda i: enc(b"HSET", key(i), *fields) + enc(b"PEXPIRE", key(i), ttl), 2)
run("multi", lambda i: enc(b"MULTI") + enc(b"HSET", key(i), *fields)
    + enc(b"PEXPIRE", key(i), ttl) + enc(b"EXEC"), 5)
call("FLUSHALL")
call("HSET", b"template", *fields)
dump = call("DUMP", b"template")
length, rest = dump.split(b"\r\n", 1)
payload = rest[: int(length[1:])]
run("restore", lambda i: enc(b"RESTORE", key(i), ttl, payload), 1)
script = open(source).read().split('const NEW_RECORDS: &str = r"', 1)[1].split('";', 1)[0]
sha = call("SCRIPT", "LOAD", script).split(b"\r\n")[1]
run("script", lambda i: enc(b"EVALSHA", sha, 1, key(i), ttl, now, 1, b"d:n", b"\x01"), 1)
def eight(i):
    args = [b"EVALSHA", sha, 8] + [key(i + j) for j in range(8)]
    for _ in range(8):
        args += [ttl, now, 1, b"d:n", b"\x01"]
    return enc(*args)
run("script x8", eight, 1, per=8)
PY
