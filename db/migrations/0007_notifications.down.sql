DROP TABLE IF EXISTS notification_dead_letters;
DROP TABLE IF EXISTS notification_channels;
