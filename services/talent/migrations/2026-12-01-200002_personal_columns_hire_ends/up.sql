-- PIPA, issue #10: "collect only what matching and payment need" and "the audit trail
-- records ids, not names or salaries".

-- The country was collected but used by neither matching nor payment: no longer kept.
ALTER TABLE talent_researcher_personal DROP COLUMN country;

-- The audit trail records a researcher's profile columns as "[personal data]": skills,
-- field, seniority and availability describe one person (with the pseudonymous id they
-- are a profile), and an erasure's reason is about that person too. The ids, who
-- registered or erased and when stay recorded, so who changed which researcher, when, is
-- still in the trail. (Names, contacts and pay are in talent_researcher_personal and
-- talent_hire_pay, which the trail does not record at all.)
SELECT kaip_audit_table('talent_researchers', '{}',
                        ARRAY['skills', 'field', 'seniority', 'available_from', 'erase_reason']);

-- A hire ended before its end date: by the team, by an officer, or by the team's
-- elimination (at the end of the elimination month, KST). One per hire, never changed:
-- the hire's agreed end date stays as it was, this says when it really ended and why.
CREATE TABLE talent_hire_ends (
    hire_id     uuid PRIMARY KEY REFERENCES talent_hires (id),
    ended_on    date NOT NULL,
    cause       text NOT NULL CHECK (cause IN ('team', 'officer', 'elimination')),
    reason      text NOT NULL CHECK (length(btrim(reason)) > 0),
    ended_by    text NOT NULL,
    ended_role  text NOT NULL,
    ended_at    timestamptz NOT NULL
);
-- Why a hire ended may be about the person (a resignation, health): recorded as
-- "[personal data]"; the date, the cause and who ended it stay.
SELECT kaip_audit_table('talent_hire_ends', '{}', ARRAY['reason']);
