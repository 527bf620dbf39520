//! [Quix Streams](https://pypi.org/project/quixstreams/), a stream-processing
//! framework on confluent-kafka (librdkafka, at the version Quix pins), for
//! the test that runs a real stateful application against sluice's Kafka
//! face: Quix keeps its state in stores backed by compacted changelog
//! topics and regroups through repartition topics, both of which it
//! creates itself with CreateTopics.
//!
//! Where the python comes from, in order: `SLUICE_QUIX_PYTHON` (a python
//! that imports `quixstreams`); else `<workspace>/.ci/quix-venv/bin/python3`,
//! installed there ([`QUIX_REQUIREMENT`]) on first use, once per checkout,
//! the way the other test venvs are (`.ci/run` builds the same venv up
//! front). Quix pins a confluent-kafka older than the Kafka tests' own, so
//! it gets a venv of its own.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::venv::Venv;

/// Environment variable naming a python that imports `quixstreams`.
pub const PYTHON_VAR: &str = "SLUICE_QUIX_PYTHON";
/// What gets installed into `.ci/quix-venv`. `.ci/run` reads the pin from
/// this line (keep it on one line), so this is the one place to change it.
pub const QUIX_REQUIREMENT: &str = "quixstreams==3.28.1";

const VENV: Venv = Venv {
    label: "quixstreams",
    name: "quixstreams",
    purpose: "the stream-processing framework test",
    dir: ".ci/quix-venv",
    lock: ".ci/quix-venv.lock",
    requirements: &[QUIX_REQUIREMENT],
    probe: "bin/python3",
    check: Some("import quixstreams"),
    alternatives: "or set SLUICE_QUIX_PYTHON to a python3 that imports quixstreams",
};

/// A python3 that imports `quixstreams`, installing it first if need be;
/// panics with one line saying why when it cannot be had.
pub fn python() -> &'static Path {
    static PYTHON: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let found = PYTHON.get_or_init(|| match std::env::var_os(PYTHON_VAR) {
        Some(path) => Ok(PathBuf::from(path)),
        None => VENV.ensure(),
    });
    match found {
        Ok(path) => path,
        Err(e) => panic!("{e}"),
    }
}
