//! HTTP API authentication: the reference's worked example, every 401 reason, 404/403, and
//! the quirks of the official SDKs (PHP escaping, Python GET body_md5, path prefix).

mod common;

use common::http::{Response, api, now, raw_request, signed_path};
use common::{APP_ID, APP_SECRET, TestServer};

/// Sends a signed request after `tamper` edits the signed target.
async fn tampered(
    server: &TestServer,
    method: &str,
    body: &str,
    tamper: impl Fn(String) -> String,
) -> Response {
    let target = signed_path(
        method,
        &format!("/apps/{APP_ID}/channels"),
        &[],
        body,
        APP_SECRET,
        now(),
    );
    raw_request(server, method, &tamper(target), body).await
}

#[tokio::test]
async fn the_reference_worked_example_is_accepted() {
    // The documented request is from 2012, so the timestamp window is opened wide.
    let config = "[server]\nmax_auth_timestamp_skew = 9999999999\n[[apps]]\nid = \"3\"\nkey = \"278d425bdf160c739803\"\nsecret = \"7ad3773142a6692b25b8\"\n";
    let server = TestServer::start_with(config);
    let body = r#"{"name":"foo","channels":["project-3"],"data":"{\"some\":\"data\"}"}"#;
    let target = "/apps/3/events?auth_key=278d425bdf160c739803&auth_timestamp=1353088179&auth_version=1.0&body_md5=ec365a775a4cd0599faeb73354201b6f&auth_signature=da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c";
    let response = raw_request(&server, "POST", target, body).await;
    assert_eq!((response.status, response.body.as_str()), (200, "{}"));
    let bad = target.replace("da4548", "da4549");
    assert_eq!(raw_request(&server, "POST", &bad, body).await.status, 401);
}

#[tokio::test]
async fn the_default_window_refuses_the_2012_example() {
    let config =
        "[[apps]]\nid = \"3\"\nkey = \"278d425bdf160c739803\"\nsecret = \"7ad3773142a6692b25b8\"\n";
    let server = TestServer::start_with(config);
    let body = r#"{"name":"foo","channels":["project-3"],"data":"{\"some\":\"data\"}"}"#;
    let target = "/apps/3/events?auth_key=278d425bdf160c739803&auth_timestamp=1353088179&auth_version=1.0&body_md5=ec365a775a4cd0599faeb73354201b6f&auth_signature=da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c";
    let response = raw_request(&server, "POST", target, body).await;
    assert_eq!(response.status, 401);
    assert_eq!(
        response.error(),
        "auth_timestamp is more than 600 seconds from the server's clock"
    );
}

#[tokio::test]
async fn each_missing_parameter_is_named() {
    let server = TestServer::start();
    for param in [
        "auth_key",
        "auth_timestamp",
        "auth_version",
        "auth_signature",
    ] {
        let response = tampered(&server, "GET", "", |target| {
            let (path, query) = target.split_once('?').unwrap();
            let kept: Vec<_> = query
                .split('&')
                .filter(|p| !p.starts_with(&format!("{param}=")))
                .collect();
            format!("{path}?{}", kept.join("&"))
        })
        .await;
        assert_eq!(response.status, 401, "{param}");
        assert_eq!(response.error(), format!("Missing {param} parameter"));
    }
}

#[tokio::test]
async fn timestamps_outside_600_seconds_are_refused_both_ways() {
    let server = TestServer::start();
    for timestamp in [now() - 700, now() + 700] {
        let target = signed_path(
            "GET",
            &format!("/apps/{APP_ID}/channels"),
            &[],
            "",
            APP_SECRET,
            timestamp,
        );
        let response = raw_request(&server, "GET", &target, "").await;
        assert_eq!(response.status, 401);
        assert!(
            response.error().contains("auth_timestamp"),
            "{}",
            response.body
        );
    }
    let target = signed_path(
        "GET",
        &format!("/apps/{APP_ID}/channels"),
        &[],
        "",
        APP_SECRET,
        now() - 500,
    );
    assert_eq!(raw_request(&server, "GET", &target, "").await.status, 200);
}

#[tokio::test]
async fn a_bad_signature_is_401_without_the_expected_value() {
    let server = TestServer::start();
    let target = signed_path(
        "GET",
        &format!("/apps/{APP_ID}/channels"),
        &[],
        "",
        "wrong-secret",
        now(),
    );
    let response = raw_request(&server, "GET", &target, "").await;
    assert_eq!(response.status, 401);
    assert_eq!(response.error(), "Invalid signature");
    let right = signed_path(
        "GET",
        &format!("/apps/{APP_ID}/channels"),
        &[],
        "",
        APP_SECRET,
        now(),
    );
    let right_signature = right.rsplit_once("auth_signature=").unwrap().1;
    assert!(!response.body.contains(right_signature));
    assert!(!response.body.contains("GET\n"));
}

#[tokio::test]
async fn body_md5_must_match_the_body() {
    let server = TestServer::start();
    let body = r#"{"name":"e","channel":"c","data":"x"}"#;
    let target = signed_path(
        "POST",
        &format!("/apps/{APP_ID}/events"),
        &[],
        body,
        APP_SECRET,
        now(),
    );
    let other = r#"{"name":"e","channel":"c","data":"y"}"#;
    let response = raw_request(&server, "POST", &target, other).await;
    assert_eq!(response.status, 401);
    assert_eq!(response.error(), "body_md5 does not match the body");
    let unsigned_body = signed_path(
        "POST",
        &format!("/apps/{APP_ID}/events"),
        &[],
        "",
        APP_SECRET,
        now(),
    );
    let response = raw_request(&server, "POST", &unsigned_body, body).await;
    assert_eq!(response.error(), "Missing body_md5 parameter");
}

#[tokio::test]
async fn python_style_get_with_empty_body_md5_is_accepted() {
    let server = TestServer::start();
    let empty_md5 = "d41d8cd98f00b204e9800998ecf8427e";
    let response = api(&server, "GET", "/channels", &[("body_md5", empty_md5)], "").await;
    assert_eq!(response.status, 200, "{}", response.body);
}

#[tokio::test]
async fn php_style_escaped_values_are_verified_decoded() {
    let server = TestServer::start();
    // Signed over the decoded value, sent percent-escaped (as Guzzle does).
    let params = [
        ("info", "user_count,subscription_count"),
        ("filter_by_prefix", "presence-"),
    ];
    let target = signed_path(
        "GET",
        &format!("/apps/{APP_ID}/channels"),
        &params,
        "",
        APP_SECRET,
        now(),
    );
    let escaped = target.replace(
        "user_count,subscription_count",
        "user_count%2Csubscription_count",
    );
    assert_ne!(escaped, target);
    let response = raw_request(&server, "GET", &escaped, "").await;
    assert_eq!(response.status, 200, "{}", response.body);
}

#[tokio::test]
async fn the_api_v1_prefix_works_signed_with_or_without_it() {
    let server = TestServer::start();
    let prefixed = format!("/api/v1/apps/{APP_ID}/channels");
    let with = signed_path("GET", &prefixed, &[], "", APP_SECRET, now());
    assert_eq!(raw_request(&server, "GET", &with, "").await.status, 200);
    let without = signed_path(
        "GET",
        &format!("/apps/{APP_ID}/channels"),
        &[],
        "",
        APP_SECRET,
        now(),
    );
    let sent = format!("/api/v1{without}");
    assert_eq!(raw_request(&server, "GET", &sent, "").await.status, 200);
}

#[tokio::test]
async fn auth_key_of_another_app_is_refused() {
    let config = common::default_config()
        + "\n[[apps]]\nid = \"2\"\nkey = \"other-key\"\nsecret = \"other-secret\"\n";
    let server = TestServer::start_with(&config);
    // Signed correctly for app 123456, sent to app 2's path.
    let target = signed_path("GET", "/apps/2/channels", &[], "", APP_SECRET, now());
    let response = raw_request(&server, "GET", &target, "").await;
    assert_eq!(response.status, 401);
    assert_eq!(response.error(), "auth_key does not belong to this app");
}

#[tokio::test]
async fn unknown_apps_are_404_and_disabled_apps_403() {
    let config = "[[apps]]\nid = \"1\"\nkey = \"k1\"\nsecret = \"s1\"\n[[apps]]\nid = \"2\"\nkey = \"k2\"\nsecret = \"s2\"\nenabled = false\n";
    let server = TestServer::start_with(config);
    let target = signed_path("GET", "/apps/9/channels", &[], "", "s1", now());
    let response = raw_request(&server, "GET", &target, "").await;
    assert_eq!(
        (response.status, response.error().as_str()),
        (404, "Unknown app")
    );
    let target = signed_path("GET", "/apps/2/channels", &[], "", "s2", now());
    let response = raw_request(&server, "GET", &target, "").await;
    assert_eq!(
        (response.status, response.error().as_str()),
        (403, "App is disabled")
    );
}

#[tokio::test]
async fn unsupported_auth_version_is_refused() {
    let server = TestServer::start();
    let response = tampered(&server, "GET", "", |t| {
        t.replace("auth_version=1.0", "auth_version=2.0")
    })
    .await;
    assert_eq!(response.status, 401);
    assert!(response.error().contains("auth_version"));
}
