//! The wire protocol: signatures, STS, throttling, HTTPS and the binary.

use serde_json::Value;

use super::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signatures_sts_and_throttling() {
    let emu = start_emulator(emulator_config("")).await;

    // Wrong secret, unknown key, no such operation, malformed JSON.
    let r = kms(&emu, (ALICE.0, "wrong-secret"), None)
        .list_keys()
        .send()
        .await;
    assert_eq!(code(&r.unwrap_err()), "InvalidSignatureException");
    let r = kms(&emu, ("AKIAUNKNOWN000000000", "x"), None)
        .list_keys()
        .send()
        .await;
    assert_eq!(code(&r.unwrap_err()), "UnrecognizedClientException");
    let r = kms_raw(&emu, ALICE, "Bogus", b"{}").await;
    assert_eq!(r.status.as_u16(), 400);
    assert_eq!(r.json()["__type"], "UnknownOperationException");
    let r = kms_raw(&emu, ALICE, "ListKeys", b"{not json").await;
    assert_eq!(r.json()["__type"], "ValidationException");
    let r = kms_raw(&emu, ALICE, "ListKeys", br#"{"Limit": 0}"#).await;
    let body: Value = r.json();
    assert_eq!(body["__type"], "ValidationException");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("limit"),
        "{body}"
    );

    // STS: the signing region is recorded; AssumeRole only for trusted users.
    let r = sts(
        &emu,
        ALICE,
        "us-east-1",
        "Action=GetCallerIdentity&Version=2011-06-15",
    )
    .await;
    assert_eq!(r.status.as_u16(), 200);
    let text = String::from_utf8_lossy(&r.body).to_string();
    assert_eq!(
        xml_text(&text, "Arn"),
        Some(format!("arn:aws:iam::{ACCOUNT}:user/alice").as_str())
    );
    let form = format!(
        "Action=AssumeRole&Version=2011-06-15&RoleArn={}&RoleSessionName=keyhold",
        ROLE.replace(':', "%3A").replace('/', "%2F")
    );
    let r = sts(&emu, BOB, REGION, &form).await;
    assert_eq!(r.status.as_u16(), 403);
    let text = String::from_utf8_lossy(&r.body).to_string();
    assert_eq!(xml_text(&text, "Code"), Some("AccessDenied"));
    let r = sts(&emu, ALICE, REGION, &form).await;
    assert_eq!(r.status.as_u16(), 200);
    let text = String::from_utf8_lossy(&r.body).to_string();
    let akid = xml_text(&text, "AccessKeyId")
        .expect("AccessKeyId")
        .to_string();
    let secret = xml_text(&text, "SecretAccessKey")
        .expect("secret")
        .to_string();
    let token = xml_text(&text, "SessionToken").expect("token").to_string();
    assert!(akid.starts_with("ASIA"), "{akid}");
    assert!(xml_text(&text, "Expiration").is_some());
    assert_eq!(
        xml_text(&text, "Arn"),
        Some(format!("arn:aws:sts::{ACCOUNT}:assumed-role/keyhold-manager/keyhold").as_str())
    );
    kms(&emu, (&akid, &secret), Some(&token))
        .list_keys()
        .send()
        .await
        .expect("temporary credentials work");
    let r = kms(&emu, (&akid, &secret), None).list_keys().send().await;
    assert!(r.is_err(), "temporary credentials need their session token");
    let sts_calls: Vec<(String, String, Option<String>)> = emu
        .calls()
        .into_iter()
        .filter(|c| c.service == "sts")
        .map(|c| (c.operation, c.signing_region, c.error_code))
        .collect();
    assert_eq!(
        sts_calls,
        [
            (
                "GetCallerIdentity".to_string(),
                "us-east-1".to_string(),
                None
            ),
            (
                "AssumeRole".to_string(),
                REGION.to_string(),
                Some("AccessDenied".to_string())
            ),
            ("AssumeRole".to_string(), REGION.to_string(), None),
        ]
    );

    // Throttling: the SDK retries; with too few attempts it reports ThrottlingException.
    emu.throttle_next(2);
    kms_with_retries(&emu, ALICE, None, 4)
        .list_keys()
        .send()
        .await
        .expect("retried");
    let tail: Vec<Option<String>> = emu
        .calls()
        .iter()
        .rev()
        .take(3)
        .map(|c| c.error_code.clone())
        .collect();
    assert_eq!(
        tail,
        [
            None,
            Some("ThrottlingException".into()),
            Some("ThrottlingException".into())
        ]
    );
    emu.throttle_next(5);
    let r = kms_with_retries(&emu, ALICE, None, 2)
        .list_keys()
        .send()
        .await;
    assert_eq!(code(&r.unwrap_err()), "ThrottlingException");
    emu.throttle_next(0);

    // After shutdown, connections are refused.
    let endpoint = emu.endpoint();
    emu.shutdown().await;
    let addr = endpoint.trim_start_matches("http://").to_string();
    assert!(std::net::TcpStream::connect(addr).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_https_with_its_identity() {
    let ca = keyhold_testkit::pki::TestCa::new("emulator listener CA");
    let issued = ca.server_cert();
    let mut config = emulator_config("");
    config.tls = Some(kms_emulator::TlsIdentity {
        cert_pem: issued.chain_pem.clone().into_bytes(),
        key_pem: issued.key_pem.clone().into_bytes(),
    });
    let emu = start_emulator(config).await;
    let endpoint = emu.endpoint();
    assert!(endpoint.starts_with("https://127.0.0.1:"), "{endpoint}");
    let addr = endpoint
        .trim_start_matches("https://")
        .parse()
        .expect("addr");
    let transport = keyhold_testkit::Transport::https(addr, &ca.pem());
    let r = kms_raw_via(&transport, ALICE, "ListKeys", b"{}").await;
    assert_eq!(r.status.as_u16(), 200, "{:?}", r.body);
    assert_eq!(r.json()["Keys"], serde_json::json!([]));
    let r = kms_raw_via(&transport, (ALICE.0, "wrong"), "ListKeys", b"{}").await;
    assert_eq!(r.json()["__type"], "InvalidSignatureException");
    assert_eq!(
        r.headers
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok()),
        Some("InvalidSignatureException")
    );
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_prints_its_endpoint_and_serves() {
    use std::io::BufRead;
    let port = keyhold_testkit::paths::free_port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_kms-emulator"))
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--region",
            REGION,
            "--account",
            ACCOUNT,
        ])
        .args(["--user", &format!("alice:{}:{}", ALICE.0, ALICE.1)])
        .args(["--role", &format!("{ROLE}={}", ALICE.0)])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn kms-emulator");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .expect("endpoint line");
    assert_eq!(line.trim(), format!("http://127.0.0.1:{port}"));
    let addr = format!("127.0.0.1:{port}").parse().expect("addr");
    let r = kms_raw_via(
        &keyhold_testkit::Transport::plain(addr),
        ALICE,
        "ListKeys",
        b"{}",
    )
    .await;
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(r.status.as_u16(), 200);

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kms-emulator"))
        .args(["--user", "no-colons"])
        .output()
        .expect("run kms-emulator");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("NAME:AKID:SECRET"));
}
