//! One consumer group's state machine (Kafka's classic group protocol):
//! joins and the rebalance they drive. The other requests (sync, heartbeat,
//! commit check, leave, expiry, describe) are in `requests.rs`.
//!
//! Invariants:
//! * `Empty` ⇔ no members (pending members, which still have to come back
//!   with the id they were given, do not count); `rebalance` is `Some`
//!   exactly in `PreparingRebalance`;
//! * a member with a waiting join or sync holds its reply channel here, and
//!   every path that removes a member, starts a rebalance or shuts down
//!   answers those channels: no request waits on a member that is gone;
//! * `statics` maps each static instance id to the one member id that holds
//!   it; requests naming the instance with another member id are fenced;
//! * the generation only grows (overflow restarts at 1) and is kept when
//!   the group becomes Empty.
//!
//! Methods take `now` explicitly and never sleep: the coordinator calls
//! `Group::expire` from its timer to apply session and rebalance deadlines.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::error::GroupError;
use super::member::{Answer, Member, Reply, after};
use super::types::{GroupState, JoinMember, JoinRequest, JoinResponse, Limits};

/// The `PreparingRebalance` timers.
pub(super) struct Rebalance {
    /// Members that have not rejoined by then are removed.
    deadline: Instant,
    /// For a group that was Empty: do not complete before `until`.
    initial: Option<Initial>,
}

pub(super) struct Initial {
    until: Instant,
    delay: Duration,
    /// A member arrived during the delay: wait one more delay (up to the
    /// deadline) when it ends.
    new_member_added: bool,
}

pub(super) struct Group {
    pub(super) id: String,
    pub(super) state: GroupState,
    pub(super) generation: i32,
    pub(super) protocol_type: Option<String>,
    pub(super) protocol_name: Option<String>,
    pub(super) leader: Option<String>,
    pub(super) members: HashMap<String, Member>,
    /// Member ids handed out with MemberIdRequired -> when they expire.
    pub(super) pending: HashMap<String, Instant>,
    /// Instance id -> the member id holding it.
    pub(super) statics: HashMap<String, String>,
    pub(super) next_seq: u64,
    pub(super) rebalance: Option<Rebalance>,
}

impl Group {
    pub(super) fn new(id: String) -> Group {
        Group {
            id,
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol_name: None,
            leader: None,
            members: HashMap::new(),
            pending: HashMap::new(),
            statics: HashMap::new(),
            next_seq: 0,
            rebalance: None,
        }
    }

    pub(super) fn state(&self) -> GroupState {
        self.state
    }

    pub(super) fn protocol_type(&self) -> &str {
        self.protocol_type.as_deref().unwrap_or_default()
    }

    /// A group that never formed a generation and holds nobody: dropped
    /// from the coordinator rather than kept forever.
    pub(super) fn is_vacant(&self) -> bool {
        self.state == GroupState::Empty && self.generation == 0 && self.members.is_empty() && self.pending.is_empty()
    }

    /// When the initial delay of a new group's first rebalance ends, while
    /// that delay runs.
    pub(super) fn initial_until(&self) -> Option<Instant> {
        self.rebalance
            .as_ref()
            .and_then(|r| r.initial.as_ref())
            .map(|i| i.until)
    }

    pub(super) fn join(
        &mut self,
        req: JoinRequest,
        new_id: String,
        now: Instant,
        limits: &Limits,
    ) -> Result<Answer<JoinResponse>, GroupError> {
        let held_by = req
            .group_instance_id
            .as_ref()
            .and_then(|i| self.statics.get(i))
            .cloned();
        let is_new = req.member_id.is_empty();
        if !is_new {
            if held_by.as_ref().is_some_and(|holder| *holder != req.member_id) {
                return Err(GroupError::FencedInstanceId);
            }
            if !self.members.contains_key(&req.member_id) && !self.pending.contains_key(&req.member_id) {
                return Err(GroupError::UnknownMemberId);
            }
        } else if held_by.is_none() && self.members.len() + self.pending.len() >= limits.max_members {
            return Err(GroupError::GroupMaxSizeReached);
        }
        let replacing = if is_new {
            held_by.as_deref()
        } else {
            Some(req.member_id.as_str())
        };
        if !self.supports(&req.protocol_type, &req.protocols, replacing) {
            return Err(GroupError::InconsistentGroupProtocol);
        }

        let (tx, rx) = oneshot::channel();
        if is_new {
            if let Some(old_id) = held_by {
                self.replace_static(&old_id, new_id, req, tx, now, limits);
            } else if req.group_instance_id.is_none() && req.require_known_member_id {
                self.pending.insert(new_id.clone(), after(now, req.session_timeout));
                return Err(GroupError::MemberIdRequired { member_id: new_id });
            } else {
                self.add_member(new_id, req, tx, now, limits);
            }
        } else if self.pending.remove(&req.member_id).is_some() {
            let id = req.member_id.clone();
            self.add_member(id, req, tx, now, limits);
        } else {
            self.rejoin(req, tx, now, limits);
        }
        Ok(rx)
    }

    /// Whether a member with these protocols may join, next to every
    /// member but `replacing` (itself, or the static member it replaces).
    fn supports(&self, protocol_type: &str, protocols: &[(String, Bytes)], replacing: Option<&str>) -> bool {
        if protocol_type.is_empty() || protocols.is_empty() {
            return false;
        }
        let mut others = self
            .members
            .values()
            .filter(|m| Some(m.id.as_str()) != replacing)
            .peekable();
        if others.peek().is_some() && self.protocol_type.as_deref() != Some(protocol_type) {
            return false;
        }
        let others: Vec<&Member> = others.collect();
        protocols
            .iter()
            .any(|(name, _)| others.iter().all(|m| m.supports(name)))
    }

    fn add_member(&mut self, id: String, req: JoinRequest, tx: Reply<JoinResponse>, now: Instant, limits: &Limits) {
        if self.members.is_empty() {
            self.protocol_type = Some(req.protocol_type.clone());
        }
        if let Some(instance) = &req.group_instance_id {
            self.statics.insert(instance.clone(), id.clone());
        }
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        self.members.insert(id.clone(), Member::new(id, req, seq, now, tx));
        if let Some(initial) = self.rebalance.as_mut().and_then(|r| r.initial.as_mut()) {
            initial.new_member_added = true;
        }
        self.start_rebalance(now, limits);
    }

    /// A static member rejoining without its member id: it takes the old
    /// member's place (join order, leadership, assignment) under a new id,
    /// the old id is fenced, and the group rebalances.
    fn replace_static(
        &mut self,
        old_id: &str,
        new_id: String,
        req: JoinRequest,
        tx: Reply<JoinResponse>,
        now: Instant,
        limits: &Limits,
    ) {
        let Some(mut old) = self.members.remove(old_id) else {
            self.add_member(new_id, req, tx, now, limits);
            return;
        };
        old.fail_waiters(&GroupError::FencedInstanceId);
        if self.leader.as_deref() == Some(old_id) {
            self.leader = Some(new_id.clone());
        }
        if self.members.is_empty() {
            self.protocol_type = Some(req.protocol_type.clone());
        }
        if let Some(instance) = &req.group_instance_id {
            self.statics.insert(instance.clone(), new_id.clone());
        }
        let mut member = Member::new(new_id.clone(), req, old.seq, now, tx);
        member.assignment = old.assignment;
        self.members.insert(new_id, member);
        self.start_rebalance(now, limits);
    }

    /// A known member joins again. In CompletingRebalance with unchanged
    /// protocols, and in Stable for a follower with unchanged protocols,
    /// it gets the current generation back without a rebalance (as
    /// Kafka); otherwise its protocols are updated and the group
    /// (re)balances.
    fn rejoin(&mut self, req: JoinRequest, tx: Reply<JoinResponse>, now: Instant, limits: &Limits) {
        let is_leader = self.leader.as_deref() == Some(req.member_id.as_str());
        let Some(member) = self.members.get_mut(&req.member_id) else {
            let _ = tx.send(Err(GroupError::UnknownMemberId));
            return;
        };
        member.last_seen = now;
        let unchanged = member.protocols == req.protocols;
        let current = match self.state {
            GroupState::CompletingRebalance => unchanged,
            GroupState::Stable => unchanged && !is_leader,
            GroupState::PreparingRebalance => false,
            GroupState::Empty | GroupState::Dead => {
                let _ = tx.send(Err(GroupError::UnknownMemberId));
                return;
            }
        };
        if current {
            let protocol = self.protocol_name.clone().unwrap_or_default();
            let members = if is_leader { self.roster(&protocol) } else { Vec::new() };
            let _ = tx.send(Ok(self.join_response(req.member_id, protocol, members)));
            return;
        }
        member.protocols = req.protocols;
        member.session_timeout = req.session_timeout;
        member.rebalance_timeout = req.rebalance_timeout;
        if let Some(old) = member.join.replace(tx) {
            let _ = old.send(Err(GroupError::RebalanceInProgress));
        }
        if self.members.len() == 1 {
            self.protocol_type = Some(req.protocol_type);
        }
        self.start_rebalance(now, limits);
    }

    /// Moves to PreparingRebalance unless already there, then completes
    /// the rebalance if it can.
    pub(super) fn start_rebalance(&mut self, now: Instant, limits: &Limits) {
        if self.state != GroupState::PreparingRebalance {
            self.prepare(now, limits);
        }
        self.try_complete(now);
    }

    fn prepare(&mut self, now: Instant, limits: &Limits) {
        if self.members.is_empty() {
            self.set_empty();
            return;
        }
        if self.state == GroupState::CompletingRebalance {
            for member in self.members.values_mut() {
                member.assignment = Bytes::new();
                if let Some(tx) = member.sync.take() {
                    let _ = tx.send(Err(GroupError::RebalanceInProgress));
                }
            }
        }
        let timeout = self
            .members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or_default();
        let initial = (self.state == GroupState::Empty && !limits.initial_rebalance_delay.is_zero()).then(|| {
            let delay = limits.initial_rebalance_delay.min(timeout);
            Initial {
                until: after(now, delay),
                delay,
                new_member_added: false,
            }
        });
        self.rebalance = Some(Rebalance {
            deadline: after(now, timeout),
            initial,
        });
        self.state = GroupState::PreparingRebalance;
    }

    /// Completes the rebalance once every member (and no pending one) has
    /// rejoined, or at the deadline; an empty group's first rebalance also
    /// waits out its initial delay.
    pub(super) fn try_complete(&mut self, now: Instant) {
        let Some(rebalance) = self.rebalance.as_mut() else {
            return;
        };
        let deadline = rebalance.deadline;
        if let Some(initial) = rebalance.initial.as_mut() {
            if now < initial.until {
                return;
            }
            if initial.new_member_added && now < deadline {
                initial.new_member_added = false;
                initial.until = after(now, initial.delay).min(deadline);
                return;
            }
            rebalance.initial = None;
        }
        let all_joined = self.pending.is_empty() && self.members.values().all(|m| m.join.is_some());
        if all_joined || now >= deadline {
            self.complete(now);
        }
    }

    fn complete(&mut self, now: Instant) {
        let stale: Vec<String> = self
            .members
            .values()
            .filter(|m| m.join.is_none())
            .map(|m| m.id.clone())
            .collect();
        for id in &stale {
            self.remove_member(id, &GroupError::UnknownMemberId);
        }
        self.rebalance = None;
        let leader = match &self.leader {
            Some(leader) if self.members.contains_key(leader) => leader.clone(),
            _ => match self.members.values().min_by_key(|m| m.seq) {
                Some(first) => first.id.clone(),
                None => {
                    self.set_empty();
                    return;
                }
            },
        };
        self.generation = self.generation.checked_add(1).unwrap_or(1);
        let protocol = self.select_protocol(&leader);
        self.leader = Some(leader.clone());
        self.protocol_name = Some(protocol.clone());
        self.state = GroupState::CompletingRebalance;
        let mut roster = Some(self.roster(&protocol));
        let mut answers = Vec::with_capacity(self.members.len());
        for member in self.members.values_mut() {
            member.last_seen = now;
            if let Some(tx) = member.join.take() {
                let members = if member.id == leader {
                    roster.take().unwrap_or_default()
                } else {
                    Vec::new()
                };
                answers.push((tx, member.id.clone(), members));
            }
        }
        for (tx, id, members) in answers {
            let _ = tx.send(Ok(self.join_response(id, protocol.clone(), members)));
        }
    }

    /// The protocol every member supports with the most first-choice votes;
    /// ties go to the leader's preference.
    fn select_protocol(&self, leader: &str) -> String {
        let Some(leader) = self.members.get(leader) else {
            return String::new();
        };
        let mut votes: Vec<(&str, usize)> = leader
            .protocols
            .iter()
            .map(|(name, _)| name.as_str())
            .filter(|name| self.members.values().all(|m| m.supports(name)))
            .map(|name| (name, 0))
            .collect();
        for member in self.members.values() {
            let choice = member
                .protocols
                .iter()
                .find_map(|(name, _)| votes.iter().position(|(c, _)| c == name));
            if let Some(i) = choice
                && let Some(vote) = votes.get_mut(i)
            {
                vote.1 += 1;
            }
        }
        let mut best: Option<(&str, usize)> = None;
        for &(name, count) in &votes {
            if best.is_none_or(|(_, most)| count > most) {
                best = Some((name, count));
            }
        }
        // Joins only admit members sharing a protocol with all others, so
        // `best` is always found; the fallback keeps this total.
        best.map(|(name, _)| name.to_string())
            .or_else(|| leader.protocols.first().map(|(name, _)| name.clone()))
            .unwrap_or_default()
    }

    /// Every member with its metadata for `protocol`, in join order.
    fn roster(&self, protocol: &str) -> Vec<JoinMember> {
        let mut members: Vec<&Member> = self.members.values().collect();
        members.sort_by_key(|m| m.seq);
        members
            .into_iter()
            .map(|m| JoinMember {
                member_id: m.id.clone(),
                group_instance_id: m.instance_id.clone(),
                metadata: m.metadata(protocol),
            })
            .collect()
    }

    fn join_response(&self, member_id: String, protocol_name: String, members: Vec<JoinMember>) -> JoinResponse {
        JoinResponse {
            generation_id: self.generation,
            protocol_type: self.protocol_type().to_string(),
            protocol_name,
            leader: self.leader.clone().unwrap_or_default(),
            member_id,
            members,
        }
    }

    pub(super) fn set_empty(&mut self) {
        self.state = GroupState::Empty;
        self.rebalance = None;
        self.protocol_name = None;
        self.leader = None;
    }

    /// Removes a member, answering its waiting requests with `err`; the
    /// caller decides what the group does next.
    pub(super) fn remove_member(&mut self, id: &str, err: &GroupError) -> bool {
        let Some(mut member) = self.members.remove(id) else {
            return false;
        };
        member.fail_waiters(err);
        if let Some(instance) = &member.instance_id
            && self.statics.get(instance).map(String::as_str) == Some(id)
        {
            self.statics.remove(instance);
        }
        if self.leader.as_deref() == Some(id) {
            self.leader = None;
        }
        true
    }

    /// After members left: the rest rebalance, or the group is Empty.
    pub(super) fn after_removal(&mut self, now: Instant, limits: &Limits) {
        match self.state {
            GroupState::Empty | GroupState::Dead => {}
            _ if self.members.is_empty() => self.set_empty(),
            _ => self.start_rebalance(now, limits),
        }
    }
}
