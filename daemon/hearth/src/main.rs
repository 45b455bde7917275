fn main() -> std::process::ExitCode {
    // A pre-started worker's launcher (launcher.rs), before anything else.
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args
        .get(1)
        .is_some_and(|a| a == hearth::launcher::SUBCOMMAND)
    {
        return hearth::launcher::main(&args[2..]);
    }
    hearth::cli::main()
}
