//! KMS keys and the double encryption through keyhold.

use aws_sdk_kms::{
    primitives::Blob,
    types::{DataKeySpec, KeyState, OriginType},
};
use keyhold_testkit::{
    Credential,
    admin::expect_status,
    fixture::{BASE, KEY_ALL, KEY_ENCRYPT_ONLY},
};

use super::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_and_double_encryption_through_keyhold() {
    let keyhold = Keyhold::start().await;
    let emu = start_emulator(emulator_config(&keyhold.ca_pem)).await;
    let kms = kms(&emu, ALICE, None);
    let store = create_store(&kms, "primary", &keyhold.endpoint(), BASE, &Credential::a())
        .await
        .expect("create");
    assert_eq!(connect(&kms, &store).await.0, "CONNECTED");

    // CreateKey checks the external key with GetKeyMetadata.
    let created = kms
        .create_key()
        .origin(OriginType::ExternalKeyStore)
        .custom_key_store_id(&store)
        .xks_key_id(KEY_ALL)
        .send()
        .await
        .expect("create key");
    let meta = created.key_metadata().expect("metadata");
    assert_eq!(meta.origin(), Some(&OriginType::ExternalKeyStore));
    assert_eq!(meta.key_state(), Some(&KeyState::Enabled));
    assert_eq!(meta.custom_key_store_id(), Some(store.as_str()));
    assert_eq!(
        meta.xks_key_configuration().and_then(|x| x.id()),
        Some(KEY_ALL)
    );
    let key = meta.key_id().to_string();
    let arn = meta.arn().unwrap_or_default().to_string();
    assert_eq!(arn, format!("arn:aws:kms:{REGION}:{ACCOUNT}:key/{key}"));
    let last = emu.xks_calls().pop().expect("call");
    assert_eq!(
        (last.operation.as_str(), last.kms_operation.as_str()),
        ("GetKeyMetadata", "CreateKey")
    );
    assert_eq!(
        last.aws_principal_arn,
        format!("arn:aws:iam::{ACCOUNT}:user/alice")
    );
    assert_eq!(
        create_key(&kms, &store, KEY_ALL).await.unwrap_err(),
        "XksKeyAlreadyInUseException"
    );
    assert_eq!(
        create_key(&kms, &store, KEY_ENCRYPT_ONLY)
            .await
            .unwrap_err(),
        "XksKeyInvalidConfigurationException"
    );
    assert_eq!(
        create_key(&kms, &store, KEY_DISABLED).await.unwrap_err(),
        "XksKeyInvalidConfigurationException"
    );
    assert_eq!(
        create_key(&kms, &store, "no-such-key").await.unwrap_err(),
        "XksKeyNotFoundException"
    );
    let key2 = create_key(&kms, &store, KEY_2).await.expect("second key");

    // GenerateDataKey + Decrypt, with an encryption context.
    let dk = kms
        .generate_data_key()
        .key_id(&key)
        .key_spec(DataKeySpec::Aes256)
        .encryption_context("purpose", "test")
        .send()
        .await
        .expect("generate data key");
    let plain = dk.plaintext().expect("plaintext").as_ref().to_vec();
    assert_eq!(plain.len(), 32);
    let blob = dk.ciphertext_blob().expect("blob").as_ref().to_vec();
    let back = kms
        .decrypt()
        .ciphertext_blob(Blob::new(blob.clone()))
        .encryption_context("purpose", "test")
        .send()
        .await
        .expect("decrypt");
    assert_eq!(
        back.plaintext().expect("plaintext").as_ref(),
        plain.as_slice()
    );
    assert_eq!(back.key_id(), Some(arn.as_str()));
    let r = kms
        .decrypt()
        .ciphertext_blob(Blob::new(blob.clone()))
        .send()
        .await;
    assert_eq!(
        code(&r.unwrap_err()),
        "KMSInvalidStateException",
        "the encryption context is bound"
    );
    let n = kms
        .generate_data_key()
        .key_id(&key)
        .number_of_bytes(7)
        .send()
        .await
        .expect("7 bytes");
    assert_eq!(n.plaintext().expect("plaintext").as_ref().len(), 7);
    let r = kms.generate_data_key().key_id(&key).send().await;
    assert_eq!(code(&r.unwrap_err()), "ValidationException");

    // Encrypt, ReEncrypt to the other key, Decrypt.
    let sealed = kms
        .encrypt()
        .key_id(&key)
        .plaintext(Blob::new(b"hello".to_vec()))
        .send()
        .await
        .expect("encrypt");
    let sealed = sealed.ciphertext_blob().expect("blob").as_ref().to_vec();
    let moved = kms
        .re_encrypt()
        .ciphertext_blob(Blob::new(sealed.clone()))
        .destination_key_id(&key2)
        .send()
        .await
        .expect("re-encrypt");
    assert_eq!(moved.source_key_id(), Some(arn.as_str()));
    let moved = moved.ciphertext_blob().expect("blob").as_ref().to_vec();
    let back = kms
        .decrypt()
        .ciphertext_blob(Blob::new(moved.clone()))
        .send()
        .await
        .expect("decrypt");
    assert_eq!(back.plaintext().expect("plaintext").as_ref(), b"hello");
    let r = kms
        .decrypt()
        .ciphertext_blob(Blob::new(moved))
        .key_id(&key)
        .send()
        .await;
    assert_eq!(code(&r.unwrap_err()), "IncorrectKeyException");

    // Each proxy call names the KMS operation, key and principal; CDIV was requested.
    let ops: Vec<(String, String)> = emu
        .xks_calls()
        .into_iter()
        .filter(|c| c.operation == "Encrypt" || c.operation == "Decrypt")
        .map(|c| (c.operation, c.kms_operation))
        .collect();
    let expect = |o: &str, k: &str| (o.to_string(), k.to_string());
    for pair in [
        expect("Encrypt", "GenerateDataKey"),
        expect("Decrypt", "Decrypt"),
        expect("Encrypt", "Encrypt"),
        expect("Decrypt", "ReEncrypt"),
        expect("Encrypt", "ReEncrypt"),
    ] {
        assert!(ops.contains(&pair), "{pair:?} in {ops:?}");
    }

    // Tampering: the proxy's ciphertext (last byte) or the blob's structure.
    let mut tampered = sealed.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    let r = kms
        .decrypt()
        .ciphertext_blob(Blob::new(tampered))
        .send()
        .await;
    assert_eq!(code(&r.unwrap_err()), "KMSInvalidStateException");
    let r = kms
        .decrypt()
        .ciphertext_blob(Blob::new(b"not a ciphertext".to_vec()))
        .send()
        .await;
    assert_eq!(code(&r.unwrap_err()), "InvalidCiphertextException");

    // Blocked at keyhold: KMSInvalidStateException (proxy InvalidStateException).
    let root = keyhold.root().await;
    let store_path = keyhold.store_path().await;
    let encrypt = || {
        kms.encrypt()
            .key_id(&key)
            .plaintext(Blob::new(b"x".to_vec()))
            .send()
    };
    expect_status(
        &root
            .post(&format!("{store_path}/keys/{KEY_ALL}/block"), &empty())
            .await,
        200,
    );
    assert_eq!(
        code(&encrypt().await.unwrap_err()),
        "KMSInvalidStateException"
    );
    expect_status(
        &root
            .post(&format!("{store_path}/keys/{KEY_ALL}/unblock"), &empty())
            .await,
        200,
    );
    encrypt().await.expect("unblocked key");
    expect_status(
        &root.post(&format!("{store_path}/block"), &empty()).await,
        200,
    );
    assert_eq!(
        code(&encrypt().await.unwrap_err()),
        "KMSInvalidStateException"
    );
    expect_status(
        &root.post(&format!("{store_path}/unblock"), &empty()).await,
        200,
    );
    let back = kms
        .decrypt()
        .ciphertext_blob(Blob::new(sealed.clone()))
        .send()
        .await
        .expect("decrypt after unblock");
    assert_eq!(back.plaintext().expect("plaintext").as_ref(), b"hello");

    // DescribeKey, ListKeys with paging.
    let d = kms
        .describe_key()
        .key_id(&arn)
        .send()
        .await
        .expect("describe by ARN");
    assert_eq!(d.key_metadata().map(|m| m.key_id()), Some(key.as_str()));
    let r = kms.describe_key().key_id("alias/nope").send().await;
    assert_eq!(code(&r.unwrap_err()), "NotFoundException");
    let p1 = kms.list_keys().limit(1).send().await.expect("page 1");
    assert!(p1.truncated());
    let p2 = kms
        .list_keys()
        .limit(1)
        .marker(p1.next_marker().expect("marker"))
        .send()
        .await
        .expect("page 2");
    let ids: Vec<&str> = p1
        .keys()
        .iter()
        .chain(p2.keys())
        .filter_map(|k| k.key_id())
        .collect();
    assert_eq!(ids, [key.as_str(), key2.as_str()]);

    // Deletion window 7..30; a key pending deletion cannot be used; cancel.
    let r = kms
        .schedule_key_deletion()
        .key_id(&key2)
        .pending_window_in_days(6)
        .send()
        .await;
    assert_eq!(code(&r.unwrap_err()), "ValidationException");
    let s = kms
        .schedule_key_deletion()
        .key_id(&key2)
        .send()
        .await
        .expect("schedule");
    assert_eq!(s.pending_window_in_days(), Some(30));
    assert_eq!(s.key_state(), Some(&KeyState::PendingDeletion));
    let r = kms
        .encrypt()
        .key_id(&key2)
        .plaintext(Blob::new(b"x".to_vec()))
        .send()
        .await;
    assert_eq!(code(&r.unwrap_err()), "KMSInvalidStateException");
    kms.cancel_key_deletion()
        .key_id(&key2)
        .send()
        .await
        .expect("cancel");

    // Disconnected store: keys Unavailable, crypto refused.
    assert_eq!(disconnect(&kms, &store).await.0, "DISCONNECTED");
    let d = kms
        .describe_key()
        .key_id(&key)
        .send()
        .await
        .expect("describe");
    assert_eq!(
        d.key_metadata().and_then(|m| m.key_state()),
        Some(&KeyState::Unavailable)
    );
    assert_eq!(
        code(&encrypt().await.unwrap_err()),
        "KMSInvalidStateException"
    );
    emu.shutdown().await;
}
