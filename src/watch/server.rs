//! The daemon's HTTP endpoints: `/healthz`, `/readyz`, `/metrics`, `/status`, and the
//! listener that serves them.
//!
//! The listener expects probes and scrapers, not the open Internet, but it is hardened
//! anyway ([`Limits`]): at most [`Limits::connections`] at once (more are closed at once), one
//! request per connection, headers within [`Limits::headers`] bytes and
//! [`Limits::header_timeout`], and each connection closed after [`Limits::deadline`] whatever
//! it does. No endpoint reads a request body. And when it listens on a loopback address, it
//! answers only requests whose `Host` is an IP address or `localhost`: a web page whose DNS
//! name is rebound to 127.0.0.1 cannot read it from a browser (DNS rebinding).
//!
//! [`serve`] is also the listener of the webhook receiver ([`super::webhook`]), with its own
//! router and limits: that one reads a body, within its own cap, and checks no `Host`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio_util::sync::CancellationToken;

use super::Shared;

/// The endpoints' router, for a listener bound to `bound`.
pub(crate) fn router(shared: Arc<Shared>, bound: SocketAddr) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/status", get(status))
        .with_state(shared)
        .layer(axum::middleware::from_fn(
            move |request: Request, next: Next| check_host(bound, request, next),
        ))
}

/// Refuses (421) a request to a loopback listener whose `Host` is a DNS name other than
/// `localhost`. A request without `Host` (HTTP/1.0) is no browser's, and passes.
async fn check_host(bound: SocketAddr, request: Request, next: Next) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned());
    match host {
        Some(host) if bound.ip().is_loopback() && !is_local_host(&host) => (
            StatusCode::MISDIRECTED_REQUEST,
            "bbsync watch listens on a loopback address, and answers only to an IP address or `localhost` in `Host` (DNS rebinding)\n",
        )
            .into_response(),
        _ => next.run(request).await,
    }
}

/// Whether `host` (a `Host` header: a name or address, maybe with a port) is an IP address
/// or `localhost`.
fn is_local_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        // `[::1]:9464`
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, port)| {
            if port.bytes().all(|b| b.is_ascii_digit()) {
                name
            } else {
                host
            }
        }),
    };
    name.parse::<std::net::IpAddr>().is_ok()
        || name.eq_ignore_ascii_case("localhost")
        || name.eq_ignore_ascii_case("localhost.")
}

/// What the listener allows each client.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Connections served at once; more are closed as they come.
    pub connections: usize,
    /// The time a client has to send its request headers.
    pub header_timeout: Duration,
    /// The most bytes of request headers.
    pub headers: usize,
    /// How long a connection may stay open in all.
    pub deadline: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            connections: 64,
            header_timeout: Duration::from_secs(5),
            headers: 16 * 1024,
            deadline: Duration::from_secs(15),
        }
    }
}

/// Serves `app` on `listener` within `limits` until `stop`.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: Limits,
    stop: CancellationToken,
) {
    let permits = Arc::new(tokio::sync::Semaphore::new(limits.connections));
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stop.cancelled() => return,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(error) => {
                // Out of file descriptors, most likely: wait rather than spin.
                tracing::warn!(%error, "cannot accept a connection to the endpoints");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            tracing::debug!(
                connections = limits.connections,
                "too many connections to the endpoints; closing one"
            );
            drop(stream);
            continue;
        };
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .max_buf_size(limits.headers.max(8192))
                .keep_alive(false);
            let connection = http.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            let _ = tokio::time::timeout(limits.deadline, connection).await;
            drop(permit);
        });
    }
}

async fn healthz(State(shared): State<Arc<Shared>>) -> Response {
    match shared.health() {
        Ok(()) => (StatusCode::OK, "ok\n").into_response(),
        Err(since) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "stuck: the daemon's loop has not ticked for {}s (restart it)\n",
                since.as_secs()
            ),
        )
            .into_response(),
    }
}

async fn readyz(State(shared): State<Arc<Shared>>) -> Response {
    let readiness = shared.status.lock().expect("status lock").readiness();
    match readiness {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            shared
                .env
                .redact(&format!("not ready: {reason}\n"))
                .into_owned(),
        )
            .into_response(),
    }
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        shared.env.redact(&shared.metrics.render()).into_owned(),
    )
        .into_response()
}

async fn status(State(shared): State<Arc<Shared>>) -> Response {
    let body = {
        let status = shared.status.lock().expect("status lock");
        serde_json::to_string_pretty(&*status).unwrap_or_else(|_| "{}".to_owned())
    };
    let body = shared.env.redact(&body).into_owned();
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::TcpStream;

    use super::*;
    use crate::live::{Client, ClientConfig};
    use crate::model::Env;
    use crate::model::secret::Secret;
    use crate::reconcile::Reconciler;
    use crate::watch::{Daemon, STUCK_AFTER, WatchOptions};

    fn daemon(files: Vec<std::path::PathBuf>) -> Daemon {
        let config =
            ClientConfig::new("http://127.0.0.1:9", "http://127.0.0.1:9", Secret::new("t"));
        let reconciler = Reconciler::new(Client::new(config).unwrap(), Env::default());
        Daemon::new(WatchOptions::new(files), reconciler)
    }

    /// Serves a daemon's endpoints on loopback with `limits`; returns the address.
    async fn start(limits: Limits) -> (SocketAddr, CancellationToken) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let app = router(daemon(Vec::new()).shared(), address);
        tokio::spawn(serve(listener, app, limits, stop.clone()));
        (address, stop)
    }

    async fn get(address: SocketAddr, host: &str) -> String {
        let mut stream = TcpStream::connect(address).await.unwrap();
        let request = format!("GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        answer
    }

    /// Whether the server closes `stream` within `within` (reads nothing, or an error).
    async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
        let mut buffer = [0u8; 1024];
        loop {
            match tokio::time::timeout(within, stream.read(&mut buffer)).await {
                Err(_) => return false,
                Ok(Ok(0) | Err(_)) => return true,
                Ok(Ok(_)) => {}
            }
        }
    }

    #[test]
    fn local_hosts_are_addresses_and_localhost() {
        for host in [
            "127.0.0.1",
            "127.0.0.1:9464",
            "[::1]:9464",
            "[::1]",
            "localhost",
            "LOCALHOST:80",
            "10.1.2.3:9464",
        ] {
            assert!(is_local_host(host), "{host}");
        }
        for host in [
            "evil.example",
            "evil.example:9464",
            "localhost.evil.example",
            "127.0.0.1.nip.io",
            "",
        ] {
            assert!(!is_local_host(host), "{host}");
        }
    }

    /// The attack: a page on `rebind.example`, whose name now resolves to 127.0.0.1, reads
    /// the daemon's endpoints from the victim's browser.
    #[tokio::test]
    async fn a_loopback_listener_answers_only_to_local_hosts() {
        let (address, stop) = start(Limits::default()).await;
        let refused = get(address, &format!("rebind.example:{}", address.port())).await;
        assert!(refused.starts_with("HTTP/1.1 421"), "{refused}");
        assert!(refused.contains("DNS rebinding"), "{refused}");
        for host in [address.to_string(), format!("localhost:{}", address.port())] {
            let answer = get(address, &host).await;
            assert!(answer.starts_with("HTTP/1.1 200"), "{host}: {answer}");
        }
        stop.cancel();
    }

    /// Slowloris: a client that never finishes its headers is cut off.
    #[tokio::test]
    async fn a_client_that_never_sends_its_headers_is_cut_off() {
        let limits = Limits {
            header_timeout: Duration::from_millis(200),
            ..Limits::default()
        };
        let (address, stop) = start(limits).await;
        let mut stream = TcpStream::connect(address).await.unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHo")
            .await
            .unwrap();
        assert!(closed_within(&mut stream, Duration::from_secs(5)).await);
        // A client that trickles a header byte by byte is cut off by the deadline.
        let limits = Limits {
            header_timeout: Duration::from_secs(60),
            deadline: Duration::from_millis(300),
            ..Limits::default()
        };
        let (address, _stop) = start(limits).await;
        let mut stream = TcpStream::connect(address).await.unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\n")
            .await
            .unwrap();
        let trickle = async {
            for _ in 0..50 {
                if stream.write_all(b"X").await.is_err() {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            false
        };
        let _ = trickle.await;
        assert!(closed_within(&mut stream, Duration::from_secs(5)).await);
        stop.cancel();
    }

    #[tokio::test]
    async fn connections_beyond_the_cap_are_closed_and_headers_are_bounded() {
        let limits = Limits {
            connections: 2,
            ..Limits::default()
        };
        let (address, stop) = start(limits).await;
        let mut held = Vec::new();
        for _ in 0..2 {
            held.push(TcpStream::connect(address).await.unwrap());
        }
        // Let the server take the two before the third comes.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut third = TcpStream::connect(address).await.unwrap();
        assert!(closed_within(&mut third, Duration::from_secs(2)).await);
        assert!(
            !closed_within(&mut held[0], Duration::from_millis(200)).await,
            "the held ones are still served"
        );
        drop(held);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let answer = get(address, "127.0.0.1").await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        // Headers past the bound: refused, not buffered.
        let mut stream = TcpStream::connect(address).await.unwrap();
        let huge = format!(
            "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: {}\r\n\r\n",
            "a".repeat(64 * 1024)
        );
        let _ = stream.write_all(huge.as_bytes()).await;
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer).await;
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
            "{answer}"
        );
        stop.cancel();
    }

    /// `/healthz` reflects a loop that stopped ticking; a waiting loop keeps ticking.
    #[tokio::test(start_paused = true)]
    async fn healthz_fails_when_the_loop_stops_ticking() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("integrations.yaml");
        std::fs::write(&path, "version: 1\nprojects: {}\n").unwrap();
        // Never run: its loop never ticks.
        let stuck = daemon(vec![path.clone()]);
        tokio::time::advance(STUCK_AFTER - Duration::from_secs(1)).await;
        assert!(stuck.shared().health().is_ok());
        tokio::time::advance(Duration::from_secs(2)).await;
        let since = stuck.shared().health().unwrap_err();
        assert!(since > STUCK_AFTER, "{since:?}");
        let answer = healthz(State(stuck.shared())).await;
        assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);

        let running = daemon(vec![path]);
        let shared = running.shared();
        let stop = CancellationToken::new();
        let task = tokio::spawn(running.run(stop.clone()));
        for _ in 0..10 {
            tokio::time::sleep(STUCK_AFTER).await;
            assert!(shared.health().is_ok(), "an idle loop keeps ticking");
        }
        stop.cancel();
        task.await.unwrap().unwrap();
    }
}
