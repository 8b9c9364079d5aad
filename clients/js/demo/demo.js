// The demo chat's two panes. Query parameters:
//   a, b          ws URLs of node 1 and node 2 (each pane falls back to the other)
//   token         a JWT for both panes (or token_a, token_b)
//   name_a, name_b  who each pane is (default alice, bob)
//   room          the room (default chat:demo)
//   drain         the command printed to drain node 1
//   lib           where roomcast.js is (default ../roomcast.js; a node serves /roomcast.js)
// SPDX-License-Identifier: MIT
const q = new URLSearchParams(location.search);
const { Client } = await import(q.get("lib") || "../roomcast.js");
const room = q.get("room") || "chat:demo";
const A = q.get("a") || "ws://127.0.0.1:8081/ws";
const B = q.get("b") || "ws://127.0.0.1:8082/ws";
document.getElementById("room").textContent = room;
document.getElementById("drain-cmd").textContent =
  q.get("drain") || "kill -TERM <pid of node 1>   # or: roomcast drain <node 1 id>";

function pane(el, key, name, urls, token) {
  el.innerHTML = `<h2>${name} <small>(starts on node ${key === "a" ? 1 : 2})</small></h2>
    <div class="status">state <b class="state"></b> · node <b class="node">-</b> · last seq <b class="last">-</b>
      · received <b class="count">0</b> · <span class="cont ok">no gap</span></div>
    <div class="log"></div>
    <form><input placeholder="say something as ${name}" autocomplete="off"><button>Send</button></form>`;
  const $ = (s) => el.querySelector(s);
  const log = $(".log");
  const line = (html, cls) => {
    const d = document.createElement("div");
    if (cls) d.className = cls;
    d.innerHTML = html;
    log.append(d);
    log.scrollTop = log.scrollHeight;
  };
  const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c]));
  const client = new Client(urls, { token: token || (() => { throw new Error("no token (?token=)"); }) });
  const r = client.room(room);
  let last = null, count = 0, holes = 0;
  client.on("state", (s) => {
    const b = $(".state");
    b.textContent = s;
    b.className = "state state-" + s;
    if (s === "connected") {
      $(".node").textContent = client.node;
      line(`connected to node ${esc(client.node)}`, "sys");
    } else if (s !== "connecting") line(s, "sys");
  });
  client.on("error", (e) => line("error: " + esc(e.message), "gap"));
  r.on("message", (data, { seq }) => {
    if (last != null && seq !== last + 1) holes++;
    last = seq;
    count++;
    $(".last").textContent = seq;
    $(".count").textContent = count;
    const c = $(".cont");
    c.textContent = holes ? `${holes} gap(s)` : "no gap";
    c.className = "cont " + (holes ? "bad" : "ok");
    line(`<span class="seq">#${seq}</span> <span class="who">${esc(data && data.from)}</span>: ${esc(data && data.text)}`, "msg");
  });
  r.on("gap", ({ from, to }) => { holes++; line(`gap: missed seqs ${from}..${to}`, "gap"); });
  r.join().then((j) => { last = j.seq || null; line(`joined ${esc(room)} at seq ${j.seq}`, "sys"); },
    (e) => line("join failed: " + esc(e.message), "gap"));
  $("form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const input = $("input");
    const text = input.value.trim();
    if (!text) return;
    input.value = "";
    r.publish({ from: name, text }).catch((e) => line("publish failed: " + esc(e.message), "gap"));
  });
  window.roomcastDemo = Object.assign(window.roomcastDemo || {}, { [key]: { client, room: r, stats: () => ({ last, count, holes, node: client.node, state: client.state }) } });
}

const tok = q.get("token");
pane(document.getElementById("pane-a"), "a", q.get("name_a") || "alice", [A, B], q.get("token_a") || tok);
pane(document.getElementById("pane-b"), "b", q.get("name_b") || "bob", [B, A], q.get("token_b") || tok);
