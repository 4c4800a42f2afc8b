DROP TABLE IF EXISTS trendline_events;
DROP TABLE IF EXISTS trendlines;
DROP TABLE IF EXISTS scan_settings;
DROP TABLE IF EXISTS watchlists;
