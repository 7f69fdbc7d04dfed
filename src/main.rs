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
