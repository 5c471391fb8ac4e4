-- Attempts whose worker stopped before recording how they ended (the process died, or lost the
-- database), so that a message that itself stops workers can be told from its bystanders and
-- given up on instead of stopping every worker that claims it.
-- `interrupted`: such attempts in a row, counted by the claim that takes the message over.
-- `interrupted_alone`: of those, attempts made with nothing else in flight in their worker.
-- Both start again from 0 at the first claim after an outcome is recorded.
ALTER TABLE messages ADD COLUMN interrupted INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN interrupted_alone INTEGER NOT NULL DEFAULT 0;
