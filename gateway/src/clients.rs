//! Typed HTTP clients for the services. Every call forwards the caller's token (services
//! check it again) and the current trace context (so the trace continues in the service).

use async_graphql::ErrorExtensions;
use kaip_contracts::dto::budget;
use kaip_contracts::dto::gpu;
use kaip_contracts::dto::intake::{
    Call, Consortium, CreateProgramme, DraftProposal, OpenCall, Programme, Proposal,
    ProposalVersion, ProposalVersions, Receipt, RegisterConsortium, Submit, UpdateDraft,
    UploadDocument, Withdraw,
};
use kaip_contracts::dto::scoring::EvaluationCase;
use kaip_contracts::dto::{Page, Readiness};
use kaip_contracts::{CallId, ConsortiumId, ErrorBody, ProposalId};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// A service refused or failed a call. `code` is the service's stable error code.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{message}")]
pub struct UpstreamError {
    pub code: String,
    pub message: String,
}

impl UpstreamError {
    fn unavailable(service: &str, e: impl std::fmt::Display) -> Self {
        tracing::warn!(service, error = %e, "service call failed");
        Self {
            code: "SERVICE_UNAVAILABLE".into(),
            message: format!("the {service} service is unavailable"),
        }
    }
}

/// How many service calls one GraphQL request may make. Shared by every resolver of the
/// request (it lives in the request's data), so aliases, lists and nested fields all draw
/// on the same allowance.
#[derive(Debug)]
pub struct CallBudget {
    used: AtomicU32,
    limit: u32,
}

impl CallBudget {
    pub fn new(limit: u32) -> Self {
        Self {
            used: AtomicU32::new(0),
            limit,
        }
    }

    /// Calls made (or refused) so far.
    pub fn used(&self) -> u32 {
        self.used.load(Ordering::Relaxed)
    }

    fn take(&self) -> Result<(), UpstreamError> {
        let before = self.used.fetch_add(1, Ordering::Relaxed);
        if before >= self.limit {
            return Err(UpstreamError {
                code: "BUDGET_EXCEEDED".into(),
                message: format!(
                    "this request needs more than {} service calls (limits.max_service_calls): \
                     ask for fewer fields, aliases or items",
                    self.limit
                ),
            });
        }
        Ok(())
    }
}

impl ErrorExtensions for UpstreamError {
    fn extend(&self) -> async_graphql::Error {
        async_graphql::Error::new(&self.message)
            .extend_with(|_, e| e.set("code", self.code.clone()))
    }
}

/// One service's base URL plus a shared connection pool.
///
/// At most `max_in_flight` calls to one service run at a time (the rest wait for a permit):
/// under load this keeps the number of connections to a service bounded and reused, instead
/// of opening one per concurrent call until file descriptors or the service's backlog run out.
#[derive(Clone, Debug)]
pub struct ServiceClient {
    name: &'static str,
    base: String,
    http: reqwest::Client,
    in_flight: Arc<Semaphore>,
    /// Calls made through this gateway since it started (all requests).
    calls: Arc<AtomicU64>,
    /// The current GraphQL request's allowance, when the client was made for one.
    budget: Option<Arc<CallBudget>>,
}

impl ServiceClient {
    pub fn new(
        name: &'static str,
        base: &str,
        http: reqwest::Client,
        max_in_flight: usize,
        calls: Arc<AtomicU64>,
    ) -> Self {
        Self {
            name,
            base: base.trim_end_matches('/').to_owned(),
            http,
            in_flight: Arc::new(Semaphore::new(max_in_flight.max(1))),
            calls,
            budget: None,
        }
    }

    /// Charges one call to the request's budget; refused once it is spent.
    fn admit(&self) -> Result<(), UpstreamError> {
        if let Some(budget) = &self.budget {
            budget.take()?;
        }
        self.calls.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Sends `req` once a permit is free, charging the budget first.
    async fn dispatch(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, UpstreamError> {
        self.admit()?;
        let _permit = self
            .in_flight
            .acquire()
            .await
            .map_err(|e| UpstreamError::unavailable(self.name, e))?;
        req.send()
            .await
            .map_err(|e| UpstreamError::unavailable(self.name, e))
    }

    fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        for (k, v) in kaip_telemetry::current_trace_headers() {
            req = req.header(k, v);
        }
        req
    }

    /// A service's refusal as its `{code, message}`, or "unavailable" if it sent no such body.
    async fn refusal(&self, res: reqwest::Response) -> UpstreamError {
        let status = res.status();
        match res.json::<ErrorBody>().await {
            Ok(body) => UpstreamError {
                code: body.code,
                message: body.message,
            },
            Err(e) => UpstreamError::unavailable(self.name, format!("{status}: {e}")),
        }
    }

    async fn send<T: DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<T, UpstreamError> {
        let res = self.dispatch(req).await?;
        let status = res.status();
        if status.is_success() {
            return res
                .json::<T>()
                .await
                .map_err(|e| UpstreamError::unavailable(self.name, e));
        }
        Err(self.refusal(res).await)
    }

    pub async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        token: Option<&str>,
    ) -> Result<T, UpstreamError> {
        self.send(self.request(reqwest::Method::GET, path, token))
            .await
    }

    /// A POST whose success has no body (204).
    pub async fn post_empty<B: Serialize>(
        &self,
        path: &str,
        body: &B,
        token: Option<&str>,
    ) -> Result<(), UpstreamError> {
        let res = self
            .dispatch(self.request(reqwest::Method::POST, path, token).json(body))
            .await?;
        if res.status().is_success() {
            return Ok(());
        }
        Err(self.refusal(res).await)
    }

    pub async fn put<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
        token: Option<&str>,
    ) -> Result<T, UpstreamError> {
        self.send(self.request(reqwest::Method::PUT, path, token).json(body))
            .await
    }

    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
        token: Option<&str>,
    ) -> Result<T, UpstreamError> {
        self.send(self.request(reqwest::Method::POST, path, token).json(body))
            .await
    }

    /// The service's readiness report, or why it could not be had.
    pub async fn readiness(&self) -> Result<Readiness, String> {
        let res = self
            .request(reqwest::Method::GET, "/health/ready", None)
            .timeout(Duration::from_secs(3))
            .send()
            .await
            .map_err(|e| format!("unreachable: {e}"))?;
        res.json::<Readiness>()
            .await
            .map_err(|e| format!("bad readiness answer: {e}"))
    }

    pub fn name(&self) -> &'static str {
        self.name
    }
}

pub(crate) fn page_query(
    first: Option<i32>,
    after: Option<&str>,
    extra: &[(&str, String)],
) -> String {
    let mut parts: Vec<String> = extra.iter().map(|(k, v)| format!("{k}={v}")).collect();
    if let Some(first) = first {
        parts.push(format!("limit={first}"));
    }
    if let Some(after) = after {
        // Cursors are UUIDs, but never trust a client string into a URL unescaped.
        let safe: String = after
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        parts.push(format!("after={safe}"));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

fn http_client(timeout: Duration, max_in_flight: usize) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(3)))
        .tcp_nodelay(true)
        // Keep as many idle connections as may be in flight, so that a burst reuses them.
        .pool_max_idle_per_host(max_in_flight.max(1))
        // Idle connections are dropped well before the service would close them, so a
        // request is never sent on a connection the service is closing.
        .pool_idle_timeout(kaip_service::app::KEEP_ALIVE / 2)
        .build()?)
}

fn join_ids(ids: &[ProposalId]) -> String {
    ids.iter()
        .map(|id| id.0.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// All service clients.
#[derive(Clone, Debug)]
pub struct Services {
    pub intake: ServiceClient,
    pub scoring: ServiceClient,
    pub gpu_ledger: ServiceClient,
    pub data_budget: ServiceClient,
    pub talent: ServiceClient,
    pub milestones: ServiceClient,
    pub all: Vec<ServiceClient>,
    calls: Arc<AtomicU64>,
}

impl Services {
    pub fn new(urls: &crate::settings::ServiceUrls, timeout: Duration) -> anyhow::Result<Self> {
        Self::with_limits(urls, timeout, 64)
    }

    /// `max_in_flight`: concurrent calls per service (see [`ServiceClient`]).
    pub fn with_limits(
        urls: &crate::settings::ServiceUrls,
        timeout: Duration,
        max_in_flight: usize,
    ) -> anyhow::Result<Self> {
        let http = http_client(timeout, max_in_flight)?;
        let calls = Arc::new(AtomicU64::new(0));
        let client = |name: &'static str, url: &str| {
            ServiceClient::new(name, url, http.clone(), max_in_flight, calls.clone())
        };
        let all: Vec<ServiceClient> = urls
            .all()
            .iter()
            .map(|(name, url)| client(name, url))
            .collect();
        Ok(Self {
            intake: all[0].clone(),
            scoring: all[1].clone(),
            gpu_ledger: all[2].clone(),
            data_budget: all[3].clone(),
            talent: all[4].clone(),
            milestones: all[5].clone(),
            all,
            calls,
        })
    }

    /// The same services through a connection pool of their own (one per HTTP worker). A
    /// pooled connection's I/O runs on the runtime that opened it: shared between actix
    /// workers, a call from one worker would wait on another worker's thread. The in-flight
    /// bound and the call counter stay shared.
    pub fn with_own_connections(
        &self,
        timeout: Duration,
        max_in_flight: usize,
    ) -> anyhow::Result<Self> {
        let http = http_client(timeout, max_in_flight)?;
        let with = |c: &ServiceClient| ServiceClient {
            http: http.clone(),
            ..c.clone()
        };
        Ok(Self {
            intake: with(&self.intake),
            scoring: with(&self.scoring),
            gpu_ledger: with(&self.gpu_ledger),
            data_budget: with(&self.data_budget),
            talent: with(&self.talent),
            milestones: with(&self.milestones),
            all: self.all.iter().map(with).collect(),
            calls: self.calls.clone(),
        })
    }

    /// The same clients, charging every call to `budget` (one GraphQL request's allowance).
    pub fn for_request(&self, budget: Arc<CallBudget>) -> Self {
        let with = |c: &ServiceClient| ServiceClient {
            budget: Some(budget.clone()),
            ..c.clone()
        };
        Self {
            intake: with(&self.intake),
            scoring: with(&self.scoring),
            gpu_ledger: with(&self.gpu_ledger),
            data_budget: with(&self.data_budget),
            talent: with(&self.talent),
            milestones: with(&self.milestones),
            all: self.all.iter().map(with).collect(),
            calls: self.calls.clone(),
        }
    }

    /// Service calls made since the gateway started, over all requests (operators and tests
    /// use it to see the fan-out of a query).
    pub fn calls_made(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    // ---- intake ----

    pub async fn open_call(&self, token: &str, body: &OpenCall) -> Result<Call, UpstreamError> {
        self.intake.post("/calls", body, Some(token)).await
    }

    pub async fn calls(
        &self,
        token: &str,
        programme: Option<uuid::Uuid>,
        first: Option<i32>,
        after: Option<&str>,
    ) -> Result<Page<Call>, UpstreamError> {
        let extra: Vec<(&str, String)> = programme
            .map(|p| ("programme_id", p.to_string()))
            .into_iter()
            .collect();
        self.intake
            .get(
                &format!("/calls{}", page_query(first, after, &extra)),
                Some(token),
            )
            .await
    }

    pub async fn create_programme(
        &self,
        token: &str,
        body: &CreateProgramme,
    ) -> Result<Programme, UpstreamError> {
        self.intake.post("/programmes", body, Some(token)).await
    }

    pub async fn programmes(
        &self,
        token: &str,
        first: Option<i32>,
        after: Option<&str>,
    ) -> Result<Page<Programme>, UpstreamError> {
        self.intake
            .get(
                &format!("/programmes{}", page_query(first, after, &[])),
                Some(token),
            )
            .await
    }

    pub async fn call(&self, token: &str, id: CallId) -> Result<Call, UpstreamError> {
        self.intake.get(&format!("/calls/{id}"), Some(token)).await
    }

    pub async fn register_consortium(
        &self,
        token: &str,
        id: ConsortiumId,
        body: &RegisterConsortium,
    ) -> Result<Consortium, UpstreamError> {
        self.intake
            .put(&format!("/consortia/{id}"), body, Some(token))
            .await
    }

    pub async fn consortium(
        &self,
        token: &str,
        id: ConsortiumId,
    ) -> Result<Consortium, UpstreamError> {
        self.intake
            .get(&format!("/consortia/{id}"), Some(token))
            .await
    }

    pub async fn consortia(
        &self,
        token: &str,
        first: Option<i32>,
        after: Option<&str>,
    ) -> Result<Page<Consortium>, UpstreamError> {
        self.intake
            .get(
                &format!("/consortia{}", page_query(first, after, &[])),
                Some(token),
            )
            .await
    }

    pub async fn create_proposal(
        &self,
        token: &str,
        body: &DraftProposal,
    ) -> Result<Proposal, UpstreamError> {
        self.intake.post("/proposals", body, Some(token)).await
    }

    pub async fn update_proposal(
        &self,
        token: &str,
        id: ProposalId,
        body: &UpdateDraft,
    ) -> Result<Proposal, UpstreamError> {
        self.intake
            .put(&format!("/proposals/{id}"), body, Some(token))
            .await
    }

    pub async fn upload_document(
        &self,
        token: &str,
        id: ProposalId,
        kind: &str,
        body: &UploadDocument,
    ) -> Result<Proposal, UpstreamError> {
        let kind: String = kind
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        self.intake
            .put(
                &format!("/proposals/{id}/documents/{kind}"),
                body,
                Some(token),
            )
            .await
    }

    pub async fn proposal_versions(
        &self,
        token: &str,
        id: ProposalId,
    ) -> Result<Vec<ProposalVersion>, UpstreamError> {
        self.intake
            .get(&format!("/proposals/{id}/versions"), Some(token))
            .await
    }

    /// The versions of many proposals in one call; proposals the caller may not see are
    /// absent from the answer.
    pub async fn proposal_versions_many(
        &self,
        token: &str,
        ids: &[ProposalId],
    ) -> Result<Vec<ProposalVersions>, UpstreamError> {
        self.intake
            .get(
                &format!("/proposals/versions?ids={}", join_ids(ids)),
                Some(token),
            )
            .await
    }

    pub async fn submit_proposal(
        &self,
        token: &str,
        id: ProposalId,
        body: &Submit,
    ) -> Result<Receipt, UpstreamError> {
        self.intake
            .post(&format!("/proposals/{id}/submit"), body, Some(token))
            .await
    }

    pub async fn withdraw_proposal(
        &self,
        token: &str,
        id: ProposalId,
        body: &Withdraw,
    ) -> Result<Proposal, UpstreamError> {
        self.intake
            .post(&format!("/proposals/{id}/withdraw"), body, Some(token))
            .await
    }

    pub async fn proposals(
        &self,
        token: &str,
        call: Option<CallId>,
        first: Option<i32>,
        after: Option<&str>,
    ) -> Result<Page<Proposal>, UpstreamError> {
        let extra: Vec<(&str, String)> = call
            .map(|c| ("call_id", c.to_string()))
            .into_iter()
            .collect();
        self.intake
            .get(
                &format!("/proposals{}", page_query(first, after, &extra)),
                Some(token),
            )
            .await
    }

    pub async fn proposal(&self, token: &str, id: ProposalId) -> Result<Proposal, UpstreamError> {
        self.intake
            .get(&format!("/proposals/{id}"), Some(token))
            .await
    }

    // ---- scoring ----

    pub async fn evaluation_cases(
        &self,
        token: &str,
        call: Option<CallId>,
        first: Option<i32>,
        after: Option<&str>,
    ) -> Result<Page<EvaluationCase>, UpstreamError> {
        let extra: Vec<(&str, String)> = call
            .map(|c| ("call_id", c.to_string()))
            .into_iter()
            .collect();
        self.scoring
            .get(
                &format!("/cases{}", page_query(first, after, &extra)),
                Some(token),
            )
            .await
    }

    /// The cases of many proposals in one call; a proposal without a case (or one the
    /// caller may not see) is absent from the answer.
    pub async fn evaluation_cases_of_many(
        &self,
        token: &str,
        ids: &[ProposalId],
    ) -> Result<Vec<EvaluationCase>, UpstreamError> {
        let page: Page<EvaluationCase> = self
            .scoring
            .get(
                &format!("/cases?proposal_ids={}", join_ids(ids)),
                Some(token),
            )
            .await?;
        Ok(page.items)
    }

    pub async fn evaluation_case_of(
        &self,
        token: &str,
        proposal: ProposalId,
    ) -> Result<EvaluationCase, UpstreamError> {
        self.scoring
            .get(&format!("/proposals/{proposal}/case"), Some(token))
            .await
    }
}

/// A query string from `(key, value)` pairs, each value percent-encoded (everything but
/// RFC 3986's unreserved characters), so no client string can add or change a parameter.
pub(crate) fn query_string(pairs: &[(&str, String)]) -> String {
    let encoded: Vec<String> = pairs
        .iter()
        .map(|(k, v)| {
            let mut out = String::with_capacity(v.len());
            for b in v.bytes() {
                if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                    out.push(b as char);
                } else {
                    out.push_str(&format!("%{b:02X}"));
                }
            }
            format!("{k}={out}")
        })
        .collect();
    if encoded.is_empty() {
        String::new()
    } else {
        format!("?{}", encoded.join("&"))
    }
}

/// The data budget (`services/data-budget`); the service checks the caller again and keeps
/// a consortium user to its own team.
impl Services {
    pub async fn data_budgets(
        &self,
        token: &str,
        filter: &[(&str, String)],
    ) -> Result<Vec<budget::Budget>, UpstreamError> {
        self.data_budget
            .get(&format!("/budgets{}", query_string(filter)), Some(token))
            .await
    }

    pub async fn data_commitments(
        &self,
        token: &str,
        filter: &[(&str, String)],
    ) -> Result<Vec<budget::Commitment>, UpstreamError> {
        self.data_budget
            .get(
                &format!("/commitments{}", query_string(filter)),
                Some(token),
            )
            .await
    }

    pub async fn data_burn(
        &self,
        token: &str,
        filter: &[(&str, String)],
    ) -> Result<Vec<budget::MonthlyBurn>, UpstreamError> {
        self.data_budget
            .get(&format!("/burn{}", query_string(filter)), Some(token))
            .await
    }

    pub async fn data_total(
        &self,
        token: &str,
        year: i32,
    ) -> Result<budget::ProgrammeTotal, UpstreamError> {
        self.data_budget
            .get(&format!("/total?fiscal_year={year}"), Some(token))
            .await
    }

    pub async fn datasets(&self, token: &str) -> Result<Vec<budget::Dataset>, UpstreamError> {
        self.data_budget.get("/datasets", Some(token)).await
    }

    pub async fn data_licences(
        &self,
        token: &str,
        filter: &[(&str, String)],
    ) -> Result<Vec<budget::Licence>, UpstreamError> {
        self.data_budget
            .get(&format!("/licences{}", query_string(filter)), Some(token))
            .await
    }

    pub async fn commit_data(
        &self,
        token: &str,
        body: &budget::MakeCommitment,
    ) -> Result<budget::Commitment, UpstreamError> {
        self.data_budget
            .post("/commitments", body, Some(token))
            .await
    }

    pub async fn cancel_data_commitment(
        &self,
        token: &str,
        id: uuid::Uuid,
        body: &budget::CancelCommitment,
    ) -> Result<budget::Commitment, UpstreamError> {
        self.data_budget
            .post(&format!("/commitments/{id}/cancel"), body, Some(token))
            .await
    }

    pub async fn joint_data_purchase(
        &self,
        token: &str,
        body: &budget::MakeJointPurchase,
    ) -> Result<budget::JointPurchase, UpstreamError> {
        self.data_budget
            .post("/joint-purchases", body, Some(token))
            .await
    }

    pub async fn adjust_data_cap(
        &self,
        token: &str,
        team: uuid::Uuid,
        year: i32,
        body: &budget::AdjustCap,
    ) -> Result<budget::Budget, UpstreamError> {
        self.data_budget
            .post(&format!("/budgets/{team}/{year}/cap"), body, Some(token))
            .await
    }

    pub async fn register_dataset(
        &self,
        token: &str,
        body: &budget::RegisterDataset,
    ) -> Result<budget::Dataset, UpstreamError> {
        self.data_budget.post("/datasets", body, Some(token)).await
    }
}

/// The GPU ledger (`services/gpu-ledger`); the service checks the caller again and keeps a
/// consortium user to its own team.
impl Services {
    pub async fn gpu_models(&self, token: &str) -> Result<Vec<gpu::GpuModel>, UpstreamError> {
        self.gpu_ledger.get("/models", Some(token)).await
    }

    pub async fn gpu_pools(
        &self,
        token: &str,
        filter: &[(&str, String)],
    ) -> Result<Vec<gpu::PoolLine>, UpstreamError> {
        self.gpu_ledger
            .get(&format!("/pools{}", query_string(filter)), Some(token))
            .await
    }

    pub async fn gpu_pool_sources(
        &self,
        token: &str,
        filter: &[(&str, String)],
    ) -> Result<Vec<gpu::PoolBySource>, UpstreamError> {
        self.gpu_ledger
            .get(
                &format!("/pools/sources{}", query_string(filter)),
                Some(token),
            )
            .await
    }

    pub async fn gpu_teams(&self, token: &str) -> Result<Vec<gpu::SelectedTeam>, UpstreamError> {
        self.gpu_ledger.get("/teams", Some(token)).await
    }

    pub async fn gpu_offers(
        &self,
        token: &str,
        filter: &[(&str, String)],
    ) -> Result<Vec<gpu::Offer>, UpstreamError> {
        self.gpu_ledger
            .get(&format!("/offers{}", query_string(filter)), Some(token))
            .await
    }

    pub async fn gpu_offer(
        &self,
        token: &str,
        id: uuid::Uuid,
    ) -> Result<gpu::Offer, UpstreamError> {
        self.gpu_ledger
            .get(&format!("/offers/{id}"), Some(token))
            .await
    }

    pub async fn gpu_accounts(
        &self,
        token: &str,
        filter: &[(&str, String)],
    ) -> Result<Page<gpu::Account>, UpstreamError> {
        self.gpu_ledger
            .get(&format!("/accounts{}", query_string(filter)), Some(token))
            .await
    }

    pub async fn gpu_account(
        &self,
        token: &str,
        id: uuid::Uuid,
    ) -> Result<gpu::Account, UpstreamError> {
        self.gpu_ledger
            .get(&format!("/accounts/{id}"), Some(token))
            .await
    }

    pub async fn gpu_balance(
        &self,
        token: &str,
        id: uuid::Uuid,
        as_of: chrono::DateTime<chrono::Utc>,
    ) -> Result<gpu::BalanceAsOf, UpstreamError> {
        let q = query_string(&[("as_of", as_of.to_rfc3339())]);
        self.gpu_ledger
            .get(&format!("/accounts/{id}/balance{q}"), Some(token))
            .await
    }

    pub async fn gpu_transfers(
        &self,
        token: &str,
        filter: &[(&str, String)],
    ) -> Result<Page<gpu::Transfer>, UpstreamError> {
        self.gpu_ledger
            .get(&format!("/transfers{}", query_string(filter)), Some(token))
            .await
    }

    pub async fn gpu_utilisation(
        &self,
        token: &str,
        filter: &[(&str, String)],
    ) -> Result<Vec<gpu::Utilisation>, UpstreamError> {
        self.gpu_ledger
            .get(
                &format!("/utilisation{}", query_string(filter)),
                Some(token),
            )
            .await
    }

    pub async fn gpu_supplier_history(
        &self,
        token: &str,
        consortium: ConsortiumId,
    ) -> Result<Vec<gpu::SupplierRecord>, UpstreamError> {
        self.gpu_ledger
            .get(&format!("/suppliers/{consortium}"), Some(token))
            .await
    }

    pub async fn make_gpu_offer(
        &self,
        token: &str,
        body: &gpu::MakeOffer,
    ) -> Result<gpu::Offer, UpstreamError> {
        self.gpu_ledger.post("/offers", body, Some(token)).await
    }

    pub async fn accept_gpu_offer(
        &self,
        token: &str,
        id: uuid::Uuid,
        body: &gpu::AcceptOffer,
    ) -> Result<gpu::Offer, UpstreamError> {
        self.gpu_ledger
            .post(&format!("/offers/{id}/accept"), body, Some(token))
            .await
    }

    pub async fn record_gpu_supplier(
        &self,
        token: &str,
        body: &gpu::RecordSupplier,
    ) -> Result<gpu::SupplierRecord, UpstreamError> {
        self.gpu_ledger.post("/suppliers", body, Some(token)).await
    }

    pub async fn report_gpu_usage(
        &self,
        token: &str,
        body: &gpu::ReportUsage,
    ) -> Result<gpu::UsageReport, UpstreamError> {
        self.gpu_ledger.post("/usage", body, Some(token)).await
    }

    pub async fn open_gpu_account(
        &self,
        token: &str,
        body: &gpu::OpenAccount,
    ) -> Result<gpu::Account, UpstreamError> {
        self.gpu_ledger.post("/accounts", body, Some(token)).await
    }

    pub async fn create_gpu_transfers(
        &self,
        token: &str,
        body: &gpu::CreateTransfers,
    ) -> Result<gpu::TransfersResult, UpstreamError> {
        self.gpu_ledger.post("/transfers", body, Some(token)).await
    }

    pub async fn set_gpu_model(
        &self,
        token: &str,
        code: &str,
        body: &gpu::SetGpuModel,
    ) -> Result<gpu::GpuModel, UpstreamError> {
        let code: String = code
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .collect();
        self.gpu_ledger
            .put(&format!("/models/{code}"), body, Some(token))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(query_string(&[]), "");
        assert_eq!(
            query_string(&[("code", "a&b=c d".into()), ("period", "2026H1".into())]),
            "?code=a%26b%3Dc%20d&period=2026H1"
        );
        assert_eq!(
            query_string(&[("as_of", "2026-01-01T00:00:00+09:00".into())]),
            "?as_of=2026-01-01T00%3A00%3A00%2B09%3A00"
        );
    }

    #[test]
    fn page_queries_are_built_and_cursors_sanitised() {
        assert_eq!(page_query(None, None, &[]), "");
        assert_eq!(
            page_query(Some(5), Some("ab-1&x=y"), &[]),
            "?limit=5&after=ab-1xy"
        );
        assert_eq!(
            page_query(None, None, &[("call_id", "c".into())]),
            "?call_id=c"
        );
    }
}
