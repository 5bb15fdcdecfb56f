//! grpc-target: each leak moves its own signal and the fixed mode does not; health and
//! reflection answer. Real binary, real tonic client, bounded call counts.

mod common;

use std::process::Command;

use common::{Target, metric, metric_until_async};
use leakgate_targets::grpc::pb::target_client::TargetClient;
use leakgate_targets::grpc::pb::{GetRequest, ProxyRequest, WatchRequest};

fn start(args: &[&str]) -> Target {
    common::start(env!("CARGO_BIN_EXE_grpc-target"), "grpc", args)
}

async fn client(t: &Target) -> TargetClient<tonic::transport::Channel> {
    TargetClient::connect(format!("http://{}", t.addr))
        .await
        .unwrap()
}

const N: usize = 300;

#[tokio::test]
async fn unbounded_cache_grows_lru_does_not() {
    let leaky = start(&["--leak", "unbounded-cache"]);
    let fixed = start(&["--cache-capacity", "50"]);
    let (mut a, mut b) = (client(&leaky).await, client(&fixed).await);
    for i in 0..N {
        a.get(GetRequest { key: i.to_string() }).await.unwrap();
        b.get(GetRequest { key: i.to_string() }).await.unwrap();
    }
    assert_eq!(metric(&leaky, "cache_entries"), N as f64);
    assert_eq!(metric(&fixed, "cache_entries"), 50.0);
    // One client connection each, counted while it is open.
    assert_eq!(metric(&leaky, "open_connections"), 1.0);
}

#[tokio::test]
async fn proxy_leaks_upstream_responses() {
    let leaky = start(&["--leak", "unclosed-bodies"]);
    let fixed = start(&[]);
    let (mut a, mut b) = (client(&leaky).await, client(&fixed).await);
    for _ in 0..N {
        a.proxy(ProxyRequest {}).await.unwrap();
        b.proxy(ProxyRequest {}).await.unwrap();
    }
    assert_eq!(metric(&leaky, "open_upstream_responses"), N as f64);
    assert!(metric(&leaky, "open_fds") >= 2.0 * N as f64);
    assert_eq!(metric(&fixed, "open_upstream_responses"), 0.0);
    assert!(metric(&fixed, "open_fds") < 100.0);
}

#[tokio::test]
async fn abandoned_watch_streams_leak_their_producers() {
    let leaky = start(&["--leak", "leaked-tasks"]);
    let fixed = start(&["--task-timeout", "30s"]);
    for t in [&leaky, &fixed] {
        let mut c = client(t).await;
        for i in 0..N {
            let mut stream = c
                .watch(WatchRequest { key: i.to_string() })
                .await
                .unwrap()
                .into_inner();
            assert!(stream.message().await.unwrap().is_some());
            // The client goes away after the first event.
            drop(stream);
        }
    }
    assert_eq!(
        metric_until_async(&leaky, "open_streams", |v| v == N as f64).await,
        N as f64
    );
    // Fixed: producers notice the closed stream (long before their 30 s timeout; the wait
    // is at most SETTLE, 10 s).
    assert_eq!(
        metric_until_async(&fixed, "open_streams", |v| v == 0.0).await,
        0.0
    );
}

#[tokio::test]
async fn health_reflection_and_protoset() {
    let t = start(&[]);
    let ch = tonic::transport::Channel::from_shared(format!("http://{}", t.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(ch.clone());
    let r = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "leakgate.target.v1.Target".into(),
        })
        .await
        .unwrap();
    assert_eq!(r.into_inner().status, 1, "SERVING");
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let mut refl = ServerReflectionClient::new(ch);
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut resp = refl
        .server_reflection_info(tokio_stream::iter([req]))
        .await
        .unwrap()
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) =
        resp.message().await.unwrap().unwrap().message_response
    else {
        panic!("not a list")
    };
    assert!(
        list.service
            .iter()
            .any(|s| s.name == "leakgate.target.v1.Target"),
        "{list:?}"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("target.protoset");
    let out = Command::new(env!("CARGO_BIN_EXE_grpc-target"))
        .arg("--write-protoset")
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(std::fs::metadata(&path).unwrap().len() > 100);
    let help = Command::new(env!("CARGO_BIN_EXE_grpc-target"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&help.stdout).contains("leaked-tasks"));
}
