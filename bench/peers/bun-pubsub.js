// Bun WebSocket pub/sub server, the peer for bench/pubsub.sh.
//
//   bun bun-pubsub.js [PORT]        (or PORT=... in the environment; default 8080)
//
// Listens on 127.0.0.1 only; /ws upgrades to WebSocket. Its protocol is the smallest that lets
// wsload's templates drive it like Herald, one text message per command:
//
//   SUB <topic>            subscribe this connection (ws.subscribe); answered "OK SUB <topic>",
//                          so the client knows the subscription is in place (wsload --skip-first 1)
//   PUB <topic> <payload>  server.publish(topic, payload): every subscriber of the topic gets the
//                          payload as a text message, the sender too if it is subscribed (like
//                          Herald); no answer to the publisher
//
// Anything else is answered "ERR ...". No permessage-deflate, like Herald's --no-compression. Bun
// serves every socket from one JavaScript thread: Bun.serve has no worker option.
const port = Number(process.argv[2] ?? process.env.PORT ?? 8080);
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  console.error(`bun-pubsub: bad port '${process.argv[2] ?? process.env.PORT}'`);
  process.exit(2);
}

const server = Bun.serve({
  hostname: "127.0.0.1",
  port,
  fetch(req, srv) {
    if (new URL(req.url).pathname === "/ws" && srv.upgrade(req)) return;
    return new Response("bun-pubsub: WebSocket endpoint is /ws\n", { status: 404 });
  },
  websocket: {
    perMessageDeflate: false,
    maxPayloadLength: 16 * 1024 * 1024,
    idleTimeout: 120,
    message(ws, msg) {
      if (typeof msg !== "string") {
        ws.send("ERR binary messages are not commands");
        return;
      }
      if (msg.startsWith("PUB ")) {
        const sp = msg.indexOf(" ", 4);
        if (sp > 4) {
          server.publish(msg.slice(4, sp), msg.slice(sp + 1));
          return;
        }
      } else if (msg.startsWith("SUB ") && msg.length > 4) {
        ws.subscribe(msg.slice(4));
        ws.send("OK " + msg);
        return;
      }
      ws.send("ERR expected 'SUB topic' or 'PUB topic payload'");
    },
  },
});

console.error(`bun-pubsub ${Bun.version} listening on http://127.0.0.1:${server.port}/ws`);
for (const sig of ["SIGTERM", "SIGINT"]) {
  process.on(sig, () => {
    server.stop(true);
    process.exit(0);
  });
}
