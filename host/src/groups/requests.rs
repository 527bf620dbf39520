//! A group's answers to everything but join: sync, heartbeat, the commit
//! check, leave, deadline expiry, shutdown and describe.
//!
//! Each request first proves membership the same way (`check_member`:
//! fenced instance, then unknown member, then generation), and every
//! request a member makes refreshes its session.

use std::collections::HashMap;

use bytes::Bytes;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::error::GroupError;
use super::group::Group;
use super::member::{Answer, Member, ready};
use super::types::{GroupDescription, GroupState, Limits, MemberDescription, SyncRequest, SyncResponse};

impl Group {
    /// Fenced, unknown member, or another generation.
    fn check_member(&self, member_id: &str, instance: Option<&str>, generation: i32) -> Result<(), GroupError> {
        if let Some(holder) = instance.and_then(|i| self.statics.get(i))
            && holder != member_id
        {
            return Err(GroupError::FencedInstanceId);
        }
        if !self.members.contains_key(member_id) {
            return Err(GroupError::UnknownMemberId);
        }
        if generation != self.generation {
            return Err(GroupError::IllegalGeneration);
        }
        Ok(())
    }

    fn touch(&mut self, member_id: &str, now: Instant) {
        if let Some(member) = self.members.get_mut(member_id) {
            member.last_seen = now;
        }
    }

    pub(super) fn sync(
        &mut self,
        req: SyncRequest,
        now: Instant,
        limits: &Limits,
    ) -> Result<Answer<SyncResponse>, GroupError> {
        self.check_member(&req.member_id, req.group_instance_id.as_deref(), req.generation_id)?;
        if req
            .protocol_type
            .as_ref()
            .is_some_and(|t| self.protocol_type.as_ref() != Some(t))
            || req
                .protocol_name
                .as_ref()
                .is_some_and(|n| self.protocol_name.as_ref() != Some(n))
        {
            return Err(GroupError::InconsistentGroupProtocol);
        }
        match self.state {
            GroupState::Empty | GroupState::Dead => return Err(GroupError::UnknownMemberId),
            GroupState::PreparingRebalance => return Err(GroupError::RebalanceInProgress),
            GroupState::CompletingRebalance | GroupState::Stable => {}
        }
        self.touch(&req.member_id, now);
        if self.state == GroupState::Stable {
            let assignment = self
                .members
                .get(&req.member_id)
                .map(|m| m.assignment.clone())
                .unwrap_or_default();
            return Ok(ready(Ok(self.sync_response(assignment))));
        }
        let is_leader = self.leader.as_deref() == Some(req.member_id.as_str());
        if is_leader && req.assignments.iter().any(|(_, a)| a.len() > limits.max_metadata_bytes) {
            return Err(GroupError::TooLarge);
        }
        let (tx, rx) = oneshot::channel();
        if let Some(member) = self.members.get_mut(&req.member_id)
            && let Some(old) = member.sync.replace(tx)
        {
            let _ = old.send(Err(GroupError::RebalanceInProgress));
        }
        if is_leader {
            let given: HashMap<&str, &Bytes> = req.assignments.iter().map(|(id, a)| (id.as_str(), a)).collect();
            for member in self.members.values_mut() {
                member.assignment = given.get(member.id.as_str()).map(|a| (*a).clone()).unwrap_or_default();
            }
            self.state = GroupState::Stable;
            let mut answers = Vec::new();
            for member in self.members.values_mut() {
                if let Some(tx) = member.sync.take() {
                    answers.push((tx, member.assignment.clone()));
                }
            }
            for (tx, assignment) in answers {
                let _ = tx.send(Ok(self.sync_response(assignment)));
            }
        }
        Ok(rx)
    }

    fn sync_response(&self, assignment: Bytes) -> SyncResponse {
        SyncResponse {
            protocol_type: self.protocol_type().to_string(),
            protocol_name: self.protocol_name.clone().unwrap_or_default(),
            assignment,
        }
    }

    pub(super) fn heartbeat(
        &mut self,
        generation: i32,
        member_id: &str,
        instance: Option<&str>,
        now: Instant,
    ) -> Result<(), GroupError> {
        self.check_member(member_id, instance, generation)?;
        self.touch(member_id, now);
        match self.state {
            GroupState::PreparingRebalance => Err(GroupError::RebalanceInProgress),
            GroupState::CompletingRebalance | GroupState::Stable => Ok(()),
            GroupState::Empty | GroupState::Dead => Err(GroupError::UnknownMemberId),
        }
    }

    /// OffsetCommit's membership check (Kafka's `validateOffsetCommit`):
    /// a simple commit (generation < 0, no member id, no instance id) only
    /// for an Empty group (else UNKNOWN_MEMBER_ID); otherwise a current member of the current
    /// generation, refused while CompletingRebalance. Commits during
    /// PreparingRebalance are allowed, as in Kafka: members commit before
    /// they rejoin. A passing check counts as a heartbeat.
    pub(super) fn check_commit(
        &mut self,
        generation: i32,
        member_id: &str,
        instance: Option<&str>,
        now: Instant,
    ) -> Result<(), GroupError> {
        if generation >= 0 || !member_id.is_empty() || instance.is_some() {
            self.check_member(member_id, instance, generation)?;
            if self.state == GroupState::CompletingRebalance {
                return Err(GroupError::RebalanceInProgress);
            }
            self.touch(member_id, now);
            Ok(())
        } else if self.state != GroupState::Empty {
            // Not a member of the group (Kafka's answer, which admin
            // clients show as "the group has active members").
            Err(GroupError::UnknownMemberId)
        } else {
            Ok(())
        }
    }

    /// LeaveGroup: one result per `(member id, instance id)`. An empty
    /// member id with an instance id names the static member holding it.
    pub(super) fn leave(
        &mut self,
        leaving: &[(String, Option<String>)],
        now: Instant,
        limits: &Limits,
    ) -> Vec<Result<(), GroupError>> {
        let mut removed = false;
        let mut pending_removed = false;
        let mut results = Vec::with_capacity(leaving.len());
        for (member_id, instance) in leaving {
            let holder = instance
                .as_deref()
                .filter(|i| !i.is_empty())
                .and_then(|i| self.statics.get(i))
                .cloned();
            let result = if member_id.is_empty() {
                match holder {
                    Some(id) if self.remove_member(&id, &GroupError::UnknownMemberId) => Ok(()),
                    _ => Err(GroupError::UnknownMemberId),
                }
            } else if holder.is_some_and(|h| h != *member_id) {
                Err(GroupError::FencedInstanceId)
            } else if self.remove_member(member_id, &GroupError::UnknownMemberId) {
                Ok(())
            } else if self.pending.remove(member_id).is_some() {
                pending_removed = true;
                results.push(Ok(()));
                continue;
            } else {
                Err(GroupError::UnknownMemberId)
            };
            removed |= result.is_ok();
            results.push(result);
        }
        if removed {
            self.after_removal(now, limits);
        } else if pending_removed {
            // A pending member only ever blocks a rebalance; it never starts one.
            self.try_complete(now);
        }
        results
    }

    /// Applies the deadlines at `now`: expired pending members and silent
    /// members are removed, and a rebalance whose time is up completes.
    pub(super) fn expire(&mut self, now: Instant, limits: &Limits) {
        self.pending.retain(|_, expires| *expires > now);
        let silent: Vec<String> = self
            .members
            .values()
            .filter(|m| m.expired(now))
            .map(|m| m.id.clone())
            .collect();
        for id in &silent {
            self.remove_member(id, &GroupError::UnknownMemberId);
        }
        if !silent.is_empty() {
            self.after_removal(now, limits);
        }
        self.try_complete(now);
    }

    /// Shutdown: every waiting request is answered `CoordinatorNotAvailable`.
    pub(super) fn shutdown(&mut self) {
        for member in self.members.values_mut() {
            member.fail_waiters(&GroupError::CoordinatorNotAvailable);
        }
    }

    pub(super) fn describe(&self) -> GroupDescription {
        let stable = self.state == GroupState::Stable;
        let protocol = if stable {
            self.protocol_name.clone().unwrap_or_default()
        } else {
            String::new()
        };
        let mut members: Vec<&Member> = self.members.values().collect();
        members.sort_by_key(|m| m.seq);
        GroupDescription {
            group_id: self.id.clone(),
            state: self.state,
            protocol_type: self.protocol_type().to_string(),
            members: members
                .into_iter()
                .map(|m| MemberDescription {
                    member_id: m.id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: if stable { m.metadata(&protocol) } else { Bytes::new() },
                    assignment: if stable { m.assignment.clone() } else { Bytes::new() },
                })
                .collect(),
            protocol_name: protocol,
        }
    }
}
