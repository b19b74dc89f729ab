-- An e-mail address for each account (optional): meeting reminders go to invited users who
-- have one. Keep migrations/sqlite/ and migrations/postgres/ in step.

ALTER TABLE users ADD COLUMN email TEXT;
