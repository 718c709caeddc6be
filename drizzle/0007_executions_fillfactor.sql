-- An execution's row is written three times in its life (submit, start, finish), and
-- the two updates change no indexed column: with room left on its page they are HOT
-- updates, adding no entry to either index. At 100 % (the default) the page a submit
-- filled has no room, so every start and finish moved the row to another page and
-- added two index entries that claims and finishes then stepped over. Rows written
-- from now on get the room; a VACUUM FULL gives it to older pages too.
ALTER TABLE "executions" SET (fillfactor = 60);
