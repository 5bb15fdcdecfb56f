//! rest-target: a REST service with a switchable memory leak (see `--help`).

use std::net::SocketAddr;

use anyhow::Context;
use clap::Parser;
use leakgate_targets::common::{self, LeakArgs, MODES_HELP};
use leakgate_targets::{admin, rest};

#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc heap profiling on, sampling every 512 KiB on average (cheap enough to keep on).
#[allow(non_upper_case_globals)]
#[unsafe(export_name = "malloc_conf")]
pub static malloc_conf: &[u8] = b"prof:true,prof_active:true,lg_prof_sample:19\0";

/// A REST service with a switchable memory leak, for proving leakgate.
///
/// Endpoints: GET /cache/{key}, /proxy, /task, /native, /hello, /healthz, /metrics;
/// the admin listener serves /metrics, /healthz and /debug/pprof/heap.
#[derive(Debug, Parser)]
#[command(name = "rest-target", version, after_help = MODES_HELP)]
struct Args {
    /// Address to serve HTTP/1.1 and h2c on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    #[command(flatten)]
    leak: LeakArgs,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    common::raise_fd_limit();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    rt.block_on(async move {
        let svc = rest::Service::new(&args.leak)
            .await
            .context("cannot start the upstream")?;
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let admin_addr = admin::serve(args.leak.admin_listen, svc.admin_state())
            .await
            .with_context(|| format!("cannot listen on {}", args.leak.admin_listen))?;
        common::announce("http", listener.local_addr()?);
        common::announce("admin", admin_addr);
        rest::serve(listener, svc, common::shutdown_signal()).await;
        Ok(())
    })
}
