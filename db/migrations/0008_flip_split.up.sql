-- A flip that the broker cannot do in one order (Alpaca) is split in two: the signal itself
-- closes the position, and an entry signal, written with the close's order in one transaction,
-- opens the new side once that close has ended. The entry points at the signal it came from;
-- one entry per signal at most.
ALTER TABLE signals ADD COLUMN parent_signal_id uuid REFERENCES signals (id) ON DELETE CASCADE;
CREATE UNIQUE INDEX signals_parent ON signals (parent_signal_id) WHERE parent_signal_id IS NOT NULL;
