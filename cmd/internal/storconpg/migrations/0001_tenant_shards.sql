-- The durable part of every tenant shard (package persist's TenantShard).
-- shard_count is the literal count: 0 for an unsharded tenant.
-- generation is NULL until the first one is issued; it only increases, and
-- the named range check turns an increment past the largest generation
-- into an error of the whole statement.
CREATE TABLE tenant_shards (
    tenant_id VARCHAR NOT NULL,
    shard_number INTEGER NOT NULL CHECK (shard_number BETWEEN 0 AND 255),
    shard_count INTEGER NOT NULL CHECK (shard_count BETWEEN 0 AND 255),
    shard_stripe_size BIGINT NOT NULL CHECK (shard_stripe_size BETWEEN 0 AND 4294967295),
    generation BIGINT CONSTRAINT tenant_shards_generation_range CHECK (generation BETWEEN 1 AND 4294967295),
    generation_pageserver BIGINT CHECK (generation_pageserver > 0),
    placement_policy VARCHAR NOT NULL,
    splitting SMALLINT NOT NULL DEFAULT 0 CHECK (splitting IN (0, 1)),
    config TEXT NOT NULL,
    scheduling_policy VARCHAR NOT NULL,
    preferred_az_id VARCHAR,
    PRIMARY KEY (tenant_id, shard_number, shard_count)
);

-- Re-attach finds a node's shards by the node their generation was issued to.
CREATE INDEX tenant_shards_generation_pageserver ON tenant_shards (generation_pageserver);

-- Start-up lists the rows of unfinished splits.
CREATE INDEX tenant_shards_splitting ON tenant_shards (tenant_id) WHERE splitting <> 0;
