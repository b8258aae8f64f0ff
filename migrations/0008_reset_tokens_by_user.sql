-- no-transaction
-- "Was this user sent a reset link in the last few minutes?" (see 0006).
CREATE INDEX CONCURRENTLY IF NOT EXISTS reset_password_tokens_user ON reset_password_tokens (user_id, created_at);
