//! Live events over WebSocket subscriptions, fed from Kafka.

use super::{auth_error, caller};
use async_graphql::{Context, Json, SimpleObject, Subscription};
use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt};
use kaip_auth::{AuthError, Claims};
use kaip_bus::{EventFeed, FeedEvent};
use kaip_contracts::{DomainEvent as _, Role};
use std::sync::Arc;
use tokio::sync::broadcast::error::RecvError;
use uuid::Uuid;

/// One platform event, as integrators and the console see it.
#[derive(SimpleObject, Clone, Debug)]
pub struct Event {
    pub id: Uuid,
    #[graphql(name = "type")]
    pub event_type: String,
    pub version: i32,
    pub occurred_at: DateTime<Utc>,
    pub producer: String,
    pub aggregate_type: String,
    pub aggregate_id: Uuid,
    pub consortium_id: Option<Uuid>,
    pub actor_subject: String,
    pub actor_role: String,
    pub data: Json<serde_json::Value>,
    /// The W3C trace id of the request that caused it, when known.
    pub trace_id: Option<String>,
}

impl From<&FeedEvent> for Event {
    fn from(f: &FeedEvent) -> Self {
        let e = &f.envelope;
        Event {
            id: e.id.0,
            event_type: e.event_type.clone(),
            version: i32::from(e.version),
            occurred_at: e.occurred_at,
            producer: e.producer.clone(),
            aggregate_type: e.aggregate_type.clone(),
            aggregate_id: e.aggregate_id,
            consortium_id: e.consortium_id.map(|c| c.0),
            actor_subject: e.actor.subject.clone(),
            actor_role: e.actor.role.to_string(),
            data: Json(e.data.clone()),
            trace_id: f
                .headers
                .get("traceparent")
                .and_then(|tp| tp.split('-').nth(1))
                .map(str::to_owned),
        }
    }
}

/// May `claims` see this event? Ministry staff see all; an integration the events of the
/// services its token's scopes name (`events:<producer>`); a consortium user only events
/// about its own consortium. The audit trail: staff, and integrations with `events:audit`.
pub fn visible_to(claims: &Claims, event: &FeedEvent) -> bool {
    // The audit trail: ministry staff, and integrations holding `events:audit` (an
    // `events:<service>` scope does not include that service's trail).
    if event.envelope.event_type == kaip_contracts::audit::AuditRecorded::TYPE
        || event.topic.ends_with(".audit")
    {
        return match claims.role {
            Role::Admin | Role::Officer => true,
            Role::Integration => claims.scope.contains(kaip_auth::scopes::EVENTS_AUDIT),
            Role::Consortium | Role::Reviewer | Role::System => false,
        };
    }
    match claims.role {
        Role::Admin | Role::Officer => true,
        Role::Integration => claims
            .scope
            .contains(&kaip_auth::scopes::events_scope(&event.envelope.producer)),
        Role::Consortium => {
            event.envelope.consortium_id.is_some()
                && event.envelope.consortium_id == claims.consortium_id
        }
        Role::Reviewer | Role::System => false,
    }
}

#[derive(Default)]
pub struct EventSubscription;

#[Subscription]
impl EventSubscription {
    /// Events as they happen, optionally only of some `types` or one aggregate.
    async fn events(
        &self,
        ctx: &Context<'_>,
        types: Option<Vec<String>>,
        aggregate_id: Option<Uuid>,
    ) -> async_graphql::Result<impl Stream<Item = Event>> {
        let claims = caller(ctx)?.claims.clone();
        if claims.role == Role::Reviewer {
            return Err(auth_error(&AuthError::Forbidden {
                role: claims.role,
                action: "subscribe to events".into(),
            }));
        }
        let rx = ctx.data::<EventFeed>()?.subscribe();
        let stream = futures::stream::unfold(rx, |mut rx| async move {
            loop {
                match rx.recv().await {
                    Ok(event) => return Some((event, rx)),
                    Err(RecvError::Lagged(n)) => {
                        tracing::warn!(skipped = n, "subscriber lagged; events skipped")
                    }
                    Err(RecvError::Closed) => return None,
                }
            }
        });
        Ok(stream.filter_map(move |event: Arc<FeedEvent>| {
            let wanted = visible_to(&claims, &event)
                && types
                    .as_ref()
                    .is_none_or(|t| t.iter().any(|t| *t == event.envelope.event_type))
                && aggregate_id.is_none_or(|a| a == event.envelope.aggregate_id);
            let out = wanted.then(|| Event::from(event.as_ref()));
            async move { out }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kaip_auth::scopes::{events_scope, Scopes, EVENTS_AUDIT};
    use kaip_contracts::{Actor, ConsortiumId, EventEnvelope};

    fn claims(role: Role, scopes: &[&str], consortium: Option<ConsortiumId>) -> Claims {
        serde_json::from_value(serde_json::json!({
            "sub": "s", "iss": "i", "aud": "a", "exp": 0, "role": role,
            "consortium_id": consortium,
        }))
        .map(|mut c: Claims| {
            c.scope = Scopes(scopes.iter().map(|s| s.to_string()).collect());
            c
        })
        .expect("claims")
    }

    fn audit_event(consortium: Option<ConsortiumId>) -> FeedEvent {
        let data = kaip_contracts::audit::AuditRecorded {
            operation_id: Uuid::now_v7(),
            service: "intake".into(),
            at: Utc::now(),
            actor_subject: "lead".into(),
            actor_role: "consortium".into(),
            trace_id: None,
            operation: "POST /proposals".into(),
            input: serde_json::json!({}),
            changes: Vec::new(),
            changes_truncated: false,
            sequence: Some(1),
            part: 1,
            parts: 1,
        };
        let mut envelope = EventEnvelope::wrap(
            "intake",
            Actor {
                subject: "lead".into(),
                role: Role::Consortium,
            },
            &data,
        )
        .expect("wrap");
        envelope.consortium_id = consortium;
        FeedEvent {
            topic: "t.kaip.intake.audit".into(),
            envelope,
            headers: Default::default(),
        }
    }

    #[test]
    fn the_audit_trail_reaches_staff_and_events_audit_integrations_only() {
        let consortium = ConsortiumId::new();
        // Even an (impossible) consortium id on the record does not let its consortium see it.
        let event = audit_event(Some(consortium));
        assert!(visible_to(&claims(Role::Admin, &[], None), &event));
        assert!(visible_to(&claims(Role::Officer, &[], None), &event));
        assert!(visible_to(
            &claims(Role::Integration, &[EVENTS_AUDIT], None),
            &event
        ));
        // `events:intake` is intake's events, not intake's trail.
        assert!(!visible_to(
            &claims(Role::Integration, &[&events_scope("intake")], None),
            &event
        ));
        assert!(!visible_to(
            &claims(Role::Consortium, &[], Some(consortium)),
            &event
        ));
        assert!(!visible_to(&claims(Role::Reviewer, &[], None), &event));
    }
}
