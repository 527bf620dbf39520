//! The Kafka classic consumer-group membership coordinator, as pure
//! in-memory logic: JoinGroup, SyncGroup, Heartbeat, LeaveGroup, the
//! membership check of OffsetCommit, DescribeGroups, ListGroups and
//! DeleteGroups, with Kafka's `GroupCoordinator` semantics (member ids,
//! generations, leader election, protocol voting, static membership,
//! session and rebalance timeouts).
//!
//! It knows nothing of the wire format: a Kafka face translates requests
//! into these calls and [`GroupError`] variants into error codes. Committed
//! offsets are not kept here. Groups live in memory only.
//!
//! Invariants:
//! * one lock guards every group; no await happens while it is held. A join
//!   or sync that must wait registers a reply channel in its group and
//!   awaits it after the lock is released ([`Waiting`]), so dropping the
//!   request future abandons the answer but not the membership;
//! * the number of groups, members per group and the size of every id,
//!   metadata and assignment are bounded by [`Limits`], checked before
//!   anything is stored;
//! * after [`Coordinator::stop`] every waiting request has been answered
//!   `CoordinatorNotAvailable` and every new one gets that answer;
//! * a group that never formed a generation and holds nobody (for example
//!   one whose only member never came back after `MemberIdRequired`) is
//!   dropped on expiry; a group that did form one stays, Empty, until
//!   deleted.
//!
//! A join of a known follower into a Stable group with unchanged protocols
//! returns the current generation without a rebalance; the leader's join,
//! or changed protocols, rebalance (as Kafka).

mod consumer;
mod error;
mod group;
mod member;
mod requests;
mod types;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_edges;

use std::collections::HashMap;
use std::collections::hash_map::{Entry, RandomState};
use std::future::Future;
use std::hash::BuildHasher;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::oneshot::error::TryRecvError;
use tokio::time::{Instant, MissedTickBehavior};

pub use consumer::{
    ASSIGNORS, ConsumerGroupDescription, ConsumerGroupState, ConsumerHeartbeat, ConsumerHeartbeatAnswer,
    ConsumerMemberDescription, TopicMeta, Topics, WirePartitions,
};
pub use error::GroupError;
pub use types::{
    GroupDescription, GroupListing, GroupState, JoinMember, JoinRequest, JoinResponse, Limits, MemberDescription,
    SyncRequest, SyncResponse,
};

use group::Group;
use member::{Answer, ready};

/// How often the timer task started by [`Coordinator::start_timers`]
/// applies session and rebalance deadlines.
pub const TIMER_PERIOD: Duration = Duration::from_millis(250);

/// Length of the unique part of a generated member id.
const UNIQUE_LEN: usize = 36;

/// The consumer groups of one node.
pub struct Coordinator {
    limits: Limits,
    inner: Mutex<Inner>,
    next_id: AtomicU64,
    /// Keyed at random per coordinator: member ids are not guessable.
    ids: RandomState,
    /// Itself, for the timer of a new group's initial delay.
    me: Weak<Coordinator>,
}

struct Inner {
    groups: HashMap<String, Group>,
    /// Consumer-protocol groups; an id is in at most one of the two maps.
    consumers: HashMap<String, consumer::ConsumerGroup>,
    stopped: bool,
    /// Added to the clock; tests move time forward with it.
    skew: Duration,
}

impl Inner {
    fn now(&self) -> Instant {
        let now = Instant::now();
        now.checked_add(self.skew).unwrap_or(now)
    }
}

/// The answer to a join or sync that may have to wait for the rest of the
/// group. Resolves `CoordinatorNotAvailable` if the coordinator drops the
/// request (it stopped).
pub struct Waiting<T> {
    rx: Option<Answer<T>>,
    ready: Option<Result<T, GroupError>>,
}

impl<T> Waiting<T> {
    fn new(answer: Result<Answer<T>, GroupError>) -> Self {
        match answer {
            Ok(rx) => Waiting {
                rx: Some(rx),
                ready: None,
            },
            Err(e) => Waiting {
                rx: None,
                ready: Some(Err(e)),
            },
        }
    }

    /// Whether the answer is there, without waiting (it stays for `.await`).
    pub fn is_resolved(&mut self) -> bool {
        if self.ready.is_some() {
            return true;
        }
        let Some(rx) = self.rx.as_mut() else {
            return true;
        };
        match rx.try_recv() {
            Ok(answer) => self.ready = Some(answer),
            Err(TryRecvError::Empty) => return false,
            Err(TryRecvError::Closed) => self.ready = Some(Err(GroupError::CoordinatorNotAvailable)),
        }
        self.rx = None;
        true
    }
}

impl<T: Unpin> Future for Waiting<T> {
    type Output = Result<T, GroupError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Some(answer) = this.ready.take() {
            return Poll::Ready(answer);
        }
        let Some(rx) = this.rx.as_mut() else {
            return Poll::Ready(Err(GroupError::CoordinatorNotAvailable));
        };
        match Pin::new(rx).poll(cx) {
            Poll::Ready(answer) => {
                this.rx = None;
                Poll::Ready(answer.unwrap_or(Err(GroupError::CoordinatorNotAvailable)))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Coordinator {
    pub fn new(limits: Limits) -> Arc<Coordinator> {
        Arc::new_cyclic(|me| Coordinator {
            me: me.clone(),
            limits,
            inner: Mutex::new(Inner {
                groups: HashMap::new(),
                consumers: HashMap::new(),
                stopped: false,
                skew: Duration::ZERO,
            }),
            next_id: AtomicU64::new(0),
            ids: RandomState::new(),
        })
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Resolves when the rebalance this join takes part in completes (or at
    /// once with an error).
    pub async fn join(&self, req: JoinRequest) -> Result<JoinResponse, GroupError> {
        self.begin_join(req).await
    }

    /// Registers the join now; the returned [`Waiting`] resolves when the
    /// rebalance completes.
    pub fn begin_join(&self, req: JoinRequest) -> Waiting<JoinResponse> {
        Waiting::new(self.register_join(req))
    }

    fn register_join(&self, mut req: JoinRequest) -> Result<Answer<JoinResponse>, GroupError> {
        req.group_instance_id = req.group_instance_id.filter(|i| !i.is_empty());
        self.check_join(&req)?;
        let new_id = if req.member_id.is_empty() {
            self.new_member_id(&req.client_id)
        } else {
            String::new()
        };
        let mut inner = self.lock();
        if inner.stopped {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        let now = inner.now();
        if let Some(g) = inner.consumers.get(&req.group_id) {
            if !g.is_empty() {
                return Err(GroupError::InconsistentGroupProtocol);
            }
            inner.consumers.remove(&req.group_id);
        }
        let count = inner.groups.len().saturating_add(inner.consumers.len());
        let group_id = req.group_id.clone();
        let group = match inner.groups.entry(group_id.clone()) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(_) if !req.member_id.is_empty() => return Err(GroupError::UnknownMemberId),
            Entry::Vacant(_) if count >= self.limits.max_groups => {
                return Err(GroupError::TooManyGroups);
            }
            Entry::Vacant(e) => e.insert(Group::new(group_id.clone())),
        };
        let waiting_before = group.initial_until().is_some();
        let answer = group.join(req, new_id, now, &self.limits);
        let starts_delay = !waiting_before && group.initial_until().is_some();
        if group.is_vacant() {
            inner.groups.remove(&group_id);
        }
        drop(inner);
        if starts_delay {
            self.complete_after_initial_delay(group_id);
        }
        answer
    }

    /// Completes a new group's first rebalance when its initial delay ends
    /// (extended while members keep arriving), not at the next timer tick:
    /// the delay is a latency every new group pays.
    fn complete_after_initial_delay(&self, group_id: String) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let me = self.me.clone();
        runtime.spawn(async move {
            loop {
                let wait = {
                    let Some(c) = me.upgrade() else { return };
                    let inner = c.lock();
                    let now = inner.now();
                    match inner.groups.get(&group_id).and_then(Group::initial_until) {
                        Some(until) => until.saturating_duration_since(now),
                        None => return,
                    }
                };
                // At least a millisecond, so a deadline that does not move
                // cannot spin.
                tokio::time::sleep(wait.max(Duration::from_millis(1))).await;
                let Some(c) = me.upgrade() else { return };
                c.expire_now();
            }
        });
    }

    fn check_join(&self, req: &JoinRequest) -> Result<(), GroupError> {
        self.check_group_id(&req.group_id)?;
        let l = &self.limits;
        if req.session_timeout < l.min_session || req.session_timeout > l.max_session {
            return Err(GroupError::InvalidSessionTimeout);
        }
        self.check_member_id(&req.member_id, req.group_instance_id.as_deref())?;
        check_len(&req.client_id, l.max_id_bytes)?;
        check_len(&req.client_host, l.max_id_bytes)?;
        check_len(&req.protocol_type, l.max_id_bytes)?;
        let mut total = 0usize;
        for (name, metadata) in &req.protocols {
            check_len(name, l.max_id_bytes)?;
            total = total.saturating_add(name.len()).saturating_add(metadata.len());
        }
        if total > l.max_metadata_bytes {
            return Err(GroupError::TooLarge);
        }
        if req.protocol_type.is_empty() || req.protocols.is_empty() {
            return Err(GroupError::InconsistentGroupProtocol);
        }
        Ok(())
    }

    fn check_group_id(&self, group_id: &str) -> Result<(), GroupError> {
        if group_id.is_empty() || group_id.len() > self.limits.max_id_bytes {
            return Err(GroupError::InvalidGroupId);
        }
        Ok(())
    }

    fn check_member_id(&self, member_id: &str, instance: Option<&str>) -> Result<(), GroupError> {
        check_len(member_id, self.member_id_limit())?;
        check_len(instance.unwrap_or_default(), self.limits.max_id_bytes)
    }

    /// Member ids may be as long as the ids this coordinator generates.
    fn member_id_limit(&self) -> usize {
        self.limits.max_id_bytes.max(UNIQUE_LEN)
    }

    /// `{client_id}-{unique}`, the client id shortened so the whole fits
    /// the member id limit; the unique part is 36 hex digits and dashes
    /// from a process-wide counter hashed with this coordinator's random
    /// keys.
    fn new_member_id(&self, client_id: &str) -> String {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        let a = self.ids.hash_one((n, 0u8));
        let b = self.ids.hash_one((n, 1u8));
        let unique = format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xffff,
            b >> 48,
            b & 0xffff_ffff_ffff
        );
        let Some(room) = self.member_id_limit().checked_sub(UNIQUE_LEN + 1) else {
            return unique;
        };
        let mut end = client_id.len().min(room);
        while !client_id.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}-{unique}", &client_id[..end])
    }

    /// Followers wait for the leader's assignment; in Stable, answers the
    /// current assignment at once.
    pub async fn sync(&self, req: SyncRequest) -> Result<SyncResponse, GroupError> {
        self.begin_sync(req).await
    }

    /// Registers the sync now; the returned [`Waiting`] resolves with the
    /// member's assignment.
    pub fn begin_sync(&self, req: SyncRequest) -> Waiting<SyncResponse> {
        Waiting::new(self.register_sync(req))
    }

    fn register_sync(&self, mut req: SyncRequest) -> Result<Answer<SyncResponse>, GroupError> {
        req.group_instance_id = req.group_instance_id.filter(|i| !i.is_empty());
        self.check_group_id(&req.group_id)?;
        self.check_member_id(&req.member_id, req.group_instance_id.as_deref())?;
        let mut inner = self.lock();
        if inner.stopped {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        let now = inner.now();
        match inner.groups.get_mut(&req.group_id) {
            Some(group) => group.sync(req, now, &self.limits),
            None => Ok(ready(Err(GroupError::UnknownMemberId))),
        }
    }

    /// Refreshes the member's session. `RebalanceInProgress` tells it to
    /// rejoin.
    pub fn heartbeat(
        &self,
        group_id: &str,
        generation_id: i32,
        member_id: &str,
        group_instance_id: Option<&str>,
    ) -> Result<(), GroupError> {
        self.check_group_id(group_id)?;
        let group_instance_id = instance(group_instance_id);
        self.check_member_id(member_id, group_instance_id)?;
        let mut inner = self.lock();
        if inner.stopped {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        let now = inner.now();
        match inner.groups.get_mut(group_id) {
            Some(group) => group.heartbeat(generation_id, member_id, group_instance_id, now),
            None => Err(GroupError::UnknownMemberId),
        }
    }

    /// LeaveGroup v3+ carries several members: one result per member, in
    /// order. An empty member id with an instance id names the static
    /// member holding that instance. An empty instance id, here and in
    /// every request, means none.
    pub fn leave(
        &self,
        group_id: &str,
        members: &[(String, Option<String>)],
    ) -> Result<Vec<Result<(), GroupError>>, GroupError> {
        self.check_group_id(group_id)?;
        let mut inner = self.lock();
        if inner.stopped {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        let now = inner.now();
        Ok(match inner.groups.get_mut(group_id) {
            Some(group) => group.leave(members, now, &self.limits),
            None => members.iter().map(|_| Err(GroupError::UnknownMemberId)).collect(),
        })
    }

    /// For OffsetCommit: generation -1 with an empty member id (and no
    /// instance id) is a "simple" commit, allowed only when the group is
    /// Empty or does not exist; otherwise member and generation must be
    /// current. Refused with `RebalanceInProgress` while
    /// CompletingRebalance; allowed while PreparingRebalance, as in Kafka
    /// (consumers commit before they rejoin). Passing counts as a
    /// heartbeat. The group id may be empty, as Kafka allows for commits.
    ///
    /// A consumer-protocol group takes commits from its members at their
    /// current epoch, only with `member_epochs` (OffsetCommit v9+; older
    /// versions are `UnsupportedVersion`), and simple commits only while it
    /// has no members.
    pub fn check_commit(
        &self,
        group_id: &str,
        generation_id: i32,
        member_id: &str,
        group_instance_id: Option<&str>,
        member_epochs: bool,
    ) -> Result<(), GroupError> {
        if group_id.len() > self.limits.max_id_bytes {
            return Err(GroupError::InvalidGroupId);
        }
        let group_instance_id = instance(group_instance_id);
        self.check_member_id(member_id, group_instance_id)?;
        let mut inner = self.lock();
        if inner.stopped {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        let now = inner.now();
        if let Some(g) = inner.consumers.get(group_id) {
            return match (member_id.is_empty() && generation_id < 0, g.is_empty()) {
                (true, true) => Ok(()),
                (true, false) => Err(GroupError::UnknownMemberId),
                (false, _) if !member_epochs => Err(GroupError::UnsupportedVersion),
                (false, _) => g.check_member(member_id, generation_id),
            };
        }
        match inner.groups.get_mut(group_id) {
            Some(group) => group.check_commit(generation_id, member_id, group_instance_id, now),
            None if generation_id < 0 => Ok(()),
            None => Err(GroupError::IllegalGeneration),
        }
    }

    pub fn describe(&self, group_id: &str) -> Option<GroupDescription> {
        self.lock().groups.get(group_id).map(Group::describe)
    }

    /// Every group, by group id.
    pub fn list(&self) -> Vec<GroupListing> {
        let inner = self.lock();
        let mut out: Vec<GroupListing> = inner
            .groups
            .iter()
            .map(|(id, g)| GroupListing {
                group_id: id.clone(),
                protocol_type: g.protocol_type().to_string(),
                state: g.state().as_str().to_string(),
                group_type: "classic",
            })
            .collect();
        out.extend(inner.consumers.iter().map(|(id, g)| GroupListing {
            group_id: id.clone(),
            protocol_type: "consumer".to_string(),
            state: g.state().as_str().to_string(),
            group_type: "consumer",
        }));
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        out
    }

    /// Only an Empty group can be deleted.
    pub fn delete(&self, group_id: &str) -> Result<(), GroupError> {
        self.check_group_id(group_id)?;
        let mut inner = self.lock();
        if inner.stopped {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        if let Some(g) = inner.consumers.get(group_id) {
            if !g.is_empty() {
                return Err(GroupError::NonEmptyGroup);
            }
            inner.consumers.remove(group_id);
            return Ok(());
        }
        match inner.groups.get(group_id).map(Group::state) {
            None => Err(GroupError::GroupIdNotFound),
            Some(GroupState::Empty) => {
                inner.groups.remove(group_id);
                Ok(())
            }
            Some(_) => Err(GroupError::NonEmptyGroup),
        }
    }

    /// Removes members whose session expired and pending members that did
    /// not come back, and completes rebalances whose time is up.
    pub fn expire_now(&self) {
        let mut inner = self.lock();
        if inner.stopped {
            return;
        }
        let now = inner.now();
        for group in inner.groups.values_mut() {
            group.expire(now, &self.limits);
        }
        inner.groups.retain(|_, g| !g.is_vacant());
        for group in inner.consumers.values_mut() {
            group.expire(now);
        }
    }

    /// Spawns the task that calls [`expire_now`](Self::expire_now) every
    /// [`TIMER_PERIOD`]. It holds only a `Weak`, so it ends once the
    /// coordinator is dropped (or stopped). Outside a Tokio runtime this
    /// does nothing.
    pub fn start_timers(self: &Arc<Self>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let weak: Weak<Coordinator> = Arc::downgrade(self);
        runtime.spawn(async move {
            let mut timer = tokio::time::interval(TIMER_PERIOD);
            timer.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                timer.tick().await;
                let Some(coordinator) = weak.upgrade() else {
                    return;
                };
                if coordinator.lock().stopped {
                    return;
                }
                coordinator.expire_now();
            }
        });
    }

    /// Shutdown: every waiting join and sync resolves with
    /// `CoordinatorNotAvailable`, the groups are dropped, and later
    /// requests get that error too.
    pub fn stop(&self) {
        let mut inner = self.lock();
        inner.stopped = true;
        for group in inner.groups.values_mut() {
            group.shutdown();
        }
        inner.groups.clear();
        inner.consumers.clear();
    }

    /// Moves this coordinator's clock forward and applies the deadlines.
    #[cfg(test)]
    pub(crate) fn advance(&self, by: Duration) {
        {
            let mut inner = self.lock();
            inner.skew = inner.skew.saturating_add(by);
        }
        self.expire_now();
    }
}

fn check_len(value: &str, limit: usize) -> Result<(), GroupError> {
    if value.len() > limit {
        return Err(GroupError::TooLarge);
    }
    Ok(())
}

/// An empty instance id means none (a dynamic member).
fn instance(id: Option<&str>) -> Option<&str> {
    id.filter(|i| !i.is_empty())
}
