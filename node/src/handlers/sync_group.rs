//! SyncGroup v0–5, translated to the group coordinator's request and back. Every SyncGroup is
//! parked until the leader's assignment is committed (or the group rebalances); before v5 the
//! protocol type and name are not sent.

use std::sync::Arc;

use kafka_protocol::messages::{ResponseKind, SyncGroupRequest, SyncGroupResponse};
use strata_core::ErrorCode;
use strata_core::group::{self, Request, Response};

use super::{group_reply, str_bytes};
use crate::broker::Broker;
use crate::handled::Handled;

pub fn handle(broker: &Arc<Broker>, req: SyncGroupRequest, version: i16) -> Handled {
    let group_id = req.group_id.0.to_string();
    let request = Request::SyncGroup(group::SyncGroup {
        group_id: group_id.clone(),
        generation_id: req.generation_id,
        member_id: req.member_id.to_string(),
        group_instance_id: req.group_instance_id.map(|s| s.to_string()),
        protocol_type: (version >= 5)
            .then_some(req.protocol_type)
            .flatten()
            .map(|s| s.to_string()),
        protocol_name: (version >= 5)
            .then_some(req.protocol_name)
            .flatten()
            .map(|s| s.to_string()),
        assignments: req
            .assignments
            .into_iter()
            .map(|a| (a.member_id.to_string(), a.assignment))
            .collect(),
    });
    let pending = broker.groups.submit_group(broker, &group_id, request);
    group_reply(pending, move |reply| {
        let r = match reply {
            Ok(Response::SyncGroup(r)) => r,
            Ok(_) => group::SyncGroupResponse {
                error_code: ErrorCode::UNKNOWN_SERVER_ERROR,
                ..Default::default()
            },
            Err(code) => group::SyncGroupResponse {
                error_code: code,
                ..Default::default()
            },
        };
        ResponseKind::SyncGroup(
            SyncGroupResponse::default()
                .with_error_code(r.error_code.0)
                .with_protocol_type(r.protocol_type.as_deref().map(str_bytes))
                .with_protocol_name(r.protocol_name.as_deref().map(str_bytes))
                .with_assignment(r.assignment),
        )
    })
}
