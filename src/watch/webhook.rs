//! The Bitbucket push webhook receiver (`watch --webhook-listen`, DESIGN.md §7, issue 20): a
//! listener apart from `--listen` that serves only `POST /hooks/bitbucket`, and turns a
//! signed push delivery into [`Trigger::Webhook`] (a fetch and a run at once).
//!
//! What a delivery goes through, in this order:
//!
//! 1. **Method and path.** Anything but `POST /hooks/bitbucket` gets 404 (another path) or
//!    405 (another method on it), with an empty body: nothing says what is served here.
//! 2. **Body.** Read incrementally and capped at [`MAX_BODY`] (1 MiB, issue 20 "Limits"); past
//!    it, 413 and nothing kept. A body declared (`Content-Length`) or found too large is read
//!    on and thrown away up to [`DRAIN`] more bytes before the 413 is sent, so that an honest
//!    sender reads the answer rather than a reset connection; a larger one is cut off.
//! 3. **Signature.** `X-Hub-Signature: sha256=<hex>` must be the HMAC-SHA256 of the raw body
//!    keyed with the webhook secret, compared in constant time ([`Mac::verify_slice`]). Both
//!    Bitbucket Cloud and Data Center send this header when the webhook has a secret:
//!    Atlassian, Bitbucket Cloud "Enhanced webhook security"
//!    (<https://bitbucket.org/blog/enhanced-webhook-security>: "sign webhook payloads") and
//!    Bitbucket Data Center "Manage webhooks", "Securing your webhook"
//!    (<https://confluence.atlassian.com/bitbucketserver/manage-webhooks-938025878.html>: "The
//!    header X-Hub-Signature is defined and contains the HMAC", e.g. `sha256=c338...`). A
//!    missing, malformed or wrong signature gets 401 and triggers nothing. The signature is
//!    checked before the event is even looked at, so an unsigned request learns nothing.
//! 4. **Event** (`X-Event-Key`: Bitbucket Cloud "Event payloads", "HTTP headers"; Data Center
//!    "Event payload"):
//!    * `repo:push` (Cloud) and `repo:refs_changed` (Data Center): 202, and
//!      [`Trigger::Webhook`] fires. Triggers coalesce ([`super::triggers::Triggers`]): a burst
//!      of deliveries makes one fetch and one run.
//!    * `diagnostics:ping` (Data Center's "Test connection"; the event key as Data Center
//!      "Event payload" lists it): 200, nothing triggered.
//!    * Anything else (a webhook that also sends pull-request events): 200 "ignored", nothing
//!      triggered. 200 rather than an error so that Bitbucket does not count the delivery as
//!      failed and, on Data Center, skip the webhook as unhealthy (its circuit breaker).
//!
//! Each delivery is counted in `bbsync_webhook_deliveries_total{result}`
//! ([`super::metrics::Metrics::webhook_delivery`]).
//!
//! The listener is [`server::serve`] with [`LIMITS`]: few connections (each may hold up to
//! 1 MiB while its body is read), one request per connection, a deadline per connection. It
//! makes no `Host` check, unlike the loopback endpoints ([`server::router`]): that check
//! protects a loopback listener from a browser page whose name is rebound to 127.0.0.1, while
//! this one is meant to face the Internet through an Ingress or a load balancer, under
//! whatever name they give it, and answers nothing that is not signed with the secret.
//!
//! The secret appears in no answer, log line or metric: it only keys the HMAC.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures_util::StreamExt as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio_util::sync::CancellationToken;

use super::Shared;
use super::server::{self, Limits};
use super::triggers::Trigger;
use crate::model::secret::Secret;

/// The one path served.
pub(crate) const PATH: &str = "/hooks/bitbucket";

/// The largest body read (issue 20: "Bodies are capped (e.g. 1 MiB)"). A Cloud `repo:push`
/// payload describes at most 5 commits per change (Bitbucket Cloud "Event payloads", "Push":
/// "commits ... up to 5"), so real deliveries are far smaller.
pub(crate) const MAX_BODY: usize = 1024 * 1024;

/// How much of a body past [`MAX_BODY`] is read and thrown away so that the sender gets its
/// 413 (closing a connection with unread data resets it, and the answer can be lost).
const DRAIN: usize = 1024 * 1024;

/// What the webhook listener allows each client: fewer connections than the endpoints'
/// (each may buffer up to [`MAX_BODY`]: at most 16 MiB in all), the same header limits, and
/// time enough to send 1 MiB.
pub(crate) const LIMITS: Limits = Limits {
    connections: 16,
    header_timeout: Duration::from_secs(5),
    headers: 16 * 1024,
    deadline: Duration::from_secs(15),
};

/// The events that trigger a fetch: Bitbucket Cloud's push (Cloud "Event payloads",
/// "Repository events": `repo:push`) and Data Center's (Data Center "Event payload",
/// "Repository events", "Push": `repo:refs_changed`).
const PUSH_EVENTS: [&str; 2] = ["repo:push", "repo:refs_changed"];

/// Data Center's "Test connection" (Data Center "Event payload": `diagnostics:ping`).
const PING_EVENT: &str = "diagnostics:ping";

/// What the handler needs.
struct Hook {
    shared: Arc<Shared>,
    secret: Secret,
}

/// Serves `POST /hooks/bitbucket` on `listen` until `stop`, checking deliveries against
/// `secret`; returns the bound address. An empty secret is refused: anyone could sign with it.
pub(crate) async fn serve(
    listen: SocketAddr,
    shared: Arc<Shared>,
    secret: Secret,
    stop: CancellationToken,
) -> std::io::Result<SocketAddr> {
    if secret.expose().is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the webhook secret (BBSYNC_WEBHOOK_SECRET) is empty",
        ));
    }
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let address = listener.local_addr()?;
    tokio::spawn(server::serve(
        listener,
        router(shared, secret),
        LIMITS,
        stop,
    ));
    Ok(address)
}

/// The receiver's router: [`PATH`] alone, `POST` alone. axum answers 405 (with `Allow`) to
/// another method there and 404 to any other path, both with an empty body.
fn router(shared: Arc<Shared>, secret: Secret) -> Router {
    Router::new()
        .route(PATH, post(deliver))
        .with_state(Arc::new(Hook { shared, secret }))
}

/// One delivery: body, then signature, then event (see the module's docs).
async fn deliver(State(hook): State<Arc<Hook>>, headers: HeaderMap, body: Body) -> Response {
    let metrics = &hook.shared.metrics;
    let body = match read_capped(&headers, body, MAX_BODY).await {
        Read::Body(body) => body,
        Read::TooLarge => {
            metrics.webhook_delivery("too_large");
            tracing::debug!(max_bytes = MAX_BODY, "webhook: a body too large, refused");
            return (
                StatusCode::PAYLOAD_TOO_LARGE,
                "the body is larger than bbsync reads (1 MiB)\n",
            )
                .into_response();
        }
        Read::Failed => {
            metrics.webhook_delivery("unreadable");
            tracing::debug!("webhook: the body could not be read");
            return (StatusCode::BAD_REQUEST, "the body could not be read\n").into_response();
        }
    };
    if !signed(&hook.secret, &headers, &body) {
        metrics.webhook_delivery("bad_signature");
        tracing::debug!("webhook: a delivery without a valid X-Hub-Signature, refused");
        return (
            StatusCode::UNAUTHORIZED,
            "a valid X-Hub-Signature (sha256=<HMAC-SHA256 of the body>) is required\n",
        )
            .into_response();
    }
    let event = headers
        .get("x-event-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    // Bitbucket's own delivery ID (Cloud `X-Request-UUID`, Data Center `X-Request-Id`), to
    // find the delivery in Bitbucket's log; shortened, as any header value could be long.
    let delivery: String = headers
        .get("x-request-uuid")
        .or_else(|| headers.get("x-request-id"))
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .chars()
        .take(64)
        .collect();
    let shown: String = event.chars().take(64).collect();
    if PUSH_EVENTS.contains(&event) {
        metrics.webhook_delivery("accepted");
        tracing::info!(event = %shown, delivery = %delivery, "webhook: a push; fetching now");
        hook.shared.triggers.fire(Trigger::Webhook);
        (StatusCode::ACCEPTED, "accepted\n").into_response()
    } else if event == PING_EVENT {
        metrics.webhook_delivery("ping");
        tracing::info!(delivery = %delivery, "webhook: Bitbucket's test connection");
        (StatusCode::OK, "ok\n").into_response()
    } else {
        metrics.webhook_delivery("ignored_event");
        tracing::debug!(event = ?shown, delivery = %delivery, "webhook: not a push; ignored");
        (
            StatusCode::OK,
            "ignored: only repo:push and repo:refs_changed trigger a run\n",
        )
            .into_response()
    }
}

/// A body as [`read_capped`] read it.
#[derive(Debug, PartialEq, Eq)]
enum Read {
    /// Whole, within the cap.
    Body(Vec<u8>),
    /// Past the cap; nothing kept.
    TooLarge,
    /// The client went away, or sent a broken body.
    Failed,
}

/// Reads `body` chunk by chunk, keeping at most `cap` bytes; a body declared or found larger
/// is not kept ([`DRAIN`]).
async fn read_capped(headers: &HeaderMap, body: Body, cap: usize) -> Read {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let mut stream = body.into_data_stream();
    if let Some(declared) = declared
        && declared > cap as u64
    {
        if declared <= (cap + DRAIN) as u64 {
            drain(&mut stream, DRAIN).await;
        }
        return Read::TooLarge;
    }
    let mut kept = Vec::with_capacity(declared.map_or(0, |d| d as usize));
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else {
            return Read::Failed;
        };
        if kept.len() + chunk.len() > cap {
            drop(kept);
            drain(&mut stream, DRAIN.saturating_sub(chunk.len())).await;
            return Read::TooLarge;
        }
        kept.extend_from_slice(&chunk);
    }
    Read::Body(kept)
}

/// Reads and throws away up to `most` bytes of what is left of a body.
async fn drain(stream: &mut axum::body::BodyDataStream, most: usize) {
    let mut read = 0;
    while read <= most {
        match stream.next().await {
            Some(Ok(chunk)) => read += chunk.len(),
            _ => return,
        }
    }
}

/// Whether `headers` carry `X-Hub-Signature: sha256=<hex>` and the hex is the HMAC-SHA256 of
/// `body` keyed with `secret`, compared in constant time. Hex digits in either case.
fn signed(secret: &Secret, headers: &HeaderMap, body: &[u8]) -> bool {
    let Some(value) = headers.get("x-hub-signature").and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let Some(hex) = value.trim().strip_prefix("sha256=") else {
        return false;
    };
    let Some(claimed) = decode_hex(hex) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&claimed).is_ok()
}

/// `hex` as bytes; `None` unless it is an even number of hex digits.
fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    let digit = |b: u8| -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    };
    let bytes = hex.as_bytes();
    if bytes.is_empty() || !bytes.len().is_multiple_of(2) {
        return None;
    }
    bytes
        .chunks(2)
        .map(|pair| Some((digit(pair[0])? << 4) | digit(pair[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;
    use crate::live::{Client, ClientConfig};
    use crate::model::Env;
    use crate::reconcile::Reconciler;
    use crate::watch::{Daemon, WatchOptions};

    const SECRET: &str = "webhook-secret-0123456789";

    /// A receiver on loopback for a fresh daemon's state.
    struct Receiver {
        address: SocketAddr,
        shared: Arc<Shared>,
        stop: CancellationToken,
        http: reqwest::Client,
    }

    impl Drop for Receiver {
        fn drop(&mut self) {
            self.stop.cancel();
        }
    }

    /// An answer: its status, headers and body as text.
    #[derive(Debug)]
    struct Answer {
        status: u16,
        headers: String,
        body: String,
    }

    async fn start() -> Receiver {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let config =
            ClientConfig::new("http://127.0.0.1:9", "http://127.0.0.1:9", Secret::new("t"));
        let reconciler = Reconciler::new(Client::new(config).unwrap(), Env::default());
        let shared = Daemon::new(WatchOptions::new(Vec::new()), reconciler).shared();
        let stop = CancellationToken::new();
        let address = serve(
            "127.0.0.1:0".parse().unwrap(),
            Arc::clone(&shared),
            Secret::new(SECRET),
            stop.clone(),
        )
        .await
        .unwrap();
        Receiver {
            address,
            shared,
            stop,
            http: reqwest::Client::new(),
        }
    }

    /// `sha256=<hex HMAC-SHA256 of body keyed with key>`, as Bitbucket signs.
    fn signature(key: &str, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
        mac.update(body);
        let digest = mac.finalize().into_bytes();
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        format!("sha256={hex}")
    }

    impl Receiver {
        async fn send(
            &self,
            method: reqwest::Method,
            path: &str,
            headers: &[(&str, &str)],
            body: Vec<u8>,
        ) -> Answer {
            let mut request = self
                .http
                .request(method, format!("http://{}{path}", self.address))
                .body(body);
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            let response = request.send().await.expect("an answer");
            let status = response.status().as_u16();
            let headers = format!("{:?}", response.headers());
            let body = response.text().await.unwrap();
            Answer {
                status,
                headers,
                body,
            }
        }

        /// A POST to the hook of `body` for `event`, signed with `key` (none: unsigned).
        async fn deliver(&self, event: &str, key: Option<&str>, body: &[u8]) -> Answer {
            let signature = key.map(|k| signature(k, body));
            let mut headers = vec![("X-Event-Key", event)];
            if let Some(signature) = &signature {
                headers.push(("X-Hub-Signature", signature));
            }
            self.send(reqwest::Method::POST, PATH, &headers, body.to_vec())
                .await
        }

        /// The triggers pending now, taken.
        fn taken(&self) -> BTreeSet<Trigger> {
            self.shared.triggers.take_pending()
        }

        fn count(&self, result: &str) -> u64 {
            let rendered = self.shared.metrics.render();
            let line = format!("bbsync_webhook_deliveries_total{{result=\"{result}\"}} ");
            rendered
                .lines()
                .find_map(|l| l.strip_prefix(&line))
                .map_or(0, |n| n.trim().parse().unwrap())
        }
    }

    const PUSH: &[u8] = br#"{"push": {"changes": [{"new": {"name": "main"}}]}}"#;

    #[tokio::test]
    async fn a_signed_push_triggers_a_run_cloud_and_data_center() {
        let receiver = start().await;
        for event in ["repo:push", "repo:refs_changed"] {
            let answer = receiver.deliver(event, Some(SECRET), PUSH).await;
            assert_eq!(answer.status, 202, "{event}: {answer:?}");
            assert_eq!(receiver.taken(), [Trigger::Webhook].into(), "{event}");
        }
        // Hex digits in capitals are the same signature.
        let upper = signature(SECRET, PUSH)
            .to_ascii_uppercase()
            .replace("SHA256=", "sha256=");
        let answer = receiver
            .send(
                reqwest::Method::POST,
                PATH,
                &[("X-Event-Key", "repo:push"), ("X-Hub-Signature", &upper)],
                PUSH.to_vec(),
            )
            .await;
        assert_eq!(answer.status, 202, "{answer:?}");
        assert_eq!(receiver.taken(), [Trigger::Webhook].into());
        assert_eq!(receiver.count("accepted"), 3);
    }

    #[tokio::test]
    async fn a_missing_malformed_or_wrong_signature_is_refused_and_triggers_nothing() {
        let receiver = start().await;
        let good = signature(SECRET, PUSH);
        let cases: Vec<(&str, Option<String>)> = vec![
            ("missing", None),
            ("wrong secret", Some(signature("another-secret", PUSH))),
            ("another body", Some(signature(SECRET, b"{}"))),
            (
                "no algorithm",
                Some(good.trim_start_matches("sha256=").to_owned()),
            ),
            ("sha1", Some(good.replace("sha256=", "sha1="))),
            ("not hex", Some(format!("sha256={}", "zz".repeat(32)))),
            ("odd length", Some(good[..good.len() - 1].to_owned())),
            ("truncated", Some(good[..good.len() - 2].to_owned())),
            ("empty", Some("sha256=".to_owned())),
            ("the secret itself", Some(format!("sha256={SECRET}"))),
        ];
        for (name, signature) in &cases {
            let mut headers = vec![("X-Event-Key", "repo:push")];
            if let Some(signature) = signature {
                headers.push(("X-Hub-Signature", signature.as_str()));
            }
            let answer = receiver
                .send(reqwest::Method::POST, PATH, &headers, PUSH.to_vec())
                .await;
            assert_eq!(answer.status, 401, "{name}: {answer:?}");
            assert!(receiver.taken().is_empty(), "{name}: nothing triggered");
        }
        assert_eq!(receiver.count("bad_signature"), cases.len() as u64);
        assert_eq!(receiver.count("accepted"), 0);
    }

    /// The signature comes first: an unsigned ping or other event learns nothing more than an
    /// unsigned push.
    #[tokio::test]
    async fn the_signature_is_checked_before_the_event() {
        let receiver = start().await;
        for event in ["diagnostics:ping", "pullrequest:created", ""] {
            let answer = receiver.deliver(event, None, b"{}").await;
            assert_eq!(answer.status, 401, "{event}: {answer:?}");
        }
        assert_eq!(receiver.count("bad_signature"), 3);
        assert_eq!(receiver.count("ping") + receiver.count("ignored_event"), 0);
        assert!(receiver.taken().is_empty());
    }

    #[tokio::test]
    async fn a_ping_answers_and_other_events_are_ignored_without_a_trigger() {
        let receiver = start().await;
        let ping = receiver
            .deliver("diagnostics:ping", Some(SECRET), b"{}")
            .await;
        assert_eq!(ping.status, 200, "{ping:?}");
        for event in ["pullrequest:created", "repo:commit_status_updated", ""] {
            let answer = receiver.deliver(event, Some(SECRET), b"{}").await;
            assert_eq!(answer.status, 200, "{event}: {answer:?}");
            assert!(answer.body.starts_with("ignored"), "{event}: {answer:?}");
        }
        assert!(receiver.taken().is_empty(), "nothing triggered");
        assert_eq!(receiver.count("ping"), 1);
        assert_eq!(receiver.count("ignored_event"), 3);
    }

    #[tokio::test]
    async fn a_body_past_one_mebibyte_is_refused_and_triggers_nothing() {
        let receiver = start().await;
        // Exactly at the cap: read and accepted.
        let full = vec![b' '; MAX_BODY];
        let answer = receiver.deliver("repo:push", Some(SECRET), &full).await;
        assert_eq!(answer.status, 202, "{answer:?}");
        assert_eq!(receiver.taken(), [Trigger::Webhook].into());
        // One byte more, signed and all: 413 (`Content-Length` says so).
        let over = vec![b' '; MAX_BODY + 1];
        let answer = receiver.deliver("repo:push", Some(SECRET), &over).await;
        assert_eq!(answer.status, 413, "{answer:?}");
        assert!(receiver.taken().is_empty());
        // Without `Content-Length` (chunked): found while reading, 413 just the same.
        let mut stream = tokio::net::TcpStream::connect(receiver.address)
            .await
            .unwrap();
        let signature = signature(SECRET, &over);
        let head = format!(
            "POST {PATH} HTTP/1.1\r\nHost: hooks.example.com\r\nX-Event-Key: repo:push\r\nX-Hub-Signature: {signature}\r\nTransfer-Encoding: chunked\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        for chunk in over.chunks(64 * 1024) {
            let framed = format!("{:x}\r\n", chunk.len());
            stream.write_all(framed.as_bytes()).await.unwrap();
            stream.write_all(chunk).await.unwrap();
            stream.write_all(b"\r\n").await.unwrap();
        }
        stream.write_all(b"0\r\n\r\n").await.unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.unwrap();
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
        assert!(receiver.taken().is_empty());
        assert_eq!(receiver.count("too_large"), 2);
    }

    /// A sender that stops halfway through its body: 400, nothing triggered, even though
    /// what came is signed.
    #[tokio::test]
    async fn a_body_cut_short_is_refused() {
        let receiver = start().await;
        let mut stream = tokio::net::TcpStream::connect(receiver.address)
            .await
            .unwrap();
        let signature = signature(SECRET, b"{}");
        let head = format!(
            "POST {PATH} HTTP/1.1\r\nHost: h\r\nX-Event-Key: repo:push\r\nX-Hub-Signature: {signature}\r\nContent-Length: 100\r\n\r\n{{}}"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.shutdown().await.unwrap();
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer).await;
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 400"),
            "{answer}"
        );
        assert!(receiver.taken().is_empty());
        assert_eq!(receiver.count("unreadable"), 1);
        assert_eq!(receiver.count("accepted"), 0);
    }

    #[tokio::test]
    async fn only_post_to_the_hook_is_served() {
        let receiver = start().await;
        let signed = signature(SECRET, PUSH);
        let headers = [
            ("X-Event-Key", "repo:push"),
            ("X-Hub-Signature", signed.as_str()),
        ];
        for path in [
            "/",
            "/metrics",
            "/status",
            "/healthz",
            "/hooks/bitbucket/x",
            "/hooks",
        ] {
            for method in [reqwest::Method::GET, reqwest::Method::POST] {
                let answer = receiver
                    .send(method.clone(), path, &headers, PUSH.to_vec())
                    .await;
                assert_eq!(answer.status, 404, "{method} {path}: {answer:?}");
                assert!(answer.body.is_empty(), "{method} {path}: {answer:?}");
            }
        }
        for method in [
            reqwest::Method::GET,
            reqwest::Method::PUT,
            reqwest::Method::DELETE,
        ] {
            let answer = receiver
                .send(method.clone(), PATH, &headers, PUSH.to_vec())
                .await;
            assert_eq!(answer.status, 405, "{method}: {answer:?}");
            assert!(answer.body.is_empty(), "{method}: {answer:?}");
        }
        assert!(receiver.taken().is_empty());
        // And the Host is not checked: a public name is how the Ingress reaches it.
        let answer = receiver
            .send(
                reqwest::Method::POST,
                PATH,
                &[
                    ("Host", "hooks.example.com"),
                    ("X-Event-Key", "repo:push"),
                    ("X-Hub-Signature", signed.as_str()),
                ],
                PUSH.to_vec(),
            )
            .await;
        assert_eq!(answer.status, 202, "{answer:?}");
    }

    #[tokio::test]
    async fn the_secret_appears_in_no_answer_and_no_metric() {
        let receiver = start().await;
        let mut answers = vec![
            receiver.deliver("repo:push", Some(SECRET), PUSH).await,
            receiver.deliver("repo:push", None, PUSH).await,
            receiver.deliver("repo:push", Some("wrong"), PUSH).await,
            receiver
                .deliver("diagnostics:ping", Some(SECRET), b"{}")
                .await,
            receiver.deliver("issue:created", Some(SECRET), b"{}").await,
            receiver
                .deliver("repo:push", Some(SECRET), &vec![b' '; MAX_BODY + 1])
                .await,
        ];
        answers.push(
            receiver
                .send(reqwest::Method::GET, "/", &[], Vec::new())
                .await,
        );
        for answer in &answers {
            assert!(!answer.body.contains(SECRET), "{answer:?}");
            assert!(!answer.headers.contains(SECRET), "{answer:?}");
        }
        assert!(!receiver.shared.metrics.render().contains(SECRET));
    }

    #[tokio::test]
    async fn an_empty_secret_is_refused() {
        let config =
            ClientConfig::new("http://127.0.0.1:9", "http://127.0.0.1:9", Secret::new("t"));
        let reconciler = Reconciler::new(Client::new(config).unwrap(), Env::default());
        let shared = Daemon::new(WatchOptions::new(Vec::new()), reconciler).shared();
        let error = serve(
            "127.0.0.1:0".parse().unwrap(),
            shared,
            Secret::new(""),
            CancellationToken::new(),
        )
        .await
        .unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
    }

    #[test]
    fn hex_decodes_only_even_hex() {
        assert_eq!(decode_hex("00ffA0"), Some(vec![0, 255, 160]));
        for bad in ["", "0", "0g", "zz", "0x00"] {
            assert_eq!(decode_hex(bad), None, "{bad}");
        }
    }
}
