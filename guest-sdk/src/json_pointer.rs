//! JSON pointers (RFC 6901) for plugins that address fields of JSON values
//! without a JSON library's own pointer support (for example when rewriting
//! a document in place).

/// Why a string is not a JSON pointer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PointerError {
    /// A non-empty pointer must start with `/`.
    NoLeadingSlash,
    /// `~` must be followed by `0` (for `~`) or `1` (for `/`).
    BadEscape,
}

/// The reference tokens of `pointer`, unescaped; `""` (the whole document) has none.
pub fn tokens(pointer: &str) -> Result<Vec<String>, PointerError> {
    if pointer.is_empty() {
        return Ok(Vec::new());
    }
    let rest = pointer.strip_prefix('/').ok_or(PointerError::NoLeadingSlash)?;
    rest.split('/')
        .map(|token| unescape(token).ok_or(PointerError::BadEscape))
        .collect()
}

fn unescape(token: &str) -> Option<String> {
    let mut out = String::with_capacity(token.len());
    let mut chars = token.chars();
    while let Some(c) = chars.next() {
        if c == '~' {
            match chars.next() {
                Some('0') => out.push('~'),
                Some('1') => out.push('/'),
                _ => return None,
            }
        } else {
            out.push(c);
        }
    }
    Some(out)
}

/// An array index token as RFC 6901 allows it: `0` or digits without a leading zero.
pub fn array_index(token: &str) -> Option<usize> {
    let digits = !token.is_empty() && token.bytes().all(|b| b.is_ascii_digit());
    if !digits || (token.len() > 1 && token.starts_with('0')) {
        return None;
    }
    token.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_escapes() {
        assert_eq!(tokens(""), Ok(vec![]));
        assert_eq!(tokens("/a~1b/~0c/"), Ok(vec!["a/b".into(), "~c".into(), String::new()]));
        assert_eq!(tokens("a"), Err(PointerError::NoLeadingSlash));
        assert_eq!(tokens("/a~2"), Err(PointerError::BadEscape));
        assert_eq!(tokens("/a~"), Err(PointerError::BadEscape));
    }

    #[test]
    fn array_indexes() {
        assert_eq!(array_index("0"), Some(0));
        assert_eq!(array_index("17"), Some(17));
        for bad in ["", "01", "-1", "1a", "+1"] {
            assert_eq!(array_index(bad), None, "{bad:?}");
        }
    }
}
