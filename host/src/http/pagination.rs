//! Pages of list answers: `?limit=N&after=NAME` on every list endpoint.
//!
//! Lists are ordered by name; a page holds at most `limit` items (default
//! [`DEFAULT_LIMIT`], at most [`MAX_LIMIT`]) whose names come after
//! `after`, and `next_after` names the last one when more follow, to pass
//! as the next page's `after`. Pages are cut from a list read at once, so
//! items created or deleted between pages may be missed or seen, never
//! repeated within a walk (names only increase).

use serde::Deserialize;

use crate::error::Error;

/// Items per page when `limit` is not given.
pub const DEFAULT_LIMIT: usize = 1_000;
/// The largest `limit`.
pub const MAX_LIMIT: usize = 10_000;

/// The query of a list request.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Most items in this page (1 to 10000; default 1000).
    pub limit: Option<usize>,
    /// Only items whose name sorts after this one (the previous page's
    /// `next_after`).
    pub after: Option<String>,
}

/// Cuts the page `q` asks for out of `items`, ordered by `name`; returns it
/// and the `next_after` to give when more items follow.
pub fn page<T>(mut items: Vec<T>, name: impl Fn(&T) -> &str, q: &PageQuery) -> Result<(Vec<T>, Option<String>), Error> {
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(Error::invalid(format!("limit must be between 1 and {MAX_LIMIT}")));
    }
    items.sort_by(|a, b| name(a).cmp(name(b)));
    if let Some(after) = &q.after {
        items.retain(|i| name(i) > after.as_str());
    }
    let more = items.len() > limit;
    items.truncate(limit);
    let next = match more {
        true => items.last().map(|i| name(i).to_string()),
        false => None,
    };
    Ok((items, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("s{i:03}")).collect()
    }

    #[test]
    fn pages_walk_every_item_once_in_order() {
        let all = names(25);
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let q = PageQuery { limit: Some(10), after };
            let (items, next) = page(all.iter().rev().cloned().collect(), |s| s, &q).unwrap();
            assert!(items.len() <= 10);
            seen.extend(items);
            match next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        assert_eq!(seen, all);
    }

    #[test]
    fn bad_limits_are_refused() {
        for limit in [0, MAX_LIMIT + 1] {
            let q = PageQuery {
                limit: Some(limit),
                after: None,
            };
            assert!(page(names(3), |s| s, &q).is_err());
        }
        let (items, next) = page(names(3), |s| s, &PageQuery::default()).unwrap();
        assert_eq!((items.len(), next), (3, None));
    }
}
