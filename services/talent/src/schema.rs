// Written by hand from migrations/2026-11-30-300001_talent (diesel print-schema's format).

diesel::table! {
    talent_terms (version) {
        version -> Int4,
        fund_terms -> Jsonb,
        fit_weights -> Jsonb,
        set_by -> Text,
        set_role -> Text,
        set_at -> Timestamptz,
        reason -> Text,
    }
}

diesel::table! {
    talent_proposals (proposal_id) {
        proposal_id -> Uuid,
        consortium_id -> Uuid,
        version -> Int4,
        lead_org_type -> Nullable<Text>,
        releases -> Array<Text>,
        submitted_at -> Timestamptz,
    }
}

diesel::table! {
    talent_teams (consortium_id) {
        consortium_id -> Uuid,
        call_id -> Uuid,
        proposal_id -> Uuid,
        consortium_name -> Text,
        requested_krw -> Int8,
        selected_at -> Timestamptz,
    }
}

diesel::table! {
    talent_team_terms (id) {
        id -> Uuid,
        seq -> Int8,
        consortium_id -> Uuid,
        company_size -> Text,
        openness -> Text,
        reason -> Text,
        set_by -> Text,
        set_role -> Text,
        set_at -> Timestamptz,
    }
}

diesel::table! {
    talent_eliminations (consortium_id) {
        consortium_id -> Uuid,
        gate -> Text,
        reason -> Text,
        decided_at -> Timestamptz,
        recorded_at -> Timestamptz,
    }
}

diesel::table! {
    talent_positions (id) {
        id -> Uuid,
        consortium_id -> Uuid,
        title -> Text,
        field -> Text,
        required_skills -> Array<Text>,
        seniority -> Text,
        count -> Int4,
        band_min_krw -> Int8,
        band_max_krw -> Int8,
        opened_by -> Text,
        opened_role -> Text,
        opened_at -> Timestamptz,
    }
}

diesel::table! {
    talent_researchers (id) {
        id -> Uuid,
        skills -> Array<Text>,
        field -> Text,
        seniority -> Text,
        available_from -> Nullable<Date>,
        registered_by -> Text,
        registered_role -> Text,
        registered_consortium -> Nullable<Uuid>,
        registered_at -> Timestamptz,
        erased_at -> Nullable<Timestamptz>,
        erased_by -> Nullable<Text>,
        erase_reason -> Nullable<Text>,
    }
}

diesel::table! {
    talent_researcher_personal (researcher_id) {
        researcher_id -> Uuid,
        name -> Text,
        contact -> Text,
    }
}

diesel::table! {
    talent_applications (researcher_id, position_id) {
        researcher_id -> Uuid,
        position_id -> Uuid,
        rank -> Int4,
    }
}

diesel::table! {
    talent_rounds (id) {
        id -> Uuid,
        note -> Text,
        positions -> Int4,
        researchers -> Int4,
        run_by -> Text,
        run_role -> Text,
        run_at -> Timestamptz,
    }
}

diesel::table! {
    talent_matches (id) {
        id -> Uuid,
        round_id -> Uuid,
        researcher_id -> Uuid,
        position_id -> Uuid,
        consortium_id -> Uuid,
        fit_skills -> Int8,
        fit_field -> Int8,
        fit_seniority -> Int8,
        fit_total -> Int8,
        researcher_rank -> Int4,
        position_rank -> Int4,
        applicants -> Int4,
        proposed_at -> Timestamptz,
    }
}

diesel::table! {
    talent_match_answers (match_id) {
        match_id -> Uuid,
        accepted -> Bool,
        reason -> Text,
        hire_id -> Nullable<Uuid>,
        answered_by -> Text,
        answered_role -> Text,
        answered_at -> Timestamptz,
    }
}

diesel::table! {
    talent_hires (id) {
        id -> Uuid,
        researcher_id -> Uuid,
        position_id -> Uuid,
        consortium_id -> Uuid,
        match_id -> Nullable<Uuid>,
        start_date -> Date,
        end_date -> Date,
        ratio_bp -> Int8,
        active -> Bool,
        hired_by -> Text,
        hired_role -> Text,
        hired_at -> Timestamptz,
    }
}

diesel::table! {
    talent_hire_pay (hire_id) {
        hire_id -> Uuid,
        monthly_salary_krw -> Int8,
        monthly_living_krw -> Int8,
    }
}

diesel::table! {
    talent_team_years (consortium_id, fiscal_year) {
        consortium_id -> Uuid,
        fiscal_year -> Int4,
        cap_krw -> Int8,
        claimed_krw -> Int8,
        paid_krw -> Int8,
    }
}

diesel::table! {
    talent_claims (id) {
        id -> Uuid,
        hire_id -> Uuid,
        researcher_id -> Uuid,
        consortium_id -> Uuid,
        month -> Text,
        fiscal_year -> Int4,
        days_covered -> Int4,
        days_in_month -> Int4,
        ratio_bp -> Int8,
        claimed_krw -> Int8,
        paid_krw -> Int8,
        cap_reason -> Nullable<Text>,
        claimed_by -> Text,
        claimed_role -> Text,
        claimed_at -> Timestamptz,
    }
}

diesel::table! {
    talent_hire_ends (hire_id, cause) {
        hire_id -> Uuid,
        ended_on -> Date,
        cause -> Text,
        reason -> Text,
        ended_by -> Text,
        ended_role -> Text,
        ended_at -> Timestamptz,
    }
}

diesel::joinable!(talent_applications -> talent_positions (position_id));

diesel::allow_tables_to_appear_in_same_query!(
    talent_terms,
    talent_proposals,
    talent_teams,
    talent_team_terms,
    talent_eliminations,
    talent_positions,
    talent_researchers,
    talent_researcher_personal,
    talent_applications,
    talent_rounds,
    talent_matches,
    talent_match_answers,
    talent_hires,
    talent_hire_pay,
    talent_hire_ends,
    talent_team_years,
    talent_claims,
);
