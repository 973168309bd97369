-- Every talent table is in the audit trail except the two that hold personal data
-- (talent_researcher_personal: names and contacts; talent_hire_pay: salaries): the trail
-- records ids, not names or salaries (tests/e2e/audit.rs NOT_AUDITED gives the reason).
SELECT kaip_audit_table('talent_terms');
SELECT kaip_audit_table('talent_proposals');
SELECT kaip_audit_table('talent_teams');
SELECT kaip_audit_table('talent_team_terms');
SELECT kaip_audit_table('talent_eliminations');
SELECT kaip_audit_table('talent_positions');
SELECT kaip_audit_table('talent_researchers');
SELECT kaip_audit_table('talent_applications');
SELECT kaip_audit_table('talent_rounds');
SELECT kaip_audit_table('talent_matches');
SELECT kaip_audit_table('talent_match_answers');
SELECT kaip_audit_table('talent_hires');
SELECT kaip_audit_table('talent_team_years');
SELECT kaip_audit_table('talent_claims');
