//! InitProducerId: a fresh producer id (epoch 0) for an idempotent
//! producer; ids are never handed out twice, also across restarts (see
//! `log::producers`). A transactional id is refused: transactions are not
//! supported.

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use super::super::Ctx;
use super::super::error::codes;

pub(super) fn handle(ctx: &Ctx, r: InitProducerIdRequest) -> InitProducerIdResponse {
    let mut out = InitProducerIdResponse::default();
    if r.transactional_id.is_some() {
        out.error_code = codes::transactions_unsupported();
        out.producer_id = ProducerId(-1);
        out.producer_epoch = -1;
        return out;
    }
    out.producer_id = ProducerId(ctx.host.allocate_producer_id());
    out.producer_epoch = 0;
    out
}
