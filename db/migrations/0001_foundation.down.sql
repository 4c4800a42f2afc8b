DROP TABLE IF EXISTS queue_dead_letters;
DROP TABLE IF EXISTS queue_jobs;
