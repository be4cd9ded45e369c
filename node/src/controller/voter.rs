//! A member of the controller quorum as the configuration names it.

use strata_core::types::NodeId;

/// A controller quorum voter and its `CONTROLLER://` listener (`controller.quorum.voters`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Voter {
    pub id: NodeId,
    pub host: String,
    pub port: u16,
}

impl Voter {
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}
