-- Entry signals stay, as plain signals; only their link to the signal they came from goes.
DROP INDEX IF EXISTS signals_parent;
ALTER TABLE signals DROP COLUMN IF EXISTS parent_signal_id;
