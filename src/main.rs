//! The `xaso` executable: parses the command line and runs the chosen command.

fn main() -> std::process::ExitCode {
    xaso::cli::main()
}
