// Browser test of the demo chat: Redis + two nodes, the page in headless
// /usr/bin/chromium (playwright-core, never a downloaded browser), messages
// typed in one pane show in the other, node 1 drains (SIGTERM) and its pane
// continues on node 2 with no gap. Screenshot: DEMO_SCREENSHOT=docs/img/demo.png.
// Run: node --test test/browser.mjs
// SPDX-License-Identifier: MIT
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import WebSocket from "ws";
import { Client } from "../roomcast.js";
import { serve } from "../demo/serve.mjs";
import { Cluster, mintJwt, sleep, waitUntil } from "./harness.mjs";

process.env.PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD = "1";
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const ROOM = "chat:demo";

test("demo chat: two panes, drain node 1, the pane moves to node 2 without a gap",
  { timeout: 120000 }, async () => {
    assert.ok(existsSync(CHROMIUM), `${CHROMIUM} missing: scripts/deps installs Debian's chromium`);
    const { chromium } = await import("playwright-core");
    const cl = new Cluster();
    const profile = mkdtempSync(join(tmpdir(), "roomcast-chromium-"));
    let srv, ctx, carol;
    try {
      await cl.redis();
      const flags = { history_size: 1000, drain_window_ms: 1500 };
      const a = await cl.node("A", flags);
      const b = await cl.node("B", flags);
      srv = await serve(0);
      const token = mintJwt({ sub: "demo", ttl: 3600 });
      // The page imports the client from node B (GET /roomcast.js on its
      // client port): the module a browser runs is the one the node serves.
      const lib = b.url.replace(/^ws:/, "http:").replace(/\/ws$/, "/roomcast.js");
      const q = new URLSearchParams({ a: a.url, b: b.url, token, room: ROOM, lib,
        drain: `kill -TERM ${a.pid}    # node 1 (A): drains, clients move to node 2 (B)` });
      const page_url = `http://127.0.0.1:${srv.address().port}/demo/index.html?${q}`;

      ctx = await chromium.launchPersistentContext(profile, {
        executablePath: CHROMIUM, headless: true,
        args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
          "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        viewport: { width: 1100, height: 560 },
      });
      const page = ctx.pages()[0] || await ctx.newPage();
      const pageErrors = [];
      page.on("pageerror", (e) => pageErrors.push(String(e)));
      await page.goto(page_url, { timeout: 15000 });
      const stats = (k) => page.evaluate((key) => window.roomcastDemo?.[key]?.stats(), k);
      await waitUntil(async () => {
        const [sa, sb] = [await stats("a"), await stats("b")];
        return sa?.state === "connected" && sb?.state === "connected";
      }, 15000, "both panes connected");
      assert.equal((await stats("a")).node, "A");
      assert.equal((await stats("b")).node, "B");
      await sleep(300); // both joined

      const say = async (pane, text) => {
        await page.fill(`#pane-${pane} input`, text);
        await page.press(`#pane-${pane} input`, "Enter");
      };
      const shows = (pane, text) => waitUntil(() => page.locator(`#pane-${pane} .log`).innerText()
        .then((t) => t.includes(text)), 10000, `"${text}" in pane ${pane}`);
      await say("a", "hello from alice on node 1");
      await shows("b", "hello from alice on node 1");
      await say("b", "hi alice, bob on node 2 here");
      await shows("a", "hi alice, bob on node 2 here");

      // carol publishes all along (through node 2) while node 1 drains
      carol = new Client(b.url, { WebSocket, token: mintJwt({ sub: "carol", ttl: 600 }) });
      let stop = false, sent = 0;
      const load = (async () => {
        while (!stop) { await carol.room(ROOM).publish({ from: "carol", text: `tick ${++sent}` }); await sleep(40); }
      })();
      await sleep(500);
      a.signal("SIGTERM");
      await waitUntil(async () => { const s = await stats("a"); return s.node === "B" && s.state === "connected"; },
        15000, "pane a on node 2");
      assert.equal(await a.exited, 0, "node 1 exits 0 after its drain");
      await sleep(500);
      stop = true;
      await load;
      await say("a", "alice again, now on node 2");
      await shows("b", "alice again, now on node 2");
      await shows("a", "alice again, now on node 2");
      const [sa, sb] = [await stats("a"), await stats("b")];
      assert.equal(sa.holes, 0, "pane a: no gap");
      assert.equal(sb.holes, 0, "pane b: no gap");
      assert.equal(sa.count, sent + 3, `pane a got every message (${sa.count})`);
      assert.equal(sb.count, sent + 3, `pane b got every message (${sb.count})`);
      assert.equal(sa.last, sb.last);
      assert.match(await page.locator("#pane-a .log").innerText(), /connected to node B/);
      assert.deepEqual(pageErrors, []);
      await page.evaluate(() => document.querySelectorAll(".log").forEach((l) => { l.scrollTop = l.scrollHeight; }));
      // The README's picture is refreshed on request (DEMO_SCREENSHOT=path),
      // never as a side effect of a test run on a clean checkout.
      const shot = process.env.DEMO_SCREENSHOT || join(profile, "demo.png");
      await page.screenshot({ path: shot });
      console.log(`# ${sent} background messages, pane a/b received ${sa.count}/${sb.count}, no gap; screenshot ${shot}`);
    } finally {
      carol?.close();
      await ctx?.close().catch(() => {});
      srv?.close();
      await cl.stop();
      rmSync(profile, { recursive: true, force: true });
    }
  });
