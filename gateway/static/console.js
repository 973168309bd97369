// K-AIP GraphQL console: queries and mutations over HTTP, subscriptions over WebSocket
// (graphql-transport-ws), and a schema browser from introspection. No external assets.
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const tokenInput = $("token"), query = $("query"), variables = $("variables");
  const output = $("output"), status = $("status"), runBtn = $("run"), stopBtn = $("stop");
  let socket = null;

  const EXAMPLES = {
    "Who am I": "{ me { subject role consortiumId } }",
    "Platform health": "{ platformHealth { service ready database broker assignedPartitions } }",
    "Open a call (officer)":
      'mutation OpenCall($input: OpenCallInput!) {\n  openCall(input: $input) { id title opensAt closesAt closesAtKst }\n}\n# variables: {"input": {"title": "Sovereign AI Foundation Model 2026", "opensAt": "2026-01-01T00:00:00Z", "closesAt": "2026-12-31T09:00:00Z"}}',
    "List calls": "{ calls(first: 20) { items { id title closesAtKst } nextCursor } }",
    "Submit a proposal (consortium)":
      'mutation Submit($input: SubmitProposalInput!) {\n  submitProposal(input: $input) { id title submittedAt }\n}\n# variables: {"input": {"callId": "<call id>", "title": "Our model", "summary": "What we will build"}}',
    "Proposals with their evaluation cases":
      "{ proposals(first: 20) { items { id title consortiumId evaluationCase { id status openedAt } } nextCursor } }",
    "Evaluation cases": "{ evaluationCases(first: 20) { items { id proposalId status openedAt } nextCursor } }",
    "Subscribe to events": "subscription { events { type producer aggregateId occurredAt data traceId } }",
  };

  tokenInput.value = localStorage.getItem("kaip.token") || "";
  tokenInput.addEventListener("change", () => {
    localStorage.setItem("kaip.token", tokenInput.value.trim());
    whoAmI();
    loadSchema();
  });

  const select = $("examples");
  Object.keys(EXAMPLES).forEach((name) => {
    const o = document.createElement("option");
    o.value = name; o.textContent = name; select.appendChild(o);
  });
  select.addEventListener("change", () => {
    const text = EXAMPLES[select.value];
    if (!text) return;
    const m = text.match(/\n# variables: (.*)$/);
    query.value = m ? text.slice(0, m.index) : text;
    variables.value = m ? JSON.stringify(JSON.parse(m[1]), null, 2) : "{}";
    select.value = "";
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
  whoAmI();
  loadSchema();
})();
