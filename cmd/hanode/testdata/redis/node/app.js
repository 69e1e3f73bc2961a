// An express-session application whose sessions live in hanode through
// connect-redis and the redis client (node-redis), as a Node app would
// keep them in Redis. Usage: node app.js REDIS_PORT REDIS_PASSWORD HTTP_PORT
// It first checks the redis client's own commands, then serves:
//   GET /        counts in the session: {"id": ..., "n": ...}
//   GET /logout  destroys the session
import assert from "node:assert/strict";
import express from "express";
import session from "express-session";
import { RedisStore } from "connect-redis";
import { createClient } from "redis";

const [redisPort, password, httpPort] = process.argv.slice(2);

const client = createClient({ url: `redis://127.0.0.1:${redisPort}`, password });
client.on("error", (err) => console.error("redis client error", err));
await client.connect();

// The redis client by itself.
assert.equal(await client.ping(), "PONG");
assert.equal(await client.set("node:k", "v", { EX: 100 }), "OK");
assert.equal(await client.get("node:k"), "v");
assert.ok((await client.ttl("node:k")) > 98);
assert.equal(await client.hSet("node:h", { a: "1", b: "2" }), 2);
assert.deepEqual({ ...(await client.hGetAll("node:h")) }, { a: "1", b: "2" });
assert.equal(await client.hIncrBy("node:h", "a", 9), 10);
const replies = await client.multi().set("node:t", "1").get("node:t").exec();
assert.deepEqual(replies, ["OK", "1"]);
const keys = [];
for await (const batch of client.scanIterator({ MATCH: "node:*", COUNT: 10 })) keys.push(...batch);
assert.deepEqual(keys.sort(), ["node:h", "node:k", "node:t"]);
await assert.rejects(client.sendCommand(["NOSUCHCMD"]), /unknown command/);
assert.equal(await client.ping(), "PONG");
assert.equal(await client.del(["node:k", "node:h", "node:t"]), 3);

const app = express();
app.use(
  session({
    store: new RedisStore({ client, prefix: "sess:" }),
    secret: "hanode-test-secret",
    resave: false,
    saveUninitialized: false,
    cookie: { maxAge: 600000 },
  }),
);
app.get("/", (req, res) => {
  req.session.n = (req.session.n || 0) + 1;
  res.json({ id: req.session.id, n: req.session.n });
});
app.get("/logout", (req, res) => {
  req.session.destroy((err) => res.status(err ? 500 : 200).send(err ? String(err) : "bye"));
});
app.listen(Number(httpPort), "127.0.0.1", () => console.log("listening"));
