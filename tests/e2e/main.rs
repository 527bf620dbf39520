//! Black-box tests of the `sluice` binary over real HTTP: each test starts
//! its own server process on a temp data dir and a free port.

mod cli;
mod cli_plugins;
mod cli_support;
mod cluster_auth;
mod compaction;
mod crash;
mod crash_matrix;
mod crash_world;
mod http_errors;
mod http_limits;
mod kafka;
mod kafka_bad_input;
mod kafka_cluster;
mod kafka_cluster_groups;
mod kafka_compact;
mod kafka_groups;
mod kafka_groups_bad_input;
mod kafka_support;
mod kafka_views;
mod metrics;
mod object_wal;
mod object_wal_groups;
mod pipeline;
mod plugin_api;
mod plugin_dev;
mod plugins_http;
mod quickstart;
mod replication;
mod replication_support;
mod schema;
mod shutdown;
mod soak_connections;
mod support;
mod tiering;
mod workload;
