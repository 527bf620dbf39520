//! One consumer-protocol group: its members, epochs, the topics its
//! members subscribe to, and the target assignment.
//!
//! Invariants:
//! * the group epoch grows whenever membership, a subscription, the chosen
//!   assignor or a subscribed topic's partition count changes; the target
//!   is recomputed at once, so the assignment epoch equals the group epoch
//!   between calls;
//! * a member's epoch never exceeds the assignment epoch; a heartbeat with
//!   a newer epoch than the member's is fenced, one with an older epoch is
//!   accepted only if it is the member's previous one and it owns nothing
//!   it was not assigned (the answer to its last heartbeat was lost).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use tokio::time::Instant;
use uuid::Uuid;

use super::assignor::{self, ASSIGNORS, Subscriber};
use super::member::{Member, MemberState};
use super::{
    ConsumerGroupState, ConsumerHeartbeat, ConsumerHeartbeatAnswer, ConsumerMemberDescription, Partitions, TopicMeta,
    Topics, WirePartitions,
};
use crate::groups::{GroupError, Limits};

/// Member epoch of a heartbeat that joins.
const JOIN: i32 = 0;
/// Member epoch of a heartbeat that leaves.
const LEAVE: i32 = -1;
/// Member epoch of a static member leaving for now (it keeps its place
/// until its session ends).
const LEAVE_STATIC: i32 = -2;

#[derive(Debug, Default)]
pub(in crate::groups) struct ConsumerGroup {
    pub epoch: i32,
    members: BTreeMap<String, Member>,
    target: HashMap<String, Partitions>,
    /// Subscribed topics that exist.
    topics: BTreeMap<String, TopicMeta>,
    assignor: String,
}

impl ConsumerGroup {
    pub fn new() -> ConsumerGroup {
        ConsumerGroup {
            assignor: ASSIGNORS[0].to_string(),
            ..ConsumerGroup::default()
        }
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub fn state(&self) -> ConsumerGroupState {
        if self.members.is_empty() {
            return ConsumerGroupState::Empty;
        }
        let settled = self
            .members
            .values()
            .all(|m| m.state == MemberState::Stable && m.epoch == self.epoch);
        match settled {
            true => ConsumerGroupState::Stable,
            false => ConsumerGroupState::Reconciling,
        }
    }

    pub fn assignor(&self) -> &str {
        &self.assignor
    }

    pub fn heartbeat(
        &mut self,
        req: ConsumerHeartbeat,
        member_id: String,
        topics: &dyn Topics,
        now: Instant,
        limits: &Limits,
    ) -> Result<ConsumerHeartbeatAnswer, GroupError> {
        let interval = limits.consumer_heartbeat;
        let answer = |epoch: i32, assignment: Option<WirePartitions>| ConsumerHeartbeatAnswer {
            member_id: member_id.clone(),
            member_epoch: epoch,
            heartbeat_interval: interval,
            assignment,
        };
        // Checked before anything changes.
        let regex = match req.subscribed_regex.as_deref() {
            Some(p) if !p.is_empty() => Some((p.to_string(), compile(p)?)),
            _ => None,
        };
        if let Some(a) = &req.server_assignor
            && !ASSIGNORS.contains(&a.as_str())
        {
            return Err(GroupError::UnsupportedAssignor);
        }
        match req.member_epoch {
            LEAVE => {
                let static_id = req.instance_id.as_deref();
                let found = self.members.contains_key(&member_id)
                    || static_id.is_some_and(|i| self.members.values().any(|m| m.instance_id.as_deref() == Some(i)));
                if !found {
                    return Err(GroupError::UnknownMemberId);
                }
                self.members
                    .retain(|id, m| *id != member_id && (static_id.is_none() || m.instance_id.as_deref() != static_id));
                self.changed();
                return Ok(answer(LEAVE, None));
            }
            LEAVE_STATIC => {
                let m = self.members.get_mut(&member_id).ok_or(GroupError::UnknownMemberId)?;
                if m.instance_id.is_none() {
                    return Err(GroupError::UnknownMemberId);
                }
                // Keeps its place and assignment until its session ends or
                // its instance comes back.
                m.left_static = true;
                return Ok(answer(LEAVE_STATIC, None));
            }
            JOIN => self.join(&req, &member_id, now, limits)?,
            e if e > 0 => self.check_epoch(&member_id, e, &req.owned)?,
            e => return Err(GroupError::InvalidRequest(format!("member epoch {e} is not valid"))),
        }
        let mut changed = self.update_member(&member_id, &req, regex, now, limits)?;
        changed |= self.refresh_topics(topics);
        if changed || req.member_epoch == JOIN && !self.target.contains_key(&member_id) {
            self.changed();
        }
        let owned = req.owned.as_ref().map(|o| self.partitions_of(o));
        let Some(m) = self.members.get(&member_id) else {
            return Err(GroupError::UnknownMemberId);
        };
        let before = (m.epoch, m.assigned.clone());
        let target = self.target.get(&member_id).cloned().unwrap_or_default();
        let held = self.held_by_others(&member_id);
        let epoch = self.epoch;
        let Some(m) = self.members.get_mut(&member_id) else {
            return Err(GroupError::UnknownMemberId);
        };
        m.reconcile(&target, epoch, owned.as_ref(), &|tp| held.contains(tp), now);
        // As Kafka does: on a join, when it changed, and whenever the member
        // reported what it owns (a client may have set an answer aside
        // while it was still applying an earlier one; it then reports and
        // expects the assignment again).
        let send = req.member_epoch == JOIN || before != (m.epoch, m.assigned.clone()) || owned.is_some();
        let (epoch, assigned) = (m.epoch, send.then(|| m.assigned.clone()));
        let assignment = assigned.map(|a| self.wire(&a));
        Ok(answer(epoch, assignment))
    }

    /// Takes in what the heartbeat says of the member (`None` fields: no
    /// change) and renews its session; whether the group must rebalance.
    fn update_member(
        &mut self,
        member_id: &str,
        req: &ConsumerHeartbeat,
        regex: Option<(String, regex::Regex)>,
        now: Instant,
        limits: &Limits,
    ) -> Result<bool, GroupError> {
        let mut changed = false;
        let Some(m) = self.members.get_mut(member_id) else {
            return Err(GroupError::UnknownMemberId);
        };
        // A static member that heartbeats again is back.
        m.left_static = false;
        if let Some(names) = &req.subscribed_names {
            let mut names = names.clone();
            names.sort();
            names.dedup();
            changed |= names != m.names;
            m.names = names;
        }
        if let Some(pattern) = &req.subscribed_regex {
            let same = m.regex.as_ref().map(|(p, _)| p.as_str()) == Some(pattern.as_str()).filter(|p| !p.is_empty());
            if !same {
                m.regex = regex;
                changed = true;
            }
        }
        if let Some(a) = &req.server_assignor {
            changed |= m.assignor.as_ref() != Some(a);
            m.assignor = Some(a.clone());
        }
        if let Some(t) = req.rebalance_timeout {
            m.rebalance_timeout = t;
        }
        if let Some(r) = &req.rack_id {
            m.rack_id = Some(r.clone());
        }
        m.session_deadline = now.checked_add(limits.consumer_session).unwrap_or(now);
        Ok(changed)
    }

    /// A heartbeat with epoch 0: a new member, a member starting over, or a
    /// static member's instance coming back under a new member id.
    fn join(
        &mut self,
        req: &ConsumerHeartbeat,
        member_id: &str,
        now: Instant,
        limits: &Limits,
    ) -> Result<(), GroupError> {
        if req.subscribed_names.is_none() && req.subscribed_regex.is_none() {
            return Err(GroupError::InvalidRequest(
                "a joining member must name its subscribed topics or a regular expression".into(),
            ));
        }
        if req.rebalance_timeout.is_none() {
            return Err(GroupError::InvalidRequest(
                "a joining member must give its rebalance timeout".into(),
            ));
        }
        if let Some(instance) = &req.instance_id {
            let holder = self
                .members
                .iter()
                .find(|(_, m)| m.instance_id.as_ref() == Some(instance))
                .map(|(id, m)| (id.clone(), m.left_static));
            if let Some((old_id, left)) = holder
                && old_id != member_id
            {
                if !left {
                    return Err(GroupError::UnreleasedInstanceId);
                }
                // The instance takes its place back: same epoch and
                // assignment, no rebalance.
                if let Some(mut m) = self.members.remove(&old_id) {
                    m.left_static = false;
                    m.client_id.clone_from(&req.client_id);
                    m.client_host.clone_from(&req.client_host);
                    if let Some(target) = self.target.remove(&old_id) {
                        self.target.insert(member_id.to_string(), target);
                    }
                    self.members.insert(member_id.to_string(), m);
                }
                return Ok(());
            }
        }
        if !self.members.contains_key(member_id) && self.members.len() >= limits.max_members {
            return Err(GroupError::GroupMaxSizeReached);
        }
        // A member that starts over owns nothing: what it held is free.
        let mut m = Member::new(req.client_id.clone(), req.client_host.clone(), now);
        m.instance_id.clone_from(&req.instance_id);
        if let Some(old) = self.members.get(member_id) {
            m.names.clone_from(&old.names);
            m.regex.clone_from(&old.regex);
            m.assignor.clone_from(&old.assignor);
        }
        self.members.insert(member_id.to_string(), m);
        Ok(())
    }

    fn check_epoch(&self, member_id: &str, epoch: i32, owned: &Option<WirePartitions>) -> Result<(), GroupError> {
        let m = self.members.get(member_id).ok_or(GroupError::UnknownMemberId)?;
        if epoch > m.epoch {
            return Err(GroupError::FencedMemberEpoch);
        }
        if epoch < m.epoch {
            let owned = owned.as_ref().map(|o| self.partitions_of(o));
            let lost_answer = epoch == m.previous_epoch && owned.is_none_or(|o| o.is_subset(&m.assigned));
            if !lost_answer {
                return Err(GroupError::FencedMemberEpoch);
            }
        }
        Ok(())
    }

    /// Offset commits and fetches name the member's current epoch.
    pub fn check_member(&self, member_id: &str, epoch: i32) -> Result<(), GroupError> {
        let m = self.members.get(member_id).ok_or(GroupError::UnknownMemberId)?;
        match epoch.cmp(&m.epoch) {
            std::cmp::Ordering::Greater => Err(GroupError::FencedMemberEpoch),
            std::cmp::Ordering::Less => Err(GroupError::StaleMemberEpoch),
            std::cmp::Ordering::Equal => Ok(()),
        }
    }

    /// Re-reads the subscribed topics; whether any changed.
    fn refresh_topics(&mut self, topics: &dyn Topics) -> bool {
        let mut names: BTreeSet<String> = self.members.values().flat_map(|m| m.names.iter().cloned()).collect();
        let regexes: Vec<&regex::Regex> = self
            .members
            .values()
            .filter_map(|m| m.regex.as_ref().map(|r| &r.1))
            .collect();
        if !regexes.is_empty() {
            names.extend(
                topics
                    .names()
                    .into_iter()
                    .filter(|n| regexes.iter().any(|r| r.is_match(n))),
            );
        }
        let fresh: BTreeMap<String, TopicMeta> = names
            .into_iter()
            .filter_map(|n| topics.topic(&n).map(|meta| (n, meta)))
            .collect();
        if fresh == self.topics {
            return false;
        }
        self.topics = fresh;
        true
    }

    /// A new group epoch, and the target for it.
    fn changed(&mut self) {
        self.epoch = self.epoch.saturating_add(1);
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some(a) = &m.assignor {
                *votes.entry(a.as_str()).or_default() += 1;
            }
        }
        let chosen = votes
            .iter()
            .max_by_key(|(name, n)| (**n, std::cmp::Reverse(**name)))
            .map(|(a, _)| *a);
        self.assignor = chosen.unwrap_or(ASSIGNORS[0]).to_string();
        let counts: BTreeMap<String, u32> = self.topics.iter().map(|(t, m)| (t.clone(), m.partitions)).collect();
        let subscribers: BTreeMap<&str, Subscriber<'_>> = self
            .members
            .iter()
            .map(|(id, m)| {
                let topics = self
                    .topics
                    .keys()
                    .filter(|t| m.subscribes(t))
                    .map(String::as_str)
                    .collect();
                (
                    id.as_str(),
                    Subscriber {
                        topics,
                        previous: self.target.get(id),
                    },
                )
            })
            .collect();
        self.target = assignor::assign(&self.assignor, &subscribers, &counts);
    }

    /// Partitions another member than `member_id` holds or must still give up.
    fn held_by_others(&self, member_id: &str) -> HashSet<(String, i32)> {
        self.members
            .iter()
            .filter(|(id, _)| id.as_str() != member_id)
            .flat_map(|(_, m)| m.assigned.iter().chain(&m.pending_revocation).cloned())
            .collect()
    }

    /// Topic-id partitions as names; ids of topics it does not know are left out.
    fn partitions_of(&self, wire: &WirePartitions) -> Partitions {
        let by_id: HashMap<Uuid, &str> = self.topics.iter().map(|(n, m)| (m.id, n.as_str())).collect();
        wire.iter()
            .filter_map(|(id, ps)| by_id.get(id).map(|n| (n, ps)))
            .flat_map(|(n, ps)| ps.iter().map(move |p| (n.to_string(), *p)))
            .collect()
    }

    pub fn wire(&self, partitions: &Partitions) -> WirePartitions {
        by_topic(partitions)
            .into_iter()
            .filter_map(|(t, ps)| self.topics.get(t).map(|m| (m.id, ps)))
            .collect()
    }

    /// Topic name and id of each topic with partitions in `partitions`.
    pub fn named(&self, partitions: &Partitions) -> Vec<(String, Uuid, Vec<i32>)> {
        by_topic(partitions)
            .into_iter()
            .map(|(t, ps)| (t.to_string(), self.topics.get(t).map_or(Uuid::nil(), |m| m.id), ps))
            .collect()
    }

    pub fn describe_members(&self) -> Vec<ConsumerMemberDescription> {
        self.members
            .iter()
            .map(|(id, m)| ConsumerMemberDescription {
                member_id: id.clone(),
                instance_id: m.instance_id.clone(),
                rack_id: m.rack_id.clone(),
                member_epoch: m.epoch,
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                subscribed_names: m.names.clone(),
                subscribed_regex: m.regex.as_ref().map(|r| r.0.clone()),
                assignment: self.named(&m.assigned),
                target: self.named(&self.target.get(id).cloned().unwrap_or_default()),
            })
            .collect()
    }

    /// Removes members whose session ended or that did not give up
    /// partitions within their rebalance timeout.
    pub fn expire(&mut self, now: Instant) {
        let before = self.members.len();
        self.members
            .retain(|_, m| m.session_deadline > now && m.revocation_deadline.is_none_or(|d| d > now));
        if self.members.len() != before {
            self.changed();
        }
    }
}

fn compile(pattern: &str) -> Result<regex::Regex, GroupError> {
    // Kafka matches the whole topic name (RE2J `matches`).
    // Compiled size bounded: a pattern is client input.
    regex::RegexBuilder::new(&format!("^(?:{pattern})$"))
        .size_limit(1 << 20)
        .dfa_size_limit(1 << 20)
        .build()
        .map_err(|e| GroupError::InvalidRegularExpression(e.to_string()))
}

/// `partitions` grouped by topic name, topics in name order.
fn by_topic(partitions: &Partitions) -> BTreeMap<&str, Vec<i32>> {
    let mut out: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in partitions {
        out.entry(t.as_str()).or_default().push(*p);
    }
    out
}
