//! The `bbsync` binary: parse the command line, run, exit with the documented code.

fn main() -> std::process::ExitCode {
    bbsync::cli::main()
}
