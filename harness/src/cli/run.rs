//! `leakgate run` and `leakgate check`.

use std::path::Path;

use super::{CheckArgs, RunArgs, adhoc, output, overrides};
use crate::exit::ExitCode;
use crate::run::{self, RunError};
use crate::scenario;

/// `leakgate run FILE|URL`.
pub fn run(args: RunArgs) -> ExitCode {
    let is_url = args.target.starts_with("http://") || args.target.starts_with("https://");
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
            Ok(mut p) => {
                adhoc::override_scenario(&mut p, args.rate, args.duration, &args.adhoc);
                p.output.results_dir = args.results_dir.clone();
                p
            }
            Err(e) => {
                eprintln!("leakgate: {e}");
                return ExitCode::BadScenario;
            }
        }
    };
    if !args.quiet {
        println!("{}", output::header(&plan));
    }
    let cancel = tokio_util::sync::CancellationToken::new();
    output::ctrl_c(cancel.clone());
    let live = output::Live::new(&plan, !args.no_progress, args.quiet);
    let result = run::execute(&plan, live.options(cancel));
    live.finish();
    match result {
        Ok(o) => {
            print!("{}", output::outcome(&o));
            o.exit
        }
        Err(e) => {
            eprintln!("leakgate: {e:#}");
            match &e {
                RunError::Target(_) => eprintln!("Exit 3: the target died or never became ready"),
                RunError::Load(l) if l.is_plan_error() => {}
                _ => {}
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
            return ExitCode::BadScenario;
        }
    };
    // Templates and URLs are compiled exactly as the run would.
    if let Err(e) = crate::load::prepare(&plan.load)
        .map(|_| ())
        .or_else(|e| if e.is_plan_error() { Err(e) } else { Ok(()) })
    {
        eprintln!("leakgate: {}: {e}", args.file.display());
        return ExitCode::BadScenario;
    }
    match toml::to_string_pretty(&plan) {
        Ok(t) => {
            println!("# {}: valid; the resolved plan:\n{t}", args.file.display());
            ExitCode::Pass
        }
        Err(e) => {
            eprintln!("leakgate: cannot print the plan: {e}");
            ExitCode::Usage
        }
    }
}
