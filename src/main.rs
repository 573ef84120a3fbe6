//! The `moscow-time` binary: parse settings, start logging, serve until
//! SIGTERM. Everything else lives in the library.

use std::process::ExitCode;

use moscow_time::config::Settings;
use moscow_time::startup::Application;

fn main() -> ExitCode {
    let settings = match Settings::from_args_and_env() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("moscow-time: {}", moscow_time::error::error_chain(&error));
            return ExitCode::from(2);
        }
    };
    // Held to the end of main: dropping it flushes the last log lines.
    let _logs = match moscow_time::telemetry::init(settings.log_format) {
        Ok(guard) => guard,
        Err(error) => {
            eprintln!("moscow-time: failed to start logging: {error}");
            return ExitCode::from(2);
        }
    };
    let result = actix_web::rt::System::new().block_on(async {
        Application::build(settings)
            .await?
            .run_until_signalled()
            .await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let chain = format!("{error:#}");
            tracing::error!(error = %chain, "moscow-time stopped with an error");
            eprintln!("moscow-time: {chain}");
            ExitCode::FAILURE
        }
    }
}
