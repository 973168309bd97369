SELECT kaip_audit_table('talent_match_answers');
DELETE FROM talent_hire_ends e WHERE cause = 'elimination'
    AND EXISTS (SELECT 1 FROM talent_hire_ends o WHERE o.hire_id = e.hire_id AND o.cause <> 'elimination');
ALTER TABLE talent_hire_ends DROP CONSTRAINT talent_hire_ends_pkey;
ALTER TABLE talent_hire_ends ADD PRIMARY KEY (hire_id);
SELECT kaip_audit_table('talent_hire_ends', '{}', ARRAY['reason']);
