//! Heartbeat v0–4, translated to the group coordinator's request and back.

use std::sync::Arc;

use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse, ResponseKind};
use strata_core::ErrorCode;
use strata_core::group::{self, Request, Response};

use super::group_reply;
use crate::broker::Broker;
use crate::handled::Handled;

pub fn handle(broker: &Arc<Broker>, req: HeartbeatRequest) -> Handled {
    let group_id = req.group_id.0.to_string();
    let request = Request::Heartbeat(group::Heartbeat {
        group_id: group_id.clone(),
        generation_id: req.generation_id,
        member_id: req.member_id.to_string(),
        group_instance_id: req.group_instance_id.map(|s| s.to_string()),
    });
    let pending = broker.groups.submit_group(broker, &group_id, request);
    group_reply(pending, |reply| {
        let code = match reply {
            Ok(Response::Heartbeat(code)) => code,
            Ok(_) => ErrorCode::UNKNOWN_SERVER_ERROR,
            Err(code) => code,
        };
        ResponseKind::Heartbeat(HeartbeatResponse::default().with_error_code(code.0))
    })
}
