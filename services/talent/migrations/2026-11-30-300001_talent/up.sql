-- The talent service: positions, researchers (personal data apart), matching rounds,
-- hires, monthly claims and payments under the annual cap, and eliminations.

-- Programme terms (match ratios, annual cap, fit weights), one version per change; the
-- latest applies. No row: the built-in defaults (FundTerms::default, FitWeights::default).
CREATE TABLE talent_terms (
    version     integer PRIMARY KEY CHECK (version >= 1),
    fund_terms  jsonb NOT NULL,
    fit_weights jsonb NOT NULL,
    set_by      text NOT NULL,
    set_role    text NOT NULL,
    set_at      timestamptz NOT NULL,
    reason      text NOT NULL
);

-- What each submitted proposal said about its lead and openness (ProposalSubmitted), so a
-- selected team's match ratio follows from its proposal without changing scoring's
-- contract. The latest submitted version is kept.
CREATE TABLE talent_proposals (
    proposal_id   uuid PRIMARY KEY,
    consortium_id uuid NOT NULL,
    version       integer NOT NULL,
    lead_org_type text,
    releases      text[] NOT NULL,
    submitted_at  timestamptz NOT NULL
);

-- Selected teams (SelectionPublished).
CREATE TABLE talent_teams (
    consortium_id   uuid PRIMARY KEY,
    call_id         uuid NOT NULL,
    proposal_id     uuid NOT NULL,
    consortium_name text NOT NULL,
    requested_krw   bigint NOT NULL CHECK (requested_krw >= 0),
    selected_at     timestamptz NOT NULL
);

-- An officer's record of a team's company size and openness (with the reason); the latest
-- wins over what the proposal said.
CREATE TABLE talent_team_terms (
    id            uuid PRIMARY KEY,
    seq           bigserial NOT NULL UNIQUE,
    consortium_id uuid NOT NULL REFERENCES talent_teams (consortium_id),
    company_size  text NOT NULL CHECK (company_size IN ('large', 'mid_size', 'small', 'academic')),
    openness      text NOT NULL CHECK (openness IN ('closed', 'partial', 'open_weights')),
    reason        text NOT NULL CHECK (length(btrim(reason)) > 0),
    set_by        text NOT NULL,
    set_role      text NOT NULL,
    set_at        timestamptz NOT NULL
);

-- Teams eliminated at a gate (TeamEliminated / GateDecided): no funding after the month
-- of `decided_at` (KST).
CREATE TABLE talent_eliminations (
    consortium_id uuid PRIMARY KEY,
    gate          text NOT NULL,
    reason        text NOT NULL,
    decided_at    timestamptz NOT NULL,
    recorded_at   timestamptz NOT NULL
);

CREATE TABLE talent_positions (
    id              uuid PRIMARY KEY,
    consortium_id   uuid NOT NULL REFERENCES talent_teams (consortium_id),
    title           text NOT NULL,
    field           text NOT NULL,
    required_skills text[] NOT NULL,
    seniority       text NOT NULL,
    count           integer NOT NULL CHECK (count >= 1),
    band_min_krw    bigint NOT NULL CHECK (band_min_krw >= 0),
    band_max_krw    bigint NOT NULL CHECK (band_max_krw >= band_min_krw),
    opened_by       text NOT NULL,
    opened_role     text NOT NULL,
    opened_at       timestamptz NOT NULL
);
CREATE INDEX talent_positions_team ON talent_positions (consortium_id);

-- A researcher's profile: what matching needs, no name. Erasure blanks the profile and
-- keeps the row (its id is the pseudonym the funding records keep).
CREATE TABLE talent_researchers (
    id                    uuid PRIMARY KEY,
    skills                text[] NOT NULL,
    field                 text NOT NULL,
    seniority             text NOT NULL,
    available_from        date,
    registered_by         text NOT NULL,
    registered_role       text NOT NULL,
    registered_consortium uuid,
    registered_at         timestamptz NOT NULL,
    erased_at             timestamptz,
    erased_by             text,
    erase_reason          text
);

-- Personal data (PIPA): name, contact and country (matching does not use the country). Not in the audit trail (tests/e2e/audit.rs
-- NOT_AUDITED says why); every write to it is made together with an audited write to
-- talent_researchers in the same transaction, so the trail still shows who changed which
-- researcher, when. Deleted on erasure.
CREATE TABLE talent_researcher_personal (
    researcher_id uuid PRIMARY KEY REFERENCES talent_researchers (id),
    name          text NOT NULL,
    contact       text NOT NULL,
    country       text NOT NULL
);

-- A researcher's applications, in preference order (1 = most wanted).
CREATE TABLE talent_applications (
    researcher_id uuid NOT NULL REFERENCES talent_researchers (id),
    position_id   uuid NOT NULL REFERENCES talent_positions (id),
    rank          integer NOT NULL CHECK (rank >= 1),
    PRIMARY KEY (researcher_id, position_id),
    UNIQUE (researcher_id, rank)
);
CREATE INDEX talent_applications_position ON talent_applications (position_id);

CREATE TABLE talent_rounds (
    id          uuid PRIMARY KEY,
    note        text NOT NULL,
    positions   integer NOT NULL,
    researchers integer NOT NULL,
    run_by      text NOT NULL,
    run_role    text NOT NULL,
    run_at      timestamptz NOT NULL
);

CREATE TABLE talent_matches (
    id              uuid PRIMARY KEY,
    round_id        uuid NOT NULL REFERENCES talent_rounds (id),
    researcher_id   uuid NOT NULL REFERENCES talent_researchers (id),
    position_id     uuid NOT NULL REFERENCES talent_positions (id),
    consortium_id   uuid NOT NULL,
    fit_skills      bigint NOT NULL,
    fit_field       bigint NOT NULL,
    fit_seniority   bigint NOT NULL,
    fit_total       bigint NOT NULL,
    researcher_rank integer NOT NULL,
    position_rank   integer NOT NULL,
    applicants      integer NOT NULL,
    proposed_at     timestamptz NOT NULL,
    UNIQUE (round_id, researcher_id)
);
CREATE INDEX talent_matches_team ON talent_matches (consortium_id);
CREATE INDEX talent_matches_researcher ON talent_matches (researcher_id);

-- A team's answer to a proposed match: one, never overwritten.
CREATE TABLE talent_match_answers (
    match_id      uuid PRIMARY KEY REFERENCES talent_matches (id),
    accepted      boolean NOT NULL,
    reason        text NOT NULL,
    hire_id       uuid,
    answered_by   text NOT NULL,
    answered_role text NOT NULL,
    answered_at   timestamptz NOT NULL
);

CREATE TABLE talent_hires (
    id            uuid PRIMARY KEY,
    researcher_id uuid NOT NULL REFERENCES talent_researchers (id),
    position_id   uuid NOT NULL REFERENCES talent_positions (id),
    consortium_id uuid NOT NULL REFERENCES talent_teams (consortium_id),
    match_id      uuid UNIQUE REFERENCES talent_matches (id),
    start_date    date NOT NULL,
    end_date      date NOT NULL CHECK (end_date >= start_date),
    ratio_bp      bigint NOT NULL CHECK (ratio_bp BETWEEN 0 AND 10000),
    active        boolean NOT NULL DEFAULT true,
    hired_by      text NOT NULL,
    hired_role    text NOT NULL,
    hired_at      timestamptz NOT NULL
);
-- A researcher holds at most one active hire, whatever the application does.
CREATE UNIQUE INDEX talent_hires_one_active ON talent_hires (researcher_id) WHERE active;
CREATE INDEX talent_hires_team ON talent_hires (consortium_id);

-- A hire's pay (PIPA personal data): not in the audit trail, like the profile's name;
-- written only together with its audited talent_hires row.
CREATE TABLE talent_hire_pay (
    hire_id            uuid PRIMARY KEY REFERENCES talent_hires (id),
    monthly_salary_krw bigint NOT NULL CHECK (monthly_salary_krw >= 0),
    monthly_living_krw bigint NOT NULL CHECK (monthly_living_krw >= 0)
);

-- A team's fiscal year: the cap and what was paid. The row is locked by every claim of
-- the team in that year, so concurrent claims are paid one after the other; the CHECK
-- holds the cap even against a bug.
CREATE TABLE talent_team_years (
    consortium_id uuid NOT NULL REFERENCES talent_teams (consortium_id),
    fiscal_year   integer NOT NULL,
    cap_krw       bigint NOT NULL CHECK (cap_krw >= 0),
    claimed_krw   bigint NOT NULL DEFAULT 0 CHECK (claimed_krw >= 0),
    paid_krw      bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (consortium_id, fiscal_year),
    CHECK (paid_krw BETWEEN 0 AND cap_krw)
);

-- One claim per hire and month, paid when it is made (up to the cap).
CREATE TABLE talent_claims (
    id            uuid PRIMARY KEY,
    hire_id       uuid NOT NULL REFERENCES talent_hires (id),
    researcher_id uuid NOT NULL,
    consortium_id uuid NOT NULL,
    month         text NOT NULL CHECK (month ~ '^[0-9]{4}-(0[1-9]|1[0-2])$'),
    fiscal_year   integer NOT NULL,
    days_covered  integer NOT NULL CHECK (days_covered BETWEEN 1 AND 31),
    days_in_month integer NOT NULL CHECK (days_in_month BETWEEN 28 AND 31),
    ratio_bp      bigint NOT NULL,
    claimed_krw   bigint NOT NULL CHECK (claimed_krw >= 0),
    paid_krw      bigint NOT NULL CHECK (paid_krw BETWEEN 0 AND claimed_krw),
    cap_reason    text,
    claimed_by    text NOT NULL,
    claimed_role  text NOT NULL,
    claimed_at    timestamptz NOT NULL,
    UNIQUE (hire_id, month),
    FOREIGN KEY (consortium_id, fiscal_year) REFERENCES talent_team_years (consortium_id, fiscal_year)
);
CREATE INDEX talent_claims_team ON talent_claims (consortium_id, fiscal_year);
