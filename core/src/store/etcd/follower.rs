//! Following the transaction log: every node delivers every transaction, in order, to
//! its subscribers (see the parent module's docs).

use std::{collections::BTreeSet, sync::Arc, time::Duration};

use etcd_client::{GetOptions, WatchOptions};

use super::{Inner, PAGE, backend, codec, corrupt, prefix_end, range_async, retry};
use crate::store::{Change, StoreError, WatchEvent, lock};

/// Follows the transaction log for as long as the store lives: catch up by reading the
/// records after the last delivered one, then watch for new ones; after any break
/// (etcd restarted, the watch compacted or cancelled, a gap) do it again.
pub(super) async fn follow(inner: std::sync::Weak<Inner>) {
    loop {
        let Some(strong) = inner.upgrade() else {
            return;
        };
        let result = follow_once(&strong).await;
        let up = strong.health.is_up();
        if Arc::strong_count(&strong) == 1 {
            // The store was dropped meanwhile: this is the last reference, and the
            // runtime it owns cannot be dropped on its own worker. Let it go elsewhere.
            std::thread::spawn(move || drop(strong));
            return;
        }
        drop(strong);
        match &result {
            // While etcd is down this is the probe: its outage was logged once.
            Err(e) if !up => tracing::debug!("following the etcd transaction log: {e}; retrying"),
            Err(e) => tracing::warn!("following the etcd transaction log: {e}; resuming"),
            Ok(()) => {}
        }
        // Soon after a break (its calls already waited for an answering member); at
        // once, nearly, to read the next page when catching up; less often while etcd
        // is down.
        let pause = match (result.is_ok(), up) {
            (true, _) => Duration::from_millis(5),
            (false, true) => Duration::from_millis(50),
            (false, false) => Duration::from_millis(200),
        };
        tokio::time::sleep(pause).await;
    }
}

async fn follow_once(inner: &Arc<Inner>) -> Result<(), StoreError> {
    #[cfg(test)]
    if inner.paused.load(std::sync::atomic::Ordering::SeqCst) {
        return Ok(());
    }
    let layout = &inner.layout;
    let last = lock(&inner.feed).last;
    // Catch up from the log (its header revision is where the watch starts).
    let client = inner.client.clone();
    let options = GetOptions::new()
        .with_range(prefix_end(&layout.log_prefix()))
        .with_limit(PAGE);
    let resp = match tokio::time::timeout(
        inner.timeout,
        retry::retrying(inner.timeout, &inner.members, || {
            let (mut client, options) = (client.clone(), options.clone());
            async move { client.get(layout.log(last + 1), Some(options)).await }
        }),
    )
    .await
    {
        Ok(Ok(resp)) => resp,
        Ok(Err(e)) => return Err(inner.health.failed(e)),
        Err(_) => return Err(inner.health.timed_out(inner.timeout.as_millis())),
    };
    // etcd answered: this is how the node notices that it is back.
    inner.health.mark_up();
    let header = resp.header().map_or(0, |h| h.revision());
    let mut events = Vec::new();
    for kv in resp.kvs() {
        events.push(
            codec::decode_event(kv.value())
                .ok_or_else(|| corrupt(kv.key(), "damaged transaction log record"))?,
        );
    }
    if resp.more() {
        // More than a page behind: deliver this page and read on.
        lock(&inner.feed).deliver(events, 0);
        return Ok(());
    }
    if events.first().is_some_and(|e| e.revision > last + 1) {
        resync(inner).await?;
        return Ok(());
    }
    lock(&inner.feed).deliver(events, 0);
    let options = WatchOptions::new()
        .with_prefix()
        .with_start_revision(header + 1);
    let mut stream = retry::retrying(inner.timeout, &inner.members, || {
        let (mut client, options) = (client.clone(), options.clone());
        async move { client.watch(layout.log_prefix(), Some(options)).await }
    })
    .await
    .map_err(|e| inner.health.failed(e))?;
    // A broken stream (its member died) is not an outage: the next catch-up read, which
    // tries every member, tells.
    while let Some(resp) = stream.message().await.map_err(backend)? {
        #[cfg(test)]
        if inner.paused.load(std::sync::atomic::Ordering::SeqCst) {
            return Ok(());
        }
        if resp.canceled() || resp.compact_revision() > 0 {
            return Err(backend(format!(
                "watch cancelled ({})",
                resp.cancel_reason()
            )));
        }
        for event in resp.events() {
            let Some(kv) = event.kv() else { continue };
            if event.event_type() != etcd_client::EventType::Put {
                continue; // a trimmed record
            }
            let record = codec::decode_event(kv.value())
                .ok_or_else(|| corrupt(kv.key(), "damaged transaction log record"))?;
            let upto = record.revision;
            if !lock(&inner.feed).deliver([record], upto) {
                return Err(backend(
                    "a transaction is missing from the watch; catching up",
                ));
            }
        }
    }
    Err(backend("the watch ended"))
}

/// Turns what subscribers know into the current state with one synthetic transaction:
/// every current entry, and the deletion of every known key that is gone.
async fn resync(inner: &Arc<Inner>) -> Result<(), StoreError> {
    let layout = &inner.layout;
    let client = inner.client.clone();
    let revision_key = layout.revision();
    let mut c = client.clone();
    let counter = c.get(revision_key.clone(), None).await.map_err(backend)?;
    let revision = counter
        .kvs()
        .first()
        .and_then(|kv| std::str::from_utf8(kv.value()).ok()?.parse::<u64>().ok())
        .unwrap_or(0);
    let data = range_async(client, layout.data(""), prefix_end(&layout.data("")), false)
        .await
        .map_err(backend)?;
    let mut changes = Vec::new();
    let mut present = BTreeSet::new();
    for kv in &data {
        let Some(key) = layout.data_key(kv.key()) else {
            continue;
        };
        let Some((_, value)) = codec::decode_value(kv.value()) else {
            continue;
        };
        present.insert(key.to_string());
        changes.push(Change {
            key: key.to_string(),
            value: Some(value.to_vec()),
        });
    }
    let mut feed = lock(&inner.feed);
    if revision <= feed.last {
        return Ok(());
    }
    for gone in feed.known.difference(&present) {
        changes.push(Change {
            key: gone.clone(),
            value: None,
        });
    }
    tracing::warn!(
        from = feed.last,
        to = revision,
        "the etcd transaction log no longer holds the transactions this node missed; delivering the current state as one transaction"
    );
    // Delivered as the next revision, then the feed continues from `revision`.
    let synthetic = Arc::new(WatchEvent { revision, changes });
    feed.known = present;
    feed.last = revision;
    let _ = feed.tx.send(synthetic);
    Ok(())
}
