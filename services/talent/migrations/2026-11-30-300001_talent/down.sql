DROP TABLE IF EXISTS talent_claims, talent_team_years, talent_hire_pay, talent_hires,
    talent_match_answers, talent_matches, talent_rounds, talent_applications,
    talent_researcher_personal, talent_researchers, talent_positions, talent_eliminations,
    talent_team_terms, talent_teams, talent_proposals, talent_terms;
