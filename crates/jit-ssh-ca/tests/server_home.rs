//! `/` was a raw JSON 404. It is a page: what this CA is, how to get an
//! invite, how to get access, and a sign-in for approvers listing what
//! waits for them — under the same CSP as every other page, with no
//! inline script or style for that CSP to have to allow.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use common::TestCa;
use http_body_util::BodyExt;
use tower::ServiceExt;

async fn get(t: &TestCa, path: &str) -> (StatusCode, axum::http::HeaderMap, String) {
    let mut req = Request::get(path).body(Body::empty()).unwrap();
    req.extensions_mut()
        .insert(axum::extract::ConnectInfo(t.client));
    let res = t.router.clone().oneshot(req).await.unwrap();
    let (status, headers) = (res.status(), res.headers().clone());
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_root_is_a_landing_page_under_the_pages_csp() {
    let t = TestCa::new();
    let (s, h, body) = get(&t, "/").await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert!(
        h[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html"),
        "{h:?}"
    );
    // The same CSP as a confirmation page (here: an enrollment page).
    let (_, page_h, _) = get(&t, &format!("/enroll/{}", "a".repeat(64))).await;
    assert_eq!(
        h[header::CONTENT_SECURITY_POLICY],
        page_h[header::CONTENT_SECURITY_POLICY]
    );
    assert!(h[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .contains("script-src 'self'"));
    assert_eq!(h[header::X_FRAME_OPTIONS], "DENY");

    // What a newcomer needs: what this is, how to enroll, get access,
    // and the approvers' sign-in.
    for needed in [
        "jit-ssh certificate authority",
        "jit-ssh-ca invite YOUR_NAME",
        "jit-ssh login HOST",
        "Approvers: requests waiting for you",
        "id=\"list-pending\"",
    ] {
        assert!(body.contains(needed), "no {needed:?} in {body}");
    }
    // Nothing the CSP would have to allow: every script is a file the CA
    // serves as JavaScript; no inline script or style.
    assert!(!body.contains("style="), "{body}");
    let mut scripts = 0;
    for tag in body.split("<script").skip(1) {
        let src = tag
            .split("src=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or_else(|| panic!("inline script: <script{tag}"));
        assert!(
            tag.split('>').nth(1).unwrap().starts_with("</script"),
            "{tag}"
        );
        let (s, h, _) = get(&t, src).await;
        assert_eq!(s, StatusCode::OK, "{src}");
        assert!(
            h[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/javascript"),
            "{src}: {h:?}"
        );
        scripts += 1;
    }
    assert_eq!(scripts, 2, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_root_is_the_landing_page() {
    let t = TestCa::new();
    for path in ["/index.html", "/home", "/v1", "/approve"] {
        let (s, _, body) = get(&t, path).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}: {body}");
        assert!(!body.contains("jit-ssh certificate authority"), "{path}");
    }
}
