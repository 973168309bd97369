//! Typed HTTP clients for the services. Every call forwards the caller's token (services
//! check it again) and the current trace context (so the trace continues in the service).

use async_graphql::ErrorExtensions;
use kaip_contracts::dto::intake::{
    Call, Consortium, CreateProgramme, DraftProposal, OpenCall, Programme, Proposal,
    ProposalVersion, Receipt, RegisterConsortium, Submit, UpdateDraft, UploadDocument, Withdraw,
};
use kaip_contracts::dto::scoring::EvaluationCase;
use kaip_contracts::dto::{Page, Readiness};
use kaip_contracts::{CallId, ConsortiumId, ErrorBody, ProposalId};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::time::Duration;

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

impl ErrorExtensions for UpstreamError {
    fn extend(&self) -> async_graphql::Error {
        async_graphql::Error::new(&self.message)
            .extend_with(|_, e| e.set("code", self.code.clone()))
    }
}

/// One service's base URL plus a shared connection pool.
#[derive(Clone, Debug)]
pub struct ServiceClient {
    name: &'static str,
    base: String,
    http: reqwest::Client,
}

impl ServiceClient {
    pub fn new(name: &'static str, base: &str, http: reqwest::Client) -> Self {
        Self {
            name,
            base: base.trim_end_matches('/').to_owned(),
            http,
        }
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
        let res = req
            .send()
            .await
            .map_err(|e| UpstreamError::unavailable(self.name, e))?;
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
            .request(reqwest::Method::POST, path, token)
            .json(body)
            .send()
            .await
            .map_err(|e| UpstreamError::unavailable(self.name, e))?;
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

/// All service clients.
#[derive(Clone, Debug)]
pub struct Services {
    pub intake: ServiceClient,
    pub scoring: ServiceClient,
    pub all: Vec<ServiceClient>,
}

impl Services {
    pub fn new(urls: &crate::settings::ServiceUrls, timeout: Duration) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder().timeout(timeout).build()?;
        let all: Vec<ServiceClient> = urls
            .all()
            .iter()
            .map(|(name, url)| ServiceClient::new(name, url, http.clone()))
            .collect();
        Ok(Self {
            intake: ServiceClient::new("intake", &urls.intake, http.clone()),
            scoring: ServiceClient::new("scoring", &urls.scoring, http),
            all,
        })
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

#[cfg(test)]
mod tests {
    use super::*;

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
