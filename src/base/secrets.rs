//! Secret values Gantry knows (from `[secrets]` taken from this machine's
//! environment or files), and the one function every piece of output,
//! history, ledger note and tag message goes through to mask them.
//! Secrets Gantry generates on a host never leave it, so they need no mask.

use std::sync::RwLock;

static KNOWN: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// What a masked secret looks like.
pub const MASK: &str = "********";

/// Remembers a secret value so it is masked everywhere from now on.
pub fn register(value: &str) {
    // Very short values would mask ordinary text; they are refused at load.
    if value.len() >= 4 {
        let mut known = KNOWN.write().expect("secrets lock");
        if !known.iter().any(|k| k == value) {
            known.push(value.to_string());
            // Longest first, so a secret containing another is masked whole.
            known.sort_by_key(|k| std::cmp::Reverse(k.len()));
        }
    }
}

/// `text` with every known secret replaced by `********`.
pub fn mask(text: &str) -> String {
    let known = KNOWN.read().expect("secrets lock");
    let mut out = text.to_string();
    for secret in known.iter() {
        if out.contains(secret.as_str()) {
            out = out.replace(secret.as_str(), MASK);
        }
    }
    out
}

/// Whether `text` holds a known secret.
pub fn contains_any(text: &str) -> bool {
    let known = KNOWN.read().expect("secrets lock");
    known.iter().any(|s| text.contains(s.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_registered_values() {
        register("hunter2-and-more");
        register("hunter2-and-more");
        assert_eq!(mask("token=hunter2-and-more;"), "token=********;");
        assert_eq!(mask("nothing here"), "nothing here");
        assert!(contains_any("x hunter2-and-more y"));
        assert!(!contains_any("nothing here"));
    }
}
