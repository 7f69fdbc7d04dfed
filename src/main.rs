use std::process::ExitCode;

use clap::Parser;
use pushgateway::cli::Cli;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            // Help goes to stdout and succeeds; bad flags fail with status 1, as upstream.
            return if err.use_stderr() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            };
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
