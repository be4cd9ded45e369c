//! The clients of `group_coordinator`: what each knows (from the replies it got, as a real
//! consumer learns its member id, generation and leadership) and the requests a step makes
//! them send. Every field of a request can also be wrong: stale or garbage generations and
//! member ids, another client's ids, out-of-range timeouts, oversized metadata.

use bytes::Bytes;
use strata_core::error::ErrorCode;
use strata_core::group::{
    CommitPartition, CommitTopic, DeleteGroups, DescribeGroups, FetchGroup, GroupConfig, Heartbeat,
    JoinGroup, LeaveGroup, LeavingMember, ListGroups, OffsetCommit, OffsetDelete, OffsetFetch,
    Protocol, Request, Response, SyncGroup,
};

pub const CLIENTS: usize = 5;
/// The consumer groups clients join.
pub const GROUPS: [&str; 3] = ["g0", "g1", "g2"];
/// A group only committed to with generation −1 (assign() mode).
pub const STANDALONE: &str = "s";
/// A member id no coordinator hands out.
const GHOST: &str = "ghost-00000000";
/// Size of the group id pool (see [`group_id`]).
pub const POOL: u8 = 6;

/// The group id pool: the three groups, the standalone one, "" (invalid where a group is
/// required) and an id too long for the records' int16 string (invalid everywhere).
pub fn group_id(sel: u8) -> String {
    match sel % POOL {
        n @ 0..=2 => GROUPS[usize::from(n)].to_string(),
        3 => STANDALONE.to_string(),
        4 => String::new(),
        _ => "L".repeat(i16::MAX as usize + 1),
    }
}

/// A `ConsumerProtocolSubscription` v0 for `topics`.
pub fn subscription(topics: &[&str]) -> Bytes {
    let mut b = vec![0u8, 0];
    b.extend_from_slice(&(topics.len() as i32).to_be_bytes());
    for t in topics {
        b.extend_from_slice(&(t.len() as i16).to_be_bytes());
        b.extend_from_slice(t.as_bytes());
    }
    b.extend_from_slice(&(-1i32).to_be_bytes());
    Bytes::from(b)
}

fn protocol(name: &str, metadata: Bytes) -> Protocol {
    Protocol {
        name: name.to_string(),
        metadata,
    }
}

/// What one client knows.
#[derive(Debug, Clone, Default)]
pub struct Client {
    pub group: String,
    pub member_id: String,
    pub instance: Option<String>,
    pub generation: i32,
    pub leader: bool,
    /// The members the leader was given (its assignment covers them).
    pub members: Vec<String>,
    pub protocol: Option<String>,
}

impl Client {
    /// Learns from a reply to one of its requests, as Kafka's consumer does.
    pub fn learn(&mut self, response: &Response) {
        match response {
            Response::JoinGroup(r) => {
                if r.error_code == ErrorCode::UNKNOWN_MEMBER_ID
                    || r.error_code == ErrorCode::FENCED_INSTANCE_ID
                {
                    self.member_id.clear();
                } else if !r.member_id.is_empty() {
                    self.member_id = r.member_id.clone();
                }
                if r.error_code.is_ok() {
                    self.generation = r.generation_id;
                    self.leader = r.leader == r.member_id;
                    self.members = r.members.iter().map(|m| m.member_id.clone()).collect();
                    self.protocol = r.protocol_name.clone();
                }
            }
            Response::Heartbeat(e)
            | Response::SyncGroup(strata_core::group::SyncGroupResponse {
                error_code: e, ..
            }) if *e == ErrorCode::UNKNOWN_MEMBER_ID => {
                self.member_id.clear();
            }
            _ => {}
        }
    }
}

/// Builds the requests of the steps (`group_steps.rs` documents each selector).
pub struct Clients {
    pub list: [Client; CLIENTS],
    config: GroupConfig,
}

impl Clients {
    pub fn new(config: GroupConfig) -> Clients {
        Clients {
            list: Default::default(),
            config,
        }
    }

    fn index(client: u8) -> usize {
        usize::from(client) % CLIENTS
    }

    /// The client's group, or its default one before it joined any.
    fn group_of(&self, c: usize) -> String {
        let g = &self.list[c].group;
        if g.is_empty() {
            GROUPS[c % GROUPS.len()].to_string()
        } else {
            g.clone()
        }
    }

    fn generation(&self, c: usize, mode: u8) -> i32 {
        let own = self.list[c].generation;
        match mode & 3 {
            0 => own,
            1 => own.wrapping_sub(1),
            2 => own.wrapping_add(1),
            _ => -1,
        }
    }

    fn member(&self, c: usize, garbage: bool) -> String {
        if garbage {
            GHOST.to_string()
        } else {
            self.list[c].member_id.clone()
        }
    }

    fn instance(&self, c: usize, other: bool) -> Option<String> {
        if other {
            self.list[(c + 1) % CLIENTS].instance.clone()
        } else {
            self.list[c].instance.clone()
        }
    }

    pub fn join(
        &mut self,
        client: u8,
        group: u8,
        mode: u8,
        protocols: u8,
        session: u8,
        rebalance: u8,
    ) -> (usize, Request) {
        let c = Self::index(client);
        let group_id = group_id(group);
        if mode & 3 == 1 || self.list[c].group != group_id {
            self.list[c] = Client {
                group: group_id.clone(),
                ..Client::default()
            };
        }
        let member_id = match mode & 3 {
            0 | 1 => self.list[c].member_id.clone(),
            2 => self.list[(c + 1) % CLIENTS].member_id.clone(),
            _ => GHOST.to_string(),
        };
        self.list[c].instance = (mode & 4 != 0).then(|| format!("i{c}"));
        let instance = if mode & 8 != 0 {
            Some(String::new())
        } else {
            self.list[c].instance.clone()
        };
        let version = [0, 3, 4, 5, 9][usize::from((mode >> 4) & 7) % 5];
        let protocol_type = if mode & 0x80 != 0 {
            "connect"
        } else {
            "consumer"
        };
        let t = || subscription(&["t"]);
        let limit = self.config.max_member_metadata_bytes;
        let protocols = match protocols % 8 {
            0 => vec![protocol("range", t())],
            1 => vec![protocol("range", t()), protocol("roundrobin", t())],
            2 => vec![protocol("roundrobin", t())],
            3 => vec![protocol("range", subscription(&["t", "u"]))],
            4 => Vec::new(),
            // Name and metadata count against the limit: at it, and one byte over.
            5 => vec![protocol("range", Bytes::from(vec![7; limit - 5]))],
            6 => vec![protocol("range", Bytes::from(vec![7; limit - 4]))],
            _ => vec![protocol("range", Bytes::from_static(b"not a subscription"))],
        };
        let (min, max) = (
            self.config.min_session_timeout_ms,
            self.config.max_session_timeout_ms,
        );
        let session_timeout_ms = [
            min.saturating_sub(1),
            min,
            10_000,
            max,
            max.saturating_add(1),
            0,
            i32::MAX,
        ][usize::from(session) % 7];
        let rebalance_timeout_ms = [-1, 0, 1, 5_000, 20_000, i32::MAX][usize::from(rebalance) % 6];
        let request = Request::JoinGroup(JoinGroup {
            api_version: version,
            group_id,
            session_timeout_ms,
            rebalance_timeout_ms,
            member_id,
            group_instance_id: instance,
            protocol_type: protocol_type.to_string(),
            protocols,
            client_id: format!("client-{c}"),
            client_host: "/10.0.0.1".to_string(),
        });
        (c, request)
    }

    pub fn sync(&self, client: u8, mode: u8, assign: u8) -> (usize, Request) {
        let c = Self::index(client);
        let cl = &self.list[c];
        let (protocol_type, protocol_name) = match (mode >> 4) & 3 {
            0 => (Some("consumer".to_string()), cl.protocol.clone()),
            1 => (None, None),
            2 => (Some("connect".to_string()), cl.protocol.clone()),
            _ => (Some("consumer".to_string()), Some("nope".to_string())),
        };
        let own = |m: &String| (m.clone(), Bytes::from(m.clone()));
        let assignments = match assign % 4 {
            0 => cl.members.iter().map(own).collect(),
            1 => Vec::new(),
            2 => {
                let mut a: Vec<(String, Bytes)> = cl.members.iter().map(own).collect();
                a.push((GHOST.to_string(), Bytes::from_static(b"x")));
                if let Some(first) = a.first().cloned() {
                    a.push((first.0, Bytes::from_static(b"duplicate")));
                }
                a
            }
            _ => {
                let big = Bytes::from(vec![1; self.config.max_member_metadata_bytes + 1]);
                cl.members
                    .iter()
                    .map(|m| (m.clone(), big.clone()))
                    .collect()
            }
        };
        let request = Request::SyncGroup(SyncGroup {
            group_id: self.group_of(c),
            generation_id: self.generation(c, mode),
            member_id: self.member(c, mode & 4 != 0),
            group_instance_id: self.instance(c, mode & 8 != 0),
            protocol_type,
            protocol_name,
            assignments,
        });
        (c, request)
    }

    pub fn heartbeat(&self, client: u8, mode: u8) -> (usize, Request) {
        let c = Self::index(client);
        let request = Request::Heartbeat(Heartbeat {
            group_id: self.group_of(c),
            generation_id: self.generation(c, mode),
            member_id: self.member(c, mode & 4 != 0),
            group_instance_id: self.instance(c, mode & 8 != 0),
        });
        (c, request)
    }

    pub fn leave(&self, group: u8, clients: u8, mode: u8) -> Request {
        let mut members = Vec::new();
        for c in (0..CLIENTS).filter(|c| clients & (1 << c) != 0) {
            let cl = &self.list[c];
            members.push(if mode & 1 != 0 && cl.instance.is_some() {
                LeavingMember {
                    member_id: String::new(),
                    group_instance_id: cl.instance.clone(),
                }
            } else {
                LeavingMember {
                    member_id: cl.member_id.clone(),
                    group_instance_id: None,
                }
            });
        }
        if mode & 2 != 0 {
            members.push(LeavingMember {
                member_id: GHOST.to_string(),
                group_instance_id: None,
            });
        }
        if mode & 4 != 0 {
            members.push(LeavingMember {
                member_id: String::new(),
                group_instance_id: None,
            });
        }
        Request::LeaveGroup(LeaveGroup {
            group_id: group_id(group),
            members,
        })
    }

    pub fn commit(
        &self,
        client: u8,
        mode: u8,
        partitions: u8,
        offset: u8,
        metadata: u8,
    ) -> (usize, Request) {
        let c = Self::index(client);
        let cl = &self.list[c];
        let group = if mode & 4 != 0 {
            STANDALONE.to_string()
        } else {
            self.group_of(c)
        };
        let (generation_id, member_id, group_instance_id) = match mode & 3 {
            0 => (cl.generation, cl.member_id.clone(), cl.instance.clone()),
            1 => (-1, String::new(), None),
            2 => (
                cl.generation.wrapping_sub(1),
                cl.member_id.clone(),
                cl.instance.clone(),
            ),
            _ => (-1, cl.member_id.clone(), cl.instance.clone()),
        };
        let limit = self.config.offset_metadata_max_bytes;
        let metadata = match metadata % 6 {
            0 => None,
            1 => Some(String::new()),
            2 => Some("m".to_string()),
            n => Some("x".repeat((limit + usize::from(n)).saturating_sub(4))),
        };
        let offset = match offset {
            255 => i64::MAX,
            254 => -1,
            n => i64::from(n),
        };
        let count = 1 + usize::from(partitions & 3) % 3;
        let first = i32::from((partitions >> 2) & 3);
        let commit_partitions: Vec<CommitPartition> = (0..count as i32)
            .map(|i| CommitPartition {
                partition: (first + i) % 4,
                offset,
                leader_epoch: (offset % 3) as i32 - 1,
                metadata: metadata.clone(),
            })
            .collect();
        let topic = if mode & 0x10 != 0 {
            "T".repeat(i16::MAX as usize + 1)
        } else {
            "t".to_string()
        };
        let mut topics = vec![CommitTopic {
            name: topic,
            partitions: commit_partitions.clone(),
        }];
        if mode & 0x20 != 0 {
            topics.push(CommitTopic {
                name: "u".to_string(),
                partitions: commit_partitions,
            });
        }
        let request = Request::OffsetCommit(OffsetCommit {
            api_version: if mode & 8 != 0 { 8 } else { 9 },
            group_id: group,
            generation_id,
            member_id,
            group_instance_id,
            topics,
        });
        (c, request)
    }

    pub fn fetch(group: u8, mode: u8) -> Request {
        let topics = (mode & 2 == 0).then(|| {
            vec![
                ("t".to_string(), vec![0, 1, 2, 3]),
                ("u".to_string(), vec![0, 2]),
                ("nope".to_string(), vec![0]),
            ]
        });
        let mut groups = vec![FetchGroup {
            group_id: group_id(group),
            topics: topics.clone(),
        }];
        if mode & 4 != 0 {
            groups.push(FetchGroup {
                group_id: group_id(group.wrapping_add(1)),
                topics,
            });
        }
        Request::OffsetFetch(OffsetFetch {
            groups,
            require_stable: mode & 1 != 0,
        })
    }

    pub fn list(filter: u8) -> Request {
        let states: &[&str] = match filter % 5 {
            0 => &[],
            1 => &["Stable"],
            2 => &["empty"],
            3 => &["Dead", "PreparingRebalance", "CompletingRebalance"],
            _ => &["bogus"],
        };
        Request::ListGroups(ListGroups {
            states_filter: states.iter().map(|s| s.to_string()).collect(),
        })
    }

    fn pool(mask: u8) -> Vec<String> {
        (0..POOL)
            .filter(|i| mask & (1 << i) != 0)
            .map(group_id)
            .collect()
    }

    pub fn describe(groups: u8) -> Request {
        Request::DescribeGroups(DescribeGroups {
            groups: Self::pool(groups),
        })
    }

    pub fn delete(groups: u8) -> Request {
        Request::DeleteGroups(DeleteGroups {
            groups: Self::pool(groups),
        })
    }

    pub fn offset_delete(group: u8, mode: u8) -> Request {
        let t = ("t".to_string(), vec![0, 1, 2, 3]);
        let u = ("u".to_string(), vec![0, 1]);
        let topics = match mode % 4 {
            0 => vec![t],
            1 => vec![u],
            2 => vec![t, u],
            _ => Vec::new(),
        };
        Request::OffsetDelete(OffsetDelete {
            group_id: group_id(group),
            topics,
        })
    }
}
