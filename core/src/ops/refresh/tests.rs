//! The refresh job's life through [`Operations`], with AWS KMS answered by
//! [`ListedKms`]: a unit-test double of the AWS listing that answers
//! `DescribeCustomKeyStores`, `ListKeys` and `DescribeKey` from in-memory data in the
//! shapes the real client returns.

use std::sync::{Arc, Mutex};

use super::*;
use crate::{
    aws::{AwsError, AwsErrorKind, AwsKeyStore, XksConnectivity, XksStoreSpec, XksStoreUpdate},
    model::{
        AccountRecord, AwsLink, ConnectionState, XksLocation,
        jobs::running_refresh_key,
        refresh::{ChangeKind, FindingKind},
    },
    ops::interrupt_running_jobs,
    secrets::MasterKey,
    store::{MemoryStore, Store},
    xks::Sources,
};

const ACCOUNT: &str = "111122223333";
const REGION: &str = "eu-west-1";

type Hook = Box<dyn Fn(&str) + Send + Sync>;

/// AWS KMS of one account and region as listed data.
#[derive(Default)]
struct ListedKms {
    stores: Vec<AwsKeyStore>,
    keys: Vec<AwsKey>,
    /// `DescribeKey` of this key fails with this AWS error code.
    fail_describe: Option<(String, String)>,
    /// Called with the key id on each `DescribeKey`.
    on_describe: Mutex<Option<Hook>>,
}

fn unused(op: &str) -> AwsError {
    AwsError::new(AwsErrorKind::Config, format!("{op} is not used by refresh"))
}

#[async_trait::async_trait]
impl Kms for ListedKms {
    async fn probe(&self) -> Result<(), AwsError> {
        Ok(())
    }
    async fn create_xks_store(&self, _: &XksStoreSpec) -> Result<String, AwsError> {
        Err(unused("CreateCustomKeyStore"))
    }
    async fn list_xks_stores(&self) -> Result<Vec<AwsKeyStore>, AwsError> {
        Ok(self.stores.clone())
    }
    async fn describe_xks_store(&self, id: &str) -> Result<AwsKeyStore, AwsError> {
        self.stores
            .iter()
            .find(|s| s.id == id)
            .cloned()
            .ok_or_else(|| AwsError::service("CustomKeyStoreNotFoundException", id))
    }
    async fn update_xks_store(&self, _: &str, _: &XksStoreUpdate) -> Result<(), AwsError> {
        Err(unused("UpdateCustomKeyStore"))
    }
    async fn connect_store(&self, _: &str) -> Result<(), AwsError> {
        Err(unused("ConnectCustomKeyStore"))
    }
    async fn disconnect_store(&self, _: &str) -> Result<(), AwsError> {
        Err(unused("DisconnectCustomKeyStore"))
    }
    async fn delete_store(&self, _: &str) -> Result<(), AwsError> {
        Err(unused("DeleteCustomKeyStore"))
    }
    async fn create_xks_key(&self, _: &str, _: &str, _: &str) -> Result<AwsKey, AwsError> {
        Err(unused("CreateKey"))
    }
    async fn list_key_ids(&self) -> Result<Vec<String>, AwsError> {
        Ok(self.keys.iter().map(|k| k.key_id.clone()).collect())
    }
    async fn describe_key(&self, key_id: &str) -> Result<AwsKey, AwsError> {
        if let Some(hook) = &*self.on_describe.lock().unwrap() {
            hook(key_id);
        }
        if let Some((id, code)) = &self.fail_describe {
            if id == key_id {
                return Err(AwsError::service(
                    code.clone(),
                    "We encountered an internal error. Please try again.",
                ));
            }
        }
        self.keys
            .iter()
            .find(|k| k.key_id == key_id)
            .cloned()
            .ok_or_else(|| {
                AwsError::service(
                    "NotFoundException",
                    format!("Key '{key_id}' does not exist"),
                )
            })
    }
    async fn schedule_key_deletion(&self, _: &str, _: i32) -> Result<(), AwsError> {
        Err(unused("ScheduleKeyDeletion"))
    }
}

fn aws_store(cks: &str, name: &str, prefix: &str) -> AwsKeyStore {
    AwsKeyStore {
        id: cks.into(),
        name: name.into(),
        connection_state: ConnectionState::Connected,
        connection_error_code: None,
        uri_endpoint: "https://xks.example.com".into(),
        uri_path: crate::model::xks_base_path(prefix),
        connectivity: XksConnectivity::Public,
        access_key_id: Some("AAAAAAAAAAAAAAAAAAAAAAAAAA".into()),
    }
}

fn aws_key(id: &str, cks: &str, ext: &str) -> AwsKey {
    AwsKey {
        key_id: id.into(),
        arn: format!("arn:aws:kms:{REGION}:{ACCOUNT}:key/{id}"),
        key_state: "Enabled".into(),
        custom_key_store_id: Some(cks.into()),
        xks_key_id: Some(ext.into()),
    }
}

struct Fixture {
    ops: Arc<Operations>,
    store: Arc<dyn Store>,
}

fn put<T: serde::Serialize>(store: &dyn Store, key: &str, v: &T) {
    store.put(key, serde_json::to_vec(v).unwrap()).unwrap();
}

/// An account with a connection and one region; a local store `local` on prefix `p1`
/// at https://xks.example.com with HYOK keys `ext1`..`ext3` (unlinked).
fn fixture() -> Fixture {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let account = AccountRecord {
        id: ACCOUNT.into(),
        name: "prod".into(),
        regions: vec![REGION.into()],
        acl: Vec::new(),
        created_at: 0,
        aws_connection: Some("aws".into()),
    };
    put(store.as_ref(), &keys::account(ACCOUNT), &account);
    let mut rec = StoreRecord::sample("s1", "p1");
    rec.name = "local".into();
    rec.location = XksLocation::Public {
        endpoint: "https://xks.example.com".into(),
    };
    put(store.as_ref(), &keys::store("s1"), &rec);
    store
        .put(&keys::store_account("s1"), ACCOUNT.as_bytes().to_vec())
        .unwrap();
    store
        .put(&keys::store_name_index("local"), b"s1".to_vec())
        .unwrap();
    for ext in ["ext1", "ext2", "ext3"] {
        let key = HyokKeyRecord {
            external_id: ext.into(),
            source_key: "data".into(),
            blocked: false,
            aws: None,
            created_at: 0,
            allow_weak_key: false,
        };
        put(store.as_ref(), &keys::hyok_key("s1", ext), &key);
    }
    let ops = Operations::new(
        store.clone(),
        Arc::new(MasterKey::from_bytes(&[3u8; 32])),
        Arc::new(Sources::default()),
    );
    Fixture {
        ops: Arc::new(ops),
        store,
    }
}

/// AWS: the local store (cks-1) with keys for ext1..ext3, and a store of another
/// proxy (cks-2) with one key.
fn listed() -> ListedKms {
    ListedKms {
        stores: vec![
            aws_store("cks-1", "console name", "p1"),
            aws_store("cks-2", "elsewhere", "other"),
        ],
        keys: vec![
            aws_key("k1", "cks-1", "ext1"),
            aws_key("k2", "cks-1", "ext2"),
            aws_key("k3", "cks-1", "ext3"),
            aws_key("k4", "cks-2", "theirs"),
        ],
        ..Default::default()
    }
}

fn run(ops: &Operations, id: &str, kms: Arc<ListedKms>) -> JobRecord {
    let kms: Arc<dyn Kms> = kms;
    ops.run_refresh_with(id, &|_region| Ok(kms.clone()), &|| false)
        .unwrap()
}

fn linked_keys(ops: &Operations) -> Vec<String> {
    ops.list_hyok_keys("s1")
        .unwrap()
        .into_iter()
        .filter(|k| k.aws.is_some())
        .map(|k| k.external_id)
        .collect()
}

#[test]
fn refresh_links_imports_and_then_changes_nothing() {
    let f = fixture();
    let kms = Arc::new(listed());
    let job = f.ops.start_refresh(ACCOUNT, "root").unwrap();
    assert_eq!(job.state, JobState::Running);
    let ended = run(&f.ops, &job.id, kms.clone());
    assert_eq!(ended.state, JobState::Succeeded, "{ended:?}");
    // 1 region listing + 2 stores + 4 keys.
    assert_eq!((ended.done, ended.total), (7, 7));
    assert_eq!(ended.summary.changed, 6, "{:?}", ended.summary);
    assert_eq!(ended.summary.regions, [REGION]);
    let kinds: Vec<ChangeKind> = ended.summary.changes.iter().map(|c| c.kind).collect();
    assert_eq!(
        kinds,
        [
            ChangeKind::StoreLinked,
            ChangeKind::RemoteStoreImported,
            ChangeKind::KeyLinked,
            ChangeKind::KeyLinked,
            ChangeKind::KeyLinked,
            ChangeKind::KeyImported,
        ]
    );
    let s1 = f.ops.get_store("s1").unwrap().value;
    assert_eq!(
        s1.aws,
        Some(AwsLink::new("cks-1", ConnectionState::Connected))
    );
    assert_eq!(s1.region.as_deref(), Some(REGION));
    assert_eq!(linked_keys(&f.ops), ["ext1", "ext2", "ext3"]);
    // The other proxy's store is a remote store of the account, with its key.
    let remote = f
        .ops
        .list_stores()
        .unwrap()
        .into_iter()
        .map(|s| s.value)
        .find(|s| s.kind == StoreKind::Remote)
        .unwrap();
    assert_eq!(remote.name, "elsewhere");
    assert_eq!(remote.uri_path_prefix, "other");
    assert_eq!(
        f.ops.store_account(&remote.id).unwrap().as_deref(),
        Some(ACCOUNT)
    );
    assert!(f.store.get(&keys::prefix_index("other")).unwrap().is_none());
    let theirs = f.ops.list_hyok_keys(&remote.id).unwrap();
    assert_eq!(theirs.len(), 1);
    assert_eq!(
        (
            theirs[0].external_id.as_str(),
            theirs[0].source_key.as_str()
        ),
        ("theirs", "")
    );
    assert_eq!(theirs[0].aws.as_ref().unwrap().key_id, "k4");
    // The account is free again; a second refresh changes nothing and says so.
    let again = f.ops.start_refresh(ACCOUNT, "root").unwrap();
    let second = run(&f.ops, &again.id, kms);
    assert_eq!(second.state, JobState::Succeeded);
    assert_eq!(second.summary.changed, 0);
    assert_eq!(second.summary.unchanged, 6);
    assert!(
        second.summary.text().starts_with("nothing changed"),
        "{}",
        second.summary.text()
    );
    assert_eq!(f.ops.list_jobs().unwrap().len(), 2);
    assert_eq!(f.ops.get_job(&again.id).unwrap(), second);
}

#[test]
fn one_refresh_per_account_at_a_time() {
    let f = fixture();
    let job = f.ops.start_refresh(ACCOUNT, "root").unwrap();
    let refused = f.ops.start_refresh(ACCOUNT, "alice").unwrap_err();
    assert_eq!(refused.code(), "refresh_running");
    assert_eq!(refused.http_status(), 409);
    assert!(refused.to_string().contains(&job.id), "{refused}");
    run(&f.ops, &job.id, Arc::new(listed()));
    f.ops.start_refresh(ACCOUNT, "alice").unwrap();
}

#[test]
fn refresh_needs_a_connection_and_regions() {
    let f = fixture();
    let mut acc = f.ops.get_account(ACCOUNT).unwrap();
    acc.regions.clear();
    put(f.store.as_ref(), &keys::account(ACCOUNT), &acc);
    assert_eq!(
        f.ops.start_refresh(ACCOUNT, "root").unwrap_err().code(),
        "account_without_regions"
    );
    acc.aws_connection = None;
    put(f.store.as_ref(), &keys::account(ACCOUNT), &acc);
    assert_eq!(
        f.ops.start_refresh(ACCOUNT, "root").unwrap_err().code(),
        "account_without_connection"
    );
    assert_eq!(
        f.ops
            .start_refresh("999988887777", "root")
            .unwrap_err()
            .code(),
        "not_found"
    );
    assert!(f.ops.list_jobs().unwrap().is_empty());
}

#[test]
fn cancel_stops_at_the_next_unit_and_keeps_what_was_done() {
    let f = fixture();
    let job = f.ops.start_refresh(ACCOUNT, "root").unwrap();
    let kms = Arc::new(listed());
    let (ops, id) = (f.ops.clone(), job.id.clone());
    // Cancelled while the second key is described: that unit ends, no other starts.
    *kms.on_describe.lock().unwrap() = Some(Box::new(move |key_id: &str| {
        if key_id == "k2" {
            let j = ops.cancel_job(&id).unwrap();
            assert!(j.cancel_requested);
            assert_eq!(j.state, JobState::Running);
        }
    }));
    let ended = run(&f.ops, &job.id, kms);
    assert_eq!(ended.state, JobState::Cancelled);
    assert!(ended.cancel_requested);
    assert!(ended.finished_at.is_some());
    // Listing, 2 stores, k1, k2 done; k3 and k4 not.
    assert_eq!((ended.done, ended.total), (5, 7));
    assert!(ended.summary.regions.is_empty());
    assert_eq!(linked_keys(&f.ops), ["ext1", "ext2"]);
    assert!(f.ops.get_store("s1").unwrap().value.aws.is_some());
    // Cancelling an ended job is refused; the account is free.
    assert_eq!(
        f.ops.cancel_job(&job.id).unwrap_err().code(),
        "job_finished"
    );
    assert!(
        f.store
            .get(&running_refresh_key(ACCOUNT))
            .unwrap()
            .is_none()
    );
    // A new refresh completes the rest.
    let next = f.ops.start_refresh(ACCOUNT, "root").unwrap();
    let done = run(&f.ops, &next.id, Arc::new(listed()));
    assert_eq!(done.state, JobState::Succeeded);
    assert_eq!(linked_keys(&f.ops), ["ext1", "ext2", "ext3"]);
}

#[test]
fn an_aws_error_fails_the_job_naming_the_code_and_keeps_progress() {
    let f = fixture();
    let job = f.ops.start_refresh(ACCOUNT, "root").unwrap();
    let mut kms = listed();
    kms.fail_describe = Some(("k2".into(), "KMSInternalException".into()));
    let ended = run(&f.ops, &job.id, Arc::new(kms));
    assert_eq!(ended.state, JobState::Failed);
    let error = ended.error.unwrap();
    assert_eq!(error.code, "aws_error");
    assert!(
        error.message.contains("KMSInternalException"),
        "{}",
        error.message
    );
    assert!(error.message.contains("k2"), "{}", error.message);
    assert_eq!(linked_keys(&f.ops), ["ext1"]);
    assert!(
        f.store
            .get(&running_refresh_key(ACCOUNT))
            .unwrap()
            .is_none()
    );
}

#[test]
fn no_client_fails_the_job() {
    let f = fixture();
    let job = f.ops.start_refresh(ACCOUNT, "root").unwrap();
    let ended = f
        .ops
        .run_refresh_with(
            &job.id,
            &|_| {
                Err(OpError::Aws(AwsError::new(
                    AwsErrorKind::Credentials,
                    "the role could not be assumed",
                )))
            },
            &|| false,
        )
        .unwrap();
    assert_eq!(ended.state, JobState::Failed);
    let error = ended.error.unwrap();
    assert_eq!(error.code, "aws_credentials");
    assert!(
        error.message.contains("connecting to AWS KMS in eu-west-1"),
        "{}",
        error.message
    );
    assert_eq!((ended.done, ended.total), (0, 1));
}

#[test]
fn jobs_left_running_are_interrupted_at_start() {
    let f = fixture();
    let job = f.ops.start_refresh(ACCOUNT, "root").unwrap();
    let finished = job.id.clone();
    // The server stops here; at the next start:
    let marked = interrupt_running_jobs(f.store.as_ref()).unwrap();
    assert_eq!(marked, std::slice::from_ref(&finished));
    let j = f.ops.get_job(&finished).unwrap();
    assert_eq!(j.state, JobState::Interrupted);
    assert!(j.finished_at.is_some());
    assert!(interrupt_running_jobs(f.store.as_ref()).unwrap().is_empty());
    // The account is free again.
    f.ops.start_refresh(ACCOUNT, "root").unwrap();
}

#[test]
fn a_stale_marker_does_not_block_the_account() {
    let f = fixture();
    f.store
        .put(&running_refresh_key(ACCOUNT), b"gone".to_vec())
        .unwrap();
    let job = f.ops.start_refresh(ACCOUNT, "root").unwrap();
    assert_eq!(
        f.store
            .get(&running_refresh_key(ACCOUNT))
            .unwrap()
            .unwrap()
            .value,
        job.id.as_bytes()
    );
}

#[test]
fn conflicts_and_missing_objects_are_reported_not_changed() {
    let f = fixture();
    // ext1 is linked to another KMS key, s2 is linked to an AWS store that is gone.
    f.ops
        .set_hyok_key_link(
            "s1",
            "ext1",
            Some(KmsKeyLink {
                key_id: "k-old".into(),
                key_arn: "arn".into(),
            }),
        )
        .unwrap();
    let mut s2 = StoreRecord::sample("s2", "p2");
    s2.aws = Some(AwsLink::new("cks-gone", ConnectionState::Connected));
    s2.region = Some(REGION.into());
    put(f.store.as_ref(), &keys::store("s2"), &s2);
    f.store
        .put(&keys::store_account("s2"), ACCOUNT.as_bytes().to_vec())
        .unwrap();
    let mut kms = listed();
    kms.keys.push(aws_key("k5", "cks-1", "unknown"));
    let job = f.ops.start_refresh(ACCOUNT, "root").unwrap();
    let ended = run(&f.ops, &job.id, Arc::new(kms));
    assert_eq!(ended.state, JobState::Succeeded);
    let mut kinds: Vec<FindingKind> = ended.summary.findings.iter().map(|f| f.kind).collect();
    kinds.sort_by_key(|k| format!("{k:?}"));
    assert_eq!(
        kinds,
        [
            FindingKind::KeyLinkConflict,
            FindingKind::KeyMissingOnAws,
            FindingKind::KeyUnknown,
            FindingKind::StoreMissingOnAws,
        ]
    );
    assert_eq!(
        f.ops
            .get_hyok_key("s1", "ext1")
            .unwrap()
            .aws
            .unwrap()
            .key_id,
        "k-old"
    );
    assert!(f.ops.get_hyok_key("s1", "unknown").is_err());
    assert!(f.ops.get_store("s2").unwrap().value.aws.is_some());
}

#[test]
fn a_stopping_server_interrupts_the_job_at_the_next_unit() {
    let f = fixture();
    let job = f.ops.start_refresh(ACCOUNT, "root").unwrap();
    let kms: Arc<dyn Kms> = Arc::new(listed());
    let units = std::sync::atomic::AtomicU32::new(0);
    // Asked before starting, after the listing and after each store: the server stops
    // once both stores are done.
    let stopping = || units.fetch_add(1, std::sync::atomic::Ordering::SeqCst) >= 3;
    let ended = f
        .ops
        .run_refresh_with(&job.id, &|_| Ok(kms.clone()), &stopping)
        .unwrap();
    assert_eq!(ended.state, JobState::Interrupted);
    assert!(ended.finished_at.is_some());
    assert_eq!((ended.done, ended.total), (3, 7));
    assert!(linked_keys(&f.ops).is_empty());
    assert!(f.ops.get_store("s1").unwrap().value.aws.is_some());
    assert!(
        f.store
            .get(&running_refresh_key(ACCOUNT))
            .unwrap()
            .is_none()
    );
    assert!(interrupt_running_jobs(f.store.as_ref()).unwrap().is_empty());
}

#[test]
fn deleting_a_remote_store_keeps_the_local_store_prefix_index() {
    let f = fixture();
    f.store
        .put(&keys::prefix_index("p1"), b"s1".to_vec())
        .unwrap();
    // A store of another proxy on the same path as the local store.
    let mut kms = listed();
    kms.stores[1].uri_endpoint = "https://other-proxy.example.com".into();
    kms.stores[1].uri_path = crate::model::xks_base_path("p1");
    kms.keys.pop();
    let job = f.ops.start_refresh(ACCOUNT, "root").unwrap();
    assert_eq!(
        run(&f.ops, &job.id, Arc::new(kms)).state,
        JobState::Succeeded
    );
    let remote = f
        .ops
        .list_stores()
        .unwrap()
        .into_iter()
        .find(|s| s.value.kind == StoreKind::Remote)
        .unwrap();
    assert_eq!(remote.value.uri_path_prefix, "p1");
    f.ops.delete_store(&remote.value.id, true).unwrap();
    assert_eq!(
        f.store
            .get(&keys::prefix_index("p1"))
            .unwrap()
            .unwrap()
            .value,
        b"s1"
    );
}

#[test]
fn every_region_of_the_account_is_refreshed_with_its_own_client() {
    let f = fixture();
    let mut acc = f.ops.get_account(ACCOUNT).unwrap();
    acc.regions = vec![REGION.into(), "us-east-1".into()];
    put(f.store.as_ref(), &keys::account(ACCOUNT), &acc);
    let east: Arc<dyn Kms> = Arc::new(ListedKms {
        stores: vec![aws_store("cks-e", "east", "east")],
        keys: vec![aws_key("ke", "cks-e", "e1")],
        ..Default::default()
    });
    let west: Arc<dyn Kms> = Arc::new(listed());
    let kms = |region: &str| match region {
        REGION => Ok(west.clone()),
        "us-east-1" => Ok(east.clone()),
        other => panic!("no client for {other}"),
    };
    let job = f.ops.start_refresh(ACCOUNT, "root").unwrap();
    let ended = f.ops.run_refresh_with(&job.id, &kms, &|| false).unwrap();
    assert_eq!(ended.state, JobState::Succeeded, "{ended:?}");
    assert_eq!(ended.summary.regions, [REGION, "us-east-1"]);
    // 2 listings + (2 stores + 4 keys) + (1 store + 1 key).
    assert_eq!((ended.done, ended.total), (10, 10));
    let east_store = f
        .ops
        .list_stores()
        .unwrap()
        .into_iter()
        .map(|s| s.value)
        .find(|s| s.name == "east")
        .unwrap();
    assert_eq!(east_store.kind, StoreKind::Remote);
    assert_eq!(east_store.region.as_deref(), Some("us-east-1"));
    assert_eq!(
        f.ops.get_store("s1").unwrap().value.region.as_deref(),
        Some(REGION)
    );
}
