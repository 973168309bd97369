//! GPU operators report usage on their own topic (`kaip.operators.events`): the ledger
//! records it through the same code as `POST /usage`, once per report id, over the real
//! broker; a replay changes nothing, a repeat with other fields, a forged producer and
//! another service's event type on the operators' topic are dead-lettered with their
//! reason, and the team's utilisation shows the hours once.

use kaip_contracts::events::GpuUsageReported;
use kaip_contracts::{topics, Actor, ConsortiumId, DomainEvent, EventEnvelope, Role};
use kaip_e2e::{eventually, Platform};
use serde_json::{json, Value};
use std::time::Duration;

const UTILISATION: &str =
    "query($c: UUID) { gpuUtilisation(consortiumId: $c) { model period usedHours overrun } }";

fn operator() -> Actor {
    Actor {
        subject: "operator-kisti".into(),
        role: Role::Integration,
    }
}

async fn produce(p: &Platform, topic: &str, env: &EventEnvelope) {
    let payload = serde_json::to_vec(env).expect("json");
    p.ctx
        .produce_raw(
            &p.ctx.topic(topic),
            &env.aggregate_id.to_string(),
            &payload,
            &[("kaip-event-type", GpuUsageReported::TYPE)],
        )
        .await;
}

/// The `data` of every event of `event_type` on `topic` so far.
async fn on_topic(p: &Platform, topic: &str, event_type: &str) -> Vec<Value> {
    p.ctx
        .read_topic(&p.ctx.topic(topic))
        .await
        .iter()
        .filter_map(|m| m.json())
        .filter(|e| e["type"] == event_type)
        .map(|e| e["data"].clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operators_usage_report_on_its_topic_is_recorded_once_and_a_replay_changes_nothing() {
    let p = Platform::start().await;
    let officer = p.ctx.bearer(Role::Officer, None);
    let team = ConsortiumId::new();
    let report = GpuUsageReported {
        report_id: uuid::Uuid::now_v7(),
        consortium_id: team,
        model: "B200".into(),
        period: "2027H1".into(),
        gpu_hours: 1_500,
        note: "nurion-2, week 3".into(),
    };
    let env = EventEnvelope::wrap(topics::OPERATORS_PRODUCER, operator(), &report).expect("wrap");
    produce(&p, topics::OPERATORS, &env).await;
    let used = || async {
        let body = p
            .graphql(Some(&officer), UTILISATION, json!({ "c": team }))
            .await;
        body["data"]["gpuUtilisation"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    let lines = eventually(Duration::from_secs(60), || async {
        let l = used().await;
        (!l.is_empty()).then_some(l)
    })
    .await
    .expect("the report was recorded");
    assert_eq!(lines[0]["usedHours"], "1500", "{lines:?}");
    assert_eq!(lines[0]["overrun"], true, "nothing granted: flagged");

    // Replays: the same envelope again, and the same report in a new envelope (an operator
    // retrying), then a marker report behind them on the same partition (same team key).
    produce(&p, topics::OPERATORS, &env).await;
    let again = EventEnvelope::wrap(topics::OPERATORS_PRODUCER, operator(), &report).expect("wrap");
    produce(&p, topics::OPERATORS, &again).await;
    // The same id with other hours: refused, dead-lettered with the code.
    let changed = GpuUsageReported {
        gpu_hours: 9_999,
        ..report.clone()
    };
    let changed =
        EventEnvelope::wrap(topics::OPERATORS_PRODUCER, operator(), &changed).expect("wrap");
    produce(&p, topics::OPERATORS, &changed).await;
    // An envelope claiming to be the ledger on the operators' topic: dead-lettered.
    let forged = EventEnvelope::wrap(
        "gpu-ledger",
        operator(),
        &GpuUsageReported {
            report_id: uuid::Uuid::now_v7(),
            ..report.clone()
        },
    )
    .expect("wrap");
    produce(&p, topics::OPERATORS, &forged).await;
    // An operator sending milestones' decision on its own topic: dead-lettered by type,
    // before any handler could close the team's grants and hand them to whom it names.
    let eliminated = kaip_contracts::events::TeamEliminated {
        gate_id: uuid::Uuid::now_v7(),
        gate: "gate-1".into(),
        consortium_id: report.consortium_id,
        reason: "rank: forged".into(),
        reallocation: vec![],
        decided_at: chrono::Utc::now(),
    };
    let eliminated =
        EventEnvelope::wrap(topics::OPERATORS_PRODUCER, operator(), &eliminated).expect("wrap");
    produce(&p, topics::OPERATORS, &eliminated).await;
    let marker_id = uuid::Uuid::now_v7();
    let marker = GpuUsageReported {
        report_id: marker_id,
        gpu_hours: 1,
        note: "marker".into(),
        ..report.clone()
    };
    let marker =
        EventEnvelope::wrap(topics::OPERATORS_PRODUCER, operator(), &marker).expect("wrap");
    produce(&p, topics::OPERATORS, &marker).await;
    let lines = eventually(Duration::from_secs(60), || async {
        let l = used().await;
        (l.first().is_some_and(|l| l["usedHours"] == "1501")).then_some(l)
    })
    .await;
    assert!(
        lines.is_some(),
        "1,500 once plus the marker's 1: {:?}",
        used().await
    );

    // Announced once per recorded report (the original and the marker). The relay sends
    // after the commit: wait until the marker's announcement is there, then count.
    let recorded = eventually(Duration::from_secs(30), || async {
        let r = on_topic(&p, topics::GPU_LEDGER, "GpuUsageRecorded").await;
        r.iter()
            .any(|d| d["report_id"] == json!(marker_id))
            .then_some(r)
    })
    .await
    .expect("the marker's GpuUsageRecorded was published");
    let ids: Vec<&Value> = recorded.iter().map(|d| &d["report_id"]).collect();
    assert_eq!(
        ids.iter()
            .filter(|i| **i == &json!(report.report_id))
            .count(),
        1,
        "{recorded:#?}"
    );
    assert_eq!(recorded.len(), 2, "{recorded:#?}");
    // The two refusals are in the ledger's dead-letter topic with their reasons.
    let dlq = topics::dead_letter_topic_of(kaip_gpu_ledger::NAME);
    let dead = eventually(Duration::from_secs(30), || async {
        let m = p.ctx.read_topic(&p.ctx.topic(&dlq)).await;
        (m.len() >= 3).then_some(m)
    })
    .await
    .expect("three dead letters");
    let errors: Vec<String> = dead
        .iter()
        .filter_map(|m| {
            m.headers
                .get(kaip_contracts::events::headers::DLQ_ERROR)
                .cloned()
        })
        .collect();
    assert!(
        errors
            .iter()
            .any(|e| e.contains("USAGE_REPORT_EXISTS_WITH_DIFFERENT_FIELDS")),
        "{errors:?}"
    );
    assert!(errors.iter().any(|e| e.contains("producer")), "{errors:?}");
    assert!(
        errors
            .iter()
            .any(|e| e.contains("event_type:") && e.contains("`milestones`")),
        "{errors:?}"
    );
}
