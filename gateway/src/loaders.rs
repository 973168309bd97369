//! Batched per-item reads. A list of proposals asking for `versions` or `evaluationCase`
//! would otherwise make one service call per item (and per alias); through these loaders a
//! request makes one call per field per batch of at most [`MAX_BATCH_IDS`] ids, and each
//! proposal is fetched once per request however many times the query names it.
//!
//! A loader lives for one GraphQL request: it carries that caller's token (the services
//! decide what the caller may see) and its cache never outlives the request.

use crate::clients::{Services, UpstreamError};
use async_graphql::dataloader::{DataLoader, HashMapCache, Loader};
use kaip_contracts::dto::intake::{ProposalVersion, MAX_BATCH_IDS};
use kaip_contracts::dto::scoring::EvaluationCase;
use kaip_contracts::ProposalId;
use std::collections::HashMap;
use std::time::Duration;

/// The per-request loaders, in the request's data.
pub struct Loaders {
    pub versions: DataLoader<VersionsLoader, HashMapCache>,
    pub cases: DataLoader<CasesLoader, HashMapCache>,
}

impl Loaders {
    pub fn new(services: Services, token: String) -> Self {
        let versions = VersionsLoader {
            services: services.clone(),
            token: token.clone(),
        };
        let cases = CasesLoader { services, token };
        // No batching delay: async-graphql polls every item of a list before any of them
        // waits, so by the time the spawned load runs (on this worker's single thread, once
        // the request yields) the whole list's keys are in its batch. The library's default
        // 1 ms delay added 1-2 ms to every such request, and without its `tokio-timer`
        // feature each delay was a round trip through a timer thread of its own.
        Self {
            versions: DataLoader::with_cache(versions, tokio::spawn, HashMapCache::default())
                .max_batch_size(MAX_BATCH_IDS)
                .delay(Duration::ZERO),
            cases: DataLoader::with_cache(cases, tokio::spawn, HashMapCache::default())
                .max_batch_size(MAX_BATCH_IDS)
                .delay(Duration::ZERO),
        }
    }
}

pub struct VersionsLoader {
    services: Services,
    token: String,
}

impl Loader<ProposalId> for VersionsLoader {
    type Value = Vec<ProposalVersion>;
    type Error = UpstreamError;

    async fn load(
        &self,
        keys: &[ProposalId],
    ) -> Result<HashMap<ProposalId, Self::Value>, Self::Error> {
        let rows = self
            .services
            .proposal_versions_many(&self.token, keys)
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| (r.proposal_id, r.versions))
            .collect())
    }
}

pub struct CasesLoader {
    services: Services,
    token: String,
}

impl Loader<ProposalId> for CasesLoader {
    type Value = EvaluationCase;
    type Error = UpstreamError;

    async fn load(
        &self,
        keys: &[ProposalId],
    ) -> Result<HashMap<ProposalId, Self::Value>, Self::Error> {
        let rows = self
            .services
            .evaluation_cases_of_many(&self.token, keys)
            .await?;
        Ok(rows.into_iter().map(|c| (c.proposal_id, c)).collect())
    }
}
