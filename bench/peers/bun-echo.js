// Bun WebSocket echo server, the peer for bench/echo.sh.
//
//   bun bun-echo.js [PORT]        (or PORT=... in the environment; default 8080)
//
// Listens on 127.0.0.1 only. /echo upgrades to WebSocket and every message is sent back as it
// came (a string as text, binary data as binary), like Herald's --echo-path. No permessage-deflate,
// like Herald's --no-compression. Bun serves from one JavaScript thread: it has no worker option
// for Bun.serve, so it runs single-threaded whatever the machine has.
const port = Number(process.argv[2] ?? process.env.PORT ?? 8080);
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  console.error(`bun-echo: bad port '${process.argv[2] ?? process.env.PORT}'`);
  process.exit(2);
}

const server = Bun.serve({
  hostname: "127.0.0.1",
  port,
  fetch(req, srv) {
    if (new URL(req.url).pathname === "/echo" && srv.upgrade(req)) return;
    return new Response("bun-echo: WebSocket endpoint is /echo\n", { status: 404 });
  },
  websocket: {
    perMessageDeflate: false,
    maxPayloadLength: 16 * 1024 * 1024,
    idleTimeout: 120,
    message(ws, msg) {
      ws.send(msg);
    },
  },
});

console.error(`bun-echo ${Bun.version} listening on http://127.0.0.1:${server.port}/echo`);
for (const sig of ["SIGTERM", "SIGINT"]) {
  process.on(sig, () => {
    server.stop(true);
    process.exit(0);
  });
}
