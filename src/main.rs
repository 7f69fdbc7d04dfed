use std::process::ExitCode;

use clap::Parser;
use pushgateway::cli::Cli;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
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
    if cli.version {
        print!(
            "{}",
            pushgateway::telemetry::BuildInfo::current().version_text()
        );
        return ExitCode::SUCCESS;
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
