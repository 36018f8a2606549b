use super::*;
use crate::model::ConnectionState;

const ACCOUNT: &str = "111122223333";
const REGION: &str = "eu-west-1";

fn scope() -> Scope<'static> {
    Scope {
        account: ACCOUNT,
        region: REGION,
    }
}

/// A local store `id` on `prefix`, reachable at `https://<host>`, of `account`.
fn local(id: &str, prefix: &str, host: &str, account: Option<&str>) -> LocalStore {
    let mut record = StoreRecord::sample(id, prefix);
    record.location = XksLocation::Public {
        endpoint: format!("https://{host}"),
    };
    LocalStore {
        record,
        account: account.map(str::to_string),
        keys: Vec::new(),
    }
}

fn linked(mut s: LocalStore, cks: &str, state: ConnectionState) -> LocalStore {
    s.record.aws = Some(AwsLink::new(cks, state));
    s.record.region = Some(REGION.into());
    s
}

fn with_key(mut s: LocalStore, ext: &str, kms: Option<&str>) -> LocalStore {
    s.keys.push(HyokKeyRecord {
        external_id: ext.into(),
        source_key: "k".into(),
        blocked: false,
        aws: kms.map(kms_link),
        created_at: 0,
        allow_weak_key: false,
    });
    s
}

fn kms_link(id: &str) -> KmsKeyLink {
    KmsKeyLink {
        key_id: id.into(),
        key_arn: format!("arn:aws:kms:{REGION}:{ACCOUNT}:key/{id}"),
    }
}

/// An AWS store `cks` named `name` at `https://<host>` + `/<prefix>/kms/xks/v1`.
fn aws(cks: &str, name: &str, host: &str, prefix: &str) -> AwsKeyStore {
    AwsKeyStore {
        id: cks.into(),
        name: name.into(),
        connection_state: ConnectionState::Connected,
        connection_error_code: None,
        uri_endpoint: format!("https://{host}"),
        uri_path: crate::model::xks_base_path(prefix),
        connectivity: XksConnectivity::Public,
        access_key_id: None,
    }
}

fn key(id: &str, cks: &str, ext: &str, state: &str) -> AwsKey {
    AwsKey {
        key_id: id.into(),
        arn: format!("arn:aws:kms:{REGION}:{ACCOUNT}:key/{id}"),
        key_state: state.into(),
        custom_key_store_id: Some(cks.into()),
        xks_key_id: Some(ext.into()),
    }
}

fn ids() -> impl FnMut() -> String {
    let mut n = 0;
    move || {
        n += 1;
        format!("new{n}")
    }
}

/// The actions of a whole refresh, one short line each.
fn plan(local: &[LocalStore], stores: &[AwsKeyStore], keys: &[AwsKey]) -> Vec<String> {
    let p = plan_stores(scope(), local, stores, &mut ids(), 7);
    let mut out: Vec<String> = p.actions.iter().map(|(_, a)| store_line(a)).collect();
    out.extend(p.missing.iter().map(|f| format!("report {:?}", f.kind)));
    let mut targets = KeyTargets::new(local, &p);
    for k in keys {
        out.push(key_line(&targets.plan_key(k)));
    }
    out.extend(
        targets
            .missing()
            .iter()
            .map(|f| format!("report {:?}", f.kind)),
    );
    out
}

fn store_line(a: &StoreAction) -> String {
    match a {
        StoreAction::Link {
            store_id,
            link,
            region,
            ..
        } => format!("link {store_id} {} {region}", link.custom_key_store_id),
        StoreAction::UpdateLink { store_id, link, .. } => {
            format!("state {store_id} {}", link.connection_state.as_str())
        }
        StoreAction::ImportRemote { record } => format!("import {} '{}'", record.id, record.name),
        StoreAction::UpdateRemote { store_id, .. } => format!("update-remote {store_id}"),
        StoreAction::Unchanged { store_id, .. } => format!("unchanged {store_id}"),
        StoreAction::Skip(f) => format!("report {:?}", f.kind),
    }
}

fn key_line(a: &KeyAction) -> String {
    match a {
        KeyAction::Link {
            store_id,
            external_id,
            link,
        } => format!("link-key {store_id}/{external_id} {}", link.key_id),
        KeyAction::Import {
            store_id,
            external_id,
            link,
        } => format!("import-key {store_id}/{external_id} {}", link.key_id),
        KeyAction::UpdateLink {
            store_id,
            external_id,
            link,
        } => format!("relink-key {store_id}/{external_id} {}", link.key_id),
        KeyAction::Unchanged => "unchanged-key".into(),
        KeyAction::Ignored => "ignored".into(),
        KeyAction::Skip(f) => format!("report {:?}", f.kind),
    }
}

/// Applies a whole plan to `local` as the job does (test double of the store writes).
fn apply(local: &mut Vec<LocalStore>, stores: &[AwsKeyStore], keys: &[AwsKey]) {
    let p = plan_stores(scope(), local, stores, &mut ids(), 7);
    let mut targets = KeyTargets::new(local, &p);
    for (_, a) in &p.actions {
        match a.clone() {
            StoreAction::Link {
                store_id,
                link,
                region,
                ..
            } => {
                let s = local.iter_mut().find(|s| s.record.id == store_id).unwrap();
                s.record.aws = Some(link);
                s.record.region = Some(region);
            }
            StoreAction::UpdateLink { store_id, link, .. } => {
                let s = local.iter_mut().find(|s| s.record.id == store_id).unwrap();
                s.record.aws = Some(link);
            }
            StoreAction::ImportRemote { record } => local.push(LocalStore {
                record: *record,
                account: Some(ACCOUNT.into()),
                keys: Vec::new(),
            }),
            StoreAction::UpdateRemote {
                store_id,
                link,
                location,
                uri_path_prefix,
                ..
            } => {
                let s = local.iter_mut().find(|s| s.record.id == store_id).unwrap();
                s.record.aws = Some(link);
                s.record.location = location;
                s.record.uri_path_prefix = uri_path_prefix;
            }
            StoreAction::Unchanged { .. } | StoreAction::Skip(_) => {}
        }
    }
    for k in keys {
        let (store_id, ext, link, create) = match targets.plan_key(k) {
            KeyAction::Link {
                store_id,
                external_id,
                link,
            }
            | KeyAction::UpdateLink {
                store_id,
                external_id,
                link,
            } => (store_id, external_id, link, false),
            KeyAction::Import {
                store_id,
                external_id,
                link,
            } => (store_id, external_id, link, true),
            _ => continue,
        };
        let s = local.iter_mut().find(|s| s.record.id == store_id).unwrap();
        if create {
            s.keys.push(HyokKeyRecord {
                external_id: ext,
                source_key: String::new(),
                blocked: false,
                aws: Some(link),
                created_at: 7,
                allow_weak_key: false,
            });
        } else {
            let k = s.keys.iter_mut().find(|k| k.external_id == ext).unwrap();
            k.aws = Some(link);
        }
    }
}

/// (case, local stores, AWS stores, AWS keys, expected lines).
type Case = (
    &'static str,
    Vec<LocalStore>,
    Vec<AwsKeyStore>,
    Vec<AwsKey>,
    Vec<&'static str>,
);

/// Every rule.
#[test]
fn refresh_rules() {
    let acct = Some(ACCOUNT);
    let cases: Vec<Case> = vec![
        (
            "endpoint + path of an unlinked local store of the account: linked, region set",
            vec![local("s1", "p1", "xks.example.com", acct)],
            vec![aws("cks-1", "aws name", "xks.example.com", "p1")],
            vec![],
            vec!["link s1 cks-1 eu-west-1"],
        ),
        (
            "endpoint compared without case, trailing slash or :443",
            vec![local("s1", "p1", "XKS.example.com:443/", acct)],
            vec![aws("cks-1", "n", "xks.example.com", "p1")],
            vec![],
            vec!["link s1 cks-1 eu-west-1"],
        ),
        (
            "same endpoint, other path: no match, imported as remote",
            vec![local("s1", "p1", "xks.example.com", acct)],
            vec![aws("cks-1", "theirs", "xks.example.com", "other")],
            vec![],
            vec!["import new1 'theirs'"],
        ),
        (
            "an unset location never matches",
            vec![{
                let mut s = local("s1", "p1", "h", acct);
                s.record.location = XksLocation::Unset;
                s
            }],
            vec![aws("cks-1", "n", "h", "p1")],
            vec![],
            vec!["import new1 'n'"],
        ),
        (
            "already linked to the same id, same state: unchanged",
            vec![linked(
                local("s1", "p1", "h", acct),
                "cks-1",
                ConnectionState::Connected,
            )],
            vec![aws("cks-1", "n", "h", "p1")],
            vec![],
            vec!["unchanged s1"],
        ),
        (
            "already linked to the same id, other state: state updated",
            vec![linked(
                local("s1", "p1", "h", acct),
                "cks-1",
                ConnectionState::Disconnected,
            )],
            vec![aws("cks-1", "n", "h", "p1")],
            vec![],
            vec!["state s1 CONNECTED"],
        ),
        (
            "linked to another id: conflict, and the other AWS store is reported missing",
            vec![linked(
                local("s1", "p1", "h", acct),
                "cks-9",
                ConnectionState::Connected,
            )],
            vec![aws("cks-1", "n", "h", "p1")],
            vec![],
            vec!["report StoreLinkConflict", "report StoreMissingOnAws"],
        ),
        (
            "matching store of another account: reported, not imported",
            vec![local("s1", "p1", "h", Some("999988887777"))],
            vec![aws("cks-1", "n", "h", "p1")],
            vec![],
            vec!["report StoreOtherScope"],
        ),
        (
            "matching store of no account: reported",
            vec![local("s1", "p1", "h", None)],
            vec![aws("cks-1", "n", "h", "p1")],
            vec![],
            vec!["report StoreOtherScope"],
        ),
        (
            "matching store of another region: reported",
            vec![{
                let mut s = local("s1", "p1", "h", acct);
                s.record.region = Some("us-east-1".into());
                s
            }],
            vec![aws("cks-1", "n", "h", "p1")],
            vec![],
            vec!["report StoreOtherScope"],
        ),
        (
            "unknown AWS store: remote; a taken name gets the AWS id",
            vec![{
                let mut s = local("s1", "p1", "h", acct);
                s.record.name = "shared".into();
                s
            }],
            vec![
                aws("cks-1", "shared", "elsewhere", "x"),
                aws("cks-2", "shared", "elsewhere", "y"),
            ],
            vec![],
            vec!["import new1 'shared-cks-1'", "import new2 'shared-cks-2'"],
        ),
        (
            "known remote store: unchanged, or updated when AWS changed it",
            vec![
                remote("r1", "cks-1", "h", "x"),
                remote("r2", "cks-2", "old-host", "y"),
            ],
            vec![
                aws("cks-1", "n", "h", "x"),
                aws("cks-2", "n", "new-host", "y"),
            ],
            vec![],
            vec!["unchanged r1", "update-remote r2"],
        ),
        (
            "linked local store gone from AWS: reported, other regions' not",
            vec![
                linked(
                    local("s1", "p1", "h", acct),
                    "cks-1",
                    ConnectionState::Connected,
                ),
                {
                    let mut s = linked(
                        local("s2", "p2", "h", acct),
                        "cks-2",
                        ConnectionState::Connected,
                    );
                    s.record.region = Some("us-east-1".into());
                    s
                },
            ],
            vec![],
            vec![],
            vec!["report StoreMissingOnAws"],
        ),
        (
            "unlinked HYOK key of a local store: linked; unknown external id: reported",
            vec![with_key(local("s1", "p1", "h", acct), "ext1", None)],
            vec![aws("cks-1", "n", "h", "p1")],
            vec![
                key("k1", "cks-1", "ext1", "Enabled"),
                key("k2", "cks-1", "nope", "Enabled"),
            ],
            vec![
                "link s1 cks-1 eu-west-1",
                "link-key s1/ext1 k1",
                "report KeyUnknown",
            ],
        ),
        (
            "HYOK key linked to the same KMS key: unchanged; to another: conflict",
            vec![with_key(
                with_key(
                    linked(
                        local("s1", "p1", "h", acct),
                        "cks-1",
                        ConnectionState::Connected,
                    ),
                    "ext1",
                    Some("k1"),
                ),
                "ext2",
                Some("k-other"),
            )],
            vec![aws("cks-1", "n", "h", "p1")],
            vec![
                key("k1", "cks-1", "ext1", "Enabled"),
                key("k2", "cks-1", "ext2", "Enabled"),
            ],
            vec![
                "unchanged s1",
                "unchanged-key",
                "report KeyLinkConflict",
                "report KeyMissingOnAws",
            ],
        ),
        (
            "keys pending deletion are reported and skipped",
            vec![with_key(local("s1", "p1", "h", acct), "ext1", None)],
            vec![aws("cks-1", "n", "h", "p1")],
            vec![key("k1", "cks-1", "ext1", "PendingDeletion")],
            vec!["link s1 cks-1 eu-west-1", "report KeyPendingDeletion"],
        ),
        (
            "keys of remote stores are imported; of new ones too; invalid ids reported",
            vec![remote("r1", "cks-1", "h", "x")],
            vec![aws("cks-1", "n", "h", "x"), aws("cks-2", "m", "h2", "y")],
            vec![
                key("k1", "cks-1", "ext1", "Enabled"),
                key("k2", "cks-2", "ext2", "Enabled"),
                key("k3", "cks-2", "bad id", "Enabled"),
            ],
            vec![
                "unchanged r1",
                "import new1 'm'",
                "import-key r1/ext1 k1",
                "import-key new1/ext2 k2",
                "report KeyInvalidId",
            ],
        ),
        (
            "a remote store's key follows AWS when it names another KMS key",
            vec![with_key(
                remote("r1", "cks-1", "h", "x"),
                "ext1",
                Some("k-old"),
            )],
            vec![aws("cks-1", "n", "h", "x")],
            vec![key("k1", "cks-1", "ext1", "Enabled")],
            vec!["unchanged r1", "relink-key r1/ext1 k1"],
        ),
        (
            "keys outside the handled stores are ignored",
            vec![local("s1", "p1", "h", Some("999988887777"))],
            vec![aws("cks-1", "n", "h", "p1")],
            vec![
                key("k1", "cks-1", "ext1", "Enabled"),
                AwsKey {
                    key_id: "k2".into(),
                    arn: "arn".into(),
                    key_state: "Enabled".into(),
                    custom_key_store_id: None,
                    xks_key_id: None,
                },
            ],
            vec!["report StoreOtherScope", "ignored", "ignored"],
        ),
    ];
    for (case, local, stores, keys, expected) in cases {
        assert_eq!(plan(&local, &stores, &keys), expected, "{case}");
    }
}

fn remote(id: &str, cks: &str, host: &str, prefix: &str) -> LocalStore {
    let s = aws(cks, "n", host, prefix);
    LocalStore {
        record: remote_record(id.into(), format!("remote-{id}"), &s, REGION, 0),
        account: Some(ACCOUNT.into()),
        keys: Vec::new(),
    }
}

#[test]
fn remote_records_are_read_only_shapes() {
    let mut s = aws("cks-1", "n", "vpce.example.com", "tenant/a");
    s.connectivity = XksConnectivity::Vpc {
        service_name: "com.amazonaws.vpce.svc-1".into(),
    };
    let r = remote_record("id".into(), "n".into(), &s, REGION, 5);
    assert_eq!(r.kind, StoreKind::Remote);
    assert_eq!((r.source.as_str(), r.plugin.as_str()), ("", ""));
    assert_eq!(r.uri_path_prefix, "tenant/a");
    assert_eq!(r.xks_base_path(), "/tenant/a/kms/xks/v1");
    assert_eq!(
        r.location,
        XksLocation::Vpc {
            service_name: "com.amazonaws.vpce.svc-1".into(),
            endpoint: "https://vpce.example.com".into()
        }
    );
    assert_eq!(r.region.as_deref(), Some(REGION));
    assert_eq!(
        r.aws,
        Some(AwsLink::new("cks-1", ConnectionState::Connected))
    );
}

#[test]
fn remote_names_are_valid_and_unique() {
    let taken: HashSet<String> = ["a".to_string(), "a-cks-1".to_string()].into();
    assert_eq!(remote_store_name("b", "cks-1", &taken), "b");
    assert_eq!(remote_store_name("a", "cks-1", &taken), "a-cks-1-2");
    assert_eq!(remote_store_name("x/y\n", "cks-1", &taken), "x-y-");
    assert_eq!(remote_store_name("  ", "cks-1", &taken), "cks-1");
    let long = "n".repeat(300);
    let name = remote_store_name(&long, "cks-1", &HashSet::new());
    assert_eq!(name.chars().count(), 64);
    let taken: HashSet<String> = [name.clone()].into();
    let second = remote_store_name(&long, "cks-1", &taken);
    assert_eq!(second.chars().count(), 64);
    assert!(second.ends_with("-cks-1"));
    for n in [name, second] {
        crate::model::validate_name("store", &n).unwrap();
    }
}

/// Applying a refresh, then refreshing again, changes nothing.
#[test]
fn refresh_is_idempotent() {
    let acct = Some(ACCOUNT);
    let mut local = vec![
        with_key(local("s1", "p1", "h", acct), "ext1", None),
        linked(
            local("s2", "p2", "h", acct),
            "cks-2",
            ConnectionState::Disconnected,
        ),
        remote("r1", "cks-3", "h3", "z"),
    ];
    let stores = vec![
        aws("cks-1", "one", "h", "p1"),
        aws("cks-2", "two", "h", "p2"),
        aws("cks-3", "three", "h3-moved", "z"),
        aws("cks-4", "four", "h4", "w"),
    ];
    let keys = vec![
        key("k1", "cks-1", "ext1", "Enabled"),
        key("k3", "cks-3", "e3", "Enabled"),
        key("k4", "cks-4", "e4", "Enabled"),
    ];
    let first = plan(&local, &stores, &keys);
    assert_eq!(
        first,
        [
            "link s1 cks-1 eu-west-1",
            "state s2 CONNECTED",
            "update-remote r1",
            "import new1 'four'",
            "link-key s1/ext1 k1",
            "import-key r1/e3 k3",
            "import-key new1/e4 k4",
        ]
    );
    apply(&mut local, &stores, &keys);
    let second = plan(&local, &stores, &keys);
    assert_eq!(
        second,
        [
            "unchanged s1",
            "unchanged s2",
            "unchanged r1",
            "unchanged new1",
            "unchanged-key",
            "unchanged-key",
            "unchanged-key",
        ]
    );
}

#[test]
fn path_prefixes_and_summary() {
    assert_eq!(prefix_of_path("/kms/xks/v1"), "");
    assert_eq!(prefix_of_path("/a/b/kms/xks/v1"), "a/b");
    assert_eq!(prefix_of_path("/odd"), "odd");
    let mut s = RefreshSummary::default();
    assert_eq!(s.text(), "nothing changed, 0 up to date, 0 reported");
    for _ in 0..(MAX_LISTED + 5) {
        s.change(Change {
            kind: ChangeKind::KeyLinked,
            store: "s".into(),
            aws_id: "k".into(),
            external_id: None,
        });
    }
    assert_eq!(s.changed, (MAX_LISTED + 5) as u64);
    assert_eq!(s.changes.len(), MAX_LISTED);
    assert!(s.text().starts_with("205 changed"));
}
