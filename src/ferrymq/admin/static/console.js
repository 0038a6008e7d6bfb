// ferrymq web console: plain JS, no build step. Polls the JSON API (/api)
// every second; charts are uPlot (vendored in /static/vendor/uplot).
"use strict";

const POLL_MS = 1000;
const HISTORY = 120; // points kept in the charts (two minutes)
const view = document.getElementById("view");
let timer = null; // the current page's poller
let pageToken = 0; // bumps on navigation so late responses of old pages are dropped

// -- helpers -------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) node.setAttribute(k, v);
  }
  for (const c of children.flat()) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

async function api(method, path, body) {
  const opts = { method, headers: { Accept: "application/json" } };
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const resp = await fetch(path, opts);
  const data = await resp.json().catch(() => ({ error: resp.statusText }));
  if (!resp.ok) throw new Error(data.error || `HTTP ${resp.status}`);
  return data;
}

function toast(text, error = false) {
  const t = document.getElementById("toast");
  t.textContent = text;
  t.className = error ? "error" : "";
  t.hidden = false;
  clearTimeout(t._hide);
  t._hide = setTimeout(() => { t.hidden = true; }, 4000);
}

const fmt = (n) => (typeof n === "number" ? (Number.isInteger(n) ? n.toLocaleString() : n.toFixed(1)) : n);
const qpath = (name) => `/api/queues/${encodeURIComponent(name)}`;

function poll(fn) {
  // One poller per page; a failing poll shows a red dot and keeps trying.
  const dot = document.getElementById("poll-status");
  const token = pageToken;
  const tick = async () => {
    try {
      await fn();
      if (token === pageToken) dot.className = "poll live";
    } catch (e) {
      dot.className = "poll down";
      dot.title = String(e.message || e);
    }
  };
  tick();
  timer = setInterval(tick, POLL_MS);
}

function card(label, id) {
  return el("div", { class: "card" }, el("div", { class: "label" }, label), el("div", { class: "value", id }, "–"));
}

function setText(id, value) {
  const node = document.getElementById(id);
  if (node) node.textContent = fmt(value);
}

// A live time-series chart: `series` are [label, colour]; push(time, values).
function liveChart(container, title, series) {
  const box = el("div", { class: "chart", "data-points": "0" }, el("h3", {}, title));
  container.append(box);
  const data = [[], ...series.map(() => [])];
  const width = () => Math.max(box.clientWidth - 16, 300);
  const plot = new uPlot(
    {
      width: width(),
      height: 200,
      series: [{}, ...series.map(([label, stroke]) => ({ label, stroke, width: 2 }))],
      axes: [{}, { size: 60 }],
      // Always the last two minutes, so a chart with few points is not stretched.
      scales: { x: { time: true, range: (u, min, max) => [max - HISTORY, max] } },
    },
    data,
    box,
  );
  // The grid settles its columns only once every chart is in: follow the box.
  new ResizeObserver(() => plot.setSize({ width: width(), height: 200 })).observe(box);
  return {
    push(time, values) {
      if (data[0].length && data[0][data[0].length - 1] >= time) return;
      data[0].push(time);
      values.forEach((v, i) => data[i + 1].push(v));
      if (data[0].length > HISTORY) data.forEach((col) => col.shift());
      plot.setData(data);
      box.dataset.points = String(data[0].length);
    },
  };
}

// A table with clickable, sortable headers. columns: [key, label, numeric].
function sortableTable(columns, rowFor, { sortKey, desc = false } = {}) {
  const state = { key: sortKey || columns[0][0], desc, rows: [] };
  const thead = el("tr");
  const tbody = el("tbody");
  const table = el("table", {}, el("thead", {}, thead), tbody);
  const render = () => {
    thead.replaceChildren(
      ...columns.map(([key, label, num]) =>
        el("th", {
          class: [num ? "num" : "", key === state.key ? "sorted" : "", key === state.key && !state.desc ? "asc" : ""].join(" "),
          "data-key": key,
          onclick: () => {
            state.desc = state.key === key ? !state.desc : !!num;
            state.key = key;
            render();
          },
        }, label)),
    );
    const rows = [...state.rows].sort((a, b) => {
      const x = a[state.key], y = b[state.key];
      const c = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y));
      return state.desc ? -c : c;
    });
    tbody.replaceChildren(...rows.map(rowFor));
    if (!rows.length) tbody.append(el("tr", {}, el("td", { class: "empty", colspan: columns.length }, "nothing yet")));
  };
  render();
  return { table, update(rows) { state.rows = rows; render(); } };
}

// -- header ----------------------------------------------------------------

function showNode(o) {
  setText("node", `${o.node} · v${o.version}`);
  const role = document.getElementById("role");
  role.textContent = o.role;
  role.style.background = o.role === "master" ? "" : "#8a6d3b";
}

// -- pages ------------------------------------------------------------------

async function overviewPage() {
  view.append(
    el("h1", {}, "Overview"),
    el("div", { class: "cards" },
      card("uptime", "o-uptime"), card("connections", "o-connections"), card("queues", "o-queues"),
      card("topics", "o-topics"), card("messages queued", "o-depth"), card("in flight", "o-inflight"),
      card("in / s", "o-in"), card("out / s", "o-out"), card("memory used", "o-memory")),
  );
  const charts = el("div", { class: "charts" });
  view.append(charts);
  const rates = liveChart(charts, "Message rates (msg/s)", [["enqueue", "#2463eb"], ["dequeue", "#1a8f4b"], ["redeliver", "#c0392b"]]);
  const depths = liveChart(charts, "Messages (queued, in flight)", [["queued", "#7b3fe4"], ["in flight", "#e08a00"]]);
  const push = (p) => {
    rates.push(p.time, [p.enqueue, p.dequeue, p.redeliver]);
    depths.push(p.time, [p.depth, p.in_flight]);
  };
  const hist = await api("GET", "/api/history");
  hist.points.forEach(push);
  view.append(el("h2", {}, "Busiest queues"));
  const top = sortableTable(
    [["name", "queue"], ["depth", "depth", true], ["in_flight", "in flight", true], ["consumers", "consumers", true], ["in_rate", "in/s", true], ["out_rate", "out/s", true]],
    (q) => el("tr", {},
      el("td", {}, el("a", { href: `#/queue/${encodeURIComponent(q.name)}` }, q.name)),
      ...["depth", "in_flight", "consumers", "in_rate", "out_rate"].map((k) => el("td", { class: "num" }, fmt(q[k])))),
    { sortKey: "depth", desc: true },
  );
  view.append(top.table);
  poll(async () => {
    const [o, queues] = await Promise.all([api("GET", "/api/overview"), api("GET", "/api/queues")]);
    showNode(o);
    const t = o.totals;
    setText("o-uptime", `${Math.floor(o.uptime_s / 60)} min`);
    setText("o-connections", t.connections);
    setText("o-queues", t.queues);
    setText("o-topics", t.topics);
    setText("o-depth", t.depth);
    setText("o-inflight", t.in_flight);
    setText("o-in", o.rates.enqueue);
    setText("o-out", o.rates.dequeue);
    setText("o-memory", `${(o.memory.used / 1048576).toFixed(1)} / ${(o.memory.budget / 1048576).toFixed(0)} MiB`);
    if (o.sample) push(o.sample);
    top.update(queues.slice(0, 500).map((q) => ({ ...q, in_rate: q.rates.enqueue, out_rate: q.rates.dequeue })).sort((a, b) => b.depth - a.depth).slice(0, 10));
  });
}

async function destinationsPage() {
  const filter = el("input", { id: "filter", placeholder: "filter by name", type: "search" });
  view.append(el("h1", {}, "Destinations"), el("div", { class: "toolbar" }, filter));
  const cols = [["name", "queue"], ["depth", "depth", true], ["in_flight", "in flight", true], ["consumers", "consumers", true],
    ["enqueued", "enqueued", true], ["dequeued", "dequeued", true], ["redelivered", "redelivered", true],
    ["in_rate", "in/s", true], ["out_rate", "out/s", true]];
  const queues = sortableTable(cols, (q) => el("tr", { "data-queue": q.name },
    el("td", {}, el("a", { href: `#/queue/${encodeURIComponent(q.name)}` }, q.name)),
    ...cols.slice(1).map(([k]) => el("td", { class: "num" }, fmt(q[k])))));
  view.append(el("h2", {}, "Queues"), queues.table);
  const tcols = [["destination", "topic"], ["subscriptions", "subscriptions", true], ["durable_subscriptions", "durable", true],
    ["consumers", "consumers", true], ["depth", "queued", true], ["enqueued", "enqueued", true], ["in_rate", "in/s", true]];
  const topics = sortableTable(tcols, (t) => el("tr", {}, el("td", {}, t.destination),
    ...tcols.slice(1).map(([k]) => el("td", { class: "num" }, fmt(t[k])))));
  view.append(el("h2", {}, "Topics"), topics.table);
  let last = { queues: [], topics: [] };
  const render = () => {
    const f = filter.value.trim().toLowerCase();
    const match = (name) => !f || name.toLowerCase().includes(f);
    queues.update(last.queues.filter((q) => match(q.name)).map((q) => ({ ...q, in_rate: q.rates.enqueue, out_rate: q.rates.dequeue })));
    topics.update(last.topics.filter((t) => match(t.destination)).map((t) => ({ ...t, in_rate: t.rates.enqueue })));
  };
  filter.addEventListener("input", render);
  poll(async () => {
    const [q, t] = await Promise.all([api("GET", "/api/queues"), api("GET", "/api/topics")]);
    last = { queues: q, topics: t };
    render();
  });
}

function parseHeaders(text) {
  const headers = {};
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    const i = line.indexOf(":");
    if (i < 1) throw new Error(`header line "${line}" is not name: value`);
    headers[line.slice(0, i).trim()] = line.slice(i + 1).trim();
  }
  return headers;
}

async function queuePage(name) {
  view.append(
    el("h1", {}, "Queue ", el("span", { id: "queue-name" }, name)),
    el("div", { class: "cards" }, card("queued", "q-depth"), card("in flight", "q-inflight"), card("consumers", "q-consumers"),
      card("enqueued", "q-enqueued"), card("dequeued", "q-dequeued"), card("redelivered", "q-redelivered"),
      card("in / s", "q-in"), card("out / s", "q-out")),
  );
  const charts = el("div", { class: "charts" });
  view.append(charts);
  const depth = liveChart(charts, "Messages", [["queued", "#7b3fe4"], ["in flight", "#e08a00"]]);
  const rate = liveChart(charts, "Rates (msg/s)", [["in", "#2463eb"], ["out", "#1a8f4b"]]);

  // Send, purge, move.
  const body = el("textarea", { id: "send-body", placeholder: "message body" });
  const headers = el("textarea", { id: "send-headers", placeholder: "name: value (one per line)" });
  const persistent = el("input", { type: "checkbox", id: "send-persistent", checked: "checked" });
  const sendBtn = el("button", { id: "send-button", onclick: async () => {
    try {
      const r = await api("POST", `${qpath(name)}/messages`, { body: body.value, headers: parseHeaders(headers.value), persistent: persistent.checked });
      toast(`sent ${r.id}`);
      document.getElementById("send-result").textContent = `sent ${r.id}`;
      await browse();
    } catch (e) { toast(e.message, true); }
  } }, "Send");
  const target = el("input", { id: "move-target", placeholder: "target queue, e.g. orders" });
  const moveBtn = el("button", { id: "move-button", class: "secondary", onclick: async () => {
    const ids = [...document.querySelectorAll("input.pick:checked")].map((c) => c.value);
    try {
      const r = await api("POST", `${qpath(name)}/move`, ids.length ? { to: target.value, ids } : { to: target.value });
      toast(`moved ${r.moved} messages to ${r.to}`);
      await browse();
    } catch (e) { toast(e.message, true); }
  } }, "Move selected (or all)");
  const purgeBtn = el("button", { id: "purge-button", class: "danger", onclick: async () => {
    if (!confirm(`Delete every queued message of ${name}?`)) return;
    try {
      const r = await api("DELETE", `${qpath(name)}/messages`);
      toast(`purged ${r.purged} messages`);
      await browse();
    } catch (e) { toast(e.message, true); }
  } }, "Purge");
  view.append(el("div", { class: "panels" },
    el("div", { class: "panel" }, el("h2", {}, "Send a message"), body, headers,
      el("div", { class: "toolbar" }, el("label", {}, persistent, " persistent"), sendBtn, el("span", { id: "send-result", class: "muted" }))),
    el("div", { class: "panel" }, el("h2", {}, "Move and purge"),
      el("p", { class: "muted" }, "Move the messages ticked below (or all of them) to another queue, e.g. from a DLQ back to its queue."),
      el("div", { class: "toolbar" }, target, moveBtn), el("div", { class: "toolbar" }, purgeBtn))));

  // Browse (paged, without consuming).
  let offset = 0;
  const pageSize = 50;
  const tbody = el("tbody", { id: "browse-rows" });
  const info = el("span", { class: "muted", id: "browse-info" });
  const browse = async () => {
    const page = await api("GET", `${qpath(name)}/messages?offset=${offset}&limit=${pageSize}`);
    info.textContent = page.messages.length ? `messages ${offset + 1}–${offset + page.messages.length} of ${page.depth}` : `no queued messages (${page.depth})`;
    tbody.replaceChildren(...page.messages.map((m) => el("tr", {},
      el("td", {}, el("input", { type: "checkbox", class: "pick", value: m.id })),
      el("td", {}, m.id), el("td", { class: "num" }, m.size), el("td", {}, m.redelivered ? "yes" : ""),
      el("td", {}, new Date(m.timestamp).toLocaleTimeString()),
      el("td", { class: "body" }, m.body_encoding === "base64" ? `(base64) ${m.body}` : m.body))));
  };
  view.append(el("h2", {}, "Messages"),
    el("div", { class: "toolbar" },
      el("button", { class: "secondary", onclick: () => { offset = Math.max(0, offset - pageSize); browse(); } }, "‹ Previous"),
      el("button", { class: "secondary", onclick: () => { offset += pageSize; browse(); } }, "Next ›"),
      el("button", { class: "secondary", onclick: browse }, "Refresh"), info),
    el("table", {}, el("thead", {}, el("tr", {}, ...["", "id", "size", "redelivered", "time", "body"].map((h) => el("th", {}, h)))), tbody));
  view.append(el("h2", {}, "Consumers"), el("table", {}, el("tbody", { id: "consumer-rows" })));
  await browse();
  poll(async () => {
    const q = await api("GET", qpath(name));
    setText("q-depth", q.depth);
    setText("q-inflight", q.in_flight);
    setText("q-consumers", q.consumers);
    setText("q-enqueued", q.enqueued);
    setText("q-dequeued", q.dequeued);
    setText("q-redelivered", q.redelivered);
    setText("q-in", q.rates.enqueue);
    setText("q-out", q.rates.dequeue);
    const now = Date.now() / 1000;
    depth.push(now, [q.depth, q.in_flight]);
    rate.push(now, [q.rates.enqueue, q.rates.dequeue]);
    const rows = document.getElementById("consumer-rows");
    rows.replaceChildren(...(q.consumer_details.length ? q.consumer_details.map((c) => el("tr", {},
      el("td", {}, c.connection), el("td", {}, c.subscription), el("td", {}, c.ack),
      el("td", { class: "num" }, `${c.unacked} / ${c.prefetch} unacked`))) : [el("tr", {}, el("td", { class: "empty" }, "no consumers"))]));
  });
}

async function connectionsPage() {
  view.append(el("h1", {}, "Connections"));
  const cols = [["id", "id"], ["protocol", "protocol"], ["peer", "peer"], ["user", "user"], ["client_id", "client-id"], ["n_consumers", "consumers", true], ["since", "connected"]];
  const table = sortableTable(cols, (c) => el("tr", {},
    ...cols.map(([k, , num]) => el("td", { class: num ? "num" : "" }, c[k] ?? "–")),
    el("td", {}, el("button", { class: "danger", onclick: async () => {
      try { await api("DELETE", `/api/connections/${encodeURIComponent(c.id)}`); toast(`closed ${c.id}`); } catch (e) { toast(e.message, true); }
    } }, "Close"))));
  view.append(table.table);
  poll(async () => {
    const conns = await api("GET", "/api/connections");
    table.update(conns.map((c) => ({ ...c, n_consumers: c.consumers.length, since: new Date(c.connected_at * 1000).toLocaleTimeString() })));
  });
}

// -- routing -----------------------------------------------------------------

async function route() {
  clearInterval(timer);
  pageToken += 1;
  view.replaceChildren();
  const hash = location.hash || "#/";
  const [, page, arg] = hash.match(/^#\/([^/]*)\/?(.*)$/) || [];
  document.querySelectorAll("[data-nav]").forEach((a) => a.classList.toggle("active",
    a.dataset.nav === (page === "queue" ? "destinations" : page || "overview")));
  try {
    if (page === "destinations") await destinationsPage();
    else if (page === "connections") await connectionsPage();
    else if (page === "queue" && arg) await queuePage(decodeURIComponent(arg));
    else await overviewPage();
  } catch (e) {
    view.append(el("p", { class: "empty" }, `Error: ${e.message}`));
  }
  api("GET", "/api/overview").then(showNode).catch(() => {});
}

window.addEventListener("hashchange", route);
route();
