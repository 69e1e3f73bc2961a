"""redis-py (Debian's python3-redis) against hanode's Redis protocol.

Usage: client.py PORT PASSWORD. Exits non-zero on the first mismatch.
Flask-Session, Django's Redis cache and session backends use the same
calls (SETEX/GET/DEL, pipelines, SCAN).
"""
import sys

import redis

r = redis.Redis(host="127.0.0.1", port=int(sys.argv[1]), password=sys.argv[2], decode_responses=True)


def check(what, got, want):
    if got != want:
        sys.exit(f"{what}: got {got!r}, want {want!r}")


check("ping", r.ping(), True)
check("set ex", r.set("py:k", "v", ex=100), True)
check("get", r.get("py:k"), "v")
check("ttl", 99 <= r.ttl("py:k") <= 100, True)
check("set nx", r.set("py:k", "w", nx=True), None)
check("getdel", r.getdel("py:k"), "v")
check("exists", r.exists("py:k"), 0)
check("hset", r.hset("py:h", mapping={"a": "1", "b": "2"}), 2)
check("hgetall", r.hgetall("py:h"), {"a": "1", "b": "2"})
check("hincrby", r.hincrby("py:h", "a", 5), 6)
check("hmget", r.hmget("py:h", ["a", "zz"]), ["6", None])
check("expire", r.expire("py:h", 50), True)
check("persist", r.persist("py:h"), True)
check("ttl after persist", r.ttl("py:h"), -1)
p = r.pipeline(transaction=True)
p.set("py:t", "1")
p.hset("py:t2", "f", "v")
p.get("py:t")
check("multi/exec", p.execute(), [True, 1, "1"])
p = r.pipeline(transaction=False)
for i in range(100):
    p.set(f"py:p{i}", i)
check("pipeline", all(p.execute()), True)
check("scan_iter", sorted(r.scan_iter(match="py:p1*", count=10)),
      sorted(f"py:p{i}" for i in range(100) if str(i).startswith("1")))
check("type", r.type("py:h"), "hash")
check("rename", r.rename("py:h", "py:h2"), True)
check("hget after rename", r.hget("py:h2", "b"), "2")
check("setex", r.setex("session:abc", 60, "data"), True)
check("get session", r.get("session:abc"), "data")
try:
    r.execute_command("NOSUCHCMD")
    sys.exit("unknown command accepted")
except redis.ResponseError as e:
    check("unknown command", "unknown command" in str(e), True)
check("ping after an error", r.ping(), True)
check("delete", r.delete(*r.keys("py:*"), "session:abc"), 104)
check("dbsize", r.dbsize(), 0)
print("python ok")
