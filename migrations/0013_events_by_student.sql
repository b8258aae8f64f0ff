-- no-transaction
-- A student's enrolments and grades among the live events: their aggregate is the class, the
-- student is in the payload.
CREATE INDEX CONCURRENTLY IF NOT EXISTS domain_events_student ON domain_events ((payload ->> 'student_id'))
    WHERE payload ? 'student_id';
