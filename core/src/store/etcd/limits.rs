//! What one etcd transaction may carry. etcd refuses a transaction with more than
//! `--max-txn-ops` compares or operations (default 128) or a request larger than
//! `--max-request-bytes` (default 1.5 MiB), with an error that names neither keyhold's
//! change nor what to do; keyhold refuses such a commit itself, before sending it, with
//! [`StoreError::TooLarge`].
//!
//! Every commit adds its own operations: the revision counter, the log record and the
//! deletion of the oldest log record (3), and one compare (the counter). The log
//! record repeats every written value, so a commit's values count twice in its size.

use super::super::{CommitLimits, StoreError, Write};

/// etcd's default `--max-txn-ops`.
pub const MAX_TXN_OPS: usize = 128;
/// Operations every commit adds to its writes.
pub const OWN_OPS: usize = 3;
/// etcd's default `--max-request-bytes` (1.5 MiB).
pub const MAX_REQUEST_BYTES: usize = 1_572_864;

/// The limits of one commit on etcd with its default settings.
pub const LIMITS: CommitLimits = CommitLimits {
    writes: MAX_TXN_OPS - OWN_OPS,
    conditions: MAX_TXN_OPS - 1,
    // Twice (entry and log record), with room for prefixes, revisions and framing.
    bytes: 700_000,
};

/// Refuses a commit larger than [`LIMITS`].
pub fn check(conditions: usize, writes: &[Write]) -> Result<(), StoreError> {
    LIMITS
        .check(conditions, writes)
        .map_err(|what| StoreError::TooLarge {
            backend: "etcd",
            message: format!(
                "{what} (etcd's default --max-txn-ops {MAX_TXN_OPS} and --max-request-bytes \
                 {MAX_REQUEST_BYTES}, less the {OWN_OPS} operations keyhold adds to each \
                 transaction and its log copy of every value)"
            ),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_beyond_etcds_defaults_are_refused_before_sending() {
        let puts = |n: usize, size: usize| -> Vec<Write> {
            (0..n)
                .map(|i| Write::Put(format!("k/{i}"), vec![0; size]))
                .collect()
        };
        assert!(check(127, &puts(125, 10)).is_ok());
        let err = check(0, &puts(126, 10)).unwrap_err();
        assert!(matches!(
            err,
            StoreError::TooLarge {
                backend: "etcd",
                ..
            }
        ));
        let text = err.to_string();
        assert!(
            text.contains("126 keys") && text.contains("at most 125"),
            "{text}"
        );
        // A key written twice counts once (the commit keeps the last write).
        let mut twice = puts(125, 1);
        twice.push(Write::Delete("k/0".into()));
        assert!(check(0, &twice).is_ok());
        assert!(
            check(128, &puts(1, 1))
                .unwrap_err()
                .to_string()
                .contains("128 conditions")
        );
        assert!(
            check(0, &puts(2, 400_000))
                .unwrap_err()
                .to_string()
                .contains("bytes")
        );
    }
}
