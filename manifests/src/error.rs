//! Showing an error with its causes.
//!
//! Error messages in this workspace never repeat their source: a message says what
//! failed, and its `source()` says why. [`chain`] puts the two back together for a
//! human ("what failed: because: because").

use std::error::Error;

/// `err`'s message followed by each of its sources', joined with ": ".
pub fn chain(err: &dyn Error) -> String {
    let mut out = err.to_string();
    let mut next = err.source();
    while let Some(cause) = next {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        next = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    enum Outer {
        #[error("cannot load {what}")]
        Load { what: &'static str, source: Middle },
        #[error("nothing to load")]
        Empty,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read the file")]
    struct Middle(#[source] std::io::Error);

    #[test]
    fn joins_each_cause_once() {
        let leaf = || std::io::Error::other("disk on fire");
        let cases: [(&dyn Error, &str); 3] = [
            (&Outer::Empty, "nothing to load"),
            (&Middle(leaf()), "cannot read the file: disk on fire"),
            (
                &Outer::Load {
                    what: "the index",
                    source: Middle(leaf()),
                },
                "cannot load the index: cannot read the file: disk on fire",
            ),
        ];
        for (err, want) in cases {
            assert_eq!(chain(err), want);
        }
    }
}
