//! JoinGroup v0–9, translated to the group coordinator's request and back.
//!
//! v0 has no rebalance timeout: the session timeout stands in (Kafka's `JoinGroupRequest`,
//! KAFKA-8653). The reply is parked by the coordinator until the join phase completes; before
//! v7 the protocol name is not nullable, so a missing one is sent as "".

use std::sync::Arc;

use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse, ResponseKind};
use strata_core::ErrorCode;
use strata_core::group::{self, Protocol, Request, Response};

use super::{group_reply, str_bytes};
use crate::broker::Broker;
use crate::handled::{Client, Handled};

pub fn handle(
    broker: &Arc<Broker>,
    req: JoinGroupRequest,
    version: i16,
    client: &Client,
) -> Handled {
    let group_id = req.group_id.0.to_string();
    let member_id = req.member_id.to_string();
    let request = Request::JoinGroup(group::JoinGroup {
        api_version: version,
        group_id: group_id.clone(),
        session_timeout_ms: req.session_timeout_ms,
        rebalance_timeout_ms: if version == 0 {
            req.session_timeout_ms
        } else {
            req.rebalance_timeout_ms
        },
        member_id: member_id.clone(),
        group_instance_id: req.group_instance_id.map(|s| s.to_string()),
        protocol_type: req.protocol_type.to_string(),
        protocols: req
            .protocols
            .into_iter()
            .map(|p| Protocol {
                name: p.name.to_string(),
                metadata: p.metadata,
            })
            .collect(),
        client_id: client.client_id.clone(),
        client_host: client.host.clone(),
    });
    let pending = broker.groups.submit_group(broker, &group_id, request);
    group_reply(pending, move |reply| {
        let r = match reply {
            Ok(Response::JoinGroup(r)) => r,
            Ok(_) => error(&member_id, ErrorCode::UNKNOWN_SERVER_ERROR),
            Err(code) => error(&member_id, code),
        };
        let protocol_name = match r.protocol_name {
            None if version < 7 => Some(String::new()),
            name => name,
        };
        ResponseKind::JoinGroup(
            JoinGroupResponse::default()
                .with_error_code(r.error_code.0)
                .with_generation_id(r.generation_id)
                .with_protocol_type(r.protocol_type.as_deref().map(str_bytes))
                .with_protocol_name(protocol_name.as_deref().map(str_bytes))
                .with_leader(str_bytes(&r.leader))
                .with_skip_assignment(version >= 9 && r.skip_assignment)
                .with_member_id(str_bytes(&r.member_id))
                .with_members(
                    r.members
                        .into_iter()
                        .map(|m| {
                            JoinGroupResponseMember::default()
                                .with_member_id(str_bytes(&m.member_id))
                                .with_group_instance_id(
                                    m.group_instance_id.as_deref().map(str_bytes),
                                )
                                .with_metadata(m.metadata)
                        })
                        .collect(),
                ),
        )
    })
}

fn error(member_id: &str, code: ErrorCode) -> group::JoinGroupResponse {
    group::JoinGroupResponse {
        error_code: code,
        generation_id: -1,
        member_id: member_id.to_string(),
        ..Default::default()
    }
}
