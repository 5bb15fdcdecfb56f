//! The `leakgate` binary: parse flags, run, exit with the documented code.

fn main() {
    leakgate::cli::tune_allocator();
    std::process::exit(leakgate::cli::main());
}
