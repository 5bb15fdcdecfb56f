//! `leakgate run` and `leakgate check`.

use std::path::Path;
use std::time::Duration;

use super::{CheckArgs, RunArgs, adhoc, output, overrides};
use crate::exit::ExitCode;
use crate::run;
use crate::scenario;
use crate::scenario::plan::Plan;
use crate::scenario::resolve::MIN_EVALUATE_EVERY;

/// `leakgate run FILE|URL`.
pub fn run(args: RunArgs) -> ExitCode {
    let scheme = url_scheme(&args.target);
    if let Some(s) = scheme
        && !s.eq_ignore_ascii_case("http")
        && !s.eq_ignore_ascii_case("https")
        && !Path::new(&args.target).exists()
    {
        eprintln!(
            "leakgate: {}: the URL scheme `{s}` is not supported: give an http:// or https:// \
             URL, or a scenario file",
            args.target
        );
        return ExitCode::Usage;
    }
    if let Some(e) = args
        .evaluate_every
        .filter(|&d| d < MIN_EVALUATE_EVERY)
        .map(|d| format!("--evaluate-every must be at least {MIN_EVALUATE_EVERY:?}, got {d:?}"))
    {
        eprintln!("leakgate: {e}");
        return ExitCode::Usage;
    }
    let is_url = scheme.is_some() && !Path::new(&args.target).exists();
    let plan = if is_url {
        if !args.set.is_empty() {
            eprintln!("leakgate: --set applies to scenario files, not to a URL run");
            return ExitCode::Usage;
        }
        match adhoc::plan(
            &args.target,
            args.rate,
            args.duration,
            &args.adhoc,
            args.results_dir.clone(),
        ) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("leakgate: {e}");
                return ExitCode::Usage;
            }
        }
    } else {
        let sets = match overrides(&args.set) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("leakgate: {e}");
                return ExitCode::Usage;
            }
        };
        match scenario::load(Path::new(&args.target), &sets) {
            Ok(p) if p.load.phases.is_empty() => {
                eprintln!(
                    "leakgate: {}: the scenario has no [load]: `leakgate run` needs one (add \
                     [[load.phases]] and [[load.requests]]); `leakgate watch` judges a service's \
                     own traffic without one",
                    args.target
                );
                return ExitCode::BadScenario;
            }
            Ok(mut p) => {
                if let Err(e) =
                    adhoc::override_scenario(&mut p, args.rate, args.duration, &args.adhoc)
                {
                    eprintln!("leakgate: {e}");
                    return ExitCode::Usage;
                }
                p.output.results_dir = args.results_dir.clone();
                p
            }
            Err(e) => {
                eprintln!("leakgate: {e}");
                return scenario_exit(&e);
            }
        }
    };
    // Templates, headers and gRPC methods (from .proto files) fail here, before a target is
    // started or a connection opened.
    if let Err(e) = crate::load::validate(&plan.load) {
        let e = crate::scenario::error::one_line(&e.to_string());
        if is_url {
            eprintln!("leakgate: {e}");
            return ExitCode::Usage;
        }
        eprintln!("leakgate: {}: {e}", args.target);
        return ExitCode::BadScenario;
    }
    // A profiler the scenario asks for must be installed before anything starts: one line.
    if plan.probes.native.is_some()
        && let Err(e) = crate::heap::heaptrack::Tools::find()
    {
        eprintln!("leakgate: {}: {e}", args.target);
        return ExitCode::BadScenario;
    }
    let mut plan = plan;
    if args.extend_if_inconclusive.is_some() {
        plan.gates.extend_if_inconclusive = args.extend_if_inconclusive;
    }
    plan.apply_extension();
    super::UntilVerdict::apply(args.until_verdict, &mut plan.soak);
    if let Err(e) = args.shard.apply(&mut plan) {
        eprintln!("leakgate: {e}");
        return ExitCode::Usage;
    }
    plan.soak.compact_after = args.compact_after.max(Duration::from_secs(60));
    plan.soak.segment = args.segment.map(|s| s.max(Duration::from_secs(1)));
    if args.evaluate_every.is_some() {
        plan.soak.evaluate_every = args.evaluate_every;
    }
    if args.listen.is_some() {
        plan.soak.listen = args.listen.clone();
        plan.soak.evaluate_every = plan.soak.evaluate_every.or(Some(Duration::from_secs(10)));
    }
    launch(&plan, args.no_progress, args.quiet, args.listen_public)
}

/// The scheme of a `scheme://...` argument (`http`, `ftp`), if it looks like a URL.
fn url_scheme(target: &str) -> Option<&str> {
    let (scheme, _) = target.split_once("://")?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    (first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
    .then_some(scheme)
}

/// A scenario mistake is exit 65; a `--set` that does not fit is a flag's (exit 64).
pub(super) fn scenario_exit(e: &scenario::ScenarioError) -> ExitCode {
    match e {
        scenario::ScenarioError::Override { .. } => ExitCode::Usage,
        _ => ExitCode::BadScenario,
    }
}

/// Runs a plan (`run` or `watch`): header, signals, live endpoints, progress, the outcome.
pub fn launch(plan: &Plan, no_progress: bool, quiet: bool, listen_public: bool) -> ExitCode {
    if plan.soak.until_verdict && plan.gates.signals.is_empty() && !plan.gates.latency.has_any() {
        eprintln!("leakgate: --until-verdict needs a gate to decide on; the plan has none");
        return ExitCode::Usage;
    }
    let endpoints = match &plan.soak.listen {
        Some(addr) => match crate::live::serve(addr, listen_public) {
            Ok(s) => Some(std::sync::Arc::new(s)),
            Err(e) => {
                eprintln!("leakgate: {e}");
                return ExitCode::Usage;
            }
        },
        None => None,
    };
    if !quiet {
        println!("{}", output::header(plan));
        if let Some(s) = &endpoints {
            println!(
                "  live    http://{0}/metrics  http://{0}/verdict",
                s.local_addr()
            );
        }
    }
    let stop = run::Stop::new();
    run::signals::install(stop.clone());
    let live = output::Live::new(plan, !no_progress, quiet);
    let mut opts = live.options(stop);
    if let Some(server) = &endpoints {
        opts.on_eval.push(output::publisher(plan, server.clone()));
    }
    let result = run::execute(plan, opts);
    live.finish();
    match result {
        Ok(o) => {
            print!("{}", output::outcome(&o));
            o.exit
        }
        Err(e) => {
            eprintln!("leakgate: {e:#}");
            if matches!(e, run::RunError::Target(_)) && e.exit_code() == ExitCode::TargetDied {
                eprintln!("Exit 3: the target died or never became ready");
            }
            e.exit_code()
        }
    }
}

/// `leakgate check FILE`: validate and print the resolved plan.
pub fn check(args: CheckArgs) -> ExitCode {
    let sets = match overrides(&args.set) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("leakgate: {e}");
            return ExitCode::Usage;
        }
    };
    let plan = match scenario::load(&args.file, &sets) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("leakgate: {e}");
            return scenario_exit(&e);
        }
    };
    // Templates, URLs and gRPC methods from files are compiled exactly as the run would; a
    // watch scenario has no load, and methods found by reflection wait for the target.
    let mut note = None;
    if !plan.load.phases.is_empty() {
        match crate::load::check(&plan.load) {
            Ok(n) => note = n,
            Err(e) => {
                let e = crate::scenario::error::one_line(&e.to_string());
                eprintln!("leakgate: {}: {e}", args.file.display());
                return ExitCode::BadScenario;
            }
        }
    }
    let mut value = match toml::Value::try_from(&plan) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("leakgate: cannot print the plan: {e}");
            return ExitCode::Usage;
        }
    };
    human_durations(&mut value);
    match toml::to_string_pretty(&value) {
        Ok(t) => {
            println!("# {}: valid; the resolved plan:", args.file.display());
            if let Some(n) = note {
                println!("# note: {n}");
            }
            println!("{t}");
            ExitCode::Pass
        }
        Err(e) => {
            eprintln!("leakgate: cannot print the plan: {e}");
            ExitCode::Usage
        }
    }
}

/// Durations as people write them (`"5s"`, `"250ms"`) instead of `{ secs, nanos }` tables.
fn human_durations(v: &mut toml::Value) {
    match v {
        toml::Value::Table(t) => {
            let is_duration = t.len() == 2
                && t.get("secs").is_some_and(toml::Value::is_integer)
                && t.get("nanos").is_some_and(toml::Value::is_integer);
            if is_duration {
                let secs = t["secs"].as_integer().unwrap_or(0) as f64;
                let nanos = t["nanos"].as_integer().unwrap_or(0) as f64;
                *v = toml::Value::String(crate::scenario::units::format_duration(
                    std::time::Duration::from_secs_f64(secs + nanos / 1e9),
                ));
                return;
            }
            for (_, x) in t.iter_mut() {
                human_durations(x);
            }
        }
        toml::Value::Array(a) => a.iter_mut().for_each(human_durations),
        _ => {}
    }
}
