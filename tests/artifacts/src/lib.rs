//! Paths of the plugins built from `plugins/` for `wasm32-wasip2`, for tests
//! and benchmarks. Building happens in this crate's build script, which
//! installs the `wasm32-wasip2` target with rustup if it is missing.
//!
//! [`moto`] provides a real S3-protocol server (moto) for tests, installed
//! into `.ci/moto-venv` on first use; [`kafka_clients`] provides third-party
//! Kafka clients (`kcat`, a python with confluent-kafka and kafka-python
//! from `.ci/kafka-venv`, and KafkaJS and @platformatic/kafka from
//! `.ci/node-kafka`), installed on
//! first use the same way;
//! [`schemathesis`] provides `st` for the OpenAPI schema test, the same way.

mod installer;
pub mod kafka_clients;
pub mod moto;
pub mod quixstreams;
pub mod schemathesis;
mod venv;

include!(concat!(env!("OUT_DIR"), "/plugins.rs"));

/// Reads a built plugin.
pub fn read(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("cannot read plugin `{path}`: {e}"))
}
