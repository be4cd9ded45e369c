//! LeaveGroup v0–5, translated to the group coordinator's request and back.
//!
//! v0–2 name one member (`member_id`) and answer one error: the member's when the request as a
//! whole succeeded. v3+ carry a batch of members (KIP-345) answered one by one.

use std::sync::Arc;

use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse, ResponseKind};
use strata_core::ErrorCode;
use strata_core::group::{self, LeavingMember, Request, Response};

use super::{group_reply, str_bytes};
use crate::broker::Broker;
use crate::handled::Handled;

pub fn handle(broker: &Arc<Broker>, req: LeaveGroupRequest, version: i16) -> Handled {
    let group_id = req.group_id.0.to_string();
    let members = if version >= 3 {
        req.members
            .into_iter()
            .map(|m| LeavingMember {
                member_id: m.member_id.to_string(),
                group_instance_id: m.group_instance_id.map(|s| s.to_string()),
            })
            .collect()
    } else {
        vec![LeavingMember {
            member_id: req.member_id.to_string(),
            group_instance_id: None,
        }]
    };
    let request = Request::LeaveGroup(group::LeaveGroup {
        group_id: group_id.clone(),
        members,
    });
    let pending = broker.groups.submit_group(broker, &group_id, request);
    group_reply(pending, move |reply| {
        let r = match reply {
            Ok(Response::LeaveGroup(r)) => r,
            Ok(_) => group::LeaveGroupResponse {
                error_code: ErrorCode::UNKNOWN_SERVER_ERROR,
                members: Vec::new(),
            },
            Err(code) => group::LeaveGroupResponse {
                error_code: code,
                members: Vec::new(),
            },
        };
        let mut members = r.members;
        let error_code = match (version, members.first()) {
            (0..=2, Some((_, _, member_error))) if r.error_code == ErrorCode::NONE => *member_error,
            _ => r.error_code,
        };
        if version < 3 {
            // v0–2 have no member list.
            members.clear();
        }
        ResponseKind::LeaveGroup(
            LeaveGroupResponse::default()
                .with_error_code(error_code.0)
                .with_members(
                    members
                        .into_iter()
                        .map(|(member_id, instance_id, code)| {
                            MemberResponse::default()
                                .with_member_id(str_bytes(&member_id))
                                .with_group_instance_id(instance_id.as_deref().map(str_bytes))
                                .with_error_code(code.0)
                        })
                        .collect(),
                ),
        )
    })
}
