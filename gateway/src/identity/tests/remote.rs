//! JWKS fetched from a URL: first use, rotation on an unknown kid, failures keeping the last good
//! keys, and the fetch rate limit, against a real HTTP server on 127.0.0.1:0.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::TokioIo;

use super::*;
use crate::identity::jwks::IssuerKeys;

/// What the test server answers, and how often it was asked.
struct Served {
    status: Mutex<(u16, String)>,
    hits: AtomicUsize,
}

async fn serve(initial: String) -> (Arc<Served>, SocketAddr) {
    let served = Arc::new(Served {
        status: Mutex::new((200, initial)),
        hits: AtomicUsize::new(0),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let s = Arc::clone(&served);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let s = Arc::clone(&s);
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |_req| {
                    s.hits.fetch_add(1, Ordering::SeqCst);
                    let (status, body) = s.status.lock().unwrap().clone();
                    async move {
                        Ok::<_, Infallible>(
                            http::Response::builder()
                                .status(status)
                                .body(Full::new(Bytes::from(body)))
                                .unwrap(),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (served, addr)
}

/// An authenticator whose one issuer's keys come from `url`, with a fetch rate limit of `min`.
fn remote_authenticator(url: &str, min: Duration) -> Authenticator {
    let mut a = Authenticator::new(&config(vec![]), Some(AUD)).unwrap();
    let keys = IssuerKeys::from_url(url.parse().unwrap(), Duration::from_secs(300))
        .unwrap()
        .with_min_interval(min);
    a.issuers.insert(
        ISS.into(),
        Issuer {
            keys: Arc::new(keys),
            replay: ReplayMode::Reusable,
            require_jti: false,
        },
    );
    a
}

#[tokio::test]
async fn fetched_at_first_use_refreshed_on_rotation_kept_on_failure() {
    let first = TestIssuer::new(SigAlg::ES256);
    let second = TestIssuer::new(SigAlg::EdDSA);
    let (served, addr) = serve(first.key.jwks(&first.kid).to_string()).await;
    let a = remote_authenticator(&format!("http://{addr}/jwks"), Duration::ZERO);

    assert!(auth(&a, &first.sign(&base_claims())).await.is_ok());
    assert_eq!(served.hits.load(Ordering::SeqCst), 1);
    assert!(auth(&a, &first.sign(&base_claims())).await.is_ok());
    assert_eq!(served.hits.load(Ordering::SeqCst), 1, "keys are cached");

    // The issuer rotates: a token with the new kid makes the gateway fetch again.
    served.status.lock().unwrap().1 = second.key.jwks(&second.kid).to_string();
    assert!(auth(&a, &second.sign(&base_claims())).await.is_ok());
    assert_eq!(served.hits.load(Ordering::SeqCst), 2);
    // The old key is gone with the rotation.
    assert!(matches!(
        auth(&a, &first.sign(&base_claims())).await,
        Err(AuthError::InvalidToken(TokenProblem::UnknownKid { .. }))
    ));

    // The identity provider fails: the last good keys stay in use.
    *served.status.lock().unwrap() = (500, "oops".into());
    let stranger = TestIssuer::new(SigAlg::ES256);
    assert!(matches!(
        auth(&a, &stranger.sign(&base_claims())).await,
        Err(AuthError::InvalidToken(TokenProblem::UnknownKid { .. }))
    ));
    assert!(auth(&a, &second.sign(&base_claims())).await.is_ok());
    // So does a garbage document.
    *served.status.lock().unwrap() = (200, "{\"keys\": []}".into());
    assert!(auth(&a, &stranger.sign(&base_claims())).await.is_err());
    assert!(auth(&a, &second.sign(&base_claims())).await.is_ok());
}

#[tokio::test]
async fn unknown_kids_cannot_make_the_gateway_hammer_the_issuer() {
    let issuer = TestIssuer::new(SigAlg::ES256);
    let (served, addr) = serve(issuer.key.jwks(&issuer.kid).to_string()).await;
    let a = remote_authenticator(&format!("http://{addr}/jwks"), Duration::from_secs(60));
    assert!(auth(&a, &issuer.sign(&base_claims())).await.is_ok());
    for n in 0..5 {
        let token = issuer
            .key
            .sign(&format!("forged-{n}"), &base_claims())
            .unwrap();
        assert!(auth(&a, &token).await.is_err());
    }
    assert_eq!(served.hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_issuer_whose_keys_never_arrived_answers_503() {
    // A port nothing listens on: bind, read the port, drop.
    let addr = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let a = remote_authenticator(&format!("http://{addr}/jwks"), Duration::ZERO);
    let issuer = TestIssuer::new(SigAlg::ES256);
    let e = auth(&a, &issuer.sign(&base_claims())).await.unwrap_err();
    assert_eq!(e.status(), 503);
    assert_eq!(
        e.to_string(),
        "the signing keys of issuer \"https://idp.test\" could not be fetched; retry shortly"
    );
}
