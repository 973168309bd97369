-- Every intake domain table is in the audit trail (kaip-bus's audit_trail migration): each
-- change is recorded with its actor, trace and operation in the same transaction. Document
-- bytes are recorded as their sha256 and size. Tables added later opt in the same way.
SELECT kaip_audit_table('programmes');
SELECT kaip_audit_table('calls');
SELECT kaip_audit_table('consortia');
SELECT kaip_audit_table('consortium_members');
SELECT kaip_audit_table('proposals');
SELECT kaip_audit_table('proposal_versions');
SELECT kaip_audit_table('proposal_documents', ARRAY['content']);
