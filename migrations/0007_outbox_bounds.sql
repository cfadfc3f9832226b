-- Bounds on the outbox. A mail whose link has expired (expires_at) is dropped rather than
-- sent; one the SMTP server keeps refusing for longer than allowed since it was queued
-- (queued_at, reset when an operator requeues it) is set aside as a dead letter (failed_at),
-- never claimed again until requeued.
ALTER TABLE outbox ADD COLUMN expires_at BIGINT NULL;
ALTER TABLE outbox ADD COLUMN queued_at BIGINT NULL;
ALTER TABLE outbox ADD COLUMN failed_at BIGINT NULL;
UPDATE outbox SET queued_at = created_at;
