// Helpers for bench/events.sh (Node 20, no packages):
//   node bench/events_clients.mjs receiver PORT_FILE
//     a webhook receiver on 127.0.0.1: answers 200 to every POST, counts them;
//     GET /count answers the count. Writes its port to PORT_FILE.
//   node bench/events_clients.mjs streams URL TOKEN N PID
//     opens N live event streams as TOKEN, prints the server's resident memory
//     (VmRSS of PID) before and after, then signs in once (bench account) and
//     prints how long the event took to reach every stream.
import http from "node:http";
import fs from "node:fs";

const [mode, ...args] = process.argv.slice(2);

function rssKiB(pid) {
  const status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)[1]);
}

if (mode === "receiver") {
  let count = 0;
  const server = http.createServer((req, res) => {
    if (req.method === "GET") {
      res.end(String(count));
      return;
    }
    req.on("data", () => {});
    req.on("end", () => {
      count += 1;
      res.end();
    });
  });
  server.keepAliveTimeout = 60000;
  server.listen(0, "127.0.0.1", () => fs.writeFileSync(args[0], String(server.address().port)));
} else if (mode === "streams") {
  const [url, token, n, pid] = [args[0], args[1], Number(args[2]), Number(args[3])];
  const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity });
  const before = rssKiB(pid);
  let open = 0;
  let reached = 0;
  let sentAt = 0;
  const done = new Promise((resolve) => {
    for (let i = 0; i < n; i++) {
      const req = http.get(`${url}/v1/me/events/stream`, { agent, headers: { authorization: `Bearer ${token}` } }, (res) => {
        if (res.statusCode !== 200) { res.setEncoding("utf8"); res.on("data", (d) => { console.error(`stream ${i}: HTTP ${res.statusCode} ${d}`); process.exit(1); }); return; }
        open += 1;
        let seen = false;
        res.setEncoding("utf8");
        res.on("data", (chunk) => {
          if (!seen && sentAt && chunk.includes("event: login_succeeded")) {
            seen = true;
            reached += 1;
            if (reached === n) resolve(performance.now() - sentAt);
          }
        });
      });
      req.on("error", (e) => { throw e; });
    }
  });
  while (open < n) await new Promise((r) => setTimeout(r, 50));
  await new Promise((r) => setTimeout(r, 1000));
  const after = rssKiB(pid);
  console.log(`${n} streams open: server RSS ${before} KiB before, ${after} KiB after = ${((after - before) / n).toFixed(1)} KiB per stream`);
  sentAt = performance.now();
  const r = await fetch(`${url}/v1/login`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ email: "bench@example.com", password: "correct horse battery staple" }),
  });
  if (r.status !== 200) throw new Error(`login: HTTP ${r.status}`);
  const ms = await done;
  console.log(`one sign-in's event reached all ${n} streams ${ms.toFixed(0)} ms after the request was sent`);
  process.exit(0);
}
