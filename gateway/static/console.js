// K-AIP GraphQL console: queries and mutations over HTTP, subscriptions over WebSocket
// (graphql-transport-ws), and a schema browser from introspection. No external assets.
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const tokenInput = $("token"), query = $("query"), variables = $("variables");
  const output = $("output"), status = $("status"), runBtn = $("run"), stopBtn = $("stop");
  let socket = null;

  // Each step of running a call, in order, from examples.json (which the graphql-js test
  // also validates against the published schema). Money (`Krw`) is a string of digits.
  let EXAMPLES = [];

  tokenInput.value = localStorage.getItem("kaip.token") || "";
  tokenInput.addEventListener("change", () => {
    localStorage.setItem("kaip.token", tokenInput.value.trim());
    whoAmI();
    loadSchema();
  });

  const select = $("examples");
  async function loadExamples() {
    try {
      const res = await fetch("/console/examples.json");
      EXAMPLES = await res.json();
    } catch (_) { EXAMPLES = []; }
    EXAMPLES.forEach((ex, i) => {
      const o = document.createElement("option");
      o.value = String(i); o.textContent = ex.name; select.appendChild(o);
    });
  }
  select.addEventListener("change", () => {
    if (select.value === "") return;
    const ex = EXAMPLES[Number(select.value)];
    select.value = "";
    if (!ex) return;
    query.value = ex.query;
    variables.value = JSON.stringify(ex.variables || {}, null, 2);
  });

  function headers() {
    const h = { "content-type": "application/json" };
    const t = tokenInput.value.trim();
    if (t) h.authorization = "Bearer " + t;
    return h;
  }

  function show(value, isError) {
    output.textContent = typeof value === "string" ? value : JSON.stringify(value, null, 2);
    output.classList.toggle("error", !!isError);
  }

  function parseVariables() {
    const text = variables.value.trim();
    if (!text) return {};
    try { return JSON.parse(text); }
    catch (e) { throw new Error("Variables are not valid JSON: " + e.message); }
  }

  async function post(body) {
    const res = await fetch("/graphql", { method: "POST", headers: headers(), body: JSON.stringify(body) });
    const json = await res.json();
    return { json, traceId: res.headers.get("x-trace-id") };
  }

  async function run() {
    let vars;
    try { vars = parseVariables(); } catch (e) { show(e.message, true); return; }
    if (/^\s*subscription\b/.test(query.value)) { subscribe(vars); return; }
    status.textContent = "Running…";
    const started = performance.now();
    try {
      const { json, traceId } = await post({ query: query.value, variables: vars });
      const ms = Math.round(performance.now() - started);
      status.textContent = ms + " ms" + (traceId ? " · trace " + traceId : "");
      show(json, json.errors && !json.data);
    } catch (e) {
      status.textContent = "";
      show("Request failed: " + e.message, true);
    }
  }

  function subscribe(vars) {
    stop();
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    socket = new WebSocket(proto + "//" + location.host + "/graphql", "graphql-transport-ws");
    const received = [];
    stopBtn.disabled = false;
    status.textContent = "Connecting…";
    socket.onopen = () => {
      const t = tokenInput.value.trim();
      socket.send(JSON.stringify({ type: "connection_init", payload: t ? { Authorization: "Bearer " + t } : {} }));
    };
    socket.onmessage = (msg) => {
      const m = JSON.parse(msg.data);
      if (m.type === "connection_ack") {
        status.textContent = "Subscribed: waiting for events";
        socket.send(JSON.stringify({ id: "1", type: "subscribe", payload: { query: query.value, variables: vars } }));
      } else if (m.type === "next") {
        received.unshift(m.payload);
        status.textContent = received.length + " event(s)";
        show(received);
      } else if (m.type === "error") {
        show({ errors: m.payload }, true);
      } else if (m.type === "ping") {
        socket.send(JSON.stringify({ type: "pong" }));
      }
    };
    socket.onclose = (e) => {
      stopBtn.disabled = true;
      status.textContent = "Subscription closed" + (e.reason ? ": " + e.reason : "");
      socket = null;
    };
  }

  function stop() {
    if (socket) { socket.close(); socket = null; }
    stopBtn.disabled = true;
  }

  async function whoAmI() {
    const who = $("who");
    if (!tokenInput.value.trim()) { who.textContent = "not signed in"; return; }
    try {
      const { json } = await post({ query: "{ me { subject role consortiumId } }" });
      if (json.data && json.data.me) {
        const me = json.data.me;
        who.textContent = me.role + " · " + me.subject + (me.consortiumId ? " · " + me.consortiumId.slice(0, 8) : "");
      } else {
        who.textContent = (json.errors && json.errors[0].extensions && json.errors[0].extensions.code) || "token refused";
      }
    } catch (_) { who.textContent = "gateway unreachable"; }
  }

  function typeName(t) {
    if (!t) return "";
    if (t.kind === "NON_NULL") return typeName(t.ofType) + "!";
    if (t.kind === "LIST") return "[" + typeName(t.ofType) + "]";
    return t.name;
  }

  let schemaTypes = null;
  async function loadSchema() {
    const q = "{ __schema { queryType { name } mutationType { name } subscriptionType { name } types { name fields { name description args { name type { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } type { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } } }";
    try {
      const { json } = await post({ query: q });
      schemaTypes = json.data.__schema;
      renderSchema();
    } catch (e) { $("schema").textContent = "Schema unavailable: " + e.message; }
  }

  function renderSchema() {
    const box = $("schema");
    box.textContent = "";
    if (!schemaTypes) return;
    const filter = $("filter").value.trim().toLowerCase();
    const roots = [["Queries", schemaTypes.queryType], ["Mutations", schemaTypes.mutationType], ["Subscriptions", schemaTypes.subscriptionType]];
    roots.forEach(([title, root]) => {
      if (!root) return;
      const type = schemaTypes.types.find((t) => t.name === root.name);
      const h = document.createElement("h3"); h.textContent = title; box.appendChild(h);
      (type.fields || []).filter((f) => !filter || f.name.toLowerCase().includes(filter)).forEach((f) => {
        const div = document.createElement("div"); div.className = "field";
        const args = f.args.map((a) => a.name + ": " + typeName(a.type)).join(", ");
        const code = document.createElement("code");
        code.textContent = f.name + (args ? "(" + args + ")" : "") + ": " + typeName(f.type);
        div.appendChild(code);
        if (f.description) { const d = document.createElement("div"); d.className = "desc"; d.textContent = f.description; div.appendChild(d); }
        div.addEventListener("click", () => {
          const kw = title === "Mutations" ? "mutation " : title === "Subscriptions" ? "subscription " : "";
          query.value = kw + "{\n  " + f.name + (args ? "(" + f.args.map((a) => a.name + ": $" + a.name).join(", ") + ")" : "") + " {\n    \n  }\n}";
        });
        box.appendChild(div);
      });
    });
  }

  $("filter").addEventListener("input", renderSchema);
  runBtn.addEventListener("click", run);
  stopBtn.addEventListener("click", stop);
  document.addEventListener("keydown", (e) => {
    if ((e.ctrlKey || e.metaKey) && e.key === "Enter") { e.preventDefault(); run(); }
  });
  loadExamples();
  whoAmI();
  loadSchema();
})();
