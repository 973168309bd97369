// Written by hand from migrations/2026-12-01-300001_milestones (diesel print-schema's format).

diesel::table! {
    ms_teams (consortium_id) {
        consortium_id -> Uuid,
        call_id -> Uuid,
        proposal_id -> Uuid,
        consortium_name -> Text,
        selected_at -> Timestamptz,
    }
}

diesel::table! {
    ms_deliverables (id) {
        id -> Uuid,
        consortium_id -> Uuid,
        phase -> Int4,
        title -> Text,
        description -> Text,
        acceptance_criteria -> Text,
        due_date -> Date,
        created_by -> Text,
        created_role -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    ms_evidence (id) {
        id -> Uuid,
        deliverable_id -> Uuid,
        version -> Int4,
        kind -> Text,
        note -> Text,
        doc_name -> Nullable<Text>,
        doc_sha256 -> Nullable<Text>,
        doc_size_bytes -> Nullable<Int8>,
        url -> Nullable<Text>,
        benchmark -> Nullable<Text>,
        value_units -> Nullable<Int8>,
        value_scale -> Nullable<Int4>,
        content_sha256 -> Text,
        submitted_by -> Text,
        submitted_role -> Text,
        submitted_at -> Timestamptz,
    }
}

diesel::table! {
    ms_verdicts (id) {
        id -> Uuid,
        seq -> Int8,
        deliverable_id -> Uuid,
        verdict -> Text,
        evidence_version -> Nullable<Int4>,
        reason -> Text,
        comments -> Text,
        new_due_date -> Nullable<Date>,
        decided_by -> Text,
        decided_role -> Text,
        decided_at -> Timestamptz,
    }
}

diesel::table! {
    ms_overdue (deliverable_id, due_date) {
        deliverable_id -> Uuid,
        due_date -> Date,
        flagged_at -> Timestamptz,
    }
}

diesel::table! {
    ms_gates (id) {
        id -> Uuid,
        key -> Text,
        phase -> Int4,
        gate_date -> Date,
        planned_eliminations -> Int4,
        eligibility_rules -> Array<Text>,
        committee -> Array<Text>,
        reason -> Text,
        created_by -> Text,
        created_role -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    ms_gate_components (gate_id, key) {
        gate_id -> Uuid,
        key -> Text,
        grp -> Text,
        label -> Text,
        weight -> Int4,
        normalisation -> Text,
        max_units -> Nullable<Int8>,
        ord -> Int4,
        kind -> Nullable<Text>,
    }
}

diesel::table! {
    ms_gate_inputs (id) {
        id -> Uuid,
        seq -> Int8,
        gate_id -> Uuid,
        consortium_id -> Uuid,
        component -> Text,
        value_e4 -> Int8,
        source -> Text,
        source_ref -> Text,
        reason -> Text,
        entered_by -> Text,
        entered_role -> Text,
        entered_at -> Timestamptz,
        measured_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    ms_eligibility (id) {
        id -> Uuid,
        seq -> Int8,
        gate_id -> Uuid,
        consortium_id -> Uuid,
        rule -> Text,
        eligible -> Bool,
        grounds -> Text,
        decided_by -> Text,
        decided_role -> Text,
        decided_at -> Timestamptz,
    }
}

diesel::table! {
    ms_proposals (id) {
        id -> Uuid,
        seq -> Int8,
        gate_id -> Uuid,
        outcome -> Jsonb,
        proposed_by -> Text,
        proposed_role -> Text,
        proposed_at -> Timestamptz,
    }
}

diesel::table! {
    ms_votes (proposal_id, member) {
        proposal_id -> Uuid,
        member -> Text,
        approve -> Bool,
        reason -> Text,
        voted_at -> Timestamptz,
    }
}

diesel::table! {
    ms_decisions (gate_id) {
        gate_id -> Uuid,
        proposal_id -> Uuid,
        passed -> Array<Uuid>,
        eliminated -> Jsonb,
        next_targets -> Jsonb,
        approvals -> Int4,
        committee -> Int4,
        reason -> Text,
        decided_by -> Text,
        decided_role -> Text,
        decided_at -> Timestamptz,
    }
}

diesel::joinable!(ms_evidence -> ms_deliverables (deliverable_id));
diesel::joinable!(ms_verdicts -> ms_deliverables (deliverable_id));
diesel::joinable!(ms_deliverables -> ms_teams (consortium_id));

diesel::allow_tables_to_appear_in_same_query!(
    ms_teams,
    ms_deliverables,
    ms_evidence,
    ms_verdicts,
    ms_overdue,
    ms_gates,
    ms_gate_components,
    ms_gate_inputs,
    ms_eligibility,
    ms_proposals,
    ms_votes,
    ms_decisions,
);
