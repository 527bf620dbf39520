//! Server-side assignors of the consumer group protocol: `uniform` (the
//! default) and `range`, as Kafka's group coordinator offers them.
//!
//! Both map every partition of every subscribed topic to exactly one
//! member subscribed to that topic, and leave partitions of topics no
//! member subscribes to unassigned. `uniform` keeps each partition where
//! the previous target put it as long as the counts stay within one of each
//! other among members that could take it; `range` gives each topic's
//! partitions in contiguous ranges to its subscribers sorted by member id,
//! so members subscribed to the same topics get the same partition numbers
//! of each (co-partitioned joins).
//!
//! Invariants: the result is a function of the inputs alone (members are
//! visited in id order), so every node computes the same target; no member
//! gets a partition of a topic it does not subscribe to.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::Partitions;

/// The assignors this coordinator offers, the default first.
pub const ASSIGNORS: [&str; 2] = ["uniform", "range"];

/// What an assignor sees of one member.
pub(super) struct Subscriber<'a> {
    /// Topics it subscribes to that exist.
    pub topics: BTreeSet<&'a str>,
    /// Its previous target.
    pub previous: Option<&'a Partitions>,
}

/// The target of each member: `members` by member id, `topics` the
/// partition count of each subscribed topic.
pub(super) fn assign(
    assignor: &str,
    members: &BTreeMap<&str, Subscriber<'_>>,
    topics: &BTreeMap<String, u32>,
) -> HashMap<String, Partitions> {
    match assignor {
        "range" => range(members, topics),
        _ => uniform(members, topics),
    }
}

fn range(members: &BTreeMap<&str, Subscriber<'_>>, topics: &BTreeMap<String, u32>) -> HashMap<String, Partitions> {
    let mut out: HashMap<String, Partitions> = members.keys().map(|m| (m.to_string(), Partitions::new())).collect();
    for (topic, &count) in topics {
        let subscribers: Vec<&str> = members
            .iter()
            .filter(|(_, s)| s.topics.contains(topic.as_str()))
            .map(|(m, _)| *m)
            .collect();
        let Ok(n) = u32::try_from(subscribers.len()) else {
            continue;
        };
        if n == 0 {
            continue;
        }
        let (each, extra) = (count / n, count % n);
        let mut next = 0u32;
        for (i, m) in (0u32..).zip(&subscribers) {
            let len = each + u32::from(i < extra);
            if let Some(set) = out.get_mut(*m) {
                for p in next..next.saturating_add(len) {
                    set.insert((topic.clone(), p as i32));
                }
            }
            next = next.saturating_add(len);
        }
    }
    out
}

fn uniform(members: &BTreeMap<&str, Subscriber<'_>>, topics: &BTreeMap<String, u32>) -> HashMap<String, Partitions> {
    let ids: Vec<&str> = members.keys().copied().collect();
    let index: HashMap<&str, usize> = ids.iter().enumerate().map(|(i, m)| (*m, i)).collect();
    let mut sets: Vec<Partitions> = vec![Partitions::new(); ids.len()];
    // Candidates of each topic: indexes of its subscribers.
    let candidates: BTreeMap<&str, Vec<usize>> = topics
        .keys()
        .map(|t| {
            let c = ids
                .iter()
                .enumerate()
                .filter(|(_, m)| members.get(**m).is_some_and(|s| s.topics.contains(t.as_str())))
                .map(|(i, _)| i)
                .collect();
            (t.as_str(), c)
        })
        .collect();
    // Keep what the previous target gave, where still valid and not taken.
    let mut owner: HashMap<(String, i32), usize> = HashMap::new();
    for (m, s) in members {
        let Some(&i) = index.get(m) else { continue };
        for (t, p) in s.previous.into_iter().flatten() {
            let valid = topics.get(t).is_some_and(|&n| *p >= 0 && (*p as u32) < n) && s.topics.contains(t.as_str());
            if valid && !owner.contains_key(&(t.clone(), *p)) {
                owner.insert((t.clone(), *p), i);
                if let Some(set) = sets.get_mut(i) {
                    set.insert((t.clone(), *p));
                }
            }
        }
    }
    // Every other partition to its least loaded candidate.
    for (t, &n) in topics {
        let Some(cands) = candidates.get(t.as_str()).filter(|c| !c.is_empty()) else {
            continue;
        };
        for p in 0..n as i32 {
            if owner.contains_key(&(t.clone(), p)) {
                continue;
            }
            let Some(&i) = cands.iter().min_by_key(|&&i| (sets.get(i).map_or(0, BTreeSet::len), i)) else {
                continue;
            };
            owner.insert((t.clone(), p), i);
            if let Some(set) = sets.get_mut(i) {
                set.insert((t.clone(), p));
            }
        }
    }
    balance(&mut sets, &candidates);
    ids.iter().zip(sets).map(|(m, s)| (m.to_string(), s)).collect()
}

/// Moves one partition at a time from the most loaded member that can give
/// one to a candidate holding at least two fewer, until no such move
/// exists. Taking from the most loaded first moves nothing twice when
/// subscriptions are the same; each move lowers the sum of squared counts,
/// so this ends.
fn balance(sets: &mut [Partitions], candidates: &BTreeMap<&str, Vec<usize>>) {
    let len = |sets: &[Partitions], i: usize| sets.get(i).map_or(0, BTreeSet::len);
    loop {
        let mut order: Vec<usize> = (0..sets.len()).collect();
        order.sort_by_key(|&i| (std::cmp::Reverse(len(sets, i)), i));
        let mut step = None;
        'find: for from in order {
            let Some(held) = sets.get(from) else { continue };
            for tp in held.iter().rev() {
                let Some(cands) = candidates.get(tp.0.as_str()) else {
                    continue;
                };
                let Some(&to) = cands.iter().min_by_key(|&&i| (len(sets, i), i)) else {
                    continue;
                };
                if len(sets, to).saturating_add(1) < held.len() {
                    step = Some((from, to, tp.clone()));
                    break 'find;
                }
            }
        }
        let Some((from, to, tp)) = step else { return };
        if let Some(s) = sets.get_mut(from) {
            s.remove(&tp);
        }
        if let Some(s) = sets.get_mut(to) {
            s.insert(tp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub<'a>(topics: &[&'a str], previous: Option<&'a Partitions>) -> Subscriber<'a> {
        Subscriber {
            topics: topics.iter().copied().collect(),
            previous,
        }
    }

    fn counts(out: &HashMap<String, Partitions>) -> Vec<usize> {
        let mut c: Vec<usize> = out.values().map(BTreeSet::len).collect();
        c.sort();
        c
    }

    fn every_partition_once(out: &HashMap<String, Partitions>, topics: &BTreeMap<String, u32>) {
        let mut all: Vec<&(String, i32)> = out.values().flatten().collect();
        all.sort();
        let total: u32 = topics.values().sum();
        assert_eq!(all.len(), total as usize, "{out:?}");
        all.dedup();
        assert_eq!(all.len(), total as usize, "a partition assigned twice: {out:?}");
    }

    #[test]
    fn uniform_balances_and_keeps_what_it_can() {
        let topics: BTreeMap<String, u32> = [("a".to_string(), 7), ("b".to_string(), 5)].into();
        let mut members = BTreeMap::new();
        members.insert("m1", sub(&["a", "b"], None));
        members.insert("m2", sub(&["a", "b"], None));
        let first = assign("uniform", &members, &topics);
        every_partition_once(&first, &topics);
        assert_eq!(counts(&first), vec![6, 6]);

        // A third member takes four; the first two keep eight of theirs.
        let (p1, p2) = (first["m1"].clone(), first["m2"].clone());
        let mut members = BTreeMap::new();
        members.insert("m1", sub(&["a", "b"], Some(&p1)));
        members.insert("m2", sub(&["a", "b"], Some(&p2)));
        members.insert("m3", sub(&["a", "b"], None));
        let second = assign("uniform", &members, &topics);
        every_partition_once(&second, &topics);
        assert_eq!(counts(&second), vec![4, 4, 4]);
        assert!(second["m1"].is_subset(&p1) && second["m2"].is_subset(&p2), "{second:?}");
    }

    #[test]
    fn uniform_only_gives_subscribed_topics() {
        let topics: BTreeMap<String, u32> = [("a".to_string(), 4), ("b".to_string(), 4)].into();
        let mut members = BTreeMap::new();
        members.insert("m1", sub(&["a"], None));
        members.insert("m2", sub(&["a", "b"], None));
        let out = assign("uniform", &members, &topics);
        every_partition_once(&out, &topics);
        assert!(out["m1"].iter().all(|(t, _)| t == "a"), "{out:?}");
        assert_eq!(counts(&out), vec![4, 4]);
    }

    #[test]
    fn range_splits_each_topic_in_order() {
        let topics: BTreeMap<String, u32> = [("a".to_string(), 5)].into();
        let mut members = BTreeMap::new();
        members.insert("m2", sub(&["a"], None));
        members.insert("m1", sub(&["a"], None));
        let out = assign("range", &members, &topics);
        every_partition_once(&out, &topics);
        let m1: Vec<i32> = out["m1"].iter().map(|(_, p)| *p).collect();
        let m2: Vec<i32> = out["m2"].iter().map(|(_, p)| *p).collect();
        assert_eq!((m1, m2), (vec![0, 1, 2], vec![3, 4]));
    }

    #[test]
    fn nobody_subscribed_leaves_a_topic_out() {
        let topics: BTreeMap<String, u32> = [("a".to_string(), 3), ("z".to_string(), 3)].into();
        let mut members = BTreeMap::new();
        members.insert("m1", sub(&["a"], None));
        for name in ASSIGNORS {
            let out = assign(name, &members, &topics);
            assert_eq!(out["m1"].len(), 3, "{name}: {out:?}");
        }
    }
}
