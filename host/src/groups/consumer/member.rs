//! One member of a consumer-protocol group and how its assignment moves
//! toward its target (Kafka's `CurrentAssignmentBuilder`).
//!
//! Invariants:
//! * a member first gives up the partitions its target no longer holds
//!   (`Unrevoked`: its epoch stays until its heartbeat shows it no longer
//!   owns them), and only then moves to the target's epoch;
//! * it is given a partition only once no other member holds it, assigned
//!   or pending revocation (`Unreleased` until then), so no partition is
//!   ever assigned to two members at once.

use std::time::Duration;

use tokio::time::Instant;

use super::Partitions;

/// Where a member's assignment stands against its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum MemberState {
    /// Holds its target at the group's assignment epoch.
    Stable,
    /// Must give up `pending_revocation` first.
    Unrevoked,
    /// At the target's epoch, waiting for partitions others still hold.
    Unreleased,
}

#[derive(Debug, Clone)]
pub(super) struct Member {
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub epoch: i32,
    pub previous_epoch: i32,
    pub state: MemberState,
    /// What it has been told it owns.
    pub assigned: Partitions,
    /// What it must give up before it moves on.
    pub pending_revocation: Partitions,
    /// Topic names it subscribes to (sorted, distinct).
    pub names: Vec<String>,
    pub regex: Option<(String, regex::Regex)>,
    pub assignor: Option<String>,
    pub rebalance_timeout: Duration,
    pub session_deadline: Instant,
    /// Set while `Unrevoked`: past it, the member is fenced.
    pub revocation_deadline: Option<Instant>,
    /// A static member that left for now: it keeps its place until its
    /// session ends or its instance joins again.
    pub left_static: bool,
}

impl Member {
    pub fn new(client_id: String, client_host: String, now: Instant) -> Member {
        Member {
            instance_id: None,
            rack_id: None,
            client_id,
            client_host,
            epoch: 0,
            previous_epoch: 0,
            state: MemberState::Stable,
            assigned: Partitions::new(),
            pending_revocation: Partitions::new(),
            names: Vec::new(),
            regex: None,
            assignor: None,
            rebalance_timeout: Duration::from_secs(300),
            session_deadline: now,
            revocation_deadline: None,
            left_static: false,
        }
    }

    /// Whether the topic is in its subscription.
    pub fn subscribes(&self, topic: &str) -> bool {
        self.names.binary_search_by(|n| n.as_str().cmp(topic)).is_ok()
            || self.regex.as_ref().is_some_and(|(_, r)| r.is_match(topic))
    }

    /// Moves the assignment toward `target` at `target_epoch`. `owned` is
    /// what the member's heartbeat says it owns (`None`: unchanged since
    /// its last one); `held_by_others` whether another member still holds a
    /// partition.
    pub fn reconcile(
        &mut self,
        target: &Partitions,
        target_epoch: i32,
        owned: Option<&Partitions>,
        held_by_others: &dyn Fn(&(String, i32)) -> bool,
        now: Instant,
    ) {
        if self.state == MemberState::Unrevoked {
            let revoked = owned.is_some_and(|o| o.is_disjoint(&self.pending_revocation));
            if !revoked {
                return;
            }
            self.pending_revocation.clear();
            self.revocation_deadline = None;
            self.state = MemberState::Stable;
        }
        if self.state == MemberState::Stable && self.epoch == target_epoch && &self.assigned == target {
            return;
        }
        let keep: Partitions = self.assigned.intersection(target).cloned().collect();
        let revoke: Partitions = self.assigned.difference(target).cloned().collect();
        if !revoke.is_empty() {
            self.assigned = keep;
            self.pending_revocation = revoke;
            self.state = MemberState::Unrevoked;
            self.revocation_deadline = now.checked_add(self.rebalance_timeout);
            return;
        }
        let mut assigned = keep;
        let mut unreleased = false;
        for tp in target.difference(&self.assigned) {
            if held_by_others(tp) {
                unreleased = true;
            } else {
                assigned.insert(tp.clone());
            }
        }
        if self.epoch != target_epoch {
            self.previous_epoch = self.epoch;
            self.epoch = target_epoch;
        }
        self.assigned = assigned;
        self.state = if unreleased {
            MemberState::Unreleased
        } else {
            MemberState::Stable
        };
    }
}
