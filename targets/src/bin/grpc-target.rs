//! grpc-target: a gRPC service with a switchable memory leak (see `--help`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use leakgate_targets::common::{self, LeakArgs, MODES_HELP};
use leakgate_targets::conn::Counted;
use leakgate_targets::grpc::{self, GrpcService, pb};
use leakgate_targets::{accept, admin};

#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc heap profiling on, sampling every 512 KiB on average (cheap enough to keep on).
#[allow(non_upper_case_globals)]
#[unsafe(export_name = "malloc_conf")]
pub static malloc_conf: &[u8] = b"prof:true,prof_active:true,lg_prof_sample:19\0";

/// A gRPC service with a switchable memory leak, for proving leakgate.
///
/// Service leakgate.target.v1.Target: Get/Put (cache), Proxy (upstream), Watch (server
/// streaming); plus grpc.health.v1 and server reflection. The admin listener serves /metrics,
/// /healthz and /debug/pprof/heap.
#[derive(Debug, Parser)]
#[command(name = "grpc-target", version, after_help = MODES_HELP)]
struct Args {
    /// Address to serve gRPC (h2c) on.
    #[arg(long, default_value = "127.0.0.1:50051")]
    listen: SocketAddr,
    /// Write the service's FileDescriptorSet (a protoset) to this file and exit.
    #[arg(long, value_name = "PATH")]
    write_protoset: Option<PathBuf>,
    #[command(flatten)]
    leak: LeakArgs,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(path) = &args.write_protoset {
        std::fs::write(path, grpc::DESCRIPTOR)
            .with_context(|| format!("cannot write {}", path.display()))?;
        return Ok(());
    }
    common::raise_fd_limit();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    rt.block_on(async move {
        let svc = Arc::new(
            GrpcService::new(&args.leak)
                .await
                .context("cannot start the upstream")?,
        );
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let admin_addr = admin::serve(args.leak.admin_listen, svc.admin_state())
            .await
            .with_context(|| format!("cannot listen on {}", args.leak.admin_listen))?;
        let (health, health_svc) = tonic_health::server::health_reporter();
        health
            .set_serving::<pb::target_server::TargetServer<Arc<GrpcService>>>()
            .await;
        let reflection_v1 = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(grpc::DESCRIPTOR)
            .build_v1()
            .context("reflection")?;
        let reflection_v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(grpc::DESCRIPTOR)
            .build_v1alpha()
            .context("reflection")?;
        common::announce("grpc", listener.local_addr()?);
        let metrics = svc.metrics();
        // Each accepted socket holds the open_connections gauge while it lives.
        let incoming = tokio_stream::StreamExt::map(accept::incoming(listener), move |r| {
            r.map(|s| Counted::new(s, metrics.clone()))
        });
        common::announce("admin", admin_addr);
        tonic::transport::Server::builder()
            .add_service(health_svc)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(pb::target_server::TargetServer::new(svc))
            .serve_with_incoming_shutdown(incoming, common::shutdown_signal())
            .await
            .context("gRPC server")?;
        Ok(())
    })
}
