//! HTTPS with rustls: certificate checks on by default, `insecure` for self-signed servers,
//! ALPN picking HTTP/1.1 or HTTP/2, gRPC over TLS.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use leakgate::scenario::plan::{GrpcPlan, Protocol, Rate};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A self-signed HTTPS server on 127.0.0.1; returns its base URL and an h2-request counter.
fn tls_server() -> (String, Arc<AtomicU64>) {
    let ck =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let cert = CertificateDer::from(ck.cert.der().to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let h2 = Arc::new(AtomicU64::new(0));
    let h2c = h2.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                let h2 = h2c.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let svc = hyper::service::service_fn(
                        move |req: hyper::Request<hyper::body::Incoming>| {
                            if req.version() == hyper::Version::HTTP_2 {
                                h2.fetch_add(1, Ordering::SeqCst);
                            }
                            let grpc = req.headers().get("content-type")
                                == Some(&hyper::header::HeaderValue::from_static(
                                    "application/grpc",
                                ));
                            async move {
                                // A gRPC call gets a trailers-only OK: status in the headers.
                                let (body, status) = if grpc {
                                    (bytes::Bytes::new(), Some("0"))
                                } else {
                                    (bytes::Bytes::from_static(b"secure\n"), None)
                                };
                                let mut resp =
                                    hyper::Response::new(http_body_util::Full::new(body));
                                if let Some(s) = status {
                                    resp.headers_mut().insert(
                                        "grpc-status",
                                        hyper::header::HeaderValue::from_static(s),
                                    );
                                }
                                Ok::<_, std::convert::Infallible>(resp)
                            }
                        },
                    );
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), svc)
                        .await;
                });
            }
        });
    });
    (format!("https://127.0.0.1:{}", addr.port()), h2)
}

#[test]
fn certificate_checks_are_on_by_default() {
    let (base, _) = tls_server();
    let plan = common::plan(&base, "/x", Rate::Constant { rps: 50.0 }, 0.4, 2);
    let (r, _) = common::run(&plan);
    assert_eq!(r.errors.get("connect"), Some(&20), "{r:?}");
    assert_eq!(r.status.get("2xx"), None);
}

#[test]
fn insecure_accepts_a_self_signed_server_over_http1_and_h2() {
    let (base, h2) = tls_server();
    let mut plan = common::plan(&base, "/x", Rate::Constant { rps: 50.0 }, 0.4, 2);
    plan.insecure = true;
    let (r, _) = common::run(&plan);
    assert_eq!(r.status.get("2xx"), Some(&20), "{r:?}");
    assert_eq!(h2.load(Ordering::SeqCst), 0);
    plan.protocol = Protocol::Http2;
    plan.streams_per_connection = 4;
    let (r, _) = common::run(&plan);
    assert_eq!(r.status.get("2xx"), Some(&20), "{r:?}");
    assert_eq!(h2.load(Ordering::SeqCst), 20, "ALPN should have chosen h2");
}

#[test]
fn grpc_runs_over_tls() {
    let (base, h2) = tls_server();
    let mut plan = common::plan(
        &base,
        "leakgate.target.v1.Target/Get",
        Rate::Constant { rps: 50.0 },
        0.4,
        2,
    );
    plan.insecure = true;
    plan.protocol = Protocol::Grpc;
    plan.requests[0].body = Some(r#"{"key": "k"}"#.into());
    let protos = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../targets/proto");
    plan.grpc = Some(GrpcPlan {
        protos: vec![protos.join("leakgate/target/v1/target.proto")],
        import_paths: vec![protos],
        protoset: None,
        reflection: false,
        streaming: false,
    });
    let (r, _) = common::run(&plan);
    assert_eq!(r.status.get("OK"), Some(&20), "{r:?}");
    assert_eq!(h2.load(Ordering::SeqCst), 20, "gRPC goes over h2 (ALPN)");
}
