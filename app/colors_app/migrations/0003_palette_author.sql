-- expand: who created a palette. Nullable and unread by 0.1.x, so a rollback to 0.1.x keeps working; a later
-- contract migration may make it NOT NULL only once no running version inserts without it.
ALTER TABLE palettes ADD COLUMN IF NOT EXISTS created_by text;
