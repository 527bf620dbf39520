//! An idempotent Kafka producer on a stateless node (`wal = "object"` on
//! moto, an eager uploader): right after the first records and twice more
//! mid-stream, the server's answers are held back until it has stored
//! batches confluent-kafka was never told about and the WAL was trimmed
//! past them (producer state now only in the checkpoint); the node is
//! SIGKILLed, its whole data dir deleted, and the client's retries after
//! the restart are recognised as retries: every value is stored exactly
//! once, in order.

use sluice_test_artifacts::moto;

use crate::fault_proxy::FaultProxy;
use crate::kafka::{Kills, idempotent_producer_through_kills};
use crate::support::{Server, ServerOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotent_producer_survives_sigkill_and_an_empty_data_dir() {
    const COUNT: u64 = 12_000;
    let test = "an_idempotent_producer_survives_sigkill_and_an_empty_data_dir";
    let Some(s3) = moto::server_or_skip(test) else {
        return;
    };
    let bucket = s3.unique_bucket("e2e-owal-idem");
    let config = format!(
        "wal = \"object\"\nwal_object_interval = \"20ms\"\nobject_store = \"s3://{bucket}/node\"\n\
         upload_chunk_bytes = \"64KiB\"\nupload_min_bytes = \"1B\"\nupload_interval = \"0s\"\n"
    );
    let proxy = FaultProxy::bind().await;
    let config = format!("{config}kafka_advertised = \"{}\"\n", proxy.addr());
    let mut server = Server::start_with(ServerOptions {
        envs: s3.env_vars(),
        config: Some(config),
        ..ServerOptions::default()
    })
    .await;
    let plan = Kills {
        at: &[1, COUNT / 3, COUNT * 2 / 3],
        wait_trimmed: true,
        wipe: true,
    };
    idempotent_producer_through_kills(&mut server, &proxy, COUNT, &plan).await;
}
