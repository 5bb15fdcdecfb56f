//! The `leakgate` binary: parse flags, run, exit with the documented code.

fn main() {
    std::process::exit(leakgate::cli::main());
}
