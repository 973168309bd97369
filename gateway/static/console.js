// K-AIP GraphQL console: queries and mutations over HTTP, subscriptions over WebSocket
// (graphql-transport-ws), and a schema browser from introspection. No external assets.
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const tokenInput = $("token"), query = $("query"), variables = $("variables");
  const output = $("output"), status = $("status"), runBtn = $("run"), stopBtn = $("stop");
  let socket = null;

  // Each step of running a call, in order. "# variables:" gives the variables to start from.
  const EXAMPLES = {
    "Who am I": "{ me { subject role consortiumId } }",
    "Platform health": "{ platformHealth { service ready database broker assignedPartitions } }",
    "1. Create a programme (officer)":
      'mutation { createProgramme(name: "Sovereign AI Foundation Model", fiscalYear: 2026) { id name fiscalYear } }',
    "2. Open a call (officer)":
      'mutation OpenCall($input: OpenCallInput!) {\n  openCall(input: $input) { id title closesAtKst eligibility { minUniversityMembers allowedLeadTypes maxDataBudgetKrw } requiredDocuments }\n}\n# variables: {"input": {"programmeId": "<programme id>", "title": "Sovereign AI Foundation Model 2026", "opensAt": "2026-01-01T00:00:00Z", "closesAt": "2026-12-31T09:00:00Z", "requiredDocuments": ["proposal"]}}',
    "List calls": "{ calls(first: 20) { items { id title closesAtKst decidedAt } nextCursor } }",
    "3. Register the consortium (consortium)":
      'mutation Register($id: UUID!, $input: RegisterConsortiumInput!) {\n  registerConsortium(id: $id, input: $input) { id name members { name orgType role businessRegistrationNumber } }\n}\n# variables: {"id": "<your consortium id>", "input": {"name": "K-Model Consortium", "members": [{"name": "Lead Co", "orgType": "SME", "businessRegistrationNumber": "123-45-67891", "role": "LEAD"}, {"name": "Korea University", "orgType": "UNIVERSITY", "businessRegistrationNumber": "000-00-00015", "role": "PARTNER"}]}}',
    "4. Draft a proposal (consortium)":
      'mutation Draft($input: ProposalInput!) {\n  createProposal(input: $input) { id status version }\n}\n# variables: {"input": {"callId": "<call id>", "title": "Our model", "summary": "What we will build", "resources": {"gpus": [{"model": "H100", "count": 500}], "dataBudgetKrw": 10000000000, "talentFundingKrw": 1000000000}}}',
    "5. Upload a document (consortium)":
      'mutation { uploadDocument(proposalId: "<proposal id>", kind: "proposal", filename: "plan.pdf", contentBase64: "UEsDBA==") { documents { kind sha256 sizeBytes } } }',
    "6. Submit (consortium)":
      'mutation { submitProposal(proposalId: "<proposal id>", idempotencyKey: "submit-1") { proposalId version contentHash submittedAtKst } }',
    "Proposals with their evaluation cases":
      "{ proposals(first: 20) { items { id title status consortiumId evaluationCase { id status stage } } nextCursor } }",
    "7. Default evaluation settings": "{ defaultEvaluationConfig { criteria { key name maxPoints minPoints } minTotal stages { name keepTop minTotal } reviewersPerProposal maxAssignmentsPerReviewer normalise tieBreak teams constraints { category atLeast atMost } } }",
    "8. Configure the evaluation (officer)":
      'mutation Configure($call: UUID!, $input: EvaluationConfigInput!) {\n  configureEvaluation(callId: $call, input: $input) { teams }\n}\n# variables: {"call": "<call id>", "input": {"criteria": [{"key": "technology", "name": "Model technology & development", "maxPoints": 40}, {"key": "strategy", "name": "Development goals & strategy", "maxPoints": 30}, {"key": "ecosystem", "name": "Ecosystem impact & contribution plan", "maxPoints": 30}], "stages": [{"name": "written review", "keepTop": 10}, {"name": "presentation"}], "reviewersPerProposal": 3, "maxAssignmentsPerReviewer": 10, "normalise": true, "tieBreak": ["criterion:technology", "earlier_submission"], "teams": 5, "constraints": [{"category": "sme_or_academia_led", "atLeast": 1}]}}',
    "9. Register a reviewer (officer)":
      'mutation { registerReviewer(input: {id: "dev-reviewer", name: "Dr. Kim", organisation: "Seoul National University", expertise: ["LLM"]}) { id } }',
    "10. Assign reviewers to a stage (officer)":
      'mutation { assignReviewers(callId: "<call id>", stage: 0) { assigned blocked { reviewerId proposalId reason } } }',
    "11. My assignments (reviewer)": "{ assignments(first: 50) { items { id proposalId title stage scored } nextCursor } }",
    "12. Score an assignment (reviewer)":
      'mutation { scoreProposal(assignmentId: "<assignment id>", scores: [{criterion: "technology", points: 34, comment: "credible pre-training plan"}, {criterion: "strategy", points: 25}, {criterion: "ecosystem", points: 24}]) { total } }',
    "13. Close a stage (officer)":
      'mutation { closeStage(callId: "<call id>", stage: 0) { position title totalCenti advanced eligible shortfalls tieBrokenBy } }',
    "14. Propose the selection (officer)":
      'mutation { proposeSelection(callId: "<call id>") { selected totalCenti departure { promoted displaced reasons } overrideReason } }',
    "15. Publish the decision (officer)": 'mutation { publishSelection(callId: "<call id>") { selected publishedAt } }',
    "16. Feedback (consortium, after publication)":
      '{ feedback(callId: "<call id>") { status stages { stageName position totalCenti perCriterion { criterion centi } distribution { criterion count minCenti medianCenti maxCenti meanCenti } } } }',
    "17. File an appeal (consortium)": 'mutation { fileAppeal(callId: "<call id>", proposalId: "<proposal id>", grounds: "...") { id filedAt } }',
    "18. Answer an appeal (officer)": 'mutation { answerAppeal(appealId: "<appeal id>", answer: "...") { answeredAt } }',
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
