// Node.js + ws pub/sub server, a peer for bench/pubsub.sh: a plain topic -> Set-of-sockets broker.
//
//   node node-ws-pubsub.js [PORT]        (or PORT=... in the environment; default 8080)
//
// Listens on 127.0.0.1 only; /ws upgrades to WebSocket. It speaks the same minimal protocol as
// bun-pubsub.js, so wsload drives both with the same templates, one text message per command:
//
//   SUB <topic>            add this socket to the topic's Set; answered "OK SUB <topic>"
//                          (wsload --skip-first 1)
//   PUB <topic> <payload>  send the payload as a text message to every socket in the topic's Set,
//                          the sender too if it is subscribed; no answer to the publisher
//
// Anything else is answered "ERR ...". No permessage-deflate (like Herald's --no-compression). One
// JavaScript thread serves every socket, as Node does by default. The payload is sent as the same
// string to every subscriber; ws frames it again for each socket (it has no shared-frame publish).
const { WebSocketServer } = require("ws");

const port = Number(process.argv[2] ?? process.env.PORT ?? 8080);
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  console.error(`node-ws-pubsub: bad port '${process.argv[2] ?? process.env.PORT}'`);
  process.exit(2);
}

const topics = new Map(); // topic -> Set of sockets
const wss = new WebSocketServer({
  host: "127.0.0.1",
  port,
  path: "/ws",
  perMessageDeflate: false,
  maxPayload: 16 * 1024 * 1024,
  clientTracking: false,
});

wss.on("connection", (ws) => {
  const mine = new Set(); // this socket's topics, to leave them on close
  ws.on("message", (data, isBinary) => {
    if (isBinary) {
      ws.send("ERR binary messages are not commands");
      return;
    }
    const msg = data.toString();
    if (msg.startsWith("PUB ")) {
      const sp = msg.indexOf(" ", 4);
      if (sp > 4) {
        const subs = topics.get(msg.slice(4, sp));
        if (subs) {
          const payload = msg.slice(sp + 1);
          for (const s of subs) s.send(payload);
        }
        return;
      }
    } else if (msg.startsWith("SUB ") && msg.length > 4) {
      const topic = msg.slice(4);
      let subs = topics.get(topic);
      if (!subs) topics.set(topic, (subs = new Set()));
      subs.add(ws);
      mine.add(topic);
      ws.send("OK " + msg);
      return;
    }
    ws.send("ERR expected 'SUB topic' or 'PUB topic payload'");
  });
  ws.on("close", () => {
    for (const t of mine) {
      const subs = topics.get(t);
      if (subs && subs.delete(ws) && subs.size === 0) topics.delete(t);
    }
  });
  ws.on("error", () => {});
});

wss.on("listening", () => {
  console.error(`node-ws-pubsub (node ${process.version}) listening on http://127.0.0.1:${port}/ws`);
});
for (const sig of ["SIGTERM", "SIGINT"]) {
  process.on(sig, () => {
    wss.close();
    process.exit(0);
  });
}
