//! The least any hyper-based inspecting proxy costs: the load harness's "floor" target.
//!
//! Anchorgate must see a whole response before it releases any of it (to judge every entry), so
//! the floor is a proxy built from the same parts that does exactly that and nothing more: hyper's
//! HTTP/1.1 server on one current-thread runtime, hyper-util's pooled client, mimalloc, the whole
//! upstream body collected, then sent on. No identity, policy, validation, rewriting or ledger.
//! Its throughput against the nginx peer is the ceiling any gateway built on these crates can reach
//! on this machine, which is what the gateway's own ratio should be read against (tests/load).
//!
//! Usage: `floor_proxy LISTEN_ADDR UPSTREAM_HOST:PORT` (plain HTTP only).

use std::net::SocketAddr;

use anyhow::{Context, Result};
use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

type Upstream = Client<HttpConnector, Full<Bytes>>;

async fn forward(
    client: Upstream,
    authority: String,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>> {
    let (mut parts, body) = req.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    parts.uri = Uri::builder()
        .scheme("http")
        .authority(authority.as_str())
        .path_and_query(path)
        .build()?;
    parts.headers.remove(http::header::HOST);
    let body = body.collect().await?.to_bytes();
    let resp = client
        .request(Request::from_parts(parts, Full::new(body)))
        .await?;
    let (parts, body) = resp.into_parts();
    // Collected in full, as a gateway that judges the response must.
    let body = body.collect().await?.to_bytes();
    Ok(Response::from_parts(parts, Full::new(body)))
}

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let listen: SocketAddr = args
        .next()
        .context("usage: floor_proxy LISTEN_ADDR UPSTREAM_HOST:PORT")?
        .parse()?;
    let authority = args.next().context("missing UPSTREAM_HOST:PORT")?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        let client: Upstream = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(256)
            .build(http);
        let listener = tokio::net::TcpListener::bind(listen).await?;
        loop {
            let (stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            let (client, authority) = (client.clone(), authority.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |req| forward(client.clone(), authority.clone(), req));
                let conn = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc);
                if let Err(e) = conn.await {
                    eprintln!("connection: {e}");
                }
            });
        }
    })
}
