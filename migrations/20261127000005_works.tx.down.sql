DROP TABLE uploads;
DROP TABLE storage_usage;
DROP TABLE assets;
DROP TABLE works;
