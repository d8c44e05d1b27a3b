// Clients written elsewhere, against a Rondo server: pusher-js 8 and Laravel Echo 2 subscribe
// to public, private and presence channels (authorized by Rondo's /broadcasting/auth with a
// session cookie), and the official `pusher` server library publishes through Rondo's HTTP
// events API. Run by tests/tests/compat.rs:
//
//   node compat.mjs BASE_URL APP_ID KEY SECRET ANA_COOKIE BO_COOKIE
//
// Prints one line per check ("ok: ..." or "FAILED: ..."), then "compat: N passed, N failed".
// Exits non-zero when a check failed or the whole run took longer than 30 s.
import Pusher from "pusher-js";
import Echo from "laravel-echo";
import PusherServer from "pusher";

const [base, appId, key, secret, anaCookie, boCookie] = process.argv.slice(2);
const url = new URL(base);
let passed = 0;
let failed = 0;
const check = (ok, what, detail) => {
  if (ok) {
    passed++;
    console.log(`ok: ${what}`);
  } else {
    failed++;
    console.log(`FAILED: ${what}${detail === undefined ? "" : ": " + JSON.stringify(detail)}`);
  }
};
const timer = setTimeout(() => {
  console.log("FAILED: the run did not finish within 30 s");
  console.log(`compat: ${passed} passed, ${failed + 1} failed`);
  process.exit(1);
}, 30000);

// In a browser the session cookie goes with pusher-js's own auth request. Node's
// XMLHttpRequest (which pusher-js uses there) refuses to send a Cookie header, so the
// request pusher-js would make is made here, the same POST with the same form body.
const authorizeWith = (cookie) => ({
  customHandler: async ({ socketId, channelName }, callback) => {
    try {
      const response = await fetch(`${base}/broadcasting/auth`, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded", cookie },
        body: new URLSearchParams({ socket_id: socketId, channel_name: channelName }),
      });
      if (!response.ok) {
        callback(new Error(`auth answered ${response.status}`), null);
        return;
      }
      callback(null, await response.json());
    } catch (err) {
      callback(err, null);
    }
  },
});

const options = (cookie) => ({
  cluster: "local",
  wsHost: url.hostname,
  wsPort: Number(url.port),
  forceTLS: false,
  enabledTransports: ["ws"],
  disableStats: true,
  channelAuthorization: authorizeWith(cookie),
});

const once = (emitter, event) =>
  new Promise((resolve) => emitter.bind(event, (data) => resolve(data)));
const within = (promise, ms, what) =>
  Promise.race([
    promise,
    new Promise((_, reject) => setTimeout(() => reject(new Error(`timed out: ${what}`)), ms)),
  ]);

const server = new PusherServer({
  appId,
  key,
  secret,
  host: url.hostname,
  port: url.port,
  useTLS: false,
});

try {
  // pusher-js: connect, then public, private and presence channels.
  const ana = new Pusher(key, options(anaCookie));
  const state = await within(
    new Promise((resolve) => ana.connection.bind("connected", () => resolve(ana.connection.state))),
    5000,
    "pusher-js connects",
  );
  check(state === "connected" && /^\d+\.\d+$/.test(ana.connection.socket_id), "pusher-js connects and gets a socket id", ana.connection.socket_id);

  const news = ana.subscribe("news");
  await within(once(news, "pusher:subscription_succeeded"), 5000, "public subscription");
  check(true, "pusher-js subscribes to a public channel");
  const mine = ana.subscribe("private-user.ana");
  await within(once(mine, "pusher:subscription_succeeded"), 5000, "private subscription");
  check(true, "pusher-js subscribes to a private channel through /broadcasting/auth");
  const room = ana.subscribe("presence-room.7");
  const members = await within(once(room, "pusher:subscription_succeeded"), 5000, "presence subscription");
  check(members.count === 1 && members.me && members.me.id === "ana", "pusher-js joins a presence channel as the session's user", { count: members.count, me: members.me });

  const refused = ana.subscribe("private-user.bo");
  const refusal = await within(once(refused, "pusher:subscription_error"), 5000, "refusal");
  check(refusal !== undefined, "another user's private channel is refused", refusal);

  // The pusher server library publishes through the HTTP events API.
  const gotNews = within(once(news, "headline"), 5000, "public event");
  const gotMine = within(once(mine, "order.shipped"), 5000, "private event");
  const gotRoom = within(once(room, "room.note"), 5000, "presence event");
  const answer = await server.trigger("news", "headline", { title: "hello" });
  check(answer.status === 200, "pusher (server library) triggers on a public channel", answer.status);
  await server.trigger("private-user.ana", "order.shipped", { id: 5 });
  await server.triggerBatch([{ channel: "presence-room.7", name: "room.note", data: { text: "hi" } }]);
  check((await gotNews).title === "hello", "pusher-js receives the public event");
  check((await gotMine).id === 5, "pusher-js receives the private event");
  check((await gotRoom).text === "hi", "pusher-js receives a batch event on the presence channel");

  // A socket named as socket_id is left out.
  let echoedToSender = false;
  news.bind("self", () => { echoedToSender = true; });
  await server.trigger("news", "self", {}, { socket_id: ana.connection.socket_id });
  await new Promise((r) => setTimeout(r, 300));
  check(!echoedToSender, "an event is not sent back to the socket_id that caused it");

  // A wrong secret is refused by the server.
  const forger = new PusherServer({ appId, key, secret: "not-the-secret", host: url.hostname, port: url.port, useTLS: false });
  let status = 0;
  try {
    await forger.trigger("news", "forged", {});
  } catch (err) {
    status = err.status;
  }
  check(status === 401, "a request signed with the wrong secret is refused with 401", status);

  // Laravel Echo 2 on pusher-js: Bo joins the room and listens on his private channel.
  const memberAdded = within(once(room, "pusher:member_added"), 5000, "member_added");
  const echo = new Echo({ broadcaster: "pusher", key, ...options(boCookie), Pusher });
  const here = await within(
    new Promise((resolve) => echo.join("room.7").here((users) => resolve(users))),
    5000,
    "Echo joins",
  );
  const names = here.map((u) => u.name).sort();
  check(JSON.stringify(names) === JSON.stringify(["ana", "bo"]), "Laravel Echo joins the presence channel and sees who is here", names);
  const added = await memberAdded;
  check(added.id === "bo" && added.info.name === "bo", "pusher-js sees member_added for Echo's user", added);
  const shipped = within(
    new Promise((resolve) => echo.private("user.bo").listen(".order.shipped", (e) => resolve(e))),
    5000,
    "Echo private event",
  );
  await new Promise((r) => setTimeout(r, 500));
  await server.trigger("private-user.bo", "order.shipped", { id: 9 });
  check((await shipped).id === 9, "Laravel Echo receives a private event published by the server library");

  const memberRemoved = within(once(room, "pusher:member_removed"), 5000, "member_removed");
  echo.leave("room.7");
  const removed = await memberRemoved;
  check(removed.id === "bo", "pusher-js sees member_removed when Echo leaves", removed);

  echo.disconnect();
  ana.disconnect();
} catch (err) {
  check(false, "the run", String(err));
}
clearTimeout(timer);
console.log(`compat: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
