// Written by hand against migrations/2026-11-30-200001_budgets (diesel print-schema's form).

diesel::table! {
    budget_programme_settings (seq) {
        seq -> Int8,
        max_cap_krw -> Int8,
        joint_purchase_limit_krw -> Int8,
        building_processing_limit_krw -> Int8,
        carry_over -> Bool,
        first_year -> Int4,
        last_year -> Int4,
        set_by -> Text,
        set_at -> Timestamptz,
        reason -> Text,
    }
}

diesel::table! {
    budget_teams (consortium_id) {
        consortium_id -> Uuid,
        call_id -> Uuid,
        proposal_id -> Uuid,
        consortium_name -> Text,
        requested_krw -> Int8,
        selected_at -> Timestamptz,
        call_max_krw -> Nullable<Int8>,
    }
}

diesel::table! {
    budgets (consortium_id, fiscal_year) {
        consortium_id -> Uuid,
        fiscal_year -> Int4,
        call_id -> Uuid,
        opened_at -> Timestamptz,
    }
}

diesel::table! {
    budget_caps (seq) {
        seq -> Int8,
        consortium_id -> Uuid,
        fiscal_year -> Int4,
        cap_krw -> Int8,
        joint_purchase_limit_krw -> Int8,
        building_processing_limit_krw -> Int8,
        set_by -> Text,
        set_role -> Text,
        set_at -> Timestamptz,
        reason -> Text,
    }
}

diesel::table! {
    datasets (id) {
        id -> Uuid,
        name -> Text,
        provider -> Text,
        licence_terms -> Text,
        registered_by -> Text,
        registered_at -> Timestamptz,
    }
}

diesel::table! {
    budget_joint_purchases (id) {
        id -> Uuid,
        dataset_id -> Uuid,
        fiscal_year -> Int4,
        total_krw -> Int8,
        split_rule -> Text,
        request -> Jsonb,
        made_by -> Text,
        made_at -> Timestamptz,
        reason -> Text,
    }
}

diesel::table! {
    budget_commitments (id) {
        id -> Uuid,
        consortium_id -> Uuid,
        fiscal_year -> Int4,
        category -> Text,
        amount_krw -> Int8,
        dataset_id -> Nullable<Uuid>,
        joint_purchase_id -> Nullable<Uuid>,
        joint_weight -> Nullable<Int8>,
        made_by -> Text,
        made_role -> Text,
        made_at -> Timestamptz,
        reason -> Text,
    }
}

diesel::table! {
    budget_cancellations (commitment_id) {
        commitment_id -> Uuid,
        released_krw -> Int8,
        cancelled_by -> Text,
        cancelled_at -> Timestamptz,
        reason -> Text,
    }
}

diesel::table! {
    budget_invoices (id) {
        id -> Uuid,
        commitment_id -> Uuid,
        amount_krw -> Int8,
        invoice_no -> Text,
        recorded_by -> Text,
        recorded_at -> Timestamptz,
    }
}

diesel::table! {
    budget_payments (external_key) {
        external_key -> Text,
        invoice_id -> Uuid,
        amount_krw -> Int8,
        paid_at -> Timestamptz,
        confirmed_by -> Text,
        recorded_at -> Timestamptz,
    }
}

diesel::table! {
    budget_eliminations (gate_id, consortium_id) {
        gate_id -> Uuid,
        consortium_id -> Uuid,
        gate -> Text,
        reason -> Text,
        decided_at -> Timestamptz,
        applied_at -> Timestamptz,
    }
}

diesel::joinable!(budget_invoices -> budget_commitments (commitment_id));
diesel::joinable!(budget_payments -> budget_invoices (invoice_id));
diesel::joinable!(budget_commitments -> datasets (dataset_id));

diesel::allow_tables_to_appear_in_same_query!(
    budget_programme_settings,
    budget_teams,
    budgets,
    budget_caps,
    datasets,
    budget_joint_purchases,
    budget_commitments,
    budget_cancellations,
    budget_invoices,
    budget_payments,
    budget_eliminations,
);
