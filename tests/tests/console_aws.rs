//! The web console's AWS linkage pages against a real keyhold and the KMS emulator:
//! creating a linked store, reviewing then linking an unlinked one, connecting and
//! disconnecting, and linked HYOK keys, each shown with its connection state.

use keyhold_tests::{
    admin::expect_status,
    aws::{ACCOUNT, AwsWorld, REGION},
    console::{ConsoleClient, header, input_value, text},
};
use serde_json::json;

/// The console signed in as root on `world`'s keyhold.
async fn console(world: &AwsWorld) -> ConsoleClient {
    let mut c = ConsoleClient::new(&world.server);
    let r = c.sign_in("root", &world.server.root_password()).await;
    assert_eq!(r.status.as_u16(), 303, "{}", text(&r));
    c
}

/// The `<tr data-name=name>` row of `html`.
fn row(html: &str, name: &str) -> String {
    let at = html
        .find(&format!("<tr data-name=\"{name}\">"))
        .unwrap_or_else(|| panic!("row {name}: {html}"));
    html[at..at + html[at..].find("</tr>").expect("row end")].to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_store_is_reviewed_linked_connected_and_disconnected_from_its_page() {
    let world = AwsWorld::start().await;
    world.source_key("ctm", "hc").await;
    world.source_key("ctm", "k1-src").await;
    let c = console(&world).await;
    let body =
        json!({"name": "later", "account": ACCOUNT, "source": "ctm", "health_check_key": "hc"});
    let created = expect_status(&world.root.create_store(&body).await, 201);
    let id = created["store"]["id"].as_str().expect("id").to_string();
    let page = format!("/console/stores/{id}");
    let html = text(&c.get(&page).await);
    assert!(html.contains("id=\"review-link-form\""), "{html}");
    assert!(row(&text(&c.get("/console/stores").await), "later").contains("unlinked"));

    // Review: what AWS KMS will get, nothing made yet.
    let endpoint = world.xks_endpoint();
    let fields = [
        ("name", "later"),
        ("region", REGION),
        ("location", "public"),
        ("endpoint", endpoint.as_str()),
    ];
    let r = c.post(&page, &format!("{page}/link/review"), &fields).await;
    assert_eq!(r.status.as_u16(), 200, "{}", text(&r));
    let html = text(&r);
    assert!(html.contains("id=\"link-plan\""), "{html}");
    assert!(
        html.contains(&format!("/keystores/{id}/kms/xks/v1")),
        "{html}"
    );
    assert!(html.contains(&endpoint), "{html}");
    assert!(html.contains("id=\"link-store-form\""), "{html}");
    assert_eq!(
        input_value(
            &html[html.find("link-store-form").expect("form")..],
            "endpoint"
        )
        .as_deref(),
        Some(endpoint.as_str())
    );
    assert!(
        world.aws_stores().await.is_empty(),
        "a review makes nothing"
    );

    // Link, then connect and disconnect: the state is on the page and in the list.
    let r = c.post(&page, &format!("{page}/link"), &fields).await;
    assert_eq!(r.status.as_u16(), 303, "{}", text(&r));
    let html = text(&c.follow(&r).await);
    assert!(html.contains("linked, DISCONNECTED"), "{html}");
    assert!(html.contains("id=\"connect-store-form\""), "{html}");
    assert_eq!(world.aws_stores().await.len(), 1);
    let r = c.post(&page, &format!("{page}/connect"), &[]).await;
    assert_eq!(r.status.as_u16(), 303, "{}", text(&r));
    let html = text(&c.follow(&r).await);
    assert!(html.contains("linked, CONNECTED"), "{html}");
    assert!(!html.contains("id=\"connect-store-form\""), "{html}");
    assert!(html.contains("id=\"disconnect-store-form\""), "{html}");
    assert!(row(&text(&c.get("/console/stores").await), "later").contains("linked, CONNECTED"));

    // A linked HYOK key gets its AWS KMS key.
    let r = c
        .post(
            &page,
            &format!("{page}/keys"),
            &[
                ("external_id", "k1"),
                ("source_key", "k1-src"),
                ("linked", "true"),
            ],
        )
        .await;
    assert_eq!(r.status.as_u16(), 303, "{}", text(&r));
    let key = expect_status(
        &world
            .root
            .get(&format!("/api/v1/stores/{id}/keys/k1"))
            .await,
        200,
    );
    let kms = key["aws"]["key_id"]
        .as_str()
        .expect("AWS KMS key")
        .to_string();
    assert!(row(&text(&c.get(&page).await), "k1").contains(&kms));
    // Deleting it schedules its AWS KMS key's deletion with the waiting period given.
    let confirm = format!("{page}/keys/k1/delete");
    let html = text(&c.get(&confirm).await);
    assert!(html.contains("id=\"pending_window_days\""), "{html}");
    let r = c
        .post(
            &confirm,
            &confirm,
            &[("pending_window_days", "3"), ("confirm_name", "k1")],
        )
        .await;
    assert_eq!(r.status.as_u16(), 400, "{}", text(&r));
    assert!(
        text(&r).contains("data-code=\"invalid_input\""),
        "{}",
        text(&r)
    );
    let r = c
        .post(
            &confirm,
            &confirm,
            &[("pending_window_days", "7"), ("confirm_name", "k1")],
        )
        .await;
    assert_eq!(r.status.as_u16(), 303, "{}", text(&r));
    let keys = expect_status(
        &world.root.get(&format!("/api/v1/stores/{id}/keys")).await,
        200,
    );
    assert_eq!(keys, json!([]));

    // A rotation schedule, assigned and unassigned from the page.
    let schedule = json!({"name": "nightly", "recurrence": {"type": "daily", "at": "03:00"}});
    expect_status(&world.root.post("/api/v1/schedules", &schedule).await, 201);
    let r = c
        .post(
            &page,
            &format!("{page}/schedule"),
            &[("schedule", "nightly")],
        )
        .await;
    assert_eq!(r.status.as_u16(), 303, "{}", text(&r));
    let html = text(&c.follow(&r).await);
    assert!(html.contains("Rotation schedule assigned."), "{html}");
    assert!(html.contains("Schedule <strong>nightly</strong>"), "{html}");
    let r = c
        .post(
            &page,
            &format!("{page}/schedule"),
            &[("schedule", "hourly")],
        )
        .await;
    assert_eq!(r.status.as_u16(), 404, "{}", text(&r));
    let r = c
        .post(&page, &format!("{page}/schedule/unassign"), &[])
        .await;
    assert_eq!(r.status.as_u16(), 303, "{}", text(&r));
    assert!(text(&c.follow(&r).await).contains("No scheduled rotation."));
    let r = c.post(&page, &format!("{page}/disconnect"), &[]).await;
    assert_eq!(r.status.as_u16(), 303, "{}", text(&r));
    assert!(text(&c.follow(&r).await).contains("linked, DISCONNECTED"));
    // Linking again is the API's refusal, shown on the page.
    let r = c.post(&page, &format!("{page}/link/review"), &fields).await;
    assert_eq!(r.status.as_u16(), 409, "{}", text(&r));
    assert!(
        text(&r).contains("data-code=\"store_already_linked\""),
        "{}",
        text(&r)
    );
    world.server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_linked_store_is_created_from_the_form() {
    let world = AwsWorld::start().await;
    world.source_key("ctm", "hc").await;
    let c = console(&world).await;
    let endpoint = world.xks_endpoint();
    let r = c
        .post(
            "/console/stores/new",
            "/console/stores",
            &[
                ("name", "linked1"),
                ("source", "ctm"),
                ("health_check_key", "hc"),
                ("account", ACCOUNT),
                ("region", REGION),
                ("location", "public"),
                ("endpoint", endpoint.as_str()),
                ("linked", "true"),
            ],
        )
        .await;
    assert_eq!(r.status.as_u16(), 303, "{}", text(&r));
    assert!(header(&r, "location").is_some_and(|l| l.contains("download=")));
    let html = text(&c.follow(&r).await);
    assert!(html.contains("linked, DISCONNECTED"), "{html}");
    assert!(html.contains("id=\"credentials-download\""), "{html}");
    assert_eq!(world.aws_stores().await.len(), 1);
    world.server.stop().await;
}
