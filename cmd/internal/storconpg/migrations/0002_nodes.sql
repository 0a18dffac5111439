-- The node registry (package persist's Node). A deleted node keeps its row,
-- lifecycle 'deleted', until an operator drops it.
CREATE TABLE nodes (
    node_id BIGINT PRIMARY KEY CHECK (node_id > 0),
    scheduling_policy VARCHAR NOT NULL,
    listen_http_addr VARCHAR NOT NULL,
    listen_http_port INTEGER NOT NULL CHECK (listen_http_port BETWEEN 0 AND 65535),
    listen_pg_addr VARCHAR NOT NULL,
    listen_pg_port INTEGER NOT NULL CHECK (listen_pg_port BETWEEN 0 AND 65535),
    listen_grpc_addr VARCHAR NOT NULL,
    listen_grpc_port INTEGER NOT NULL CHECK (listen_grpc_port BETWEEN 0 AND 65535),
    availability_zone_id VARCHAR NOT NULL,
    lifecycle VARCHAR NOT NULL DEFAULT 'active' CHECK (lifecycle IN ('active', 'deleted'))
);
