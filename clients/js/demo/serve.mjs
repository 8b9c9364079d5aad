// A tiny static server for the demo: serves clients/js (the page at
// /demo/index.html, the module at /roomcast.js). Until the node serves
// /roomcast.js itself. Usage: node demo/serve.mjs [port]
// SPDX-License-Identifier: MIT
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { dirname, join, normalize, extname } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const TYPES = { ".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8", ".png": "image/png" };
const ALLOWED = new Set(["/roomcast.js", "/demo/index.html", "/demo/demo.js"]);

export function serve(port = 0, host = "127.0.0.1") {
  const srv = createServer(async (req, res) => {
    let path = normalize(decodeURIComponent(new URL(req.url, "http://x").pathname));
    if (path === "/" || path === "/demo" || path === "/demo/") path = "/demo/index.html";
    if (!ALLOWED.has(path)) { res.writeHead(404).end("not found\n"); return; }
    try {
      const body = await readFile(join(ROOT, path));
      res.writeHead(200, { "content-type": TYPES[extname(path)] || "application/octet-stream",
        "access-control-allow-origin": "*", "cache-control": "no-store" });
      res.end(body);
    } catch {
      res.writeHead(404).end("not found\n");
    }
  });
  return new Promise((res) => srv.listen(port, host, () => res(srv)));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const srv = await serve(Number(process.argv[2] || 8000));
  console.log(`demo: http://127.0.0.1:${srv.address().port}/demo/index.html?a=ws://127.0.0.1:8081/ws&b=ws://127.0.0.1:8082/ws&token=JWT`);
}
