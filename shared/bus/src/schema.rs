// The backbone's own tables (see migrations/00000000000001_outbox_inbox).

diesel::table! {
    kaip_outbox (seq) {
        seq -> Int8,
        event_id -> Uuid,
        topic -> Text,
        event_key -> Text,
        event_type -> Text,
        payload -> Jsonb,
        headers -> Jsonb,
        created_at -> Timestamptz,
        attempts -> Int4,
        last_error -> Nullable<Text>,
        sent_at -> Nullable<Timestamptz>,
        failures -> Int4,
        last_attempt_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    kaip_inbox (event_id) {
        event_id -> Uuid,
        event_type -> Text,
        topic -> Text,
        kafka_partition -> Int4,
        kafka_offset -> Int8,
        trace_id -> Nullable<Text>,
        outcome -> Text,
        processed_at -> Timestamptz,
        payload_sha256 -> Nullable<Bytea>,
    }
}
