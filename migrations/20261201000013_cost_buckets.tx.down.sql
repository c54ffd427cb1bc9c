DROP TABLE cost_buckets;
