-- The audit trail: who caused each event (the acting user's id; NULL for system actors such
-- as the demo seed and for requests nobody was logged in for), on the live table and its
-- archive. A column without a default does not rewrite either table.
-- The archive copies rows by column name (see `pg/archive.rs`), so the archive's columns may
-- come in another order than the live table's.
ALTER TABLE domain_events ADD COLUMN actor_id uuid;
ALTER TABLE domain_events_processed ADD COLUMN actor_id uuid;

-- An entity's trail in the archive: its own events are found by `domain_events_processed_aggregate`
-- (0010); a student's enrolments and grades name the student in the payload.
CREATE INDEX domain_events_processed_student ON domain_events_processed ((payload ->> 'student_id'))
    WHERE payload ? 'student_id';
