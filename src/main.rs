use std::io::Write;
use std::process::ExitCode;

use pushgateway::cli::{Cli, Info};

fn main() -> ExitCode {
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // `pushgateway healthcheck ...`: upstream takes no positional arguments, so this word in
    // first place cannot be a gateway command line.
    if args
        .get(1)
        .is_some_and(|arg| arg == pushgateway::probe::SUBCOMMAND)
    {
        args.remove(1);
        return pushgateway::probe::main(args);
    }
    let cli = match Cli::parse_args(args) {
        Ok(cli) => cli,
        Err(err) if err.use_stderr() => {
            eprintln!("{}", pushgateway::cli::usage_error(&err));
            return ExitCode::FAILURE;
        }
        Err(help) => {
            let _ = help.print();
            return ExitCode::SUCCESS;
        }
    };
    if let Some(info) = cli.info {
        return print_info(info);
    }
    if let Some(algorithm) = &cli.hash_password {
        return print_password_hash(algorithm);
    }
    pushgateway::logging::init(cli.log_level, cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            tracing::error!(err = %err, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(pushgateway::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(err = %err, "pushgateway failed");
            ExitCode::FAILURE
        }
    }
}

/// `--version`, `--help-long`, `--help-man`: printed to standard output, as latest upstream
/// does (so that `pushgateway --help-man > pushgateway.1` works).
fn print_info(info: Info) -> ExitCode {
    let text = match info {
        Info::Version => pushgateway::telemetry::BuildInfo::current()
            .version_text()
            .into_bytes(),
        Info::HelpLong => pushgateway::cli::long_help().into_bytes(),
        Info::HelpMan => match pushgateway::cli::man_page() {
            Ok(page) => page,
            Err(err) => {
                eprintln!("pushgateway: error: cannot render the man page: {err}");
                return ExitCode::FAILURE;
            }
        },
    };
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(&text).and_then(|()| stdout.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("pushgateway: error: cannot write to standard output: {err}");
            ExitCode::FAILURE
        }
    }
}

/// `--hash-password`: hashes the password on standard input (its first line) for
/// `basic_auth_users`.
fn print_password_hash(algorithm: &str) -> ExitCode {
    let mut password = String::new();
    if let Err(err) = std::io::stdin().read_line(&mut password) {
        eprintln!("pushgateway: error: cannot read the password from standard input: {err}");
        return ExitCode::FAILURE;
    }
    let password = password.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        eprintln!("pushgateway: error: the password on standard input is empty");
        return ExitCode::FAILURE;
    }
    match pushgateway::web_config::hash_password(algorithm, password) {
        Ok(hash) => {
            println!("{hash}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("pushgateway: error: {err}");
            ExitCode::FAILURE
        }
    }
}
